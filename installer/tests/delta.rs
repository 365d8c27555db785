//! Delta bundles: the target's inventory drives what the vendor leaves out;
//! the installer refuses a delta whose blobs it lacks and otherwise installs
//! it exactly as the full bundle.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use fixtures::harness::{shared, Host, Variant, Vendor};
use installer::bundle;
use manifest_schema::{Digest, Manifest};

fn manifest_of(b: &Path) -> Manifest {
    bundle::read_head_unverified(bundle::open(b).unwrap())
        .unwrap()
        .manifest
}

fn blob_sizes(m: &Manifest) -> Vec<(Digest, u64)> {
    m.all_blobs()
        .into_iter()
        .map(|d| (d.digest.clone(), d.size))
        .collect()
}

#[test]
fn a_delta_carries_only_the_changed_image_and_installs_like_the_full_bundle() {
    delta(Variant::Docker20);
}

/// On the containerd store: the engine's image IDs are manifest digests, and
/// a load carries every layer (containerd's import wants them all), from
/// the installer's own store.
#[test]
fn a_delta_installs_on_the_containerd_store() {
    delta(Variant::Docker26Containerd);
}

#[test]
fn a_delta_installs_on_docker_26() {
    delta(Variant::Docker26);
}

fn delta(variant: Variant) {
    let containerd = variant.containerd_store();
    let vendor = Vendor::new(&shared().registry);
    let v1 = vendor.bundle("v1", &[]);
    let v2_full = vendor.bundle("v2", &[]);
    let host = Host::on(variant, None);
    let dir = host.install_dir();
    let pk = vendor.public_key.to_str().unwrap();
    let port = format!("APP_PORT={}", host.port);

    // No install yet: nothing to take an inventory of.
    let have = host.dir.path().join("have.json");
    let r = host.run(&["inventory"], &["-o", have.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not an install"), "{}", r.stderr);

    let r = host.install(&v1, &["--public-key", pk, "--set", &port]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = host.run(&["inventory"], &["-o", have.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inv: manifest_schema::Inventory =
        serde_json::from_slice(&std::fs::read(&have).unwrap()).unwrap();
    assert_eq!(inv.name, "demo");
    assert_eq!(inv.version.as_ref().unwrap().to_string(), "1.0.0");
    // It names the engine, its version and its store, as the daemon reports them.
    let version = host
        .docker
        .output(&["info", "--format", "{{.ServerVersion}}"]);
    let store = if containerd {
        "containerd image store"
    } else {
        "classic image store"
    };
    let engine = inv.engine.as_deref().unwrap_or_default();
    assert!(
        engine.starts_with(&format!("docker {version}, {store}")),
        "{engine}"
    );
    let m1 = manifest_of(&v1);
    let v1_blobs: BTreeSet<Digest> = blob_sizes(&m1).into_iter().map(|b| b.0).collect();
    assert_eq!(
        inv.blobs.iter().cloned().collect::<BTreeSet<_>>(),
        v1_blobs,
        "the store holds exactly the installed release's blobs"
    );
    let id = if containerd {
        &m1.images[0].manifest.digest
    } else {
        &m1.images[0].config.digest
    };
    assert!(inv.engine_images.contains(id), "{:?}", inv.engine_images);

    // The vendor builds the delta from the inventory.
    let spec = vendor.app("v2");
    let delta = vendor.dir.path().join("demo-2.0.0-from-1.0.0.bundle");
    let r = vendor.build(&spec, &delta, &["--have", have.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("delta against 1.0.0:"), "{}", r.stderr);
    let md = manifest_of(&delta);
    let d = md.delta.as_ref().expect("a delta manifest");
    assert_eq!(d.base_version.to_string(), "1.0.0");
    let m2 = manifest_of(&v2_full);
    let changed: Vec<(Digest, u64)> = blob_sizes(&m2)
        .into_iter()
        .filter(|(d, _)| !v1_blobs.contains(d))
        .collect();
    // Of three images only web changed: its manifest, config and top layer.
    assert_eq!(changed.len(), 3, "{changed:?}");
    let carried: BTreeSet<Digest> = md
        .carried_blobs()
        .into_iter()
        .map(|d| d.digest.clone())
        .collect();
    assert_eq!(
        carried,
        changed.iter().map(|c| c.0.clone()).collect::<BTreeSet<_>>()
    );
    // Size: the changed blobs plus 5%, plus what any bundle of this release
    // carries besides blobs (manifest, signature, files, layout), measured on
    // the full bundle.
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let changed_bytes: u64 = changed.iter().map(|c| c.1).sum();
    let all_bytes: u64 = blob_sizes(&m2).iter().map(|c| c.1).sum();
    let overhead = size(&v2_full).saturating_sub(all_bytes) + 2048;
    eprintln!(
        "full {} bytes, delta {} bytes, changed blobs {changed_bytes} bytes, non-blob part {overhead}",
        size(&v2_full),
        size(&delta)
    );
    assert!(size(&delta) <= changed_bytes + changed_bytes / 20 + overhead);
    assert!(size(&delta) < size(&v2_full));

    // A host without the base release refuses the delta, naming the blobs
    // and the version to install first, and changes nothing.
    let other = host.dir.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let r = fixtures::harness::capture(
        host.installer()
            .arg("install")
            .arg(&delta)
            .arg("--dir")
            .arg(&other)
            .args(["--yes", "--public-key", pk, "--set", "ADMIN_EMAIL=a@b.c"]),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let first = d.present_blobs[0].to_string();
    assert!(
        r.stderr.contains(&format!(
            "this is a delta against demo 1.0.0: {n} of the {n} blobs it leaves out are not on this host:",
            n = d.present_blobs.len()
        )) && r.stderr.contains(&first)
            && r.stderr.contains("hint: install demo 1.0.0 first, or use the full bundle"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);

    // On the target it installs, loading only the changed image.
    let images_before = host.docker.image_list();
    let r = host.install(&delta, &["--set", "ADMIN_EMAIL=a@b.c", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["loaded_images"], serde_json::json!(["demo/web:2.0.0"]));
    let loading = if containerd {
        "loading demo/web:2.0.0 (2 of 2 layers new)"
    } else {
        "loading demo/web:2.0.0 (1 of 2 layers new)"
    };
    assert!(r.stderr.contains(loading), "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
    let after_delta = host.docker.image_list();
    assert_ne!(after_delta, images_before);

    // The full bundle of the same release finds nothing to do: same images,
    // same kept release.
    let r = host.install(&v2_full, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["loaded_images"], serde_json::json!([]));
    assert_eq!(host.docker.image_list(), after_delta);
    assert_eq!(host.health(), "ok 2.0.0\n");

    // The blob store's disk cost: the current and previous releases' blobs.
    let store: u64 = std::fs::read_dir(dir.join(".installer/blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let both: BTreeSet<(Digest, u64)> =
        blob_sizes(&m1).into_iter().chain(blob_sizes(&m2)).collect();
    assert_eq!(store, both.iter().map(|b| b.1).sum::<u64>());
    eprintln!("blob store: {store} bytes for 1.0.0 + 2.0.0");

    // Rolling back to 1.0.0 works from the store alone.
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");
}
