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

/// `installer rollback`: finishes an interrupted install or rollback by
/// restoring the release on record, or goes back to the previous one.
///
/// 1. Check the state dir for planted links; lock it; clear staging.
/// 2. With a journal: put back the release on record (`finish_interrupted`).
/// 3. Otherwise: go back to the previous release (`to_previous`), its data
///    too with `--restore-data`.
pub fn rollback(
    opts: &RollbackOptions,
    engine: Box<dyn Engine>,
    report: &dyn Report,
) -> Result<String, InstallError> {
    let dir = std::fs::canonicalize(&opts.dir).map_err(io_at(&opts.dir))?;
    let sd = StateDir::new(&dir);
    sd.check()?;
    if !sd.exists() {
        return Err(InstallError::Input(format!(
            "{} is not an install (no {STATE_DIR}/ state)",
            dir.display()
        )));
    }
    let _lock = sd.lock()?;
    clear_staging(&sd);
    let mut state = sd.load()?;
    match rollback_to(&state, sd.journal()) {
        RollbackTo::Interrupted(j) => {
            finish_interrupted(&sd, engine.as_ref(), &mut state, &j, report)
        }
        RollbackTo::Previous => {
            to_previous(&sd, engine.as_ref(), &mut state, opts.restore_data, report)
        }
        RollbackTo::Nowhere => Err(InstallError::Input(
            "there is no previous release to roll back to".into(),
        )),
    }
}

/// What `installer rollback` does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RollbackTo {
    /// An operation was interrupted: put back the release on record.
    Interrupted(Journal),
    /// Go back to the previous release.
    Previous,
    /// Nothing to go back to.
    Nowhere,
}

/// The decision, from the state and the journal: an interrupted operation
/// is finished first, whatever else is on record.
pub(crate) fn rollback_to(state: &State, journal: Option<Journal>) -> RollbackTo {
    match (journal, &state.current, &state.previous) {
        (Some(j), _, _) => RollbackTo::Interrupted(j),
        (None, Some(_), Some(_)) => RollbackTo::Previous,
        (None, _, _) => RollbackTo::Nowhere,
    }
}

/// Flags [`restore`] and [`apply_release`] take, for the dir `sd` holds.
fn install_options(sd: &StateDir) -> InstallOptions {
    InstallOptions {
        dir: sd.dir.clone(),
        ..Default::default()
    }
}

/// Puts back the release on record after an install or rollback `j` was
/// interrupted (a crash, a power cut).
fn finish_interrupted(
    sd: &StateDir,
    engine: &dyn Engine,
    state: &mut State,
    j: &Journal,
    report: &dyn Report,
) -> Result<String, InstallError> {
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
        refuse_planted(sd, &m, failed_files)?;
    }
    let what = restore(
        sd,
        engine,
        state,
        failed.as_ref(),
        &install_options(sd),
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
    sd.save(state)?;
    sd.clear_journal()?;
    Ok(what)
}

