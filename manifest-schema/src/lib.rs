//! The bundle format: one definition shared by the bundler and the installer.
//!
//! 1. [`Spec`] is what a vendor writes (`bundle.yaml`).
//! 2. [`Manifest`] is what the bundler signs and the installer verifies.
//! 3. [`validate_spec`] and [`validate_manifest`] check the rules the types
//!    cannot express (duplicates, reserved paths, references between fields).
//! 4. [`layout`] names every archive entry and fixes their order.
//! 5. [`spec_schema`] and [`manifest_schema`] give the JSON Schemas committed
//!    under `manifest-schema/schema/`.
//!
//! The crate is pure: no I/O, no clock, no randomness.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod digest;
pub mod key_id;
pub mod layout;
pub mod manifest;
pub mod path;
pub mod reference;
pub mod spec;
pub mod types;
pub mod validate;
pub mod version;

pub use digest::{Digest, DigestError};
pub use key_id::KeyId;
pub use manifest::{
    Artifact, ArtifactKind, BundledInstaller, CosignKey, Delta, Descriptor, FileEntry, ImageEntry,
    Inventory, Manifest, Part, PartsIndex, Provenance, TrustChange, TrustedKey,
};
pub use path::{PathError, RelPath};
pub use reference::{ImageRef, RefError};
pub use spec::{Spec, SpecFile, SpecImage, SpecInstaller, SpecProvenance, SpecTrust};
pub use types::{Compose, EnvVar, Generate, Health, Hooks, Platform};
pub use validate::{validate_manifest, validate_spec, Parsed, ParsedImage, Problem};
pub use version::{Version, VersionError, VersionReq};

/// The JSON Schema of [`Spec`], pretty-printed with a trailing newline.
pub fn spec_schema() -> String {
    let mut s =
        serde_json::to_string_pretty(&schemars::schema_for!(Spec)).expect("schema serializes");
    s.push('\n');
    s
}

/// The JSON Schema of [`Manifest`], pretty-printed with a trailing newline.
pub fn manifest_schema() -> String {
    let mut s =
        serde_json::to_string_pretty(&schemars::schema_for!(Manifest)).expect("schema serializes");
    s.push('\n');
    s
}

/// The JSON Schema of [`PartsIndex`], pretty-printed with a trailing newline.
pub fn parts_schema() -> String {
    let mut s = serde_json::to_string_pretty(&schemars::schema_for!(PartsIndex))
        .expect("schema serializes");
    s.push('\n');
    s
}

/// The JSON Schema of [`Inventory`], pretty-printed with a trailing newline.
pub fn inventory_schema() -> String {
    let mut s =
        serde_json::to_string_pretty(&schemars::schema_for!(Inventory)).expect("schema serializes");
    s.push('\n');
    s
}

/// Parses a size with an optional K/M/G (powers of 1000) or Ki/Mi/Gi (powers
/// of 1024) suffix, e.g. `4G`, `3900Mi`, `512Ki`, `1000000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!(
            "invalid size {s:?}: expected a number with an optional K, M, G, Ki, Mi or Gi suffix"
        )
    })?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "k" | "KB" => 1000,
        "M" | "MB" => 1000 * 1000,
        "G" | "GB" => 1000 * 1000 * 1000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use K, M, G, Ki, Mi or Gi)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid size {s:?}: zero or too large"))
}

/// RFC 3339 UTC time of a Unix timestamp, e.g. `2024-01-02T03:04:05Z`.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_sizes() {
        assert_eq!(super::parse_size("4G").unwrap(), 4_000_000_000);
        assert_eq!(super::parse_size("3900Mi").unwrap(), 3900 << 20);
        assert_eq!(super::parse_size("512Ki").unwrap(), 512 << 10);
        assert_eq!(super::parse_size("1000").unwrap(), 1000);
        assert_eq!(
            super::parse_size("4X").unwrap_err(),
            "invalid size \"4X\": unknown unit \"X\" (use K, M, G, Ki, Mi or Gi)"
        );
        assert!(super::parse_size("0").is_err());
    }

    #[test]
    fn formats_times() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
