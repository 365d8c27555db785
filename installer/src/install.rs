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

fn sha_file(path: &Path) -> io::Result<Digest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_sha256_bytes(&h.finalize().into()))
}

/// Free bytes on the filesystem holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Writes verified entries into the staging dir (each file created
/// exclusively, no link followed: [`bundle_format::safefs::Root`]).
struct StagingSink {
    fs: Root,
    /// The staging dir, relative to the install dir.
    rel: PathBuf,
    file: Option<std::fs::File>,
    interrupted: Arc<AtomicBool>,
}

impl StagingSink {
    fn target(&self, kind: EntryKind<'_>) -> PathBuf {
        match kind {
            EntryKind::File(f) => self.rel.join("files").join(f.path.as_str()),
            EntryKind::Layout(f) => self.rel.join(f.path.as_str()),
            EntryKind::Blob(d) => self.rel.join("blobs").join(d.digest.hex()),
        }
    }
}

impl EntrySink for StagingSink {
    fn begin(&mut self, _name: &str, kind: EntryKind<'_>) -> io::Result<()> {
        fault!(
            "extract-entry",
            Err(io::Error::other("fault point extract-entry"))
        );
        let p = self.target(kind);
        self.file = Some(self.fs.create_new(&p, 0o644)?);
        Ok(())
    }
    fn data(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "interrupted by a signal",
            ));
        }
        self.file.as_mut().expect("begun").write_all(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        // No fsync per entry: `keep_release` syncs the filesystem once,
        // before anything staged is renamed into place.
        self.file.take().expect("begun");
        Ok(())
    }
}

/// Removes what a failed install created before it changed anything.
struct Cleanup {
    paths: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            for p in &self.paths {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// Under the lock, anything in the staging dir is left from a crashed install.
fn clear_staging(sd: &StateDir) {
    if let Ok(rd) = std::fs::read_dir(sd.staging()) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Clears the journal when an install stops (by an error, not a crash)
/// before it changed anything.
struct ClearJournal<'a> {
    sd: &'a StateDir,
    armed: bool,
}

impl Drop for ClearJournal<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.sd.clear_journal();
        }
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

fn version_policy(
    installed: Option<&Version>,
    m: &Manifest,
    allow_downgrade: bool,
    problems: &mut Vec<String>,
) {
    let Some(cur) = installed else { return };
    if &m.version < cur && !allow_downgrade {
        problems.push(format!(
            "{} {} is older than the installed {cur}: downgrades are refused because migrations are forward-only; hint: pass --allow-downgrade (and restore a matching backup), or use `installer rollback`",
            m.name, m.version
        ));
    }
    if let Some(req) = &m.upgrade_from {
        if &m.version != cur && !req.matches(cur) {
            let need = req
                .minimum()
                .map(|v| format!(" first install {v}"))
                .unwrap_or_default();
            problems.push(format!(
                "{} {} upgrades only from versions {req}, and {cur} is installed; hint:{need} (an intermediate version whose migrations this one needs)",
                m.name, m.version
            ));
        }
    }
}

fn check_env_plan(p: &EnvPlan, problems: &mut Vec<String>) {
    for (k, d) in &p.missing {
        problems.push(format!(
            "required setting {k} is missing from .env: {d}; hint: add it to .env or pass --set {k}=VALUE"
        ));
    }
    for c in &p.managed_conflicts {
        problems.push(format!(
            ".env: {k} belongs to the release (the installer sets it on every install) and was changed by hand to {found:?}{wrote}; this release sets {want:?}; hint: pass --set {k}={want} to take the release's value, or --set {k}={found} to keep yours",
            k = c.key,
            found = c.found,
            want = c.want,
            wrote = c
                .wrote
                .as_ref()
                .map(|w| format!(" (the installer wrote {w:?})"))
                .unwrap_or_default(),
        ));
    }
}

/// `.env` as it is on disk ("" when absent); a link or special file there
/// is refused, not followed.
fn read_env(fs: &Root) -> Result<String, InstallError> {
    let p = fs.path().join(ENV_FILE);
    match fs.read(Path::new(ENV_FILE)) {
        Ok(b) => String::from_utf8(b.unwrap_or_default()).map_err(|_| {
            InstallError::Input(format!(
                "{}: not UTF-8 text; hint: save it as UTF-8",
                p.display()
            ))
        }),
        Err(e) => Err(InstallError::Fs(e)),
    }
}

/// Rolling back to `prev`: `.env` as `prev` ran with it, plus the keys only
/// the newer release added, with their values now (a generated secret must
/// never be lost: data may already be encrypted with it). Returns a note
/// when `.env` changed.
fn put_back_env(
    sd: &StateDir,
    prev: &Version,
    cur: &Version,
) -> Result<Option<String>, InstallError> {
    let Some(mut saved) = sd.saved_env(Some(prev))? else {
        return Ok(None);
    };
    let now = read_env(&sd.fs()?)?;
    saved.text = envfile::carry_over(&saved.text, &now);
    saved.present |= !saved.text.is_empty();
    Ok(sd.put_env(&saved)?.then(|| {
        format!(
            ".env put back as {prev} had it (keys only {cur} added are kept); {cur}'s is kept in {}",
            StateDir::rel("releases")
                .join(cur.to_string())
                .join("env.json")
                .display()
        )
    }))
}

/// The values `.env` holds now for `m`'s managed keys.
fn managed_values(sd: &StateDir, m: &Manifest) -> BTreeMap<String, String> {
    let vars = sd
        .fs()
        .ok()
        .and_then(|fs| read_env(&fs).ok())
        .map(|t| envfile::parse(&t))
        .unwrap_or_default();
    m.env
        .iter()
        .filter(|e| e.managed)
        .filter_map(|e| vars.get(&e.key).map(|v| (e.key.clone(), v.clone())))
        .collect()
}

/// The operator's compose override file, if there is one the bundle does
/// not manage: compose loads it after the main files when run by hand, so
/// the installer passes it too.
pub fn override_file(fs: &Root, m: &Manifest) -> Option<String> {
    layout::OVERRIDE_FILES
        .iter()
        .filter(|name| !m.files.iter().any(|f| f.path.as_str() == **name))
        .find(|name| matches!(fs.kind(Path::new(name)), Ok((_, Kind::File))))
        .map(|s| s.to_string())
}

/// The compose files an install of `m` runs, in `-f` order.
fn compose_files(fs: &Root, m: &Manifest) -> Vec<String> {
    let mut files: Vec<String> = m.compose.files.iter().map(ToString::to_string).collect();
    files.extend(override_file(fs, m));
    files
}

/// The install dir as it will be after the install: managed files the
/// release replaces read from the staged bundle, `.env` as it will be
/// written, everything else (an edited managed file that is kept, the
/// override file, the operator's own files) from the install dir.
struct Preview<'a> {
    fs: &'a Root,
    staged: &'a Path,
    replaced: BTreeSet<String>,
    env: &'a str,
}

