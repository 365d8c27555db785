//! The image JSON both binaries read or write, typed once: the
//! docker-archive `manifest.json` entry (the bundler writes it into the
//! bundle's layout, the installer streams it into `docker load`) and the part
//! of an image config the installer reads.

use manifest_schema::{Descriptor, Digest, ImageEntry};
use serde::{Deserialize, Serialize};

/// A blob's path inside an OCI layout or docker-archive.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// One image of a docker-archive `manifest.json`, as `docker load` reads
/// it. Fields are declared in the order serde_json wrote them before this
/// type existed (sorted), so bundles stay the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerArchiveImage {
    /// The config blob's path.
    #[serde(rename = "Config")]
    pub config: String,
    /// The layer blobs' paths, bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
    /// The names to tag it with.
    #[serde(rename = "RepoTags")]
    pub repo_tags: Vec<String>,
}

impl DockerArchiveImage {
    /// The entry for `img`, tagged with its compose name.
    pub fn of(img: &ImageEntry) -> Self {
        DockerArchiveImage {
            config: blob_path(&img.config.digest),
            layers: img.layers.iter().map(|l| blob_path(&l.digest)).collect(),
            repo_tags: vec![img.name.clone()],
        }
    }
}

/// The part of an OCI image config the installer reads: the uncompressed
/// digest of each layer, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// The root filesystem.
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One per layer.
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parses the config of `img`, which must list one diff ID per layer: a
    /// config that does not is an error (never "skip nothing").
    pub fn parse(bytes: &[u8], img: &ImageEntry) -> Result<Self, String> {
        let c: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|e| format!("config {} of {}: {e}", img.config.digest, img.name))?;
        if c.rootfs.diff_ids.len() != img.layers.len() {
            return Err(format!(
                "config {} of {} lists {} layer diff IDs for {} layers; hint: rebuild the bundle from the registry's image",
                img.config.digest,
                img.name,
                c.rootfs.diff_ids.len(),
                img.layers.len()
            ));
        }
        Ok(c)
    }
}

/// An OCI image layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The images.
    pub manifests: Vec<IndexEntry>,
}

/// One image of an [`OciIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// `org.opencontainers.image.ref.name`: the name to tag it with.
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl OciIndex {
    /// An index of the one image whose manifest is `manifest`, named `name`
    /// (in full: `docker.io/library/x:1`, as containerd's importer names
    /// images).
    pub fn single(manifest: &Descriptor, name: &str) -> Self {
        OciIndex {
            schema_version: 2,
            manifests: vec![IndexEntry {
                media_type: manifest.media_type.clone(),
                digest: manifest.digest.clone(),
                size: manifest.size,
                annotations: [(
                    "org.opencontainers.image.ref.name".to_owned(),
                    name.to_owned(),
                )]
                .into(),
            }],
        }
    }
}
