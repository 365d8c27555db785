//! Provenance across the air gap, with the real cosign 2.5: images signed
//! and attested in a loopback registry with keys made here; `bundler build`
//! checks the spec's policy and carries the signatures; `installer verify
//! --cosign-key` checks them with no network at all; `installer push` puts
//! them where `cosign verify --offline` finds them at the site.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::cosign::{copy_manifest, rewrite_payload, tag_for, Cosign, KeyPair};
use fixtures::harness::{capture, target_bin, Host, Ran, Registry, Variant, Vendor};

/// The images of the v1 app, by compose name.
const WEB: &str = "demo/web:1.0.0";
const WORKER: &str = "demo/worker:1.0.0";
const CRON: &str = "demo/cron:1.0.0";

const SPDX: &str = r#"{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"demo-web","documentNamespace":"https://example.com/demo-web","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: provenance-test"]},"packages":[{"name":"busybox","SPDXID":"SPDXRef-Package-busybox","versionInfo":"1.36.1","downloadLocation":"NOASSERTION"}]}"#;
const CYCLONEDX: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"application","name":"worker","version":"1.0.0"}]}"#;

/// A vendor's registry holding the v1 images, the pinned spec, and cosign.
struct Setup {
    reg: Registry,
    vendor: Vendor,
    spec: PathBuf,
    cosign: Cosign,
    key: KeyPair,
}

impl Setup {
    fn new() -> Setup {
        let reg = Registry::start(None);
        let v1: Vec<_> = fixtures::harness::images()
            .iter()
            .filter(|i| [WEB, WORKER, CRON].contains(&format!("{}:{}", i.repo, i.tag).as_str()))
            .cloned()
            .collect();
        fixtures::harness::push(&v1, &reg.addr, None);
        let vendor = Vendor::new(&reg.addr);
        let spec = vendor.app("v1");
        let cosign = Cosign::new();
        let key = cosign.keypair("vendor");
        Setup {
            reg,
            vendor,
            spec,
            cosign,
            key,
        }
    }

    /// `HOST/REPO@DIGEST` of an image, as the pinned spec names it.
    fn pinned(&self, name: &str) -> String {
        let text = std::fs::read_to_string(&self.spec).unwrap();
        let r = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- ref: "))
            .find(|r| r.contains(&format!("/{name}@")))
            .unwrap_or_else(|| panic!("{name} is not in {text}"));
        let (repo_tag, digest) = r.split_once('@').unwrap();
        let repo = repo_tag.rsplit_once(':').unwrap().0;
        format!("{repo}@{digest}")
    }

    fn digest(&self, name: &str) -> String {
        self.pinned(name).split_once('@').unwrap().1.to_owned()
    }

    /// `HOST/REPO:TAG` of the cosign tag of an image.
    fn cosign_tag(&self, name: &str, suffix: &str) -> String {
        let p = self.pinned(name);
        let (repo, digest) = p.split_once('@').unwrap();
        format!("{repo}:{}", tag_for(digest, suffix))
    }

    fn sign(&self, name: &str) {
        self.cosign.sign(&self.key, &self.pinned(name), false);
    }

    /// Requires every image be signed by the vendor's cosign key.
    fn add_policy(&self) {
        let dir = self.spec.parent().unwrap();
        std::fs::copy(&self.key.public, dir.join("cosign.pub")).unwrap();
        let mut text = std::fs::read_to_string(&self.spec).unwrap();
        text.push_str("provenance:\n  cosign_keys: [cosign.pub]\n");
        std::fs::write(&self.spec, text).unwrap();
    }

    fn build(&self, out: &Path, extra: &[&str]) -> Ran {
        let mut flags = vec!["-q"];
        flags.extend_from_slice(extra);
        self.vendor.build(&self.spec, out, &flags)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.vendor.dir.path().join(name)
    }
}

fn installer() -> Command {
    Command::new(target_bin("installer"))
}

