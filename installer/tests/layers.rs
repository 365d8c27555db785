//! Images as registries serve them beyond gzip. `demo/shapes` has a zstd'd
//! layer (two frames that do not say their size, as a streaming encoder
//! writes them), a plain tar layer and one empty layer twice. Each Docker
//! store and podman install and run it with every file in place. Docker 20.10 reads
//! no zstd at all (its own pull of this image fails), so the installer
//! hands it the layer decompressed; from a site registry, where the engine
//! pulls the layer itself, preflight refuses before anything changes.
//! Docker 28 with overlay2 gets the zstd'd layer as stored, in the
//! docker-archive its load reads.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use fixtures::harness::{capture, free_port, shared, target_bin, Host, Podman, Variant, Vendor};

const SHAPES: &str = "demo/shapes:1.0.0";

/// The demo's 1.0.0 with a `shapes` service running `demo/shapes`, pinned
/// and built; returns the bundle.
fn shapes_bundle(vendor: &Vendor) -> PathBuf {
    let out = vendor.dir.path().join("app-shapes");
    let spec = fixtures::app::write_app("v1", &vendor.registry, &out).unwrap();
    let edit = |file: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains(from), "{}: {from:?}", file.display());
        std::fs::write(file, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        &spec,
        "images:\n",
        &format!(
            "images:\n  - ref: {}/{SHAPES}\n    name: {SHAPES}\n",
            vendor.registry
        ),
    );
    let compose = out.join("docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(
        &compose,
        format!("{text}  shapes:\n    <<: *common\n    image: {SHAPES}\n"),
    )
    .unwrap();
    let r = capture(
        vendor
            .bundler()
            .args(["pin", "-q"])
            .arg(&spec)
            .args(["--insecure-registry", &vendor.registry]),
    );
    assert_eq!(r.code, 0, "pin: {}", r.stderr);
    let bundle = vendor.dir.path().join("shapes.bundle");
    let r = vendor.build(&spec, &bundle, &["-q"]);
    assert_eq!(r.code, 0, "build: {}", r.stderr);
    bundle
}

/// What the pinned image is in the registry: (manifest digest, config
/// digest, diff IDs), read with skopeo.
fn pinned(registry: &str) -> (String, String, Vec<String>) {
    let inspect = |raw: &str| {
        let r = capture(std::process::Command::new("skopeo").args([
            "inspect",
            raw,
            "--tls-verify=false",
            &format!("docker://{registry}/{SHAPES}"),
        ]));
        assert_eq!(r.code, 0, "skopeo inspect {raw}: {}", r.stderr);
        r.stdout
    };
    let manifest = inspect("--raw");
    let digest = {
        use sha2::Digest as _;
        format!("sha256:{:x}", sha2::Sha256::digest(manifest.as_bytes()))
    };
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let media: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(
        media.iter().any(|t| t.ends_with("+zstd"))
            && media.iter().any(|t| t.ends_with(".tar"))
            && media.len() == 5,
        "the registry serves the layers as built: {media:?}"
    );
    let config: serde_json::Value = serde_json::from_str(&inspect("--config")).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    let config_digest = m["config"]["digest"].as_str().unwrap().to_owned();
    (digest, config_digest, diff_ids)
}

