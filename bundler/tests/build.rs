//! `bundler` against the real loopback registry, checked by independent
//! tools: minisign, skopeo, umoci and a real `docker load`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use fixtures::harness::{
    capture, capture_with_stdin, installer_verify, shared, target_bin, Dockerd, Vendor,
};

fn sha(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn extract(bundle: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -x -C '{}'",
            bundle.display(),
            into.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn same_inputs_give_byte_identical_bundles_and_a_warm_cache_pulls_nothing() {
    let v = Vendor::new(&shared().registry);
    let spec = v.app("v1");
    let build = |out: &str| v.build(&spec, &v.dir.path().join(out), &["--json"]);
    let a = build("a.bundle");
    assert_eq!(a.code, 0, "{}", a.stderr);
    let b = build("b.bundle");
    assert_eq!(b.code, 0, "{}", b.stderr);
    let (ja, jb): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&a.stdout).unwrap(),
        serde_json::from_str(&b.stdout).unwrap(),
    );
    assert!(ja["downloaded"].as_u64().unwrap() > 0);
    assert_eq!(jb["downloaded"], 0, "second build pulls nothing");
    assert_eq!(
        sha(&v.dir.path().join("a.bundle")),
        sha(&v.dir.path().join("b.bundle"))
    );
    // Shared layers are stored once: 3 images share the base layer.
    assert_eq!(ja["images"], 3);
    assert_eq!(
        ja["blobs"], 10,
        "3 manifests + 3 configs + 1 shared base + 3 own layers"
    );
}

#[test]
fn independent_tools_accept_the_bundle() {
    let v = Vendor::new(&shared().registry);
    let bundle = v.bundle("v1", &[]);
    let x = v.dir.path().join("x");
    extract(&bundle, &x);
    // minisign accepts our signature with our public key.
    let r = capture(
        Command::new("minisign")
            .args(["-V", "-m"])
            .arg(x.join("manifest.json"))
            .arg("-x")
            .arg(x.join("manifest.json.minisig"))
            .arg("-p")
            .arg(&v.public_key),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Trusted comment: name:demo version:1.0.0"),
        "{}",
        r.stdout
    );
    // skopeo and umoci read the OCI layout.
    let r = capture(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:demo/web:1.0.0", x.join("images").display())),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("\"Architecture\": \"amd64\""),
        "{}",
        r.stdout
    );
    let r = capture(
        Command::new("umoci")
            .args(["stat", "--image"])
            .arg(format!("{}:demo/web:1.0.0", x.join("images").display())),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A real docker load (20.10) reads the same tree as a docker-archive.
    let d = Dockerd::start();
    let r = capture(Command::new("sh").arg("-c").arg(format!(
        "tar -C '{}' -cf - . | DOCKER_HOST={} /usr/bin/docker load",
        x.join("images").display(),
        d.host
    )));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let images = d.image_list();
    assert_eq!(images.len(), 3, "{images:?}");
    assert!(
        images
            .iter()
            .any(|i| i.starts_with("demo/web:1.0.0 sha256:")),
        "{images:?}"
    );
}

