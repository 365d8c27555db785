//! The spec, `bundle.yaml`: what the vendor asks the bundler to build.
//!
//! Parsing from YAML happens in the bundler (this crate stays free of a YAML
//! dependency); the types carry `deny_unknown_fields` so a typo is an error
//! that names the field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Compose, EnvVar, Health, Hooks, Platform, RelPath, Version, VersionReq};

/// The bundler's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Product name, `[a-z0-9][a-z0-9._-]*`; used in file names.
    pub name: String,
    /// Product version (semver).
    pub version: Version,
    /// Platforms to bundle; defaults to `linux/amd64`.
    #[serde(default = "default_platforms")]
    pub platforms: Vec<Platform>,
    /// Images, each pinned by digest.
    pub images: Vec<SpecImage>,
    /// The compose project.
    pub compose: Compose,
    /// Files to install, read relative to the spec's directory.
    #[serde(default)]
    pub files: Vec<SpecFile>,
    /// Settings the stack reads from `.env`.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// How to tell the stack is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Hook scripts (install-dir paths of bundled files).
    #[serde(default)]
    pub hooks: Hooks,
    /// Installed versions this bundle may upgrade from, e.g. `>=1.2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_from: Option<VersionReq>,
    /// Oldest installer that may install this bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_installer_version: Option<Version>,
    /// Public keys to trust after this bundle installs (paths of minisign
    /// `.pub` files), and key ids to revoke.
    #[serde(default, skip_serializing_if = "SpecTrust::is_empty")]
    pub trust: SpecTrust,
    /// An installer binary to carry; installers older than `version` replace
    /// themselves with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<SpecInstaller>,
    /// Who must have signed the images (cosign), by default.
    #[serde(default, skip_serializing_if = "SpecProvenance::is_empty")]
    pub provenance: SpecProvenance,
}

/// The provenance policy of the spec: the cosign public keys (ECDSA P-256
/// PEM files, as `cosign generate-key-pair` writes them) that must each have
/// signed every image, unless an image names its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecProvenance {
    /// Paths of cosign public key files, relative to the spec's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cosign_keys: Vec<String>,
}

impl SpecProvenance {
    /// True when the spec asks for no signature.
    pub fn is_empty(&self) -> bool {
        self.cosign_keys.is_empty()
    }
}

/// Trust changes of the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecTrust {
    /// Paths of minisign public key files, relative to the spec's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Key ids to revoke (16 hex digits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoke: Vec<String>,
}

impl SpecTrust {
    /// True when the spec changes no trust.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.revoke.is_empty()
    }
}

/// The installer binary to carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecInstaller {
    /// Path of the (static) installer binary, relative to the spec's directory.
    pub src: String,
    /// The version it reports.
    pub version: Version,
}

/// Default target platforms.
pub fn default_platforms() -> Vec<Platform> {
    vec!["linux/amd64".parse().expect("valid platform literal")]
}

/// One image of the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecImage {
    /// `registry/repo:tag@sha256:<digest>`; the tag is the name compose uses,
    /// the digest pins the content.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Name to tag the image with on the target, when compose uses another
    /// name than the registry's (e.g. `vendor/app:1.4.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The cosign public keys that must each have signed this image,
    /// instead of `provenance.cosign_keys`; `[]` asks for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign_keys: Option<Vec<String>>,
}

/// One file of the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Source path, relative to the spec's directory.
    pub src: String,
    /// Destination inside the install dir.
    pub dest: RelPath,
    /// Octal mode as a string, e.g. `"0755"`; defaults to `"0644"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}
