//! The bundler: build signed, deterministic, complete offline bundles.
//!
//! 1. [`spec`] reads `bundle.yaml` and checks the compose files use only
//!    bundled images.
//! 2. [`registry`] resolves pinned images and pulls their blobs into a
//!    verified content-addressed cache, over [`http`]'s registry GETs.
//! 3. [`build`] writes the archive: manifest, signature, files, OCI layout,
//!    compressed as independent zstd frames by `bundle_format::encode`.
//! 4. [`keys`] makes and reads minisign keys and signs manifests.
//! 5. [`cli`] and [`run`] tie the commands together for the binary.

#![forbid(unsafe_code)]

pub mod build;
pub mod cli;
pub mod creds;
pub mod http;
pub mod keys;
pub mod pin;
pub mod progress;
pub mod registry;
pub mod spec;

pub use cli::run;
