//! The bundle writer (feature `write`): every entry, in the one order the
//! reader requires ([`crate::bundle::entry_order`]).
//!
//! 1. The signed manifest, then its signature.
//! 2. The files and the image layout files, from memory.
//! 3. The blobs, each read from where the caller keeps it, written at the
//!    level its media type wants ([`is_precompressed`] blobs at
//!    [`PRECOMPRESSED_LEVEL`]), and hashed on a thread of its own behind the
//!    archiving ([`HashBehind`]).
//! 4. Every blob's digest checked against the manifest once all are
//!    written: the caller renames the output into place only after that, so
//!    a blob that changed on disk since it was verified still fails the
//!    build.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use manifest_schema::layout;
use manifest_schema::{Descriptor, Digest, FileEntry, Manifest};

use crate::bundle::{entry_order, EntryKind};
use crate::encode::{is_precompressed, Encoder, PRECOMPRESSED_LEVEL};
use crate::minisign::Signature;
use crate::output::HashBehind;
use crate::tarfmt::TarWriter;

/// What a bundle holds besides its blobs, in memory.
#[derive(Debug)]
pub struct Contents<'a> {
    /// The manifest the bytes are of.
    pub manifest: &'a Manifest,
    /// The manifest's bytes, as signed.
    pub manifest_bytes: &'a [u8],
    /// The signature over them.
    pub signature: &'a Signature,
    /// Each file the manifest lists, with its bytes.
    pub files: &'a [(FileEntry, Vec<u8>)],
    /// Each image layout file, by name, with its bytes.
    pub layout: &'a [(String, Vec<u8>)],
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Writing the archive.
    #[error("writing the bundle")]
    Output(#[source] io::Error),
    /// Reading a blob.
    #[error("{}", path.display())]
    Blob {
        /// Where it was read from.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A blob's bytes are not the ones the manifest names.
    #[error("blob {digest} has content {actual}")]
    Mismatch {
        /// What the manifest says.
        digest: Digest,
        /// What was read.
        actual: Digest,
    },
    /// The manifest lists an entry the contents do not hold.
    #[error("the manifest lists {0}, which the contents do not hold")]
    Missing(String),
}

/// Writes every entry of `c` into `tar` at zstd level `level`, each blob
/// read from the file `blob_path` names, calling `advance` with the bytes of
/// each file and blob chunk written.
pub fn write_entries<W: Write>(
    tar: &mut TarWriter<Encoder<W>>,
    c: &Contents<'_>,
    level: i32,
    blob_path: &dyn Fn(&Digest) -> PathBuf,
    advance: &dyn Fn(u64),
) -> Result<(), WriteError> {
    let out = WriteError::Output;
    tar.file(layout::MANIFEST, c.manifest_bytes, 0o644)
        .map_err(out)?;
    tar.file(layout::SIGNATURE, c.signature.to_file().as_bytes(), 0o644)
        .map_err(out)?;
    let mut hashes = HashBehind::spawn(1 << 20).map_err(out)?;
    let mut current_level = level;
    let mut written: Vec<&Descriptor> = Vec::new();
    for (name, kind) in entry_order(c.manifest) {
        let b = match kind {
            EntryKind::File(f) => {
                let (_, data) = c
                    .files
                    .iter()
                    .find(|(e, _)| e.path == f.path)
                    .ok_or_else(|| WriteError::Missing(name.clone()))?;
                tar.file(&name, data, f.mode).map_err(out)?;
                advance(f.size);
                continue;
            }
            EntryKind::Layout(f) => {
                let (_, data) = c
                    .layout
                    .iter()
                    .find(|(n, _)| *n == f.path.as_str())
                    .ok_or_else(|| WriteError::Missing(name.clone()))?;
                tar.file(&name, data, f.mode).map_err(out)?;
                continue;
            }
            EntryKind::Blob(b) | EntryKind::Provenance(b) => b,
        };
        written.push(b);
        // Already-compressed layers do not shrink: searching them for
        // matches at the chosen level only costs time.
        let want = if is_precompressed(&b.media_type) {
            level.min(PRECOMPRESSED_LEVEL)
        } else {
            level
        };
        if want != current_level {
            tar.get_mut().set_level(want).map_err(out)?;
            current_level = want;
        }
        let path = blob_path(&b.digest);
        let blob_err = |source| WriteError::Blob {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&path).map_err(blob_err)?;
        tar.header(&name, b.size, 0o644).map_err(out)?;
        let mut left = b.size;
        while left > 0 {
            let mut buf = hashes.buffer();
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want]).map_err(blob_err)?;
            if n == 0 {
                // Shorter than the manifest says: a mismatch, whatever the
                // bytes read so far hash to.
                hashes.end_blob();
                let actual = hashes.finish().pop().unwrap_or_else(|| b.digest.clone());
                return Err(WriteError::Mismatch {
                    digest: b.digest.clone(),
                    actual,
                });
            }
            tar.data(&buf[..n]).map_err(out)?;
            buf.truncate(n);
            hashes.hash(buf);
            left -= n as u64;
            advance(n as u64);
        }
        hashes.end_blob();
        tar.pad(b.size).map_err(out)?;
    }
    let digests = hashes.finish();
    if digests.len() != written.len() {
        return Err(out(io::Error::other(
            "the hashing thread stopped before every blob was hashed",
        )));
    }
    for (b, actual) in written.iter().zip(digests) {
        if actual != b.digest {
            return Err(WriteError::Mismatch {
                digest: b.digest.clone(),
                actual,
            });
        }
    }
    Ok(())
}
