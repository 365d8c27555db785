//! The subset of tar that bundles use, read strictly and written
//! deterministically.
//!
//! Bundles hold only regular files. The reader returns every header as it
//! is (type, raw path bytes, size, mode) and leaves policy to the caller, but
//! it validates what a hostile archive could use to confuse a parser: header
//! checksums, numeric fields, PAX records (only `path` is honoured, bounded),
//! and what follows the end-of-archive marker (only zero padding).

use std::io::{self, Read, Write};

/// Tar block size.
pub const BLOCK: usize = 512;
/// Largest PAX extended header accepted.
pub const MAX_PAX: u64 = 64 * 1024;

/// Errors from reading tar data.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The underlying read failed (including decompression errors).
    #[error("reading the archive at byte {offset}")]
    Io {
        /// Offset in the decompressed tar stream.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The stream ended inside a header or entry.
    #[error("archive is truncated at byte {0} of the decompressed stream")]
    Truncated(u64),
    /// A header is malformed.
    #[error("corrupt tar header at byte {offset}: {what}")]
    BadHeader {
        /// Offset of the header.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Non-zero data after the end-of-archive marker.
    #[error("unexpected data after the end of the archive at byte {0}")]
    TrailingData(u64),
}

/// A header as read, with PAX `path` applied.
#[derive(Debug, Clone)]
pub struct Header {
    /// Raw path bytes.
    pub path: Vec<u8>,
    /// Type flag (`b'0'` for a regular file).
    pub kind: u8,
    /// Data size in bytes.
    pub size: u64,
    /// Mode bits as stored.
    pub mode: u32,
    /// Link target, for link entries (for messages).
    pub link: Vec<u8>,
    /// Offset of the header in the decompressed stream.
    pub offset: u64,
}

impl Header {
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == b'0' || self.kind == 0
    }

    /// A human name for the entry type.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            b'0' | 0 => "regular file",
            b'1' => "hard link",
            b'2' => "symlink",
            b'3' => "character device",
            b'4' => "block device",
            b'5' => "directory",
            b'6' => "fifo",
            b'7' => "contiguous file",
            b'g' => "global PAX header",
            b'S' => "sparse file",
            _ => "unknown entry type",
        }
    }
}

/// Reads tar entries from a stream.
#[derive(Debug)]
pub struct TarReader<R> {
    inner: R,
    pos: u64,
}

