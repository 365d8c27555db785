//! `.env` on disk: read without following links, managed values, and the
//! `.env` a rollback puts back.

use super::*;

/// `.env` as it is on disk ("" when absent); a link or special file there
/// is refused, not followed.
pub(crate) fn read_env(fs: &Root) -> Result<String, InstallError> {
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
pub(crate) fn put_back_env(
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
pub(crate) fn managed_values(sd: &StateDir, m: &Manifest) -> BTreeMap<String, String> {
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

/// What the install of `m` will do to `.env` (`old`: the installed
/// release's manifest).
pub(crate) fn plan_env(plan: &Plan, m: &Manifest, old: Option<&Manifest>, text: &str) -> EnvPlan {
    let old_env = old.map(|o| o.env.as_slice()).unwrap_or(&[]);
    let last = plan
        .state
        .current
        .as_ref()
        .map(|c| c.env.clone())
        .unwrap_or_default();
    envfile::plan(
        text,
        &m.env,
        old_env,
        &last,
        &plan.opts.set,
        envfile::generate_secret,
    )
}

/// Writes `.env` as planned (values in place, new keys appended) and says
/// what changed.
pub(crate) fn write_env(
    sd: &StateDir,
    m: &Manifest,
    text: &str,
    p: &EnvPlan,
    report: &dyn Report,
    notes: &mut Vec<String>,
) -> Result<(), InstallError> {
    if !p.append.is_empty() || !p.set_in_place.is_empty() {
        sd.write(
            Path::new(ENV_FILE),
            envfile::apply(text, p).as_bytes(),
            0o600,
        )?;
    }
    for (k, _) in &p.set_in_place {
        if let Some((_, old, new)) = p.managed.iter().find(|(mk, _, _)| mk == k) {
            let n = format!(".env: {k} {old} -> {new} (owned by the release)");
            report.step(&n);
            notes.push(n);
        } else {
            notes.push(format!(".env: {k} set in place (--set)"));
        }
    }
    for (k, _) in &p.append {
        let how = if p.generated.contains(k) {
            "generated"
        } else {
            "added"
        };
        notes.push(format!(".env: {how} {k}"));
    }
    for k in &p.unrotatable {
        report.warn(&format!(
            "{k} was generated and decrypts stored data: back up .env off-host now; it is never regenerated, and losing it loses that data"
        ));
    }
    for k in &p.removed {
        notes.push(format!(
            ".env: {k} is no longer used by {} (left in place)",
            m.version
        ));
    }
    for (k, o, n) in &p.new_defaults {
        notes.push(format!(
            ".env: the default of {k} changed from {o:?} to {n:?}; your value is kept"
        ));
    }
    Ok(())
}
