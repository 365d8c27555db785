//! Writes into directories that someone else may write to.
//!
//! An install dir is often writable by a less trusted account than the root
//! installer: the app's service user, a container that bind-mounts it, an
//! operator in the `docker` group. A root tool that opens `DIR/.NAME.tmp`
//! with create+truncate, or `chmod`s `DIR/NAME`, follows whatever link that
//! account planted there and writes into any file on the host (CWE-59,
//! CWE-377). So every write here:
//!
//! 1. resolves its directory from a directory fd one component at a time,
//!    with `O_NOFOLLOW | O_DIRECTORY`: a link anywhere below the root is
//!    refused, and swapping a component for a link halfway through an
//!    install cannot redirect a later write;
//! 2. refuses a target that is not a regular file (a link, fifo, device,
//!    socket or directory), naming it;
//! 3. writes a temp file with an unpredictable name, created exclusively
//!    (`O_CREAT | O_EXCL | O_NOFOLLOW`), fsyncs it, and `renameat`s it onto
//!    the target in the same directory fd (a rename replaces a name; it
//!    follows no link at either end), then fsyncs the directory.
//!
//! [`Root`] is for paths below a root the program trusts (the install dir):
//! nothing below it is followed. [`write_atomic`] is for a path the user
//! chose (`bundler build -o`, `installer inventory -o`): the directories the
//! user named are followed, the file itself never is.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// What stands at a path, without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Nothing.
    Absent,
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Link,
    /// A named pipe.
    Fifo,
    /// A character or block device.
    Device,
    /// A unix socket.
    Socket,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Link,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            _ => Kind::Device,
        }
    }

    /// What `md` (from `symlink_metadata`) describes.
    pub fn of_metadata(md: &std::fs::Metadata) -> Kind {
        use std::os::unix::fs::FileTypeExt;
        let t = md.file_type();
        if t.is_symlink() {
            Kind::Link
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else {
            Kind::Device
        }
    }

    /// "a symbolic link", "a fifo", …
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Absent => "nothing",
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Link => "a symbolic link",
            Kind::Fifo => "a fifo",
            Kind::Device => "a device node",
            Kind::Socket => "a socket",
        }
    }
}

/// A path where something of the wrong kind stands: the write was refused
/// before anything was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The offending path (the target, or one of its directories).
    pub path: PathBuf,
    /// What is there.
    pub found: Kind,
    /// What was expected there.
    pub wanted: Kind,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {}, not {}; refusing to follow or replace it (a link or special file planted there could redirect a root write outside the dir); hint: remove it, and check who else can write to this dir",
            self.path.display(),
            self.found.describe(),
            self.wanted.describe()
        )
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The refusal inside `e`, if `e` is one.
    pub fn of(e: &io::Error) -> Option<&Refused> {
        e.get_ref().and_then(|i| i.downcast_ref::<Refused>())
    }
}

fn refused(path: PathBuf, found: Kind, wanted: Kind) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        Refused {
            path,
            found,
            wanted,
        },
    )
}

/// `rel`'s parts, refusing absolute paths and `..` (nothing may leave the root).
fn parts(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: not a relative path below the dir; refusing it",
                    rel.display()
                ),
            )),
        })
        .collect()
}

fn kind_at(dir: impl AsFd, name: &OsStr) -> io::Result<Kind> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Kind::of(FileType::from_raw_mode(st.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(Kind::Absent),
        Err(e) => Err(e.into()),
    }
}

