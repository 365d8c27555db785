//! minisign's public key and signature formats, and verification.
//!
//! Public key file: an `untrusted comment:` line, then base64 of
//! `"Ed" || key_id[8] || ed25519_pk[32]`.
//!
//! Signature file: an `untrusted comment:` line; base64 of
//! `"ED" || key_id[8] || sig[64]` where `sig` signs BLAKE2b-512(message)
//! (the legacy `"Ed"` form, which signs the message itself, is refused:
//! the bundler never writes it); a `trusted comment:` line; and
//! base64 of a global signature over `sig || trusted_comment`, which binds the
//! trusted comment to the signature.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use blake2::{Blake2b512, Digest as _};
use ed25519_dalek::{Signature as EdSignature, VerifyingKey};

/// Prefix of the first line of every minisign file.
pub const UNTRUSTED: &str = "untrusted comment: ";
/// Prefix of a signature's third line.
pub const TRUSTED: &str = "trusted comment: ";

/// Errors from parsing or verifying minisign data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MinisignError {
    /// The text is not a minisign public key.
    #[error("not a minisign public key: {0}")]
    BadPublicKey(&'static str),
    /// The text is not a minisign signature.
    #[error("not a minisign signature: {0}")]
    BadSignature(&'static str),
    /// No trusted key has the signature's key id.
    #[error("signed by key {found}, which is not trusted (trusted: {trusted}); hint: install with the vendor's public key, or add it with `installer trust add`")]
    UntrustedKey {
        /// Key id in the signature.
        found: String,
        /// Trusted key ids.
        trusted: String,
    },
    /// The signing key was revoked on this host.
    #[error("signed by key {0}, which was revoked on this host; hint: ask the vendor for a bundle signed with their current key")]
    Revoked(String),
    /// The signature does not match the data.
    #[error("signature by key {0} does not match the signed data: the manifest was altered or the signature belongs to another file")]
    Mismatch(String),
    /// The trusted comment was altered.
    #[error("the trusted comment of the signature by key {0} was altered")]
    CommentMismatch(String),
}

pub use manifest_schema::KeyId;

/// A minisign (ed25519) public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Key id.
    pub id: KeyId,
    /// The ed25519 key.
    pub key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

fn decode_line(line: &str, len: usize) -> Option<Vec<u8>> {
    let b = B64.decode(line.trim()).ok()?;
    (b.len() == len).then_some(b)
}

impl PublicKey {
    /// Parses a public key file (or the bare base64 line).
    pub fn parse(text: &str) -> Result<Self, MinisignError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(UNTRUSTED))
            .ok_or(MinisignError::BadPublicKey("no key line"))?;
        let b = decode_line(line, 42).ok_or(MinisignError::BadPublicKey(
            "key line is not 42 bytes of base64",
        ))?;
        if &b[..2] != b"Ed" {
            return Err(MinisignError::BadPublicKey(
                "unknown algorithm (expected Ed)",
            ));
        }
        let id = KeyId(b[2..10].try_into().expect("8 bytes"));
        let key = VerifyingKey::from_bytes(b[10..42].try_into().expect("32 bytes"))
            .map_err(|_| MinisignError::BadPublicKey("not a valid ed25519 point"))?;
        Ok(PublicKey { id, key })
    }

    /// The key line of a public key file (base64 of `Ed`, id, key).
    pub fn key_line(&self) -> String {
        let mut b = Vec::with_capacity(42);
        b.extend_from_slice(b"Ed");
        b.extend_from_slice(&self.id.0);
        b.extend_from_slice(self.key.as_bytes());
        B64.encode(b)
    }

    /// The key as a minisign public key file.
    pub fn to_file(&self) -> String {
        format!(
            "{UNTRUSTED}minisign public key {}\n{}\n",
            self.id,
            self.key_line()
        )
    }
}

/// Signature algorithm of a minisign signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `ED`: signs BLAKE2b-512 of the message (minisign's default, and the
    /// only form the bundler writes; the legacy `Ed` form that signs the
    /// message itself is refused).
    Prehashed,
}

/// A parsed minisign signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Id of the signing key.
    pub key_id: KeyId,
    /// Signature over the (hashed) message.
    pub signature: [u8; 64],
    /// Untrusted comment (free text, not covered by any signature).
    pub untrusted_comment: String,
    /// Trusted comment (covered by the global signature).
    pub trusted_comment: String,
    /// Signature over `signature || trusted_comment`.
    pub global_signature: [u8; 64],
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signature(key {}, {:?})",
            self.key_id, self.trusted_comment
        )
    }
}

