//! [`KeyId`]: a minisign key id, parsed once wherever it is read (the
//! spec's `trust.revoke`, the manifest's trust change, key files).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An 8-byte minisign key id, shown as minisign shows it (16 uppercase hex
/// digits: the bytes read as a little-endian number). Parsed case-blind.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("invalid key id {s:?}: expected 16 hex digits"));
        }
        u64::from_str_radix(s, 16)
            .map(|n| KeyId(n.to_le_bytes()))
            .map_err(|e| format!("invalid key id {s:?}: {e}"))
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.to_string()
    }
}

impl JsonSchema for KeyId {
    fn schema_name() -> Cow<'static, str> {
        "KeyId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9A-Fa-f]{16}$",
            "description": "A minisign key id: 16 hex digits, as minisign prints them"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_reads_back_as_minisign_prints_it() {
        let id = KeyId([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(id.to_string(), "0807060504030201");
        assert_eq!("0807060504030201".parse::<KeyId>(), Ok(id));
        assert_eq!(
            "0807060504030a0b".parse::<KeyId>().unwrap().to_string(),
            "0807060504030A0B"
        );
    }

    #[test]
    fn a_malformed_key_id_is_refused_naming_it() {
        for bad in [
            "",
            "12",
            "nothex0000000000",
            "+807060504030201",
            "08070605040302011",
        ] {
            let e = bad.parse::<KeyId>().unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("16 hex digits"),
                "{e}"
            );
        }
        let e = serde_json::from_str::<KeyId>("\"12\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid key id \"12\": expected 16 hex digits"),
            "{e}"
        );
    }
}
