//! Secrets never reach output: every bundler and installer command a vendor
//! runs, in success and in failure, is captured and searched for the
//! registry password (plain and as Docker's base64 `user:password`) and the
//! key password.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use base64::Engine as _;
use fixtures::harness::{capture, shared, target_bin, Ran, Vendor};

#[test]
fn no_command_prints_a_password() {
    let s = shared();
    let (user, password) = (s.auth.0.as_str(), s.auth.1.as_str());
    let key_password = "tr0ub4dor-and-3-more-words";
    let wrong_registry_password = "not-the-registry-password-9f2";
    let wrong_key_password = "not-the-key-password-1c7";
    let v = Vendor::new(&s.auth_registry);
    let dir = v.dir.path();
    let (key, public) = (dir.join("enc.key"), dir.join("enc.pub"));
    let spec = fixtures::app::write_app("v1", &s.auth_registry, &dir.join("app")).unwrap();
    let bundle = dir.join("demo.bundle");
    let bundler = |key_pw: &str, reg_pw: &str| {
        let mut c = v.bundler();
        c.env("BUNDLER_KEY_PASSWORD", key_pw)
            .env("BUNDLER_REGISTRY", &s.auth_registry)
            .env("BUNDLER_REGISTRY_USERNAME", user)
            .env("BUNDLER_REGISTRY_PASSWORD", reg_pw)
            .stdin(std::process::Stdio::null());
        c
    };
    let reg = ["--insecure-registry", s.auth_registry.as_str()];
    let mut ran: Vec<(String, Ran)> = Vec::new();
    let mut run = |what: &str, c: &mut Command, ok: bool| {
        let r = capture(c);
        assert_eq!(r.code == 0, ok, "{what}: {}", r.stderr);
        ran.push((what.to_owned(), r));
    };

    run(
        "keygen",
        bundler(key_password, password)
            .args(["keygen", "--secret-key"])
            .arg(&key)
            .arg("--public-key")
            .arg(&public),
        true,
    );
    run(
        "pin",
        bundler(key_password, password)
            .arg("pin")
            .arg(&spec)
            .args(reg),
        true,
    );
    run(
        "build with a wrong registry password",
        bundler(key_password, wrong_registry_password)
            .env("BUNDLER_CACHE_DIR", dir.join("cold"))
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(dir.join("x.bundle"))
            .args(reg),
        false,
    );
    run(
        "build with a wrong key password",
        bundler(wrong_key_password, password)
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(dir.join("y.bundle"))
            .args(reg),
        false,
    );
    run(
        "build",
        bundler(key_password, password)
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&bundle)
            .args(reg),
        true,
    );
    run(
        "build --json, split",
        bundler(key_password, password)
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(dir.join("split/demo.bundle"))
            .args(["--json", "--split-size", "1Mi"])
            .args(reg),
        true,
    );
    run(
        "bundler verify",
        bundler(key_password, password)
            .arg("verify")
            .arg(&bundle)
            .arg("--public-key")
            .arg(&public),
        true,
    );
    run(
        "inspect",
        bundler(key_password, password).arg("inspect").arg(&bundle),
        true,
    );
    run(
        "inspect --json",
        bundler(key_password, password)
            .args(["inspect", "--json"])
            .arg(&bundle),
        true,
    );
    run(
        "installer verify",
        Command::new(target_bin("installer"))
            .arg("verify")
            .arg(&bundle)
            .arg("--public-key")
            .arg(&public),
        true,
    );

    let docker_auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    for (what, r) in &ran {
        assert!(
            !r.stdout.is_empty() || !r.stderr.is_empty(),
            "{what} printed nothing to search"
        );
        for secret in [
            password,
            key_password,
            wrong_registry_password,
            wrong_key_password,
            docker_auth.as_str(),
        ] {
            assert!(
                !r.stdout.contains(secret) && !r.stderr.contains(secret),
                "{what} printed a secret:\n{}\n{}",
                r.stdout,
                r.stderr
            );
        }
    }
    // The encrypted key file holds no password either, and is 0600.
    let k = std::fs::read(&key).unwrap();
    assert!(!k
        .windows(key_password.len())
        .any(|w| w == key_password.as_bytes()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
