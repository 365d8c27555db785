//! Trusted keys: add a vendor's next key, revoke the old one, refuse
//! bundles signed only by a revoked key; list backups.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fixtures::harness::{shared, Host, Vendor};

#[test]
fn keys_can_be_added_and_revoked_and_backups_listed() {
    let old = Vendor::new(&shared().registry);
    let new = Vendor::new(&shared().registry);
    let v1 = old.bundle("v1", &[]);
    let v2_new_key = new.bundle("v2", &[]);
    let v2_old_key = old.bundle("v2", &[]);
    let host = Host::new(None);
    let install = |b: &std::path::Path, extra: &[&str]| host.install(b, extra);
    let id_of = |v: &Vendor| {
        let text = std::fs::read_to_string(&v.public_key).unwrap();
        installer::minisign::PublicKey::parse(&text)
            .unwrap()
            .id
            .to_string()
    };
    let port = format!("APP_PORT={}", host.port);
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
    let r = host.run(&["trust", "add"], &[new.public_key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = host.run(&["trust", "list"], &[]);
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
    let r = host.run(&["trust", "revoke"], &[&id_of(&old)]);
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
    let r = host.run(&["trust", "list"], &[]);
    assert!(
        r.stdout.contains(&format!("revoked {}", id_of(&old))),
        "{}",
        r.stdout
    );
    // The last trusted key cannot be revoked.
    let r = host.run(&["trust", "revoke"], &[&id_of(&new)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is the only trusted key"), "{}", r.stderr);

    // The v1 -> v2 upgrade left one backup.
    let r = host.run(&["backups"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r.stdout.starts_with("1.0.0-to-2.0.0-"), "{}", r.stdout);
    host.down();
}

#[test]
fn a_bundle_signed_by_the_current_key_rotates_to_the_next() {
    let old = Vendor::new(&shared().registry);
    let next = Vendor::new(&shared().registry);
    let id_of = |v: &Vendor| {
        let text = std::fs::read_to_string(&v.public_key).unwrap();
        installer::minisign::PublicKey::parse(&text)
            .unwrap()
            .id
            .to_string()
    };
    let (old_id, next_id) = (id_of(&old), id_of(&next));
    let v1 = old.bundle("v1", &[]);
    let v2_old_key = old.bundle("v2", &[]);
    let v2_next_key = next.bundle("v2", &[]);
    let build_with = |yaml: &str, name: &str| {
        let spec = old.app("v2");
        std::fs::copy(&next.public_key, spec.with_file_name("next.pub")).unwrap();
        fixtures::harness::append_to_spec(&spec, yaml);
        let out = old.dir.path().join(name);
        let r = old.build(&spec, &out, &["-q"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        out
    };
    let revoke_only = build_with(&format!("trust:\n  revoke: [{old_id}]\n"), "revoke.bundle");
    let rotate = build_with(
        &format!("trust:\n  add: [next.pub]\n  revoke: [{old_id}]\n"),
        "rotate.bundle",
    );

    let host = Host::new(None);
    let port = format!("APP_PORT={}", host.port);
    let pk = old.public_key.to_str().unwrap();
    let r = host.install(&v1, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Revoking the only key would lock the operator out: refused up front.
    let r = host.install(&revoke_only, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "trust.revoke ({old_id}) would leave this install with no trusted key"
        )),
        "{}",
        r.stderr
    );

    let r = host.install(&rotate, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "now trusting key {next_id} (carried by the bundle)"
        )) && r
            .stderr
            .contains(&format!("revoked key {old_id} (as the bundle asks)")),
        "{}",
        r.stderr
    );
    let r = host.run(&["trust", "list"], &[]);
    assert!(
        r.stdout.contains(&format!("trusted {next_id}"))
            && r.stdout.contains(&format!("revoked {old_id}"))
            && !r.stdout.contains(&format!("trusted {old_id}")),
        "{}",
        r.stdout
    );
    // From now on the old key's bundles are refused and the next key's install.
    let r = host.install(&v2_old_key, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "signed by key {old_id}, which was revoked on this host"
        )),
        "{}",
        r.stderr
    );
    let r = host.install(&v2_next_key, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
}