impl compose::Source for Preview<'_> {
    fn read(&self, rel: &str) -> io::Result<Option<String>> {
        let rel = rel.strip_prefix("./").unwrap_or(rel);
        let bytes = if rel == ENV_FILE {
            Some(self.env.as_bytes().to_vec())
        } else if self.replaced.contains(rel) {
            Some(std::fs::read(self.staged.join(rel))?)
        } else {
            self.fs.read(Path::new(rel))?
        };
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

/// Checks, before anything changes, what the stack will run after the
/// install: the compose files as they will be (an edited managed file is
/// kept, so its content counts), the override file, and the `.env` that
/// will be in force. Every service must run an image the bundle carries
/// (or one `compose.external` names). compose's own `config` decides where
/// it answers; the built-in resolver otherwise.
fn check_what_runs(
    sd: &StateDir,
    engine: &dyn Engine,
    state: &State,
    m: &Manifest,
    staging: &Path,
    env_after: &str,
    report: &dyn Report,
) -> Result<(), InstallError> {
    let fs = sd.fs()?;
    let known = known_hashes(sd, state, m);
    let mut replaced = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for f in &m.files {
        let now = sha_in(&fs, Path::new(f.path.as_str())).map_err(InstallError::Fs)?;
        match decide(now.as_ref(), &f.sha256, known.get(f.path.as_str())) {
            FileAction::KeepEdited => kept.insert(f.path.to_string()),
            _ => replaced.insert(f.path.to_string()),
        };
    }
    let files = compose_files(&fs, m);
    let preview = Preview {
        fs: &fs,
        staged: &staging.join("files"),
        replaced,
        env: env_after,
    };
    let from_env_file = envfile::parse(env_after);
    let mut vars = from_env_file.clone();
    // compose lets its environment override .env.
    vars.extend(std::env::vars());
    let r = compose::resolve(&preview, &files, &vars);
    let mut problems = r.problems.clone();
    problems.extend(r.services.iter().filter_map(|(_, s)| s.error.clone()));
    let mut images = r.images();
    if problems.is_empty() {
        match compose_config(sd, engine, m, &files, &r, &preview, staging) {
            Ok(theirs) => images = theirs,
            Err(e) => report.warn(&format!(
                "compose config could not read the release as it will run ({e}); the installer's own reading of the compose files decides"
            )),
        }
    }
    let origin = |v: &str| {
        if std::env::var_os(v).is_some() {
            format!("{v}={} from the environment", vars[v])
        } else if let Some(x) = from_env_file.get(v) {
            format!("{v}={x} from .env")
        } else {
            format!("{v} unset")
        }
    };
    let cur = state.current.as_ref().map(|c| c.version.to_string());
    problems.extend(not_carried(m, &r, &images, &kept, cur.as_deref(), &origin));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Preflight(problems))
    }
}

