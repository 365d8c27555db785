//! SIGINT and SIGTERM during an install leave the previous release running,
//! whichever phase they hit; a second install on the same dir while one
//! runs is refused by the lock.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::harness::{shared, tree_hash, Host, Vendor};
use rstest::rstest;

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the signal lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// While the bundle streams into staging (the first entry is held for
    /// a few seconds by a fault point): nothing has changed yet.
    Extraction,
    /// In the health wait of a release that never gets healthy: files are
    /// replaced and containers recreated, so it must roll back.
    HealthWait,
}

fn spawn(host: &Host, args: &[&str], env: &[(&str, &str)]) -> Child {
    host.installer()
        .envs(env.iter().copied())
        .arg("install")
        .args(args)
        .arg("--dir")
        .arg(host.install_dir())
        .arg("--yes")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[rstest]
#[case::sigterm_during_the_health_wait("TERM", Phase::HealthWait)]
#[case::sigint_during_the_health_wait("INT", Phase::HealthWait)]
#[case::sigterm_during_extraction("TERM", Phase::Extraction)]
#[case::sigint_during_extraction("INT", Phase::Extraction)]
fn a_signal_leaves_the_previous_release_and_a_concurrent_install_is_refused(
    #[case] signal: &str,
    #[case] phase: Phase,
) {
    let vendor = Vendor::new(&shared().registry);
    let host = Host::new(None);
    let dir = host.install_dir();
    let v1 = vendor.bundle("v1", &[]);
    let pk = vendor.public_key.to_str().unwrap();
    let r = host.install(
        &v1,
        &[
            "--public-key",
            pk,
            "--set",
            &format!("APP_PORT={}", host.port),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");
    let before = tree_hash(&dir);

    let journal = dir.join(".installer/journal.json");
    let email = "ADMIN_EMAIL=ops@example.com";
    let child = match phase {
        Phase::Extraction => {
            let v2 = vendor.bundle("v2", &[]);
            let child = spawn(
                &host,
                &[v2.to_str().unwrap(), "--set", email],
                &[("FAILPOINTS", "extract-entry=1*sleep(5000)")],
            );
            wait_for("the install to start extracting", || {
                std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"verifying\""))
            });
            child
        }
        Phase::HealthWait => {
            // v3 never gets healthy: the install sits in its health wait.
            let v3 = vendor.bundle("v3", &[]);
            let child = spawn(&host, &[v3.to_str().unwrap(), "--set", email], &[]);
            wait_for("the install to replace files", || {
                std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"files\""))
            });
            child
        }
    };

    // A second install on the same dir is refused while the first runs.
    let r = host.install(&v1, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("another install or rollback is running on this dir"),
        "{}",
        r.stderr
    );

    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(host.health(), "ok 1.0.0\n");
    assert!(!journal.exists(), "the journal is cleared: {stderr}");
    let r = host.run(&["status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["current"], "1.0.0");
    match phase {
        Phase::HealthWait => {
            assert_eq!(out.status.code(), Some(4), "{stderr}");
            assert!(
                stderr.contains("rolled back to demo 1.0.0, running and healthy"),
                "{stderr}"
            );
            assert_eq!(v["history"][1]["outcome"], "rolled back");
        }
        Phase::Extraction => {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains(
                    "interrupted by a signal while verifying and staging the bundle; nothing was changed: demo 1.0.0 is still installed"
                ),
                "{stderr}"
            );
            assert_eq!(
                stderr.matches("interrupted").count(),
                1,
                "said once: {stderr}"
            );
            assert_eq!(tree_hash(&dir), before, "the install dir is untouched");
        }
    }
}
