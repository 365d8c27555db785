//! End to end on a real dockerd: install, upgrade, automatic rollback,
//! manual rollback, refusal of a tampered bundle. Each test runs its own
//! dockerd, so image lists and compose projects never mix.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fixtures::harness::{
    append_to_spec, capture, docker26_compose, shared, tree_hash, Host, Variant, Vendor,
};

fn lifecycle(variant: Variant, compose: Option<&'static str>) {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2, v3) = (
        vendor.bundle("v1", &[]),
        vendor.bundle("v2", &[]),
        vendor.bundle("v3", &[]),
    );
    let host = Host::on(variant, compose);
    let dir = host.install_dir();
    let port = format!("APP_PORT={}", host.port);

    // The first install needs the vendor's key.
    let r = host.install(&v1, &["--set", &port]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("has no trusted key yet; hint: pass --public-key"),
        "{}",
        r.stderr
    );

    let pk = vendor.public_key.to_str().unwrap();
    let r = host.install(&v1, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");

    // The operator edits .env and adds data.
    let mut env = std::fs::read_to_string(dir.join(".env")).unwrap();
    env.push_str("# tuned by ops\nLOG_LEVEL=debug\n");
    std::fs::write(dir.join(".env"), &env).unwrap();
    std::fs::write(dir.join("data/customer.db"), b"precious rows").unwrap();
    std::fs::write(dir.join("docker-compose.override.yml.disabled"), b"local").unwrap();

    // v2 needs ADMIN_EMAIL: refused, nothing changed.
    let before = tree_hash(&dir);
    let r = host.install(&v2, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "required setting ADMIN_EMAIL is missing from .env: Where the app sends alerts"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(tree_hash(&dir), before);
    assert_eq!(host.health(), "ok 1.0.0\n");

    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
    let env2 = std::fs::read_to_string(dir.join(".env")).unwrap();
    assert!(
        env2.starts_with(&env),
        "existing .env content is kept byte for byte"
    );
    let added: Vec<&str> = env2[env.len()..].lines().collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0], "ADMIN_EMAIL=ops@example.com");
    assert!(added[1].starts_with("SIGNING_KEY=") && added[1].len() == "SIGNING_KEY=".len() + 64);
    let secret = &added[1]["SIGNING_KEY=".len()..];
    assert!(
        !r.stderr.contains(secret) && !r.stdout.contains(secret),
        "the generated secret is never printed"
    );
    assert_eq!(
        std::fs::read(dir.join("data/customer.db")).unwrap(),
        b"precious rows"
    );
    assert_eq!(
        std::fs::read(dir.join("docker-compose.override.yml.disabled")).unwrap(),
        b"local"
    );
    assert!(
        r.stderr
            .contains("SIGNING_KEY was generated and decrypts stored data: back up .env off-host"),
        "{}",
        r.stderr
    );
    let backups: Vec<_> = std::fs::read_dir(dir.join("backups"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(backups.len(), 1);
    assert!(backups[0]
        .file_name()
        .to_string_lossy()
        .starts_with("1.0.0-to-2.0.0-"));
    assert!(backups[0].path().join("data.tar").is_file());
    // The web container runs the v2 image.
    let web = host
        .docker
        .docker()
        .args([
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.service=web",
        ])
        .output()
        .unwrap();
    let web = String::from_utf8(web.stdout).unwrap();
    let id = host
        .docker
        .docker()
        .args(["inspect", "--format", "{{.Image}}", web.trim()])
        .output()
        .unwrap();
    let want = host
        .docker
        .docker()
        .args(["image", "inspect", "--format", "{{.Id}}", "demo/web:2.0.0"])
        .output()
        .unwrap();
    assert_eq!(id.stdout, want.stdout);

    // Broken v3: rolled back to v2 automatically, exit 4.
    let env_before_v3 = std::fs::read(dir.join(".env")).unwrap();
    let r = host.install(&v3, &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("install of demo 3.0.0 failed: health check failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("rolled back to demo 2.0.0, running and healthy"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("last log lines of demo") && r.stderr.contains("web"),
        "{}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 2.0.0\n");
    assert_eq!(std::fs::read(dir.join(".env")).unwrap(), env_before_v3);
    assert!(std::fs::read_to_string(dir.join("docker-compose.yml"))
        .unwrap()
        .contains("WEB_TAG:-2.0.0"));

    // A downgrade is refused without --allow-downgrade.
    let r = host.install(&v1, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("downgrades are refused because migrations are forward-only"),
        "{}",
        r.stderr
    );

    // Manual rollback to v1.
    let mut c = host.installer();
    c.args(["rollback", "--dir"]).arg(&dir);
    if let Some(comp) = compose {
        c.args(["--compose", comp]);
    }
    let r = capture(&mut c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("migrations are forward-only"),
        "{}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 1.0.0\n");
    assert_eq!(
        std::fs::read(dir.join("data/customer.db")).unwrap(),
        b"precious rows"
    );

    // The engine, its version and its store, as status names them; on the
    // containerd store an image's ID is its pinned manifest digest, which
    // RepoDigests lists (so compose may name image@sha256:…).
    let store = if variant.containerd_store() {
        "containerd image store"
    } else {
        "classic image store"
    };
    let status = host.run(&["status"], &[]);
    assert!(status.stdout.contains(store), "{}", status.stdout);
    let version = host
        .docker
        .output(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!version.is_empty());
    assert!(
        status.stdout.contains(&version),
        "{version}: {}",
        status.stdout
    );
    let out = host
        .docker
        .docker()
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .RepoDigests}}",
            "demo/web:1.0.0",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (id, digests) = text.trim().split_once(' ').unwrap();
    if variant.containerd_store() {
        assert!(digests.contains(&format!("demo/web@{id}")), "{text}");
    }

    let r = capture(
        host.installer()
            .args(["status", "--json", "--dir"])
            .arg(&dir),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["current"], "1.0.0");
    assert_eq!(v["previous"], "2.0.0");
    let outcomes: Vec<(String, String)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["to"].as_str().unwrap().to_owned(),
                h["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("1.0.0".into(), "ok".into()),
            ("2.0.0".into(), "ok".into()),
            ("3.0.0".into(), "rolled back".into()),
            ("1.0.0".into(), "ok".into()),
        ]
    );

    // A tampered bundle is refused; nothing changes on disk or in the engine.
    let mut bytes = std::fs::read(&v2).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    let bad = host.dir.path().join("tampered.bundle");
    std::fs::write(&bad, bytes).unwrap();
    let (tree, images) = (tree_hash(&dir), host.docker.image_list());
    let r = host.install(&bad, &["--allow-downgrade"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(tree_hash(&dir), tree);
    assert_eq!(host.docker.image_list(), images);
    assert_eq!(host.health(), "ok 1.0.0\n");
}

#[test]
fn lifecycle_with_compose_v2() {
    lifecycle(Variant::Docker20, Some(Variant::Docker20.compose_plugin()));
}

#[test]
fn lifecycle_with_compose_v1() {
    lifecycle(Variant::Docker20, Some("/usr/bin/docker-compose"));
}

/// Docker 26.1 with the classic store (overlay2), and Debian trixie's
/// compose 2.26: a v2 binary under the v1 name, told apart by its version
/// output (it gets v2's `--pull never`).
#[test]
fn lifecycle_on_docker_26_with_compose_2_26_under_the_v1_name() {
    lifecycle(Variant::Docker26, Some(docker26_compose()));
}

/// Docker 26.1 with the containerd image store (the default of Docker 29 and
/// Docker Desktop): image IDs are manifest digests and loads are OCI
/// archives.
#[test]
fn lifecycle_on_docker_26_with_the_containerd_store() {
    lifecycle(
        Variant::Docker26Containerd,
        Some(Variant::Docker26Containerd.compose_plugin()),
    );
}

/// The newest Docker Debian ships (testing's: 28.5 with containerd 2.1
/// today) with overlay2, the store Docker 28 still sets up by default,
/// driven by its own CLI and the compose v2 plugin.
#[test]
fn lifecycle_on_debian_testings_docker_with_overlay2() {
    let v = Variant::DockerTesting;
    lifecycle(v, Some(v.compose_plugin()));
}

/// The same with the containerd store.
#[test]
fn lifecycle_on_debian_testings_docker_with_the_containerd_store() {
    let v = Variant::DockerTestingContainerd;
    lifecycle(v, Some(v.compose_plugin()));
}

#[test]
fn operator_edits_to_managed_files_are_kept() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2) = (vendor.bundle("v1", &[]), vendor.bundle("v2", &[]));
    let host = Host::new(None);
    let dir = host.install_dir();
    let pk = vendor.public_key.to_str().unwrap();
    let port = format!("APP_PORT={}", host.port);
    let r = host.install(&v1, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut hook = std::fs::read_to_string(dir.join("hooks/restore.sh")).unwrap();
    hook.push_str("# site-specific\n");
    std::fs::write(dir.join("hooks/restore.sh"), &hook).unwrap();
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("hooks/restore.sh")).unwrap(),
        hook
    );
    assert!(dir.join("hooks/restore.sh.new").is_file());
    assert!(r.stderr.contains("hooks/restore.sh was edited since it was installed: your version is kept, 2.0.0's is in hooks/restore.sh.new"), "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
}

