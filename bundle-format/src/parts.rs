//! Split bundles: find the parts, check each against the signed index on
//! its own, and read them in order as one stream (no joined copy, no write
//! to the media).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use manifest_schema::{Digest, PartsIndex};
use sha2::{Digest as _, Sha256};

use crate::bundle::{self, BundleError, Input};
use crate::minisign::{PublicKey, Signature};

/// What the paths on the command line name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// One bundle file.
    Single(PathBuf),
    /// A split bundle: its index, and the part files given (empty: all).
    Split {
        /// `NAME.parts.json`.
        index: PathBuf,
        /// Parts named on the command line.
        given: Vec<PathBuf>,
    },
}

/// Problems locating or checking parts.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    /// The paths do not name a bundle.
    #[error("{0}")]
    Locate(String),
    /// The index cannot be read or is not signed by a trusted key.
    #[error("{path}: {message}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Parts are missing, extra, out of order or corrupt.
    #[error("{} of {} parts are not right:\n{}\nhint: copy the named parts again from the original media; nothing was joined or written", problems.len(), count, problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Parts {
        /// Parts in the index.
        count: usize,
        /// One line per problem, naming the part by number.
        problems: Vec<String>,
    },
}

impl PartsError {
    /// True when the media, not the host, is at fault.
    pub fn is_verification(&self) -> bool {
        !matches!(self, PartsError::Locate(_))
    }
}

/// Splits `NAME.part-NNN-of-MMM` into (NAME, NNN, MMM).
pub fn parse_part_name(file: &str) -> Option<(&str, usize, usize)> {
    let (base, rest) = file.rsplit_once(".part-")?;
    let (i, n) = rest.split_once("-of-")?;
    Some((base, i.parse().ok()?, n.parse().ok()?))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Works out what the command-line paths name.
pub fn locate(paths: &[PathBuf]) -> Result<Located, PartsError> {
    let index_of_part = |p: &Path| -> Option<PathBuf> {
        let name = file_name(p);
        let (base, _, _) = parse_part_name(&name)?;
        Some(p.with_file_name(manifest_schema::layout::parts_index_name(base)))
    };
    match paths {
        [] => Err(PartsError::Locate("no bundle given".into())),
        [p] if p.is_dir() => {
            let mut indexes = Vec::new();
            let mut bundles = Vec::new();
            for e in std::fs::read_dir(p)
                .map_err(|e| PartsError::Locate(format!("{}: {e}", p.display())))?
                .flatten()
            {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".parts.json") {
                    indexes.push(e.path());
                } else if n.ends_with(".bundle") && e.path().is_file() {
                    bundles.push(e.path());
                }
            }
            match (indexes.len(), bundles.len()) {
                (1, _) => Ok(Located::Split { index: indexes.remove(0), given: vec![] }),
                (0, 1) => Ok(Located::Single(bundles.remove(0))),
                _ => Err(PartsError::Locate(format!(
                    "{}: expected one split bundle (NAME.parts.json) or one .bundle file, found {} and {}; hint: name the bundle file or parts index",
                    p.display(),
                    indexes.len(),
                    bundles.len()
                ))),
            }
        }
        [p] if file_name(p).ends_with(".parts.json") => Ok(Located::Split {
            index: p.clone(),
            given: vec![],
        }),
        [p] if index_of_part(p).is_none() => Ok(Located::Single(p.clone())),
        ps => {
            let idx: Vec<Option<PathBuf>> = ps.iter().map(|p| index_of_part(p)).collect();
            match idx.first().cloned().flatten() {
                Some(first) if idx.iter().all(|i| i.as_ref() == Some(&first)) => Ok(Located::Split { index: first, given: ps.to_vec() }),
                _ => Err(PartsError::Locate(
                    "the paths are not parts of one split bundle (NAME.part-NNN-of-MMM); hint: give one bundle file, a parts index, a directory, or the parts of one bundle".into(),
                )),
            }
        }
    }
}

