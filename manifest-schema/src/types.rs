//! Types shared by the spec and the manifest.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RelPath;

/// A target platform, `os/arch[/variant]`, e.g. `linux/amd64`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in OCI spelling, e.g. `amd64`, `arm64`.
    pub arch: String,
    /// Variant, e.g. `v8`, when relevant.
    pub variant: Option<String>,
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch or os/arch/variant, e.g. linux/amd64"
            )),
        }
    }
}

impl TryFrom<String> for Platform {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

impl JsonSchema for Platform {
    fn schema_name() -> Cow<'static, str> {
        "Platform".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9_]+/[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?$",
            "description": "os/arch[/variant], e.g. linux/amd64"
        })
    }
}

/// The compose project: its pinned name and its files (install-dir paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compose {
    /// Project name passed as `-p`, so it never depends on the directory name.
    pub project: String,
    /// Compose files, in order, as paths inside the install dir.
    pub files: Vec<RelPath>,
    /// Images the stack uses that the bundle does not carry, because the
    /// target host has them already: the completeness checks accept them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<String>,
}

/// How a secret value is generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Generate {
    /// 32 random bytes as 64 hex digits.
    Hex32,
    /// 16 random bytes as 32 hex digits.
    Hex16,
    /// 32 random bytes as unpadded URL-safe base64.
    Base64_32,
}

/// One setting the stack reads from `.env`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name, `[A-Za-z_][A-Za-z0-9_]*`.
    pub key: String,
    /// What it is for, shown to the operator when it is missing.
    pub description: String,
    /// Whether the install refuses to proceed without a value.
    #[serde(default = "yes")]
    pub required: bool,
    /// Value written to `.env` when the key first appears and has no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Generate a random secret when the key first appears; never rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
    /// The value decrypts stored data: it must never change, and the operator
    /// is reminded to back it up off-host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrotatable: bool,
    /// The release owns the value: every install, upgrade and rollback sets
    /// it to the bundle's `default` (a stack-wide version pin such as
    /// `APP_VERSION`). An operator's own edit is refused, not overwritten,
    /// unless `--set` names the value to use.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub managed: bool,
}

fn yes() -> bool {
    true
}

/// How the installer decides the stack is healthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// URL that must answer 2xx; `${VAR}` is read from `.env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Also wait for every container with a compose healthcheck to be healthy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compose_healthchecks: bool,
    /// Seconds to wait before declaring the stack unhealthy.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    120
}

/// Scripts the installer runs at fixed points (install-dir paths, run with `/bin/sh`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Runs before anything changes on an upgrade; its output dir is the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_upgrade: Option<RelPath>,
    /// Runs after a healthy install or upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<RelPath>,
    /// Restores a backup made by `pre_upgrade` (`installer rollback --restore-data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RelPath>,
}

impl Hooks {
    /// Every hook that is set, with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &RelPath)> {
        [
            ("pre_upgrade", &self.pre_upgrade),
            ("post_install", &self.post_install),
            ("restore", &self.restore),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.as_ref().map(|p| (n, p)))
    }
}