fn parse_num(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256, as GNU tar writes sizes above 8 GiB
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

impl<R: Read> TarReader<R> {
    /// Wraps a decompressed tar stream.
    pub fn new(inner: R) -> Self {
        TarReader { inner, pos: 0 }
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, TarError> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) if n == 0 => return Ok(false),
                Ok(0) => return Err(TarError::Truncated(self.pos + n as u64)),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(TarError::Io {
                        offset: self.pos + n as u64,
                        source: e,
                    })
                }
            }
        }
        self.pos += n as u64;
        Ok(true)
    }

    fn block(&mut self) -> Result<[u8; BLOCK], TarError> {
        let mut b = [0u8; BLOCK];
        if !self.fill(&mut b)? {
            return Err(TarError::Truncated(self.pos));
        }
        Ok(b)
    }

    /// Reads the next header, or `None` at the end-of-archive marker (after
    /// checking that only zero padding follows it, up to the end of stream).
    pub fn next_header(&mut self) -> Result<Option<Header>, TarError> {
        let mut pax_path: Option<Vec<u8>> = None;
        let mut gnu_path: Option<Vec<u8>> = None;
        let mut gnu_link: Option<Vec<u8>> = None;
        loop {
            let offset = self.pos;
            let b = self.block()?;
            if b.iter().all(|x| *x == 0) {
                self.expect_zero_tail()?;
                return Ok(None);
            }
            let bad = |what: &str| TarError::BadHeader {
                offset,
                what: what.to_owned(),
            };
            let stored =
                parse_num(&b[148..156]).ok_or_else(|| bad("checksum field is not octal"))?;
            let sum: u64 = b
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(*x)
                    }
                })
                .sum();
            if stored != sum {
                return Err(bad(&format!(
                    "checksum mismatch (stored {stored}, computed {sum})"
                )));
            }
            if &b[257..262] != b"ustar" {
                return Err(bad("not a ustar header"));
            }
            let size = parse_num(&b[124..136]).ok_or_else(|| bad("size field is not a number"))?;
            let mode = parse_num(&b[100..108]).ok_or_else(|| bad("mode field is not octal"))?;
            let kind = b[156];
            // Records about the entry that follows: a PAX header, or GNU
            // tar's long name or long link target. A PAX path, where both
            // are given, wins.
            let record = match kind {
                b'x' => Some("PAX header"),
                b'L' | b'K' => Some("GNU long name"),
                _ => None,
            };
            if let Some(record) = record {
                if size > MAX_PAX {
                    return Err(bad(&format!("{record} of {size} bytes (limit {MAX_PAX})")));
                }
                let mut data = vec![0u8; size as usize];
                self.read_exact_data(&mut data)?;
                self.skip_padding(size)?;
                match kind {
                    b'x' => pax_path = parse_pax_path(&data).map_err(bad)?.or(pax_path),
                    b'L' => gnu_path = Some(cstr(&data).to_vec()),
                    _ => gnu_link = Some(cstr(&data).to_vec()),
                }
                continue;
            }
            let mut path = match pax_path.take().or(gnu_path.take()) {
                Some(p) => p,
                None => {
                    let name = cstr(&b[0..100]);
                    let prefix = cstr(&b[345..500]);
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        [prefix, b"/", name].concat()
                    }
                }
            };
            if path.is_empty() {
                path = b"".to_vec();
            }
            return Ok(Some(Header {
                path,
                kind,
                size,
                mode: u32::try_from(mode).map_err(|_| bad("mode out of range"))?,
                link: gnu_link.unwrap_or_else(|| cstr(&b[157..257]).to_vec()),
                offset,
            }));
        }
    }

    fn read_exact_data(&mut self, buf: &mut [u8]) -> Result<(), TarError> {
        if !buf.is_empty() && !self.fill(buf)? {
            return Err(TarError::Truncated(self.pos));
        }
        Ok(())
    }

    fn skip_padding(&mut self, size: u64) -> Result<(), TarError> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let mut b = [0u8; BLOCK];
        self.read_exact_data(&mut b[..pad as usize])
    }

    /// Streams an entry's `size` bytes of data into `f`, in chunks, then
    /// skips its padding.
    pub fn read_data<E: From<TarError>>(
        &mut self,
        size: u64,
        buf: &mut [u8],
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.read_exact_data(&mut buf[..n])?;
            f(&buf[..n])?;
            left -= n as u64;
        }
        self.skip_padding(size)?;
        Ok(())
    }

    fn expect_zero_tail(&mut self) -> Result<(), TarError> {
        let mut b = [0u8; 8192];
        loop {
            let n = match self.inner.read(&mut b) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(TarError::Io {
                        offset: self.pos,
                        source: e,
                    })
                }
            };
            if let Some(i) = b[..n].iter().position(|x| *x != 0) {
                return Err(TarError::TrailingData(self.pos + i as u64));
            }
            self.pos += n as u64;
        }
    }
}

impl<R: io::BufRead> TarReader<R> {
    /// [`TarReader::read_data`] without a copy: `f` sees the reader's own
    /// buffers.
    pub fn read_data_in_place<E: From<TarError>>(
        &mut self,
        size: u64,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut left = size;
        while left > 0 {
            let avail = loop {
                match self.inner.fill_buf() {
                    Ok(b) => break b,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(TarError::Io {
                            offset: self.pos,
                            source: e,
                        }
                        .into())
                    }
                }
            };
            if avail.is_empty() {
                return Err(TarError::Truncated(self.pos).into());
            }
            let n = avail.len().min(left.min(usize::MAX as u64) as usize);
            f(&avail[..n])?;
            self.inner.consume(n);
            self.pos += n as u64;
            left -= n as u64;
        }
        self.skip_padding(size)?;
        Ok(())
    }
}

