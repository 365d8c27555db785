//! The transaction that applies a release (images, files, `up`, health)
//! with a fault point per phase, and the restore that undoes it.

use super::*;

pub(crate) struct Failure {
    pub(crate) reason: String,
    pub(crate) logs: String,
}

pub(crate) fn fail_from(reason: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        logs: String::new(),
    }
}

/// Loads images, applies files, ups and waits; used by install and
/// rollback (`op` is what the journal records: a crash in the middle of a
/// rollback is reported as one).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_release(
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
    let reached = |phase| {
        let from = state.current.as_ref().map(|r| &r.version);
        journal(sd, op, from, &m.version, phase).map_err(|e| fail_from(e.to_string()))
    };
    let (images, loaded) = ensure_images(sd, engine, m, report)
        .map_err(|e| fail_from(format!("loading images: {e}")))?;
    reached(Phase::Images)?;
    fault!("after-images", Err(fail_from("fault point after-images")));
    check("image loading")?;
    let kept = apply_files(sd, state, m).map_err(|e| fail_from(format!("replacing files: {e}")))?;
    for k in kept {
        report.warn(&k);
        notes.push(k);
    }
    reached(Phase::Files)?;
    fault!("after-files", Err(fail_from("fault point after-files")));
    check("file replacement")?;
    up_and_wait(sd, engine, m, opts, report)?;
    fault!("after-health", Err(fail_from("fault point after-health")));
    Ok((images, loaded))
}

pub(crate) fn up_and_wait(
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
        .map_err(|e| fail_from(format!("compose up: {}", bundle_format::error_text(&e))))?;
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

/// Puts the current release (per state.json) back in place: files, images,
/// containers, health. With no current release, stops the stack and removes
/// the files `failed` wrote.
pub(crate) fn restore(
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
                .map_err(|e| bundle_format::error_text(&e))?;
            journal(
                sd,
                Op::Rollback,
                failed.map(|f| &f.version),
                &cur.version,
                Phase::Restoring,
            )
            .map_err(|e| bundle_format::error_text(&e))?;
            if let Some(saved) = sd
                .saved_env(None)
                .map_err(|e| bundle_format::error_text(&e))?
            {
                if sd
                    .put_env(&saved)
                    .map_err(|e| bundle_format::error_text(&e))?
                {
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
        None => undo_first_install(sd, engine, failed),
    }
}

/// Undoes a failed first install (`failed`): stops its stack and removes
/// the files it wrote that are still as it wrote them, with the dirs they
/// needed once empty. `.env` and the state dir are kept.
fn undo_first_install(
    sd: &StateDir,
    engine: &dyn Engine,
    failed: Option<&Manifest>,
) -> Result<String, String> {
    if let Some(f) = failed {
        let files = compose_files(&sd.fs().map_err(|e| bundle_format::error_text(&e))?, f);
        let _ = engine.compose(
            &sd.dir,
            &f.compose.project,
            &files,
            &["down", "--remove-orphans"],
        );
        let fs = sd.fs().map_err(|e| bundle_format::error_text(&e))?;
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

/// The install of `m` failed (`failure`): puts back the release on record
/// (files, `.env`, images, containers) and says what failed.
pub(crate) fn recover(
    plan: &mut Plan,
    engine: &dyn Engine,
    m: &Manifest,
    from: Option<Version>,
    failure: Failure,
    report: &dyn Report,
) -> Result<Installed, InstallError> {
    let (sd, state, opts) = (&plan.sd, &mut plan.state, &plan.opts);
    report.warn(&format!(
        "install of {} failed: {}; restoring the previous state",
        m.version, failure.reason
    ));
    let restored = restore(sd, engine, state, Some(m), opts, report);
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
    sd.save(state)?;
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