/// The services of `r` whose image (as `images` resolves it) the release
/// does not carry, each as a problem naming the file, the service, the
/// image and the variables behind it (`origin` says where each value came
/// from).
fn not_carried(
    m: &Manifest,
    r: &compose::Resolved,
    images: &BTreeMap<String, Option<String>>,
    kept: &BTreeSet<String>,
    current: Option<&str>,
    origin: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let canonical = |s: &str| {
        manifest_schema::ImageRef::parse(s)
            .map(|r| r.canonical_name())
            .unwrap_or_else(|_| s.to_owned())
    };
    let carried: BTreeSet<String> = m
        .images
        .iter()
        .map(|i| canonical(&i.name))
        .chain(m.compose.external.iter().map(|e| canonical(e)))
        .collect();
    let mut out = Vec::new();
    for (name, svc) in &r.services {
        let Some(Some(img)) = images.get(name) else {
            continue;
        };
        if carried.contains(&canonical(img)) {
            continue;
        }
        let vars = svc
            .raw_image
            .as_deref()
            .map(compose::variables)
            .unwrap_or_default();
        let why = match (&svc.raw_image, vars.is_empty()) {
            (Some(raw), false) => format!(
                " (image: {raw}, with {})",
                vars.iter()
                    .map(|v| origin(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        };
        let file = &svc.file;
        out.push(if kept.contains(file) {
            format!(
                "{file} was edited since it was installed and is kept, so service {name} would run {img}{why}, which {} {} does not carry; hint: move your changes into docker-compose.override.yml (compose loads it after the bundle's files), put back the installed {file}{}, and install again",
                m.name,
                m.version,
                current
                    .map(|v| format!(" (a copy is in {STATE_DIR}/releases/{v}/files/{file})"))
                    .unwrap_or_default()
            )
        } else {
            format!(
                "{file}: service {name} would run {img}{why}, which {} {} does not carry (it carries {}); hint: set the variable to a carried version in .env, or ask the vendor to mark it managed in the spec so each release sets it",
                m.name,
                m.version,
                m.images.iter().map(|i| i.name.as_str()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
            )
        });
    }
    out
}

/// compose's own reading of the release as it will run: the files
/// [`check_what_runs`] resolves, written into a preview dir in the state
/// dir and passed to `compose config`.
fn compose_config(
    sd: &StateDir,
    engine: &dyn Engine,
    m: &Manifest,
    files: &[String],
    r: &compose::Resolved,
    preview: &Preview<'_>,
    staging: &Path,
) -> Result<BTreeMap<String, Option<String>>, String> {
    use compose::Source as _;
    let fs = sd.fs().map_err(|e| e.to_string())?;
    let dir = staging.join("preview");
    let rel = dir
        .strip_prefix(&sd.dir)
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let names = files
        .iter()
        .cloned()
        .chain(r.references.iter().map(|x| x.path.clone()))
        .chain([ENV_FILE.to_owned()]);
    for name in names {
        let Ok(Some(text)) = preview.read(&name) else {
            continue;
        };
        fs.write(&rel.join(&name), text.as_bytes(), 0o600)
            .map_err(|e| e.to_string())?;
    }
    let out = engine
        .compose(&dir, &m.compose.project, files, &["config"])
        .map_err(|e| e.to_string())?;
    compose::from_config(&out.stdout)
}

/// [`planted`] as a preflight error.
fn refuse_planted(
    sd: &StateDir,
    m: &Manifest,
    current: &[manifest_schema::FileEntry],
) -> Result<(), InstallError> {
    let problems = planted(&sd.fs()?, m, current);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Preflight(problems))
    }
}

/// Every place in the install dir where the installer will write or
/// replace a file (`.env`, the managed files of both releases and their
/// `.new` siblings, `backups/`), where another account has put a link, a
/// fifo, a device or a directory instead: each would redirect or break a
/// root write (CWE-59). Refused in preflight, before anything changes.
fn planted(fs: &Root, m: &Manifest, current: &[manifest_schema::FileEntry]) -> Vec<String> {
    let mut places: Vec<(PathBuf, Kind)> = vec![
        (PathBuf::from(ENV_FILE), Kind::File),
        (PathBuf::from(layout::BACKUPS_DIR), Kind::Dir),
    ];
    places.extend(layout::OVERRIDE_FILES.map(|o| (PathBuf::from(o), Kind::File)));
    for f in m.files.iter().chain(current) {
        places.push((PathBuf::from(f.path.as_str()), Kind::File));
        places.push((PathBuf::from(format!("{}.new", f.path)), Kind::File));
    }
    places.sort();
    places.dedup();
    let mut out: Vec<String> = places
        .iter()
        .filter_map(|(p, k)| fs.expect(p, *k).err().map(|e| e.to_string()))
        .collect();
    out.dedup();
    out
}

fn journal(
    sd: &StateDir,
    op: Op,
    from: Option<&Version>,
    to: &Version,
    phase: Phase,
) -> Result<(), InstallError> {
    sd.set_journal(&Journal {
        op,
        from: from.map(ToString::to_string),
        to: to.to_string(),
        phase,
        started: state::now(),
    })?;
    Ok(())
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

/// What an install holds, for a delta build: its version and the blobs in
/// the installer's store (and, for information, the engine's image IDs).
pub fn inventory(
    dir: &Path,
    engine: Option<&dyn Engine>,
) -> Result<manifest_schema::Inventory, InstallError> {
    let sd = StateDir::new(dir);
    if !sd.exists() {
        return Err(InstallError::Input(format!(
            "{} is not an install (no {STATE_DIR}/ state); hint: a first install needs the full bundle",
            dir.display()
        )));
    }
    let state = sd.load()?;
    let mut blobs = Vec::new();
    let store = sd.root.join("blobs/sha256");
    if let Ok(rd) = std::fs::read_dir(&store) {
        for e in rd.flatten() {
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse::<Digest>() {
                blobs.push(d);
            }
        }
    }
    blobs.sort();
    let mut engine_images: Vec<Digest> = engine
        .and_then(|e| e.images().ok())
        .map(|m| m.into_keys().filter_map(|id| id.parse().ok()).collect())
        .unwrap_or_default();
    engine_images.sort();
    Ok(manifest_schema::Inventory {
        format: layout::FORMAT_VERSION,
        name: state.name.clone(),
        version: state.current.as_ref().map(|r| r.version.clone()),
        created: state::now(),
        blobs,
        engine_images,
    })
}

/// A delta bundle may leave out only blobs this host keeps: names the ones
/// missing from the installer's store (or of the wrong size).
fn check_delta(sd: &StateDir, m: &Manifest, problems: &mut Vec<String>) {
    let Some(d) = &m.delta else { return };
    let sizes: BTreeMap<&Digest, (u64, &str)> = m
        .images
        .iter()
        .flat_map(|i| {
            i.blobs()
                .map(move |b| (&b.digest, (b.size, i.name.as_str())))
        })
        .collect();
    let missing: Vec<String> = d
        .present_blobs
        .iter()
        .filter(|b| {
            let want = sizes.get(b).map(|s| s.0);
            std::fs::metadata(sd.blob(b)).map(|md| Some(md.len())).ok() != Some(want)
        })
        .map(|b| format!("{b} ({})", sizes.get(b).map(|s| s.1).unwrap_or("?")))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "this is a delta against {} {}: {} of the {} blobs it leaves out are not on this host: {}; hint: install {} {} first, or use the full bundle",
            m.name,
            d.base_version,
            missing.len(),
            d.present_blobs.len(),
            missing.join(", "),
            m.name,
            d.base_version
        ));
    }
}

/// Checks a bundle's trust change against this host's keys: every added key
/// parses and matches its id, none was revoked here, and at least one key
/// stays trusted.
fn check_trust_change(
    t: &manifest_schema::TrustChange,
    trusted: &[PublicKey],
    revoked: &[PublicKey],
    problems: &mut Vec<String>,
) {
    let mut after: Vec<String> = trusted.iter().map(|k| k.id.to_string()).collect();
    for (i, a) in t.add.iter().enumerate() {
        match PublicKey::parse(&a.key) {
            Ok(k) if !k.id.to_string().eq_ignore_ascii_case(&a.id) => problems.push(format!(
                "trust.add[{i}]: the key's id is {}, the manifest says {}; hint: rebuild the bundle",
                k.id, a.id
            )),
            Ok(k) if revoked.contains(&k) => problems.push(format!(
                "trust.add[{i}]: key {} was revoked on this host; a bundle cannot trust it again; hint: `installer trust add` it by hand if that is intended",
                k.id
            )),
            Ok(k) => after.push(k.id.to_string()),
            Err(e) => problems.push(format!("trust.add[{i}]: {e}")),
        }
    }
    after.retain(|id| !t.revoke.iter().any(|r| r.eq_ignore_ascii_case(id)));
    if after.is_empty() {
        problems.push(format!(
            "trust.revoke ({}) would leave this install with no trusted key; hint: the bundle must also add the vendor's next key",
            t.revoke.join(", ")
        ));
    }
}

