//! The installer: verify a bundle and install it on a disconnected host.
//!
//! 1. [`bundle`] opens a bundle, checks its signature against the trusted
//!    keys, then streams and hashes every entry ([`bundle::read_bundle`]).
//! 2. `install` checks everything it can before changing anything
//!    (preflight), stages the verified entries next to the install dir,
//!    loads the images, swaps the managed files in, recreates the containers
//!    and waits for health, rolling back on any failure; with `--registry`
//!    it reads the bundle up to its files and the engine pulls the images
//!    by their pinned digests from the site's registry.
//! 3. [`push`] seeds that registry from a bundle, through the OCI
//!    distribution client in [`registry`].
//!
//! The bundle format (signature, tar, frames, the verifying reader) lives in
//! `bundle-format`, below this crate and the bundler; the engines it drives
//! live in `engine`, re-exported here as [`engine`].

#![forbid(unsafe_code)]

/// The format modules, below both binaries: [`bundle_format`].
pub use bundle_format::{bundle, envfile, frames, minisign, parts, readahead, tarfmt};

pub mod cli;
/// The container engines and compose, behind traits.
pub use engine;
pub mod health;
pub mod install;
pub mod push;
pub mod registry;
pub mod state;
