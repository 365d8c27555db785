//! The container engine behind a trait. Each engine is a file:
//!
//! 1. [`cli`]: what every engine CLI shares (`image inspect`, `load`, `tag`,
//!    `ps`, `logs`), generic over a [`cli::Flavor`], and the command runner
//!    that carries the child's stderr into its errors;
//! 2. [`docker`] and [`podman`]: each engine's [`cli::Flavor`];
//! 3. [`compose`]: which compose runs, and its dialect, told by its
//!    `version` output, never by its name.
//!
//! Adding an engine is one file with its flavor and one arm in [`detect`].
//! A fake engine for unit tests of the decisions above it lives in
//! `fixtures::fake_engine`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::Output;

pub mod cli;
pub mod compose;
pub mod docker;
pub mod podman;

pub use cli::{run, CliEngine};
pub use compose::ComposeCli;

/// Errors from the engine or compose, with the child's stderr.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A command could not start.
    #[error("cannot run `{cmd}`: {cause}; hint: {hint}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The error (in the message: the hint comes after it).
        cause: io::Error,
        /// The next step.
        hint: &'static str,
    },
    /// A command failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// Last lines of stderr.
        stderr: String,
    },
    /// Streaming into a command failed.
    #[error("streaming into `{cmd}`")]
    Stream {
        /// The command line.
        cmd: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An engine version this installer does not support.
    #[error("{kind} {version} is {why}; this installer supports {kind} {min} or newer; hint: upgrade the engine, or install on a host that has a supported one")]
    Unsupported {
        /// `docker`, `podman`.
        kind: &'static str,
        /// What it reported.
        version: String,
        /// "older than that" or "a version it does not recognise".
        why: &'static str,
        /// The oldest supported.
        min: String,
    },
    /// `--engine` named an engine this installer does not drive.
    #[error("unknown engine {0:?}; this installer drives docker and podman; hint: pass --engine docker or --engine podman")]
    Unknown(String),
    /// No compose implementation was found.
    #[error("no compose found (tried {tried}); hint: install the docker compose plugin or docker-compose, or pass --compose")]
    NoCompose {
        /// What was tried.
        tried: String,
    },
}

/// A container of the project, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Compose service.
    pub service: String,
    /// `running`, `exited`, …
    pub status: String,
    /// Exit code when exited.
    pub exit_code: i64,
    /// Healthcheck status (`healthy`, `starting`, `unhealthy`) or empty.
    pub health: String,
    /// Image ID it runs.
    pub image_id: String,
}

/// Where an engine keeps images: it decides an image's ID and what `load`
/// reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The graph-driver store (Docker before 29's default, podman): an
    /// image's ID is its config digest; `load` reads docker-archives and
    /// looks layers up before opening their files.
    Classic,
    /// containerd's image store (the default of Docker 29 and Docker
    /// Desktop): an image's ID is its manifest digest; `load` reads OCI
    /// archives with the registry's manifest, and keeps compressed blobs.
    Containerd,
}

impl Store {
    /// The ID the engine gives `img` once loaded.
    pub fn image_id(self, img: &manifest_schema::ImageEntry) -> &manifest_schema::Digest {
        match self {
            Store::Classic => &img.config.digest,
            Store::Containerd => &img.manifest.digest,
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Store::Classic => "classic image store",
            Store::Containerd => "containerd image store",
        })
    }
}

/// What the installer needs from an engine. It is shared by the threads
/// that load images at once.
pub trait Engine: fmt::Debug + Sync {
    /// `docker` or `podman`.
    fn kind(&self) -> &'static str;
    /// Checks that the engine answers.
    fn info(&self) -> Result<(), EngineError>;
    /// Where it keeps images.
    fn store(&self) -> Result<Store, EngineError>;
    /// The engine, its version and its store, for people.
    fn describe(&self) -> String;
    /// The image ID a name points to, if any.
    fn image_id(&self, name: &str) -> Result<Option<String>, EngineError>;
    /// Every image ID with its layer diff IDs.
    fn images(&self) -> Result<BTreeMap<String, Vec<String>>, EngineError>;
    /// Streams an archive (what [`Store`] says it reads) into the engine's
    /// load.
    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), EngineError>;
    /// Whether [`Engine::load_file`] of a docker-archive whose layers are
    /// decompressed beats streaming the registry's compressed layers into
    /// [`Engine::load`]. Podman's does: its `load` copies what it reads on
    /// stdin to a file before anything else (podman cmd/podman/images/load.go),
    /// and c/image's docker-archive source decompresses every compressed
    /// layer twice, once only to learn its size (docker/internal/tarfile).
    fn loads_plain_files(&self) -> bool;
    /// Loads the archive (what [`Store`] says it reads) at `archive`.
    fn load_file(&self, archive: &Path) -> Result<(), EngineError>;
    /// Tags an image.
    fn tag(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Pulls `reference` (`HOST/REPO@DIGEST`: the engine checks the digest).
    fn pull(&self, reference: &str) -> Result<(), EngineError>;
    /// Whether `load` may omit layer files the engine already has.
    fn skips_present_layers(&self) -> bool;
    /// Whether its pulls and loads read zstd-compressed layers. Docker's do
    /// from 23.0 (moby#41759: both decompress a layer with the same code;
    /// 20.10 fails with `archive/tar: invalid tar header`), podman's always
    /// have (c/image). The docker-archives the installer streams to an
    /// engine that does not carry zstd layers decompressed.
    fn reads_zstd(&self) -> Result<bool, EngineError>;
    /// How many loads may run at once (of images that share no layer).
    fn load_lanes(&self) -> usize;
    /// Runs compose with `args` for a project.
    fn compose(
        &self,
        dir: &Path,
        project: &str,
        files: &[String],
        args: &[&str],
    ) -> Result<Output, EngineError>;
    /// The project's containers.
    fn containers(&self, project: &str) -> Result<Vec<Container>, EngineError>;
    /// The last `n` log lines of a container.
    fn logs(&self, container: &str, n: usize) -> String;
    /// A description of the compose in use.
    fn compose_name(&self) -> String;
}

