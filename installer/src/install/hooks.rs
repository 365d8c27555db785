//! Hooks: `pre_upgrade` (backup), `post_install`, `restore`.

use super::*;

/// Runs a hook of release `m` from the install dir, with the versions and a
/// fresh backup dir in its environment; returns the backup dir.
pub(crate) fn run_hook(
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
pub(crate) fn run_script(
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

pub(crate) fn latest_backup(dir: &Path, prev: &Version, cur: &Version) -> Option<PathBuf> {
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

/// Backs up first: runs the `pre_upgrade` hook of an upgrade from `from`;
/// returns the note to keep.
pub(crate) fn back_up(
    sd: &StateDir,
    m: &Manifest,
    from: Option<&Version>,
    report: &dyn Report,
) -> Result<Option<String>, InstallError> {
    let (Some(hook), Some(cur)) = (&m.hooks.pre_upgrade, from) else {
        return Ok(None);
    };
    let out = run_hook(sd, m, hook, "pre_upgrade", Some(cur))?;
    report.step(&format!("pre_upgrade hook wrote {}", out.display()));
    Ok(Some(format!("backup written to {}", out.display())))
}
