//! The archive layout, written down once.
//!
//! A bundle is one tar stream, compressed with zstd (default) or gzip, whose
//! entries come in this order:
//!
//! 1. [`MANIFEST`]: the manifest (JSON), listing every other entry with its
//!    size and sha256;
//! 2. [`SIGNATURE`]: a minisign signature over the manifest's bytes;
//! 3. `files/<dest>` ([`FILES_DIR`]): the files the bundle installs, sorted by
//!    path;
//! 4. `images/` ([`IMAGES_DIR`]): an OCI image layout: [`OCI_LAYOUT`],
//!    [`OCI_INDEX`], a docker-archive [`DOCKER_MANIFEST`] over the same blobs
//!    (so `docker load` and `podman load` read the tree as it is), then
//!    `images/blobs/sha256/<hex>`: first the provenance's blobs (cosign
//!    signatures and attestations, see [`crate::Provenance`]) sorted by
//!    digest, then the images' blobs sorted by digest. The signatures come
//!    before the images so that a reader that stops before the image blobs
//!    still has them.
//!
//! Having the manifest and its signature first is what lets the installer
//! check the signature before it reads, let alone writes, anything else.
//! Every entry is a regular file with mode 0644 or 0755, uid/gid 0 and a
//! fixed mtime; there are no directory, link or device entries.
//!
//! A zstd bundle is a run of independent zstd frames, each holding at most
//! [`ZSTD_FRAME`] bytes of the tar stream and declaring its content size, so
//! the installer can decompress several at once (any frames of at most
//! [`ZSTD_FRAME_MAX`] bytes are read that way; a stream whose first frame
//! declares no size is read as one ordinary zstd stream).
//!
//! A split bundle is that same byte stream cut into parts
//! ([`part_file_name`]), plus a signed part index ([`parts_index_name`]) that
//! lists each part's size and sha256 so any part can be checked on its own.

/// First entry: the manifest.
pub const MANIFEST: &str = "manifest.json";
/// Second entry: the minisign signature of the manifest.
pub const SIGNATURE: &str = "manifest.json.minisig";
/// Directory of installable files inside the archive.
pub const FILES_DIR: &str = "files";
/// Directory of the OCI image layout inside the archive.
pub const IMAGES_DIR: &str = "images";
/// The OCI layout marker file.
pub const OCI_LAYOUT: &str = "images/oci-layout";
/// The OCI index.
pub const OCI_INDEX: &str = "images/index.json";
/// The docker-archive manifest read by `docker load` / `podman load`.
pub const DOCKER_MANIFEST: &str = "images/manifest.json";
/// Directory holding the blobs.
pub const BLOBS_DIR: &str = "images/blobs/sha256";
/// Content of [`OCI_LAYOUT`].
pub const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// The installer's own state dir inside an install dir; bundles never write here.
pub const STATE_DIR: &str = ".installer";
/// The operator's settings file; bundles never manage it.
pub const ENV_FILE: &str = ".env";
/// Where pre-upgrade backups go inside an install dir.
pub const BACKUPS_DIR: &str = "backups";
/// Where a bundled installer binary goes inside an install dir.
pub const INSTALLER_PATH: &str = "bin/installer";
/// Paths (and their subtrees) that a bundle may never manage.
pub const RESERVED: &[&str] = &[
    STATE_DIR,
    ENV_FILE,
    BACKUPS_DIR,
    OVERRIDE_FILES[0],
    OVERRIDE_FILES[1],
    OVERRIDE_FILES[2],
    OVERRIDE_FILES[3],
];
/// The override files compose loads by default after the main file: the
/// operator's own changes go there. A bundle may not ship one; the installer
/// passes the one it finds after the bundle's compose files.
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];
/// Upper bound on the manifest's size, checked before it is read whole.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Upper bound on the signature's size.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
/// Bytes of the tar stream the bundler puts in one zstd frame.
pub const ZSTD_FRAME: usize = 4 << 20;
/// Largest frame content the installer decompresses in parallel; a later
/// frame over it (or with no declared size) is refused.
pub const ZSTD_FRAME_MAX: usize = 8 << 20;
/// Format version written by this crate.
pub const FORMAT_VERSION: u32 = 1;

/// Archive entry name of the blob with this digest.
pub fn blob_entry(digest: &crate::Digest) -> String {
    format!("{BLOBS_DIR}/{}", digest.hex())
}

/// Archive entry name of an installable file.
pub fn file_entry(dest: &crate::RelPath) -> String {
    format!("{FILES_DIR}/{dest}")
}

/// The bundle's default file name.
pub fn bundle_file_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.bundle")
}

/// Name of part `index` (1-based) of `count`: sorts and shows the count.
pub fn part_file_name(bundle: &str, index: usize, count: usize) -> String {
    format!("{bundle}.part-{index:03}-of-{count:03}")
}

/// Name of the signed part index of a split bundle.
pub fn parts_index_name(bundle: &str) -> String {
    format!("{bundle}.parts.json")
}
