//! An engine the installer does not support is refused in preflight, naming
//! what it reported and what is supported, with nothing changed. The engine
//! here is a stand-in `docker` CLI that reports Docker 19.03 (no such
//! daemon is packaged for this machine).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use fixtures::harness::{capture, shared, target_bin, Vendor};

#[test]
fn an_engine_older_than_supported_is_refused_in_preflight() {
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let t = tempfile::tempdir().unwrap();
    let docker = t.path().join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\ncase \"$1 $2\" in\n  'compose version') echo 'Docker Compose version v2.40.3' ;;\n  'info --format') echo '19.03.15' ;;\n  *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = t.path().join("opt-demo");
    let r = capture(
        Command::new(target_bin("installer"))
            .env("INSTALLER_DOCKER", &docker)
            .arg("install")
            .arg(&v1)
            .arg("--dir")
            .arg(&dir)
            .arg("--public-key")
            .arg(&vendor.public_key)
            .arg("--yes"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("preflight failed, nothing was changed")
            && r.stderr.contains(
                "docker 19.03.15 is older than that; this installer supports docker 20.10 or newer"
            ),
        "{}",
        r.stderr
    );
    assert!(!dir.exists(), "the dir it created is gone again");
}
