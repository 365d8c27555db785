//! The installer on podman (runc, cgroupfs) with podman-compose: install,
//! upgrade, automatic rollback of the broken v3. Podman 4.3 is this
//! machine's; podman 5.4 is Debian trixie's, which needs glibc 2.38, so it
//! runs in a debootstrapped trixie root (`scripts/install-deps.sh`), the
//! installer beside it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fixtures::harness::{capture, free_port, shared, target_bin, Podman, Vendor, TRIXIE_ROOT};
use installer::health::http_body;

#[test]
fn install_upgrade_and_rollback_on_podman() {
    scenario(Podman::new(), "4.", "podman-compose");
}

#[test]
fn install_upgrade_and_rollback_on_podman_5_in_a_trixie_root() {
    // Podman 5's own `podman compose`, which runs podman-compose 1.3.
    scenario(
        Podman::in_root(std::path::Path::new(TRIXIE_ROOT)),
        "5.",
        "podman compose",
    );
}

fn scenario(podman: Podman, version: &str, compose: &str) {
    let out = podman
        .podman()
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .unwrap();
    let reported = String::from_utf8_lossy(&out.stdout);
    assert!(reported.starts_with(version), "podman {reported}");
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2, v3) = (
        vendor.bundle("v1", &[]),
        vendor.bundle("v2", &[]),
        vendor.bundle("v3", &[]),
    );
    let (v1, v2, v3) = (podman.stage(&v1), podman.stage(&v2), podman.stage(&v3));
    let installer = podman.stage(&target_bin("installer"));
    let install_dir = podman.inside(&podman.dir().join("demo"));
    let port = free_port();
    let install = |bundle: &std::path::Path, args: &[&str]| {
        let mut c = podman.command(&installer);
        c.arg("install")
            .arg(bundle)
            .arg("--dir")
            .arg(&install_dir)
            .args(["--engine", "podman", "--yes"])
            .args(args);
        capture(&mut c)
    };
    let health = || http_body(&format!("http://127.0.0.1:{port}/health")).unwrap_or_default();
    let pk = podman.stage(&vendor.public_key);
    let pk = pk.to_str().unwrap();
    let r = install(
        &v1,
        &["--public-key", pk, "--set", &format!("APP_PORT={port}")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("with {compose}")),
        "{}",
        r.stderr
    );
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
