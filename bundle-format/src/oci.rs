//! The image JSON both binaries read or write, typed once: the
//! docker-archive `manifest.json` entry (the bundler writes it into the
//! bundle's layout, the installer streams it into `docker load`) and the part
//! of an image config the installer reads.

use manifest_schema::{Descriptor, Digest, ImageEntry};
use serde::{Deserialize, Serialize};

/// How a layer blob is compressed, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// `…tar+gzip`, `…tar.gzip` (Docker's).
    Gzip,
    /// `…tar+zstd`.
    Zstd,
}

impl LayerCompression {
    /// The compression `media_type` names, if any.
    pub fn of(media_type: &str) -> Option<Self> {
        let m = media_type.to_ascii_lowercase();
        if m.ends_with("gzip") {
            Some(LayerCompression::Gzip)
        } else if m.ends_with("zstd") {
            Some(LayerCompression::Zstd)
        } else {
            None
        }
    }
}

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

/// The media type of an OCI image index.
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The annotation naming an image of an OCI layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image index: an image layout's `index.json`, a multi-platform
/// tag, the referrers fallback tag. Fields are declared in sorted order, as
/// serde_json wrote them before this type existed, so bundles stay the same
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciIndex {
    /// The manifests it lists.
    pub manifests: Vec<IndexEntry>,
    /// [`OCI_INDEX_MEDIA_TYPE`]; optional in an image layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Always 2.
    pub schema_version: u32,
}

/// One manifest of an [`OciIndex`]: an OCI descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// Annotations; in a layout, [`REF_NAME`] is the name to tag it with.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// What kind of artifact it is (a referrer's, e.g. a cosign signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The platform it is for, in a multi-platform index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<IndexPlatform>,
    /// The manifest's size.
    pub size: u64,
}

/// An [`IndexEntry`]'s platform, spelled as the OCI image spec does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPlatform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl IndexEntry {
    /// The entry for the manifest `manifest`, with no platform or annotation.
    pub fn of(manifest: &Descriptor) -> Self {
        IndexEntry {
            annotations: Default::default(),
            artifact_type: None,
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            platform: None,
            size: manifest.size,
        }
    }

    /// The entry for `img`'s platform manifest, with its platform.
    pub fn platform_of(img: &ImageEntry) -> Self {
        IndexEntry {
            platform: Some(IndexPlatform {
                architecture: img.platform.arch.clone(),
                os: img.platform.os.clone(),
                variant: img.platform.variant.clone(),
            }),
            ..IndexEntry::of(&img.manifest)
        }
    }

    /// The same entry, naming the image `name` ([`REF_NAME`]).
    pub fn named(mut self, name: &str) -> Self {
        self.annotations
            .insert(REF_NAME.to_owned(), name.to_owned());
        self
    }
}

impl OciIndex {
    /// An index (with its media type) of these manifests.
    pub fn of(manifests: Vec<IndexEntry>) -> Self {
        OciIndex {
            manifests,
            media_type: Some(OCI_INDEX_MEDIA_TYPE.to_owned()),
            schema_version: 2,
        }
    }

    /// An index of the one image whose manifest is `manifest`, named `name`
    /// (in full: `docker.io/library/x:1`, as containerd's importer names
    /// images).
    pub fn single(manifest: &Descriptor, name: &str) -> Self {
        OciIndex::of(vec![IndexEntry::of(manifest).named(name)])
    }

    /// The bytes, as they are written and pushed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(hex_digit: char) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::from_hex(&hex_digit.to_string().repeat(64)).unwrap(),
            size: 7,
        }
    }

    #[test]
    fn a_layers_compression_is_read_from_any_spelling_of_its_media_type() {
        use LayerCompression::*;
        for (media_type, want) in [
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Some(Gzip),
            ),
            ("APPLICATION/VND.OCI.IMAGE.LAYER.V1.TAR+GZIP", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            ("application/vnd.oci.image.layer.v1.Tar+Zstd", Some(Zstd)),
            ("application/vnd.oci.image.layer.v1.tar", None),
            ("application/vnd.docker.image.rootfs.diff.tar", None),
            // Encrypted layers are not ours to decompress.
            (
                "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                None,
            ),
            ("", None),
        ] {
            assert_eq!(LayerCompression::of(media_type), want, "{media_type}");
        }
    }

    #[test]
    fn a_layout_index_is_written_as_before_the_type() {
        // The bytes bundles carried when the index was built from untyped
        // JSON (keys sorted): the same spec must still give the same bundle.
        let mut e = IndexEntry::of(&desc('a')).named("acme/web:1");
        e.platform = Some(IndexPlatform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: Some("v7".into()),
        });
        let want = concat!(
            r#"{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"acme/web:1"},"#,
            r#""digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","#,
            r#""mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""platform":{"architecture":"arm","os":"linux","variant":"v7"},"size":7}],"#,
            r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
        assert_eq!(
            String::from_utf8(OciIndex::of(vec![e]).to_bytes()).unwrap(),
            want
        );
    }

    #[test]
    fn a_referrers_index_keeps_what_cosign_listed() {
        // What another tool put under the fallback tag comes back typed,
        // artifact type and annotations included, and is written back so.
        let theirs = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":7,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","annotations":{"k":"v"}}]}"#;
        let i: OciIndex = serde_json::from_slice(theirs).unwrap();
        assert_eq!(i.manifests[0].digest, desc('b').digest);
        let again: OciIndex = serde_json::from_slice(&i.to_bytes()).unwrap();
        assert_eq!(again, i);
        assert_eq!(
            again.manifests[0].artifact_type.as_deref(),
            Some("application/vnd.dev.cosign.artifact.sig.v1+json")
        );
        assert_eq!(again.manifests[0].annotations["k"], "v");
    }

    #[test]
    fn an_index_missing_a_descriptor_field_is_an_error() {
        let bad = br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}"#;
        assert!(serde_json::from_slice::<OciIndex>(bad).is_err());
    }
}
