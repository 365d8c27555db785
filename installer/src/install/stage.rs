//! Stage: verified entries into the state dir, then kept as a release
//! (files, signed manifest, blobs); the installer's self-update.

use super::*;
use bundle_format::cosign::KeepProvenance;

/// Writes verified entries into the staging dir (each file created
/// exclusively, no link followed: [`bundle_format::safefs::Root`]).
pub(crate) struct StagingSink {
    pub(crate) fs: Root,
    /// The staging dir, relative to the install dir.
    pub(crate) rel: PathBuf,
    /// The entry being written, where, and whether it goes to the
    /// writeback when done.
    pub(crate) file: Option<(PathBuf, std::fs::File, bool)>,
    pub(crate) interrupted: Arc<AtomicBool>,
    /// Where each finished file goes to be written back.
    pub(crate) writeback: Writeback,
}

impl StagingSink {
    fn target(&self, kind: EntryKind<'_>) -> PathBuf {
        match kind {
            EntryKind::File(f) => self.rel.join("files").join(f.path.as_str()),
            EntryKind::Layout(f) => self.rel.join(f.path.as_str()),
            EntryKind::Blob(d) | EntryKind::Provenance(d) => {
                self.rel.join("blobs").join(d.digest.hex())
            }
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
        let f = self.fs.create_new(&p, 0o644)?;
        self.file = Some((p, f, kind.size() >= WRITEBACK_FROM));
        Ok(())
    }
    fn data(&mut self, chunk: &[u8]) -> io::Result<()> {
        stop_if_interrupted(&self.interrupted)?;
        self.file.as_mut().expect("begun").1.write_all(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        // A large entry is written back while the rest streams; `keep`
        // waits for that, then syncs the filesystem (the small ones with
        // it), before anything staged is renamed into place.
        let (p, f, large) = self.file.take().expect("begun");
        if large {
            self.writeback.send(p, f);
        }
        Ok(())
    }
}

/// Entries from this size on go to the [`Writeback`]; smaller ones are
/// left to the `syncfs` after it (a sync each would cost more than their
/// data: a journal commit apiece).
const WRITEBACK_FROM: u64 = 1 << 20;

/// Files that may wait for the [`Writeback`] at once, each holding a
/// descriptor open; a file that finds the queue full is left to the
/// `syncfs` after it, so the stream never waits for the disk here.
const WRITEBACK_QUEUE: usize = 16;

/// Writes staged files back to disk while the rest of the bundle streams:
/// a thread of its own syncs each finished file's data, so that what is
/// left to wait for once the last entry is in is the last few files, not
/// the whole bundle (0.24 s of `syncfs` after the 512 MiB bench bundle
/// streamed, on a fast disk; seconds on a slow one). A file's write error
/// is kept for [`Writeback::wait`], naming the file. The bundler's output
/// does the same for its one file ([`bundle_format::output::SyncBehind`],
/// a sync every 64 MiB); here there are many files, each synced once.
pub(crate) struct Writeback {
    queue: Option<std::sync::mpsc::SyncSender<(PathBuf, std::fs::File)>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

/// How the [`Writeback`] puts one file's data on disk.
type SyncData = Box<dyn Fn(&std::fs::File) -> io::Result<()> + Send>;

impl Writeback {
    /// Starts the thread; without one, files are left to the `syncfs`
    /// that follows [`Writeback::wait`].
    pub(crate) fn start() -> Writeback {
        Writeback::with(WRITEBACK_QUEUE, Box::new(std::fs::File::sync_data))
    }

    /// [`Writeback::start`] with `queue` files waiting at most, each
    /// written back by `sync`.
    fn with(queue: usize, sync: SyncData) -> Writeback {
        let (queue, files) = std::sync::mpsc::sync_channel::<(PathBuf, std::fs::File)>(queue);
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                let mut first = Ok(());
                for (path, f) in files {
                    if let (Err(e), Ok(())) = (sync(&f), &first) {
                        first = Err(io::Error::new(
                            e.kind(),
                            format!(
                                "writing {} to disk: {e}; hint: check the disk and its free space (nothing was changed)",
                                path.display()
                            ),
                        ));
                    }
                }
                first
            })
            .ok();
        Writeback {
            queue: thread.as_ref().map(|_| queue),
            thread,
        }
    }

    /// Queues `f` without waiting; false when it is left to `syncfs`: the
    /// queue is full, or the thread ended early.
    fn send(&self, path: PathBuf, f: std::fs::File) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|q| q.try_send((path, f)).is_ok())
    }

    /// Waits until every file sent is on disk; the first that could not
    /// be written.
    pub(crate) fn wait(&mut self) -> io::Result<()> {
        self.queue.take();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writeback thread panicked"))),
            None => Ok(()),
        }
    }
}

