//! Credentials where `docker login` puts them on vendors' machines: a
//! credential helper per registry (`credHelpers`), the default store
//! (`credsStore`), then `auths`. The helper is Debian's real
//! `docker-credential-pass`, with a throwaway gpg key and `pass` store made
//! here; a helper that fails stops the build (exit 3) naming the helper and
//! the registry, printing no secret and writing no bundle; one that has
//! nothing falls through to `auths`. Environment credentials go only to the
//! registry `BUNDLER_REGISTRY` names.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use fixtures::harness::{capture, shared, Ran, Vendor};

fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A gpg key and a `pass` store of this test's own, with the registry's
/// credentials stored through `docker-credential-pass`.
fn pass_store(dir: &Path, registry: &str, user: &str, password: &str) {
    let (gnupg, store) = (dir.join("gnupg"), dir.join("store"));
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Every child (gpg, pass, the helper, the bundler) finds them.
    std::env::set_var("GNUPGHOME", &gnupg);
    std::env::set_var("PASSWORD_STORE_DIR", &store);
    run(Command::new("gpg").args([
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        "bundler-test <test@example.invalid>",
        "default",
        "default",
        "never",
    ]));
    run(Command::new("pass").args(["init", "test@example.invalid"]));
    let mut helper = Command::new("docker-credential-pass")
        .arg("store")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let json = format!(r#"{{"ServerURL":"{registry}","Username":"{user}","Secret":"{password}"}}"#);
    std::io::Write::write_all(&mut helper.stdin.take().unwrap(), json.as_bytes()).unwrap();
    assert!(helper.wait().unwrap().success());
}

/// A Docker config dir holding `config`.
fn docker_config(dir: &Path, config: &str) {
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::env::set_var("DOCKER_CONFIG", dir);
}

/// A helper named `name` on PATH that prints `stdout`/`stderr` and exits
/// with `code`.
fn fake_helper(bin: &Path, name: &str, stdout: &str, stderr: &str, code: i32) {
    let p = bin.join(format!("docker-credential-{name}"));
    std::fs::write(
        &p,
        format!("#!/bin/sh\ncat >/dev/null\nprintf '%s' '{stdout}'\nprintf '%s\\n' '{stderr}' >&2\nexit {code}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn no_secret(r: &Ran, secret: &str) {
    assert!(
        !r.stderr.contains(secret) && !r.stdout.contains(secret),
        "a secret was printed: {}",
        r.stderr
    );
}

#[test]
fn credential_helpers_stores_and_auths_are_asked_in_docker_order() {
    let s = shared();
    let (user, password) = (&s.auth.0, &s.auth.1);
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::env::set_var(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    pass_store(t.path(), &s.auth_registry, user, password);

    // credsStore: the real pass helper.
    docker_config(t.path(), r#"{"credsStore": "pass"}"#);
    let v = Vendor::new(&s.auth_registry);
    let spec = v.app("v1");
    let r = v.build(&spec, &v.dir.path().join("store.bundle"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    no_secret(&r, password);

    // credHelpers for this registry wins over the store (here a broken one).
    fake_helper(
        &bin,
        "broken",
        "",
        "gpg: decryption failed: No secret key",
        1,
    );
    let cfg = format!(
        r#"{{"credsStore": "broken", "credHelpers": {{"{}": "pass"}}}}"#,
        s.auth_registry
    );
    docker_config(t.path(), &cfg);
    let v = Vendor::new(&s.auth_registry);
    let r = v.build(&spec, &v.dir.path().join("helper.bundle"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A helper that fails: exit 3, naming it and the registry; no bundle.
    let cfg = format!(r#"{{"credHelpers": {{"{}": "broken"}}}}"#, s.auth_registry);
    docker_config(t.path(), &cfg);
    let v = Vendor::new(&s.auth_registry);
    let out = v.dir.path().join("broken.bundle");
    let r = v.build(&spec, &out, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "credential helper docker-credential-broken failed for {}",
            s.auth_registry
        )) && r.stderr.contains("gpg: decryption failed: No secret key"),
        "{}",
        r.stderr
    );
    no_secret(&r, password);
    assert!(!out.exists());

    // A helper with nothing stored falls through to auths.
    fake_helper(
        &bin,
        "empty",
        "credentials not found in native keychain",
        "",
        1,
    );
    let cfg = format!(
        r#"{{"credsStore": "empty", "auths": {{"{}": {{"username": "{user}", "password": "{password}"}}}}}}"#,
        s.auth_registry
    );
    docker_config(t.path(), &cfg);
    let v = Vendor::new(&s.auth_registry);
    let r = v.build(&spec, &v.dir.path().join("auths.bundle"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Environment credentials go to the registry BUNDLER_REGISTRY names
    // only: named elsewhere, this registry gets none and refuses.
    docker_config(t.path(), "{}");
    let v = Vendor::new(&s.auth_registry);
    let with_env = |registry: Option<&str>| {
        let mut c = v.bundler();
        if let Some(r) = registry {
            c.env("BUNDLER_REGISTRY", r);
        }
        c.env("BUNDLER_REGISTRY_USERNAME", user)
            .env("BUNDLER_REGISTRY_PASSWORD", password)
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&v.key)
            .arg("-o")
            .arg(v.dir.path().join("env.bundle"))
            .args(["--insecure-registry", &s.auth_registry]);
        capture(&mut c)
    };
    let r = with_env(Some("registry.elsewhere.example"));
    assert_eq!(r.code, 3, "{}", r.stderr);
    no_secret(&r, password);
    let r = with_env(None);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("BUNDLER_REGISTRY_USERNAME and BUNDLER_REGISTRY_PASSWORD are set but BUNDLER_REGISTRY is not"),
        "{}",
        r.stderr
    );
    let r = with_env(Some(&s.auth_registry));
    assert_eq!(r.code, 0, "{}", r.stderr);
    no_secret(&r, password);
}