/// Reads the index and checks its signature against `keys`.
pub fn load_index(path: &Path, keys: &[PublicKey]) -> Result<PartsIndex, PartsError> {
    let err = |message: String| PartsError::Index {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| err(format!("{e}; hint: the parts index travels with the parts")))?;
    if meta.len() > 16 << 20 {
        return Err(err("larger than 16 MiB".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let sig_path = PathBuf::from(format!("{}.minisig", path.display()));
    let sig_text = std::fs::read_to_string(&sig_path)
        .map_err(|e| err(format!("{}: {e}", sig_path.display())))?;
    let sig = Signature::parse(&sig_text).map_err(|e| err(e.to_string()))?;
    sig.verify(&bytes, keys).map_err(|e| err(e.to_string()))?;
    let index: PartsIndex =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("not a parts index: {e}")))?;
    for (i, p) in index.parts.iter().enumerate() {
        let ok = p.index == i + 1
            && parse_part_name(&p.file)
                .is_some_and(|(b, k, n)| b == index.bundle && k == i + 1 && n == index.parts.len())
            && !p.file.contains('/');
        if !ok {
            return Err(err(format!(
                "part entry {} ({:?}) is malformed",
                i + 1,
                p.file
            )));
        }
    }
    Ok(index)
}

fn hash_file(p: &Path) -> io::Result<(u64, Digest)> {
    crate::sha256_reader(File::open(p)?)
}

/// Checks every part on its own against the index; reports each problem by
/// part number. Reads the parts, writes nothing.
pub fn check_parts(
    index_path: &Path,
    index: &PartsIndex,
    given: &[PathBuf],
) -> Result<(), PartsError> {
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let n = index.parts.len();
    let mut problems = Vec::new();
    let mut hashes = Vec::new();
    for p in &index.parts {
        let path = dir.join(&p.file);
        let label = format!("part {} of {n} ({})", p.index, p.file);
        match hash_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(format!("{label}: missing"))
            }
            Err(e) => problems.push(format!("{label}: {e}")),
            Ok((size, sha)) => {
                if sha != p.sha256 {
                    let other = index.parts.iter().find(|q| q.sha256 == sha);
                    problems.push(match other {
                        Some(q) => format!("{label}: out of order: it holds part {} of {n}", q.index),
                        None if size != p.size => format!(
                            "{label}: corrupt: {size} bytes, expected {}; sha256 expected {}, actual {sha}",
                            p.size, p.sha256
                        ),
                        None => format!(
                            "{label}: corrupt or from another bundle: sha256 expected {}, actual {sha}",
                            p.sha256
                        ),
                    });
                }
                hashes.push(sha);
            }
        }
    }
    // Files that look like parts of this bundle but are not in the index.
    let prefix = format!("{}.part-", index.bundle);
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut extra: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix) && !index.parts.iter().any(|p| &p.file == f))
            .collect();
        extra.sort();
        for f in extra {
            let why = match parse_part_name(&f) {
                Some((_, k, m)) if m != n => format!("extra file {f}: part {k} of {m}, from another split of {} (this one has {n} parts)", index.bundle),
                _ => format!("extra file {f}: not part of this bundle"),
            };
            problems.push(why);
        }
    }
    for (i, g) in given.iter().enumerate() {
        let f = file_name(g);
        match index.parts.iter().find(|p| p.file == f) {
            None => problems.push(format!(
                "{}: not a part of {} (the index lists {n} parts)",
                g.display(),
                index.bundle
            )),
            Some(p) if p.index != i + 1 => problems.push(format!(
                "{}: given in position {} but it is part {} of {n}",
                g.display(),
                i + 1,
                p.index
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PartsError::Parts { count: n, problems })
    }
}

/// Reads the parts in order as one stream, checking each part's size and
/// sha256 as its end passes.
pub struct PartsReader {
    dir: PathBuf,
    index: PartsIndex,
    next: usize,
    current: Option<(File, Sha256, u64)>,
}

impl std::fmt::Debug for PartsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartsReader({}, part {})", self.index.bundle, self.next)
    }
}

impl PartsReader {
    /// Reads the parts named by `index`, from `dir`.
    pub fn new(dir: &Path, index: PartsIndex) -> Self {
        PartsReader {
            dir: dir.to_owned(),
            index,
            next: 0,
            current: None,
        }
    }
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.index.parts.len();
        loop {
            if self.current.is_none() {
                if self.next >= n {
                    return Ok(0);
                }
                let p = &self.index.parts[self.next];
                let f = File::open(self.dir.join(&p.file)).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("part {} of {n} ({}): {e}", p.index, p.file),
                    )
                })?;
                self.current = Some((f, Sha256::new(), 0));
            }
            let (f, h, len) = self.current.as_mut().expect("opened");
            let k = f.read(buf)?;
            if k > 0 {
                h.update(&buf[..k]);
                *len += k as u64;
                let p = &self.index.parts[self.next];
                if *len > p.size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "part {} of {n} ({}) is longer than the index says",
                            p.index, p.file
                        ),
                    ));
                }
                return Ok(k);
            }
            let (_, h, len) = self.current.take().expect("opened");
            let p = &self.index.parts[self.next];
            let sha = Digest::from_sha256_bytes(&h.finalize().into());
            if len != p.size || sha != p.sha256 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "part {} of {n} ({}): sha256 expected {}, actual {sha}",
                        p.index, p.file, p.sha256
                    ),
                ));
            }
            self.next += 1;
        }
    }
}

/// Opens what `paths` name as one input: a bundle file, or a split bundle
/// whose index is checked against `keys` and whose parts are each checked.
pub fn open(paths: &[PathBuf], keys: &[PublicKey]) -> Result<Input, OpenError> {
    open_scoped(paths, keys, bundle::Scope::Whole)
}

/// [`open`] for a read of `scope`: a [`bundle::Scope::FilesOnly`] read
/// does not check the parts up front, since it stops inside the first ones
/// and the parts after may not be there; each entry it reads is still
/// checked against the signed manifest, and a part it needs and lacks is
/// named when reached.
pub fn open_scoped(
    paths: &[PathBuf],
    keys: &[PublicKey],
    scope: bundle::Scope,
) -> Result<Input, OpenError> {
    match locate(paths)? {
        Located::Single(p) => Ok(bundle::open(&p)?),
        Located::Split { index, given } => {
            let idx = load_index(&index, keys)?;
            if scope == bundle::Scope::Whole {
                check_parts(&index, &idx, &given)?;
            }
            let dir = index.parent().unwrap_or(Path::new(".")).to_owned();
            Ok(bundle::from_reader(
                &index,
                Box::new(PartsReader::new(&dir, idx)),
            )?)
        }
    }
}

/// Errors of [`open`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Split-bundle problems.
    #[error(transparent)]
    Parts(#[from] PartsError),
    /// Bundle problems.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl OpenError {
    /// True when the media, not the host, is at fault.
    pub fn is_verification(&self) -> bool {
        match self {
            OpenError::Parts(p) => p.is_verification(),
            OpenError::Bundle(b) => b.is_verification(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(
            parse_part_name("demo-1.0.0.bundle.part-002-of-003"),
            Some(("demo-1.0.0.bundle", 2, 3))
        );
        assert_eq!(parse_part_name("demo.bundle"), None);
    }
}
