//! `bundler build` against a registry that misbehaves (fixtures::badreg):
//! wrong bytes, truncated bodies, 500s, 429 with Retry-After, slow and
//! stalled bodies. The bundler retries within a bound, then fails naming
//! the blob, and never writes an unverified blob into its cache or a bundle.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use fixtures::badreg::{BadRegistry, Fault};
use fixtures::harness::{capture, images, installer_verify, Ran, Vendor};
use sha2::Digest as _;

/// Exit code of a registry failure (bundler::cli::EXIT_REGISTRY).
const EXIT_REGISTRY: i32 = 3;

struct Setup {
    reg: BadRegistry,
    vendor: Vendor,
    spec: PathBuf,
    out: PathBuf,
}

/// A vendor whose spec (the demo app 1.0.0) is pinned through the bad
/// registry while it still behaves.
fn setup() -> Setup {
    let reg = BadRegistry::start(images());
    let vendor = Vendor::new(reg.addr());
    let spec = vendor.app("v1");
    let out = vendor.dir.path().join("out/demo.bundle");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    Setup {
        reg,
        vendor,
        spec,
        out,
    }
}

impl Setup {
    fn build(&self, extra: &[&str]) -> Ran {
        let mut args = extra.to_vec();
        if !extra.contains(&"--attempts") {
            args.extend_from_slice(&["--attempts", "3"]);
        }
        self.vendor.build(&self.spec, &self.out, &args)
    }

    fn cache(&self) -> PathBuf {
        self.vendor.dir.path().join("cache")
    }

    /// The web image's own (top) layer: small, not shared.
    fn web_layer(&self) -> String {
        self.reg
            .layers("demo/web", "1.0.0")
            .last()
            .expect("a layer")
            .clone()
    }

    /// Every blob in the cache hashes to its name, the cache keeps no temp
    /// file, and `digest` is not in it.
    fn assert_cache_clean_of(&self, digest: &str) {
        let blobs = self.cache().join("blobs/sha256");
        for e in std::fs::read_dir(&blobs).into_iter().flatten() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let got = hex(&sha2::Sha256::digest(std::fs::read(e.path()).unwrap()));
            assert_eq!(got, name, "cache blob {name} holds other bytes");
        }
        let hexd = digest.trim_start_matches("sha256:");
        assert!(!blobs.join(hexd).exists(), "{digest} entered the cache");
        let tmp = self.cache().join("tmp");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert!(left.is_empty(), "temp files left in {}", tmp.display());
    }

    /// The build failed with a registry error naming `digest`, made exactly
    /// `attempts` requests for it, and wrote no bundle and no cache entry.
    fn assert_failed_on(&self, r: &Ran, digest: &str, attempts: u32, message: &str) {
        assert_eq!(r.code, EXIT_REGISTRY, "{}", r.stderr);
        assert!(r.stderr.contains(digest), "names the blob: {}", r.stderr);
        assert!(r.stderr.contains(message), "says {message:?}: {}", r.stderr);
        assert!(r.stderr.contains("hint:"), "gives a hint: {}", r.stderr);
        assert_eq!(self.reg.hits(digest), attempts, "bounded retries");
        assert_no_output(&self.out);
        self.assert_cache_clean_of(digest);
    }

    /// The build succeeded, and the bundle verifies with the vendor's key.
    fn assert_built(&self, r: &Ran) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = installer_verify(&self.out, &self.vendor.public_key);
        assert_eq!(v.code, 0, "{}", v.stderr);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// No bundle, part or temp file in the output dir.
fn assert_no_output(out: &Path) {
    let dir = out.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
}

#[test]
fn a_blob_with_wrong_bytes_is_retried_then_refused_and_never_cached() {
    let s = setup();
    let d = s.web_layer();
    s.reg.fault(&d, Fault::WrongBytes, None);
    let r = s.build(&[]);
    s.assert_failed_on(&r, &d, 3, "the registry served wrong or damaged data");
}

#[test]
fn a_truncated_blob_is_retried_then_refused_and_never_cached() {
    let s = setup();
    let d = s.web_layer();
    s.reg.fault(&d, Fault::Truncated, None);
    let r = s.build(&[]);
    s.assert_failed_on(&r, &d, 3, "interrupted");
}

#[test]
fn a_registry_answering_500_is_retried_then_refused() {
    let s = setup();
    let d = s.web_layer();
    s.reg.fault(&d, Fault::Status(500), None);
    let r = s.build(&[]);
    s.assert_failed_on(&r, &d, 3, "500");
}