fn parse_pax_path(data: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut rest = data;
    let mut path = None;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("PAX record without length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record length is not a number")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("PAX record length is wrong");
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|b| *b == b'=')
            .ok_or("PAX record without '='")?;
        match &rec[..eq] {
            b"path" => path = Some(rec[eq + 1..].to_vec()),
            b"size" | b"linkpath" | b"uid" | b"gid" | b"uname" | b"gname" => {
                return Err("PAX record overrides size, link or ownership, which bundles never do")
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(path)
}

/// Writes deterministic tar entries: regular files only, uid/gid 0, fixed
/// mtime, no user names; paths that do not fit ustar get a PAX `path` record.
#[derive(Debug)]
pub struct TarWriter<W> {
    inner: W,
    mtime: u64,
}

fn put_octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    if s.len() <= width {
        field[..width].copy_from_slice(s.as_bytes());
        field[width] = 0;
    } else {
        // base-256 for large values
        field.fill(0);
        let bytes = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
        field[0] |= 0x80;
    }
}

/// Builds a raw ustar header block.
pub fn header_block(
    name: &[u8],
    prefix: &[u8],
    kind: u8,
    size: u64,
    mode: u32,
    mtime: u64,
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    set_checksum(&mut h);
    h
}

/// Recomputes a header's checksum field (tests use it to forge headers).
pub fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|x| u64::from(*x)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// Splits a path into ustar (prefix, name), if it fits.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((b"", path));
    }
    // Split at a '/' so that prefix <= 155 and name <= 100.
    (0..path.len())
        .rev()
        .filter(|i| path[*i] == b'/')
        .find(|i| *i <= 155 && path.len() - i - 1 <= 100 && path.len() - i - 1 > 0)
        .map(|i| (&path[..i], &path[i + 1..]))
}

impl<W: Write> TarWriter<W> {
    /// Starts an archive whose entries all carry `mtime`.
    pub fn new(inner: W, mtime: u64) -> Self {
        TarWriter { inner, mtime }
    }

    /// Writes a header for a regular file of `size` bytes; the caller then
    /// writes exactly `size` bytes with [`TarWriter::data`] and calls
    /// [`TarWriter::pad`].
    pub fn header(&mut self, path: &str, size: u64, mode: u32) -> io::Result<()> {
        let p = path.as_bytes();
        let (prefix, name) = match split_ustar(p) {
            Some(x) => x,
            None => {
                // A PAX record's length prefix counts its own digits.
                let body = format!(" path={path}\n");
                let mut len = body.len() + 1;
                while body.len() + len.to_string().len() != len {
                    len = body.len() + len.to_string().len();
                }
                let rec = format!("{len}{body}");
                let h = header_block(b"pax", b"", b'x', rec.len() as u64, 0o644, self.mtime);
                self.inner.write_all(&h)?;
                self.inner.write_all(rec.as_bytes())?;
                self.pad(rec.len() as u64)?;
                (&b""[..], &b"long-name"[..])
            }
        };
        let h = header_block(name, prefix, b'0', size, mode, self.mtime);
        self.inner.write_all(&h)
    }