fn bundler() -> Command {
    Command::new(target_bin("bundler"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `installer verify` in a network namespace of its own, with no interface
/// up: whatever it checks, it checks offline.
fn verify_offline(bundle: &Path, vendor: &Vendor, cosign_key: &Path) -> Ran {
    capture(
        Command::new("unshare")
            .arg("--net")
            .arg(target_bin("installer"))
            .arg("verify")
            .arg(bundle)
            .arg("--public-key")
            .arg(&vendor.public_key)
            .arg("--cosign-key")
            .arg(cosign_key),
    )
}

#[test]
fn signed_images_are_checked_carried_verified_offline_and_pushed_where_cosign_finds_them() {
    let s = Setup::new();
    let dir = s.vendor.dir.path().to_owned();
    s.sign(WEB);
    s.sign(WORKER);
    // cron's signature is an OCI 1.1 referrer (the registry has no
    // referrers API: cosign writes the fallback tag).
    s.cosign.sign(&s.key, &s.pinned(CRON), true);
    let spdx = write(&dir, "web.spdx.json", SPDX);
    let cdx = write(&dir, "worker.cdx.json", CYCLONEDX);
    s.cosign.attest(&s.key, &s.pinned(WEB), "spdxjson", &spdx);
    s.cosign
        .attest(&s.key, &s.pinned(WORKER), "cyclonedx", &cdx);
    s.add_policy();

    let bundle = s.out("signed.bundle");
    let r = s.build(&bundle, &[]);
    assert_eq!(r.code, 0, "build: {}", r.stderr);

    // inspect lists what each image carries, SBOMs absent said so.
    let r = capture(bundler().arg("inspect").arg(&bundle));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name) && l.contains("signatures:"))
            .unwrap_or_else(|| panic!("no provenance line for {name}:\n{}", r.stdout))
            .to_owned()
    };
    assert!(line(WEB).contains("signatures: 1") && line(WEB).contains("https://spdx.dev/Document"));
    assert!(
        line(WORKER).contains("https://cyclonedx.org/bom"),
        "{}",
        line(WORKER)
    );
    assert!(line(CRON).contains("signatures: 1") && line(CRON).contains("SBOM: none attested"));

    // The SBOM comes out as attested.
    let r = capture(
        bundler()
            .args(["sbom"])
            .arg(&bundle)
            .arg(WEB)
            .arg("--public-key")
            .arg(&s.vendor.public_key),
    );
    assert_eq!(r.code, 0, "sbom: {}", r.stderr);
    let got: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        got,
        serde_json::from_str::<serde_json::Value>(SPDX).unwrap()
    );
    let r = capture(
        bundler()
            .args(["sbom"])
            .arg(&bundle)
            .arg(CRON)
            .arg("--public-key")
            .arg(&s.vendor.public_key),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no attested SBOM"), "{}", r.stderr);

    // Offline: a network namespace with nothing but a down loopback.
    let links = capture(Command::new("unshare").args(["--net", "ip", "-o", "link", "show"]));
    assert_eq!(links.code, 0, "{}", links.stderr);
    assert_eq!(links.stdout.lines().count(), 1, "{}", links.stdout);
    assert!(links.stdout.contains(": lo:") && !links.stdout.contains("state UP"));
    let r = verify_offline(&bundle, &s.vendor, &s.key.public);
    assert_eq!(r.code, 0, "verify offline: {}", r.stderr);
    for name in [WEB, WORKER, CRON] {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("signed by sha256:")),
            "{name}: {}",
            r.stderr
        );
    }
    // Another key's holder cannot pass it off as theirs.
    let other = s.cosign.keypair("other");
    let r = verify_offline(&bundle, &s.vendor, &other.public);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is not signed by key"), "{}", r.stderr);

    // Stock OCI tools still read the layout.
    let x = tempfile::tempdir().unwrap();
    let tar = capture(
        Command::new("sh")
            .arg("-c")
            .arg("zstd -dc \"$0\" | tar -x -C \"$1\"")
            .arg(&bundle)
            .arg(x.path()),
    );
    assert_eq!(tar.code, 0, "{}", tar.stderr);
    let layout = x.path().join("images");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let listed = v["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "index.json lists the images only: {v}");
    let r = capture(bundler().arg("inspect").arg("--json").arg(&bundle));
    let m: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for p in m["manifest"]["provenance"].as_array().unwrap() {
        for a in p["artifacts"].as_array().unwrap() {
            let d = a["manifest"]["digest"].as_str().unwrap();
            let blob = layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"));
            assert!(blob.is_file(), "{d} is not in the layout");
        }
    }
    let r = capture(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{WEB}", layout.display())),
    );
    assert_eq!(r.code, 0, "skopeo reads the layout: {}", r.stderr);
    let r = capture(
        Command::new("umoci")
            .args(["stat", "--image"])
            .arg(format!("{}:{WEB}", layout.display())),
    );
    assert_eq!(r.code, 0, "umoci: {}", r.stderr);

    // At the site: push, then stock cosign verifies offline against it.
    let site = Registry::start(None);
    let r = capture(
        installer()
            .arg("push")
            .arg(&bundle)
            .arg("--public-key")
            .arg(&s.vendor.public_key)
            .args([
                "--registry",
                &format!("{}/acme", site.addr),
                "--insecure-registry",
            ]),
    );
    assert_eq!(r.code, 0, "push: {}", r.stderr);
    let at_site = |name: &str| {
        let repo = name.split(':').next().unwrap();
        format!("{}/acme/{repo}@{}", site.addr, s.digest(name))
    };
    let http = ["--allow-http-registry"];
    let r = s.cosign.verify(&s.key.public, &at_site(WEB), &http);
    assert_eq!(r.code, 0, "cosign verify at the site: {}", r.stderr);
    assert!(r.stdout.contains(&s.digest(WEB)), "{}", r.stdout);
    let r = s.cosign.verify(
        &s.key.public,
        &at_site(CRON),
        &["--allow-http-registry", "--experimental-oci11"],
    );
    assert_eq!(
        r.code, 0,
        "cosign verify of the referrer at the site: {}",
        r.stderr
    );
    let r = s
        .cosign
        .verify_attestation(&s.key.public, &at_site(WEB), "spdxjson", &http);
    assert_eq!(
        r.code, 0,
        "cosign verify-attestation at the site: {}",
        r.stderr
    );
    let r = s.cosign.verify(&other.public, &at_site(WEB), &http);
    assert_ne!(r.code, 0, "another key must not verify at the site");

    // --no-provenance leaves them out; the policy is still checked.
    let bare = s.out("bare.bundle");
    let r = s.build(&bare, &["--no-provenance"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = capture(bundler().arg("inspect").arg("--json").arg(&bare));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["manifest"].get("provenance").is_none(), "{}", r.stdout);
    drop(s.reg);
}

/// Without a policy, provenance the bundler cannot read (here an image
/// manifest under web's `.sig` tag) is reported and left out, not fatal;
/// with a policy the same registry fails the build.
#[test]
fn unreadable_provenance_without_a_policy_is_reported_and_left_out() {
    let s = Setup::new();
    let web_tag = format!("{}/demo/web:1.0.0", s.reg.addr);
    copy_manifest(&web_tag, &s.cosign_tag(WEB, "sig"));
    s.sign(WORKER);
    let out = s.out("lenient.bundle");
    let r = s.vendor.build(&s.spec, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("demo/web:1.0.0@sha256:")
            && r.stderr.contains("were not read")
            && r.stderr.contains("holds no cosign sig"),
        "{}",
        r.stderr
    );
    let r = capture(bundler().arg("inspect").arg("--json").arg(&out));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let sources: Vec<&str> = v["manifest"]["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert!(sources[0].contains("/demo/worker:"), "{sources:?}");
    s.add_policy();
    let refused = s.out("refused.bundle");
    let r = s.build(&refused, &[]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("holds no cosign sig"), "{}", r.stderr);
    assert!(!refused.exists());
}

/// `curl -sf` of a URL, with an `Accept`.
fn fetch(url: &str, accept: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Accept: {accept}"), url])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {url}");
    out.stdout
}

/// A registry that serves the OCI 1.1 referrers API (distribution 2.8 does
/// not; Harbor, Zot and distribution 3 do): the bundler asks it first and
/// finds there a signature that no tag names.
#[test]
fn a_signature_found_only_through_the_referrers_api_is_checked_and_carried() {
    let s = Setup::new();
    s.cosign.sign(&s.key, &s.pinned(CRON), true);
    let subject = s.digest(CRON);
    // What cosign wrote, copied out of the real registry: the fallback
    // tag's index, and the referrer's manifest and blobs.
    let base = format!("http://{}/v2/demo/cron", s.reg.addr);
    let index_type = "application/vnd.oci.image.index.v1+json";
    let index = fetch(
        &format!(
            "{base}/manifests/sha256-{}",
            subject.trim_start_matches("sha256:")
        ),
        index_type,
    );
    let v: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let referrer = v["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let blobs = tempfile::tempdir().unwrap();
    let keep = |digest: &str, bytes: Vec<u8>| {
        std::fs::write(
            blobs.path().join(digest.trim_start_matches("sha256:")),
            bytes,
        )
        .unwrap();
    };
    let manifest = fetch(
        &format!("{base}/manifests/{referrer}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    keep(&referrer, manifest);
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let d = d["digest"].as_str().unwrap();
        keep(d, fetch(&format!("{base}/blobs/{d}"), "*/*"));
    }
    let images = fixtures::harness::images();
    let api = fixtures::badreg::BadRegistry::start_with_referrers(
        images,
        blobs.path().to_owned(),
        vec![("demo/cron".into(), subject.clone(), index)],
    );
    // The same app pinned through it; only cron must be signed.
    let vendor = Vendor::new(api.addr());
    let spec = vendor.app("v1");
    let dir = spec.parent().unwrap();
    std::fs::copy(&s.key.public, dir.join("cosign.pub")).unwrap();
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = text
        .replace(
            "    name: demo/cron:1.0.0\n",
            "    name: demo/cron:1.0.0\n    cosign_keys: [cosign.pub]\n",
        )
        .replace(
            "    name: demo/web:1.0.0\n",
            "    name: demo/web:1.0.0\n    cosign_keys: []\n",
        )
        .replace(
            "    name: demo/worker:1.0.0\n",
            "    name: demo/worker:1.0.0\n    cosign_keys: []\n",
        );
    std::fs::write(&spec, &text).unwrap();
    assert_eq!(text.matches("cosign_keys").count(), 3, "{text}");
    let out = vendor.dir.path().join("referrers.bundle");
    let r = vendor.build(&spec, &out, &["-q"]);
    assert_eq!(r.code, 0, "build: {}", r.stderr);
    assert!(
        api.hits(&format!("referrers {subject}")) >= 1,
        "the referrers API was not asked"
    );
    let r = capture(bundler().arg("inspect").arg("--json").arg(&out));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let prov = v["manifest"]["provenance"].as_array().unwrap();
    let cron = prov
        .iter()
        .find(|p| p["source"].as_str().unwrap().contains("/demo/cron:"))
        .unwrap();
    assert_eq!(
        cron["artifacts"][0]["manifest"]["digest"],
        referrer.as_str()
    );
    assert!(cron["artifacts"][0].get("tag").is_none(), "{cron}");
    assert_eq!(cron["required_keys"].as_array().unwrap().len(), 1);
    let r = verify_offline(&out, &vendor, &s.key.public);
    assert_eq!(
        r.code, 2,
        "web and worker are unsigned: --cosign-key requires them too"
    );
    assert!(r.stderr.contains("demo/web:1.0.0@"), "{}", r.stderr);
    // A registry whose referrers API lists nothing for it: refused.
    let none = fixtures::badreg::BadRegistry::start_with_referrers(
        images,
        blobs.path().to_owned(),
        vec![],
    );
    let vendor2 = Vendor::new(none.addr());
    let spec2 = vendor2.app("v1");
    std::fs::copy(&s.key.public, spec2.parent().unwrap().join("cosign.pub")).unwrap();
    std::fs::write(&spec2, text.replace(api.addr(), none.addr())).unwrap();
    let out2 = vendor2.dir.path().join("none.bundle");
    let r = vendor2.build(&spec2, &out2, &["-q"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("demo/cron:1.0.0@") && r.stderr.contains("has no cosign signature"),
        "{}",
        r.stderr
    );
    assert!(!out2.exists());
}

/// Each hostile registry: every image signed by the vendor but web, which
/// gets what the case makes. The build with the policy is refused with no
/// bundle written; a bundle built without a policy carries it, and the
/// offline check of the far side refuses it.
#[test]
fn hostile_signatures_are_refused_naming_the_image_with_nothing_written() {
    type Case = (&'static str, &'static str, fn(&Setup));
    let cases: [Case; 6] = [
        (
            "a signature copied from another image",
            "over another image",
            |s| {
                copy_manifest(&s.cosign_tag(WORKER, "sig"), &s.cosign_tag(WEB, "sig"));
            },
        ),
        (
            "a flipped byte in the payload",
            "is not signed by key",
            |s| {
                s.sign(WEB);
                rewrite_payload(&s.cosign_tag(WEB, "sig"), |p| {
                    let n = p.len() - 12;
                    p[n] ^= 0x01;
                });
            },
        ),
        (
            "a payload naming another digest",
            "is not signed by key",
            |s| {
                s.sign(WEB);
                let (web, worker) = (s.digest(WEB), s.digest(WORKER));
                rewrite_payload(&s.cosign_tag(WEB, "sig"), |p| {
                    let t = String::from_utf8(p.clone()).unwrap();
                    assert!(t.contains(&web));
                    *p = t.replace(&web, &worker).into_bytes();
                });
            },
        ),
        (
            "an attestation for another image",
            "is about another image",
            |s| {
                s.sign(WEB);
                let dir = s.vendor.dir.path();
                let spdx = write(dir, "worker.spdx.json", SPDX);
                s.cosign
                    .attest(&s.key, &s.pinned(WORKER), "spdxjson", &spdx);
                copy_manifest(&s.cosign_tag(WORKER, "att"), &s.cosign_tag(WEB, "att"));
            },
        ),
        (
            "a signature by an untrusted key",
            "is not signed by key",
            |s| {
                let stranger = s.cosign.keypair("stranger");
                s.cosign.sign(&stranger, &s.pinned(WEB), false);
            },
        ),
        (
            "a policy image with no signature",
            "has no cosign signature",
            |_| {},
        ),
    ];
    for (case, reason, make) in cases {
        let s = Setup::new();
        s.sign(WORKER);
        s.sign(CRON);
        make(&s);
        // Without a policy the build carries whatever the registry has.
        let carried = s.out("carried.bundle");
        let r = s.build(&carried, &[]);
        assert_eq!(r.code, 0, "{case}: build without a policy: {}", r.stderr);
        s.add_policy();
        let out = s.out("refused.bundle");
        let r = s.build(&out, &[]);
        assert_eq!(
            r.code, 2,
            "{case}: the build must fail closed: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("demo/web:1.0.0@sha256:"),
            "{case}: names the image: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(reason),
            "{case}: says why ({reason}): {}",
            r.stderr
        );
        assert!(r.stderr.contains("hint:"), "{case}: {}", r.stderr);
        assert!(!out.exists(), "{case}: a bundle was written");
        let leftovers: Vec<_> = std::fs::read_dir(s.vendor.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{case}: {leftovers:?}");
        // The far side refuses the carried one under the vendor's key.
        let r = verify_offline(&carried, &s.vendor, &s.key.public);
        assert_eq!(r.code, 2, "{case}: installer verify: {}", r.stderr);
        assert!(
            r.stderr.contains("demo/web:1.0.0@sha256:"),
            "{case}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(reason), "{case}: {}", r.stderr);
    }
}

/// The policy travels in the signed manifest: install checks it before
/// anything changes, and status shows each image's signatures and SBOMs.
/// On the containerd store, which loads every manifest an OCI index lists:
/// the signatures must not become images.
#[test]
fn install_checks_the_policy_and_status_lists_signatures_and_sboms() {
    let s = Setup::new();
    for name in [WEB, WORKER, CRON] {
        s.sign(name);
    }
    let spdx = write(s.vendor.dir.path(), "web.spdx.json", SPDX);
    s.cosign.attest(&s.key, &s.pinned(WEB), "spdxjson", &spdx);
    s.add_policy();
    let bundle = s.out("signed.bundle");
    let r = s.build(&bundle, &[]);
    assert_eq!(r.code, 0, "build: {}", r.stderr);

    let host = Host::on(Variant::Docker26Containerd, None);
    host.install_first(&s.vendor, &bundle);
    assert_eq!(host.docker.service_image("web"), host.docker.image_id(WEB));
    let images = host.docker.image_list();
    assert_eq!(images.len(), 3, "{images:?}");
    assert!(images.iter().all(|i| i.starts_with("demo/")), "{images:?}");
    let r = host.run(&["status"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key = &s.cosign_key_id();
    let web = r
        .stdout
        .lines()
        .find(|l| l.contains(WEB) && l.contains("signed by"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        web.contains(key) && web.contains("SBOM: https://spdx.dev/Document"),
        "{web}"
    );
    let cron = r.stdout.lines().find(|l| l.contains(CRON)).unwrap();
    assert!(cron.contains("SBOM: none attested"), "{cron}");
    let r = host.run(&["status"], &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let images = v["provenance"].as_array().unwrap();
    assert_eq!(images.len(), 3, "{}", r.stdout);
    assert!(images
        .iter()
        .all(|i| i["signed_by"].as_array().unwrap().len() == 1));
    host.down();
}

impl Setup {
    /// The vendor's cosign key id as status shows it (`sha256:` and 12
    /// hex digits of the DER key's sha256).
    fn cosign_key_id(&self) -> String {
        let pem = std::fs::read_to_string(&self.key.public).unwrap();
        let k = bundle_format::cosign::CosignPublicKey::from_pem(&pem).unwrap();
        bundle_format::cosign::short_id(k.id())
    }
}