#[test]
fn a_stalled_body_times_out_is_retried_then_refused() {
    let s = setup();
    let d = s.web_layer();
    s.reg.fault(&d, Fault::Stall(4000), None);
    let r = s.build(&["--registry-timeout", "1", "--attempts", "2"]);
    s.assert_failed_on(&r, &d, 2, "interrupted");
}

#[test]
fn a_429_is_retried_after_the_wait_its_retry_after_asks_for() {
    let s = setup();
    let d = s.web_layer();
    // Twice 429 with `Retry-After: 2`, then the blob. The bundler's own
    // backoff would have waited 0.5 s, then 1 s.
    s.reg.fault(&d, Fault::TooManyRequests(2), Some(2));
    let r = s.build(&[]);
    s.assert_built(&r);
    assert_eq!(s.reg.hits(&d), 3);
    let gaps = s.reg.gaps(&d);
    assert!(
        gaps.iter().all(|g| g.as_secs_f64() >= 1.9),
        "waited as asked before each retry: {gaps:?}"
    );
    assert!(
        r.stderr.contains("in 2.0s (the registry's Retry-After)"),
        "says why it waits: {}",
        r.stderr
    );
}

#[test]
fn a_429_that_never_clears_is_retried_then_refused() {
    let s = setup();
    let d = s.web_layer();
    s.reg.fault(&d, Fault::TooManyRequests(1), None);
    let r = s.build(&[]);
    s.assert_failed_on(&r, &d, 3, "429 Too Many Requests");
}

#[test]
fn a_retry_after_longer_than_the_bundler_waits_fails_at_once() {
    let s = setup();
    let d = s.web_layer();
    s.reg.fault(&d, Fault::TooManyRequests(3600), None);
    let r = s.build(&[]);
    s.assert_failed_on(&r, &d, 1, "asks to wait 3600 s");
    assert!(r.stderr.contains("rate-limiting"), "{}", r.stderr);
}

#[test]
fn passing_faults_are_retried_and_the_bundle_is_whole() {
    let s = setup();
    // Each of three blobs misbehaves twice, then serves; a fourth is slow.
    let web = s.web_layer();
    let worker_cfg = s.reg.config("demo/worker", "1.0.0");
    let cron = s.reg.layers("demo/cron", "1.0.0").last().unwrap().clone();
    let slow = s.reg.layers("demo/worker", "1.0.0").last().unwrap().clone();
    s.reg.fault(&web, Fault::Status(503), Some(2));
    s.reg.fault(&worker_cfg, Fault::TooManyRequests(1), Some(2));
    s.reg.fault(&cron, Fault::WrongBytes, Some(1));
    s.reg.fault(&slow, Fault::Slow(2), None);
    let r = s.build(&[]);
    s.assert_built(&r);
    assert_eq!(s.reg.hits(&web), 3);
    assert_eq!(s.reg.hits(&worker_cfg), 3);
    assert_eq!(s.reg.hits(&cron), 2);
    assert_eq!(s.reg.hits(&slow), 1);
    for d in [&web, &worker_cfg, &cron] {
        assert!(
            r.stderr.contains(&format!("retrying blob {d}")),
            "reports the retry of {d}: {}",
            r.stderr
        );
    }
    s.assert_cache_clean_of("sha256:none");
}

#[test]
fn a_manifest_with_wrong_bytes_is_refused_and_never_cached() {
    let s = setup();
    let top = s.reg.top("demo/cron", "1.0.0");
    // `pin` fetched it once already.
    let before = s.reg.hits(&top);
    s.reg.fault(&top, Fault::WrongBytes, None);
    let r = s.build(&[]);
    assert_eq!(r.code, EXIT_REGISTRY, "{}", r.stderr);
    assert!(r.stderr.contains(&top), "names the manifest: {}", r.stderr);
    assert!(
        r.stderr.contains("demo/cron"),
        "names the image: {}",
        r.stderr
    );
    assert!(r.stderr.contains("wrong or damaged data"), "{}", r.stderr);
    assert_eq!(s.reg.hits(&top) - before, 3, "bounded retries");
    assert_no_output(&s.out);
    s.assert_cache_clean_of(&top);
}

