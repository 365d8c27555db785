//! The journal: what is under way, so that a crash at any phase is
//! recovered by `installer install` or `installer rollback`.

use super::*;

/// Clears the journal when an install stops (by an error, not a crash)
/// before it changed anything.
pub(crate) struct ClearJournal {
    pub(crate) sd: StateDir,
    pub(crate) armed: bool,
}

impl Drop for ClearJournal {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.sd.clear_journal();
        }
    }
}

/// Starts the journal of an install of `m`, once preflight passed: from
/// here an interrupted install is on record, so that `installer rollback`
/// restores what runs now, whatever the phase, `.env` included, byte for
/// byte (it is kept with the journal).
pub(crate) fn start_journal(plan: &Plan, m: &Manifest) -> Result<(), InstallError> {
    plan.sd.create()?;
    let installed = plan.state.current.as_ref().map(|r| &r.version);
    if installed.is_some() {
        plan.sd.save_env(None)?;
    }
    journal(
        &plan.sd,
        Op::Install,
        installed,
        &m.version,
        Phase::Verifying,
    )
}

/// Records that `op` towards `to` reached `phase`.
pub(crate) fn journal(
    sd: &StateDir,
    op: Op,
    from: Option<&Version>,
    to: &Version,
    phase: Phase,
) -> Result<(), InstallError> {
    sd.set_journal(&Journal {
        op,
        from: from.map(ToString::to_string),
        to: to.to_string(),
        phase,
        started: state::now(),
    })?;
    Ok(())
}