/// Applies a bundle's trust change after a successful install; returns notes.
fn apply_trust_change(
    sd: &StateDir,
    t: &manifest_schema::TrustChange,
) -> Result<Vec<String>, InstallError> {
    let mut notes = Vec::new();
    let trusted = sd.trusted_keys()?;
    for a in &t.add {
        let k = PublicKey::parse(&a.key).map_err(|e| InstallError::Input(e.to_string()))?;
        if !trusted.contains(&k) {
            sd.add_key(&k)?;
            notes.push(format!("now trusting key {} (carried by the bundle)", k.id));
        }
    }
    for id in &t.revoke {
        let trusted = sd.trusted_keys()?;
        if let Some(k) = trusted
            .iter()
            .find(|k| k.id.to_string().eq_ignore_ascii_case(id))
        {
            sd.revoke_key(k)?;
            notes.push(format!(
                "revoked key {} (as the bundle asks): bundles signed only by it are refused from now on",
                k.id
            ));
        }
    }
    Ok(notes)
}

/// Replaces `DIR/bin/installer` with the bundle's installer when that is
/// newer than this one, then asks the caller to re-execute it
/// ([`InstallError::SelfUpdated`]). Runs after the whole bundle verified and
/// before anything else changes.
fn self_update(
    opts: &InstallOptions,
    m: &Manifest,
    staging: &Path,
    report: &dyn Report,
) -> Result<(), InstallError> {
    let Some(inst) = &m.installer else {
        return Ok(());
    };
    let ours: Version = INSTALLER_VERSION.parse().expect("crate version");
    let file = m
        .files
        .iter()
        .find(|f| f.path == inst.path)
        .expect("validated: the installer is one of the files");
    if inst.version <= ours || opts.self_updated.as_deref() == Some(file.sha256.as_str()) {
        return Ok(());
    }
    let dst = opts.dir.join(inst.path.as_str());
    let src = staging.join("files").join(inst.path.as_str());
    let fs = Root::open(&opts.dir).map_err(InstallError::Fs)?;
    copy_into(&fs, &src, Path::new(inst.path.as_str()), 0o755).map_err(InstallError::Input)?;
    // The copy is checked again: what runs next must be what was signed.
    let got = sha_file(&dst).map_err(io_at(&dst))?;
    if got != file.sha256 {
        return Err(InstallError::Input(format!(
            "{}: wrote the bundled installer but read back {got}, expected {}; hint: check the disk",
            dst.display(),
            file.sha256
        )));
    }
    report.step(&format!(
        "updated the installer: {} is now {} (this one is {ours}); continuing with it",
        dst.display(),
        inst.version
    ));
    let _ = std::fs::remove_dir_all(staging);
    Err(InstallError::SelfUpdated {
        binary: dst,
        version: inst.version.to_string(),
        sha256: file.sha256.to_string(),
    })
}

/// Moves a verified staging dir into `releases/<version>` and the blob store.
fn keep_release(sd: &StateDir, v: &VerifiedManifest, staging: &Path) -> Result<(), InstallError> {
    let m = v.manifest();
    let fs = sd.fs()?;
    let fs_err = InstallError::Fs;
    let rel = StateDir::rel("releases").join(m.version.to_string());
    let staged = staging
        .strip_prefix(&sd.dir)
        .expect("the staging dir is inside the install dir")
        .to_path_buf();
    // Everything staged reaches the disk before a rename makes it visible,
    // and the renames before the journal says "staged".
    syncfs(staging)?;
    let tmp = StateDir::rel("releases").join(format!("{}.incoming", m.version));
    let _ = std::fs::remove_dir_all(sd.dir.join(&tmp));
    fs.create_dir_all(&tmp).map_err(fs_err)?;
    if staging.join("files").exists() {
        fs.rename(&staged.join("files"), &tmp.join("files"))
            .map_err(fs_err)?;
    } else {
        fs.create_dir_all(&tmp.join("files")).map_err(fs_err)?;
    }
    fs.write(&tmp.join("manifest.json"), v.raw(), 0o644)
        .map_err(fs_err)?;
    fs.write(
        &tmp.join("manifest.json.minisig"),
        v.signature().to_file().as_bytes(),
        0o644,
    )
    .map_err(fs_err)?;
    if let Ok(rd) = std::fs::read_dir(staging.join("blobs")) {
        for e in rd.flatten() {
            let dest = StateDir::rel("blobs/sha256").join(e.file_name());
            if fs.kind(&dest).map_err(fs_err)?.1 == Kind::Absent {
                fs.rename(&staged.join("blobs").join(e.file_name()), &dest)
                    .map_err(fs_err)?;
            }
        }
    }
    if sd.dir.join(&rel).exists() {
        let old = StateDir::rel("releases").join(format!("{}.replaced", m.version));
        let _ = std::fs::remove_dir_all(sd.dir.join(&old));
        fs.rename(&rel, &old).map_err(fs_err)?;
        fs.rename(&tmp, &rel).map_err(fs_err)?;
        let _ = std::fs::remove_dir_all(sd.dir.join(&old));
    } else {
        fs.rename(&tmp, &rel).map_err(fs_err)?;
    }
    let _ = std::fs::remove_dir_all(staging);
    syncfs(&sd.root)
}

/// Flushes the filesystem holding `path` (one call instead of an fsync per
/// staged file).
fn syncfs(path: &Path) -> Result<(), InstallError> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(path).map_err(io_at(path))?;
    nix::unistd::syncfs(dir.as_raw_fd()).map_err(|e| io_at(path)(io::Error::from(e)))
}

