//! The installer's state dir inside an install dir (`DIR/.installer/`).
//!
//! ```text
//! .installer/
//!   lock                  held (flock) by the running install/rollback
//!   state.json            what is installed, what was before, the history
//!   journal.json          present while an install or rollback is under way
//!   keys/<ID>.pub         trusted public keys
//!   revoked/<ID>.pub      revoked keys
//!   releases/<VERSION>/   manifest.json, its signature, files/ (managed files)
//!   blobs/sha256/<HEX>    image blobs of the kept releases
//!   staging/              entries being verified (removed on failure)
//! ```
//!
//! `state.json` changes only when an install or rollback succeeds, by an
//! atomic rename, so it always names a release that was healthy.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use bundle_format::safefs::{Kind, Refused, Root};

use manifest_schema::layout::{ENV_FILE, STATE_DIR};
use manifest_schema::{Digest, Manifest, Version};
use serde::{Deserialize, Serialize};

use crate::minisign::PublicKey;

/// In a release dir: the site registry its images are pulled from.
pub const REGISTRY_FILE: &str = "registry";
/// Errors about the state dir.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O on a path.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A read or write below the install dir (the error names its path, and
    /// a link or special file in the way is a [`Refused`]).
    #[error(transparent)]
    Fs(io::Error),
    /// The state dir could be steered by another account.
    #[error("the state dir is not safe to use, nothing was changed:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Unsafe(Vec<String>),
    /// Another install holds the lock.
    #[error(
        "{0}: another install or rollback is running on this dir; hint: wait for it to finish"
    )]
    Locked(PathBuf),
    /// state.json is unreadable.
    #[error("{path}: {message}; hint: the state dir is damaged; restore it from a backup")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> StateError + '_ {
    move |e| StateError::Io {
        path: path.to_owned(),
        source: e,
    }
}

/// One managed file as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledFile {
    /// Path in the install dir.
    pub path: String,
    /// sha256 of what the installer wrote.
    pub sha256: Digest,
}

/// A release that was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Version.
    pub version: Version,
    /// Managed files.
    pub files: Vec<InstalledFile>,
    /// Image names and IDs.
    pub images: Vec<(String, String)>,
    /// Key that signed it.
    pub key_id: String,
    /// The values the installer wrote for the release's managed `.env`
    /// keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// `.env` as it was when a release last ran (`releases/<V>/env.json`), put
/// back when an install of another release fails or is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedEnv {
    /// Whether there was a `.env` at all.
    pub present: bool,
    /// Its bytes, as text.
    pub text: String,
}

/// What an install or rollback did, in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The first install.
    Install,
    /// A newer version.
    Upgrade,
    /// The same version again.
    Reinstall,
    /// An older version (`--allow-downgrade`).
    Downgrade,
    /// Back to the previous release, or the end of an interrupted operation.
    Rollback,
}

/// How it ended, in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It worked.
    #[serde(rename = "ok")]
    Ok,
    /// It failed and the release before it runs again.
    #[serde(rename = "rolled back")]
    RolledBack,
    /// It failed and so did putting the release before it back.
    #[serde(rename = "failed")]
    Failed,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Reinstall => "reinstall",
            Action::Downgrade => "downgrade",
            Action::Rollback => "rollback",
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Outcome::Ok => "ok",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
        })
    }
}

/// The operation a journal records: a crash in the middle of one is
/// reported as that operation, and recovered from as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `installer install`.
    Install,
    /// `installer rollback`, or the restore after a failed install.
    Rollback,
}

impl Op {
    /// "an install", "a rollback".
    pub fn with_article(self) -> &'static str {
        match self {
            Op::Install => "an install",
            Op::Rollback => "a rollback",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Install => "install",
            Op::Rollback => "rollback",
        })
    }
}

/// The last phase a journaled operation reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The bundle is being verified and staged (nothing changed yet but
    /// the state dir).
    Verifying,
    /// The release is kept in the state dir.
    Staged,
    /// Restoring the release on record.
    Restoring,
    /// The images are loaded.
    Images,
    /// The managed files are in place.
    Files,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Verifying => "verifying",
            Phase::Staged => "staged",
            Phase::Restoring => "restoring",
            Phase::Images => "images",
            Phase::Files => "files",
        })
    }
}

