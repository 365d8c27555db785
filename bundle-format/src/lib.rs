//! What the vendor's `bundler` and the target's `installer` must agree on,
//! kept below both so that neither binary links the other.
//!
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

pub mod compose;
pub mod envfile;
pub mod safefs;