#[test]
fn minisign_made_keys_sign_bundles() {
    let v = Vendor::new(&shared().registry);
    let key = v.dir.path().join("m.key");
    let public = v.dir.path().join("m.pub");
    let r = capture(
        Command::new("minisign")
            .args(["-G", "-W", "-s"])
            .arg(&key)
            .arg("-p")
            .arg(&public),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let spec = v.app("v1");
    let out = v.dir.path().join("m.bundle");
    let r = capture(
        v.bundler()
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&out)
            .args(["--insecure-registry", &v.registry]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = capture(
        v.bundler()
            .arg("verify")
            .arg(&out)
            .arg("--public-key")
            .arg(&public),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = installer_verify(&out, &public);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // And the other key does not verify it.
    let r = capture(
        v.bundler()
            .arg("verify")
            .arg(&out)
            .arg("--public-key")
            .arg(&v.public_key),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("which is not trusted"), "{}", r.stderr);
}

#[test]
fn encrypted_keys_need_their_password() {
    let dir = tempfile::tempdir().unwrap();
    let (s, p) = (dir.path().join("k.key"), dir.path().join("k.pub"));
    let bundler = || {
        let mut c = Command::new(target_bin("bundler"));
        c.stdin(std::process::Stdio::null());
        c
    };
    let r = capture(
        bundler()
            .env("BUNDLER_KEY_PASSWORD", "correct horse")
            .args(["keygen", "--secret-key"])
            .arg(&s)
            .arg("--public-key")
            .arg(&p),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("correct horse") && !r.stdout.contains("correct horse"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&s).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never overwritten.
    let r = capture(
        bundler()
            .env("BUNDLER_KEY_PASSWORD", "x")
            .args(["keygen", "--secret-key"])
            .arg(&s)
            .arg("--public-key")
            .arg(&p),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("already exists; refusing to overwrite a key file"),
        "{}",
        r.stderr
    );
    // minisign signs with it given the password on stdin, and our reader
    // decrypts it: sign a file with minisign, verify with our public key.
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"hello").unwrap();
    let r = capture_with_stdin(
        Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&s)
            .arg("-m")
            .arg(&msg),
        "correct horse\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = capture(
        Command::new("minisign")
            .args(["-V", "-m"])
            .arg(&msg)
            .arg("-p")
            .arg(&p),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn registry_with_auth_uses_docker_config_and_never_prints_the_password() {
    let s = shared();
    let v = Vendor::new(&s.auth_registry);
    let spec = fixtures::app::write_app("v1", &s.auth_registry, &v.dir.path().join("app")).unwrap();
    // Without credentials: a clear error naming the image, with a hint.
    let r = capture(
        v.bundler()
            .args(["pin"])
            .arg(&spec)
            .args(["--insecure-registry", &s.auth_registry]),
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("{}/demo/web:1.0.0", s.auth_registry)),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: log in with `docker login`"),
        "{}",
        r.stderr
    );
    // With a Docker config: pins and builds.
    let cfg = v.dir.path().join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    use base64::Engine as _;
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", s.auth.0, s.auth.1));
    std::fs::write(
        cfg.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
            s.auth_registry
        ),
    )
    .unwrap();
    let r = capture(
        v.bundler()
            .env("DOCKER_CONFIG", &cfg)
            .args(["pin"])
            .arg(&spec)
            .args(["--insecure-registry", &s.auth_registry]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = capture(
        v.bundler()
            .env("DOCKER_CONFIG", &cfg)
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&v.key)
            .arg("-o")
            .arg(v.dir.path().join("auth.bundle"))
            .args(["--insecure-registry", &s.auth_registry]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains(&s.auth.1) && !r.stdout.contains(&s.auth.1));
    // With env vars, and a wrong password: the error does not echo it.
    let r = capture(
        v.bundler()
            .env("BUNDLER_REGISTRY", &s.auth_registry)
            .env("BUNDLER_REGISTRY_USERNAME", &s.auth.0)
            .env("BUNDLER_REGISTRY_PASSWORD", "wrong-password-xyz")
            .env("BUNDLER_CACHE_DIR", v.dir.path().join("cold"))
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&v.key)
            .arg("-o")
            .arg(v.dir.path().join("x.bundle"))
            .args(["--insecure-registry", &s.auth_registry]),
    );
    assert_ne!(r.code, 0);
    assert!(!r.stderr.contains("wrong-password-xyz"), "{}", r.stderr);
    assert!(!v.dir.path().join("x.bundle").exists());
}

#[test]
fn unpinned_images_and_missing_compose_images_are_errors() {
    let v = Vendor::new(&shared().registry);
    let spec = fixtures::app::write_app("v1", &v.registry, &v.dir.path().join("app")).unwrap();
    let build = |spec: &Path| {
        capture(
            v.bundler()
                .arg("build")
                .arg(spec)
                .arg("--key")
                .arg(&v.key)
                .args(["--insecure-registry", &v.registry]),
        )
    };
    let r = build(&spec);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("is not pinned by digest; hint: run `bundler pin`"),
        "{}",
        r.stderr
    );
    // Pinned, but the compose file uses an image the spec does not carry,
    // and one service builds locally: both reported at once.
    let spec = v.app("v1");
    let compose = spec.parent().unwrap().join("docker-compose.yml");
    let mut text = std::fs::read_to_string(&compose).unwrap();
    text.push_str("  db:\n    image: postgres:16\n  builder:\n    build: .\n");
    std::fs::write(&compose, text).unwrap();
    let r = build(&spec);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "service db uses image docker.io/library/postgres:16, which is not in the bundle"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("service builder has `build:` and no image"),
        "{}",
        r.stderr
    );
}

#[test]
fn multi_arch_index_resolves_requested_platforms() {
    let v = Vendor::new(&shared().registry);
    let dir = v.dir.path().join("multi");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yml"),
        "services:\n  app:\n    image: demo/multi:1.0.0\n",
    )
    .unwrap();
    let spec = dir.join("bundle.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: multi\nversion: 1.0.0\nimages:\n  - ref: {}/demo/multi:1.0.0\n    name: demo/multi:1.0.0\ncompose:\n  project: multi\n  files: [compose.yml]\nfiles:\n  - src: compose.yml\n    dest: compose.yml\n",
            v.registry
        ),
    )
    .unwrap();
    let r = capture(
        v.bundler()
            .arg("pin")
            .arg(&spec)
            .args(["--insecure-registry", &v.registry]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = dir.join("multi.bundle");
    let r = v.build(&spec, &out, &["--platform", "linux/amd64,linux/arm64"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = capture(v.bundler().args(["inspect", "--json"]).arg(&out));
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let plats: Vec<&str> = j["manifest"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"].as_str().unwrap())
        .collect();
    assert_eq!(plats, vec!["linux/amd64", "linux/arm64"]);
    let r = v.build(
        &spec,
        &dir.join("s390x.bundle"),
        &["--platform", "linux/s390x"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("image {}/demo/multi:1.0.0@sha256:", v.registry)),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "has no manifest for platform linux/s390x (it has: linux/amd64, linux/arm64)"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn docker_media_types_and_gzip_work() {
    // demo/worker is pushed with Docker v2 schema 2 media types.
    let v = Vendor::new(&shared().registry);
    let out = v.bundle("v1", &["--compression", "gzip"]);
    let head = std::fs::read(&out).unwrap();
    assert_eq!(&head[..2], &[0x1f, 0x8b]);
    let r = capture(v.bundler().args(["inspect", "--json"]).arg(&out));
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let worker = j["manifest"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "demo/worker:1.0.0")
        .unwrap()
        .clone();
    assert_eq!(
        worker["manifest"]["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let r = installer_verify(&out, &v.public_key);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn an_uncompressed_bundle_is_a_plain_tar_that_tar_lists_and_the_installer_verifies() {
    let v = Vendor::new(&shared().registry);
    let out = v.bundle("v1", &["--compression", "none"]);
    let raw = std::fs::read(&out).unwrap();
    assert_eq!(&raw[257..262], b"ustar");
    let listed = capture(Command::new("tar").arg("-tf").arg(&out));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let names: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(names[..2], ["manifest.json", "manifest.json.minisig"]);
    assert!(names.iter().any(|n| n.starts_with("images/blobs/sha256/")));
    let r = capture(v.bundler().args(["inspect", "--json"]).arg(&out));
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["compression"], "none", "{}", r.stdout);
    let r = installer_verify(&out, &v.public_key);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The same bundle zstd'd holds the same tar.
    let packed = v.bundle("v1", &[]);
    let tar = zstd::decode_all(std::fs::File::open(&packed).unwrap()).unwrap();
    assert!(tar == raw, "the plain bundle is not the zstd one's tar");

    let leveled = v.dir.path().join("leveled.bundle");
    let r = v.build(
        &v.app("v1"),
        &leveled,
        &["--compression", "none", "--level", "3"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--level 3 does not apply: --compression none takes no level"),
        "{}",
        r.stderr
    );
    assert!(!leveled.exists());
}

#[test]
fn a_damaged_cache_blob_fails_the_build_and_leaves_no_output() {
    let v = Vendor::new(&shared().registry);
    let first = v.bundle("v1", &[]);
    assert!(first.exists());
    // Damage one cached layer in place.
    let blobs = v.dir.path().join("cache/blobs/sha256");
    let victim = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut b = std::fs::read(&victim).unwrap();
    b[100] ^= 1;
    std::fs::write(&victim, b).unwrap();
    let spec = v.app("v1");
    let out = v.dir.path().join("second.bundle");
    let r = v.build(&spec, &out, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("is damaged") && r.stderr.contains("removed from the cache"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "no file under the final name");
    let leftovers: Vec<_> = std::fs::read_dir(v.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".bundler-partial")
        })
        .collect();
    assert!(leftovers.is_empty());
    assert!(!victim.exists(), "the damaged blob left the cache");
    // The next build fetches it again and succeeds.
    let r = v.build(&spec, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn https_registries_need_their_ca_and_plain_http_needs_insecure_registry() {
    use fixtures::harness::{images, push, Registry};
    let reg = Registry::start_tls();
    let v1: Vec<_> = images()
        .iter()
        .filter(|i| i.tag == "1.0.0" && i.repo != "demo/multi")
        .cloned()
        .collect();
    push(&v1, &reg.addr, None);
    let v = Vendor::new(&reg.addr);
    let spec = fixtures::app::write_app("v1", &reg.addr, &v.dir.path().join("app")).unwrap();
    let ca = reg.ca_cert();
    let r = capture(v.bundler().arg("pin").arg(&spec).arg("--ca-cert").arg(&ca));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let build = |extra: &[&std::ffi::OsStr], out: &str| {
        capture(
            v.bundler()
                .arg("build")
                .arg(&spec)
                .arg("--key")
                .arg(&v.key)
                .arg("-o")
                .arg(v.dir.path().join(out))
                .args(extra),
        )
    };
    // Without the CA the certificate is not trusted.
    let r = build(&[], "no-ca.bundle");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("image {}/demo/", reg.addr)),
        "{}",
        r.stderr
    );
    assert!(!v.dir.path().join("no-ca.bundle").exists());
    // With it, the build works over HTTPS.
    let r = build(&["--ca-cert".as_ref(), ca.as_os_str()], "tls.bundle");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A plain-HTTP registry is reached only when named with --insecure-registry.
    let plain = Vendor::new(&shared().registry);
    let spec = plain.app("v1");
    let r = capture(
        plain
            .bundler()
            .arg("build")
            .arg(&spec)
            .arg("--key")
            .arg(&plain.key)
            .arg("-o")
            .arg(plain.dir.path().join("x.bundle")),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("for a plain-HTTP registry pass --insecure-registry HOST"),
        "{}",
        r.stderr
    );
}

#[test]
fn links_planted_at_the_outputs_are_refused_and_never_written_through() {
    let v = Vendor::new(&shared().registry);
    let spec = v.app("v1");
    let victim = v.dir.path().join("victim");
    std::fs::write(&victim, b"not the bundler's\n").unwrap();
    // The bundle's path, a split part's path, and the spec `pin` rewrites.
    let out = v.dir.path().join("linked.bundle");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let r = v.build(&spec, &out, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("linked.bundle is a symbolic link, not a regular file; refusing to follow or replace it"),
        "{}",
        r.stderr
    );
    let split = v.dir.path().join("split.bundle");
    std::os::unix::fs::symlink(&victim, v.dir.path().join("split.bundle.part-001-of-001")).unwrap();
    let r = v.build(&spec, &split, &["--split-size", "1Gi"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("split.bundle.part-001-of-001 is a symbolic link"),
        "{}",
        r.stderr
    );
    let linked_spec = v.dir.path().join("linked.yaml");
    std::os::unix::fs::symlink(&victim, &linked_spec).unwrap();
    let r = capture(
        v.bundler()
            .args(["pin", "-q"])
            .arg(&spec)
            .arg("-o")
            .arg(&linked_spec)
            .args(["--insecure-registry", &v.registry]),
    );
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("is a symbolic link"), "{}", r.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"not the bundler's\n");
    assert!(std::fs::symlink_metadata(&out)
        .unwrap()
        .file_type()
        .is_symlink());
}
