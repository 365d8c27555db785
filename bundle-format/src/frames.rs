//! Decompressing a bundle's zstd frames on every core.
//!
//! The bundler writes independent frames that each declare their content
//! size (at most [`ZSTD_FRAME_MAX`]). One thread reads the raw stream
//! straight into frame buffers, cutting it by the block headers without
//! decoding; workers decompress whole frames straight into buffers of the
//! declared size; the reader hands the frames out in order. Verifying is
//! then bound by hashing, not by one core's decoding.
//!
//! Memory is bounded: at most [`DEPTH`] + 2 frames are in flight, each at
//! most [`ZSTD_FRAME_MAX`] decompressed and [`MAX_COMPRESSED`] compressed.
//! Anything that is not such a frame (trailing bytes, a skippable frame, a
//! frame without a declared size or over the limit, a dictionary) is an
//! `InvalidData` error naming its offset; an early end is `UnexpectedEof`.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use manifest_schema::layout::ZSTD_FRAME_MAX;
use zstd::zstd_safe::{self, DCtx};

use crate::bundle::ZSTD_MAGIC;
use crate::readahead::{Chunked, Chunks, Pool};

/// Frames decompressed ahead of the reader.
pub const DEPTH: usize = 4;
/// Largest compressed frame accepted: a frame never needs much more than
/// its content (raw blocks plus 3-byte block headers).
pub const MAX_COMPRESSED: usize = ZSTD_FRAME_MAX + (64 << 10);
/// Largest block content (zstd's Block_Maximum_Size).
const MAX_BLOCK: usize = 128 << 10;

/// What a frame header says, as far as this reader cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Declared content size, if any.
    pub content_size: Option<u64>,
    /// The frame ends with a 4-byte checksum.
    pub checksum: bool,
    /// The frame needs a dictionary.
    pub dictionary: bool,
}

/// Length of the zstd frame header at the start of `b`, which its first 5
/// bytes tell: `Ok(None)` when `b` is shorter, an error when it is not a
/// zstd frame header.
fn header_len(b: &[u8]) -> Result<Option<usize>, String> {
    if b.len() < 5 {
        return Ok(None);
    }
    if b[..4] != ZSTD_MAGIC {
        return Err(format!(
            "not a zstd frame (first bytes {})",
            manifest_schema::digest::hex(&b[..4])
        ));
    }
    let fhd = b[4];
    if fhd & 0x08 != 0 {
        return Err("zstd frame header has its reserved bit set".into());
    }
    let (window, dict, fcs) = fields(fhd);
    Ok(Some(5 + window + dict + fcs))
}

/// Bytes of the window descriptor, dictionary ID and content size fields
/// that the frame header descriptor `fhd` announces.
fn fields(fhd: u8) -> (usize, usize, usize) {
    let single_segment = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    (
        usize::from(!single_segment),
        [0, 1, 2, 4][usize::from(fhd & 0x03)],
        fcs,
    )
}

/// Parses a zstd frame header at the start of `b`: `Ok(None)` when `b` is
/// too short to tell, an error when it is not a zstd frame header.
pub fn parse_header(b: &[u8]) -> Result<Option<Header>, String> {
    let Some(len) = header_len(b)? else {
        return Ok(None);
    };
    if b.len() < len {
        return Ok(None);
    }
    let fhd = b[4];
    let (window, dict_len, fcs_len) = fields(fhd);
    let dict_at = 5 + window;
    let dictionary = b[dict_at..dict_at + dict_len].iter().any(|x| *x != 0);
    let mut v = [0u8; 8];
    v[..fcs_len].copy_from_slice(&b[dict_at + dict_len..len]);
    let n = u64::from_le_bytes(v);
    Ok(Some(Header {
        content_size: match fcs_len {
            0 => None,
            2 => Some(n + 256),
            _ => Some(n),
        },
        checksum: fhd & 0x04 != 0,
        dictionary,
    }))
}

/// True when a stream starting with `head` is read frame by frame: its
/// first frame declares a content size within [`ZSTD_FRAME_MAX`].
pub fn is_framed(head: &[u8]) -> bool {
    matches!(
        parse_header(head),
        Ok(Some(Header { content_size: Some(n), dictionary: false, .. })) if n <= ZSTD_FRAME_MAX as u64
    )
}

/// A decompressed frame, or why there is none.
type Frame = io::Result<Vec<u8>>;

struct Job {
    offset: u64,
    size: usize,
    frame: Vec<u8>,
    done: SyncSender<Frame>,
}

/// The decompressed stream, in order; see the module docs.
pub type FrameReader = Chunked<Ordered>;