/// One line of the install history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339 time.
    pub time: String,
    /// What it did.
    pub action: Action,
    /// Version before.
    pub from: Option<String>,
    /// Version targeted.
    pub to: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Details.
    pub message: String,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Product name.
    pub name: String,
    /// The healthy release in place.
    pub current: Option<Release>,
    /// The release before it (target of `rollback`).
    pub previous: Option<Release>,
    /// Every install and rollback.
    pub history: Vec<HistoryEntry>,
}

/// An operation under way (`journal.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// What is under way.
    pub op: Op,
    /// Version being left.
    pub from: Option<String>,
    /// Version being installed.
    pub to: String,
    /// Last phase reached.
    pub phase: Phase,
    /// Start time.
    pub started: String,
}

/// An install dir's state dir.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// The install dir.
    pub dir: PathBuf,
    /// `DIR/.installer`.
    pub root: PathBuf,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

/// Now, RFC 3339.
pub fn now() -> String {
    manifest_schema::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

impl StateDir {
    /// The state dir of `dir` (not created).
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_owned(),
            root: dir.join(STATE_DIR),
        }
    }

    /// The install dir, for reads and writes that follow no link below it
    /// ([`Root`]): every write into the install dir or the state dir goes
    /// through it.
    pub fn fs(&self) -> Result<Root, StateError> {
        Root::open(&self.dir).map_err(StateError::Fs)
    }

    /// `rel` inside the state dir, relative to the install dir.
    pub fn rel(rel: impl AsRef<Path>) -> PathBuf {
        Path::new(STATE_DIR).join(rel)
    }

    /// What in the state dir another account could use to steer the
    /// installer's root writes: the state dir itself being a link, a file,
    /// owned by another user or writable by group or others, and any link,
    /// fifo, device or socket inside it. Empty when it is absent or sound.
    pub fn audit(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let md = match fs::symlink_metadata(&self.root) {
            Ok(md) => md,
            Err(_) => return out,
        };
        if !md.is_dir() {
            out.push(
                Refused {
                    path: self.root.clone(),
                    found: Kind::of_metadata(&md),
                    wanted: Kind::Dir,
                }
                .to_string(),
            );
            return out;
        }
        let me = rustix::process::geteuid().as_raw();
        if md.uid() != me {
            out.push(format!(
                "{} is owned by uid {}, not by the installer's uid {me}: that account could plant links in it; hint: `chown -R {me} {}` if the dir is yours",
                self.root.display(),
                md.uid(),
                self.root.display()
            ));
        }
        if md.mode() & 0o022 != 0 {
            out.push(format!(
                "{} is writable by group or others (mode {:o}): they could plant links in it; hint: `chmod go-w {}`",
                self.root.display(),
                md.mode() & 0o7777,
                self.root.display()
            ));
        }
        fn walk(dir: &Path, out: &mut Vec<String>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(md) = fs::symlink_metadata(&p) else {
                    continue;
                };
                match Kind::of_metadata(&md) {
                    Kind::Dir => walk(&p, out),
                    Kind::File => {}
                    k => out.push(
                        Refused {
                            path: p,
                            found: k,
                            wanted: Kind::File,
                        }
                        .to_string(),
                    ),
                }
            }
        }
        walk(&self.root, &mut out);
        out
    }

    /// [`StateDir::audit`] as an error.
    pub fn check(&self) -> Result<(), StateError> {
        let problems = self.audit();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StateError::Unsafe(problems))
        }
    }

    /// True when the dir holds an install.
    pub fn exists(&self) -> bool {
        self.root.join("state.json").is_file() || self.root.join("keys").is_dir()
    }

    /// Creates the layout.
    pub fn create(&self) -> Result<(), StateError> {
        let root = self.fs()?;
        for d in ["keys", "revoked", "releases", "blobs/sha256", "staging"] {
            root.create_dir_all(&Self::rel(d)).map_err(StateError::Fs)?;
        }
        Ok(())
    }

    /// Takes the lock, failing at once if another process holds it.
    pub fn lock(&self) -> Result<Lock, StateError> {
        let p = self.root.join("lock");
        let f = self
            .fs()?
            .open_lock(&Self::rel("lock"))
            .map_err(StateError::Fs)?;
        match f.try_lock() {
            Ok(()) => Ok(Lock(f)),
            Err(fs::TryLockError::WouldBlock) => Err(StateError::Locked(self.dir.clone())),
            Err(fs::TryLockError::Error(e)) => Err(StateError::Io { path: p, source: e }),
        }
    }

    /// Reads state.json (default when absent).
    pub fn load(&self) -> Result<State, StateError> {
        let p = self.root.join("state.json");
        match self.fs()?.read(&Self::rel("state.json")) {
            Ok(Some(b)) => serde_json::from_slice(&b).map_err(|e| StateError::Corrupt {
                path: p,
                message: e.to_string(),
            }),
            Ok(None) => Ok(State::default()),
            Err(e) => Err(StateError::Fs(e)),
        }
    }

    /// Writes state.json atomically.
    pub fn save(&self, s: &State) -> Result<(), StateError> {
        let data = serde_json::to_vec_pretty(s).expect("json");
        self.write(&Self::rel("state.json"), &data, 0o644)
    }

    /// The journal, if an operation is under way.
    pub fn journal(&self) -> Option<Journal> {
        fs::read(self.root.join("journal.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Writes the journal.
    pub fn set_journal(&self, j: &Journal) -> Result<(), StateError> {
        let data = serde_json::to_vec_pretty(j).expect("json");
        self.write(&Self::rel("journal.json"), &data, 0o644)
    }

    /// Removes the journal (and its copy of `.env`).
    pub fn clear_journal(&self) -> Result<(), StateError> {
        let fs = self.fs()?;
        fs.remove_file(&Self::rel("journal.json"))
            .map_err(StateError::Fs)?;
        fs.remove_file(&Self::env_rel(None)).map_err(StateError::Fs)
    }

    /// Trusted keys.
    pub fn trusted_keys(&self) -> Result<Vec<PublicKey>, StateError> {
        self.keys_in("keys")
    }

    /// Revoked keys.
    pub fn revoked_keys(&self) -> Result<Vec<PublicKey>, StateError> {
        self.keys_in("revoked")
    }

    fn keys_in(&self, sub: &str) -> Result<Vec<PublicKey>, StateError> {
        let d = self.root.join(sub);
        let mut v = Vec::new();
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(StateError::Io { path: d, source: e }),
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|x| x == "pub") {
                let text = fs::read_to_string(&p).map_err(io_at(&p))?;
                let k = PublicKey::parse(&text).map_err(|e| StateError::Corrupt {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                v.push(k);
            }
        }
        Ok(v)
    }

    /// Trusts a key.
    pub fn add_key(&self, k: &PublicKey) -> Result<(), StateError> {
        let name = format!("{}.pub", k.id);
        self.write(
            &Self::rel("keys").join(&name),
            k.to_file().as_bytes(),
            0o644,
        )?;
        let _ = self.fs()?.remove_file(&Self::rel("revoked").join(&name));
        Ok(())
    }

    /// Revokes a key.
    pub fn revoke_key(&self, k: &PublicKey) -> Result<(), StateError> {
        let name = format!("{}.pub", k.id);
        self.write(
            &Self::rel("revoked").join(&name),
            k.to_file().as_bytes(),
            0o644,
        )?;
        self.fs()?
            .remove_file(&Self::rel("keys").join(&name))
            .map_err(StateError::Fs)
    }

    /// Writes `rel` (relative to the install dir) atomically, following no
    /// link: the one way the installer writes a whole file.
    pub fn write(&self, rel: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
        self.fs()?.write(rel, data, mode).map_err(StateError::Fs)
    }

    /// A new file `name` in the staging dir (created exclusively, following
    /// no link; a stale one of that name is replaced) and its path.
    pub fn staged_file(&self, name: &str) -> Result<(PathBuf, std::fs::File), StateError> {
        let rel = Self::rel("staging").join(name);
        let fs = self.fs()?;
        fs.remove_file(&rel).map_err(StateError::Fs)?;
        let f = fs.create_new(&rel, 0o600).map_err(StateError::Fs)?;
        Ok((self.dir.join(rel), f))
    }

    /// Removes the staging dir's file `name`, if there.
    pub fn remove_staged_file(&self, name: &str) -> Result<(), StateError> {
        self.fs()?
            .remove_file(&Self::rel("staging").join(name))
            .map_err(StateError::Fs)
    }

    /// Dir of a kept release.
    pub fn release_dir(&self, v: &Version) -> PathBuf {
        self.root.join("releases").join(v.to_string())
    }

    /// Where `.env` is kept: with release `v`, or (`None`) with the
    /// operation under way, for as long as its journal.
    fn env_rel(v: Option<&Version>) -> PathBuf {
        match v {
            Some(v) => Self::rel("releases").join(v.to_string()).join("env.json"),
            None => Self::rel("journal-env.json"),
        }
    }

    /// Keeps `.env` as it is now: with release `v`, or with the journal.
    pub fn save_env(&self, v: Option<&Version>) -> Result<(), StateError> {
        let text = self
            .fs()?
            .read(Path::new(ENV_FILE))
            .map_err(StateError::Fs)?;
        let saved = SavedEnv {
            present: text.is_some(),
            text: String::from_utf8_lossy(&text.unwrap_or_default()).into_owned(),
        };
        let data = serde_json::to_vec(&saved).expect("json");
        self.write(&Self::env_rel(v), &data, 0o600)
    }

    /// `.env` as it was kept with release `v` (or the journal).
    pub fn saved_env(&self, v: Option<&Version>) -> Result<Option<SavedEnv>, StateError> {
        let rel = Self::env_rel(v);
        let Some(b) = self.fs()?.read(&rel).map_err(StateError::Fs)? else {
            return Ok(None);
        };
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: self.dir.join(&rel),
                message: e.to_string(),
            })
    }

    /// Moves the journal's copy of `.env` to release `v`: the `.env` that
    /// `v` ran with, for a later rollback to it.
    pub fn keep_journal_env(&self, v: &Version) -> Result<(), StateError> {
        let fs = self.fs()?;
        if fs.kind(&Self::env_rel(None)).map_err(StateError::Fs)?.1 == Kind::File {
            fs.rename(&Self::env_rel(None), &Self::env_rel(Some(v)))
                .map_err(StateError::Fs)?;
        }
        Ok(())
    }

    /// Makes `.env` what `saved` says, byte for byte; `Ok(false)` when it
    /// already is.
    pub fn put_env(&self, saved: &SavedEnv) -> Result<bool, StateError> {
        let fs = self.fs()?;
        let now = fs.read(Path::new(ENV_FILE)).map_err(StateError::Fs)?;
        match (saved.present, now) {
            (true, Some(n)) if n == saved.text.as_bytes() => Ok(false),
            (true, _) => self
                .write(Path::new(ENV_FILE), saved.text.as_bytes(), 0o600)
                .map(|()| true),
            (false, Some(_)) => fs
                .remove_file(Path::new(ENV_FILE))
                .map(|()| true)
                .map_err(StateError::Fs),
            (false, None) => Ok(false),
        }
    }

    /// A kept release's manifest.
    pub fn release_manifest(&self, v: &Version) -> Result<Manifest, StateError> {
        let p = self.release_dir(v).join("manifest.json");
        let b = fs::read(&p).map_err(io_at(&p))?;
        serde_json::from_slice(&b).map_err(|e| StateError::Corrupt {
            path: p,
            message: e.to_string(),
        })
    }

    /// A kept release's provenance, checked again from the stored blobs
    /// under the keys its manifest carries (for `status`).
    pub fn provenance(
        &self,
        m: &Manifest,
    ) -> Result<Vec<bundle_format::cosign::ImageProvenance>, bundle_format::cosign::ProvenanceError>
    {
        let blobs = m
            .provenance_blobs()
            .into_iter()
            .filter_map(|d| Some((d.digest.clone(), fs::read(self.blob(&d.digest)).ok()?)))
            .collect();
        bundle_format::cosign::check_bundle(m, &blobs, &[])
    }

    /// Path of a stored blob.
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// The site registry a release's images come from
    /// (`releases/<V>/registry`), when it was installed with `--registry`.
    pub fn release_registry(
        &self,
        v: &Version,
    ) -> Result<Option<crate::registry::Site>, StateError> {
        let p = self.release_dir(v).join(REGISTRY_FILE);
        match fs::read_to_string(&p) {
            Ok(text) => crate::registry::Site::parse(text.trim())
                .map(Some)
                .map_err(|message| StateError::Corrupt { path: p, message }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&p)(e)),
        }
    }

    /// The staging dir.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
}
