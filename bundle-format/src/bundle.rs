//! Reading a bundle: verify the signature first, then every entry while it
//! streams, in one pass.
//!
//! 1. Open the file (or ordered parts) and detect zstd, gzip or a plain tar
//!    by magic.
//! 2. Read `manifest.json` and `manifest.json.minisig`, both bounded in size.
//! 3. Check the signature against the trusted keys, *then* parse and validate
//!    the manifest: a [`SignedManifest`].
//! 4. Let the caller look at it (preflight) before anything is extracted.
//! 5. Stream every other entry, in the exact order the manifest implies,
//!    into an [`EntrySink`] while hashing it; refuse any mismatch, unlisted,
//!    missing, duplicate or reordered entry, link, device, fifo, hostile path
//!    or setuid bit.
//! 6. Only then hand out a [`VerifiedManifest`]: the one type later steps
//!    (applying files, loading images, compose) accept.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use manifest_schema::layout::{self, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use manifest_schema::{Descriptor, Digest, FileEntry, Manifest, Problem, RelPath};
use sha2::{Digest as _, Sha256};

use crate::frames::{self, FrameReader};
use crate::minisign::{MinisignError, PublicKey, Signature};
use crate::readahead::ReadAhead;
use crate::tarfmt::{TarError, TarReader};

/// zstd frames start with these bytes.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// gzip members start with these bytes.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// A tar header (POSIX ustar, pax or GNU) has these bytes at
/// [`TAR_MAGIC_AT`]; a bundle that starts with one is not compressed.
pub const TAR_MAGIC: &[u8; 5] = b"ustar";
/// Where [`TAR_MAGIC`] sits in the first 512-byte header.
pub const TAR_MAGIC_AT: usize = 257;
/// Largest zstd window accepted in a stream of unknown size (2^24 = 16 MiB):
/// the bundler's 4 MiB frames never need more, and a hostile stream cannot
/// make the decoder allocate more.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Compression of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// zstd (default).
    Zstd,
    /// gzip.
    Gzip,
    /// None: a plain tar file, as `tar cf` writes it.
    None,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        })
    }
}

