//! The manifest, `manifest.json`: what a bundle contains, signed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Compose, Digest, EnvVar, Health, Hooks, Platform, RelPath, Version, VersionReq};

/// The signed description of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version ([`crate::layout::FORMAT_VERSION`]).
    pub format: u32,
    /// Product name.
    pub name: String,
    /// Product version.
    pub version: Version,
    /// Creation time, RFC 3339 UTC (from `SOURCE_DATE_EPOCH` when set).
    pub created: String,
    /// Oldest installer that may install this bundle.
    pub min_installer_version: Version,
    /// Platforms the bundle carries images for.
    pub platforms: Vec<Platform>,
    /// Installable files (`files/<path>` in the archive).
    pub files: Vec<FileEntry>,
    /// The image layout's own files (`images/oci-layout`, `images/index.json`,
    /// `images/manifest.json`), by archive entry name.
    pub layout: Vec<FileEntry>,
    /// Images, one per name and platform.
    pub images: Vec<ImageEntry>,
    /// The compose project.
    pub compose: Compose,
    /// Settings the stack reads from `.env`.
    pub env: Vec<EnvVar>,
    /// How to tell the stack is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Hook scripts.
    #[serde(default)]
    pub hooks: Hooks,
    /// Installed versions this bundle may upgrade from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_from: Option<VersionReq>,
    /// Set on a delta bundle: blobs left out because the target has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// Keys to trust, and keys to stop trusting, once this bundle installs.
    #[serde(default, skip_serializing_if = "TrustChange::is_empty")]
    pub trust: TrustChange,
    /// The installer binary the bundle carries (one of `files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<BundledInstaller>,
    /// The cosign public keys the provenance policy names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cosign_keys: Vec<CosignKey>,
    /// The cosign signatures and attestations carried for the images' pinned
    /// digests, one entry per pinned image that has any or must have one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Provenance>,
}

/// A cosign public key (ECDSA P-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CosignKey {
    /// sha256 of the key's DER `SubjectPublicKeyInfo`.
    pub id: Digest,
    /// The key in PEM (`-----BEGIN PUBLIC KEY-----`), as the vendor gave it.
    pub pem: String,
}

/// The provenance of one pinned image: what signed it, and its attestations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The pinned reference, as the images' `source`.
    pub source: String,
    /// What the signatures are over: the manifest (or index) the pin names.
    /// An index is carried as a blob of its own, so that the platform
    /// manifests can be tied to it offline.
    pub subject: Descriptor,
    /// Ids of the keys (among `cosign_keys`) that must each have signed it;
    /// empty when the policy asks for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_keys: Vec<Digest>,
    /// The signature and attestation manifests found for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

/// What a cosign artifact holds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// Signatures over a simple-signing payload naming the digest.
    Signature,
    /// DSSE envelopes holding in-toto statements (SBOMs, provenance, …).
    Attestation,
}

/// One cosign signature or attestation manifest, with its blobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// What it holds.
    pub kind: ArtifactKind,
    /// The tag it was found under (cosign's `sha256-<hex>.sig` or `.att`);
    /// none for an OCI 1.1 referrer, found through its `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest, byte-identical to the registry's.
    pub manifest: Descriptor,
    /// Its config.
    pub config: Descriptor,
    /// Its layers: the payloads or envelopes.
    pub layers: Vec<Descriptor>,
    /// The predicate types of an attestation's layers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicate_types: Vec<String>,
}

impl Artifact {
    /// Every blob it needs: manifest, config and layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        [&self.manifest, &self.config]
            .into_iter()
            .chain(self.layers.iter())
    }
}

/// A change to the install's trusted keys, signed like everything else: a
/// vendor rotates keys by shipping the next key in a bundle signed by the
/// current one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustChange {
    /// Public keys to trust after a successful install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<TrustedKey>,
    /// Key ids (16 hex digits, as minisign prints them) to revoke after a
    /// successful install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoke: Vec<crate::KeyId>,
}

impl TrustChange {
    /// True when the bundle changes no trust.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.revoke.is_empty()
    }
}

/// One public key carried by a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// Key id, 16 hex digits.
    pub id: crate::KeyId,
    /// The key line of a minisign public key file (base64).
    pub key: String,
}

/// The installer binary a bundle carries, installed as
/// [`crate::layout::INSTALLER_PATH`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundledInstaller {
    /// Its path among `files`.
    pub path: RelPath,
    /// Its version: an older installer replaces itself with this one.
    pub version: Version,
}

/// One file in the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path: install-dir path for `files`, archive entry name for `layout`.
    pub path: RelPath,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content.
    pub sha256: Digest,
    /// Permission bits (at most 0o777).
    pub mode: u32,
}

/// A content descriptor (OCI).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// Media type as the registry served it.
    pub media_type: String,
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// One image for one platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// The name compose uses and the engine tags, e.g. `demo/web:1.0.0`.
    pub name: String,
    /// The pinned reference it was pulled from.
    pub source: String,
    /// The platform of this manifest.
    pub platform: Platform,
    /// The image manifest.
    pub manifest: Descriptor,
    /// The image config; its digest is the engine's image ID.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
}