/// A directory that every operation resolves beneath, following no link
/// below it. Paths given to its methods are relative to it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (links in `path` itself are the caller's choice and are
    /// followed; nothing below it is).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(Root {
            fd,
            path: path.to_owned(),
        })
    }

    /// The root's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` beneath the root, creating missing parts
    /// (mode 0755) when `create`; `Ok(None)` when it is absent and not
    /// created.
    fn walk(&self, rel: &Path, create: bool) -> io::Result<Option<OwnedFd>> {
        let mut cur = rustix::io::dup(&self.fd)?;
        let mut shown = PathBuf::new();
        for name in parts(rel)? {
            shown.push(name);
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&cur, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(self.err(&shown, e.into())),
                    }
                    rustix::fs::openat(&cur, name, flags, Mode::empty())
                        .map_err(|e| self.wrong_kind(&cur, name, &shown, Kind::Dir, e.into()))?
                }
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.wrong_kind(&cur, name, &shown, Kind::Dir, e.into())),
            };
            cur = next;
        }
        Ok(Some(cur))
    }

    /// Turns a failed open into a [`Refused`] when a link or special file
    /// caused it.
    fn wrong_kind(
        &self,
        dir: impl AsFd,
        name: &OsStr,
        shown: &Path,
        wanted: Kind,
        e: io::Error,
    ) -> io::Error {
        match kind_at(dir, name) {
            Ok(k) if k != wanted && k != Kind::Absent => refused(self.path.join(shown), k, wanted),
            _ => self.err(shown, e),
        }
    }

    fn err(&self, rel: &Path, e: io::Error) -> io::Error {
        if Refused::of(&e).is_some() {
            return e;
        }
        io::Error::new(e.kind(), format!("{}: {e}", self.path.join(rel).display()))
    }

    /// The parent dir of `rel` and its file name.
    fn split<'a>(&self, rel: &'a Path, create: bool) -> io::Result<(Option<OwnedFd>, &'a OsStr)> {
        let name = rel.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: no file name", rel.display()),
            )
        })?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.walk(parent, create)?, name))
    }

    /// What stands at `rel`, without following a link; a link or special
    /// file among its directories is reported as what stands there, with
    /// its path.
    pub fn kind(&self, rel: &Path) -> io::Result<(PathBuf, Kind)> {
        let mut cur = rustix::io::dup(&self.fd)?;
        let mut shown = PathBuf::new();
        let names = parts(rel)?;
        for (i, &name) in names.iter().enumerate() {
            shown.push(name);
            let k = kind_at(&cur, name)?;
            if i + 1 == names.len() || k != Kind::Dir {
                return Ok((shown, k));
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            cur = rustix::fs::openat(&cur, name, flags, Mode::empty())
                .map_err(|e| self.err(&shown, e.into()))?;
        }
        Ok((shown, Kind::Dir))
    }

    /// `Err` naming the path when `rel` (or a directory on the way) is not
    /// absent or of kind `want`.
    pub fn expect(&self, rel: &Path, want: Kind) -> io::Result<()> {
        let (at, k) = self.kind(rel)?;
        let leaf = at.as_path() == strip_cur(rel);
        match k {
            Kind::Absent => Ok(()),
            k if leaf && k == want => Ok(()),
            Kind::Dir if !leaf => Ok(()),
            k => Err(refused(
                self.path.join(&at),
                k,
                if leaf { want } else { Kind::Dir },
            )),
        }
    }

    /// Creates the directory `rel` and any missing parent (0755).
    pub fn create_dir_all(&self, rel: &Path) -> io::Result<()> {
        self.walk(rel, true).map(drop)
    }

    /// Replaces the regular file `rel` (or creates it, with its
    /// directories) with `data` and `mode`: see the module docs.
    pub fn write(&self, rel: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        let (dir, name) = self.split(rel, true)?;
        let dir = dir.expect("created");
        write_at(&dir, name, data, mode, &self.path.join(rel))
    }

    /// Creates the new regular file `rel` (and its directories) for
    /// writing; fails if anything is there already.
    pub fn create_new(&self, rel: &Path, mode: u32) -> io::Result<File> {
        let (dir, name) = self.split(rel, true)?;
        let fd = rustix::fs::openat(
            dir.expect("created"),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| self.err(rel, e.into()))?;
        Ok(File::from(fd))
    }

    /// Opens (creating if absent) the regular file `rel` for writing
    /// without truncating it: a lock file.
    pub fn open_lock(&self, rel: &Path) -> io::Result<File> {
        let (dir, name) = self.split(rel, true)?;
        let dir = dir.expect("created");
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.wrong_kind(&dir, name, rel, Kind::File, e.into()))?;
        regular(File::from(fd), &self.path.join(rel))
    }

    /// Opens the regular file `rel` for reading; `Ok(None)` when absent.
    pub fn open_read(&self, rel: &Path) -> io::Result<Option<File>> {
        let (dir, name) = self.split(rel, false)?;
        let Some(dir) = dir else { return Ok(None) };
        match rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => regular(File::from(fd), &self.path.join(rel)).map(Some),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(self.wrong_kind(&dir, name, rel, Kind::File, e.into())),
        }
    }

    /// Reads the regular file `rel`; `Ok(None)` when absent.
    pub fn read(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.open_read(rel)? {
            Some(mut f) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v).map_err(|e| self.err(rel, e))?;
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// Sets the mode of the regular file `rel` (never of what a link
    /// points to).
    pub fn set_mode(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let f = self
            .open_read(rel)?
            .ok_or_else(|| self.err(rel, io::ErrorKind::NotFound.into()))?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| self.err(rel, e.into()))
    }

    /// Removes the file (or link) `rel`; absent is fine.
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.split(rel, false)?;
        let Some(dir) = dir else { return Ok(()) };
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(self.err(rel, e.into())),
        }
    }

    /// Removes the empty directory `rel`.
    pub fn remove_dir(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.split(rel, false)?;
        let Some(dir) = dir else { return Ok(()) };
        rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(|e| self.err(rel, e.into()))
    }

    /// Renames `from` to `to` (both below the root; `to`'s directories are
    /// created). Replaces what is at `to` (an empty dir, for a dir) without
    /// following a link.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fdir, fname) = self.split(from, false)?;
        let fdir = fdir.ok_or_else(|| self.err(from, io::ErrorKind::NotFound.into()))?;
        let (tdir, tname) = self.split(to, true)?;
        let tdir = tdir.expect("created");
        rustix::fs::renameat(&fdir, fname, &tdir, tname).map_err(|e| self.err(to, e.into()))?;
        rustix::fs::fsync(&tdir).map_err(|e| self.err(to, e.into()))
    }
}