/// Errors from reading and verifying a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file cannot be opened or read.
    #[error("{path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file is empty.
    #[error("{0}: empty file; hint: the copy is incomplete, copy the bundle again")]
    Empty(PathBuf),
    /// Unknown compression.
    #[error("{path}: not a bundle: unknown compression (first bytes {magic}); hint: bundles are tar files, zstd, gzip or not compressed, written by `bundler build`")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first bytes, hex.
        magic: String,
    },
    /// The tar stream is corrupt or truncated (includes decompression errors).
    #[error("{}; hint: the bundle is damaged or incomplete, copy it again", crate::error_text(.0))]
    Tar(TarError),
    /// The head of the archive is not manifest + signature.
    #[error("entry {index} must be {expected}, found {found:?}; hint: this is not a bundle written by `bundler build`, or it was repacked")]
    Head {
        /// 1 or 2.
        index: usize,
        /// Expected name.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// The manifest or signature is larger than allowed.
    #[error("{name} is {size} bytes, over the limit of {limit}")]
    HeadTooBig {
        /// Entry name.
        name: &'static str,
        /// Its size.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// The signature is malformed, untrusted or does not match.
    #[error("signature")]
    Signature(#[from] MinisignError),
    /// The manifest (signed) is not valid JSON for this format.
    #[error("manifest.json is signed but not valid for this format: {0}; hint: the bundle may need a newer installer")]
    ManifestJson(String),
    /// The manifest breaks the format's rules.
    #[error("manifest.json is signed but breaks the format's rules:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    ManifestRules {
        /// Every problem.
        problems: Vec<Problem>,
    },
    /// An entry is not what the manifest says may be there.
    #[error("entry {path:?}: {reason}")]
    Entry {
        /// The entry name as found (lossy).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry's size differs from the manifest's.
    #[error("entry {path}: the archive says {actual} bytes, the manifest says {expected}")]
    Size {
        /// Entry name.
        path: String,
        /// From the manifest.
        expected: u64,
        /// From the tar header.
        actual: u64,
    },
    /// An entry's content differs from the manifest's digest.
    #[error("entry {path}: sha256 mismatch: manifest says {expected}, content is {actual}")]
    Digest {
        /// Entry name.
        path: String,
        /// From the manifest.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
    /// The archive ended before every listed entry appeared.
    #[error("the archive ends before {} listed entries: {}{}; hint: the bundle is truncated, copy it again", missing.len(), missing.iter().take(5).cloned().collect::<Vec<_>>().join(", "), if missing.len() > 5 { ", …" } else { "" })]
    Missing {
        /// Missing entry names.
        missing: Vec<String>,
    },
    /// Writing an entry where the caller wanted it failed.
    #[error("writing entry {entry}")]
    Sink {
        /// Entry name.
        entry: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl From<TarError> for BundleError {
    fn from(e: TarError) -> Self {
        BundleError::Tar(e)
    }
}

impl BundleError {
    /// True when the bundle failed verification (as opposed to an I/O error
    /// on this host): the bundle, not the host, must change.
    pub fn is_verification(&self) -> bool {
        !matches!(self, BundleError::Open { .. } | BundleError::Sink { .. })
    }
}

/// A manifest whose signature checked out against a trusted key, and which
/// follows the format's rules. Its entries are not verified yet.
#[derive(Debug, Clone)]
pub struct SignedManifest {
    manifest: Manifest,
    raw: Vec<u8>,
    signature: Signature,
    signer: PublicKey,
    compression: Compression,
}

impl SignedManifest {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The manifest's bytes, as signed.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
    /// The trusted key that signed it.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }
    /// The bundle's compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }
}

/// How much of a bundle to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every entry.
    Whole,
    /// The files, the layout and the provenance only, stopping before the
    /// first image blob (an install whose engine pulls the images by digest
    /// from the site's registry): what comes after is not read, so later
    /// parts of a split bundle need not be there.
    FilesOnly,
}

/// A manifest whose signature and every entry checked out (with
/// [`Scope::FilesOnly`], every entry but the image blobs, which were not
/// read). Only [`read_bundle`] and [`read_bundle_scoped`] construct one.
#[derive(Debug, Clone)]
pub struct VerifiedManifest(SignedManifest, Scope);

impl VerifiedManifest {
    /// What was read and checked.
    pub fn scope(&self) -> Scope {
        self.1
    }
}

impl std::ops::Deref for VerifiedManifest {
    type Target = SignedManifest;
    fn deref(&self) -> &SignedManifest {
        &self.0
    }
}

/// What an entry is, per the manifest.
#[derive(Debug, Clone, Copy)]
pub enum EntryKind<'a> {
    /// An installable file.
    File(&'a FileEntry),
    /// A file of the image layout (`images/index.json`, …).
    Layout(&'a FileEntry),
    /// An image blob.
    Blob(&'a Descriptor),
    /// A blob of the provenance: a signature's or attestation's manifest,
    /// config or payload, or the index a pin names.
    Provenance(&'a Descriptor),
}

impl EntryKind<'_> {
    /// The entry's size, as the manifest declares it.
    pub fn size(self) -> u64 {
        match self {
            EntryKind::File(f) | EntryKind::Layout(f) => f.size,
            EntryKind::Blob(d) | EntryKind::Provenance(d) => d.size,
        }
    }
}

/// Receives verified entries.
pub trait EntrySink {
    /// An entry starts.
    fn begin(&mut self, name: &str, kind: EntryKind<'_>) -> io::Result<()>;
    /// The next chunk of its data.
    fn data(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// The entry ended and its size and digest matched.
    fn finish(&mut self) -> io::Result<()>;
}

impl<T: EntrySink + ?Sized> EntrySink for &mut T {
    fn begin(&mut self, name: &str, kind: EntryKind<'_>) -> io::Result<()> {
        (**self).begin(name, kind)
    }
    fn data(&mut self, chunk: &[u8]) -> io::Result<()> {
        (**self).data(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

/// A sink that keeps nothing (`verify`).
#[derive(Debug, Default)]
pub struct Discard;

impl EntrySink for Discard {
    fn begin(&mut self, _: &str, _: EntryKind<'_>) -> io::Result<()> {
        Ok(())
    }
    fn data(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that fails once more than `limit` bytes came through: the
/// decompressed stream may not be larger than the manifest says (bombs).
#[derive(Debug)]
pub struct Limited<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Limited<R> {
    /// Wraps `inner`, allowing `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        Limited {
            inner,
            remaining: limit,
        }
    }
    /// Sets how many more bytes may come through.
    pub fn set_remaining(&mut self, n: u64) {
        self.remaining = n;
    }
}

impl<R: io::BufRead> io::BufRead for Limited<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.remaining == 0 {
            return if self.inner.fill_buf()?.is_empty() {
                Ok(&[])
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the decompressed stream is larger than the manifest declares (decompression bomb or trailing data)",
                ))
            };
        }
        let max = self.remaining.min(usize::MAX as u64) as usize;
        let b = self.inner.fill_buf()?;
        let n = b.len().min(max);
        Ok(&b[..n])
    }
    fn consume(&mut self, n: usize) {
        let n = n.min(self.remaining.min(usize::MAX as u64) as usize);
        self.inner.consume(n);
        self.remaining -= n as u64;
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // One probe byte tells "exactly at the limit" from "over it".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the decompressed stream is larger than the manifest declares (decompression bomb or trailing data)",
                )),
            };
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// An open bundle: the decompressed stream and what it came from.
pub struct Input {
    /// Where it came from, for messages.
    pub origin: PathBuf,
    /// Detected compression.
    pub compression: Compression,
    reader: Box<dyn io::BufRead + Send>,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Input({}, {})", self.origin.display(), self.compression)
    }
}

/// Opens a single bundle file.
pub fn open(path: &Path) -> Result<Input, BundleError> {
    let file = File::open(path).map_err(|e| BundleError::Open {
        path: path.to_owned(),
        source: e,
    })?;
    let meta = file.metadata().map_err(|e| BundleError::Open {
        path: path.to_owned(),
        source: e,
    })?;
    if meta.is_dir() {
        return Err(BundleError::Open {
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, not a bundle file",
            ),
        });
    }
    from_reader(path, Box::new(file))
}

/// Wraps a raw (compressed) stream, detecting its compression.
pub fn from_reader(origin: &Path, raw: Box<dyn Read + Send>) -> Result<Input, BundleError> {
    // Reading the media, decompressing, and hashing and writing (the
    // caller) each run on threads of their own. The first bytes tell how to
    // read the rest; they are read again after.
    let mut raw = raw;
    let mut head = vec![0u8; TAR_MAGIC_AT + TAR_MAGIC.len()];
    let mut got = 0;
    while got < head.len() {
        match raw.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(BundleError::Open {
                    path: origin.to_owned(),
                    source: e,
                })
            }
        }
    }
    head.truncate(got);
    let raw = io::Cursor::new(head.clone()).chain(raw);
    let magic = &head[..head.len().min(4)];
    if magic.is_empty() {
        return Err(BundleError::Empty(origin.to_owned()));
    }
    if frames::is_framed(&head) {
        // The bundler's frames: decompressed on every core.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let reader = FrameReader::spawn(raw, workers).map_err(|e| BundleError::Open {
            path: origin.to_owned(),
            source: e,
        })?;
        return Ok(Input {
            origin: origin.to_owned(),
            compression: Compression::Zstd,
            reader: Box::new(reader),
        });
    }
    // Any other zstd stream (one frame of unknown size, say) or gzip: one
    // decompressing thread, fed by one reading thread. A plain tar: the
    // reading thread alone.
    let raw = ReadAhead::spawn(raw).map_err(|e| BundleError::Open {
        path: origin.to_owned(),
        source: e,
    })?;
    let (compression, reader): (Compression, Box<dyn Read + Send>) =
        if magic.starts_with(&ZSTD_MAGIC) {
            let mut d =
                zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| BundleError::Open {
                    path: origin.to_owned(),
                    source: e,
                })?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| BundleError::Open {
                    path: origin.to_owned(),
                    source: e,
                })?;
            (Compression::Zstd, Box::new(d))
        } else if magic.starts_with(&GZIP_MAGIC) {
            (
                Compression::Gzip,
                Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
            )
        } else if head.get(TAR_MAGIC_AT..) == Some(TAR_MAGIC.as_slice()) {
            // Already on its own reading thread.
            return Ok(Input {
                origin: origin.to_owned(),
                compression: Compression::None,
                reader: Box::new(raw),
            });
        } else {
            return Err(BundleError::UnknownFormat {
                path: origin.to_owned(),
                magic: manifest_schema::digest::hex(magic),
            });
        };
    // Decompression runs on its own thread; hashing and writing on the
    // caller's.
    let reader = ReadAhead::spawn(reader).map_err(|e| BundleError::Open {
        path: origin.to_owned(),
        source: e,
    })?;
    Ok(Input {
        origin: origin.to_owned(),
        compression,
        reader: Box::new(reader),
    })
}

