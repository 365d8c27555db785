//! SIGTERM during an install rolls back cleanly; a second install on the
//! same dir while one runs is refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::harness::{capture, free_port, shared, target_bin, Dockerd, Vendor};
use installer::health::http_body;

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_rolls_back_and_a_concurrent_install_is_refused() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v3) = (vendor.bundle("v1", &[]), vendor.bundle("v3", &[]));
    let docker = Dockerd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let port = free_port();
    let installer = || {
        let mut c = Command::new(target_bin("installer"));
        c.env("DOCKER_HOST", &docker.host)
            .env("INSTALLER_DOCKER", "/usr/bin/docker");
        c
    };
    let r = capture(
        installer()
            .arg("install")
            .arg(&v1)
            .arg("--dir")
            .arg(&dir)
            .arg("--public-key")
            .arg(&vendor.public_key)
            .args(["--yes", "--set", &format!("APP_PORT={port}")]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let health = || http_body(&format!("http://127.0.0.1:{port}/health")).unwrap_or_default();
    assert_eq!(health(), "ok 1.0.0\n");

    // v3 never gets healthy: the install sits in its health wait.
    let child = installer()
        .arg("install")
        .arg(&v3)
        .arg("--dir")
        .arg(&dir)
        .args(["--yes", "--set", "ADMIN_EMAIL=ops@example.com"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = dir.join(".installer/journal.json");
    wait_for("the install to replace files", || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"files\""))
    });

    // A second install on the same dir is refused while the first runs.
    let r = capture(
        installer()
            .arg("install")
            .arg(&v1)
            .arg("--dir")
            .arg(&dir)
            .arg("--yes"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("another install or rollback is running on this dir"),
        "{}",
        r.stderr
    );

    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains("rolled back to demo 1.0.0, running and healthy"),
        "{stderr}"
    );
    assert_eq!(health(), "ok 1.0.0\n");
    assert!(
        !journal.exists(),
        "the journal is cleared after the rollback"
    );
    let r = capture(installer().args(["status", "--json", "--dir"]).arg(&dir));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["current"], "1.0.0");
    assert_eq!(v["history"][1]["outcome"], "rolled back");
    let _ = docker
        .docker()
        .args(["compose", "-p", "demo", "down"])
        .current_dir(&dir)
        .output();
}
