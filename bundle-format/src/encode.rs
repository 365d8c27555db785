//! Writing a bundle's compressed stream (feature `write`: the bundler's
//! side; the installer only reads, through [`crate::frames`]).
//!
//! 1. [`Encoder`]: zstd frames or gzip over any writer, at the level a blob
//!    wants ([`PRECOMPRESSED_LEVEL`] for layers compressed already).
//! 2. [`FrameEncoder`]: zstd as independent frames, compressed by a pool of
//!    workers.
//!
//! The tar stream is cut into frames of [`ZSTD_FRAME`] bytes (a level change
//! ends a frame early), each frame is compressed on its own by one of the
//! workers, and the frames are written in order. Against one long frame this
//! costs about 0.2% of size and buys three things:
//! - the installer decompresses several frames at once, so verifying is no
//!   longer bound by one core's decoding;
//! - no copy of the input into zstd's job buffers, and no re-indexing of an
//!   overlap between jobs;
//! - the same bytes whatever the number of workers.
//!
//! Memory is bounded: at most `workers + 2` frames are in flight, each with
//! its input and its output.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crate::bundle::Compression;
use crate::readahead::Pool;
use manifest_schema::layout::ZSTD_FRAME;
use zstd::zstd_safe::{self, CCtx, CParameter};

/// Largest single write to the output.
const WRITE: usize = 256 << 10;

/// A compressed frame, and the input buffer back for reuse.
type Done = io::Result<(Vec<u8>, Vec<u8>)>;

struct Job {
    level: i32,
    input: Vec<u8>,
    done: SyncSender<Done>,
}