struct Failure {
    reason: String,
    logs: String,
}

fn fail_from(reason: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        logs: String::new(),
    }
}

/// Loads images, applies files, ups and waits; used by install and
/// rollback (`op` is what the journal records: a crash in the middle of a
/// rollback is reported as one).
#[allow(clippy::too_many_arguments)]
fn apply_release(
    op: Op,
    sd: &StateDir,
    engine: &dyn Engine,
    state: &State,
    m: &Manifest,
    opts: &InstallOptions,
    report: &dyn Report,
    notes: &mut Vec<String>,
) -> Result<Loaded, Failure> {
    let interrupted = || opts.interrupted.load(Ordering::Relaxed);
    let check = |phase: &str| -> Result<(), Failure> {
        if interrupted() {
            return Err(fail_from(format!("interrupted by a signal during {phase}")));
        }
        Ok(())
    };
    check("staging")?;
    let (images, loaded) = ensure_images(sd, engine, m, report)
        .map_err(|e| fail_from(format!("loading images: {e}")))?;
    journal(
        sd,
        op,
        state.current.as_ref().map(|r| &r.version),
        &m.version,
        Phase::Images,
    )
    .map_err(|e| fail_from(e.to_string()))?;
    fault!("after-images", Err(fail_from("fault point after-images")));
    check("image loading")?;
    let kept = apply_files(sd, state, m).map_err(|e| fail_from(format!("replacing files: {e}")))?;
    for k in kept {
        report.warn(&k);
        notes.push(k);
    }
    journal(
        sd,
        op,
        state.current.as_ref().map(|r| &r.version),
        &m.version,
        Phase::Files,
    )
    .map_err(|e| fail_from(e.to_string()))?;
    fault!("after-files", Err(fail_from("fault point after-files")));
    check("file replacement")?;
    up_and_wait(sd, engine, m, opts, report)?;
    fault!("after-health", Err(fail_from("fault point after-health")));
    Ok((images, loaded))
}

fn up_and_wait(
    sd: &StateDir,
    engine: &dyn Engine,
    m: &Manifest,
    opts: &InstallOptions,
    report: &dyn Report,
) -> Result<(), Failure> {
    let files = compose_files(&sd.fs().map_err(|e| fail_from(e.to_string()))?, m);
    report.step(&format!(
        "starting {} {} with {}",
        m.name,
        m.version,
        engine.compose_name()
    ));
    engine
        .compose(
            &sd.dir,
            &m.compose.project,
            &files,
            &["up", "-d", "--remove-orphans", "--no-build"],
        )
        .map_err(|e| fail_from(format!("compose up: {e}")))?;
    let vars = envfile::parse(
        &sd.fs()
            .ok()
            .and_then(|fs| read_env(&fs).ok())
            .unwrap_or_default(),
    );
    let url = match m.health.as_ref().and_then(|h| h.url.as_deref()) {
        Some(u) => Some(
            envfile::interpolate(u, &vars).map_err(|e| fail_from(format!("health url: {e}")))?,
        ),
        None => None,
    };
    let compose_checks = m.health.as_ref().is_some_and(|h| h.compose_healthchecks);
    let timeout = Duration::from_secs(m.health.as_ref().map(|h| h.timeout_secs).unwrap_or(60));
    report.step(&format!(
        "waiting up to {}s for health{}",
        timeout.as_secs(),
        url.as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default()
    ));
    let interrupted = || opts.interrupted.load(Ordering::Relaxed);
    health::wait(
        engine,
        &m.compose.project,
        url.as_deref(),
        compose_checks,
        timeout,
        &interrupted,
    )
    .map_err(|u| {
        let logs = u
            .container
            .as_deref()
            .map(|c| format!("\nlast log lines of {c}:\n{}", engine.logs(c, 20)))
            .unwrap_or_default();
        Failure {
            reason: format!("health check failed: {}", u.reason),
            logs,
        }
    })
}

/// Images of a release: (name, image ID) of each, and the names loaded now.
pub type Loaded = (Vec<(String, String)>, Vec<String>);

/// Makes every image of `m` for this host present and tagged.
pub fn ensure_images(
    sd: &StateDir,
    engine: &dyn Engine,
    m: &Manifest,
    report: &dyn Report,
) -> Result<Loaded, String> {
    let (os, arch) = host_platform();
    let mut existing = engine.images().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut loaded = Vec::new();
    let mut seen = BTreeSet::new();
    for img in m
        .images
        .iter()
        .filter(|i| i.platform.os == os && i.platform.arch == arch)
    {
        if !seen.insert(img.name.clone()) {
            continue;
        }
        let id = img.config.digest.to_string();
        out.push((img.name.clone(), id.clone()));
        if existing.contains_key(&id) {
            if engine
                .image_id(&img.name)
                .map_err(|e| e.to_string())?
                .as_deref()
                != Some(id.as_str())
            {
                engine.tag(&id, &img.name).map_err(|e| e.to_string())?;
            }
            continue;
        }
        let diff_ids = config_diff_ids(sd, img)?;
        let skip = if engine.skips_present_layers() {
            existing
                .values()
                .map(|have| {
                    have.iter()
                        .zip(&diff_ids)
                        .take_while(|(a, b)| a == b)
                        .count()
                })
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        report.step(&format!(
            "loading {} ({} of {} layers new)",
            img.name,
            img.layers.len() - skip,
            img.layers.len()
        ));
        engine
            .load(&mut |w| write_docker_archive(w, sd, img, skip))
            .map_err(|e| format!("{}: {e}", img.name))?;
        let got = engine.image_id(&img.name).map_err(|e| e.to_string())?;
        if got.as_deref() != Some(id.as_str()) {
            return Err(format!(
                "{}: after load the engine reports image {}, expected {id}",
                img.name,
                got.unwrap_or_else(|| "nothing".into())
            ));
        }
        existing.insert(id, diff_ids);
        loaded.push(img.name.clone());
    }
    Ok((out, loaded))
}

fn config_diff_ids(sd: &StateDir, img: &ImageEntry) -> Result<Vec<String>, String> {
    let p = sd.blob(&img.config.digest);
    let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&b).map_err(|e| format!("config of {}: {e}", img.name))?;
    Ok(v["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Streams a docker-archive of one image from the blob store, leaving out
/// the first `skip` layer files (the engine has those layers).
pub fn write_docker_archive(
    w: &mut dyn Write,
    sd: &StateDir,
    img: &ImageEntry,
    skip: usize,
) -> io::Result<()> {
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", img.config.digest.hex()),
        "RepoTags": [img.name],
        "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
    }]);
    let mut tar = TarWriter::new(w, 0);
    tar.file("manifest.json", &serde_json::to_vec(&manifest)?, 0o644)?;
    let mut buf = vec![0u8; 256 * 1024];
    let blobs = std::iter::once(&img.config).chain(img.layers.iter().skip(skip));
    for d in blobs {
        let mut f = std::fs::File::open(sd.blob(&d.digest))?;
        tar.header(&format!("blobs/sha256/{}", d.digest.hex()), d.size, 0o644)?;
        let mut left = d.size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("blob {} is shorter than recorded", d.digest),
                ));
            }
            tar.data(&buf[..n])?;
            left -= n as u64;
        }
        tar.pad(d.size)?;
    }
    tar.finish()?;
    Ok(())
}

