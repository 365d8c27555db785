//! Crashes at every install phase and a disk that fills up: from every
//! state the installer leaves, both `installer install` (again) and
//! `installer rollback` work. Needs the `failpoints` feature (scripts/test.sh
//! builds the test binaries with it); `return(crash)` aborts the process at
//! that point with no cleanup, as a power cut would.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fixtures::harness::{shared, tree_hash, Host, Ran, Tmpfs, Variant, Vendor};

/// The install phases, in order, with a fault point after (or inside) each.
const POINTS: &[&str] = &[
    "extract-entry",
    "after-stage",
    "after-images",
    "after-files",
    "after-health",
];

fn install_with(host: &Host, bundle: &std::path::Path, faults: &str, args: &[&str]) -> Ran {
    host.install_env(bundle, &[("FAILPOINTS", faults)], args)
}

fn crash_at(point: &str) {
    crash_on(Variant::Docker20, point);
}

fn crash_on(variant: Variant, point: &str) {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2) = (vendor.bundle("v1", &[]), vendor.bundle("v2", &[]));
    let host = Host::on(variant, None);
    let dir = host.install_dir();
    host.install_first(&vendor, &v1);
    std::fs::write(dir.join("data/customer.db"), b"precious rows").unwrap();
    // The operator's own line, after the install: it must survive too.
    let mut env = std::fs::read(dir.join(".env")).unwrap();
    env.extend_from_slice(b"LOG_LEVEL=debug # mine\n");
    std::fs::write(dir.join(".env"), &env).unwrap();
    let crash = format!("{point}=return(crash)");
    let email = ["--set", "ADMIN_EMAIL=a@b.c"];

    // Crash, then roll back: 1.0.0 runs again, with its files.
    let r = install_with(&host, &v2, &crash, &email);
    assert_eq!(
        r.code, -1,
        "{point}: the installer should have died; hint: build it with --features installer/failpoints (scripts/test.sh does)\n{}",
        r.stderr
    );
    let status = host.run(&["status"], &[]);
    assert!(
        status
            .stdout
            .contains("interrupted: install of 2.0.0 stopped in phase"),
        "{point}: {}",
        status.stdout
    );
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{point}: {}", r.stderr);
    assert!(
        r.stderr
            .contains("an install of 2.0.0 was interrupted in phase"),
        "{point}: {}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 1.0.0\n", "{point}");
    assert_eq!(
        std::fs::read(dir.join(".env")).unwrap(),
        env,
        "{point}: .env is back byte for byte"
    );
    assert!(std::fs::read_to_string(dir.join("docker-compose.yml"))
        .unwrap()
        .contains("WEB_TAG:-1.0.0"));
    let status = host.run(&["status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["current"], "1.0.0", "{point}");
    assert!(v["interrupted"].is_null(), "{point}: {}", status.stdout);
    let staging = dir.join(".installer/staging");
    assert_eq!(
        std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0),
        0,
        "{point}: staging is cleaned"
    );

    // Crash again, then simply install again: 2.0.0 completes.
    let r = install_with(&host, &v2, &crash, &email);
    assert_eq!(r.code, -1, "{point}: {}", r.stderr);
    let r = host.install(&v2, &email);
    assert_eq!(r.code, 0, "{point}: {}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n", "{point}");
    let status = host.run(&["status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["current"], "2.0.0", "{point}");
    assert_eq!(v["previous"], "1.0.0", "{point}");
    assert!(v["interrupted"].is_null(), "{point}: {}", status.stdout);
    assert_eq!(
        std::fs::read(dir.join("data/customer.db")).unwrap(),
        b"precious rows",
        "{point}"
    );
    // And back: rollback after a clean upgrade still reaches 1.0.0.
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{point}: {}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n", "{point}");
}

#[test]
fn crash_while_extracting() {
    crash_at(POINTS[0]);
}

#[test]
fn crash_after_staging() {
    crash_at(POINTS[1]);
}

#[test]
fn crash_after_loading_images() {
    crash_at(POINTS[2]);
}

/// The crash the containerd store makes most interesting: images are in, the
/// files are not; both ways out work there too.
#[test]
fn crash_after_loading_images_on_the_containerd_store() {
    crash_on(Variant::Docker26Containerd, "after-images");
}

#[test]
fn crash_after_loading_images_on_docker_26() {
    crash_on(Variant::Docker26, "after-images");
}

#[test]
fn crash_after_replacing_files() {
    crash_at(POINTS[3]);
}

#[test]
fn crash_after_health() {
    crash_at(POINTS[4]);
}

#[test]
fn a_full_disk_during_extraction_leaves_the_previous_version_running() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2) = (vendor.bundle("v1", &[]), vendor.bundle("v2", &[]));
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    // Room for 1.0.0 and its kept blobs, not for staging 2.0.0 beside them.
    let disk = Tmpfs::mount(&format!("{}k", (size(&v1) + size(&v1) / 4) / 1024));
    let mut host = Host::new(None);
    host.install = disk.path.join("opt-demo");
    let dir = host.install_dir();
    let pk = vendor.public_key.to_str().unwrap();
    let port = format!("APP_PORT={}", host.port);
    // The preflight free-space check would refuse both installs on so small
    // a disk; switch it off to reach the write that fails.
    let no_check = "ignore-free-space=return";
    let r = install_with(&host, &v1, no_check, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let before = tree_hash(&dir);
    let r = install_with(&host, &v2, no_check, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert_eq!(tree_hash(&dir), before, "the dir is as it was");
    assert_eq!(host.health(), "ok 1.0.0\n");

    // Without the override, preflight says so before writing anything.
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("not enough free space in"),
        "{}",
        r.stderr
    );
    assert_eq!(tree_hash(&dir), before);

    // With room, the same bundle installs.
    disk.resize("64m");
    let r = install_with(&host, &v2, no_check, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
    host.down();
}

/// A crash in the middle of `installer rollback` is on record as a
/// rollback (not as an interrupted install), and `installer rollback`
/// recovers from it.
#[test]
fn a_crash_mid_rollback_is_reported_as_a_rollback() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2) = (vendor.bundle("v1", &[]), vendor.bundle("v2", &[]));
    let host = Host::new(None);
    host.install_first(&vendor, &v1);
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = fixtures::harness::capture(
        host.installer()
            .env("FAILPOINTS", "after-images=return(crash)")
            .arg("rollback")
            .arg("--dir")
            .arg(host.install_dir()),
    );
    assert_eq!(r.code, -1, "the installer should have died: {}", r.stderr);
    let status = host.run(&["status"], &[]);
    assert!(
        status
            .stdout
            .contains("interrupted: rollback of 1.0.0 stopped in phase images"),
        "{}",
        status.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&host.run(&["status", "--json"], &[]).stdout).unwrap();
    assert_eq!(v["interrupted"]["op"], "rollback");

    // Recovering puts back the release on record; a second rollback then
    // goes back to 1.0.0.
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("a rollback of 1.0.0 was interrupted in phase images"),
        "{}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 2.0.0\n");
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");
}
