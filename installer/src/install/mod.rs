//! `installer install` and `installer rollback`.
//!
//! 1. Lock the dir; load the state and the trusted keys.
//! 2. Verify the bundle's signature; then preflight, before any change: disk
//!    space, engine and compose, `.env` requirements, version policy, dir
//!    emptiness. Every failure is reported together.
//! 3. Stream and verify every entry into a staging dir inside the state dir
//!    (same filesystem); on any mismatch the staging dir goes and nothing
//!    else has changed.
//! 4. Keep the verified release (files and blobs) in the state dir; journal.
//! 5. Run the `pre_upgrade` hook (backup); append new keys to `.env`.
//! 6. Load the images the engine lacks, streaming a docker-archive from the
//!    blob store into `load`.
//! 7. Replace the managed files (each atomically), keeping operator edits.
//! 8. `compose up`, then wait for health.
//! 9. On success record the release; on any failure in 6-8 (or a signal)
//!    restore the previous release the same way and report what failed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manifest_schema::layout::{self, ENV_FILE, STATE_DIR};
use manifest_schema::{Digest, ImageEntry, Manifest, Version};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::bundle::{self, BundleError, EntryKind, EntrySink, SignedManifest, VerifiedManifest};
use crate::engine::{Engine, EngineError};
use crate::envfile::{self, EnvPlan};
use crate::health;
use crate::minisign::PublicKey;
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
mod preflight;
mod record;
mod rollback;
mod stage;
mod transaction;

use self::{
    env::*, files::*, hooks::*, journal::*, preflight::*, record::*, stage::*, transaction::*,
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
    #[error("bundle {path}: {source}")]
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
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> InstallError + '_ {
    move |e| InstallError::Io {
        path: path.to_owned(),
        source: e,
    }
}