impl Signature {
    /// Parses a `.minisig` file.
    pub fn parse(text: &str) -> Result<Self, MinisignError> {
        let bad = MinisignError::BadSignature;
        // Like minisign, ignore every carriage return at the end of a line:
        // a signature copied through a CRLF tool still verifies, and one
        // written back out reads the same (found by fuzzing).
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let untrusted = lines
            .next()
            .and_then(|l| l.strip_prefix(UNTRUSTED))
            .ok_or(bad("first line must start with `untrusted comment: `"))?;
        let sig = decode_line(lines.next().ok_or(bad("missing signature line"))?, 74)
            .ok_or(bad("signature line is not 74 bytes of base64"))?;
        let trusted = lines
            .next()
            .and_then(|l| l.strip_prefix(TRUSTED))
            .ok_or(bad("third line must start with `trusted comment: `"))?;
        let global = decode_line(
            lines.next().ok_or(bad("missing global signature line"))?,
            64,
        )
        .ok_or(bad("global signature line is not 64 bytes of base64"))?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(bad("unexpected text after the global signature"));
        }
        let algorithm = match &sig[..2] {
            b"ED" => Algorithm::Prehashed,
            b"Ed" => {
                return Err(bad(
                    "legacy non-prehashed signature (Ed), which the bundler never writes; hint: sign with the bundler, or with minisign 0.8 or newer (ED)",
                ))
            }
            _ => return Err(bad("unknown algorithm (expected ED)")),
        };
        Ok(Signature {
            algorithm,
            key_id: KeyId(sig[2..10].try_into().expect("8 bytes")),
            signature: sig[10..74].try_into().expect("64 bytes"),
            untrusted_comment: untrusted.to_owned(),
            trusted_comment: trusted.to_owned(),
            global_signature: global.try_into().expect("64 bytes"),
        })
    }

    /// The signature as a `.minisig` file.
    pub fn to_file(&self) -> String {
        let mut b = Vec::with_capacity(74);
        b.extend_from_slice(match self.algorithm {
            Algorithm::Prehashed => b"ED",
        });
        b.extend_from_slice(&self.key_id.0);
        b.extend_from_slice(&self.signature);
        format!(
            "{UNTRUSTED}{}\n{}\n{TRUSTED}{}\n{}\n",
            self.untrusted_comment,
            B64.encode(b),
            self.trusted_comment,
            B64.encode(self.global_signature)
        )
    }

    /// Verifies `message` against the first of `keys` whose id matches.
    /// Returns that key.
    pub fn verify<'k>(
        &self,
        message: &[u8],
        keys: &'k [PublicKey],
    ) -> Result<&'k PublicKey, MinisignError> {
        let key = keys.iter().find(|k| k.id == self.key_id).ok_or_else(|| {
            MinisignError::UntrustedKey {
                found: self.key_id.to_string(),
                trusted: if keys.is_empty() {
                    "none".into()
                } else {
                    keys.iter()
                        .map(|k| k.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }
        })?;
        let sig = EdSignature::from_bytes(&self.signature);
        let ok = match self.algorithm {
            Algorithm::Prehashed => key.key.verify_strict(&prehash(message), &sig),
        };
        ok.map_err(|_| MinisignError::Mismatch(key.id.to_string()))?;
        let mut global_msg = self.signature.to_vec();
        global_msg.extend_from_slice(self.trusted_comment.as_bytes());
        key.key
            .verify_strict(
                &global_msg,
                &EdSignature::from_bytes(&self.global_signature),
            )
            .map_err(|_| MinisignError::CommentMismatch(key.id.to_string()))?;
        Ok(key)
    }
}

/// BLAKE2b-512 of `message`, what `ED` signatures sign.
pub fn prehash(message: &[u8]) -> [u8; 64] {
    Blake2b512::digest(message).into()
}