/// The frames in stream order, each as its worker finishes it.
#[derive(Debug)]
pub struct Ordered {
    ordered: Receiver<Option<Receiver<Frame>>>,
    decoded: Arc<Pool>,
}

impl FrameReader {
    /// Starts the splitting thread over `raw` and `workers` decompressing
    /// threads (at least one). They stop at the end, at the first error, or
    /// when this reader is dropped.
    pub fn spawn<R: Read + Send + 'static>(raw: R, workers: usize) -> io::Result<Self> {
        let (ordered_tx, ordered) = mpsc::sync_channel(DEPTH);
        let (jobs_tx, jobs) = mpsc::sync_channel::<Job>(1);
        let jobs = Arc::new(Mutex::new(jobs));
        let decoded = Arc::new(Pool::new(DEPTH + 2));
        let compressed = Arc::new(Pool::new(DEPTH + 2));
        for i in 0..workers.max(1) {
            let jobs = Arc::clone(&jobs);
            let decoded = Arc::clone(&decoded);
            let compressed = Arc::clone(&compressed);
            thread::Builder::new()
                .name(format!("unzstd-{i}"))
                .spawn(move || decompress(&jobs, &decoded, &compressed))?;
        }
        thread::Builder::new()
            .name("frames".into())
            .spawn(move || split(raw, &ordered_tx, &jobs_tx, &compressed))?;
        Ok(Chunked::new(Ordered { ordered, decoded }))
    }
}

impl Chunks for Ordered {
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let stopped = || io::Error::other("the zstd frame reader stopped");
        match self.ordered.recv() {
            Ok(Some(rx)) => rx.recv().map_err(|_| stopped())?.map(Some),
            Ok(None) => Ok(None),
            Err(_) => Err(stopped()),
        }
    }
    fn recycle(&mut self, frame: Vec<u8>) {
        self.decoded.give(frame);
    }
}

fn invalid(offset: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("compressed byte {offset}: {what}"),
    )
}

/// Appends exactly `n` bytes of `raw` to `frame` (read straight into it).
fn take<R: Read>(raw: &mut R, frame: &mut Vec<u8>, n: usize, start: u64) -> io::Result<()> {
    let at = frame.len();
    frame.resize(at + n, 0);
    raw.read_exact(&mut frame[at..]).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the compressed stream ends inside the zstd frame at byte {start} (incomplete file)"
                ),
            )
        } else {
            e
        }
    })
}

