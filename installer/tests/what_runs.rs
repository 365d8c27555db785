//! The release that runs is the one installed. On a real dockerd, each step
//! checks the image the web container actually runs (its image ID against
//! the tags' IDs), not only what the installer printed:
//! - a stack pinned by one version variable (`WEB_TAG`, managed by the
//!   release) moves with each upgrade, a failed upgrade puts `.env` back
//!   byte for byte, and `rollback` puts the old pin back;
//! - an operator's own pin, or an edited compose file, that would run an
//!   image the release does not carry is refused before anything changes;
//! - the operator's override file is passed to compose after the bundle's
//!   files and kept byte for byte.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use fixtures::harness::{shared, tree_hash, Host, Vendor};

/// The tag of `demo/web` that the web container runs ("" when none).
fn web_runs(host: &Host) -> String {
    let image = host.docker.service_image("web");
    if image.is_empty() {
        return String::new();
    }
    ["1.0.0", "2.0.0", "3.0.0"]
        .into_iter()
        .find(|tag| host.docker.image_id(&format!("demo/web:{tag}")) == image)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("unknown image {image}"))
}

/// The demo release `version` with `WEB_TAG` owned by the release: its
/// default is the release's web tag.
fn managed_pin(vendor: &Vendor, version: &str, tag: &str) -> PathBuf {
    let spec = vendor.app(version);
    let text = std::fs::read_to_string(&spec).unwrap();
    let entry = format!(
        "env:\n  - key: WEB_TAG\n    description: The web image's tag; moves with each release\n    default: \"{tag}\"\n    managed: true\n"
    );
    std::fs::write(&spec, text.replacen("env:\n", &entry, 1)).unwrap();
    let out = vendor.dir.path().join(format!("pinned-{version}.bundle"));
    let r = vendor.build(&spec, &out, &["-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

fn env(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".env")).unwrap()
}

#[test]
fn a_version_variable_moves_with_the_release_and_back() {
    let vendor = Vendor::new(&shared().registry);
    let v1 = managed_pin(&vendor, "v1", "1.0.0");
    let v2 = managed_pin(&vendor, "v2", "2.0.0");
    let v3 = managed_pin(&vendor, "v3", "3.0.0");
    let plain_v2 = vendor.bundle("v2", &[]);
    let host = Host::new(None);
    let dir = host.install_dir();

    host.install_first(&vendor, &v1);
    let env1 = env(&dir);
    assert!(env1.lines().any(|l| l == "WEB_TAG=1.0.0"), "{env1}");
    assert_eq!(web_runs(&host), "1.0.0");

    // The upgrade moves the pin in place and runs the new image.
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(".env: WEB_TAG 1.0.0 -> 2.0.0 (owned by the release)"),
        "{}",
        r.stderr
    );
    let env2 = env(&dir);
    assert!(
        env2.starts_with(&env1.replace("WEB_TAG=1.0.0", "WEB_TAG=2.0.0")),
        "one value changed in place, the rest kept: {env2}"
    );
    assert_eq!(web_runs(&host), "2.0.0");
    assert_eq!(host.health(), "ok 2.0.0\n");

    // A failing upgrade puts .env back byte for byte, and 2.0.0 runs again.
    let r = host.install(&v3, &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(env(&dir), env2);
    assert_eq!(web_runs(&host), "2.0.0");
    assert_eq!(host.health(), "ok 2.0.0\n");

    // Rollback puts 1.0.0's .env back, pin included; the keys only 2.0.0
    // added stay (its generated secret must never be lost).
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let added = &env2[env1.len()..];
    assert!(added.starts_with("ADMIN_EMAIL=") && added.contains("\nSIGNING_KEY="));
    assert_eq!(env(&dir), format!("{env1}{added}"));
    assert_eq!(web_runs(&host), "1.0.0");
    assert_eq!(host.health(), "ok 1.0.0\n");

    // The operator changes the managed pin by hand: reported, not overwritten.
    std::fs::write(
        dir.join(".env"),
        env1.replace("WEB_TAG=1.0.0", "WEB_TAG=9.9.9"),
    )
    .unwrap();
    let before = tree_hash(&dir);
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(".env: WEB_TAG belongs to the release (the installer sets it on every install) and was changed by hand to \"9.9.9\" (the installer wrote \"1.0.0\"); this release sets \"2.0.0\"; hint: pass --set WEB_TAG=2.0.0"),
        "{}",
        r.stderr
    );
    assert_eq!(tree_hash(&dir), before);
    std::fs::write(dir.join(".env"), &env1).unwrap();

    // A release that does not own the pin, with .env pinning 1.0.0: compose
    // would run 1.0.0, which it does not carry. Refused, nothing changed.
    let before = tree_hash(&dir);
    let r = host.install(&plain_v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("docker-compose.yml: service web would run demo/web:1.0.0 (image: demo/web:${WEB_TAG:-2.0.0}, with WEB_TAG=1.0.0 from .env), which demo 2.0.0 does not carry"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(tree_hash(&dir), before);
    assert_eq!(web_runs(&host), "1.0.0");

    // --set on the key .env holds changes that line in place, and runs.
    let r = host.install(
        &plain_v2,
        &[
            "--set",
            "ADMIN_EMAIL=ops@example.com",
            "--set",
            "WEB_TAG=2.0.0",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(env(&dir).starts_with(&env1.replace("WEB_TAG=1.0.0", "WEB_TAG=2.0.0")));
    assert_eq!(web_runs(&host), "2.0.0");
}

#[test]
fn the_override_file_is_honoured_and_an_edited_compose_file_cannot_run_the_old_image() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2) = (vendor.bundle("v1", &[]), vendor.bundle("v2", &[]));
    let host = Host::new(None);
    let dir = host.install_dir();
    host.install_first(&vendor, &v1);

    // The operator's change, the compose way.
    let local = "services:\n  web:\n    labels:\n      ops.tuned: \"yes\"\n";
    std::fs::write(dir.join("docker-compose.override.yml"), local).unwrap();
    let label = || {
        let o = host
            .docker
            .docker()
            .args([
                "ps",
                "--filter",
                "label=com.docker.compose.service=web",
                "--format",
                "{{.Label \"ops.tuned\"}}",
            ])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(web_runs(&host), "2.0.0");
    assert_eq!(label(), "yes", "compose ran with the override file");
    let status = host.run(&["status"], &[]);
    assert!(
        status
            .stdout
            .contains("override file: docker-compose.override.yml"),
        "{}",
        status.stdout
    );
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(web_runs(&host), "1.0.0");
    assert_eq!(label(), "yes");
    assert_eq!(
        std::fs::read_to_string(dir.join("docker-compose.override.yml")).unwrap(),
        local
    );

    // Editing the managed compose file instead keeps 1.0.0's image line:
    // upgrading would run 1.0.0. Refused, naming the file and the image.
    let installed = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        installed.replace("stop_grace_period: 2s", "stop_grace_period: 3s"),
    )
    .unwrap();
    let before = tree_hash(&dir);
    let email = ["--set", "ADMIN_EMAIL=ops@example.com"];
    let r = host.install(&v2, &email);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("docker-compose.yml was edited since it was installed and is kept, so service web would run demo/web:1.0.0"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: move your changes into docker-compose.override.yml"),
        "{}",
        r.stderr
    );
    assert_eq!(tree_hash(&dir), before);
    assert_eq!(web_runs(&host), "1.0.0");

    // The change moves to the override file: the upgrade goes ahead.
    std::fs::write(dir.join("docker-compose.yml"), &installed).unwrap();
    let r = host.install(&v2, &email);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(web_runs(&host), "2.0.0");
    assert_eq!(label(), "yes");
}
