//! `installer rollback`: finish an interrupted operation, or go back to
//! the previous release.

use super::*;

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