struct Expected<'m> {
    name: String,
    kind: EntryKind<'m>,
    size: u64,
    digest: &'m Digest,
    mode: u32,
}

/// The archive's entries after the manifest and its signature, in the one
/// order the bundler writes them and the reader requires: the files by
/// path, the image layout's files as listed, the provenance's blobs
/// (signatures, attestations) by digest, then the images' carried blobs by
/// digest. Each with its name in the archive.
pub fn entry_order(m: &Manifest) -> Vec<(String, EntryKind<'_>)> {
    expected_entries(m, Scope::Whole)
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect()
}

fn expected_entries(m: &Manifest, scope: Scope) -> Vec<Expected<'_>> {
    let mut v = Vec::new();
    let mut files: Vec<&FileEntry> = m.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for f in files {
        v.push(Expected {
            name: layout::file_entry(&f.path),
            kind: EntryKind::File(f),
            size: f.size,
            digest: &f.sha256,
            mode: f.mode,
        });
    }
    for f in &m.layout {
        v.push(Expected {
            name: f.path.to_string(),
            kind: EntryKind::Layout(f),
            size: f.size,
            digest: &f.sha256,
            mode: f.mode,
        });
    }
    for d in m.provenance_blobs() {
        v.push(Expected {
            name: layout::blob_entry(&d.digest),
            kind: EntryKind::Provenance(d),
            size: d.size,
            digest: &d.digest,
            mode: 0o644,
        });
    }
    let provenance: std::collections::BTreeSet<&Digest> = v.iter().map(|e| e.digest).collect();
    for d in m.carried_image_blobs() {
        if scope == Scope::FilesOnly {
            break;
        }
        if provenance.contains(&d.digest) {
            continue;
        }
        v.push(Expected {
            name: layout::blob_entry(&d.digest),
            kind: EntryKind::Blob(d),
            size: d.size,
            digest: &d.digest,
            mode: 0o644,
        });
    }
    v
}