/// Checks, through `engine` (the engine's CLI: ARGS to trimmed stdout),
/// that the `shapes` service runs the image `want` (an ID), whose layers
/// are `diff_ids`, with the zstd'd and the plain layer's files in place.
fn assert_runs(engine: &dyn Fn(&[&str]) -> String, want: &str, diff_ids: &[String]) {
    let filter = "label=com.docker.compose.service=shapes";
    let container = engine(&["ps", "-q", "--filter", filter]);
    assert!(
        !container.is_empty(),
        "no container runs the shapes service"
    );
    // Podman gives IDs without the algorithm.
    let id = engine(&["inspect", "--format", "{{.Image}}", &container]);
    assert_eq!(
        id.trim_start_matches("sha256:"),
        want.trim_start_matches("sha256:")
    );
    let layers = engine(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        SHAPES,
    ]);
    let layers: Vec<String> = serde_json::from_str(&layers).unwrap();
    assert_eq!(layers, diff_ids);
    assert_eq!(
        diff_ids[2], diff_ids[4],
        "the fixture repeats its empty layer"
    );
    for (file, body) in [("/opt/zstd.txt", "zstd"), ("/opt/plain.txt", "plain")] {
        let got = engine(&["exec", &container, "/bin/busybox", "cat", file]);
        assert_eq!(got, body, "{file} in the running container");
    }
}

fn installs_and_runs(variant: Variant) {
    let registry = &shared().registry;
    let vendor = Vendor::new(registry);
    let bundle = shapes_bundle(&vendor);
    let (manifest, config, diff_ids) = pinned(registry);
    let host = Host::on(variant, None);
    host.install_first(&vendor, &bundle);
    let want = if variant.containerd_store() {
        manifest
    } else {
        config
    };
    assert_runs(&|args| host.docker.output(args), &want, &diff_ids);
}

#[test]
fn zstd_plain_and_repeated_layers_install_and_run_on_docker_20_10() {
    installs_and_runs(Variant::Docker20);
}

#[test]
fn zstd_plain_and_repeated_layers_install_and_run_on_the_containerd_store() {
    installs_and_runs(Variant::Docker26Containerd);
}

#[test]
fn zstd_plain_and_repeated_layers_install_and_run_on_debian_testings_docker() {
    installs_and_runs(Variant::DockerTesting);
    installs_and_runs(Variant::DockerTestingContainerd);
}

#[test]
fn zstd_plain_and_repeated_layers_install_and_run_on_podman() {
    let registry = &shared().registry;
    let vendor = Vendor::new(registry);
    let bundle = shapes_bundle(&vendor);
    let (_, config, diff_ids) = pinned(registry);
    let podman = Podman::new();
    let mut c = podman.command(&podman.stage(&target_bin("installer")));
    c.arg("install")
        .arg(podman.stage(&bundle))
        .arg("--dir")
        .arg(podman.inside(&podman.dir().join("demo")))
        .args(["--engine", "podman", "--yes", "--public-key"])
        .arg(podman.stage(&vendor.public_key))
        .args(["--set", &format!("APP_PORT={}", free_port())]);
    let r = capture(&mut c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let engine = |args: &[&str]| {
        let mut c = podman.podman();
        c.args(args);
        capture(&mut c).stdout.trim().to_owned()
    };
    assert_runs(&engine, &config, &diff_ids);
}

#[test]
fn a_site_registry_install_of_zstd_layers_on_docker_20_10_is_refused_in_preflight() {
    let registry = &shared().registry;
    let vendor = Vendor::new(registry);
    let bundle = shapes_bundle(&vendor);
    let host = Host::on(Variant::Docker20, None);
    // Docker 20.10's own pull of the image fails on the zstd layer.
    let pull = host
        .docker
        .docker()
        .args(["pull", &format!("{registry}/{SHAPES}")])
        .output()
        .unwrap();
    assert!(!pull.status.success(), "docker 20.10 pulled a zstd layer");
    let pk = vendor.public_key.to_str().unwrap();
    let r = host.install(&bundle, &["--public-key", pk, "--registry", registry]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("preflight failed, nothing was changed")
            && r.stderr.contains(&format!(
                "{SHAPES}: 1 of its 5 layers are zstd-compressed, and this docker cannot pull zstd layers (Docker can from 23.0); hint: install from the whole bundle without --registry"
            )),
        "{}",
        r.stderr
    );
    assert!(!host.install_dir().exists(), "nothing was written");
    assert!(host.docker.image_list().is_empty(), "nothing was pulled");
}