/// Hashes of a path that a kept release wrote (so they are not operator edits).
fn known_hashes(
    sd: &StateDir,
    state: &State,
    target: &Manifest,
) -> BTreeMap<String, BTreeSet<Digest>> {
    let mut k: BTreeMap<String, BTreeSet<Digest>> = BTreeMap::new();
    for r in state.current.iter().chain(state.previous.iter()) {
        for f in &r.files {
            k.entry(f.path.clone())
                .or_default()
                .insert(f.sha256.clone());
        }
    }
    for f in &target.files {
        k.entry(f.path.to_string())
            .or_default()
            .insert(f.sha256.clone());
    }
    // A crashed install may have written files of a release kept on disk.
    if let Ok(rd) = std::fs::read_dir(sd.root.join("releases")) {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read(e.path().join("manifest.json")) {
                if let Ok(mm) = serde_json::from_slice::<Manifest>(&b) {
                    for f in mm.files {
                        k.entry(f.path.to_string()).or_default().insert(f.sha256);
                    }
                }
            }
        }
    }
    k
}

/// Replaces the managed files with those of `target`; returns notes about
/// operator edits that were kept.
///
/// A managed file the operator edited (its content matches no release the
/// installer wrote) is kept in place; the bundle's version is written
/// beside it as `<path>.new` and reported.
fn apply_files(sd: &StateDir, state: &State, target: &Manifest) -> Result<Vec<String>, String> {
    let known = known_hashes(sd, state, target);
    let rel = sd.release_dir(&target.version).join("files");
    let fs = sd.fs().map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    for f in &target.files {
        let dst = Path::new(f.path.as_str());
        let src = rel.join(f.path.as_str());
        // A link, fifo or dir here (or among its dirs) is refused, not
        // followed: preflight reported it already, this holds if one was
        // planted since.
        let now = sha_in(&fs, dst).map_err(|e| e.to_string())?;
        match decide(now.as_ref(), &f.sha256, known.get(f.path.as_str())) {
            FileAction::Unchanged => fs.set_mode(dst, f.mode).map_err(|e| e.to_string())?,
            FileAction::KeepEdited => {
                let beside = PathBuf::from(format!("{}.new", f.path));
                copy_into(&fs, &src, &beside, f.mode)?;
                notes.push(format!(
                    "{} was edited since it was installed: your version is kept, {}'s is in {}.new; merge them by hand",
                    f.path, target.version, f.path
                ));
            }
            FileAction::Write | FileAction::Replace => copy_into(&fs, &src, dst, f.mode)?,
        }
    }
    // Files the previous release managed and this one does not.
    if let Some(cur) = &state.current {
        for old in &cur.files {
            if target.files.iter().any(|f| f.path.as_str() == old.path) {
                continue;
            }
            let p = Path::new(&old.path);
            match sha_in(&fs, p) {
                Ok(Some(h)) if h == old.sha256 => {
                    fs.remove_file(p).map_err(|e| e.to_string())?;
                }
                Ok(Some(_)) => notes.push(format!(
                    "{} is no longer managed and was edited: kept",
                    old.path
                )),
                _ => {}
            }
        }
    }
    Ok(notes)
}

/// What an install does with one managed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Absent: written.
    Write,
    /// Already the new content: only its mode is set.
    Unchanged,
    /// Content some release wrote: replaced.
    Replace,
    /// Content no release wrote (an operator's edit): kept, the new
    /// version written beside it as `<path>.new`.
    KeepEdited,
}

/// [`FileAction`] for a file whose content is `now` (`None`: absent), given
/// the new content and the contents releases wrote at that path.
pub fn decide(now: Option<&Digest>, new: &Digest, known: Option<&BTreeSet<Digest>>) -> FileAction {
    match now {
        None => FileAction::Write,
        Some(h) if h == new => FileAction::Unchanged,
        Some(h) if known.is_some_and(|k| k.contains(h)) => FileAction::Replace,
        Some(_) => FileAction::KeepEdited,
    }
}

/// sha256 of the regular file `rel` below the install dir; `None` when
/// absent; an error (never a read through it) for a link or special file.
fn sha_in(fs: &Root, rel: &Path) -> io::Result<Option<Digest>> {
    let Some(mut f) = fs.open_read(rel)? else {
        return Ok(None);
    };
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(Some(Digest::from_sha256_bytes(&h.finalize().into())))
}

/// Copies `src` (in the state dir) to `rel` below the install dir, atomically.
fn copy_into(fs: &Root, src: &Path, rel: &Path, mode: u32) -> Result<(), String> {
    let data = std::fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    fs.write(rel, &data, mode).map_err(|e| e.to_string())
}