/// Bytes of tar framing allowed per entry beyond its padded data (header
/// plus a possible PAX header).
const FRAMING_PER_ENTRY: u64 = 3 * 512 + 4096;
/// Trailing zero padding allowed after the end-of-archive marker.
const END_SLACK: u64 = 64 * 1024;

fn padded(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

fn read_small<R: Read>(
    tar: &mut TarReader<R>,
    index: usize,
    name: &'static str,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    let h = tar.next_header()?.ok_or(BundleError::Head {
        index,
        expected: name,
        found: "end of archive".into(),
    })?;
    if h.path != name.as_bytes() || !h.is_file() {
        return Err(BundleError::Head {
            index,
            expected: name,
            found: format!("{} {}", h.kind_name(), String::from_utf8_lossy(&h.path)),
        });
    }
    if h.size > limit {
        return Err(BundleError::HeadTooBig {
            name,
            size: h.size,
            limit,
        });
    }
    let mut data = Vec::with_capacity(h.size as usize);
    let mut buf = [0u8; 8192];
    tar.read_data::<BundleError>(h.size, &mut buf, |c| {
        data.extend_from_slice(c);
        Ok(())
    })?;
    Ok(data)
}

/// Reads and verifies a whole bundle; see the module docs for the steps.
///
/// `on_head` runs after the signature and manifest checked out and before
/// any other entry is read; an error from it stops everything.
pub fn read_bundle<E: From<BundleError>>(
    input: Input,
    keys: &[PublicKey],
    on_head: impl FnOnce(&SignedManifest) -> Result<(), E>,
    sink: &mut dyn EntrySink,
) -> Result<VerifiedManifest, E> {
    read_bundle_scoped(input, keys, Scope::Whole, on_head, sink)
}

