//! minisign secret keys: generate, read (encrypted with scrypt or not), sign.
//!
//! Secret key file: an `untrusted comment:` line, then base64 of
//! `"Ed" || kdf ("Sc" or 0 0) || "B2" || salt[32] || opslimit u64le ||
//! memlimit u64le || keynum_sk[104]`, where `keynum_sk = key_id[8] ||
//! ed25519_sk[64] || BLAKE2b-256("Ed" || key_id || sk)[32]`, XORed with
//! scrypt(password, salt) when encrypted. These are minisign's own formats,
//! so `minisign -G` keys sign bundles and `minisign -V` checks them.
//!
//! Encrypted keys are made and opened by the `minisign` crate (minisign's
//! author's Rust port: its scrypt parameters are libsodium's), so the key
//! derivation is not ours to get wrong; this file copies the key it opened
//! into memory that is zeroed on drop, and signs with `ed25519-dalek`.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use bundle_format::minisign::{KeyId, PublicKey, Signature, UNTRUSTED};
use ed25519_dalek::SigningKey;
use zeroize::{Zeroize, Zeroizing};

/// Environment variable read for the secret key's password.
pub const PASSWORD_ENV: &str = "BUNDLER_KEY_PASSWORD";

/// Errors about keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is not a minisign secret key.
    #[error("{path}: not a minisign secret key: {why}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Wrong password (or a damaged file).
    #[error("{0}: wrong password, or the key file is damaged (its checksum does not match); hint: set {PASSWORD_ENV} or type the password the key was made with")]
    Checksum(String),
    /// The key is encrypted and no password is available.
    #[error("{0}: the key is encrypted and no password was given; hint: set {PASSWORD_ENV} or run on a terminal")]
    NoPassword(String),
    /// Refusing to overwrite.
    #[error("{0}: already exists; refusing to overwrite a key file; hint: choose another path or move the old key away")]
    Exists(String),
    /// Permissions too open.
    #[error("{path}: secret key is readable by others (mode {mode:04o}); hint: chmod 600 {path}")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The `minisign` crate could not make or open an encrypted key.
    #[error("{path}: {why}")]
    Encrypted {
        /// The file.
        path: String,
        /// What the crate said.
        why: String,
    },
}

/// An ed25519 secret key with its minisign key id. The key bytes are zeroed
/// on drop and never printed.
pub struct SecretKey {
    id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.id)
    }
}

fn checksum(id: &KeyId, sk: &[u8; 64]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(b"Ed");
    h.update(id.0);
    h.update(sk);
    h.finalize().into()
}