/// Reads one whole frame into `frame`; `Ok(None)` at a clean end.
fn next_frame<R: Read>(raw: &mut R, frame: &mut Vec<u8>, offset: u64) -> io::Result<Option<usize>> {
    frame.clear();
    // The header: magic and descriptor first, then as much as they say.
    frame.resize(5, 0);
    let mut got = 0;
    while got < 5 {
        match raw.read(&mut frame[got..5]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(invalid(offset, "a few bytes after the last zstd frame")),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = header_len(frame)
        .map_err(|e| invalid(offset, e))?
        .expect("5 bytes tell the header's length");
    take(raw, frame, len - 5, offset)?;
    let header = parse_header(frame)
        .map_err(|e| invalid(offset, e))?
        .expect("the whole header is read");
    if header.dictionary {
        return Err(invalid(offset, "the zstd frame needs a dictionary"));
    }
    let size = match header.content_size {
        Some(n) if n <= ZSTD_FRAME_MAX as u64 => n as usize,
        Some(n) => {
            return Err(invalid(
                offset,
                format!("the zstd frame declares {n} bytes, over the limit of {ZSTD_FRAME_MAX}"),
            ))
        }
        None => {
            return Err(invalid(
                offset,
                "the zstd frame declares no content size (the bundle was not written by `bundler build`)",
            ))
        }
    };
    // Each block's content is read together with what follows it (the
    // next block's header, or the checksum): one read per block.
    let mut at = frame.len();
    take(raw, frame, 3, offset)?;
    loop {
        let h =
            u32::from(frame[at]) | u32::from(frame[at + 1]) << 8 | u32::from(frame[at + 2]) << 16;
        let last = h & 1 == 1;
        let block = (h >> 3) as usize;
        let on_disk = match (h >> 1) & 3 {
            0 | 2 => block,
            1 => 1,
            _ => return Err(invalid(offset, "a zstd block of the reserved type")),
        };
        if block > MAX_BLOCK {
            return Err(invalid(offset, "a zstd block over 128 KiB"));
        }
        if frame.len() + on_disk > MAX_COMPRESSED {
            return Err(invalid(
                offset,
                format!("the zstd frame is over {MAX_COMPRESSED} bytes compressed"),
            ));
        }
        if last {
            let tail = if header.checksum { 4 } else { 0 };
            take(raw, frame, on_disk + tail, offset)?;
            break;
        }
        at = frame.len() + on_disk;
        take(raw, frame, on_disk + 3, offset)?;
    }
    Ok(Some(size))
}

fn split<R: Read>(
    mut raw: R,
    ordered: &SyncSender<Option<Receiver<Frame>>>,
    jobs: &SyncSender<Job>,
    compressed: &Pool,
) {
    let mut offset = 0u64;
    loop {
        let mut frame = compressed.take();
        frame.reserve(MAX_COMPRESSED);
        let (done, rx) = mpsc::sync_channel(1);
        match next_frame(&mut raw, &mut frame, offset) {
            Ok(None) => {
                let _ = ordered.send(None);
                return;
            }
            Ok(Some(size)) => {
                if ordered.send(Some(rx)).is_err() {
                    return;
                }
                let len = frame.len() as u64;
                let job = Job {
                    offset,
                    size,
                    frame,
                    done,
                };
                if jobs.send(job).is_err() {
                    return;
                }
                offset += len;
            }
            Err(e) => {
                let _ = done.send(Err(e));
                let _ = ordered.send(Some(rx));
                return;
            }
        }
    }
}

fn decompress(jobs: &Mutex<Receiver<Job>>, decoded: &Pool, compressed: &Pool) {
    let mut dctx = DCtx::create();
    loop {
        let job = match jobs.lock().expect("queue").recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let mut out = decoded.take();
        out.reserve(job.size);
        let r = match dctx.decompress(&mut out, &job.frame) {
            Ok(n) if n == job.size => Ok(out),
            Ok(n) => Err(invalid(
                job.offset,
                format!(
                    "the zstd frame holds {n} bytes, its header says {}",
                    job.size
                ),
            )),
            Err(code) => Err(invalid(
                job.offset,
                format!("zstd: {}", zstd_safe::get_error_name(code)),
            )),
        };
        compressed.give(job.frame);
        let _ = job.done.send(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(data: &[u8], size: usize) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.include_checksum(true).unwrap();
        c.include_contentsize(true).unwrap();
        data.chunks(size)
            .flat_map(|p| c.compress(p).unwrap())
            .collect()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 / 3 % 251) as u8).collect()
    }

    fn read_all(b: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut r = FrameReader::spawn(io::Cursor::new(b), 2)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn frames_come_out_in_order() {
        let d = data(5 * 1_000_000 + 17);
        assert_eq!(read_all(frames(&d, 300_000)).unwrap(), d);
        assert!(read_all(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn the_first_header_decides_how_a_stream_is_read() {
        let d = data(1000);
        assert!(is_framed(&frames(&d, 1000)));
        // A streamed frame declares no size.
        assert!(!is_framed(&zstd::encode_all(&d[..], 3).unwrap()));
        assert!(!is_framed(&frames(
            &data(ZSTD_FRAME_MAX + 1),
            ZSTD_FRAME_MAX + 1
        )));
        assert!(!is_framed(b"\x28\xb5"));
    }

    #[test]
    fn damage_is_an_error_naming_the_offset() {
        let d = data(3_000_000);
        let good = frames(&d, 1_000_000);
        let second = zstd_safe::find_frame_compressed_size(&good).unwrap() as u64;

        let mut b = good.clone();
        b.truncate(good.len() - 10);
        let e = read_all(b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");

        let mut b = good.clone();
        b.extend_from_slice(b"trailing");
        let e = read_all(b).unwrap_err().to_string();
        assert!(
            e.contains(&format!("compressed byte {}: not a zstd frame", good.len())),
            "{e}"
        );

        let mut b = good.clone();
        let k = second as usize + 40;
        b[k] ^= 0x55;
        let e = read_all(b).unwrap_err().to_string();
        assert!(e.starts_with(&format!("compressed byte {second}:")), "{e}");

        let mut b = frames(&d[..1000], 1000);
        b.extend(zstd::encode_all(&d[..1000], 3).unwrap());
        let e = read_all(b).unwrap_err().to_string();
        assert!(e.contains("declares no content size"), "{e}");

        let mut b = frames(&d[..1000], 1000);
        b.extend(frames(&data(ZSTD_FRAME_MAX + 1), ZSTD_FRAME_MAX + 1));
        let e = read_all(b).unwrap_err().to_string();
        assert!(e.contains("over the limit"), "{e}");

        // A skippable frame is not part of a bundle.
        let mut b = frames(&d[..1000], 1000);
        b.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
        let e = read_all(b).unwrap_err().to_string();
        assert!(e.contains("not a zstd frame"), "{e}");
    }
}
