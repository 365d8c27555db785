//! Content digests: `sha256:` followed by 64 lowercase hex digits.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A sha256 content digest in OCI form (`sha256:<64 lowercase hex>`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError(String);

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// Builds a digest from 32 raw sha256 bytes.
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Self {
        Digest(format!("sha256:{}", hex(bytes)))
    }

    /// Builds a digest from 64 lowercase hex digits (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        format!("sha256:{hex}").parse()
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let Some(h) = s.strip_prefix("sha256:") else {
            return Err(DigestError(format!(
                "invalid digest {s:?}: expected sha256:<64 hex digits>"
            )));
        };
        if h.len() != 64
            || !h
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError(format!(
                "invalid digest {s:?}: expected sha256:<64 lowercase hex digits>"
            )));
        }
        Ok(Digest(s.to_owned()))
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, DigestError> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl JsonSchema for Digest {
    fn schema_name() -> Cow<'static, str> {
        "Digest".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^sha256:[0-9a-f]{64}$",
            "description": "A sha256 content digest"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::no_prefix("abc", "invalid digest \"abc\": expected sha256:<64 hex digits>")]
    #[case::short(
        "sha256:abcd",
        "invalid digest \"sha256:abcd\": expected sha256:<64 lowercase hex digits>"
    )]
    #[case::uppercase(
        "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        "invalid digest \"sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\": expected sha256:<64 lowercase hex digits>"
    )]
    #[case::sha512(
        "sha512:00",
        "invalid digest \"sha512:00\": expected sha256:<64 hex digits>"
    )]
    fn rejects_malformed(#[case] input: &str, #[case] message: &str) {
        assert_eq!(input.parse::<Digest>().unwrap_err().to_string(), message);
    }

    #[test]
    fn round_trips_and_exposes_hex() {
        let d = Digest::from_sha256_bytes(&[0xab; 32]);
        assert_eq!(d.hex(), "ab".repeat(32));
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
        assert_eq!(d.short(), "abababababab");
    }
}