impl ImageEntry {
    /// Every blob this image needs: manifest, config and layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        [&self.manifest, &self.config]
            .into_iter()
            .chain(self.layers.iter())
    }
}

/// What a delta bundle expects the target to hold already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    /// The installed version the inventory was taken from.
    pub base_version: Version,
    /// Blobs referenced by the images but not in the archive.
    pub present_blobs: Vec<Digest>,
}

impl Manifest {
    /// Every distinct blob of the provenance (signatures, attestations and
    /// index subjects) that no image uses, sorted by digest. The archive
    /// carries them all, before the image blobs; a delta never leaves them
    /// out.
    pub fn provenance_blobs(&self) -> Vec<&Descriptor> {
        let images: std::collections::BTreeSet<&Digest> =
            self.all_blobs().into_iter().map(|d| &d.digest).collect();
        let mut v: Vec<&Descriptor> = self
            .provenance
            .iter()
            .flat_map(|p| {
                std::iter::once(&p.subject).chain(p.artifacts.iter().flat_map(Artifact::blobs))
            })
            .filter(|d| !images.contains(&d.digest))
            .collect();
        v.sort_by(|a, b| a.digest.cmp(&b.digest));
        v.dedup_by(|a, b| a.digest == b.digest);
        v
    }

    /// The provenance entry of a pinned image, by its source.
    pub fn provenance_of(&self, source: &str) -> Option<&Provenance> {
        self.provenance.iter().find(|p| p.source == source)
    }

    /// A cosign key of the policy, by id.
    pub fn cosign_key(&self, id: &Digest) -> Option<&CosignKey> {
        self.cosign_keys.iter().find(|k| &k.id == id)
    }

    /// Every distinct blob the images reference, sorted by digest.
    pub fn all_blobs(&self) -> Vec<&Descriptor> {
        let mut v: Vec<&Descriptor> = self.images.iter().flat_map(ImageEntry::blobs).collect();
        v.sort_by(|a, b| a.digest.cmp(&b.digest));
        v.dedup_by(|a, b| a.digest == b.digest);
        v
    }

    /// The image blobs the archive carries: all of them less a delta's
    /// present ones, sorted by digest.
    pub fn carried_image_blobs(&self) -> Vec<&Descriptor> {
        let present = self
            .delta
            .as_ref()
            .map(|d| d.present_blobs.as_slice())
            .unwrap_or(&[]);
        self.all_blobs()
            .into_iter()
            .filter(|d| !present.contains(&d.digest))
            .collect()
    }

    /// Every blob the archive carries, in archive order: the provenance's,
    /// then the images'.
    pub fn carried_blobs(&self) -> Vec<&Descriptor> {
        let mut v = self.provenance_blobs();
        v.extend(self.carried_image_blobs());
        v
    }

    /// Sum of the sizes of everything the archive carries, for disk checks.
    pub fn payload_size(&self) -> u64 {
        let files: u64 = self.files.iter().chain(&self.layout).map(|f| f.size).sum();
        files + self.carried_blobs().iter().map(|d| d.size).sum::<u64>()
    }
}

/// The signed index of a split bundle (`NAME.parts.json`, with a minisign
/// signature beside it as `NAME.parts.json.minisig`). Each part is a plain
/// byte range of the bundle; the index lets any part be checked on its own.
/// (The bundle's own manifest cannot list the parts: it is inside part 1.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartsIndex {
    /// Format version.
    pub format: u32,
    /// File name of the whole bundle the parts make up.
    pub bundle: String,
    /// Product name.
    pub name: String,
    /// Product version.
    pub version: Version,
    /// Size of the whole bundle.
    pub size: u64,
    /// sha256 of the whole bundle.
    pub sha256: Digest,
    /// Largest part size requested.
    pub part_size: u64,
    /// The parts, in order.
    pub parts: Vec<Part>,
}

/// One part of a split bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// 1-based number.
    pub index: usize,
    /// File name.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the part.
    pub sha256: Digest,
}

/// What a target holds (`installer inventory`), the input of a delta build
/// (`bundler build --have`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Format version.
    pub format: u32,
    /// Installed product, empty when nothing is installed.
    pub name: String,
    /// Installed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// When the inventory was taken, RFC 3339 UTC.
    pub created: String,
    /// Blobs in the installer's own store (kept for the current and the
    /// previous release): a delta may leave these out.
    pub blobs: Vec<Digest>,
    /// Image IDs (config digests) the engine holds; informational: a delta
    /// relies only on `blobs`, which the installer keeps itself.
    #[serde(default)]
    pub engine_images: Vec<Digest>,
    /// The engine, its version and its store, as `installer status` names
    /// them (informational: what the vendor's delta will be loaded into).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}