/// Whether `reported` (a daemon's version, e.g. `26.1.5+dfsg1`) is at least
/// `min` (major, minor); `None` when it does not start with major.minor.
pub fn version_at_least(reported: &str, min: (u64, u64)) -> Option<bool> {
    let mut parts = reported
        .trim()
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit());
    let mut number = || parts.next().and_then(|x| x.parse::<u64>().ok());
    Some((number()?, number()?) >= min)
}

/// Whether `reported` (the daemon's version, e.g. `26.1.5+dfsg1`) is at
/// least `min` (major, minor) for the engine `kind`.
pub fn check_version(
    kind: &'static str,
    reported: &str,
    min: (u64, u64),
) -> Result<(), EngineError> {
    let fail = |why| EngineError::Unsupported {
        kind,
        version: reported.trim().to_owned(),
        why,
        min: format!("{}.{}", min.0, min.1),
    };
    match version_at_least(reported, min) {
        Some(true) => Ok(()),
        Some(false) => Err(fail("older than that")),
        None => Err(fail("a version it does not recognise")),
    }
}

/// The engine named `kind` with a compose (`compose`, else the first that
/// answers): an engine this installer does not drive is refused, never
/// replaced by another.
pub fn detect(kind: &str, compose: Option<&str>) -> Result<Box<dyn Engine>, EngineError> {
    match kind {
        "docker" => Ok(Box::new(CliEngine::<docker::Docker>::detect(compose)?)),
        "podman" => Ok(Box::new(CliEngine::<podman::Podman>::detect(compose)?)),
        other => Err(EngineError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_older_than_supported_or_unrecognised_are_refused() {
        assert!(check_version("docker", "26.1.5+dfsg1\n", (20, 10)).is_ok());
        assert!(check_version("docker", "20.10.24+dfsg1", (20, 10)).is_ok());
        assert!(check_version("podman", "4.3.1", (4, 0)).is_ok());
        assert_eq!(
            check_version("docker", "19.03.15", (20, 10)).unwrap_err().to_string(),
            "docker 19.03.15 is older than that; this installer supports docker 20.10 or newer; hint: upgrade the engine, or install on a host that has a supported one"
        );
        assert!(check_version("podman", "3.4.4", (4, 0)).is_err());
        assert!(check_version("docker", "", (20, 10))
            .unwrap_err()
            .to_string()
            .contains("a version it does not recognise"));
    }

    #[test]
    fn versions_compare_by_major_then_minor() {
        assert_eq!(version_at_least("23.0.0", (23, 0)), Some(true));
        assert_eq!(version_at_least("v26.1.5+dfsg1\n", (23, 0)), Some(true));
        assert_eq!(version_at_least("20.10.24+dfsg1", (23, 0)), Some(false));
        assert_eq!(version_at_least("22.06.0-beta.0", (23, 0)), Some(false));
        assert_eq!(version_at_least("4.3.1", (0, 0)), Some(true));
        assert_eq!(version_at_least("100.1", (23, 0)), Some(true));
        assert_eq!(version_at_least("23", (23, 0)), None);
        assert_eq!(version_at_least("dev", (23, 0)), None);
    }

    #[test]
    fn an_unknown_engine_is_refused_not_replaced_by_docker() {
        let e = detect("nerdctl", None).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown engine \"nerdctl\"; this installer drives docker and podman; hint: pass --engine docker or --engine podman"
        );
    }
}
