//! `installer install` and `installer rollback`, as named steps, each in
//! the module of its name:
//!
//! 1. `plan`: make the dir absolute, check the state dir for planted
//!    links, lock it, load the state and the keys this install trusts.
//! 2. `stage` and `preflight`: verify the bundle's signature, then,
//!    before any entry is read, every problem together (engine, dir,
//!    versions, platform, space, links where the installer writes, `.env`,
//!    trust changes, a delta's base); stream and verify every entry into a
//!    staging dir in the state dir. The `journal` starts here, `.env` kept
//!    with it.
//! 3. `preflight`: what will run after the install (the files as they will
//!    be, the override file, the `.env` in force) uses only images the
//!    bundle carries. Nothing has changed yet.
//! 4. `stage`: keep the verified release (files, signed manifest, blobs)
//!    in the state dir, or update the installer and re-execute it.
//! 5. `hooks` and `env`: back up first (`pre_upgrade`), then write
//!    `.env` as planned.
//! 6. `transaction`: load the images the engine lacks (`images`),
//!    replace the managed files keeping operator edits (`files`),
//!    `compose up`, wait for health; a fault point after each phase.
//! 7. `record` the healthy release, or `transaction::recover`: put the
//!    previous release back the same way (`.env` byte for byte) and say
//!    what failed.
//!
//! `rollback` finishes an interrupted operation or goes back to the
//! previous release.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manifest_schema::layout::{self, ENV_FILE, STATE_DIR};
use manifest_schema::{Digest, ImageEntry, Manifest, Version};
use serde::Serialize;

use crate::bundle::{self, BundleError, EntryKind, EntrySink, SignedManifest, VerifiedManifest};
use crate::engine::{Engine, EngineError, Store};
use crate::envfile::{self, EnvPlan};
use crate::health;
use crate::minisign::PublicKey;
use crate::registry::Site;
use crate::state::{
    self, Action, HistoryEntry, InstalledFile, Journal, Op, Outcome, Phase, Release, State,
    StateDir, StateError,
};
use crate::tarfmt::TarWriter;
use bundle_format::compose;
use bundle_format::safefs::{Kind, Root};

/// The argument of the test-only fault point `name`, when it is switched on
/// (`FAILPOINTS=name=return(arg)`, with the `failpoints` feature; compiled
/// out otherwise).
pub fn fault_on(name: &str) -> Option<String> {
    #[cfg(feature = "failpoints")]
    {
        fail::eval(name, Option::unwrap_or_default)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        None
    }
}

/// A fault point: `FAILPOINTS=NAME=return` makes it return `$err`;
/// `NAME=return(crash)` aborts the process on the spot, with no cleanup, as
/// a power cut or `kill -9` would.
macro_rules! fault {
    ($name:literal, $err:expr) => {
        if let Some(arg) = crate::install::fault_on($name) {
            if arg == "crash" {
                std::process::abort();
            }
            return $err;
        }
    };
}

mod env;
mod files;
mod hooks;
mod images;
mod journal;
mod plan;
mod preflight;
mod record;
mod rollback;
mod stage;
mod transaction;

use self::{
    env::*, files::*, hooks::*, journal::*, plan::Plan, preflight::*, record::*, stage::*,
    transaction::*,
};
pub use files::{decide, FileAction};
pub use images::{ensure_images, write_docker_archive, Loaded};
pub use preflight::override_file;
pub use record::inventory;
pub use rollback::{rollback, RollbackOptions};

/// The installer's own version.
pub const INSTALLER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of install and rollback.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bundle failed verification or could not be read.
    #[error("bundle {path}")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// Why.
        #[source]
        source: BundleError,
    },
    /// State dir problems.
    #[error(transparent)]
    State(#[from] StateError),
    /// A split bundle's parts are missing, extra, out of order or corrupt.
    #[error(transparent)]
    Parts(#[from] crate::parts::PartsError),
    /// An image's signatures do not meet the bundle's provenance policy;
    /// nothing was changed.
    #[error("{0}; nothing was changed")]
    Provenance(bundle_format::cosign::ProvenanceError),
    /// Preflight found problems; nothing was changed.
    #[error("preflight failed, nothing was changed:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Preflight(Vec<String>),
    /// Bad input (keys, flags).
    #[error("{0}")]
    Input(String),
    /// A hook failed (for `pre_upgrade`: nothing was changed).
    #[error("{name} hook {hook} failed{}: {message}", if name == "pre_upgrade" { ", nothing was changed" } else { "" })]
    Hook {
        /// Which hook: pre_upgrade, post_install, restore.
        name: String,
        /// The hook.
        hook: String,
        /// Its output.
        message: String,
    },
    /// A signal stopped the install before it changed anything.
    #[error("interrupted by a signal while {phase}; nothing was changed: {kept}; hint: run the install again when ready")]
    Interrupted {
        /// What the install was doing.
        phase: &'static str,
        /// What is installed (and untouched).
        kept: String,
    },
    /// The install failed and the previous release was restored.
    #[error("{failed}\nrolled back to {restored}{logs}")]
    RolledBack {
        /// What failed.
        failed: String,
        /// What runs now.
        restored: String,
        /// Last log lines of the failing service.
        logs: String,
    },
    /// The install failed and restoring the previous release failed too.
    #[error("{failed}\nrestoring the previous release also failed: {restore}; hint: run `installer rollback --dir DIR` once the cause is fixed")]
    RollbackFailed {
        /// What failed.
        failed: String,
        /// Why restoring failed.
        restore: String,
    },
    /// The bundle carried a newer installer, now in place: run it with the
    /// same arguments to do the install (nothing else changed yet).
    #[error("the installer was updated to {version} at {}; run it to continue", binary.display())]
    SelfUpdated {
        /// The new binary.
        binary: PathBuf,
        /// Its version.
        version: String,
        /// Its sha256, passed to it so it does not update again.
        sha256: String,
    },
    /// Engine failure outside a transaction.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A read or write below the install dir; the error names the path (a
    /// link or special file in the way is a
    /// [`bundle_format::safefs::Refused`]).
    #[error(transparent)]
    Fs(io::Error),
    /// I/O.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl From<bundle_format::cosign::ProvenanceError> for InstallError {
    fn from(e: bundle_format::cosign::ProvenanceError) -> Self {
        InstallError::Provenance(e)
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> InstallError + '_ {
    move |e| InstallError::Io {
        path: path.to_owned(),
        source: e,
    }
}

/// An error once a signal set `flag`: a sink streaming a bundle stops.
pub fn stop_if_interrupted(flag: &AtomicBool) -> io::Result<()> {
    if flag.load(Ordering::Relaxed) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "interrupted by a signal",
        ));
    }
    Ok(())
}