/// Signs `message` as minisign does by default: the signature over its
/// BLAKE2b-512 ([`prehash`]), then the global signature over that
/// signature and the trusted comment. `id` is `key`'s id (feature `write`).
#[cfg(any(test, feature = "write"))]
pub fn sign(
    key: &ed25519_dalek::SigningKey,
    id: KeyId,
    message: &[u8],
    trusted_comment: &str,
    untrusted_comment: String,
) -> Signature {
    use ed25519_dalek::Signer as _;
    let signature = key.sign(&prehash(message)).to_bytes();
    let mut global = signature.to_vec();
    global.extend_from_slice(trusted_comment.as_bytes());
    Signature {
        algorithm: Algorithm::Prehashed,
        key_id: id,
        signature,
        untrusted_comment,
        trusted_comment: trusted_comment.to_owned(),
        global_signature: key.sign(&global).to_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn sign(sk: &SigningKey, id: KeyId, msg: &[u8], comment: &str) -> Signature {
        super::sign(sk, id, msg, comment, "signature".into())
    }

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk = PublicKey {
            id: KeyId([seed; 8]),
            key: sk.verifying_key(),
        };
        (sk, pk)
    }

    #[test]
    fn legacy_signatures_of_the_message_itself_are_refused() {
        use base64::engine::general_purpose::STANDARD as B64;
        use base64::Engine as _;
        let (sk, pk) = key(2);
        let good = sign(&sk, pk.id, b"hello", "t");
        // The same file, but the legacy algorithm over the message itself.
        let mut raw = b"Ed".to_vec();
        raw.extend_from_slice(&good.key_id.0);
        raw.extend_from_slice(&sk.sign(b"hello").to_bytes());
        let line = good.to_file().lines().nth(1).unwrap().to_owned();
        let legacy = good.to_file().replace(&line, &B64.encode(&raw));
        let e = Signature::parse(&legacy).unwrap_err().to_string();
        assert!(e.contains("legacy non-prehashed signature (Ed)"), "{e}");
    }

    #[test]
    fn carriage_returns_at_line_ends_are_ignored_as_minisign_does() {
        let (sk, pk) = key(1);
        let sig = sign(&sk, pk.id, b"hello", "name:demo version:1.0.0");
        let crlf = sig.to_file().replace('\n', "\r\n");
        let many = sig.to_file().replace("1.0.0\n", "1.0.0\r\r\r\n");
        for text in [crlf, many] {
            let parsed = Signature::parse(&text).unwrap();
            assert_eq!(parsed, sig);
            parsed.verify(b"hello", std::slice::from_ref(&pk)).unwrap();
            assert_eq!(Signature::parse(&parsed.to_file()).unwrap(), parsed);
        }
    }

    #[test]
    fn round_trips_and_verifies() {
        let (sk, pk) = key(1);
        let sig = sign(&sk, pk.id, b"hello", "name:demo version:1.0.0");
        let parsed = Signature::parse(&sig.to_file()).unwrap();
        assert_eq!(parsed, sig);
        assert_eq!(PublicKey::parse(&pk.to_file()).unwrap(), pk);
        assert_eq!(
            parsed
                .verify(b"hello", std::slice::from_ref(&pk))
                .unwrap()
                .id,
            pk.id
        );
    }

    #[test]
    fn refuses_altered_message_comment_and_unknown_key() {
        let (sk, pk) = key(1);
        let (_, other) = key(2);
        let mut sig = sign(&sk, pk.id, b"hello", "c");
        let keys = [pk.clone()];
        assert_eq!(
            sig.verify(b"hellO", &keys).unwrap_err().to_string(),
            format!("signature by key {} does not match the signed data: the manifest was altered or the signature belongs to another file", pk.id)
        );
        assert!(matches!(
            sig.verify(b"hello", &[other]),
            Err(MinisignError::UntrustedKey { .. })
        ));
        sig.trusted_comment = "c2".into();
        assert_eq!(
            sig.verify(b"hello", &keys),
            Err(MinisignError::CommentMismatch(pk.id.to_string()))
        );
    }

    #[test]
    fn rejects_malformed_files() {
        assert_eq!(
            Signature::parse("hello").unwrap_err(),
            MinisignError::BadSignature("first line must start with `untrusted comment: `")
        );
        assert_eq!(
            PublicKey::parse("untrusted comment: x\nAAAA\n").unwrap_err(),
            MinisignError::BadPublicKey("key line is not 42 bytes of base64")
        );
    }

    #[test]
    fn key_id_prints_like_minisign() {
        assert_eq!(
            KeyId([1, 2, 3, 4, 5, 6, 7, 8]).to_string(),
            "0807060504030201"
        );
    }
}
