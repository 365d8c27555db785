//! The installer on podman 4.3 (runc, cgroupfs) with podman-compose:
//! install, upgrade, automatic rollback of the broken v3.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use fixtures::harness::{capture, free_port, shared, target_bin, Podman, Vendor};
use installer::health::http_body;

#[test]
fn install_upgrade_and_rollback_on_podman() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2, v3) = (
        vendor.bundle("v1", &[]),
        vendor.bundle("v2", &[]),
        vendor.bundle("v3", &[]),
    );
    let podman = Podman::new();
    let dir = tempfile::tempdir().unwrap();
    let install_dir = dir.path().join("demo");
    let port = free_port();
    let install = |bundle: &std::path::Path, args: &[&str]| {
        let mut c = Command::new(target_bin("installer"));
        podman.env(&mut c);
        c.arg("install")
            .arg(bundle)
            .arg("--dir")
            .arg(&install_dir)
            .args(["--engine", "podman", "--yes"])
            .args(args);
        capture(&mut c)
    };
    let health = || http_body(&format!("http://127.0.0.1:{port}/health")).unwrap_or_default();
    let pk = vendor.public_key.to_str().unwrap();
    let r = install(
        &v1,
        &["--public-key", pk, "--set", &format!("APP_PORT={port}")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("with podman-compose"), "{}", r.stderr);
    assert_eq!(health(), "ok 1.0.0\n");
    let r = install(&v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(health(), "ok 2.0.0\n");
    let r = install(&v3, &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("rolled back to demo 2.0.0, running and healthy"),
        "{}",
        r.stderr
    );
    assert_eq!(health(), "ok 2.0.0\n");
    // The running containers are podman's, labelled by compose project.
    let mut c = podman.podman();
    c.args([
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=demo",
    ]);
    assert_eq!(capture(&mut c).stdout.lines().count(), 3);
}
