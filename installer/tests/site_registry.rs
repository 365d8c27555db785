//! Many hosts through the site's own registry: `installer push` seeds
//! Debian's docker-registry (TLS with a throwaway CA, htpasswd), and two
//! private dockerds install from it with `install --registry`, pulling by
//! the digests pinned in the signed manifest.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::harness::{
    capture, capture_with_stdin, shared, target_bin, Host, Ran, Registry, Variant, Vendor,
};
use installer::bundle;
use manifest_schema::Manifest;
use sha2::{Digest as _, Sha256};

const USER: &str = "site";
const PASSWORD: &str = "s1te-Pa55";

/// The site: its registry, the CA the engines trust for it
/// (`/etc/docker/certs.d/HOST:PORT/ca.crt`, removed on drop) and a Docker
/// config holding its login, as `docker login` writes it.
struct Site {
    reg: Registry,
    config: tempfile::TempDir,
    certs_d: PathBuf,
}

impl Site {
    fn start() -> Site {
        let reg = Registry::start_site(USER, PASSWORD);
        let certs_d = PathBuf::from("/etc/docker/certs.d").join(&reg.addr);
        std::fs::create_dir_all(&certs_d).unwrap();
        std::fs::copy(reg.ca_cert(), certs_d.join("ca.crt")).unwrap();
        let config = tempfile::tempdir().unwrap();
        let login = bundle_format::dockerconfig::Credentials::password(USER, PASSWORD);
        let auth = login.basic().trim_start_matches("Basic ").to_owned();
        std::fs::write(
            config.path().join("config.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
        )
        .unwrap();
        Site {
            reg,
            config,
            certs_d,
        }
    }

    fn with_prefix(&self) -> String {
        format!("{}/acme", self.reg.addr)
    }

    /// `installer push BUNDLE --registry ADDR/acme --ca-cert CA ARGS`,
    /// with the site's Docker config and `stdin`.
    fn push(
        &self,
        bundle: &Path,
        key: &Path,
        env: &[(&str, &str)],
        args: &[&str],
        stdin: &str,
    ) -> Ran {
        let mut c = Command::new(target_bin("installer"));
        c.env("DOCKER_CONFIG", self.config.path())
            .envs(env.iter().copied())
            .arg("push")
            .arg(bundle)
            .args(["--registry", &self.with_prefix()])
            .arg("--public-key")
            .arg(key)
            .arg("--ca-cert")
            .arg(self.reg.ca_cert())
            .args(args);
        capture_with_stdin(&mut c, stdin)
    }

    /// Blob upload requests the registry has served so far.
    fn blob_uploads(&self) -> usize {
        self.reg
            .requests()
            .iter()
            .filter(|r| r.contains("/blobs/uploads/") && !r.starts_with("HEAD"))
            .count()
    }

    /// The raw manifest `REPO:TAG` points at, read with skopeo (an
    /// independent client), or None.
    fn manifest(&self, repo_tag: &str) -> Option<Vec<u8>> {
        let certs = tempfile::tempdir().unwrap();
        std::fs::copy(self.reg.ca_cert(), certs.path().join("ca.crt")).unwrap();
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--creds", &format!("{USER}:{PASSWORD}")])
            .arg("--cert-dir")
            .arg(certs.path())
            .arg(format!("docker://{}/acme/{repo_tag}", self.reg.addr))
            .output()
            .unwrap();
        out.status.success().then_some(out.stdout)
    }

    /// The install command's environment: the site's login for the engine.
    fn env(&self) -> [(&str, &str); 1] {
        [("DOCKER_CONFIG", self.config.path().to_str().unwrap())]
    }

    /// `host`'s first install of `bundle` from the site: the vendor's key,
    /// the host's port, `--registry ADDR/acme`.
    fn install_first(&self, host: &Host, bundle: &Path, key: &Path) -> Ran {
        let port = format!("APP_PORT={}", host.port);
        let registry = self.with_prefix();
        let args = [
            "--public-key",
            key.to_str().unwrap(),
            "--set",
            &port,
            "--registry",
            &registry,
        ];
        host.install_env(bundle, &self.env(), &args)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.certs_d);
    }
}

