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

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use manifest_schema::layout::STATE_DIR;
use manifest_schema::{Digest, Manifest, Version};
use serde::{Deserialize, Serialize};

use crate::minisign::PublicKey;

/// Errors about the state dir.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
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
}

/// One line of the install history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339 time.
    pub time: String,
    /// `install`, `upgrade`, `rollback`, …
    pub action: String,
    /// Version before.
    pub from: Option<String>,
    /// Version targeted.
    pub to: String,
    /// `ok`, `rolled back`, `failed`.
    pub outcome: String,
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
    /// `install` or `rollback`.
    pub op: String,
    /// Version being left.
    pub from: Option<String>,
    /// Version being installed.
    pub to: String,
    /// Last phase reached.
    pub phase: String,
    /// Start time.
    pub started: String,
}

/// An install dir's state dir.
#[derive(Debug)]
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

/// Writes a file atomically: temp file in the same dir, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.installer-tmp"));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl StateDir {
    /// The state dir of `dir` (not created).
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_owned(),
            root: dir.join(STATE_DIR),
        }
    }

    /// True when the dir holds an install.
    pub fn exists(&self) -> bool {
        self.root.join("state.json").is_file() || self.root.join("keys").is_dir()
    }

    /// Creates the layout.
    pub fn create(&self) -> Result<(), StateError> {
        for d in ["keys", "revoked", "releases", "blobs/sha256", "staging"] {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        Ok(())
    }

    /// Takes the lock, failing at once if another process holds it.
    pub fn lock(&self) -> Result<Lock, StateError> {
        fs::create_dir_all(&self.root).map_err(io_at(&self.root))?;
        let p = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(io_at(&p))?;
        match f.try_lock() {
            Ok(()) => Ok(Lock(f)),
            Err(fs::TryLockError::WouldBlock) => Err(StateError::Locked(self.dir.clone())),
            Err(fs::TryLockError::Error(e)) => Err(StateError::Io { path: p, source: e }),
        }
    }

    /// Reads state.json (default when absent).
    pub fn load(&self) -> Result<State, StateError> {
        let p = self.root.join("state.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StateError::Corrupt {
                path: p,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(StateError::Io { path: p, source: e }),
        }
    }

    /// Writes state.json atomically.
    pub fn save(&self, s: &State) -> Result<(), StateError> {
        let p = self.root.join("state.json");
        let data = serde_json::to_vec_pretty(s).expect("json");
        write_atomic(&p, &data, 0o644).map_err(io_at(&p))
    }

    /// The journal, if an operation is under way.
    pub fn journal(&self) -> Option<Journal> {
        fs::read(self.root.join("journal.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Writes the journal.
    pub fn set_journal(&self, j: &Journal) -> Result<(), StateError> {
        let p = self.root.join("journal.json");
        write_atomic(&p, &serde_json::to_vec_pretty(j).expect("json"), 0o644).map_err(io_at(&p))
    }

    /// Removes the journal.
    pub fn clear_journal(&self) -> Result<(), StateError> {
        let p = self.root.join("journal.json");
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io { path: p, source: e }),
        }
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
        let d = self.root.join("keys");
        fs::create_dir_all(&d).map_err(io_at(&d))?;
        let p = d.join(format!("{}.pub", k.id));
        write_atomic(&p, k.to_file().as_bytes(), 0o644).map_err(io_at(&p))?;
        let r = self.root.join("revoked").join(format!("{}.pub", k.id));
        let _ = fs::remove_file(r);
        Ok(())
    }

    /// Revokes a key.
    pub fn revoke_key(&self, k: &PublicKey) -> Result<(), StateError> {
        let d = self.root.join("revoked");
        fs::create_dir_all(&d).map_err(io_at(&d))?;
        let p = d.join(format!("{}.pub", k.id));
        write_atomic(&p, k.to_file().as_bytes(), 0o644).map_err(io_at(&p))?;
        let t = self.root.join("keys").join(format!("{}.pub", k.id));
        fs::remove_file(&t).map_err(io_at(&t))
    }

    /// Dir of a kept release.
    pub fn release_dir(&self, v: &Version) -> PathBuf {
        self.root.join("releases").join(v.to_string())
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

    /// Path of a stored blob.
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// The staging dir.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
}