/// Writes zstd frames to `W`; see the module docs.
pub struct FrameEncoder<W: Write> {
    out: W,
    level: i32,
    current: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    pending: VecDeque<Receiver<Done>>,
    in_flight: usize,
    spare_inputs: Vec<Vec<u8>>,
    spare_outputs: Arc<Pool>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> std::fmt::Debug for FrameEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("level", &self.level)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl<W: Write> FrameEncoder<W> {
    /// Starts `workers` threads (at least one) compressing at `level`.
    pub fn new(out: W, level: i32, workers: usize) -> io::Result<Self> {
        let workers = workers.max(1);
        let (jobs, rx) = mpsc::sync_channel::<Job>(workers);
        let rx = Arc::new(Mutex::new(rx));
        let spare_outputs = Arc::new(Pool::new(workers + 2));
        let handles = (0..workers)
            .map(|i| {
                let rx = Arc::clone(&rx);
                let spare = Arc::clone(&spare_outputs);
                thread::Builder::new()
                    .name(format!("zstd-{i}"))
                    .spawn(move || work(&rx, &spare))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(FrameEncoder {
            out,
            level,
            current: Vec::with_capacity(ZSTD_FRAME),
            jobs: Some(jobs),
            pending: VecDeque::new(),
            in_flight: workers + 2,
            spare_inputs: Vec::new(),
            spare_outputs,
            workers: handles,
        })
    }

    /// Compresses what follows at `level`; the frame so far keeps its own.
    pub fn set_level(&mut self, level: i32) -> io::Result<()> {
        if level != self.level {
            self.submit()?;
            self.level = level;
        }
        Ok(())
    }

    /// Ends the last frame, writes everything, stops the workers and hands
    /// back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit()?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None;
        for h in self.workers.drain(..) {
            h.join()
                .map_err(|_| io::Error::other("a zstd worker panicked"))?;
        }
        Ok(self.out)
    }

    /// Hands the current frame to the workers (if it holds anything).
    fn submit(&mut self) -> io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        while self.pending.len() >= self.in_flight {
            self.write_oldest()?;
        }
        let next = self
            .spare_inputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(ZSTD_FRAME));
        let input = std::mem::replace(&mut self.current, next);
        let (done, rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(Job {
            level: self.level,
            input,
            done,
        })
        .map_err(|_| io::Error::other("the zstd workers stopped"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Waits for the oldest frame and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let (frame, mut input) = rx
            .recv()
            .map_err(|_| io::Error::other("a zstd worker stopped"))??;
        // In pieces: one 4 MiB write() made the kernel's copy into the page
        // cache several times slower here (large folios, fresh memory).
        for piece in frame.chunks(WRITE) {
            self.out.write_all(piece)?;
        }
        input.clear();
        self.spare_inputs.push(input);
        self.spare_outputs.give(frame);
        Ok(())
    }
}

impl<W: Write> Write for FrameEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(ZSTD_FRAME - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == ZSTD_FRAME {
            self.submit()?;
        }
        Ok(n)
    }
    /// Frames are written whole: this flushes only what is written already.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, spare: &Pool) {
    let mut cctx = CCtx::create();
    loop {
        let job = match jobs.lock().expect("queue").recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let mut out = spare.take();
        out.reserve(zstd_safe::compress_bound(job.input.len()));
        let r = compress(&mut cctx, job.level, &job.input, &mut out);
        let _ = job.done.send(r.map(|()| (out, job.input)));
    }
}

fn compress(cctx: &mut CCtx<'_>, level: i32, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let z = |code: usize| io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)));
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(z)?;
    cctx.set_parameter(CParameter::ChecksumFlag(true))
        .map_err(z)?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(z)?;
    cctx.compress2(out, input).map_err(z)?;
    Ok(())
}

/// zstd level unless `--level` says otherwise.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// zstd level for blobs compressed already (gzip or zstd layers).
pub const PRECOMPRESSED_LEVEL: i32 = -1;

/// True for a layer media type that is compressed already
/// (`…tar+gzip`, `…tar.gzip`, `…tar+zstd`).
pub fn is_precompressed(media_type: &str) -> bool {
    crate::oci::LayerCompression::of(media_type).is_some()
}

/// zstd, gzip or nothing over a writer.
pub enum Encoder<W: Write> {
    /// zstd, as independent frames ([`FrameEncoder`]).
    Zstd(FrameEncoder<W>),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// The tar as it is.
    Plain(W),
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Zstd(_) => "Encoder(zstd)",
            Encoder::Gzip(_) => "Encoder(gzip)",
            Encoder::Plain(_) => "Encoder(none)",
        })
    }
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `w`.
    pub fn new(w: W, c: Compression, level: Option<i32>, threads: u32) -> io::Result<Self> {
        Ok(match c {
            Compression::Zstd => {
                let workers = if threads == 0 {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                } else {
                    threads as usize
                };
                Encoder::Zstd(FrameEncoder::new(
                    w,
                    level.unwrap_or(DEFAULT_ZSTD_LEVEL),
                    workers,
                )?)
            }
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(w, flate2::Compression::new(level.unwrap_or(6) as u32)),
            ),
            Compression::None => Encoder::Plain(w),
        })
    }

    /// Changes the zstd level from the next frame on (gzip keeps its
    /// level). Output stays deterministic: the change happens at the
    /// same byte whatever the number of workers.
    pub fn set_level(&mut self, level: i32) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.set_level(level),
            Encoder::Gzip(_) | Encoder::Plain(_) => Ok(()),
        }
    }

    /// Ends the stream and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half text-like (compressible), half noise.
                if (i / 100_000) % 2 == 0 {
                    b"abcdefgh"[(x % 8) as usize]
                } else {
                    x as u8
                }
            })
            .collect()
    }

    fn encode(data: &[u8], workers: usize, writes: usize) -> Vec<u8> {
        let mut e = FrameEncoder::new(Vec::new(), 3, workers).unwrap();
        for (i, c) in data.chunks(writes).enumerate() {
            if i == 3 {
                e.set_level(-1).unwrap();
            }
            e.write_all(c).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn frames_decode_to_the_input_and_do_not_depend_on_the_workers() {
        let data = sample(3 * ZSTD_FRAME + 12345);
        let one = encode(&data, 1, 1 << 20);
        let three = encode(&data, 3, 1 << 20);
        assert_eq!(one, three);
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
        // Independent frames, each declaring its size: frame by frame.
        let mut rest = &one[..];
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let n = zstd_safe::find_frame_compressed_size(rest).unwrap();
            sizes.push(
                zstd_safe::get_frame_content_size(&rest[..n])
                    .unwrap()
                    .unwrap(),
            );
            rest = &rest[n..];
        }
        // The level change after 3 MiB ends the first frame early.
        assert_eq!(sizes[0], 3 << 20);
        assert!(sizes.iter().all(|s| *s <= ZSTD_FRAME as u64));
        assert_eq!(sizes.iter().sum::<u64>(), data.len() as u64);
    }

    #[test]
    fn an_empty_stream_is_empty() {
        assert!(encode(&[], 2, 10).is_empty());
    }
}
