//! Record: after a successful install, trust changes, pruning of releases
//! and blobs no longer needed; the inventory a delta build reads.

use super::*;

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
        engine: engine.map(|e| e.describe()),
    })
}

/// Applies a bundle's trust change after a successful install; returns notes.
pub(crate) fn apply_trust_change(
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
        if let Some(k) = trusted.iter().find(|k| k.id == *id) {
            sd.revoke_key(k)?;
            notes.push(format!(
                "revoked key {} (as the bundle asks): bundles signed only by it are refused from now on",
                k.id
            ));
        }
    }
    Ok(notes)
}

/// Drops kept releases and blobs that neither the current nor the previous
/// release needs.
pub(crate) fn prune(sd: &StateDir, state: &State) {
    let keep: Vec<&Version> = state
        .current
        .iter()
        .chain(state.previous.iter())
        .map(|r| &r.version)
        .collect();
    let mut needed = BTreeSet::new();
    for v in &keep {
        if let Ok(m) = sd.release_manifest(v) {
            for d in m.all_blobs().into_iter().chain(m.provenance_blobs()) {
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

/// Records the healthy release `verified` (installed over `from`): state,
/// history, the `.env` `from` ran with, trust changes, pruning, then the
/// `post_install` hook.
pub(crate) fn record(
    plan: &mut Plan,
    verified: &VerifiedManifest,
    from: Option<Version>,
    images: Loaded,
    notes: Vec<String>,
    report: &dyn Report,
) -> Result<Installed, InstallError> {
    let mut notes = notes;
    let m = verified.manifest();
    let (sd, state) = (&plan.sd, &mut plan.state);
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
        env: managed_values(sd, m),
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
    sd.save(state)?;
    if let Some(f) = &from {
        sd.keep_journal_env(f)?;
    }
    sd.clear_journal()?;
    for n in apply_trust_change(sd, &m.trust)? {
        report.step(&n);
        notes.push(n);
    }
    prune(sd, state);
    if let Some(hook) = &m.hooks.post_install {
        if let Err(e) = run_hook(sd, m, hook, "post_install", from.as_ref()) {
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
