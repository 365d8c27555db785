//! Plan: the install dir (made absolute), the lock, the state and the keys
//! this install trusts, all settled before the bundle is opened.

use super::*;

/// What an install works with, settled before the bundle is read.
pub(crate) struct Plan {
    /// The flags, with the dir made absolute.
    pub(crate) opts: InstallOptions,
    /// The state dir.
    pub(crate) sd: StateDir,
    /// What is installed.
    pub(crate) state: State,
    /// The keys the bundle must be signed by.
    pub(crate) keys: Vec<PublicKey>,
    /// Keys the operator revoked.
    pub(crate) revoked: Vec<PublicKey>,
    /// The dir held an install already.
    pub(crate) was_install: bool,
    /// The dir was empty (or absent).
    pub(crate) dir_was_empty: bool,
    /// Removes the dirs this install created, until disarmed.
    pub(crate) cleanup: Cleanup,
    /// Held for the whole install.
    pub(crate) _lock: state::Lock,
}

/// Settles the [`Plan`]: the dir (created if absent), the state dir checked
/// for planted links before anything opens it, the lock, the state, the
/// keys.
pub(crate) fn plan(opts: &InstallOptions) -> Result<Plan, InstallError> {
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
    let opts = InstallOptions {
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
    let lock = sd.lock()?;
    let state = sd.load()?;
    let revoked = sd.revoked_keys()?;
    let keys = trusted_keys(&sd, &opts, &revoked)?;
    Ok(Plan {
        opts,
        sd,
        state,
        keys,
        revoked,
        was_install,
        dir_was_empty,
        cleanup,
        _lock: lock,
    })
}

/// The keys a bundle must be signed by: the recorded ones once there are
/// any, never a revoked one; on the first install, the one given.
fn trusted_keys(
    sd: &StateDir,
    opts: &InstallOptions,
    revoked: &[PublicKey],
) -> Result<Vec<PublicKey>, InstallError> {
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
    match (recorded.is_empty(), given) {
        (true, Some(k)) => Ok(vec![k]),
        (true, None) => Err(InstallError::Input(format!(
            "{} has no trusted key yet; hint: pass --public-key with the vendor's public key for the first install",
            opts.dir.display()
        ))),
        (false, Some(k)) if !recorded.contains(&k) => Err(InstallError::Input(format!(
            "--public-key {}: key {} is not among the keys this install trusts ({}); later installs verify against the recorded keys only; hint: a vendor rotates keys inside a signed bundle, or add it deliberately with `installer trust add`",
            opts.public_key.as_ref().expect("given").display(),
            k.id,
            recorded.iter().map(|k| k.id.to_string()).collect::<Vec<_>>().join(", ")
        ))),
        (false, _) => Ok(recorded),
    }
}
