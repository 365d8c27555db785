//! A reader that runs its source on another thread, and the chunked
//! reading it shares with [`crate::frames`].
//!
//! Decompression and hashing are each about as fast as one core: run in
//! sequence they halve the speed of `verify`. [`ReadAhead`] moves the
//! decompressor to its own thread, which fills fixed-size chunks and hands
//! them over a bounded channel; the caller hashes and writes on its own.
//!
//! Memory is bounded: at most [`DEPTH`] + 2 chunks of [`CHUNK`] bytes exist
//! at once, and the thread runs at most [`DEPTH`] chunks ahead of the reader
//! (so a decompression bomb is still stopped by the caller's byte limit,
//! a few MiB late at most).

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;

/// Size of one chunk.
pub const CHUNK: usize = 1 << 20;
/// Chunks the thread may run ahead.
pub const DEPTH: usize = 4;

/// Reads `inner` on a thread; see the module docs.
pub type ReadAhead = Chunked<Filled>;

/// The chunks [`ReadAhead`]'s thread fills.
#[derive(Debug)]
pub struct Filled {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
}

impl ReadAhead {
    /// Starts the thread. It stops at the end of `inner`, at its first
    /// error, or when this reader is dropped.
    pub fn spawn<R: Read + Send + 'static>(inner: R) -> io::Result<Self> {
        let (full_tx, full) = mpsc::sync_channel(DEPTH);
        let (empty, empty_rx) = mpsc::sync_channel(DEPTH + 2);
        thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || fill(inner, &full_tx, &empty_rx))?;
        Ok(Chunked::new(Filled { full, empty }))
    }
}

impl Chunks for Filled {
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self.full.recv() {
            // An empty chunk marks the end.
            Ok(Ok(chunk)) if chunk.is_empty() => Ok(None),
            Ok(chunk) => chunk.map(Some),
            Err(_) => Err(io::Error::other("the read-ahead thread stopped")),
        }
    }
    fn recycle(&mut self, chunk: Vec<u8>) {
        // A full return queue only means the thread allocates anew.
        let _ = self.empty.try_send(chunk);
    }
}

fn fill<R: Read>(mut inner: R, full: &SyncSender<io::Result<Vec<u8>>>, empty: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = match empty.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => Vec::with_capacity(CHUNK),
            Err(TryRecvError::Disconnected) => return,
        };
        buf.resize(CHUNK, 0);
        let mut n = 0;
        let result = loop {
            if n == CHUNK {
                break Ok(());
            }
            match inner.read(&mut buf[n..]) {
                Ok(0) => break Ok(()),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(n);
        let end = n == 0;
        if n > 0 && full.send(Ok(buf)).is_err() {
            return;
        }
        if let Err(e) = result {
            let _ = full.send(Err(e));
            return;
        }
        if end {
            // An empty chunk marks the end.
            let _ = full.send(Ok(Vec::new()));
            return;
        }
    }
}

/// Where a [`Chunked`] reader gets its chunks.
pub trait Chunks {
    /// The next chunk (it may be empty), or `None` at the end.
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>>;
    /// Takes back a chunk that has been read, for reuse.
    fn recycle(&mut self, chunk: Vec<u8>);
}

/// Reads a run of chunks as one stream, handing out the chunks themselves
/// through [`io::BufRead`]: a consumer that takes a `BufRead` (a
/// decompressor, the tar reader) reads them without another copy.
pub struct Chunked<S> {
    source: S,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<S> std::fmt::Debug for Chunked<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunked")
            .field("source", &std::any::type_name::<S>())
            .field("done", &self.done)
            .finish()
    }
}

impl<S: Chunks> Chunked<S> {
    /// Reads the chunks of `source`.
    pub fn new(source: S) -> Self {
        Chunked {
            source,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Makes the next chunk current once this one is used up; false at the
    /// end. After an error, the stream stays ended.
    fn refill(&mut self) -> io::Result<bool> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(false);
            }
            let Some(next) = self.source.next_chunk().inspect_err(|_| self.done = true)? else {
                self.done = true;
                return Ok(false);
            };
            let old = std::mem::replace(&mut self.current, next);
            self.pos = 0;
            self.source.recycle(old);
        }
        Ok(true)
    }
}

impl<S: Chunks> Read for Chunked<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.refill()? {
            return Ok(0);
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<S: Chunks> io::BufRead for Chunked<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if !self.refill()? {
            return Ok(&[]);
        }
        Ok(&self.current[self.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.current.len());
    }
}

/// Buffers handed back for reuse across threads, at most `cap` kept.
#[derive(Debug)]
pub struct Pool {
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
    cap: usize,
}

impl Pool {
    /// An empty pool that keeps at most `cap` buffers.
    pub fn new(cap: usize) -> Self {
        Pool {
            buffers: std::sync::Mutex::new(Vec::new()),
            cap,
        }
    }
    /// A buffer from the pool (empty, with its capacity), or a new one.
    pub fn take(&self) -> Vec<u8> {
        self.buffers.lock().expect("pool").pop().unwrap_or_default()
    }
    /// Returns a buffer; it is dropped if the pool is full.
    pub fn give(&self, mut v: Vec<u8>) {
        let mut p = self.buffers.lock().expect("pool");
        if p.len() < self.cap {
            v.clear();
            p.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `len` bytes of a counter pattern in odd-sized reads, then
    /// optionally an error.
    struct Source {
        len: usize,
        at: usize,
        fail: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.len {
                return if self.fail {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(self.len - self.at).min(77_777);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = ((self.at + i) % 251) as u8;
            }
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn passes_every_byte_in_order_across_chunks() {
        let len = 3 * CHUNK + 12_345;
        let mut r = ReadAhead::spawn(Source {
            len,
            at: 0,
            fail: false,
        })
        .unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), len);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        // The end stays the end.
        assert_eq!(r.read(&mut [0u8; 10]).unwrap(), 0);
    }

    #[test]
    fn hands_over_the_data_then_the_source_error() {
        let mut r = ReadAhead::spawn(Source {
            len: CHUNK + 5,
            at: 0,
            fail: true,
        })
        .unwrap();
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "bad frame");
        assert_eq!(got.len(), CHUNK + 5);
    }

    #[test]
    fn buf_read_hands_out_every_byte_in_order() {
        use std::io::BufRead;
        let len = 2 * CHUNK + 999;
        let mut r = ReadAhead::spawn(Source {
            len,
            at: 0,
            fail: false,
        })
        .unwrap();
        let mut got = Vec::new();
        loop {
            let b = r.fill_buf().unwrap();
            if b.is_empty() {
                break;
            }
            // Take a part of what is offered, as a decoder would.
            let take = b.len().min(300_001);
            got.extend_from_slice(&b[..take]);
            r.consume(take);
        }
        assert_eq!(got.len(), len);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }

    #[test]
    fn an_empty_source_reads_as_empty() {
        let mut r = ReadAhead::spawn(io::empty()).unwrap();
        let mut got = Vec::new();
        assert_eq!(r.read_to_end(&mut got).unwrap(), 0);
    }

    #[test]
    fn dropping_the_reader_stops_the_thread() {
        // An endless source: the thread must notice the reader is gone.
        let (tx, rx) = mpsc::channel::<()>();
        struct Endless(mpsc::Sender<()>);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                Ok(buf.len())
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let mut r = ReadAhead::spawn(Endless(tx)).unwrap();
        r.read_exact(&mut [0u8; 100]).unwrap();
        drop(r);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the source was dropped, so the thread ended");
    }
}