/// Runs a hook of release `m` from the install dir, with the versions and a
/// fresh backup dir in its environment; returns the backup dir.
fn run_hook(
    sd: &StateDir,
    m: &Manifest,
    hook: &manifest_schema::RelPath,
    name: &str,
    from: Option<&Version>,
) -> Result<PathBuf, InstallError> {
    let rel = Path::new(layout::BACKUPS_DIR).join(format!(
        "{}-to-{}-{}",
        from.map(ToString::to_string)
            .unwrap_or_else(|| "none".into()),
        m.version,
        state::now().replace(':', "")
    ));
    sd.fs()?.create_dir_all(&rel).map_err(InstallError::Fs)?;
    let backup = sd.dir.join(&rel);
    let script = sd.release_dir(&m.version).join("files").join(hook.as_str());
    let r = run_script(
        sd,
        &script,
        hook,
        name,
        from,
        &m.version,
        &m.compose.project,
        &backup,
    );
    if r.is_err() && name == "pre_upgrade" {
        let _ = std::fs::remove_dir_all(&backup);
    }
    r.map(|()| backup)
}

/// Runs a hook script from the install dir with `INSTALL_DIR`, `BACKUP_DIR`,
/// `FROM_VERSION`, `TO_VERSION` and `COMPOSE_PROJECT_NAME` set; its output
/// goes to `BACKUP_DIR/<name>.log`.
#[allow(clippy::too_many_arguments)]
fn run_script(
    sd: &StateDir,
    script: &Path,
    hook: &manifest_schema::RelPath,
    name: &str,
    from: Option<&Version>,
    to: &Version,
    project: &str,
    backup: &Path,
) -> Result<(), InstallError> {
    let out = std::process::Command::new("/bin/sh")
        .arg(script)
        .current_dir(&sd.dir)
        .env("INSTALL_DIR", &sd.dir)
        .env("BACKUP_DIR", backup)
        .env(
            "FROM_VERSION",
            from.map(ToString::to_string).unwrap_or_default(),
        )
        .env("TO_VERSION", to.to_string())
        .env("COMPOSE_PROJECT_NAME", project)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io_at(script))?;
    if let Ok(rel) = backup.strip_prefix(&sd.dir) {
        let _ = sd.write(
            &rel.join(format!("{name}.log")),
            &[out.stdout.as_slice(), out.stderr.as_slice()].concat(),
            0o644,
        );
    }
    if !out.status.success() {
        return Err(InstallError::Hook {
            name: name.to_owned(),
            hook: hook.to_string(),
            message: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Puts the current release (per state.json) back in place: files, images,
/// containers, health. With no current release, stops the stack and removes
/// the files `failed` wrote.
fn restore(
    sd: &StateDir,
    engine: &dyn Engine,
    state: &State,
    failed: Option<&Manifest>,
    opts: &InstallOptions,
    report: &dyn Report,
) -> Result<String, String> {
    let calm = InstallOptions {
        interrupted: Arc::new(AtomicBool::new(false)),
        ..opts.clone()
    };
    match &state.current {
        Some(cur) => {
            let m = sd
                .release_manifest(&cur.version)
                .map_err(|e| e.to_string())?;
            journal(
                sd,
                Op::Rollback,
                failed.map(|f| &f.version),
                &cur.version,
                Phase::Restoring,
            )
            .map_err(|e| e.to_string())?;
            if let Some(saved) = sd.saved_env(None).map_err(|e| e.to_string())? {
                if sd.put_env(&saved).map_err(|e| e.to_string())? {
                    report.step(&format!(".env put back as {} had it", cur.version));
                }
            }
            // Treat what the failed install wrote as known, not as edits.
            let mut as_if = state.clone();
            if let Some(f) = failed {
                as_if.current = Some(Release {
                    version: f.version.clone(),
                    files: f
                        .files
                        .iter()
                        .map(|x| InstalledFile {
                            path: x.path.to_string(),
                            sha256: x.sha256.clone(),
                        })
                        .collect(),
                    images: vec![],
                    key_id: String::new(),
                    env: Default::default(),
                });
            }
            let mut notes = Vec::new();
            apply_release(
                Op::Rollback,
                sd,
                engine,
                &as_if,
                &m,
                &calm,
                report,
                &mut notes,
            )
            .map_err(|f| format!("{}{}", f.reason, f.logs))?;
            Ok(format!(
                "{} {}, running and healthy",
                state.name, cur.version
            ))
        }
        None => {
            if let Some(f) = failed {
                let files = compose_files(&sd.fs().map_err(|e| e.to_string())?, f);
                let _ = engine.compose(
                    &sd.dir,
                    &f.compose.project,
                    &files,
                    &["down", "--remove-orphans"],
                );
                let fs = sd.fs().map_err(|e| e.to_string())?;
                for x in &f.files {
                    let p = Path::new(x.path.as_str());
                    if sha_in(&fs, p).is_ok_and(|h| h.as_ref() == Some(&x.sha256)) {
                        let _ = fs.remove_file(p);
                        // Remove the parent dirs it needed, if now empty.
                        let mut d = p.parent();
                        while let Some(dir) = d.filter(|d| !d.as_os_str().is_empty()) {
                            if fs.remove_dir(dir).is_err() {
                                break;
                            }
                            d = dir.parent();
                        }
                    }
                }
            }
            Ok("the state before the first install: the stack is stopped and its files removed (.env and the state dir are kept)".into())
        }
    }
}

/// Flags of `installer rollback`.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// The install dir.
    pub dir: PathBuf,
    /// Run the restore hook with the newest matching backup.
    pub restore_data: bool,
}

/// `installer rollback`: finishes an interrupted install by restoring the
/// current release, or goes back to the previous one.
pub fn rollback(
    opts: &RollbackOptions,
    engine: Box<dyn Engine>,
    report: &dyn Report,
) -> Result<String, InstallError> {
    let abs = std::fs::canonicalize(&opts.dir).map_err(io_at(&opts.dir))?;
    let opts = &RollbackOptions {
        dir: abs,
        ..opts.clone()
    };
    let sd = StateDir::new(&opts.dir);
    sd.check()?;
    if !sd.exists() {
        return Err(InstallError::Input(format!(
            "{} is not an install (no {STATE_DIR}/ state)",
            opts.dir.display()
        )));
    }
    let _lock = sd.lock()?;
    clear_staging(&sd);
    let mut state = sd.load()?;
    let iopts = InstallOptions {
        dir: opts.dir.clone(),
        ..Default::default()
    };
    if let Some(j) = sd.journal() {
        report.step(&format!(
            "{} of {} was interrupted in phase {}; restoring the installed release",
            j.op.with_article(),
            j.to,
            j.phase
        ));
        let failed =
            j.to.parse::<Version>()
                .ok()
                .and_then(|v| sd.release_manifest(&v).ok());
        if let Some(cur) = &state.current {
            let m = sd.release_manifest(&cur.version)?;
            let failed_files = failed.as_ref().map(|f| f.files.as_slice()).unwrap_or(&[]);
            refuse_planted(&sd, &m, failed_files)?;
        }
        let what = restore(
            &sd,
            engine.as_ref(),
            &state,
            failed.as_ref(),
            &iopts,
            report,
        )
        .map_err(|e| InstallError::RollbackFailed {
            failed: format!("interrupted {} of {}", j.op, j.to),
            restore: e,
        })?;
        state.history.push(HistoryEntry {
            time: state::now(),
            action: Action::Rollback,
            from: Some(j.to.clone()),
            to: state
                .current
                .as_ref()
                .map(|c| c.version.to_string())
                .unwrap_or_default(),
            outcome: Outcome::Ok,
            message: format!("finished interrupted {}", j.op),
        });
        sd.save(&state)?;
        sd.clear_journal()?;
        return Ok(what);
    }
    let (Some(cur), Some(prev)) = (state.current.clone(), state.previous.clone()) else {
        return Err(InstallError::Input(
            "there is no previous release to roll back to".into(),
        ));
    };
    report.warn(&format!(
        "rolling back {} -> {}: migrations are forward-only, so data written by {} may not work with {}; {}",
        cur.version,
        prev.version,
        cur.version,
        prev.version,
        if opts.restore_data { "restoring the matching backup" } else { "pass --restore-data to restore the backup taken before the upgrade" }
    ));
    let prev_m = sd.release_manifest(&prev.version)?;
    let cur_m = sd.release_manifest(&cur.version)?;
    refuse_planted(&sd, &prev_m, &cur_m.files)?;
    if opts.restore_data {
        let Some(hook) = &prev_m.hooks.restore.clone().or(cur_m.hooks.restore.clone()) else {
            return Err(InstallError::Input(
                "--restore-data: the bundle declares no restore hook".into(),
            ));
        };
        let backup = latest_backup(&opts.dir, &prev.version, &cur.version).ok_or_else(|| {
            InstallError::Input(format!(
                "--restore-data: no backup {}-to-{}-* under {}/backups",
                prev.version,
                cur.version,
                opts.dir.display()
            ))
        })?;
        // Stop the new version before touching its data.
        let files = compose_files(&sd.fs()?, &cur_m);
        engine.compose(&opts.dir, &cur_m.compose.project, &files, &["stop"])?;
        let script = sd
            .release_dir(&cur.version)
            .join("files")
            .join(hook.as_str());
        let script = if script.exists() {
            script
        } else {
            sd.release_dir(&prev.version)
                .join("files")
                .join(hook.as_str())
        };
        run_script(
            &sd,
            &script,
            hook,
            "restore",
            Some(&cur.version),
            &prev.version,
            &cur_m.compose.project,
            &backup,
        )?;
        report.step(&format!("restored data from {}", backup.display()));
    }
    sd.save_env(None)?;
    journal(
        &sd,
        Op::Rollback,
        Some(&cur.version),
        &prev.version,
        Phase::Files,
    )?;
    let mut notes = Vec::new();
    sd.save_env(Some(&cur.version))?;
    if let Some(n) = put_back_env(&sd, &prev.version, &cur.version)? {
        report.step(&n);
        notes.push(n);
    }
    let r = apply_release(
        Op::Rollback,
        &sd,
        engine.as_ref(),
        &state,
        &prev_m,
        &iopts,
        report,
        &mut notes,
    );
    match r {
        Ok(_) => {
            state.current = Some(prev.clone());
            state.previous = Some(cur.clone());
            state.history.push(HistoryEntry {
                time: state::now(),
                action: Action::Rollback,
                from: Some(cur.version.to_string()),
                to: prev.version.to_string(),
                outcome: Outcome::Ok,
                message: notes.join("; "),
            });
            sd.save(&state)?;
            sd.clear_journal()?;
            Ok(format!(
                "{} {}, running and healthy",
                state.name, prev.version
            ))
        }
        Err(f) => {
            let back = restore(&sd, engine.as_ref(), &state, Some(&prev_m), &iopts, report);
            sd.clear_journal()?;
            match back {
                Ok(w) => Err(InstallError::RolledBack {
                    failed: format!("rollback to {} failed: {}", prev.version, f.reason),
                    restored: w,
                    logs: f.logs,
                }),
                Err(e) => Err(InstallError::RollbackFailed {
                    failed: format!("rollback to {} failed: {}", prev.version, f.reason),
                    restore: e,
                }),
            }
        }
    }
}

fn latest_backup(dir: &Path, prev: &Version, cur: &Version) -> Option<PathBuf> {
    let prefix = format!("{prev}-to-{cur}-");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(layout::BACKUPS_DIR))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v.pop()
}

/// Drops kept releases and blobs that neither the current nor the previous
/// release needs.
fn prune(sd: &StateDir, state: &State) {
    let keep: Vec<&Version> = state
        .current
        .iter()
        .chain(state.previous.iter())
        .map(|r| &r.version)
        .collect();
    let mut needed = BTreeSet::new();
    for v in &keep {
        if let Ok(m) = sd.release_manifest(v) {
            for d in m.all_blobs() {
                needed.insert(d.digest.hex().to_owned());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(sd.root.join("releases")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.iter().any(|v| v.to_string() == name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(sd.root.join("blobs/sha256")) {
        for e in rd.flatten() {
            if !needed.contains(&*e.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