/// Opens an encrypted key line with the `minisign` crate: the key ID and
/// the 64-byte ed25519 secret key, in a copy that is zeroed on drop.
fn decrypt(
    line: &str,
    password: &str,
    shown: &str,
) -> Result<(KeyId, Zeroizing<[u8; 64]>), KeyError> {
    let boxed = minisign::SecretKeyBox::from_string(&format!("{UNTRUSTED}\n{line}\n"));
    let sk = boxed
        .and_then(|b| b.into_secret_key(Some(password.to_owned())))
        .map_err(|e| match e.kind() {
            minisign::ErrorKind::Verify => KeyError::Checksum(shown.to_owned()),
            _ => KeyError::Encrypted {
                path: shown.to_owned(),
                why: e.to_string(),
            },
        })?;
    // The opened key serialises as the file's layout with `keynum_sk` in
    // the clear: the id at 54, the secret key at 62.
    let raw = Zeroizing::new(sk.to_bytes());
    let mut key = Zeroizing::new([0u8; 64]);
    key.copy_from_slice(&raw[62..126]);
    Ok((KeyId(raw[54..62].try_into().expect("8 bytes")), key))
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut id = [0u8; 8];
        getrandom::getrandom(seed.as_mut()).expect("OS randomness");
        getrandom::getrandom(&mut id).expect("OS randomness");
        SecretKey {
            id: KeyId(id),
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Reads a secret key file; `password` is asked for only if the key is
    /// encrypted.
    pub fn read(
        path: &Path,
        password: impl FnOnce() -> Option<Zeroizing<String>>,
    ) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs_err::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path: shown, mode });
            }
        }
        let text = Zeroizing::new(fs_err::read_to_string(path)?);
        let bad = |why| KeyError::Format {
            path: shown.clone(),
            why,
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(UNTRUSTED))
            .ok_or(bad("no key line"))?;
        let raw = Zeroizing::new(
            B64.decode(line)
                .map_err(|_| bad("key line is not base64"))?,
        );
        if raw.len() != 158 {
            return Err(bad("key line is not 158 bytes"));
        }
        if &raw[0..2] != b"Ed" || &raw[4..6] != b"B2" {
            return Err(bad("unknown signature or checksum algorithm"));
        }
        let encrypted = match &raw[2..4] {
            b"Sc" => true,
            [0, 0] => false,
            _ => return Err(bad("unknown key derivation algorithm")),
        };
        let (id, sk) = if encrypted {
            let pw = password().ok_or_else(|| KeyError::NoPassword(shown.clone()))?;
            decrypt(line, &pw, &shown)?
        } else {
            let id = KeyId(raw[54..62].try_into().expect("8 bytes"));
            let mut sk = Zeroizing::new([0u8; 64]);
            sk.copy_from_slice(&raw[62..126]);
            // minisign 0.11 leaves the checksum zero in unencrypted (-W)
            // keys; the public-half check below still catches a damaged key.
            let unchecked = raw[126..158].iter().all(|b| *b == 0);
            if !unchecked && checksum(&id, &sk)[..] != raw[126..158] {
                return Err(KeyError::Checksum(shown));
            }
            (id, sk)
        };
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&sk[..32]);
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes()[..] != sk[32..] {
            return Err(KeyError::Checksum(shown));
        }
        Ok(SecretKey { id, key })
    }

    /// The key as an unencrypted minisign secret key file (`minisign -W`'s
    /// layout, with the checksum filled in).
    pub fn to_unencrypted_file(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(158));
        raw.extend_from_slice(b"Ed\0\0B2");
        // Salt, opslimit and memlimit: unused without a key derivation.
        raw.extend_from_slice(&[0u8; 48]);
        let mut sk = Zeroizing::new([0u8; 64]);
        sk[..32].copy_from_slice(self.key.as_bytes());
        sk[32..].copy_from_slice(self.key.verifying_key().as_bytes());
        raw.extend_from_slice(&self.id.0);
        raw.extend_from_slice(sk.as_ref());
        raw.extend_from_slice(&checksum(&self.id, &sk));
        let mut out = Zeroizing::new(format!("{UNTRUSTED}minisign secret key (unencrypted)\n"));
        out.push_str(&B64.encode(raw.as_slice()));
        out.push('\n');
        out
    }

    /// Signs `message` (prehashed, minisign's default) with a trusted comment.
    pub fn sign(&self, message: &[u8], trusted_comment: &str) -> Signature {
        bundle_format::minisign::sign(
            &self.key,
            self.id,
            message,
            trusted_comment,
            format!("signature from bundler secret key {}", self.id),
        )
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        // SigningKey zeroizes itself (ed25519-dalek's `zeroize` feature);
        // the id is not secret but costs nothing to clear.
        self.id.0.zeroize();
    }
}

/// Writes `contents` to a new file with `mode`; never overwrites.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.display().to_string())
            } else {
                KeyError::Io(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ))
            }
        })?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Generates a key pair into two new files (secret 0600, public 0644).