#[test]
fn credentials_go_to_the_registry_and_not_to_where_it_redirects() {
    // A registry with Basic auth that sends the web layer's downloads to
    // another host (here: another port), as registries send clients to a
    // storage backend's signed URL. The credentials must stay behind.
    let (user, password) = ("vendor", "redirect-s3cret");
    let reg = BadRegistry::start_with_auth(images(), user, password);
    let storage = BadRegistry::start(images());
    let vendor = Vendor::new(reg.addr());
    let dir = vendor.dir.path().join("app");
    let spec = fixtures::app::write_app("v1", reg.addr(), &dir).unwrap();
    let with_creds = |c: &mut std::process::Command| {
        c.env("BUNDLER_REGISTRY", reg.addr())
            .env("BUNDLER_REGISTRY_USERNAME", user)
            .env("BUNDLER_REGISTRY_PASSWORD", password);
    };
    let mut pin = vendor.bundler();
    with_creds(&mut pin);
    let r = capture(
        pin.args(["pin", "-q"])
            .arg(&spec)
            .args(["--insecure-registry", reg.addr()]),
    );
    assert_eq!(r.code, 0, "pin: {}", r.stderr);
    let web = reg.layers("demo/web", "1.0.0").last().unwrap().clone();
    reg.fault(&web, Fault::Redirect(storage.port()), None);

    let out = vendor.dir.path().join("demo.bundle");
    let mut build = vendor.bundler();
    with_creds(&mut build);
    let r = capture(
        build
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&vendor.key)
            .arg("-o")
            .arg(&out)
            .args(["--insecure-registry", reg.addr()]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains(password), "{}", r.stderr);

    let sent = reg.authorizations(&web);
    assert!(
        sent.last()
            .is_some_and(|a| a.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "the registry got the credentials: {sent:?}"
    );
    assert_eq!(
        storage.authorizations(&web),
        vec![None],
        "the redirect target got the blob request without credentials"
    );
}

#[test]
fn an_identity_token_is_exchanged_at_the_token_service_and_never_sent_itself() {
    // `auths.<registry>.identitytoken`, as `docker login` stores an OAuth
    // refresh token: exchanged at the token service the registry's Bearer
    // challenge names (grant_type=refresh_token), the access token sent.
    let refresh = "refresh-Tok3n-4bc";
    let reg = BadRegistry::start_with_refresh_token(images(), refresh);
    let vendor = Vendor::new(reg.addr());
    let spec = fixtures::app::write_app("v1", reg.addr(), &vendor.dir.path().join("app")).unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let config = |token: &str| {
        std::fs::write(
            cfg.path().join("config.json"),
            format!(
                r#"{{"auths":{{"{}":{{"identitytoken":"{token}"}}}}}}"#,
                reg.addr()
            ),
        )
        .unwrap();
    };
    let bundler = |vendor: &Vendor, args: &[&str]| {
        let mut c = vendor.bundler();
        c.env("DOCKER_CONFIG", cfg.path()).args(args);
        capture(c.args(["--insecure-registry", reg.addr()]))
    };
    // `bundler build SPEC --key KEY -o OUT` with the vendor's cache.
    let build = |vendor: &Vendor, out: &Path| {
        let args = [
            "build",
            spec.to_str().unwrap(),
            "--key",
            vendor.key.to_str().unwrap(),
        ];
        bundler(
            vendor,
            &[&args[..], &["-o", out.to_str().unwrap()]].concat(),
        )
    };
    config(refresh);
    let r = bundler(&vendor, &["pin", "-q", spec.to_str().unwrap()]);
    assert_eq!(r.code, 0, "pin: {}", r.stderr);
    let out = vendor.dir.path().join("demo.bundle");
    let r = build(&vendor, &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(out.exists());
    let web = reg.layers("demo/web", "1.0.0").last().unwrap().clone();
    let seen = reg.authorizations(&web);
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .flatten()
            .all(|a| a == "Bearer badreg-access-token"),
        "{seen:?}"
    );

    // A token the service refuses: exit 3, naming the registry and the
    // refusal, printing no token, writing no bundle.
    let wrong = "refresh-n0t-it";
    config(wrong);
    // A vendor with an empty cache, so that the build asks the registry.
    let fresh = Vendor::new(reg.addr());
    let out = fresh.dir.path().join("refused.bundle");
    let r = build(&fresh, &out);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(reg.addr()) && r.stderr.contains("refused the identity token"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(wrong) && !r.stdout.contains(wrong));
    assert!(!out.exists());
}