/// [`read_bundle`], reading only what `scope` says.
pub fn read_bundle_scoped<E: From<BundleError>>(
    input: Input,
    keys: &[PublicKey],
    scope: Scope,
    on_head: impl FnOnce(&SignedManifest) -> Result<(), E>,
    sink: &mut dyn EntrySink,
) -> Result<VerifiedManifest, E> {
    let head_limit =
        3 * FRAMING_PER_ENTRY + padded(MAX_MANIFEST_BYTES) + padded(MAX_SIGNATURE_BYTES);
    let mut tar = TarReader::new(Limited::new(input.reader, head_limit));
    let raw = read_small(&mut tar, 1, layout::MANIFEST, MAX_MANIFEST_BYTES)?;
    let sig_bytes = read_small(&mut tar, 2, layout::SIGNATURE, MAX_SIGNATURE_BYTES)?;
    let sig_text = std::str::from_utf8(&sig_bytes)
        .map_err(|_| BundleError::Signature(MinisignError::BadSignature("not UTF-8")))?;
    let signature = Signature::parse(sig_text).map_err(BundleError::from)?;
    // The signature is checked before the manifest is even parsed.
    let signer = signature
        .verify(&raw, keys)
        .map_err(BundleError::from)?
        .clone();
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| BundleError::ManifestJson(e.to_string()))?;
    manifest_schema::validate_manifest(&manifest)
        .map_err(|problems| BundleError::ManifestRules { problems })?;
    let signed = SignedManifest {
        manifest,
        raw,
        signature,
        signer,
        compression: input.compression,
    };
    on_head(&signed)?;

    let expected = expected_entries(&signed.manifest, Scope::Whole);
    let body: u64 = expected
        .iter()
        .map(|e| FRAMING_PER_ENTRY + padded(e.size))
        .sum();
    tar.get_mut().set_remaining(body + END_SLACK);
    let wanted = expected_entries(&signed.manifest, scope).len();
    stream_entries(&mut tar, &expected[..wanted], scope, sink)?;
    Ok(VerifiedManifest(signed, scope))
}