/// Receives what the installer has to say.
pub trait Report: Sync {
    /// A step starts or ends.
    fn step(&self, msg: &str);
    /// Something the operator must notice.
    fn warn(&self, msg: &str);
}

/// Lines on stderr.
#[derive(Debug, Default)]
pub struct Stderr {
    /// Print only warnings.
    pub quiet: bool,
}

impl Report for Stderr {
    fn step(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
    fn warn(&self, msg: &str) {
        eprintln!("warning: {msg}");
    }
}

/// Flags of `installer install`.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The install dir.
    pub dir: PathBuf,
    /// Public key to trust on the first install.
    pub public_key: Option<PathBuf>,
    /// Allow installing an older version.
    pub allow_downgrade: bool,
    /// Install into a non-empty dir that is not an install, or replace another product.
    pub force: bool,
    /// `KEY=VALUE` settings for `.env`.
    pub set: Vec<(String, String)>,
    /// Set by a signal handler: stop and roll back.
    pub interrupted: Arc<AtomicBool>,
    /// sha256 of the bundled installer this process was re-executed as, after
    /// a self-update (it is not updated again).
    pub self_updated: Option<String>,
    /// Pull the images from this site registry by digest instead of
    /// loading them from the bundle (which is then read up to its files).
    pub registry: Option<Site>,
}

/// The result of a successful install.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// Product.
    pub name: String,
    /// Version now running.
    pub version: String,
    /// Version before.
    pub from: Option<String>,
    /// Things the operator should know (kept edits, env changes).
    pub notes: Vec<String>,
    /// Images loaded (others were present).
    pub loaded_images: Vec<String>,
}

/// The platform of this host, in OCI spelling.
pub fn host_platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    ("linux".into(), arch.into())
}

/// Free bytes on the filesystem holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Installs a bundle: the steps of the module docs, in order.
pub fn install(
    opts: &InstallOptions,
    engine: Result<Box<dyn Engine>, EngineError>,
    report: &dyn Report,
) -> Result<Installed, InstallError> {
    // 1. Plan: the dir, the lock, the state, the trusted keys.
    let mut plan = plan::plan(opts)?;
    // 2-3. Verify and stage; preflight once the signed manifest is read.
    let mut staged = verify_and_stage(&plan, &engine)?;
    let engine = engine.expect("preflight checked the engine");
    let m = staged.verified.manifest().clone();
    // 4. What will run after the install, before anything changes.
    let env_after = envfile::apply(&staged.env_text, &staged.env_plan);
    check_what_runs(
        &plan.sd,
        engine.as_ref(),
        &plan.state,
        &m,
        &staged.staging,
        &env_after,
        report,
    )?;
    let images = match &plan.opts.registry {
        Some(site) => format!("images from {site}"),
        None => format!("{} blobs", m.carried_blobs().len()),
    };
    report.step(&format!(
        "verified {} {} (signed by key {}), {} files, {images}",
        m.name,
        m.version,
        staged.verified.signer().id,
        m.files.len(),
    ));
    // 5. Keep the release in the state dir; journal.
    let from = keep(&mut plan, &mut staged, report)?;
    // 6. Back up first, then the settings.
    let mut notes: Vec<String> = back_up(&plan.sd, &m, from.as_ref(), report)?
        .into_iter()
        .collect();
    write_env(
        &plan.sd,
        &m,
        &staged.env_text,
        &staged.env_plan,
        report,
        &mut notes,
    )?;
    // 7. The transaction: images, files, up, health.
    let applied = apply_release(
        Op::Install,
        &plan.sd,
        engine.as_ref(),
        &plan.state,
        &m,
        &plan.opts,
        report,
        &mut notes,
    );
    match applied {
        // 8. Record the healthy release.
        Ok(loaded) => record(&mut plan, &staged.verified, from, loaded, notes, report),
        // 9. Or put the previous one back.
        Err(failure) => recover(&mut plan, engine.as_ref(), &m, from, failure, report),
    }
}

impl From<BundleError> for InstallError {
    fn from(e: BundleError) -> Self {
        InstallError::Bundle {
            path: PathBuf::new(),
            source: e,
        }
    }
}