#[test]
fn upgrade_from_is_enforced_and_rollback_restores_the_backup() {
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let v2 = vendor.bundle("v2", &[]);
    // A 2.0.0 whose migrations need 1.5.0 to have run first.
    let spec = vendor.app("v2");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("upgrade_from: \">=1.0.0\""));
    std::fs::write(&spec, text.replace(">=1.0.0", ">=1.5.0")).unwrap();
    let needs_15 = vendor.dir.path().join("needs-1.5.bundle");
    let r = vendor.build(&spec, &needs_15, &["-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let host = Host::new(None);
    let dir = host.install_dir();
    let pk = vendor.public_key.to_str().unwrap();
    let port = format!("APP_PORT={}", host.port);
    let r = host.install(&v1, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(dir.join("data/customer.db"), b"rows written by 1.0.0").unwrap();

    let before = tree_hash(&dir);
    let r = host.install(&needs_15, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "demo 2.0.0 upgrades only from versions >=1.5.0, and 1.0.0 is installed; hint: first install 1.5.0"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(tree_hash(&dir), before, "a refused upgrade changes nothing");
    assert_eq!(host.health(), "ok 1.0.0\n");

    // The real upgrade backs up first; then 2.0.0 "migrates" the data.
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("pre_upgrade hook wrote"), "{}", r.stderr);
    std::fs::write(dir.join("data/customer.db"), b"rows migrated by 2.0.0").unwrap();

    // Rolling back without --restore-data keeps the migrated data and says so.
    let r = host.run(&["rollback"], &["--restore-data"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("migrations are forward-only")
            && r.stderr.contains("restoring the matching backup")
            && r.stderr.contains("restored data from"),
        "{}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 1.0.0\n");
    assert_eq!(
        std::fs::read(dir.join("data/customer.db")).unwrap(),
        b"rows written by 1.0.0",
        "the backup taken before the upgrade is back"
    );
    // The restore hook's output is logged beside the backup it used.
    let backups: Vec<_> = std::fs::read_dir(dir.join("backups"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(backups.len(), 1);
    let log = std::fs::read_to_string(backups[0].path().join("restore.log")).unwrap();
    assert!(log.contains("restored data from"), "{log}");

    // With nothing left to roll back to, rollback says so.
    let r = host.run(&["rollback"], &["--restore-data"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn a_bundled_newer_installer_replaces_itself_and_runs_the_install() {
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let host = Host::new(None);
    let dir = host.install_dir();
    let log = host.dir.path().join("reexec.log");
    // The "new installer": a wrapper that records being run, then runs the
    // real one (the same binary cannot report a newer version).
    let wrapper = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        log.display(),
        fixtures::harness::target_bin("installer").display()
    );
    let spec = vendor.app("v2");
    std::fs::write(spec.with_file_name("installer-99"), &wrapper).unwrap();
    append_to_spec(
        &spec,
        "installer:\n  src: installer-99\n  version: 99.0.0\n",
    );
    let v2 = vendor.dir.path().join("with-installer.bundle");
    let r = vendor.build(&spec, &v2, &["-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let pk = vendor.public_key.to_str().unwrap();
    let port = format!("APP_PORT={}", host.port);
    let r = host.install(&v1, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A bundle whose installer bytes do not match the manifest is refused.
    let raw = zstd::decode_all(std::fs::File::open(&v2).unwrap()).unwrap();
    let at = raw
        .windows(wrapper.len())
        .position(|w| w == wrapper.as_bytes())
        .expect("the wrapper is in the archive");
    let mut forged = raw.clone();
    forged[at + 3] ^= 0x20;
    let bad = host.dir.path().join("bad-installer.bundle");
    std::fs::write(&bad, zstd::encode_all(&forged[..], 3).unwrap()).unwrap();
    let before = tree_hash(&dir);
    let r = host.install(&bad, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("entry files/bin/installer: sha256 mismatch"),
        "{}",
        r.stderr
    );
    assert_eq!(tree_hash(&dir), before);
    assert!(!log.exists());

    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=a@b.c"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = format!(
        "updated the installer: {} is now 99.0.0 (this one is 0.1.0); continuing with it",
        std::fs::canonicalize(&dir)
            .unwrap()
            .join("bin/installer")
            .display()
    );
    assert_eq!(r.stderr.matches(&line).count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("installed demo 2.0.0 (from 1.0.0)"),
        "{}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 2.0.0\n");
    // The new binary ran once, with the same arguments.
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 1, "{ran}");
    assert!(ran.starts_with("install "), "{ran}");
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(dir.join("bin/installer")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_to_string(dir.join("bin/installer")).unwrap(),
        wrapper
    );

    // The same bundle again: the installer in place is already that one.
    let r = host.install(&v2, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A release of the demo whose `demo/web:1.0.0` (the name compose uses) is
/// the content of the fixture image `demo/web:<content>`: the same tag
/// carrying new content, as vendors who retag do.
fn retagged(vendor: &Vendor, version: &str, content: &str) -> std::path::PathBuf {
    let spec = vendor.app("v1");
    let text = std::fs::read_to_string(&spec).unwrap();
    let web = text
        .lines()
        .find(|l| l.contains("ref: ") && l.contains("/demo/web:1.0.0@"))
        .unwrap()
        .to_owned();
    let unpinned = web
        .split('@')
        .next()
        .unwrap()
        .replace(":1.0.0", &format!(":{content}"));
    let text = text
        .replace(&web, &unpinned)
        .replace("version: 1.0.0", &format!("version: {version}"));
    let spec = vendor.dir.path().join(format!("retagged-{version}.yaml"));
    std::fs::write(&spec, text).unwrap();
    std::fs::copy(
        vendor.dir.path().join("app-v1/docker-compose.yml"),
        vendor.dir.path().join("docker-compose.yml"),
    )
    .unwrap();
    let hooks = vendor.dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for h in ["backup.sh", "restore.sh"] {
        std::fs::copy(
            vendor.dir.path().join("app-v1/hooks").join(h),
            hooks.join(h),
        )
        .unwrap();
    }
    let r = capture(
        vendor
            .bundler()
            .args(["pin", "-q"])
            .arg(&spec)
            .args(["--insecure-registry", &vendor.registry]),
    );
    assert_eq!(r.code, 0, "pin: {}", r.stderr);
    let out = vendor.dir.path().join(format!("retagged-{version}.bundle"));
    let r = vendor.build(&spec, &out, &["-q"]);
    assert_eq!(r.code, 0, "build: {}", r.stderr);
    out
}

/// The image ID the web container runs, and the ID the tag points at.
fn web_ids(host: &Host) -> (String, String) {
    (
        host.docker.service_image("web"),
        host.docker.image_id("demo/web:1.0.0"),
    )
}

/// Upgrading to new content under the same tag, failing to newer content
/// under it, and rolling back: each time the tag points at the release's
/// image and the container runs it.
fn same_tag_new_content(variant: Variant) {
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let (v11, v12) = (
        retagged(&vendor, "1.1.0", "2.0.0"),
        retagged(&vendor, "1.2.0", "3.0.0"),
    );
    let host = Host::on(variant, Some(variant.compose_plugin()));
    host.install_first(&vendor, &v1);
    assert_eq!(host.health(), "ok 1.0.0\n");
    let (runs1, tag1) = web_ids(&host);
    assert_eq!(runs1, tag1);

    let r = host.install(&v11, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        host.health(),
        "ok 2.0.0\n",
        "the same tag runs the new content"
    );
    let (runs11, tag11) = web_ids(&host);
    assert_eq!(runs11, tag11);
    assert_ne!(tag11, tag1);

    // Broken content under the same tag: rolled back, the tag points at
    // 1.1.0's image again.
    let r = host.install(&v12, &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
    assert_eq!(web_ids(&host), (tag11.clone(), tag11));

    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");
    assert_eq!(web_ids(&host), (tag1.clone(), tag1));
}

#[test]
fn the_same_tag_with_new_content_upgrades_and_rolls_back() {
    same_tag_new_content(Variant::Docker20);
}

#[test]
fn the_same_tag_with_new_content_on_docker_26() {
    same_tag_new_content(Variant::Docker26);
}

#[test]
fn the_same_tag_with_new_content_on_the_containerd_store() {
    same_tag_new_content(Variant::Docker26Containerd);
}
