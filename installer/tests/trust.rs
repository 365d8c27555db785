//! Trusted keys: add a vendor's next key, revoke the old one, refuse
//! bundles signed only by a revoked key; list backups.

use std::process::Command;

use fixtures::harness::{capture, free_port, shared, target_bin, Dockerd, Vendor};

#[test]
fn keys_can_be_added_and_revoked_and_backups_listed() {
    let old = Vendor::new(&shared().registry);
    let new = Vendor::new(&shared().registry);
    let v1 = old.bundle("v1", &[]);
    let v2_new_key = new.bundle("v2", &[]);
    let v2_old_key = old.bundle("v2", &[]);
    let docker = Dockerd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let installer = || {
        let mut c = Command::new(target_bin("installer"));
        c.env("DOCKER_HOST", &docker.host)
            .env("INSTALLER_DOCKER", "/usr/bin/docker");
        c
    };
    let install = |b: &std::path::Path, extra: &[&str]| {
        capture(
            installer()
                .arg("install")
                .arg(b)
                .arg("--dir")
                .arg(&dir)
                .arg("--yes")
                .args(extra),
        )
    };
    let id_of = |v: &Vendor| {
        let text = std::fs::read_to_string(&v.public_key).unwrap();
        installer::minisign::PublicKey::parse(&text)
            .unwrap()
            .id
            .to_string()
    };
    let port = format!("APP_PORT={}", free_port());
    let r = install(
        &v1,
        &[
            "--public-key",
            old.public_key.to_str().unwrap(),
            "--set",
            &port,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A bundle signed by a key this install does not trust is refused, even
    // when the operator passes that key.
    let r = install(
        &v2_new_key,
        &[
            "--set",
            "ADMIN_EMAIL=a@b.c",
            "--public-key",
            new.public_key.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is not among the keys this install trusts"),
        "{}",
        r.stderr
    );
    let r = install(&v2_new_key, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "signed by key {}, which is not trusted",
            id_of(&new)
        )),
        "{}",
        r.stderr
    );

    // The operator adds the vendor's new key deliberately.
    let r = capture(
        installer()
            .args(["trust", "add", "--dir"])
            .arg(&dir)
            .arg(&new.public_key),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = capture(installer().args(["trust", "list", "--dir"]).arg(&dir));
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("trusted "))
            .count(),
        2,
        "{}",
        r.stdout
    );
    let r = install(&v2_new_key, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Revoking the old key: bundles signed only by it are refused.
    let r = capture(
        installer()
            .args(["trust", "revoke", "--dir"])
            .arg(&dir)
            .arg(id_of(&old)),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = install(&v2_old_key, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "signed by key {}, which was revoked on this host",
            id_of(&old)
        )),
        "{}",
        r.stderr
    );
    let r = capture(installer().args(["trust", "list", "--dir"]).arg(&dir));
    assert!(
        r.stdout.contains(&format!("revoked {}", id_of(&old))),
        "{}",
        r.stdout
    );
    // The last trusted key cannot be revoked.
    let r = capture(
        installer()
            .args(["trust", "revoke", "--dir"])
            .arg(&dir)
            .arg(id_of(&new)),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is the only trusted key"), "{}", r.stderr);

    // The v1 -> v2 upgrade left one backup.
    let r = capture(installer().args(["backups", "--dir"]).arg(&dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r.stdout.starts_with("1.0.0-to-2.0.0-"), "{}", r.stdout);
    let _ = docker
        .docker()
        .args(["compose", "-p", "demo", "down"])
        .current_dir(&dir)
        .output();
}
