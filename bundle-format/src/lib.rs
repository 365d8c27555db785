//! What the vendor's `bundler` and the target's `installer` (and `fuzz/`)
//! must agree on, kept below both so that neither binary links the other.
//!
//! The byte format, in the order a bundle is read:
//! 1. [`parts`]: a split bundle's signed parts index, and the parts read as
//!    one stream;
//! 2. [`frames`] and [`readahead`]: the zstd frames decompressed on every
//!    core, the media read ahead;
//! 3. [`tarfmt`]: the strict tar reader and writer (regular files only);
//! 4. [`minisign`]: the signature over the manifest, checked before the
//!    manifest is parsed;
//! 5. [`bundle`]: the verifying reader; only it makes a
//!    [`bundle::VerifiedManifest`];
//! 6. [`oci`]: the docker-archive and image-config JSON, typed once;
//! 7. [`cosign`]: the images' cosign signatures and attestations, checked
//!    offline with the vendor's keys.
//!
//! The writing side, behind the feature `write` (the bundler's; the
//! installer builds without it): `writer` (every entry in the one order,
//! each blob re-hashed as it is written), `encode` (zstd frames on every
//! core, or gzip), `output` (one file or split parts, hashed as written)
//! and `minisign::sign`.
//!
//! And what both sides do the same way:
//! 1. [`safefs`]: every write into a directory that someone else may write
//!    to (the install dir, the state dir, the bundler's output and cache
//!    dirs) goes through [`safefs::Root`] or [`safefs::write_atomic`]:
//!    an unpredictable temp name created exclusively, no link followed at
//!    either end, then a rename.
//! 2. [`envfile`]: `.env` read as compose reads it, and written changing
//!    only the values it sets.
//! 3. [`compose`]: the compose model (files in order, `extends`, `include`,
//!    profiles, interpolation) resolved to the image each service runs:
//!    the bundler's completeness check and the installer's preflight.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bundle;
pub mod compose;
pub mod cosign;
pub mod dockerconfig;
#[cfg(feature = "write")]
pub mod encode;
pub mod envfile;
pub mod frames;
pub mod minisign;
pub mod oci;
#[cfg(feature = "write")]
pub mod output;
pub mod parts;
pub mod readahead;
pub mod safefs;
pub mod tarfmt;
#[cfg(feature = "write")]
pub mod writer;

/// The size and sha256 of everything `r` reads: the one hashing loop of
/// files (parts, installed files, the self-updated installer).
pub fn sha256_reader(mut r: impl std::io::Read) -> std::io::Result<(u64, manifest_schema::Digest)> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((
        n,
        manifest_schema::Digest::from_sha256_bytes(&h.finalize().into()),
    ))
}

/// An error and its causes on one line, as `{:#}` prints them. Our errors
/// either keep their cause as the source and leave it out of their own
/// message, or (when the message goes on after the cause, e.g. with a hint)
/// print it and keep no source: either way each cause is said once.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