fn stream_entries<R: io::BufRead>(
    tar: &mut TarReader<R>,
    expected: &[Expected<'_>],
    scope: Scope,
    sink: &mut dyn EntrySink,
) -> Result<(), BundleError> {
    let position: std::collections::HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let mut next = 0usize;
    loop {
        // A partial read stops before the next header: what follows may be
        // on media that is not there.
        if scope == Scope::FilesOnly && next == expected.len() {
            return Ok(());
        }
        let Some(h) = tar.next_header()? else { break };
        let shown = String::from_utf8_lossy(&h.path).into_owned();
        let entry_err = |reason: String| BundleError::Entry {
            path: shown.clone(),
            reason,
        };
        if !h.is_file() {
            let link = if h.link.is_empty() {
                String::new()
            } else {
                format!(" to {:?}", String::from_utf8_lossy(&h.link))
            };
            return Err(entry_err(format!(
                "is a {}{link}; bundles hold only regular files (links and devices are refused: they can point outside the install dir)",
                h.kind_name()
            )));
        }
        if let Err(e) = RelPath::from_bytes(&h.path) {
            return Err(entry_err(format!(
                "{} (path traversal attempt refused)",
                e.reason
            )));
        }
        if h.mode & !0o777 != 0 {
            return Err(entry_err(format!(
                "mode {:o} has setuid, setgid or sticky bits, which bundles never carry",
                h.mode
            )));
        }
        let Some(&idx) = position.get(shown.as_str()) else {
            return Err(entry_err(
                "is not listed in the manifest (unlisted entries are refused)".into(),
            ));
        };
        if idx < next {
            return Err(entry_err("appears twice".into()));
        }
        if idx > next {
            return Err(entry_err(format!(
                "is out of order: expected {:?} here",
                expected[next].name
            )));
        }
        let e = &expected[idx];
        if h.size != e.size {
            return Err(BundleError::Size {
                path: e.name.clone(),
                expected: e.size,
                actual: h.size,
            });
        }
        if h.mode & 0o777 != e.mode {
            return Err(entry_err(format!(
                "mode {:o} differs from the manifest's {:o}",
                h.mode & 0o777,
                e.mode
            )));
        }
        let sink_err = |source| BundleError::Sink {
            entry: e.name.clone(),
            source,
        };
        sink.begin(&e.name, e.kind).map_err(sink_err)?;
        let mut hasher = Sha256::new();
        tar.read_data_in_place::<BundleError>(h.size, |c| {
            hasher.update(c);
            sink.data(c).map_err(sink_err)
        })?;
        let actual = Digest::from_sha256_bytes(&hasher.finalize().into());
        if &actual != e.digest {
            return Err(BundleError::Digest {
                path: e.name.clone(),
                expected: e.digest.clone(),
                actual,
            });
        }
        sink.finish().map_err(sink_err)?;
        next += 1;
    }
    if next < expected.len() {
        return Err(BundleError::Missing {
            missing: expected[next..].iter().map(|e| e.name.clone()).collect(),
        });
    }
    Ok(())
}

/// What `inspect` shows without a trusted key: the head, *unverified*.
#[derive(Debug, Clone)]
pub struct UnverifiedHead {
    /// The manifest as found (not checked against any key).
    pub manifest: Manifest,
    /// The signature as found.
    pub signature: Signature,
    /// Compression.
    pub compression: Compression,
}

/// Reads the manifest and signature without checking them, for display only.
pub fn read_head_unverified(input: Input) -> Result<UnverifiedHead, BundleError> {
    let head_limit =
        3 * FRAMING_PER_ENTRY + padded(MAX_MANIFEST_BYTES) + padded(MAX_SIGNATURE_BYTES);
    let mut tar = TarReader::new(Limited::new(input.reader, head_limit));
    let raw = read_small(&mut tar, 1, layout::MANIFEST, MAX_MANIFEST_BYTES)?;
    let sig_bytes = read_small(&mut tar, 2, layout::SIGNATURE, MAX_SIGNATURE_BYTES)?;
    let signature = Signature::parse(&String::from_utf8_lossy(&sig_bytes))?;
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| BundleError::ManifestJson(e.to_string()))?;
    Ok(UnverifiedHead {
        manifest,
        signature,
        compression: input.compression,
    })
}