fn strip_cur(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `f` if it is a regular file, else a [`Refused`] naming `path`.
fn regular(f: File, path: &Path) -> io::Result<File> {
    let st = rustix::fs::fstat(&f)?;
    match Kind::of(FileType::from_raw_mode(st.st_mode)) {
        Kind::File => Ok(f),
        k => Err(refused(path.to_owned(), k, Kind::File)),
    }
}

/// A temp name beside `name` that nobody can predict: `.NAME.<128 random
/// bits>.tmp` (the name is cut to keep within NAME_MAX).
fn temp_name(name: &OsStr) -> io::Result<OsString> {
    let mut r = [0u8; 16];
    getrandom::getrandom(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let bytes = name.as_bytes();
    let keep = &bytes[..bytes.len().min(200)];
    let mut s = OsString::from(".");
    s.push(OsStr::from_bytes(keep));
    s.push(format!(".{hex}.tmp"));
    Ok(s)
}

/// The core of every atomic write: see the module docs. `shown` names the
/// target in errors.
fn write_at(dir: &OwnedFd, name: &OsStr, data: &[u8], mode: u32, shown: &Path) -> io::Result<()> {
    let err = |e: io::Error| {
        if Refused::of(&e).is_some() {
            e
        } else {
            io::Error::new(e.kind(), format!("{}: {e}", shown.display()))
        }
    };
    let target_ok = || match kind_at(dir, name)? {
        Kind::Absent | Kind::File => Ok(()),
        k => Err(refused(shown.to_owned(), k, Kind::File)),
    };
    target_ok().map_err(err)?;
    let (tmp, fd) = loop {
        let tmp = temp_name(name)?;
        match rustix::fs::openat(
            dir,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => break (tmp, fd),
            // 128 random bits taken already: someone is guessing; try again.
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(err(e.into())),
        }
    };
    let result = (|| {
        let mut f = File::from(fd);
        f.write_all(data)?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
        f.sync_all()?;
        // Checked again just before the rename, which would replace a link
        // rather than follow it, but must not silently drop one either.
        target_ok()?;
        rustix::fs::renameat(dir, &tmp, dir, name)?;
        rustix::fs::fsync(dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
    }
    result.map_err(err)
}

/// Replaces the file at `path`, a path the user chose, with `data`: the
/// directories in `path` are followed as the user named them; the file
/// itself must be absent or a regular file (a link there is refused), and
/// the temp file beside it is created exclusively under an unpredictable
/// name.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name", path.display()),
        )
    })?;
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", dir.display())))?;
    write_at(&fd, name, data, mode, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};

    /// An install dir and, beside it, a file standing for `/etc/shadow`.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("install");
        std::fs::create_dir(&dir).unwrap();
        let outside = t.path().join("shadow");
        std::fs::write(&outside, b"root:secret\n").unwrap();
        (t, dir, outside)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replace_atomically_with_the_mode_and_leave_no_temp() {
        let (_t, dir, _) = setup();
        let root = Root::open(&dir).unwrap();
        root.write(Path::new("a/b/.env"), b"one", 0o600).unwrap();
        root.write(Path::new("a/b/.env"), b"two", 0o640).unwrap();
        let p = dir.join("a/b/.env");
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(names(&dir.join("a/b")), [".env"]);
    }

    #[test]
    fn a_link_at_the_target_is_refused_and_nothing_is_written_through_it() {
        let (_t, dir, outside) = setup();
        symlink(&outside, dir.join(".env")).unwrap();
        let root = Root::open(&dir).unwrap();
        let e = root.write(Path::new(".env"), b"x", 0o600).unwrap_err();
        let r = Refused::of(&e).expect("a refusal");
        assert_eq!(r.found, Kind::Link);
        assert_eq!(r.path, dir.join(".env"));
        assert_eq!(std::fs::read(&outside).unwrap(), b"root:secret\n");
        assert!(std::fs::symlink_metadata(dir.join(".env"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(names(&dir), [".env"], "no temp file left");
        // The same for the user-chosen path form, a mode change and a lock.
        let e = write_atomic(&dir.join(".env"), b"x", 0o600).unwrap_err();
        assert_eq!(Refused::of(&e).unwrap().found, Kind::Link);
        let e = root.set_mode(Path::new(".env"), 0o666).unwrap_err();
        assert_eq!(Refused::of(&e).unwrap().found, Kind::Link);
        let e = root.open_lock(Path::new(".env")).unwrap_err();
        assert_eq!(Refused::of(&e).unwrap().found, Kind::Link);
        assert_eq!(
            std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(std::fs::read(&outside).unwrap(), b"root:secret\n");
    }

    #[test]
    fn a_link_among_the_directories_is_refused_naming_it() {
        let (t, dir, outside) = setup();
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, dir.join(".installer")).unwrap();
        let root = Root::open(&dir).unwrap();
        for e in [
            root.write(Path::new(".installer/state.json"), b"{}", 0o644)
                .unwrap_err(),
            root.create_new(Path::new(".installer/staging/x"), 0o644)
                .unwrap_err(),
            root.create_dir_all(Path::new(".installer/blobs"))
                .unwrap_err(),
            root.rename(Path::new("nope"), Path::new(".installer/x"))
                .unwrap_err(),
        ] {
            let r = Refused::of(&e).unwrap_or_else(|| panic!("{e}"));
            assert_eq!(
                (r.path.clone(), r.found),
                (dir.join(".installer"), Kind::Link)
            );
        }
        assert_eq!(names(&elsewhere), Vec::<String>::new());
        assert_eq!(std::fs::read(&outside).unwrap(), b"root:secret\n");
        assert_eq!(
            root.kind(Path::new(".installer/state.json")).unwrap(),
            (PathBuf::from(".installer"), Kind::Link)
        );
        assert!(root
            .expect(Path::new(".installer/state.json"), Kind::File)
            .is_err());
    }

    #[test]
    fn links_planted_at_the_old_predictable_temp_names_are_never_followed() {
        let (_t, dir, outside) = setup();
        // The names the installer used before: `.NAME.installer-tmp`.
        symlink(&outside, dir.join("..env.installer-tmp")).unwrap();
        symlink(&outside, dir.join(".env.installer-tmp")).unwrap();
        let root = Root::open(&dir).unwrap();
        root.write(Path::new(".env"), b"A=1\n", 0o600).unwrap();
        assert_eq!(std::fs::read(dir.join(".env")).unwrap(), b"A=1\n");
        assert_eq!(std::fs::read(&outside).unwrap(), b"root:secret\n");
    }

    #[test]
    fn fifos_and_dirs_at_the_target_are_refused_without_blocking() {
        let (_t, dir, _) = setup();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        std::fs::create_dir(dir.join("d")).unwrap();
        let root = Root::open(&dir).unwrap();
        for (p, k) in [("fifo", Kind::Fifo), ("d", Kind::Dir)] {
            let e = root.write(Path::new(p), b"x", 0o644).unwrap_err();
            assert_eq!(Refused::of(&e).unwrap().found, k);
            let e = root.open_read(Path::new(p)).unwrap_err();
            assert_eq!(Refused::of(&e).unwrap().found, k, "{p}");
        }
        assert_eq!(
            root.kind(Path::new("fifo")).unwrap(),
            (PathBuf::from("fifo"), Kind::Fifo)
        );
        assert_eq!(
            root.kind(Path::new("missing/x")).unwrap(),
            (PathBuf::from("missing"), Kind::Absent)
        );
        root.expect(Path::new("missing/x"), Kind::File).unwrap();
    }

    #[test]
    fn temp_names_are_unpredictable() {
        let a = temp_name(OsStr::new(".env")).unwrap();
        let b = temp_name(OsStr::new(".env")).unwrap();
        assert_ne!(a, b);
        assert!(a.to_string_lossy().starts_with("..env."));
        let long = "n".repeat(255);
        assert!(temp_name(OsStr::new(&long)).unwrap().len() <= 255);
    }

    #[test]
    fn paths_leaving_the_root_are_refused() {
        let (_t, dir, _) = setup();
        let root = Root::open(&dir).unwrap();
        for p in ["../x", "/etc/passwd", "a/../../x"] {
            assert!(root.write(Path::new(p), b"x", 0o644).is_err(), "{p}");
        }
    }

    /// Runs `f` on a thread and fails the test if it has not returned
    /// within 10 s (an open that blocks on a fifo would hang it).
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("blocked for 10 s")
    }

    fn mkfifo(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
    }

    #[test]
    fn a_new_file_is_created_only_where_nothing_stands() {
        let (_t, dir, outside) = setup();
        let root = Root::open(&dir).unwrap();
        let mut f = root.create_new(Path::new("staging/new"), 0o640).unwrap();
        f.write_all(b"data").unwrap();
        drop(f);
        let p = dir.join("staging/new");
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640 & !current_umask()
        );
        // A file there already is neither truncated nor written over.
        let e = root
            .create_new(Path::new("staging/new"), 0o640)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("staging/new"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        // Nor is a link followed, even to a file that does not exist yet.
        symlink(&outside, dir.join("staging/link")).unwrap();
        symlink(dir.join("staging/nowhere"), dir.join("staging/dangling")).unwrap();
        for l in ["staging/link", "staging/dangling"] {
            root.create_new(Path::new(l), 0o644).unwrap_err();
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"root:secret\n");
        assert!(!dir.join("staging/nowhere").exists());
    }

    /// The process' umask, without changing it for long.
    fn current_umask() -> u32 {
        let (_t, dir, _) = setup();
        let p = dir.join("probe");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(&p)
            .unwrap();
        0o777 & !(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777)
    }

    #[test]
    fn a_lock_file_is_created_or_reused_and_a_fifo_there_is_refused_without_blocking() {
        let (_t, dir, _) = setup();
        let root = Root::open(&dir).unwrap();
        root.open_lock(Path::new(".installer/lock")).unwrap();
        std::fs::write(dir.join(".installer/lock"), b"pid 1").unwrap();
        root.open_lock(Path::new(".installer/lock")).unwrap();
        assert_eq!(
            std::fs::read(dir.join(".installer/lock")).unwrap(),
            b"pid 1",
            "reused, not truncated"
        );
        mkfifo(&dir.join("fifo"));
        let e = within_10s(move || root.open_lock(Path::new("fifo")).unwrap_err());
        assert_eq!(Refused::of(&e).map(|r| r.found), Some(Kind::Fifo), "{e}");
    }

    #[test]
    fn reads_and_removals_never_go_through_a_link() {
        let (t, dir, outside) = setup();
        std::fs::write(dir.join("f"), b"mine").unwrap();
        std::fs::create_dir(dir.join("d")).unwrap();
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("x"), b"theirs").unwrap();
        symlink(&outside, dir.join("l")).unwrap();
        symlink(&elsewhere, dir.join("ld")).unwrap();
        let root = Root::open(&dir).unwrap();
        assert_eq!(root.read(Path::new("f")).unwrap(), Some(b"mine".to_vec()));
        assert_eq!(root.read(Path::new("missing")).unwrap(), None);
        assert_eq!(root.read(Path::new("missing/x")).unwrap(), None);
        for (p, at) in [("l", "l"), ("ld/x", "ld")] {
            let e = root.read(Path::new(p)).unwrap_err();
            let r = Refused::of(&e).unwrap_or_else(|| panic!("{p}: {e}"));
            assert_eq!((r.path.clone(), r.found), (dir.join(at), Kind::Link));
        }
        // Removing a link removes the link, never what it points to, and
        // nothing is removed through a linked directory.
        root.remove_file(Path::new("l")).unwrap();
        assert!(std::fs::symlink_metadata(dir.join("l")).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"root:secret\n");
        let e = root.remove_file(Path::new("ld/x")).unwrap_err();
        assert_eq!(Refused::of(&e).map(|r| r.found), Some(Kind::Link), "{e}");
        assert_eq!(std::fs::read(elsewhere.join("x")).unwrap(), b"theirs");
        root.remove_file(Path::new("f")).unwrap();
        assert!(!dir.join("f").exists());
        root.remove_file(Path::new("f")).unwrap();
        root.remove_file(Path::new("missing/f")).unwrap();
        root.remove_dir(Path::new("d")).unwrap();
        assert!(!dir.join("d").exists());
        assert!(root.remove_dir(Path::new("d")).is_err());
    }

    #[test]
    fn expect_names_what_stands_in_the_way() {
        let (_t, dir, outside) = setup();
        std::fs::write(dir.join("f"), b"").unwrap();
        std::fs::create_dir(dir.join("d")).unwrap();
        symlink(&outside, dir.join("l")).unwrap();
        mkfifo(&dir.join("p"));
        let root = Root::open(&dir).unwrap();
        for (p, want) in [
            ("f", Kind::File),
            ("./f", Kind::File),
            ("d", Kind::Dir),
            ("d/new", Kind::File),
            ("missing/new", Kind::File),
        ] {
            root.expect(Path::new(p), want)
                .unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        for (p, want, at, found, wanted) in [
            ("f", Kind::Dir, "f", Kind::File, Kind::Dir),
            ("d", Kind::File, "d", Kind::Dir, Kind::File),
            ("./d", Kind::File, "d", Kind::Dir, Kind::File),
            ("l", Kind::File, "l", Kind::Link, Kind::File),
            ("p", Kind::File, "p", Kind::Fifo, Kind::File),
            ("f/x", Kind::File, "f", Kind::File, Kind::Dir),
            ("l/x", Kind::File, "l", Kind::Link, Kind::Dir),
        ] {
            let e = root.expect(Path::new(p), want).unwrap_err();
            let r = Refused::of(&e).unwrap_or_else(|| panic!("{p}: {e}"));
            assert_eq!(
                (r.path.clone(), r.found, r.wanted),
                (dir.join(at), found, wanted),
                "{p}"
            );
        }
    }

    #[test]
    fn a_refusal_says_what_is_there_and_what_was_wanted() {
        let (_t, dir, _) = setup();
        let sock = dir.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let root = Root::open(&dir).unwrap();
        let e = root.write(Path::new("s"), b"x", 0o644).unwrap_err();
        assert_eq!(Refused::of(&e).map(|r| r.found), Some(Kind::Socket));
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{} is a socket, not a regular file; refusing to follow or replace it",
                sock.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("hint: remove it"), "{msg}");
    }
}
