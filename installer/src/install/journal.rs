//! The journal: what is under way, so that a crash at any phase is
//! recovered by `installer install` or `installer rollback`.

use super::*;

/// Clears the journal when an install stops (by an error, not a crash)
/// before it changed anything.
pub(crate) struct ClearJournal<'a> {
    pub(crate) sd: &'a StateDir,
    pub(crate) armed: bool,
}

impl Drop for ClearJournal<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.sd.clear_journal();
        }
    }
}

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
