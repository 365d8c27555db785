//! Files: a pure decision per managed file (write, keep, replace, or keep
//! an operator's edit and write `.new`), then applied atomically.

use super::*;

pub(crate) fn sha_file(path: &Path) -> io::Result<Digest> {
    Ok(bundle_format::sha256_reader(std::fs::File::open(path)?)?.1)
}

/// Hashes of a path that a kept release wrote (so they are not operator edits).
pub(crate) fn known_hashes(
    sd: &StateDir,
    state: &State,
    target: &Manifest,
) -> BTreeMap<String, BTreeSet<Digest>> {
    let mut k: BTreeMap<String, BTreeSet<Digest>> = BTreeMap::new();
    for r in state.current.iter().chain(state.previous.iter()) {
        for f in &r.files {
            k.entry(f.path.clone())
                .or_default()
                .insert(f.sha256.clone());
        }
    }
    for f in &target.files {
        k.entry(f.path.to_string())
            .or_default()
            .insert(f.sha256.clone());
    }
    // A crashed install may have written files of a release kept on disk.
    if let Ok(rd) = std::fs::read_dir(sd.root.join("releases")) {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read(e.path().join("manifest.json")) {
                if let Ok(mm) = serde_json::from_slice::<Manifest>(&b) {
                    for f in mm.files {
                        k.entry(f.path.to_string()).or_default().insert(f.sha256);
                    }
                }
            }
        }
    }
    k
}

/// Replaces the managed files with those of `target`; returns notes about
/// operator edits that were kept.
///
/// A managed file the operator edited (its content matches no release the
/// installer wrote) is kept in place; the bundle's version is written
/// beside it as `<path>.new` and reported.
pub(crate) fn apply_files(
    sd: &StateDir,
    state: &State,
    target: &Manifest,
) -> Result<Vec<String>, String> {
    let known = known_hashes(sd, state, target);
    let rel = sd.release_dir(&target.version).join("files");
    let fs = sd.fs().map_err(|e| bundle_format::error_text(&e))?;
    let mut notes = Vec::new();
    for f in &target.files {
        let dst = Path::new(f.path.as_str());
        let src = rel.join(f.path.as_str());
        // A link, fifo or dir here (or among its dirs) is refused, not
        // followed: preflight reported it already, this holds if one was
        // planted since.
        let now = sha_in(&fs, dst).map_err(|e| bundle_format::error_text(&e))?;
        match decide(now.as_ref(), &f.sha256, known.get(f.path.as_str())) {
            FileAction::Unchanged => fs
                .set_mode(dst, f.mode)
                .map_err(|e| bundle_format::error_text(&e))?,
            FileAction::KeepEdited => {
                let beside = PathBuf::from(format!("{}.new", f.path));
                copy_into(&fs, &src, &beside, f.mode)?;
                notes.push(format!(
                    "{} was edited since it was installed: your version is kept, {}'s is in {}.new; merge them by hand",
                    f.path, target.version, f.path
                ));
            }
            FileAction::Write | FileAction::Replace => copy_into(&fs, &src, dst, f.mode)?,
        }
    }
    // Files the previous release managed and this one does not.
    if let Some(cur) = &state.current {
        for old in &cur.files {
            if target.files.iter().any(|f| f.path.as_str() == old.path) {
                continue;
            }
            let p = Path::new(&old.path);
            match sha_in(&fs, p) {
                Ok(Some(h)) if h == old.sha256 => {
                    fs.remove_file(p)
                        .map_err(|e| bundle_format::error_text(&e))?;
                }
                Ok(Some(_)) => notes.push(format!(
                    "{} is no longer managed and was edited: kept",
                    old.path
                )),
                _ => {}
            }
        }
    }
    Ok(notes)
}

/// What an install does with one managed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Absent: written.
    Write,
    /// Already the new content: only its mode is set.
    Unchanged,
    /// Content some release wrote: replaced.
    Replace,
    /// Content no release wrote (an operator's edit): kept, the new
    /// version written beside it as `<path>.new`.
    KeepEdited,
}

/// [`FileAction`] for a file whose content is `now` (`None`: absent), given
/// the new content and the contents releases wrote at that path.
pub fn decide(now: Option<&Digest>, new: &Digest, known: Option<&BTreeSet<Digest>>) -> FileAction {
    match now {
        None => FileAction::Write,
        Some(h) if h == new => FileAction::Unchanged,
        Some(h) if known.is_some_and(|k| k.contains(h)) => FileAction::Replace,
        Some(_) => FileAction::KeepEdited,
    }
}

/// sha256 of the regular file `rel` below the install dir; `None` when
/// absent; an error (never a read through it) for a link or special file.
pub(crate) fn sha_in(fs: &Root, rel: &Path) -> io::Result<Option<Digest>> {
    let Some(f) = fs.open_read(rel)? else {
        return Ok(None);
    };
    Ok(Some(bundle_format::sha256_reader(f)?.1))
}

/// Copies `src` (in the state dir) to `rel` below the install dir, atomically.
pub(crate) fn copy_into(fs: &Root, src: &Path, rel: &Path, mode: u32) -> Result<(), String> {
    let data = std::fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    fs.write(rel, &data, mode)
        .map_err(|e| bundle_format::error_text(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn d(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    #[rstest]
    #[case::absent(None, &[], FileAction::Write)]
    #[case::already_new(Some(2), &[1], FileAction::Unchanged)]
    #[case::written_by_a_release(Some(1), &[1, 2], FileAction::Replace)]
    #[case::edited_by_the_operator(Some(9), &[1, 2], FileAction::KeepEdited)]
    #[case::nothing_known(Some(9), &[], FileAction::KeepEdited)]
    fn each_managed_file_gets_one_action(
        #[case] now: Option<u8>,
        #[case] known: &[u8],
        #[case] want: FileAction,
    ) {
        let known: BTreeSet<Digest> = known.iter().map(|k| d(*k)).collect();
        assert_eq!(decide(now.map(d).as_ref(), &d(2), Some(&known)), want);
    }
}