/// Goes back from the current release to the previous one: its files, its
/// `.env` (keeping keys only the newer one added), its images, and with
/// `restore_data` the backup taken before the upgrade. A failure puts the
/// current release back.
fn to_previous(
    sd: &StateDir,
    engine: &dyn Engine,
    state: &mut State,
    restore_data: bool,
    report: &dyn Report,
) -> Result<String, InstallError> {
    let (Some(cur), Some(prev)) = (state.current.clone(), state.previous.clone()) else {
        return Err(InstallError::Input(
            "there is no previous release to roll back to".into(),
        ));
    };
    let (c, p) = (&cur.version, &prev.version);
    report.warn(&format!(
        "rolling back {c} -> {p}: migrations are forward-only, so data written by {c} may not work with {p}; {}",
        if restore_data { "restoring the matching backup" } else { "pass --restore-data to restore the backup taken before the upgrade" }
    ));
    let prev_m = sd.release_manifest(p)?;
    let cur_m = sd.release_manifest(c)?;
    refuse_planted(sd, &prev_m, &cur_m.files)?;
    if restore_data {
        restore_backup(sd, engine, &cur_m, &prev_m, report)?;
    }
    sd.save_env(None)?;
    journal(sd, Op::Rollback, Some(c), p, Phase::Files)?;
    let mut notes = Vec::new();
    sd.save_env(Some(c))?;
    if let Some(n) = put_back_env(sd, p, c)? {
        report.step(&n);
        notes.push(n);
    }
    let opts = install_options(sd);
    let applied = apply_release(
        Op::Rollback,
        sd,
        engine,
        state,
        &prev_m,
        &opts,
        report,
        &mut notes,
    );
    if let Err(f) = applied {
        let back = restore(sd, engine, state, Some(&prev_m), &opts, report);
        sd.clear_journal()?;
        let failed = format!("rollback to {p} failed: {}", f.reason);
        return Err(match back {
            Ok(restored) => InstallError::RolledBack {
                failed,
                restored,
                logs: f.logs,
            },
            Err(restore) => InstallError::RollbackFailed { failed, restore },
        });
    }
    state.current = Some(prev.clone());
    state.previous = Some(cur.clone());
    state.history.push(HistoryEntry {
        time: state::now(),
        action: Action::Rollback,
        from: Some(c.to_string()),
        to: p.to_string(),
        outcome: Outcome::Ok,
        message: notes.join("; "),
    });
    sd.save(state)?;
    sd.clear_journal()?;
    Ok(format!("{} {p}, running and healthy", state.name))
}

/// `--restore-data`: stops the current release (`cur_m`), then runs the
/// restore hook on the newest backup taken by the upgrade from `prev_m`.
fn restore_backup(
    sd: &StateDir,
    engine: &dyn Engine,
    cur_m: &Manifest,
    prev_m: &Manifest,
    report: &dyn Report,
) -> Result<(), InstallError> {
    let (c, p) = (&cur_m.version, &prev_m.version);
    let Some(hook) = &prev_m.hooks.restore.clone().or(cur_m.hooks.restore.clone()) else {
        return Err(InstallError::Input(
            "--restore-data: the bundle declares no restore hook".into(),
        ));
    };
    let backup = latest_backup(&sd.dir, p, c).ok_or_else(|| {
        InstallError::Input(format!(
            "--restore-data: no backup {p}-to-{c}-* under {}/backups",
            sd.dir.display()
        ))
    })?;
    // Stop the new version before touching its data.
    let files = compose_files(&sd.fs()?, cur_m);
    engine.compose(&sd.dir, &cur_m.compose.project, &files, &["stop"])?;
    let script = [c, p]
        .iter()
        .map(|v| sd.release_dir(v).join("files").join(hook.as_str()))
        .find(|s| s.exists())
        .unwrap_or_else(|| sd.release_dir(p).join("files").join(hook.as_str()));
    run_script(
        sd,
        &script,
        hook,
        "restore",
        Some(c),
        p,
        &cur_m.compose.project,
        &backup,
    )?;
    report.step(&format!("restored data from {}", backup.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(v: &str) -> Release {
        Release {
            version: v.parse().unwrap(),
            files: vec![],
            images: vec![],
            key_id: "K".into(),
            env: Default::default(),
        }
    }

    #[test]
    fn an_interrupted_operation_is_finished_before_anything_else() {
        let journal = Journal {
            op: Op::Rollback,
            from: Some("2.0.0".into()),
            to: "1.0.0".into(),
            phase: Phase::Images,
            started: "t".into(),
        };
        let mut state = State {
            name: "demo".into(),
            current: Some(release("2.0.0")),
            previous: Some(release("1.0.0")),
            history: vec![],
        };
        assert_eq!(
            rollback_to(&state, Some(journal.clone())),
            RollbackTo::Interrupted(journal.clone())
        );
        assert_eq!(rollback_to(&state, None), RollbackTo::Previous);
        state.previous = None;
        assert_eq!(rollback_to(&state, None), RollbackTo::Nowhere);
        state.current = None;
        assert_eq!(
            rollback_to(&state, Some(journal.clone())),
            RollbackTo::Interrupted(journal)
        );
    }
}
