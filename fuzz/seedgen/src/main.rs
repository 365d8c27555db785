//! Writes the seed corpora for the fuzz targets: `seedgen OUT_DIR`.
//!
//! The archive seeds are a tiny bundle signed by the fixed key the `archive`
//! target trusts (ed25519 seed `[9; 32]`, key id `0909…`), compressed three
//! ways: zstd as the bundler writes it, gzip, and zstd in *raw* (stored)
//! blocks. In the raw form most mutations land in the tar stream rather
//! than the compression framing, so the fuzzer reaches the entry checks.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use bundle_format::minisign::{prehash, Algorithm, KeyId, PublicKey, Signature};
use bundle_format::tarfmt::TarWriter;
use manifest_schema::{
    layout, Compose, Descriptor, Digest, FileEntry, Hooks, ImageEntry, Inventory, Manifest, Part,
    PartsIndex, RelPath,
};
use sha2::Digest as _;

fn digest(b: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&sha2::Sha256::digest(b).into())
}

fn file_entry(path: &str, data: &[u8], mode: u32) -> FileEntry {
    FileEntry {
        path: RelPath::new(path).expect("a valid path"),
        size: data.len() as u64,
        sha256: digest(data),
        mode,
    }
}

fn sign(sk: &SigningKey, msg: &[u8]) -> Signature {
    let comment = "fuzz seed";
    let s = sk.sign(&prehash(msg)).to_bytes();
    let mut g = s.to_vec();
    g.extend_from_slice(comment.as_bytes());
    Signature {
        algorithm: Algorithm::Prehashed,
        key_id: KeyId([9; 8]),
        signature: s,
        untrusted_comment: "signature from the fuzz seed key".into(),
        trusted_comment: comment.into(),
        global_signature: sk.sign(&g).to_bytes(),
    }
}

