//! The installer: verify a bundle and install it on a disconnected host.
//!
//! 1. [`bundle`] opens a bundle, checks its signature against the trusted
//!    keys, then streams and hashes every entry ([`bundle::read_bundle`]).
//! 2. `install` checks everything it can before changing anything
//!    (preflight), stages the verified entries next to the install dir,
//!    loads the images, swaps the managed files in, recreates the containers
//!    and waits for health, rolling back on any failure.
//!
//! The signature and tar formats live in [`minisign`] and [`tarfmt`]; the
//! bundler uses them too.

#![forbid(unsafe_code)]

/// `.env` files: [`bundle_format::envfile`].
pub use bundle_format::envfile;

pub mod bundle;
pub mod cli;
pub mod engine;
pub mod frames;
pub mod health;
pub mod install;
pub mod minisign;
pub mod parts;
pub mod readahead;
pub mod state;
pub mod tarfmt;