pub fn keygen(secret: &Path, public: &Path, password: Option<&str>) -> Result<PublicKey, KeyError> {
    for p in [secret, public] {
        if p.exists() {
            return Err(KeyError::Exists(p.display().to_string()));
        }
    }
    let (text, pk) = match password {
        None => {
            let sk = SecretKey::generate();
            (sk.to_unencrypted_file(), sk.public())
        }
        Some(pw) => {
            let failed = |e: minisign::PError| KeyError::Encrypted {
                path: secret.display().to_string(),
                why: e.to_string(),
            };
            let pair = minisign::KeyPair::generate_encrypted_keypair(Some(pw.to_owned()))
                .map_err(failed)?;
            let text = Zeroizing::new(pair.sk.to_box(None).map_err(failed)?.into_string());
            let pk = PublicKey::parse(&pair.pk.to_box().map_err(failed)?.into_string()).map_err(
                |e| KeyError::Encrypted {
                    path: public.display().to_string(),
                    why: e.to_string(),
                },
            )?;
            (text, pk)
        }
    };
    write_new(secret, text.as_bytes(), 0o600)?;
    if let Err(e) = write_new(public, pk.to_file().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(secret);
        return Err(e);
    }
    Ok(pk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unencrypted_round_trip_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        let pk = keygen(&s, &p, None).unwrap();
        let sk = SecretKey::read(&s, || None).unwrap();
        assert_eq!(sk.public(), pk);
        let sig = sk.sign(b"msg", "name:demo");
        sig.verify(b"msg", &[pk]).unwrap();
        assert!(matches!(keygen(&s, &p, None), Err(KeyError::Exists(_))));
        assert_eq!(
            format!("{sk:?}"),
            format!("SecretKey({}, <redacted>)", sk.id())
        );
    }

    #[test]
    fn stock_minisign_encrypted_keys_open_with_their_password_and_no_other() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = (dir.path().join("m.key"), dir.path().join("m.pub"));
        let mut child = Command::new("minisign")
            .args(["-G", "-s"])
            .arg(&s)
            .arg("-p")
            .arg(&p)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("minisign (scripts/install-deps.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"tr0ub4dor\ntr0ub4dor\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
        let stock = PublicKey::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();

        let pw = || Some(Zeroizing::new("tr0ub4dor".to_owned()));
        let sk = SecretKey::read(&s, pw).unwrap();
        assert_eq!(sk.public(), stock);
        // What it signs, stock minisign verifies with its own public key.
        let msg = dir.path().join("msg");
        std::fs::write(&msg, b"bundle manifest").unwrap();
        let sig = sk.sign(b"bundle manifest", "name:demo");
        std::fs::write(dir.path().join("msg.minisig"), sig.to_file()).unwrap();
        let out = Command::new("minisign")
            .args(["-V", "-m"])
            .arg(&msg)
            .arg("-p")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let e = SecretKey::read(&s, || Some(Zeroizing::new("Tr0ub4dor".into()))).unwrap_err();
        assert!(matches!(e, KeyError::Checksum(_)), "{e}");
        let e = SecretKey::read(&s, || None).unwrap_err();
        assert!(matches!(e, KeyError::NoPassword(_)), "{e}");
    }

    #[test]
    fn an_encrypted_key_made_here_opens_with_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        let pk = keygen(&s, &p, Some("correct horse")).unwrap();
        let text = std::fs::read_to_string(&s).unwrap();
        assert!(text.starts_with("untrusted comment: "), "{text}");
        assert_eq!(
            PublicKey::parse(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            pk
        );
        let sk = SecretKey::read(&s, || Some(Zeroizing::new("correct horse".into()))).unwrap();
        assert_eq!(sk.public(), pk);
        sk.sign(b"m", "t").verify(b"m", &[pk]).unwrap();
    }

    #[test]
    fn refuses_group_readable_secret_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        keygen(&s, &p, None).unwrap();
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = SecretKey::read(&s, || None).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!(
                "secret key is readable by others (mode 0640); hint: chmod 600 {}",
                s.display()
            )),
            "{e}"
        );
    }
}