/// Receives what the installer has to say.
pub trait Report {
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

/// Installs a bundle; see the module docs for the steps.
pub fn install(
    opts: &InstallOptions,
    engine: Result<Box<dyn Engine>, EngineError>,
    report: &dyn Report,
) -> Result<Installed, InstallError> {
    let dir_existed = opts.dir.exists();
    let dir_was_empty = is_empty_dir(&opts.dir);
    let mut cleanup = Cleanup {
        paths: Vec::new(),
        armed: true,
    };
    if !dir_existed {
        std::fs::create_dir_all(&opts.dir).map_err(io_at(&opts.dir))?;
    }
    let abs = std::fs::canonicalize(&opts.dir).map_err(io_at(&opts.dir))?;
    let opts = &InstallOptions {
        dir: abs,
        ..opts.clone()
    };
    let sd = StateDir::new(&opts.dir);
    let state_existed = sd.root.exists();
    let was_install = sd.exists();
    if !dir_existed {
        cleanup.paths.push(opts.dir.clone());
    } else if !state_existed {
        cleanup.paths.push(sd.root.clone());
    }
    // Before anything opens, reads or clears the state dir: a link planted
    // in it would steer the installer's root writes.
    sd.check()?;
    let _lock = sd.lock()?;
    let mut state = sd.load()?;

    // Trust: the recorded keys only, once there are any; never a revoked one.
    let revoked = sd.revoked_keys()?;
    let recorded: Vec<PublicKey> = sd
        .trusted_keys()?
        .into_iter()
        .filter(|k| !revoked.contains(k))
        .collect();
    let given = match &opts.public_key {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(io_at(p))?;
            Some(
                PublicKey::parse(&text)
                    .map_err(|e| InstallError::Input(format!("{}: {e}", p.display())))?,
            )
        }
        None => None,
    };
    let keys = if recorded.is_empty() {
        match &given {
            Some(k) => vec![k.clone()],
            None => {
                return Err(InstallError::Input(format!(
                    "{} has no trusted key yet; hint: pass --public-key with the vendor's public key for the first install",
                    opts.dir.display()
                )))
            }
        }
    } else {
        if let Some(k) = &given {
            if !recorded.contains(k) {
                return Err(InstallError::Input(format!(
                    "--public-key {}: key {} is not among the keys this install trusts ({}); later installs verify against the recorded keys only; hint: a vendor rotates keys inside a signed bundle, or add it deliberately with `installer trust add`",
                    opts.public_key.as_ref().expect("given").display(),
                    k.id,
                    recorded.iter().map(|k| k.id.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        recorded
    };

    let engine_ref = engine.as_ref().ok();
    let input =
        crate::parts::open(std::slice::from_ref(&opts.bundle), &keys).map_err(|e| match e {
            crate::parts::OpenError::Bundle(b) => InstallError::Bundle {
                path: opts.bundle.clone(),
                source: b,
            },
            crate::parts::OpenError::Parts(p) => InstallError::Parts(p),
        })?;
    clear_staging(&sd);
    let staging = sd.staging().join(format!("{}", std::process::id()));
    let staging_cleanup = Cleanup {
        paths: vec![staging.clone()],
        armed: true,
    };
    let fs = sd.fs()?;
    let mut sink = StagingSink {
        fs: sd.fs()?,
        rel: StateDir::rel("staging").join(format!("{}", std::process::id())),
        file: None,
        interrupted: opts.interrupted.clone(),
    };
    // A link or special file at .env is reported with the other problems.
    let env_read = read_env(&fs);
    let env_text = env_read.as_ref().cloned().unwrap_or_default();
    let mut env_plan = EnvPlan::default();
    let old_manifest = match &state.current {
        Some(r) => Some(sd.release_manifest(&r.version)?),
        None => None,
    };
    let installed_version = state.current.as_ref().map(|r| r.version.clone());

    let mut journal_guard = ClearJournal {
        sd: &sd,
        armed: true,
    };
    let verified: VerifiedManifest = bundle::read_bundle::<InstallError>(
        input,
        &keys,
        |signed: &SignedManifest| {
            let m = signed.manifest();
            let mut problems = Vec::new();
            if let Some(e) = &engine.as_ref().err() {
                problems.push(e.to_string());
            }
            if let Some(e) = engine_ref {
                if let Err(err) = e.info() {
                    problems.push(err.to_string());
                }
            }
            if !state.name.is_empty() && state.name != m.name && !opts.force {
                problems.push(format!(
                    "{} holds {}, not {}; hint: choose another dir, or pass --force to replace it",
                    opts.dir.display(),
                    state.name,
                    m.name
                ));
            }
            if !was_install && !dir_was_empty && !opts.force {
                problems.push(format!(
                    "{} is not empty and is not an install; hint: choose an empty dir, or pass --force to install beside its files (they are kept)",
                    opts.dir.display()
                ));
            }
            let ours: Version = INSTALLER_VERSION.parse().expect("crate version");
            let updates_itself = was_install
                && m.installer.as_ref().is_some_and(|i| i.version >= m.min_installer_version);
            if m.min_installer_version > ours && !updates_itself {
                problems.push(format!(
                    "the bundle needs installer {} or newer, this is {ours}; hint: use the installer shipped with the bundle",
                    m.min_installer_version
                ));
            }
            version_policy(installed_version.as_ref(), m, opts.allow_downgrade, &mut problems);
            let (os, arch) = host_platform();
            if !m.images.iter().any(|i| i.platform.os == os && i.platform.arch == arch) {
                problems.push(format!(
                    "the bundle has no images for this host's platform {os}/{arch} (it has {}); hint: build it with --platform {os}/{arch}",
                    m.platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ));
            }
            let need = m.payload_size() + m.payload_size() / 10 + (16 << 20);
            match free_space(&sd.root) {
                Ok(free) if free < need && fault_on("ignore-free-space").is_none() => problems.push(format!(
                    "not enough free space in {}: {} needed, {} free; hint: free space or install elsewhere",
                    opts.dir.display(),
                    need,
                    free
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("cannot measure free space in {}: {e}", opts.dir.display())),
            }
            let current_files = old_manifest.as_ref().map(|o| o.files.as_slice()).unwrap_or(&[]);
            let mut found = planted(&fs, m, current_files);
            if let Err(e) = &env_read {
                if !found.contains(&e.to_string()) {
                    found.insert(0, e.to_string());
                }
            }
            problems.extend(found);
            if let Err(e) = envfile::read(&env_text) {
                problems.push(format!(
                    "{}: {e}; compose would refuse it too",
                    opts.dir.join(ENV_FILE).display()
                ));
            }
            check_trust_change(&m.trust, &keys, &revoked, &mut problems);
            check_delta(&sd, m, &mut problems);
            let old_env = old_manifest.as_ref().map(|o| o.env.as_slice()).unwrap_or(&[]);
            let last = state.current.as_ref().map(|c| c.env.clone()).unwrap_or_default();
            env_plan = envfile::plan(&env_text, &m.env, old_env, &last, &opts.set, envfile::generate_secret);
            check_env_plan(&env_plan, &mut problems);
            if !problems.is_empty() {
                return Err(InstallError::Preflight(problems));
            }
            // From here an interrupted install is on record, so that
            // `installer rollback` restores what runs now, whatever the phase,
            // `.env` included, byte for byte: it is kept with the running
            // release as the journal starts.
            sd.create()?;
            if installed_version.is_some() {
                sd.save_env(None)?;
            }
            journal(&sd, Op::Install, installed_version.as_ref(), &m.version, Phase::Verifying)
        },
        &mut sink,
    )
    .map_err(|e| match e {
        InstallError::Bundle {
            source: BundleError::Signature(crate::minisign::MinisignError::UntrustedKey { found, .. }),
            ..
        } if revoked.iter().any(|k| k.id.to_string() == found) => InstallError::Bundle {
            path: opts.bundle.clone(),
            source: BundleError::Signature(crate::minisign::MinisignError::Revoked(found)),
        },
        // The sink refuses data once a signal came: say so, not "bundle
        // failed" (nothing was renamed into place yet).
        _ if opts.interrupted.load(Ordering::Relaxed) => InstallError::Interrupted {
            phase: "verifying and staging the bundle",
            kept: match &state.current {
                Some(r) => format!(
                    "{} {} is still installed, its containers untouched",
                    state.name, r.version
                ),
                None => "nothing was installed".into(),
            },
        },
        InstallError::Bundle { source, .. } => InstallError::Bundle {
            path: opts.bundle.clone(),
            source,
        },
        other => other,
    })?;
    let engine = engine.expect("preflight checked the engine");
    let m = verified.manifest().clone();
    check_what_runs(
        &sd,
        engine.as_ref(),
        &state,
        &m,
        &staging,
        &envfile::apply(&env_text, &env_plan),
        report,
    )?;
    report.step(&format!(
        "verified {} {} (signed by key {}), {} files, {} blobs",
        m.name,
        m.version,
        verified.signer().id,
        m.files.len(),
        m.carried_blobs().len()
    ));

    if was_install {
        self_update(opts, &m, &staging, report)?;
    }

    // Keep the release: files and signed manifest; blobs into the store.
    sd.create()?;
    keep_release(&sd, &verified, &staging)?;
    drop(staging_cleanup);
    if state.current.is_none() && state.name.is_empty() {
        for k in &keys {
            sd.add_key(k)?;
        }
    }
    state.name = m.name.clone();
    cleanup.armed = false;
    let from = state.current.as_ref().map(|r| r.version.clone());
    journal(&sd, Op::Install, from.as_ref(), &m.version, Phase::Staged)?;
    journal_guard.armed = false;
    fault!(
        "after-stage",
        Err(InstallError::Input("fault point after-stage".into()))
    );

    let mut notes = Vec::new();
    // Back up first.
    if let (Some(hook), Some(cur)) = (&m.hooks.pre_upgrade, &from) {
        let out = run_hook(&sd, &m, hook, "pre_upgrade", Some(cur))?;
        notes.push(format!("backup written to {}", out.display()));
        report.step(&format!("pre_upgrade hook wrote {}", out.display()));
    }
    // Settings.
    if !env_plan.append.is_empty() || !env_plan.set_in_place.is_empty() {
        let text = envfile::apply(&env_text, &env_plan);
        sd.write(Path::new(ENV_FILE), text.as_bytes(), 0o600)?;
        for (k, _) in &env_plan.set_in_place {
            if let Some((_, old, new)) = env_plan.managed.iter().find(|(mk, _, _)| mk == k) {
                let n = format!(".env: {k} {old} -> {new} (owned by the release)");
                report.step(&n);
                notes.push(n);
            } else {
                notes.push(format!(".env: {k} set in place (--set)"));
            }
        }
        for (k, _) in &env_plan.append {
            let how = if env_plan.generated.contains(k) {
                "generated"
            } else {
                "added"
            };
            notes.push(format!(".env: {how} {k}"));
        }
    }
    for k in &env_plan.unrotatable {
        report.warn(&format!(
            "{k} was generated and decrypts stored data: back up .env off-host now; it is never regenerated, and losing it loses that data"
        ));
    }
    for k in &env_plan.removed {
        notes.push(format!(
            ".env: {k} is no longer used by {} (left in place)",
            m.version
        ));
    }
    for (k, o, n) in &env_plan.new_defaults {
        notes.push(format!(
            ".env: the default of {k} changed from {o:?} to {n:?}; your value is kept"
        ));
    }

    let result = apply_release(
        Op::Install,
        &sd,
        engine.as_ref(),
        &state,
        &m,
        opts,
        report,
        &mut notes,
    );
    match result {
        Ok(images) => {
            let loaded = images.1;
            let release = Release {
                version: m.version.clone(),
                files: m
                    .files
                    .iter()
                    .map(|f| InstalledFile {
                        path: f.path.to_string(),
                        sha256: f.sha256.clone(),
                    })
                    .collect(),
                images: images.0,
                key_id: verified.signer().id.to_string(),
                env: managed_values(&sd, &m),
            };
            let action = match &from {
                None => Action::Install,
                Some(v) if v == &m.version => Action::Reinstall,
                Some(v) if v > &m.version => Action::Downgrade,
                Some(_) => Action::Upgrade,
            };
            if state.current.as_ref().map(|c| &c.version) != Some(&m.version) {
                state.previous = state.current.take();
            }
            state.current = Some(release);
            state.history.push(HistoryEntry {
                time: state::now(),
                action,
                from: from.as_ref().map(ToString::to_string),
                to: m.version.to_string(),
                outcome: Outcome::Ok,
                message: notes.join("; "),
            });
            sd.save(&state)?;
            if let Some(f) = &from {
                sd.keep_journal_env(f)?;
            }
            sd.clear_journal()?;
            for n in apply_trust_change(&sd, &m.trust)? {
                report.step(&n);
                notes.push(n);
            }
            prune(&sd, &state);
            if let Some(hook) = &m.hooks.post_install {
                if let Err(e) = run_hook(&sd, &m, hook, "post_install", from.as_ref()) {
                    report.warn(&format!(
                        "post_install hook failed (the install itself succeeded): {e}"
                    ));
                }
            }
            Ok(Installed {
                name: m.name.clone(),
                version: m.version.to_string(),
                from: from.map(|v| v.to_string()),
                notes,
                loaded_images: loaded,
            })
        }
        Err(failure) => {
            report.warn(&format!(
                "install of {} failed: {}; restoring the previous state",
                m.version, failure.reason
            ));
            let restored = restore(&sd, engine.as_ref(), &state, Some(&m), opts, report);
            let outcome = if restored.is_ok() {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            };
            state.history.push(HistoryEntry {
                time: state::now(),
                action: if from.is_some() {
                    Action::Upgrade
                } else {
                    Action::Install
                },
                from: from.as_ref().map(ToString::to_string),
                to: m.version.to_string(),
                outcome,
                message: failure.reason.clone(),
            });
            sd.save(&state)?;
            match restored {
                Ok(what) => {
                    sd.clear_journal()?;
                    Err(InstallError::RolledBack {
                        failed: format!(
                            "install of {} {} failed: {}",
                            m.name, m.version, failure.reason
                        ),
                        restored: what,
                        logs: failure.logs,
                    })
                }
                Err(e) => Err(InstallError::RollbackFailed {
                    failed: format!(
                        "install of {} {} failed: {}",
                        m.name, m.version, failure.reason
                    ),
                    restore: e,
                }),
            }
        }
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
