//! Progress reporting, behind a trait so the library never prints.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use manifest_schema::Digest;

/// Receives progress events.
pub trait Reporter: Send + Sync {
    /// A new phase starts (e.g. "pulling", "writing").
    fn phase(&self, name: &str, total_bytes: u64);
    /// Bytes done in the current phase.
    fn advance(&self, bytes: u64);
    /// A blob download starts.
    fn blob_start(&self, digest: &Digest, size: u64);
    /// Bytes of a blob arrived.
    fn blob_progress(&self, digest: &Digest, bytes: u64);
    /// A blob download ended.
    fn blob_done(&self, digest: &Digest);
    /// A notice (retries, warnings).
    fn message(&self, msg: &str);
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Reporter for Quiet {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn blob_start(&self, _: &Digest, _: u64) {}
    fn blob_progress(&self, _: &Digest, _: u64) {}
    fn blob_done(&self, _: &Digest) {}
    fn message(&self, _: &str) {}
}

/// Plain lines on stderr, for logs and non-TTY output.
#[derive(Debug, Default)]
pub struct Lines;

impl Reporter for Lines {
    fn phase(&self, name: &str, total: u64) {
        eprintln!("{name} ({})", human(total));
    }
    fn advance(&self, _: u64) {}
    fn blob_start(&self, d: &Digest, size: u64) {
        eprintln!("  pulling {} ({})", d.short(), human(size));
    }
    fn blob_progress(&self, _: &Digest, _: u64) {}
    fn blob_done(&self, _: &Digest) {}
    fn message(&self, msg: &str) {
        eprintln!("{msg}");
    }
}

/// indicatif bars on a TTY: one per blob in flight plus a phase total.
#[derive(Debug)]
pub struct Bars {
    multi: MultiProgress,
    total: Mutex<Option<ProgressBar>>,
    blobs: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            total: Mutex::new(None),
            blobs: Mutex::new(HashMap::new()),
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

impl Reporter for Bars {
    fn phase(&self, name: &str, total: u64) {
        let mut t = self.total.lock().expect("lock");
        if let Some(old) = t.take() {
            old.finish();
        }
        let bar = self.multi.add(
            ProgressBar::new(total)
                .with_style(style())
                .with_message(name.to_owned()),
        );
        *t = Some(bar);
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = self.total.lock().expect("lock").as_ref() {
            b.inc(bytes);
        }
    }
    fn blob_start(&self, d: &Digest, size: u64) {
        let bar = self.multi.add(
            ProgressBar::new(size)
                .with_style(style())
                .with_message(d.short().to_owned()),
        );
        self.blobs.lock().expect("lock").insert(d.clone(), bar);
    }
    fn blob_progress(&self, d: &Digest, bytes: u64) {
        if let Some(b) = self.blobs.lock().expect("lock").get(d) {
            b.inc(bytes);
        }
        self.advance(bytes);
    }
    fn blob_done(&self, d: &Digest) {
        if let Some(b) = self.blobs.lock().expect("lock").remove(d) {
            b.finish_and_clear();
        }
    }
    fn message(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
}

/// Bytes in human units.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