fn manifest_of(b: &Path, key: &Path) -> Manifest {
    let key =
        installer::minisign::PublicKey::parse(&std::fs::read_to_string(key).unwrap()).unwrap();
    let input = installer::parts::open(&[b.to_owned()], &[key]).unwrap();
    bundle::read_head_unverified(input).unwrap().manifest
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// `repo:tag` of an image under the site's prefix.
fn site_name(name: &str) -> String {
    let r = manifest_schema::ImageRef::parse(name).unwrap();
    format!("{}:{}", r.repository, r.tag.unwrap())
}

fn json(r: &Ran) -> serde_json::Value {
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// Where a split build of `version` went: `DIR/demo-V.bundle.part-*` and
/// its index.
fn split_build(vendor: &Vendor, version: &str) -> (tempfile::TempDir, PathBuf) {
    let media = tempfile::tempdir().unwrap();
    let out = media.path().join(format!("demo-{version}.bundle"));
    let spec = vendor.app(version);
    let r = vendor.build(&spec, &out, &["--split-size", "600Ki"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let index = media
        .path()
        .join(format!("demo-{version}.bundle.parts.json"));
    assert!(index.exists());
    (media, index)
}

#[test]
fn two_hosts_install_from_the_site_registry_by_pinned_digest() {
    let site = Site::start();
    let vendor = Vendor::new(&shared().registry);
    let (media, index) = split_build(&vendor, "v1");
    let pk = vendor.public_key.clone();
    let m1 = manifest_of(&index, &pk);

    // The site already holds another manifest under the first image's tag.
    let (first, other) = (
        &m1.images[0],
        m1.images
            .iter()
            .find(|i| i.manifest.digest != m1.images[0].manifest.digest)
            .unwrap(),
    );
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(site.reg.ca_cert(), certs.path().join("ca.crt")).unwrap();
    let r = capture(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .args(["--dest-creds", &format!("{USER}:{PASSWORD}")])
            .arg("--dest-cert-dir")
            .arg(certs.path())
            .arg({
                let r = manifest_schema::ImageRef::parse(&other.source).unwrap();
                format!(
                    "docker://{}/{}@{}",
                    r.registry, r.repository, other.manifest.digest
                )
            })
            .arg(format!(
                "docker://{}/acme/{}",
                site.reg.addr,
                site_name(&first.name)
            )),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(
        sha256(&site.manifest(&site_name(&first.name)).unwrap()),
        first.manifest.digest.to_string()
    );

    // Push: credentials from the Docker config, the CA given.
    let done = json(&site.push(media.path(), &pk, &[], &["--json"], ""));
    assert!(done["blobs_uploaded"].as_u64().unwrap() > 0, "{done}");
    // A blob two repositories need is sent once and mounted into the other.
    let mut users: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for img in &m1.images {
        for d in std::iter::once(&img.config).chain(&img.layers) {
            users
                .entry(d.digest.to_string())
                .or_default()
                .insert(site_name(&img.name).split(':').next().unwrap().to_owned());
        }
    }
    let shared_blobs = users.values().filter(|r| r.len() > 1).count();
    assert!(shared_blobs > 0, "the fixture images share a base");
    assert!(done["blobs_mounted"].as_u64().unwrap() > 0, "{done}");
    assert!(
        done["blobs_uploaded"].as_u64().unwrap() as usize <= users.len(),
        "no blob sent twice: {done}"
    );
    for img in &m1.images {
        let raw = site.manifest(&site_name(&img.name)).expect("tag set");
        assert_eq!(
            sha256(&raw),
            img.manifest.digest.to_string(),
            "{}: byte-identical manifest",
            img.name
        );
    }

    // A re-push of the unchanged bundle sends no blob.
    let before = site.blob_uploads();
    let again = json(&site.push(media.path(), &pk, &[], &["--json"], ""));
    assert_eq!(
        site.blob_uploads(),
        before,
        "no upload request the second time"
    );
    assert_eq!(again["blobs_uploaded"], 0, "{again}");
    assert_eq!(again["bytes_uploaded"], 0, "{again}");
    assert_eq!(again["manifests_pushed"], 0, "{again}");

    // Host A (Docker 20.10, classic store) installs from the whole split
    // bundle; hosts B and C (Docker 26 and Debian testing's, containerd
    // store) have only its first part.
    let only_first = tempfile::tempdir().unwrap();
    let mut part1 = None;
    for e in std::fs::read_dir(media.path()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.contains(".parts.json") || n.contains(".part-001-of-") {
            std::fs::copy(e.path(), only_first.path().join(&n)).unwrap();
        }
        if n.contains(".part-001-of-") {
            part1 = Some(only_first.path().join(&n));
        }
        assert!(
            !n.contains(".part-001-of-001"),
            "the bundle must span several parts"
        );
    }
    let part1 = part1.unwrap();
    for (variant, bundle) in [
        (Variant::Docker20, index.clone()),
        (Variant::Docker26Containerd, part1.clone()),
        (Variant::DockerTestingContainerd, part1.clone()),
    ] {
        let host = Host::on(variant, None);
        let r = site.install_first(&host, &bundle, &pk);
        assert_eq!(r.code, 0, "{variant:?}: {}", r.stderr);
        assert!(
            host.health().contains("1.0.0"),
            "{variant:?}: {}",
            host.health()
        );
        let web = m1.images.iter().find(|i| i.name.contains("web")).unwrap();
        let want = if variant.containerd_store() {
            &web.manifest.digest
        } else {
            &web.config.digest
        };
        assert_eq!(
            host.docker.service_image("web"),
            want.to_string(),
            "{variant:?}: the container runs the pinned image"
        );
        assert_eq!(host.docker.image_id(&web.name), want.to_string());
        // No image bytes came from the bundle.
        let blobs = host.install_dir().join(".installer/blobs/sha256");
        let kept = std::fs::read_dir(&blobs).map(|rd| rd.count()).unwrap_or(0);
        assert_eq!(kept, 0, "{variant:?}: no blob kept from the bundle");
    }
}

#[test]
fn upgrade_and_rollback_from_the_site_registry() {
    let site = Site::start();
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let v2 = vendor.bundle("v2", &[]);
    let pk = vendor.public_key.clone();
    for b in [&v1, &v2] {
        let r = site.push(b, &pk, &[], &[], "");
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let host = Host::on(Variant::Docker20, None);
    let reg = site.with_prefix();
    let r = site.install_first(&host, &v1, &pk);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = host.install_env(
        &v2,
        &site.env(),
        &["--registry", &reg, "--set", "ADMIN_EMAIL=ops@example.com"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(host.health().contains("2.0.0"), "{}", host.health());
    let m1 = manifest_of(&v1, &pk);
    let web1 = m1.images.iter().find(|i| i.name.contains("web")).unwrap();
    // The engine no longer has v1's web image: rollback pulls it again
    // from the registry recorded with the release.
    let r = host
        .docker
        .docker()
        .args(["rmi", "-f", &web1.name, &web1.config.digest.to_string()])
        .output()
        .unwrap();
    assert!(r.status.success() || host.docker.image_id(&web1.name).is_empty());
    let mut c = host.installer();
    c.env("DOCKER_CONFIG", site.config.path())
        .args(["rollback", "--dir"])
        .arg(host.install_dir());
    let r = capture(&mut c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("pulling"), "{}", r.stderr);
    assert!(host.health().contains("1.0.0"), "{}", host.health());
    assert_eq!(
        host.docker.service_image("web"),
        web1.config.digest.to_string()
    );
}

#[test]
fn wrong_credentials_an_interrupted_push_and_a_tampered_pull() {
    let site = Site::start();
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let pk = vendor.public_key.clone();
    let m1 = manifest_of(&v1, &pk);

    // Wrong password on stdin: exit 3, the registry named, no secret shown.
    let wrong = "hunter2-not-it";
    let r = site.push(
        &v1,
        &pk,
        &[],
        &["--registry-user", USER],
        &format!("{wrong}\n"),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&site.reg.addr) && r.stderr.contains("authentication failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(wrong) && !r.stdout.contains(wrong));
    assert_eq!(site.blob_uploads(), 0, "nothing sent");

    // Killed in the middle of a blob: no tag is set; a re-run completes.
    let r = site.push(
        &v1,
        &pk,
        &[("FAILPOINTS", "push-mid-blob=return(crash)")],
        &["--registry-user", USER],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(r.code, -1, "aborted: {}", r.stderr);
    assert!(
        site.reg.requests().iter().any(|l| l.starts_with("PATCH ")),
        "a chunk went out"
    );
    for img in &m1.images {
        assert!(
            site.manifest(&site_name(&img.name)).is_none(),
            "{}: no tag after the crash",
            img.name
        );
    }
    let done = json(&site.push(
        &v1,
        &pk,
        &[],
        &["--registry-user", USER, "--json"],
        &format!("{PASSWORD}\n"),
    ));
    assert!(done["blobs_uploaded"].as_u64().unwrap() > 0);
    for img in &m1.images {
        assert_eq!(
            sha256(&site.manifest(&site_name(&img.name)).unwrap()),
            img.manifest.digest.to_string()
        );
    }

    // The registry's copy of a manifest is altered (same length): the
    // engine's digest check refuses the pull, and nothing is installed.
    let web = m1.images.iter().find(|i| i.name.contains("web")).unwrap();
    let hex = web.manifest.digest.hex();
    let data = site.reg.data_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes
        .windows(9)
        .position(|w| w == b"\"sha256:a")
        .or_else(|| bytes.windows(8).position(|w| w == b"\"sha256:"))
        .unwrap()
        + 8;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&data, &bytes).unwrap();
    let host = Host::on(Variant::Docker20, None);
    let r = site.install_first(&host, &v1, &pk);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains(&web.name), "{}", r.stderr);
    assert!(
        host.docker.image_id(&web.name).is_empty(),
        "no image under the name"
    );
    assert_eq!(host.docker.service_image("web"), "", "nothing runs");
}