    /// Writes entry data.
    pub fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    /// Pads the entry of `size` bytes to a block boundary.
    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.inner.write_all(&[0u8; BLOCK][..pad as usize])
    }

    /// Writes a whole small entry.
    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> io::Result<()> {
        self.header(path, data.len() as u64, mode)?;
        self.data(data)?;
        self.pad(data.len() as u64)
    }

    /// Writes the end-of-archive marker and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.inner)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write + io::Seek> TarWriter<W> {
    /// Writes an entry whose size is known only once `fill` has written
    /// its data (a layer decompressed on the way): a blank header, the data,
    /// the padding, then the header written over the blank with the size
    /// `fill` returns. `path` must fit a ustar header.
    pub fn entry_sized_after(
        &mut self,
        path: &str,
        mode: u32,
        fill: impl FnOnce(&mut W) -> io::Result<u64>,
    ) -> io::Result<u64> {
        let (prefix, name) = split_ustar(path.as_bytes()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: too long for a header written after its data"),
            )
        })?;
        let start = self.inner.stream_position()?;
        self.inner.write_all(&[0u8; BLOCK])?;
        let size = fill(&mut self.inner)?;
        if self.inner.stream_position()? != start + BLOCK as u64 + size {
            return Err(io::Error::other(format!(
                "{path}: the data written is not the {size} bytes said"
            )));
        }
        self.pad(size)?;
        let end = self.inner.stream_position()?;
        self.inner.seek(io::SeekFrom::Start(start))?;
        self.inner
            .write_all(&header_block(name, prefix, b'0', size, mode, self.mtime))?;
        self.inner.seek(io::SeekFrom::Start(end))?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entries = Vec<(Vec<u8>, Vec<u8>)>;

    #[test]
    fn an_entry_sized_after_its_data_reads_back_as_written() {
        let mut w = TarWriter::new(io::Cursor::new(Vec::new()), 7);
        w.file("a", b"first", 0o644).unwrap();
        let n = w
            .entry_sized_after("blobs/sha256/x", 0o644, |f| {
                f.write_all(&[9u8; 1000])?;
                Ok(1000)
            })
            .unwrap();
        assert_eq!(n, 1000);
        w.file("c", b"last", 0o600).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        // Byte for byte what a writer told the size first makes.
        let mut want = TarWriter::new(Vec::new(), 7);
        want.file("a", b"first", 0o644).unwrap();
        want.file("blobs/sha256/x", &[9u8; 1000], 0o644).unwrap();
        want.file("c", b"last", 0o600).unwrap();
        assert_eq!(bytes, want.finish().unwrap());
        // A fill that says another size than it wrote is an error.
        let mut w = TarWriter::new(io::Cursor::new(Vec::new()), 7);
        let e = w
            .entry_sized_after("x", 0o644, |f| f.write_all(b"abc").map(|()| 4))
            .unwrap_err();
        assert!(e.to_string().contains("not the 4 bytes said"), "{e}");
    }

    fn entries(data: &[u8]) -> Result<Entries, TarError> {
        let mut r = TarReader::new(data);
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        while let Some(h) = r.next_header()? {
            let mut d = Vec::new();
            r.read_data::<TarError>(h.size, &mut buf, |c| {
                d.extend_from_slice(c);
                Ok(())
            })?;
            out.push((h.path, d));
        }
        Ok(out)
    }

    #[test]
    fn round_trips_short_medium_and_long_paths() {
        let medium = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let long = format!("{}/x", "a/".repeat(300));
        let mut w = TarWriter::new(Vec::new(), 0);
        w.file("a.txt", b"hello", 0o644).unwrap();
        w.file(&medium, &[7u8; 1000], 0o755).unwrap();
        w.file(&long, b"", 0o644).unwrap();
        let data = w.finish().unwrap();
        let e = entries(&data).unwrap();
        assert_eq!(e[0], (b"a.txt".to_vec(), b"hello".to_vec()));
        assert_eq!(e[1].0, medium.as_bytes());
        assert_eq!(e[1].1.len(), 1000);
        assert_eq!(e[2].0, long.as_bytes());
        // GNU tar agrees (when installed, which scripts/install-deps.sh ensures).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tar");
        std::fs::write(&p, &data).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&p)
            .output()
            .unwrap();
        let listed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            vec!["a.txt", medium.as_str(), long.as_str()]
        );
    }

    #[test]
    fn gnu_tars_long_names_are_read_whole() {
        // GNU tar's own format writes a name over 100 bytes as a
        // `././@LongLink` entry before the file's header.
        let dir = tempfile::tempdir().unwrap();
        let long = format!("files/{}/{}.yml", "d".repeat(80), "n".repeat(60));
        let link = format!("files/{}", "t".repeat(120));
        std::fs::create_dir_all(dir.path().join(&long).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(&long), b"long").unwrap();
        std::fs::write(dir.path().join("short"), b"short").unwrap();
        std::os::unix::fs::symlink(&link, dir.path().join("ln")).unwrap();
        let out = std::process::Command::new("tar")
            .args(["--format=gnu", "-cf", "-", "-C"])
            .arg(dir.path())
            .args([&long, "short", "ln"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut r = TarReader::new(&out.stdout[..]);
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Some(h) = r.next_header().unwrap() {
            let mut d = Vec::new();
            r.read_data::<TarError>(h.size, &mut buf, |c| {
                d.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
            let kind = h.kind_name();
            got.push((String::from_utf8(h.path).unwrap(), kind, d, h.link));
        }
        let want = |p: &str, k, d: &[u8], l: &str| (p.to_owned(), k, d.to_vec(), l.into());
        assert_eq!(
            got,
            vec![
                want(&long, "regular file", b"long", ""),
                want("short", "regular file", b"short", ""),
                // The link keeps its kind, which the bundle reader refuses
                // naming its whole target.
                want("ln", "symlink", b"", &link),
            ]
        );
        // A long name larger than any path is refused, not buffered.
        let mut huge = header_block(b"././@LongLink", b"", b'L', MAX_PAX + 1, 0o644, 0).to_vec();
        huge.resize(huge.len() + 1024, b'a');
        let e = TarReader::new(&huge[..])
            .next_header()
            .unwrap_err()
            .to_string();
        assert!(e.contains("GNU long name of"), "{e}");
    }

    #[test]
    fn detects_truncation_checksum_and_trailing_data() {
        let mut w = TarWriter::new(Vec::new(), 0);
        w.file("a", &[1u8; 600], 0o644).unwrap();
        let data = w.finish().unwrap();
        assert!(matches!(entries(&data[..700]), Err(TarError::Truncated(_))));
        let mut bad = data.clone();
        bad[0] = b'b';
        assert!(matches!(entries(&bad), Err(TarError::BadHeader { .. })));
        let mut trailing = data.clone();
        trailing.extend_from_slice(b"garbage");
        assert!(matches!(entries(&trailing), Err(TarError::TrailingData(_))));
        let mut padded = data;
        padded.extend_from_slice(&[0u8; 4096]);
        assert_eq!(entries(&padded).unwrap().len(), 1);
    }

    #[test]
    fn big_sizes_use_base256() {
        let h = header_block(b"x", b"", b'0', 1 << 40, 0o644, 0);
        let mut r = TarReader::new(&h[..]);
        assert_eq!(r.next_header().unwrap().unwrap().size, 1 << 40);
    }

    #[test]
    fn pax_cannot_override_size() {
        let rec = b"15 size=999999\n";
        let mut data = header_block(b"pax", b"", b'x', rec.len() as u64, 0o644, 0).to_vec();
        data.extend_from_slice(rec);
        data.resize(1024, 0);
        data.extend_from_slice(&header_block(b"a", b"", b'0', 0, 0o644, 0));
        data.extend_from_slice(&[0u8; 1024]);
        let e = entries(&data).unwrap_err().to_string();
        assert!(e.contains("overrides size"), "{e}");
    }

    #[test]
    fn in_place_reads_see_exactly_the_entry_then_the_next_header() {
        let mut w = TarWriter::new(Vec::new(), 0);
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        w.file("a", &big, 0o644).unwrap();
        w.file("b", b"x", 0o644).unwrap();
        let data = w.finish().unwrap();
        // A buffer smaller than the entry, so the data comes in pieces.
        let mut r = TarReader::new(io::BufReader::with_capacity(64, &data[..]));
        let h = r.next_header().unwrap().unwrap();
        let (mut got, mut pieces) = (Vec::new(), 0);
        r.read_data_in_place::<TarError>(h.size, |c| {
            got.extend_from_slice(c);
            pieces += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(got, big);
        assert!(pieces > 1, "{pieces}");
        assert_eq!(r.position(), 512 + 1024, "past the data and its padding");
        let h = r.next_header().unwrap().unwrap();
        assert_eq!((h.path, h.size), (b"b".to_vec(), 1));

        // Cut inside the data: truncated, at the offset where it ran out.
        let mut r = TarReader::new(&data[..700]);
        let h = r.next_header().unwrap().unwrap();
        let e = r
            .read_data_in_place::<TarError>(h.size, |_| Ok(()))
            .unwrap_err();
        assert!(matches!(e, TarError::Truncated(700)), "{e}");

        // The callback's error stops the read and comes back as it is.
        let mut r = TarReader::new(io::BufReader::with_capacity(64, &data[..]));
        let h = r.next_header().unwrap().unwrap();
        let mut calls = 0;
        let e = r
            .read_data_in_place::<TarError>(h.size, |_| {
                calls += 1;
                Err(TarError::Truncated(42))
            })
            .unwrap_err();
        assert!(matches!(e, TarError::Truncated(42)), "{e}");
        assert_eq!(calls, 1);
    }

    #[test]
    fn entry_kinds_are_named_and_only_regular_files_are_files() {
        for (kind, name, file) in [
            (b'0', "regular file", true),
            (0, "regular file", true),
            (b'1', "hard link", false),
            (b'2', "symlink", false),
            (b'3', "character device", false),
            (b'4', "block device", false),
            (b'5', "directory", false),
            (b'6', "fifo", false),
            (b'7', "contiguous file", false),
            (b'g', "global PAX header", false),
            (b'S', "sparse file", false),
            (b'Z', "unknown entry type", false),
        ] {
            let h = Header {
                path: b"x".to_vec(),
                size: 0,
                kind,
                mode: 0o644,
                link: Vec::new(),
                offset: 0,
            };
            assert_eq!((h.kind_name(), h.is_file()), (name, file), "{kind}");
        }
    }

    #[test]
    fn ustar_splits_at_a_slash_within_both_field_sizes() {
        let path = |prefix: usize, name: usize| {
            format!("{}/{}", "p".repeat(prefix), "n".repeat(name)).into_bytes()
        };
        assert_eq!(split_ustar(b"short"), Some((&b""[..], &b"short"[..])));
        let fits = path(155, 100);
        let (p, n) = split_ustar(&fits).unwrap();
        assert_eq!((p.len(), n.len()), (155, 100));
        assert_eq!(split_ustar(&path(156, 10)), None, "prefix over 155");
        assert_eq!(split_ustar(&path(10, 101)), None, "name over 100");
        // A slash at the very end leaves no name.
        assert_eq!(
            split_ustar(format!("{}/", "p".repeat(120)).as_bytes()),
            None
        );
        // Of the slashes that fit, the last: the prefix as long as it may be.
        let two = format!("{}/{}/{}", "a".repeat(60), "b".repeat(60), "c".repeat(39));
        let (p, n) = split_ustar(two.as_bytes()).unwrap();
        assert_eq!((p.len(), n.len()), (121, 39));
        // Unless the prefix before it would be over 155: then an earlier one.
        let early = format!("{}/{}/{}", "a".repeat(100), "b".repeat(60), "c".repeat(10));
        let (p, n) = split_ustar(early.as_bytes()).unwrap();
        assert_eq!((p.len(), n.len()), (100, 71));
    }

    #[test]
    fn pax_records_are_read_strictly() {
        assert_eq!(
            parse_pax_path(b"11 path=ab\n").unwrap(),
            Some(b"ab".to_vec())
        );
        assert_eq!(
            parse_pax_path(b"11 mtime=1\n11 path=cd\n").unwrap(),
            Some(b"cd".to_vec())
        );
        assert_eq!(parse_pax_path(b"").unwrap(), None);
        for (rec, why) in [
            (&b"path=ab\n"[..], "PAX record without length"),
            (b"x2 path=ab\n", "PAX record length is not a number"),
            (b"2 path=ab\n", "PAX record length is wrong"),
            (b"3 path=ab\n", "PAX record length is wrong"),
            (b"13 path=ab\n", "PAX record length is wrong"),
            (b"11 path=abc", "PAX record length is wrong"),
            (b"10 pathab\n", "PAX record without '='"),
            (b"14 linkpath=x\n", "PAX record overrides size"),
        ] {
            let e = parse_pax_path(rec).unwrap_err();
            assert!(e.starts_with(why), "{}: {e}", String::from_utf8_lossy(rec));
        }
    }
}