/// A zstd frame of raw blocks: no compression, no checksum.
fn zstd_raw(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 * 1024;
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header: no content size, no checksum, no dictionary, not single
    // segment; window descriptor 2^(10 + 7) = 128 KiB.
    out.push(0x00);
    out.push(7 << 3);
    let chunks: Vec<&[u8]> = data.chunks(MAX_BLOCK).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let header = last | ((c.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(c);
    }
    out
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the seed dir");
    std::fs::write(dir.join(name), data).expect("write a seed");
}

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .expect("usage: seedgen OUT_DIR");
    let sk = SigningKey::from_bytes(&[9; 32]);
    let pk = PublicKey {
        id: KeyId([9; 8]),
        key: sk.verifying_key(),
    };

    // The payload: two files and one image of one layer.
    let compose = b"services:\n  web:\n    image: fuzz/web:1\n".to_vec();
    let hook = b"#!/bin/sh\necho backup\n".to_vec();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let layer = b"not really a layer, the verify path does not look inside".to_vec();
    let desc = |mt: &str, b: &[u8]| Descriptor {
        media_type: mt.into(),
        digest: digest(b),
        size: b.len() as u64,
    };
    let image_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer).to_string(), "size": layer.len()}],
    }))
    .expect("json");
    let image = ImageEntry {
        name: "fuzz/web:1".into(),
        source: format!("127.0.0.1:5000/fuzz/web@{}", digest(&image_manifest)),
        platform: "linux/amd64".parse().expect("platform"),
        manifest: desc(
            "application/vnd.oci.image.manifest.v1+json",
            &image_manifest,
        ),
        config: desc("application/vnd.oci.image.config.v1+json", &config),
        layers: vec![desc("application/vnd.oci.image.layer.v1.tar", &layer)],
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image.manifest.digest.to_string(), "size": image.manifest.size,
                       "annotations": {"org.opencontainers.image.ref.name": "fuzz/web:1"}}],
    }))
    .expect("json");
    let oci_layout = layout::OCI_LAYOUT_CONTENT.as_bytes().to_vec();
    let manifest = Manifest {
        format: layout::FORMAT_VERSION,
        name: "fuzz".into(),
        version: "1.0.0".parse().expect("version"),
        created: "1970-01-01T00:00:00Z".into(),
        min_installer_version: "0.1.0".parse().expect("version"),
        platforms: vec!["linux/amd64".parse().expect("platform")],
        files: vec![
            file_entry("docker-compose.yml", &compose, 0o644),
            file_entry("hooks/backup.sh", &hook, 0o755),
        ],
        layout: vec![
            file_entry(layout::OCI_LAYOUT, &oci_layout, 0o644),
            file_entry(layout::OCI_INDEX, &index, 0o644),
        ],
        images: vec![image.clone()],
        compose: Compose {
            project: "fuzz".into(),
            files: vec![RelPath::new("docker-compose.yml").expect("path")],
            external: vec![],
        },
        env: vec![],
        health: None,
        hooks: Hooks {
            pre_upgrade: Some(RelPath::new("hooks/backup.sh").expect("path")),
            ..Hooks::default()
        },
        upgrade_from: None,
        delta: None,
        trust: Default::default(),
        installer: None,
        cosign_keys: Vec::new(),
        provenance: Vec::new(),
    };
    manifest_schema::validate_manifest(&manifest).expect("the seed manifest is valid");
    let raw = serde_json::to_vec_pretty(&manifest).expect("json");
    let sig = sign(&sk, &raw).to_file();

    // The archive, in the order the installer expects: head, files by path,
    // layout files, blobs by digest.
    let mut blobs = vec![
        (image.manifest.digest.clone(), image_manifest.clone()),
        (image.config.digest.clone(), config.clone()),
        (image.layers[0].digest.clone(), layer.clone()),
    ];
    blobs.sort();
    let mut tar = TarWriter::new(Vec::new(), 0);
    tar.file(layout::MANIFEST, &raw, 0o644).expect("tar");
    tar.file(layout::SIGNATURE, sig.as_bytes(), 0o644).expect("tar");
    tar.file(&layout::file_entry(&manifest.files[0].path), &compose, 0o644)
        .expect("tar");
    tar.file(&layout::file_entry(&manifest.files[1].path), &hook, 0o755)
        .expect("tar");
    tar.file(layout::OCI_LAYOUT, &oci_layout, 0o644).expect("tar");
    tar.file(layout::OCI_INDEX, &index, 0o644).expect("tar");
    for (d, b) in &blobs {
        tar.file(&layout::blob_entry(d), b, 0o644).expect("tar");
    }
    let tar = tar.finish().expect("tar");

    let archive = out.join("archive");
    let mut z = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
    z.include_checksum(true).expect("zstd");
    z.write_all(&tar).expect("zstd");
    write(&archive, "tiny.zst", &z.finish().expect("zstd"));
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    g.write_all(&tar).expect("gzip");
    write(&archive, "tiny.gz", &g.finish().expect("gzip"));
    write(&archive, "tiny.raw.zst", &zstd_raw(&tar));

    let sigdir = out.join("signature");
    write(&sigdir, "bundle.minisig", sig.as_bytes());
    write(&sigdir, "key.pub", pk.to_file().as_bytes());

    let mdir = out.join("manifest");
    write(&mdir, "manifest.json", &raw);
    let parts = PartsIndex {
        format: layout::FORMAT_VERSION,
        bundle: "fuzz-1.0.0.bundle".into(),
        name: "fuzz".into(),
        version: "1.0.0".parse().expect("version"),
        size: 2048,
        sha256: digest(b"whole"),
        part_size: 1024,
        parts: (1..=2)
            .map(|i| Part {
                index: i,
                file: format!("fuzz-1.0.0.bundle.part{i:03}"),
                size: 1024,
                sha256: digest(&[i as u8]),
            })
            .collect(),
    };
    write(
        &mdir,
        "parts.json",
        &serde_json::to_vec_pretty(&parts).expect("json"),
    );
    let inventory = Inventory {
        format: layout::FORMAT_VERSION,
        name: "fuzz".into(),
        version: Some("1.0.0".parse().expect("version")),
        created: "1970-01-01T00:00:00Z".into(),
        blobs: blobs.iter().map(|(d, _)| d.clone()).collect(),
        engine_images: Default::default(),
        engine: None,
    };
    write(
        &mdir,
        "inventory.json",
        &serde_json::to_vec_pretty(&inventory).expect("json"),
    );

    let spec_dir = out.join("spec");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/app");
    for v in ["v1", "v2", "v3"] {
        let text = std::fs::read(fixtures.join(v).join("bundle.yaml")).expect("fixture spec");
        write(&spec_dir, &format!("{v}.yaml"), &text);
    }
    println!("seeds written to {}", out.display());
}