/// Removes what a failed install created before it changed anything.
pub(crate) struct Cleanup {
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) armed: bool,
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
pub(crate) fn clear_staging(sd: &StateDir) {
    if let Ok(rd) = std::fs::read_dir(sd.staging()) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Replaces `DIR/bin/installer` with the bundle's installer when that is
/// newer than this one, then asks the caller to re-execute it
/// ([`InstallError::SelfUpdated`]). Runs after the whole bundle verified and
/// before anything else changes.
pub(crate) fn self_update(
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
pub(crate) fn keep_release(
    sd: &StateDir,
    v: &VerifiedManifest,
    staging: &Path,
    registry: Option<&Site>,
) -> Result<(), InstallError> {
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
    if let Some(site) = registry {
        fs.write(
            &tmp.join(state::REGISTRY_FILE),
            format!("{site}\n").as_bytes(),
            0o644,
        )
        .map_err(fs_err)?;
    }
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
pub(crate) fn syncfs(path: &Path) -> Result<(), InstallError> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(path).map_err(io_at(path))?;
    nix::unistd::syncfs(dir.as_raw_fd()).map_err(|e| io_at(path)(io::Error::from(e)))
}

/// What verifying and staging the bundle left, and what preflight planned.
pub(crate) struct Staged {
    /// The verified manifest.
    pub(crate) verified: VerifiedManifest,
    /// The staging dir (absolute).
    pub(crate) staging: PathBuf,
    /// Its files on their way to disk.
    pub(crate) writeback: Writeback,
    /// Removes the staging dir when the install stops.
    pub(crate) _staging_cleanup: Cleanup,
    /// Clears the journal if the install stops before changing anything.
    pub(crate) journal_guard: ClearJournal,
    /// `.env` as it is.
    pub(crate) env_text: String,
    /// What the install will do to it.
    pub(crate) env_plan: EnvPlan,
}

/// Verifies the bundle while staging its entries in the state dir;
/// preflight runs as soon as the signed manifest is read, before any entry
/// is, and the journal starts once it passed.
pub(crate) fn verify_and_stage(
    plan: &Plan,
    engine: &Result<Box<dyn Engine>, EngineError>,
) -> Result<Staged, InstallError> {
    let (opts, sd) = (&plan.opts, &plan.sd);
    let scope = match opts.registry {
        Some(_) => bundle::Scope::FilesOnly,
        None => bundle::Scope::Whole,
    };
    let input = crate::parts::open_scoped(std::slice::from_ref(&opts.bundle), &plan.keys, scope)
        .map_err(|e| match e {
            crate::parts::OpenError::Bundle(b) => InstallError::Bundle {
                path: opts.bundle.clone(),
                source: b,
            },
            crate::parts::OpenError::Parts(p) => InstallError::Parts(p),
        })?;
    clear_staging(sd);
    let pid = std::process::id().to_string();
    let staging = sd.staging().join(&pid);
    let staging_cleanup = Cleanup {
        paths: vec![staging.clone()],
        armed: true,
    };
    let fs = sd.fs()?;
    let mut sink = StagingSink {
        fs: sd.fs()?,
        rel: StateDir::rel("staging").join(&pid),
        file: None,
        interrupted: opts.interrupted.clone(),
        writeback: Writeback::start(),
    };
    // A link or special file at .env is reported with the other problems.
    let env = read_env(&fs);
    let env_text = env.as_ref().cloned().unwrap_or_default();
    let old = match &plan.state.current {
        Some(r) => Some(sd.release_manifest(&r.version)?),
        None => None,
    };
    let mut env_plan = EnvPlan::default();
    let journal_guard = ClearJournal {
        sd: sd.clone(),
        armed: true,
    };
    let mut keep = KeepProvenance::new(&mut sink);
    let verified = bundle::read_bundle_scoped::<InstallError>(
        input,
        &plan.keys,
        scope,
        |signed: &SignedManifest| {
            let m = signed.manifest();
            let mut problems = preflight(plan, engine, m, &fs, old.as_ref(), &env);
            env_plan = plan_env(plan, m, old.as_ref(), &env_text);
            check_env_plan(&env_plan, &mut problems);
            if !problems.is_empty() {
                return Err(InstallError::Preflight(problems));
            }
            start_journal(plan, m)
        },
        &mut keep,
    )
    .map_err(|e| explain(plan, e))?;
    // The bundle's own policy: every image signed by the keys it names,
    // checked offline against what it carries.
    let (provenance, _) = keep.into_parts();
    bundle_format::cosign::check_bundle(verified.manifest(), &provenance, &[])?;
    Ok(Staged {
        verified,
        staging,
        writeback: sink.writeback,
        _staging_cleanup: staging_cleanup,
        journal_guard,
        env_text,
        env_plan,
    })
}

/// A reading failure in the operator's terms: a key the operator revoked
/// is named as revoked, a signal as an interruption that changed nothing.
fn explain(plan: &Plan, e: InstallError) -> InstallError {
    let (opts, state) = (&plan.opts, &plan.state);
    match e {
        InstallError::Bundle {
            source:
                BundleError::Signature(crate::minisign::MinisignError::UntrustedKey { found, .. }),
            ..
        } if plan.revoked.iter().any(|k| k.id.to_string() == found) => InstallError::Bundle {
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
    }
}

/// Keeps the verified release in the state dir (after updating the
/// installer, when the bundle carries a newer one), trusts the first
/// install's key, and journals "staged": from here a crash is recovered by
/// `installer rollback` or a re-run. Returns the version being left.
pub(crate) fn keep(
    plan: &mut Plan,
    staged: &mut Staged,
    report: &dyn Report,
) -> Result<Option<Version>, InstallError> {
    let m = staged.verified.manifest();
    if plan.was_install {
        self_update(&plan.opts, m, &staged.staging, report)?;
    }
    plan.sd.create()?;
    staged.writeback.wait().map_err(InstallError::Fs)?;
    keep_release(
        &plan.sd,
        &staged.verified,
        &staged.staging,
        plan.opts.registry.as_ref(),
    )?;
    if plan.state.current.is_none() && plan.state.name.is_empty() {
        for k in &plan.keys {
            plan.sd.add_key(k)?;
        }
    }
    plan.state.name = m.name.clone();
    plan.cleanup.armed = false;
    let from = plan.state.current.as_ref().map(|r| r.version.clone());
    journal(
        &plan.sd,
        Op::Install,
        from.as_ref(),
        &m.version,
        Phase::Staged,
    )?;
    staged.journal_guard.armed = false;
    fault!(
        "after-stage",
        Err(InstallError::Input("fault point after-stage".into()))
    );
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writeback_syncs_what_it_is_sent_and_names_the_first_file_it_could_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let written = dir.path().join("blob");
        std::fs::write(&written, b"layer").unwrap();
        let mut wb = Writeback::start();
        wb.send(written.clone(), std::fs::File::open(&written).unwrap());
        assert!(wb.wait().is_ok());

        // fdatasync of a pipe fails (EINVAL), as a file on a failing disk would.
        let mut wb = Writeback::start();
        wb.send(written.clone(), std::fs::File::open(&written).unwrap());
        let (pipe, _other_end) = std::io::pipe().unwrap();
        let broken = PathBuf::from("staging/1/blobs/feed");
        wb.send(
            broken,
            std::fs::File::from(std::os::fd::OwnedFd::from(pipe)),
        );
        let e = wb.wait().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("writing staging/1/blobs/feed to disk: "),
            "{e}"
        );
        // Waited for once: nothing is left.
        assert!(wb.wait().is_ok());
    }

    /// A writeback whose sync records each file's length.
    fn recording() -> (Writeback, std::sync::mpsc::Receiver<u64>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let wb = Writeback::with(
            WRITEBACK_QUEUE,
            Box::new(move |f: &std::fs::File| {
                let _ = tx.send(f.metadata()?.len());
                Ok(())
            }),
        );
        (wb, rx)
    }

    #[test]
    fn only_entries_of_a_mebibyte_and_more_are_written_back_on_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Root::open(dir.path()).unwrap();
        for d in ["staging/files", "staging/blobs"] {
            fs.create_dir_all(Path::new(d)).unwrap();
        }
        let (writeback, synced) = recording();
        let mut sink = StagingSink {
            fs,
            rel: PathBuf::from("staging"),
            file: None,
            interrupted: Arc::default(),
            writeback,
        };
        let file = manifest_schema::FileEntry {
            path: manifest_schema::RelPath::new("docker-compose.yml").unwrap(),
            size: 12,
            sha256: Digest::from_sha256_bytes(&[1; 32]),
            mode: 0o644,
        };
        let blob = |byte: u8, size: u64| manifest_schema::Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::from_sha256_bytes(&[byte; 32]),
            size,
        };
        let (below, at) = (blob(2, WRITEBACK_FROM - 1), blob(3, WRITEBACK_FROM));
        for kind in [
            EntryKind::File(&file),
            EntryKind::Blob(&below),
            EntryKind::Blob(&at),
        ] {
            sink.begin("entry", kind).unwrap();
            sink.data(&vec![7; kind.size() as usize]).unwrap();
            sink.finish().unwrap();
        }
        sink.writeback.wait().unwrap();
        assert_eq!(synced.try_iter().collect::<Vec<_>>(), [WRITEBACK_FROM]);
        let on_disk = std::fs::metadata(dir.path().join("staging/blobs").join(at.digest.hex()));
        assert_eq!(on_disk.unwrap().len(), WRITEBACK_FROM);
    }

    #[test]
    fn a_file_that_finds_the_queue_full_is_left_to_syncfs_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"layer").unwrap();
        let open = || std::fs::File::open(&path).unwrap();
        let (entered, in_sync) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = synced.clone();
        let mut wb = Writeback::with(
            2,
            Box::new(move |_: &std::fs::File| {
                let _ = entered.send(());
                let _ = released.recv();
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
        );
        // Should a send wait for the queue, this ends the slow sync after a
        // while, that send then succeeds and the test fails, not hangs.
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let _ = watch.recv_timeout(std::time::Duration::from_secs(5));
            drop(release);
        });
        // The thread holds the first file in a slow sync; two more fill the
        // queue; the fourth is turned away at once, not waited on.
        assert!(wb.send(path.clone(), open()));
        in_sync.recv().unwrap();
        assert!(wb.send(path.clone(), open()));
        assert!(wb.send(path.clone(), open()));
        assert!(!wb.send(path.clone(), open()));
        drop(done);
        watchdog.join().unwrap();
        wb.wait().unwrap();
        assert_eq!(synced.load(Ordering::SeqCst), 3);
    }
}
