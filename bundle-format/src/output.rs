//! Where the archive bytes go (feature `write`): one file, or parts of at
//! most N bytes for removable media, each hashed as it is written (the
//! bundle is written once, never re-read to hash or split it); and
//! [`HashBehind`], which hashes blobs on a thread of its own.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use manifest_schema::Digest;
use sha2::{Digest as _, Sha256};

/// Counts, and optionally hashes, what passes through.
#[derive(Debug)]
pub struct Hashing<W> {
    inner: W,
    hasher: Option<Sha256>,
    len: u64,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`, counting and hashing.
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Some(Sha256::new()),
            len: 0,
        }
    }
    /// Wraps `inner`, only counting.
    pub fn counting(inner: W) -> Self {
        Hashing {
            inner,
            hasher: None,
            len: 0,
        }
    }
    /// Returns the inner writer, the byte count and the sha256 (if hashed).
    pub fn finish(self) -> (W, u64, Option<Digest>) {
        (
            self.inner,
            self.len,
            self.hasher
                .map(|h| Digest::from_sha256_bytes(&h.finalize().into())),
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How much is written between two background `fdatasync`s.
const SYNC_EVERY: u64 = 64 << 20;

/// A file flushed to disk while it is written: every `SYNC_EVERY` bytes a
/// helper thread `fdatasync`s what is there so far, so the final sync waits
/// for the last stretch, not for the whole bundle. (With plenty of RAM the
/// kernel would otherwise keep gigabytes dirty until that final sync: 0.6 s
/// of a 3.7 s build here, with the CPUs idle.) Just as durable: [`finish`]
/// still syncs everything before the file is renamed into place.
///
/// [`finish`]: SyncBehind::finish
#[derive(Debug)]
pub struct SyncBehind {
    file: File,
    every: u64,
    since_sync: u64,
    kick: Option<SyncSender<()>>,
    worker: Option<JoinHandle<io::Result<u64>>>,
}

impl SyncBehind {
    /// Starts the helper for `file`.
    pub fn new(file: File) -> io::Result<Self> {
        Self::every(file, SYNC_EVERY)
    }

    fn every(file: File, every: u64) -> io::Result<Self> {
        let clone = file.try_clone()?;
        // One pending request at most: kicks while a sync runs coalesce.
        let (kick, rx) = mpsc::sync_channel::<()>(1);
        let worker = std::thread::Builder::new()
            .name("sync-behind".into())
            .spawn(move || {
                let mut syncs = 0;
                while rx.recv().is_ok() {
                    clone.sync_data()?;
                    syncs += 1;
                }
                Ok(syncs)
            })?;
        Ok(SyncBehind {
            file,
            every,
            since_sync: 0,
            kick: Some(kick),
            worker: Some(worker),
        })
    }

    /// Stops the helper (reporting its error, if a sync failed) and syncs
    /// the whole file, data and metadata.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()?;
        self.file.sync_all()
    }

    /// Ends the helper; how many background syncs it ran.
    fn stop(&mut self) -> io::Result<u64> {
        drop(self.kick.take());
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the sync-behind thread panicked")),
            None => Ok(0),
        }
    }
}

impl Write for SyncBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since_sync += n as u64;
        if self.since_sync >= self.every {
            self.since_sync = 0;
            if let Some(k) = &self.kick {
                // Full: a sync is already asked for and will cover this.
                let _ = k.try_send(());
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SyncBehind {
    fn drop(&mut self) {
        // An abandoned output (a failed build): end the helper, ignore it.
        let _ = self.stop();
    }
}

/// A finished part, still under its temp name.
#[derive(Debug)]
pub struct WrittenPart {
    /// The temp file.
    pub tmp: tempfile::NamedTempFile,
    /// Size.
    pub size: u64,
    /// sha256.
    pub sha256: Digest,
}

/// Writes consecutive parts of at most `part_size` bytes into `dir`.
#[derive(Debug)]
pub struct PartWriter {
    dir: PathBuf,
    part_size: u64,
    current: Option<(tempfile::NamedTempFile, Hashing<BufWriter<SyncBehind>>)>,
    done: Vec<WrittenPart>,
}

impl PartWriter {
    /// Starts writing parts into `dir`.
    pub fn new(dir: &Path, part_size: u64) -> Self {
        PartWriter {
            dir: dir.to_owned(),
            part_size,
            current: None,
            done: Vec::new(),
        }
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((tmp, w)) = self.current.take() {
            let (bw, size, sha256) = w.finish();
            let sha256 = sha256.expect("parts are hashed");
            bw.into_inner().map_err(|e| e.into_error())?.finish()?;
            self.done.push(WrittenPart { tmp, size, sha256 });
        }
        Ok(())
    }

    /// Ends the last part and returns all of them, in order.
    pub fn finish(mut self) -> io::Result<Vec<WrittenPart>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.done))
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self
            .current
            .as_ref()
            .is_some_and(|(_, w)| w.len >= self.part_size)
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let tmp = tempfile::Builder::new()
                .prefix(".bundler-part-")
                .tempfile_in(&self.dir)?;
            let f = SyncBehind::new(tmp.as_file().try_clone()?)?;
            self.current = Some((tmp, Hashing::new(BufWriter::with_capacity(1 << 20, f))));
        }
        let (_, w) = self.current.as_mut().expect("opened above");
        let room = (self.part_size - w.len) as usize;
        w.write(&buf[..buf.len().min(room)])
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((_, w)) => w.flush(),
            None => Ok(()),
        }
    }
}

/// The bundle's destination.
#[derive(Debug)]
pub enum Output {
    /// One file, written under a temp name then renamed.
    Single(tempfile::NamedTempFile, BufWriter<SyncBehind>),
    /// Parts.
    Split(PartWriter),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Single(_, w) => w.write(buf),
            Output::Split(p) => p.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Single(_, w) => w.flush(),
            Output::Split(p) => p.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_behind_passes_every_byte_while_it_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut w = SyncBehind::every(File::create(&path).unwrap(), 64 << 10).unwrap();
        for piece in data.chunks(10_007) {
            w.write_all(piece).unwrap();
        }
        let syncs = w.stop().unwrap();
        assert!(syncs > 0, "no background sync ran");
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn parts_are_at_most_the_size_and_concatenate_to_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = PartWriter::new(dir.path(), 1000);
        let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(333) {
            p.write_all(chunk).unwrap();
        }
        let parts = p.finish().unwrap();
        assert_eq!(
            parts.iter().map(|x| x.size).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|x| std::fs::read(x.tmp.path()).unwrap())
            .collect();
        assert_eq!(joined, data);
    }
}

/// Chunks in flight between the archiving thread and the hashing thread.
const HASH_DEPTH: usize = 4;

enum HashMsg {
    Chunk(Vec<u8>),
    End,
}

/// Hashes the blobs on a thread of its own while the caller archives them:
/// the caller hands over each chunk after it has written it, and gets the
/// buffer back to read the next one into. The digests come back in order
/// from [`HashBehind::finish`].
#[derive(Debug)]
pub struct HashBehind {
    tx: Option<SyncSender<HashMsg>>,
    pool: Receiver<Vec<u8>>,
    allocated: usize,
    chunk: usize,
    handle: Option<JoinHandle<Vec<Digest>>>,
}

impl std::fmt::Debug for HashMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashMsg::Chunk(c) => write!(f, "Chunk({})", c.len()),
            HashMsg::End => f.write_str("End"),
        }
    }
}

impl HashBehind {
    /// Starts the thread; buffers are `chunk` bytes.
    pub fn spawn(chunk: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<HashMsg>(HASH_DEPTH);
        let (back, pool) = mpsc::sync_channel::<Vec<u8>>(HASH_DEPTH + 1);
        let handle = std::thread::Builder::new()
            .name("hash".into())
            .spawn(move || {
                let mut digests = Vec::new();
                let mut h = Sha256::new();
                for m in rx {
                    match m {
                        HashMsg::Chunk(c) => {
                            h.update(&c);
                            let _ = back.try_send(c);
                        }
                        HashMsg::End => {
                            let done = std::mem::take(&mut h);
                            digests.push(Digest::from_sha256_bytes(&done.finalize().into()));
                        }
                    }
                }
                digests
            })?;
        Ok(HashBehind {
            tx: Some(tx),
            pool,
            allocated: 0,
            chunk,
            handle: Some(handle),
        })
    }

    /// An empty buffer to read the next chunk into.
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut b = match self.pool.try_recv() {
            Ok(b) => b,
            Err(_) if self.allocated < HASH_DEPTH + 1 => {
                self.allocated += 1;
                Vec::new()
            }
            Err(_) => self.pool.recv().unwrap_or_default(),
        };
        b.resize(self.chunk, 0);
        b
    }

    /// Hashes `chunk` (already written by the caller) into the current blob.
    pub fn hash(&mut self, chunk: Vec<u8>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(HashMsg::Chunk(chunk));
        }
    }

    /// Ends the current blob.
    pub fn end_blob(&mut self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(HashMsg::End);
        }
    }

    /// Waits for the thread; the digest of every ended blob, in order.
    pub fn finish(mut self) -> Vec<Digest> {
        self.tx.take();
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}
