//! Split bundles on read-only media: each part checked on its own against
//! the signed index, problems named by part number, install straight from
//! the parts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use fixtures::harness::{
    capture, free_port, shared, target_bin, tree_hash, Dockerd, ReadOnly, Vendor,
};
use installer::health::http_body;

fn split_bundle(v: &Vendor, media: &std::path::Path) {
    let spec = v.app("v1");
    let r = v.build(
        &spec,
        &media.join("demo-1.0.0.bundle"),
        &["--split-size", "600Ki", "--json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn verify(args: &[&std::path::Path], key: &std::path::Path) -> fixtures::harness::Ran {
    capture(
        Command::new(target_bin("installer"))
            .arg("verify")
            .args(args)
            .arg("--public-key")
            .arg(key),
    )
}

#[test]
fn split_bundle_verifies_and_installs_from_read_only_media() {
    let v = Vendor::new(&shared().registry);
    let media = tempfile::tempdir().unwrap();
    split_bundle(&v, media.path());
    let mut parts: Vec<_> = std::fs::read_dir(media.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part-"))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![
            "demo-1.0.0.bundle.part-001-of-004",
            "demo-1.0.0.bundle.part-002-of-004",
            "demo-1.0.0.bundle.part-003-of-004",
            "demo-1.0.0.bundle.part-004-of-004"
        ]
    );
    for p in &parts {
        assert!(std::fs::metadata(media.path().join(p)).unwrap().len() <= 600 * 1024);
    }
    let ro = ReadOnly::mount(media.path());
    let before = tree_hash(&ro.path);
    let r = verify(&[&ro.path], &v.public_key);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed: Vec<std::path::PathBuf> = parts.iter().map(|p| ro.path.join(p)).collect();
    let refs: Vec<&std::path::Path> = listed.iter().map(|p| p.as_path()).collect();
    let r = verify(&refs, &v.public_key);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let docker = Dockerd::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = capture(
        Command::new(target_bin("installer"))
            .env("DOCKER_HOST", &docker.host)
            .env("INSTALLER_DOCKER", "/usr/bin/docker")
            .arg("install")
            .arg(&ro.path)
            .arg("--dir")
            .arg(dir.path().join("demo"))
            .arg("--public-key")
            .arg(&v.public_key)
            .args(["--yes", "--set", &format!("APP_PORT={port}")]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        http_body(&format!("http://127.0.0.1:{port}/health")).unwrap(),
        "ok 1.0.0\n"
    );
    assert_eq!(
        tree_hash(&ro.path),
        before,
        "nothing was written to the media"
    );
    let _ = docker
        .docker()
        .args(["compose", "-p", "demo", "down"])
        .current_dir(dir.path().join("demo"))
        .output();
}

#[test]
fn damaged_missing_and_foreign_parts_are_named_and_nothing_is_installed() {
    let v = Vendor::new(&shared().registry);
    let media = tempfile::tempdir().unwrap();
    split_bundle(&v, media.path());
    let m = media.path();
    let part = |i: usize| m.join(format!("demo-1.0.0.bundle.part-{i:03}-of-004"));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.join("demo-1.0.0.bundle.parts.json")).unwrap())
            .unwrap();
    let expected2 = index["parts"][1]["sha256"].as_str().unwrap().to_owned();

    // Corrupt part 2.
    let good2 = std::fs::read(part(2)).unwrap();
    let mut bad = good2.clone();
    bad[1000] ^= 0xff;
    std::fs::write(part(2), &bad).unwrap();
    let r = verify(&[m], &v.public_key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("part 2 of 4 (demo-1.0.0.bundle.part-002-of-004): corrupt or from another bundle: sha256 expected {expected2}, actual sha256:")), "{}", r.stderr);
    let dir = tempfile::tempdir().unwrap();
    let docker = Dockerd::start();
    let r = capture(
        Command::new(target_bin("installer"))
            .env("DOCKER_HOST", &docker.host)
            .env("INSTALLER_DOCKER", "/usr/bin/docker")
            .arg("install")
            .arg(m)
            .arg("--dir")
            .arg(dir.path().join("demo"))
            .arg("--public-key")
            .arg(&v.public_key)
            .arg("--yes"),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("part 2 of 4"), "{}", r.stderr);
    assert!(!dir.path().join("demo").exists(), "nothing installed");
    assert!(docker.image_list().is_empty());
    std::fs::write(part(2), &good2).unwrap();

    // Missing part 3, and a stray part of another split.
    let good3 = std::fs::read(part(3)).unwrap();
    std::fs::remove_file(part(3)).unwrap();
    std::fs::write(
        m.join("demo-1.0.0.bundle.part-002-of-005"),
        b"from another split",
    )
    .unwrap();
    let r = verify(&[m], &v.public_key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("part 3 of 4 (demo-1.0.0.bundle.part-003-of-004): missing"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("extra file demo-1.0.0.bundle.part-002-of-005: part 2 of 5, from another split of demo-1.0.0.bundle (this one has 4 parts)"), "{}", r.stderr);
    std::fs::remove_file(m.join("demo-1.0.0.bundle.part-002-of-005")).unwrap();

    // Parts 1 and 3 swapped by a tired copier.
    std::fs::write(part(3), std::fs::read(part(1)).unwrap()).unwrap();
    std::fs::write(part(1), &good3).unwrap();
    let r = verify(&[m], &v.public_key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "part 1 of 4 (demo-1.0.0.bundle.part-001-of-004): out of order: it holds part 3 of 4"
        ),
        "{}",
        r.stderr
    );

    // A part from another build of the same bundle.
    let other = tempfile::tempdir().unwrap();
    let v2 = Vendor::new(&shared().registry);
    split_bundle(&v2, other.path());
    std::fs::write(part(1), std::fs::read(part(3)).unwrap()).unwrap();
    std::fs::write(part(3), &good3).unwrap();
    std::fs::copy(
        other.path().join("demo-1.0.0.bundle.part-001-of-004"),
        part(1),
    )
    .unwrap();
    let r = verify(&[m], &v.public_key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "part 1 of 4 (demo-1.0.0.bundle.part-001-of-004): corrupt or from another bundle"
        ),
        "{}",
        r.stderr
    );
}
