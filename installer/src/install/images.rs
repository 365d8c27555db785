//! Images: load what the engine lacks from the blob store (streamed as the
//! archive its store reads, or, for an engine that does better with one, a
//! file with the layers decompressed), and tag what it has.

use super::*;
use bundle_format::oci::LayerCompression;

/// Images of a release: (name, image ID) of each, and the names loaded now.
pub type Loaded = (Vec<(String, String)>, Vec<String>);

/// How many bottom layers of an image with `diff_ids` the engine has
/// already: the longest common prefix with an image it holds. A layer is
/// its content in the context of those below it (the chain ID), so only a
/// prefix counts, never a layer that matches higher up.
pub fn layers_present(existing: &BTreeMap<String, Vec<String>>, diff_ids: &[String]) -> usize {
    existing
        .values()
        .map(|have| {
            have.iter()
                .zip(diff_ids)
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Makes every image of `m` for this host present and tagged:
///
/// 1. an image the engine has is tagged, one the release's site registry
///    has is pulled, in the manifest's order;
/// 2. the rest are loaded from the blob store, several at once
///    (`plan_loads` says which waits for which), each leaving out the
///    bottom layers the engine has or an earlier load brings;
/// 3. a second name for an image loaded in 2. is tagged.
pub fn ensure_images(
    sd: &StateDir,
    engine: &dyn Engine,
    m: &Manifest,
    report: &dyn Report,
) -> Result<Loaded, String> {
    let (os, arch) = host_platform();
    let store = engine.store().map_err(|e| bundle_format::error_text(&e))?;
    let mut existing = engine.images().map_err(|e| bundle_format::error_text(&e))?;
    let source = sd
        .release_registry(&m.version)
        .map_err(|e| bundle_format::error_text(&e))?;
    let mut out = Vec::new();
    let mut loaded = Vec::new();
    let mut loads = Vec::new();
    let mut later_tags = Vec::new();
    let mut seen = BTreeSet::new();
    for img in m
        .images
        .iter()
        .filter(|i| i.platform.os == os && i.platform.arch == arch)
    {
        if !seen.insert(img.name.clone()) {
            continue;
        }
        let id = store.image_id(img).to_string();
        out.push((img.name.clone(), id.clone()));
        if loads.iter().any(|l: &Load| l.id == id) {
            later_tags.push((id, img.name.clone()));
            continue;
        }
        if existing.contains_key(&id) {
            tag_if_needed(engine, &id, &img.name)?;
            continue;
        }
        loaded.push(img.name.clone());
        if let Some(site) = &source {
            pull(engine, site, img, &id, report)?;
            existing.insert(id, Vec::new());
            continue;
        }
        let diff_ids = config_diff_ids(sd, img)?;
        loads.push(Load { img, id, diff_ids });
    }
    let shapes: Vec<(&[String], Vec<u64>)> = loads
        .iter()
        .map(|l| (l.diff_ids.as_slice(), l.layer_sizes()))
        .collect();
    let plan = plan_loads(&existing, &shapes, engine.skips_present_layers());
    let reads = Reads {
        store,
        zstd: engine
            .reads_zstd()
            .map_err(|e| bundle_format::error_text(&e))?,
    };
    load_all(sd, engine, reads, &loads, &plan, report)?;
    for (id, name) in later_tags {
        tag_if_needed(engine, &id, &name)?;
    }
    Ok((out, loaded))
}

/// What the engine's load reads: the archive of its `store`, with zstd'd
/// layers as stored if it reads `zstd` ([`Engine::reads_zstd`]).
#[derive(Debug, Clone, Copy)]
struct Reads {
    store: Store,
    zstd: bool,
}

/// One image to load from the blob store.
struct Load<'a> {
    img: &'a ImageEntry,
    /// The ID the engine will give it.
    id: String,
    diff_ids: Vec<String>,
}

impl Load<'_> {
    /// Each layer's size as stored, bottom first.
    fn layer_sizes(&self) -> Vec<u64> {
        self.img.layers.iter().map(|d| d.size).collect()
    }
}

/// When a load may start, and what it leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPlan {
    /// The earlier load it waits for, if any.
    pub after: Option<usize>,
    /// Bottom layers the engine will have by then: left out of the archive.
    pub skip: usize,
}

fn tag_if_needed(engine: &dyn Engine, id: &str, name: &str) -> Result<(), String> {
    let now = engine
        .image_id(name)
        .map_err(|e| bundle_format::error_text(&e))?;
    if now.as_deref() == Some(id) {
        return Ok(());
    }
    engine
        .tag(id, name)
        .map_err(|e| bundle_format::error_text(&e))
}

/// When each load may start, for images given as their diff IDs and layer
/// sizes, in order, with `existing` what the engine holds before.
///
/// A load waits for the earlier one it shares the most bottom layers with
/// (beyond what the engine has) only when those shared layers are at least
/// as large as the rest of it: then the engine unpacks them once, and the
/// load leaves them out when `skips_present` (the classic store looks a
/// layer up before opening its file). A thin shared base is not worth the
/// wait: both loads bring it, at once, and the engine keeps one copy.
pub fn plan_loads(
    existing: &BTreeMap<String, Vec<String>>,
    images: &[(&[String], Vec<u64>)],
    skips_present: bool,
) -> Vec<LoadPlan> {
    let present_skip = |n: usize| if skips_present { n } else { 0 };
    images
        .iter()
        .enumerate()
        .map(|(i, (ids, sizes))| {
            let present = layers_present(existing, ids);
            let shared = |j: usize| {
                images[j]
                    .0
                    .iter()
                    .zip(ids.iter())
                    .take_while(|(a, b)| a == b)
                    .count()
            };
            // The earliest of the earlier loads with the longest prefix.
            let best = (0..i)
                .map(|j| (shared(j), j))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            match best {
                Some((common, j)) if common > present => {
                    let bytes = |r: std::ops::Range<usize>| sizes[r].iter().sum::<u64>();
                    if bytes(present..common) >= bytes(common..sizes.len()) {
                        LoadPlan {
                            after: Some(j),
                            skip: present_skip(common),
                        }
                    } else {
                        LoadPlan {
                            after: None,
                            skip: present_skip(present),
                        }
                    }
                }
                _ => LoadPlan {
                    after: None,
                    skip: present_skip(present),
                },
            }
        })
        .collect()
}

/// Which loads started and ended, and whether one failed.
struct Progress {
    started: Vec<bool>,
    done: Vec<bool>,
    failed: bool,
    results: Vec<(usize, Result<(), String>)>,
}

/// The bytes of the heaviest chain of loads that starts with each: its own
/// layers' bytes (less those it leaves out) plus the heaviest chain of the
/// loads that wait for it ([`LoadPlan::after`] is always an earlier load).
pub fn chain_bytes(sizes: &[Vec<u64>], plan: &[LoadPlan]) -> Vec<u64> {
    let own: Vec<u64> = sizes
        .iter()
        .zip(plan)
        .map(|(s, p)| s.iter().skip(p.skip).sum())
        .collect();
    let mut chain = own.clone();
    for i in (0..plan.len()).rev() {
        if let Some(j) = plan[i].after {
            chain[j] = chain[j].max(own[j] + chain[i]);
        }
    }
    chain
}

/// Loads `loads` on up to the engine's [`Engine::load_lanes`] threads, each
/// taking, of the loads whose [`LoadPlan::after`] has loaded, the one that
/// starts the heaviest chain ([`chain_bytes`]; the earlier in a tie): the
/// engine unpacks an image's layers one after another, so the largest
/// image, and what waits for it, bounds the whole, and with more images
/// than lanes it must not start behind smaller ones. After a failure none
/// starts another, and the first failure in the manifest's order is the
/// error.
fn load_all(
    sd: &StateDir,
    engine: &dyn Engine,
    reads: Reads,
    loads: &[Load],
    plan: &[LoadPlan],
    report: &dyn Report,
) -> Result<(), String> {
    if engine.loads_plain_files() && reads.store == Store::Classic {
        let staging = sd.staging();
        let free = free_space(&staging)
            .map_err(|e| format!("cannot measure free space in {}: {e}", staging.display()))?;
        return load_plain_files(sd, engine, loads, plan, free, report);
    }
    let workers = engine.load_lanes().clamp(1, loads.len().max(1));
    if workers > 1 {
        report.step(&format!(
            "loading {} images, up to {workers} at a time",
            loads.len()
        ));
    }
    let progress = std::sync::Mutex::new(Progress {
        started: vec![false; loads.len()],
        done: vec![false; loads.len()],
        failed: false,
        results: Vec::new(),
    });
    let sizes: Vec<Vec<u64>> = loads.iter().map(Load::layer_sizes).collect();
    let weight = chain_bytes(&sizes, plan);
    let turn = std::sync::Condvar::new();
    let lock = || progress.lock().unwrap_or_else(|e| e.into_inner());
    let next = || -> Option<usize> {
        let mut p = lock();
        loop {
            if p.failed || p.started.iter().all(|s| *s) {
                return None;
            }
            let ready = (0..loads.len())
                .filter(|&i| !p.started[i] && plan[i].after.is_none_or(|j| p.done[j]))
                .max_by_key(|&i| (weight[i], std::cmp::Reverse(i)));
            if let Some(i) = ready {
                p.started[i] = true;
                return Some(i);
            }
            p = turn.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(i) = next() {
                    let r = load_one(sd, engine, reads, &loads[i], plan[i].skip, report);
                    let mut p = lock();
                    p.done[i] = r.is_ok();
                    p.failed |= r.is_err();
                    p.results.push((i, r));
                    drop(p);
                    turn.notify_all();
                }
            });
        }
    });
    let mut results = progress
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .results;
    results.sort_by_key(|r| r.0);
    results.into_iter().try_for_each(|(_, r)| r)
}

/// Room kept free on the staging filesystem beyond a decompressed copy.
const STAGING_MARGIN: u64 = 16 << 20;

/// Whether the plain-file loads of [`load_plain_files`] may write the next
/// image's copy while the engine loads the one before (two copies at
/// once), given `free` bytes on the staging filesystem and each copy's
/// estimated size ([`plain_archive_size`]; `None`: not known).
///
/// Refused (`Err` with the load's index) when a copy known to be larger
/// than what is free, less a margin, would fill the disk. Two copies at
/// once only when every size is known and every two consecutive copies
/// leave at least half of the free space: the engine's own copy and unpack
/// of the layers often land on the same filesystem.
pub fn look_ahead(free: u64, sizes: &[Option<u64>]) -> Result<bool, usize> {
    if let Some(i) = sizes
        .iter()
        .position(|s| s.is_some_and(|s| s.saturating_add(STAGING_MARGIN) > free))
    {
        return Err(i);
    }
    let known: Option<Vec<u64>> = sizes.iter().copied().collect();
    Ok(known.is_some_and(|k| {
        k.windows(2)
            .all(|w| (w[0] + w[1]).saturating_mul(2) <= free)
    }))
}

/// The order of plain-file loads: of those whose [`LoadPlan::after`] has
/// gone, the one with the smallest copy (`sizes`, from
/// [`plain_archive_size`]; unknown goes last, the earlier in a tie). The
/// engine starts only once the first copy is written, and from then on the
/// next is written while it loads (podman's load of a copy takes longer
/// than writing it: 10.7 s against about 3 s for the bench corpus' three),
/// so the whole is the first copy's writing plus every load.
pub fn smallest_first(sizes: &[Option<u64>], plan: &[LoadPlan]) -> Vec<usize> {
    let mut order = Vec::with_capacity(sizes.len());
    let mut gone = vec![false; sizes.len()];
    while let Some(i) = (0..sizes.len())
        .filter(|&i| !gone[i] && plan[i].after.is_none_or(|j| gone[j]))
        .min_by_key(|&i| (sizes[i].unwrap_or(u64::MAX), i))
    {
        gone[i] = true;
        order.push(i);
    }
    order
}

/// Loads `loads` one at a time, in [`smallest_first`] order, each from a
/// docker-archive file in the staging dir with its layers decompressed
/// ([`Engine::loads_plain_files`]). When [`look_ahead`] allows, a second
/// thread writes the next image's file while the engine loads the one
/// before, so the engine's unpack and the decompression run on different
/// cores; otherwise it writes the next only once the one before is loaded
/// and removed. Each file is removed once loaded (or, after a failure,
/// unused); the first failure is the error and no load starts after it.
/// In order, every [`LoadPlan::after`] (an earlier load) has loaded first.
fn load_plain_files(
    sd: &StateDir,
    engine: &dyn Engine,
    loads: &[Load],
    plan: &[LoadPlan],
    free: u64,
    report: &dyn Report,
) -> Result<(), String> {
    let sizes: Vec<Option<u64>> = loads
        .iter()
        .zip(plan)
        .map(|(l, p)| plain_archive_size(sd, l.img, p.skip))
        .collect();
    let order = smallest_first(&sizes, plan);
    let in_order: Vec<Option<u64>> = order.iter().map(|&i| sizes[i]).collect();
    let ahead = look_ahead(free, &in_order).map_err(|k| {
        let i = order[k];
        format!(
            "{}: not enough free space in {} for the copy with its layers decompressed that {} loads from: about {} bytes needed, {free} free; hint: free space there (the copy is removed once loaded)",
            loads[i].img.name,
            sd.staging().display(),
            engine.kind(),
            sizes[i].unwrap_or_default() + STAGING_MARGIN,
        )
    })?;
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        // A rendezvous: the writer hands a file over once the engine is
        // done with the one before. Without look-ahead it also waits for
        // that file's removal before it writes the next.
        let (files, staged) = std::sync::mpsc::sync_channel::<StagedLoad>(0);
        let (removed, wait_removed) = std::sync::mpsc::channel::<()>();
        let order = &order;
        s.spawn(move || {
            for (k, &i) in order.iter().enumerate() {
                let load = &loads[i];
                if k > 0 && !ahead && wait_removed.recv().is_err() {
                    break;
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let file = stage_plain_file(sd, load, plan[i].skip);
                if let Err(std::sync::mpsc::SendError(unsent)) = files.send(file) {
                    if let Ok(f) = unsent {
                        remove_staged(sd, load, &f.name, report);
                    }
                    break;
                }
            }
        });
        let result = (|| {
            for load in order.iter().map(|&i| &loads[i]) {
                let file = staged
                    .recv()
                    .map_err(|_| format!("{}: its archive was never written", load.img.name))?
                    .map_err(|e| format!("{}: {e}", load.img.name))?;
                report.step(&format!(
                    "loading {} ({} of {} layers new)",
                    load.img.name,
                    load.img.layers.len() - file.skip,
                    load.img.layers.len()
                ));
                let loaded = engine
                    .load_file(&file.path)
                    .map_err(|e| format!("{}: {}", load.img.name, bundle_format::error_text(&e)));
                remove_staged(sd, load, &file.name, report);
                let _ = removed.send(());
                loaded?;
                check_loaded(engine, load)?;
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Dropping the receiver and the sender ends the writer's wait.
        drop(staged);
        drop(removed);
        result
    })
}

/// A docker-archive file of one load, in the staging dir.
struct PlainFile {
    /// Its name there.
    name: String,
    path: PathBuf,
    /// Bottom layers left out of it.
    skip: usize,
}

type StagedLoad = Result<PlainFile, String>;

/// Writes `load`'s docker-archive with its layers decompressed into the
/// staging dir, leaving out the first `skip` layer files; a file that
/// could not be written whole is removed.
fn stage_plain_file(sd: &StateDir, load: &Load, skip: usize) -> StagedLoad {
    let name = format!("load-{}.tar", load.img.manifest.digest.hex());
    let (path, f) = sd
        .staged_file(&name)
        .map_err(|e| bundle_format::error_text(&e))?;
    if let Err(e) = write_plain_docker_archive(f, sd, load.img, skip) {
        let _ = sd.remove_staged_file(&name);
        return Err(format!("writing {}: {e}", path.display()));
    }
    Ok(PlainFile { name, path, skip })
}

fn remove_staged(sd: &StateDir, load: &Load, name: &str, report: &dyn Report) {
    if let Err(e) = sd.remove_staged_file(name) {
        report.warn(&format!(
            "{}: its archive stays in the staging dir: {}",
            load.img.name,
            bundle_format::error_text(&e)
        ));
    }
}

/// Streams `load` into the engine as the archive it [`Reads`].
fn load_one(
    sd: &StateDir,
    engine: &dyn Engine,
    reads: Reads,
    load: &Load,
    skip: usize,
    report: &dyn Report,
) -> Result<(), String> {
    let img = load.img;
    report.step(&format!(
        "loading {} ({} of {} layers new)",
        img.name,
        img.layers.len() - skip,
        img.layers.len()
    ));
    engine
        .load(&mut |w| match reads.store {
            Store::Classic => write_docker_archive(w, sd, img, skip, reads.zstd),
            Store::Containerd => write_oci_archive(w, sd, img),
        })
        .map_err(|e| format!("{}: {}", img.name, bundle_format::error_text(&e)))?;
    check_loaded(engine, load)
}

/// Checks that the engine gives `load`'s name the image ID expected.
fn check_loaded(engine: &dyn Engine, load: &Load) -> Result<(), String> {
    let img = load.img;
    let got = engine
        .image_id(&img.name)
        .map_err(|e| bundle_format::error_text(&e))?;
    if got.as_deref() != Some(load.id.as_str()) {
        return Err(format!(
            "{}: after load the engine reports image {}, expected {}",
            img.name,
            got.unwrap_or_else(|| "nothing".into()),
            load.id
        ));
    }
    Ok(())
}

/// Pulls `img` from the site registry by its pinned digest and tags it
/// with the name compose uses, checking the ID the engine gives it.
fn pull(
    engine: &dyn Engine,
    site: &Site,
    img: &ImageEntry,
    id: &str,
    report: &dyn Report,
) -> Result<(), String> {
    let reference = site
        .pull_ref(img)
        .map_err(|e| format!("{}: {e}", img.name))?;
    report.step(&format!("pulling {} from {reference}", img.name));
    engine
        .pull(&reference)
        .map_err(|e| format!("{}: {}", img.name, bundle_format::error_text(&e)))?;
    let got = engine
        .image_id(&reference)
        .map_err(|e| bundle_format::error_text(&e))?;
    if got.as_deref() != Some(id) {
        return Err(format!(
            "{}: the engine pulled {reference} as image {}, expected {id}",
            img.name,
            got.unwrap_or_else(|| "nothing".into())
        ));
    }
    engine
        .tag(id, &img.name)
        .map_err(|e| bundle_format::error_text(&e))
}

pub(crate) fn config_diff_ids(sd: &StateDir, img: &ImageEntry) -> Result<Vec<String>, String> {
    let p = sd.blob(&img.config.digest);
    let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(bundle_format::oci::ImageConfig::parse(&b, img)?
        .rootfs
        .diff_ids)
}

/// Streams a docker-archive of one image from the blob store (what the
/// classic store loads), leaving out the first `skip` layer files (the
/// engine has those layers). Layers go as stored, but for zstd'd ones when
/// the engine does not read zstd ([`Engine::reads_zstd`]), which go
/// decompressed: Docker before 23.0 reads plain and gzip'd layer tars only
/// (`archive/tar: invalid tar header`); from 23.0 its load decompresses
/// each layer file with the same code as its pull, which reads zstd
/// (moby#41759).
pub fn write_docker_archive(
    w: &mut dyn Write,
    sd: &StateDir,
    img: &ImageEntry,
    skip: usize,
    reads_zstd: bool,
) -> io::Result<()> {
    let manifest = [bundle_format::oci::DockerArchiveImage::of(img)];
    let mut tar = TarWriter::new(w, 0);
    tar.file("manifest.json", &serde_json::to_vec(&manifest)?, 0o644)?;
    write_blobs(&mut tar, sd, std::iter::once(&img.config))?;
    for l in img.layers.iter().skip(skip) {
        match LayerCompression::of(&l.media_type) {
            Some(LayerCompression::Zstd) if !reads_zstd => {
                write_zstd_decompressed(&mut tar, sd, l)?
            }
            _ => write_blobs(&mut tar, sd, std::iter::once(l))?,
        }
    }
    tar.finish()?;
    Ok(())
}

/// Writes the zstd'd layer `l` decompressed, as `blobs/sha256/<hex>`,
/// without a copy on disk: its size is counted in a first pass, since the
/// tar header comes first and a zstd frame need not say its size (a
/// streaming encoder leaves it out).
fn write_zstd_decompressed<W: Write>(
    tar: &mut TarWriter<W>,
    sd: &StateDir,
    l: &manifest_schema::Descriptor,
) -> io::Result<()> {
    let open = || zstd::stream::read::Decoder::new(std::fs::File::open(sd.blob(&l.digest))?);
    let size = io::copy(&mut open()?, &mut io::sink())?;
    tar.header(&bundle_format::oci::blob_path(&l.digest), size, 0o644)?;
    let mut src = open()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > size {
            break;
        }
        tar.data(&buf[..n])?;
    }
    if written != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "layer {} decompressed to {size} bytes, then to {written}: the blob changed while it was read",
                l.digest
            ),
        ));
    }
    tar.pad(size)
}

/// Writes a docker-archive of one image into `f` (a new file) with its
/// gzip'd and zstd'd layers decompressed, leaving out the first `skip`
/// layer files: each layer file then is the layer's diff, which the engine
/// checks against the config's diff IDs. For an engine whose load does
/// better with that ([`Engine::loads_plain_files`]).
pub fn write_plain_docker_archive(
    f: std::fs::File,
    sd: &StateDir,
    img: &ImageEntry,
    skip: usize,
) -> io::Result<()> {
    let manifest = [bundle_format::oci::DockerArchiveImage::of(img)];
    let mut tar = TarWriter::new(io::BufWriter::with_capacity(1 << 20, f), 0);
    tar.file("manifest.json", &serde_json::to_vec(&manifest)?, 0o644)?;
    write_blobs(&mut tar, sd, std::iter::once(&img.config))?;
    for l in img.layers.iter().skip(skip) {
        let Some(compression) = LayerCompression::of(&l.media_type) else {
            write_blobs(&mut tar, sd, std::iter::once(l))?;
            continue;
        };
        let src = io::BufReader::with_capacity(1 << 20, std::fs::File::open(sd.blob(&l.digest))?);
        tar.entry_sized_after(&bundle_format::oci::blob_path(&l.digest), 0o644, |w| {
            match compression {
                LayerCompression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(src), w),
                LayerCompression::Zstd => {
                    io::copy(&mut zstd::stream::read::Decoder::with_buffer(src)?, w)
                }
            }
        })?;
    }
    tar.finish()?
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    Ok(())
}

/// The size of the file [`write_plain_docker_archive`] writes for `img`
/// (leaving out `skip` layers), estimated before it is written: each
/// gzip'd layer's size from its trailer (ISIZE, exact for one gzip member
/// under 4 GiB; a larger layer counts the least size its trailer allows),
/// a plain layer's as stored. `None` when a layer's size is not known that
/// way (zstd frames need not say theirs) or a blob cannot be read.
pub fn plain_archive_size(sd: &StateDir, img: &ImageEntry, skip: usize) -> Option<u64> {
    let entry = |size: u64| 512 + size.div_ceil(512) * 512;
    let mut total = entry(64 << 10) + entry(img.config.size) + 1024;
    for l in img.layers.iter().skip(skip) {
        total += entry(match LayerCompression::of(&l.media_type) {
            None => l.size,
            Some(LayerCompression::Gzip) => gzip_size(&sd.blob(&l.digest), l.size).ok()?,
            Some(LayerCompression::Zstd) => return None,
        });
    }
    Some(total)
}

/// The decompressed size of the gzip file at `path` (`compressed` bytes
/// long) by its trailer: the smallest size congruent to ISIZE modulo 2^32
/// and at least half of `compressed` less 64 KiB of gzip header (no
/// deflate encoder in use doubles its input: stored blocks add 5 bytes per
/// 64 KiB, fixed Huffman codes at most a bit per byte).
pub fn gzip_size(path: &Path, compressed: u64) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    if compressed < 18 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: too short for gzip", path.display()),
        ));
    }
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(compressed - 4))?;
    let mut isize = [0u8; 4];
    f.read_exact(&mut isize)?;
    let low = u64::from(u32::from_le_bytes(isize));
    let least = compressed.saturating_sub(64 << 10) / 2;
    let wraps = least.saturating_sub(low).div_ceil(1 << 32);
    Ok(low + (wraps << 32))
}

/// Streams an OCI archive of one image from the blob store (what the
/// containerd store loads): the registry's own manifest, so the image's ID
/// is the pinned manifest digest and `RepoDigests` lists it; every blob,
/// since containerd's import wants every blob the manifest names.
pub fn write_oci_archive(w: &mut dyn Write, sd: &StateDir, img: &ImageEntry) -> io::Result<()> {
    let name = manifest_schema::ImageRef::parse(&img.name)
        .map(|r| r.canonical_name())
        .unwrap_or_else(|_| img.name.clone());
    let index = bundle_format::oci::OciIndex::single(&img.manifest, &name);
    let mut tar = TarWriter::new(w, 0);
    tar.file("oci-layout", layout::OCI_LAYOUT_CONTENT.as_bytes(), 0o644)?;
    tar.file("index.json", &index.to_bytes(), 0o644)?;
    write_blobs(&mut tar, sd, img.blobs())?;
    tar.finish()?;
    Ok(())
}

/// Each blob from the store as `blobs/sha256/<hex>`, streamed.
fn write_blobs<'a, W: Write>(
    tar: &mut TarWriter<W>,
    sd: &StateDir,
    blobs: impl Iterator<Item = &'a manifest_schema::Descriptor>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    for d in blobs {
        let mut f = std::fs::File::open(sd.blob(&d.digest))?;
        tar.header(&bundle_format::oci::blob_path(&d.digest), d.size, 0o644)?;
        let mut left = d.size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("blob {} is shorter than recorded", d.digest),
                ));
            }
            tar.data(&buf[..n])?;
            left -= n as u64;
        }
        tar.pad(d.size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::Stderr;
    use fixtures::fake_engine::FakeEngine;
    use rstest::rstest;
    use sha2::{Digest as _, Sha256};

    fn manifest() -> Manifest {
        serde_json::from_str(include_str!("../../../fuzz/seeds/manifest/manifest.json")).unwrap()
    }

    /// A state dir whose release of `m` records `site` as its image source.
    fn registry_release(m: &Manifest, site: &str) -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let rel = sd.release_dir(&m.version);
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(rel.join(state::REGISTRY_FILE), format!("{site}\n")).unwrap();
        (dir, sd)
    }

    #[test]
    fn a_registry_release_pulls_each_image_by_its_pinned_digest_and_tags_it() {
        let m = manifest();
        let (_d, sd) = registry_release(&m, "reg.example:5000/acme");
        let e = FakeEngine::default();
        let (os, arch) = host_platform();
        let mine: Vec<&ImageEntry> = m
            .images
            .iter()
            .filter(|i| i.platform.os == os && i.platform.arch == arch)
            .collect();
        for img in &mine {
            let site = Site::parse("reg.example:5000/acme").unwrap();
            e.registry.borrow_mut().insert(
                site.pull_ref(img).unwrap(),
                (img.config.digest.to_string(), vec![]),
            );
        }
        let (ids, loaded) =
            ensure_images(&sd, &e, &m, &crate::install::Stderr { quiet: true }).unwrap();
        assert!(
            e.loads.borrow().is_empty(),
            "nothing loaded from the bundle"
        );
        let pulls = e.pulls.borrow().clone();
        assert_eq!(pulls.len(), mine.len());
        for img in &mine {
            assert!(
                pulls.contains(&format!(
                    "reg.example:5000/acme/{}@{}",
                    manifest_schema::ImageRef::parse(&img.name)
                        .unwrap()
                        .repository,
                    img.manifest.digest
                )),
                "{pulls:?}"
            );
            assert_eq!(e.tags.borrow()[&img.name], img.config.digest.to_string());
        }
        assert_eq!(loaded.len(), mine.len());
        assert_eq!(ids.len(), mine.len());

        // Present now: a second run pulls nothing.
        ensure_images(&sd, &e, &m, &crate::install::Stderr { quiet: true }).unwrap();
        assert_eq!(e.pulls.borrow().len(), mine.len());
    }

    #[test]
    fn a_pull_that_gives_another_image_is_refused_naming_it() {
        let m = manifest();
        let (_d, sd) = registry_release(&m, "reg.example");
        let e = FakeEngine::default();
        let site = Site::parse("reg.example").unwrap();
        for img in &m.images {
            e.registry.borrow_mut().insert(
                site.pull_ref(img).unwrap(),
                ("sha256:feedface".into(), vec![]),
            );
        }
        let err = ensure_images(&sd, &e, &m, &crate::install::Stderr { quiet: true }).unwrap_err();
        assert!(err.contains("as image sha256:feedface, expected"), "{err}");
        assert!(
            e.tags.borrow().keys().all(|k| k.contains('@')),
            "no name was tagged"
        );
    }

    /// Stores an image with plain layers `layers` in `sd`'s blob store.
    fn stored_image(sd: &StateDir, name: &str, layers: &[&str]) -> ImageEntry {
        let put = |bytes: &[u8], media_type: &str| {
            let digest = Digest::from_sha256_bytes(&Sha256::digest(bytes).into());
            let p = sd.blob(&digest);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            manifest_schema::Descriptor {
                media_type: media_type.into(),
                digest,
                size: bytes.len() as u64,
            }
        };
        let layers: Vec<_> = layers
            .iter()
            .map(|l| put(l.as_bytes(), "application/vnd.oci.image.layer.v1.tar"))
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
        let config = put(
            &serde_json::to_vec(
                &serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}}),
            )
            .unwrap(),
            "application/vnd.oci.image.config.v1+json",
        );
        let (os, arch) = host_platform();
        ImageEntry {
            name: name.into(),
            source: format!("reg.example/{name}"),
            platform: manifest_schema::Platform {
                os,
                arch,
                variant: None,
            },
            manifest: put(
                name.as_bytes(),
                "application/vnd.oci.image.manifest.v1+json",
            ),
            config,
            layers,
        }
    }

    /// A manifest of the images `spec` names (`name=layer,layer;…`).
    fn stored(spec: &str) -> (tempfile::TempDir, StateDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let mut m = manifest();
        m.images = spec
            .split(';')
            .map(|i| {
                let (name, layers) = i.split_once('=').unwrap();
                stored_image(&sd, name, &layers.split(',').collect::<Vec<_>>())
            })
            .collect();
        (dir, sd, m)
    }

    /// The layer files a load's docker-archive carried: its blobs but the
    /// config.
    fn layer_files(archive: &[u8]) -> usize {
        let blobs = tar::Archive::new(archive)
            .entries()
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().unwrap().starts_with("blobs"))
            .count();
        blobs - 1
    }

    #[test]
    fn images_load_at_once_each_checked_even_over_a_thin_shared_base() {
        // The base is shared but thin: not worth a wait.
        let (_d, sd, m) = stored("a/x:1=b,aaaaaaaa;b/y:1=b,bbbbbbbb;c/z:1=b,cccccccc");
        let e = FakeEngine {
            lanes: 3,
            meet: 3,
            ..FakeEngine::default()
        };
        let (ids, loaded) = ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        assert_eq!(e.running.borrow().1, 3, "three loads ran at once");
        assert_eq!(loaded, ["a/x:1", "b/y:1", "c/z:1"]);
        for (img, (name, id)) in m.images.iter().zip(&ids) {
            assert_eq!(name, &img.name);
            assert_eq!(id, &img.config.digest.to_string());
            assert_eq!(e.tags.borrow()[name], *id, "{name} tagged by its load");
        }
        for l in e.loads.borrow().iter() {
            assert_eq!(layer_files(l), 2, "each brings the base itself");
        }
    }

    #[test]
    fn images_on_a_fat_shared_base_wait_for_the_first_and_leave_it_out() {
        let (_d, sd, m) = stored("a/x:1=basebasebase,a;b/y:1=basebasebase,b;c/z:1=c");
        let e = FakeEngine {
            lanes: 3,
            ..FakeEngine::default()
        };
        ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        let log = e.log.borrow();
        let of = |n: &str| log.iter().find(|l| l.0 == n).cloned().unwrap();
        assert!(
            of("b/y:1").1 > of("a/x:1").2,
            "b started after a ended: {log:?}"
        );
        let loads = e.loads.borrow();
        let files = |name: &str| {
            loads
                .iter()
                .find(|l| read_name(l) == name)
                .map(|l| layer_files(l))
                .unwrap()
        };
        assert_eq!(files("a/x:1"), 2);
        assert_eq!(files("b/y:1"), 1, "the shared base is left out");
        assert_eq!(files("c/z:1"), 1);
    }

    /// The order in which one lane loads the images of `spec`.
    fn one_lane_load_order(spec: &str) -> Vec<String> {
        let (_d, sd, m) = stored(spec);
        let e = FakeEngine {
            lanes: 1,
            ..FakeEngine::default()
        };
        ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        let order = e.log.borrow().iter().map(|l| l.0.clone()).collect();
        order
    }

    // a's base (12 bytes) is at least as large as the rest of b: b waits
    // for a. a starts the heaviest chain (13 + 10 bytes), then c (20)
    // before b (10), though c is larger than a alone.
    #[rstest]
    #[case::a_chain_outweighs_a_larger_image(
        "a/x:1=basebasebase,a;b/y:1=basebasebase,bbbbbbbbbb;c/z:1=cccccccccccccccccccc",
        &["a/x:1", "c/z:1", "b/y:1"]
    )]
    #[case::no_waits_largest_first("a/x:1=a;b/y:1=bbbbbbbbbbbb;c/z:1=cccccc", &["b/y:1", "c/z:1", "a/x:1"])]
    fn with_more_images_than_lanes_the_heaviest_chain_starts_first(
        #[case] spec: &str,
        #[case] want: &[&str],
    ) {
        assert_eq!(one_lane_load_order(spec), want);
    }

    #[rstest]
    #[case::independent(&[&[5][..], &[9], &[1]], &[None, None, None], &[0, 0, 0], &[5, 9, 1])]
    #[case::a_chain(&[&[4, 1][..], &[4, 3], &[4, 2]], &[None, Some(0), Some(1)], &[0, 1, 1], &[10, 5, 2])]
    #[case::two_wait_for_one(&[&[4, 1][..], &[4, 3], &[4, 7]], &[None, Some(0), Some(0)], &[0, 1, 1], &[12, 3, 7])]
    fn a_chain_weighs_what_its_loads_send(
        #[case] sizes: &[&[u64]],
        #[case] after: &[Option<usize>],
        #[case] skip: &[usize],
        #[case] want: &[u64],
    ) {
        let sizes: Vec<Vec<u64>> = sizes.iter().map(|s| s.to_vec()).collect();
        let plan: Vec<LoadPlan> = after
            .iter()
            .zip(skip)
            .map(|(&after, &skip)| LoadPlan { after, skip })
            .collect();
        assert_eq!(chain_bytes(&sizes, &plan), want);
    }

    fn read_name(archive: &[u8]) -> String {
        let mut a = tar::Archive::new(archive);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v[0]["RepoTags"][0].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_failed_load_is_the_error_and_what_waits_for_it_never_starts() {
        let (_d, sd, m) = stored("a/x:1=ssssssss,a;b/y:1=ssssssss,b;c/z:1=c");
        let e = FakeEngine {
            lanes: 2,
            fail_load: Some("a/x:1".into()),
            ..FakeEngine::default()
        };
        let err = ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap_err();
        assert!(err.starts_with("a/x:1: "), "{err}");
        assert!(err.contains("cannot load a/x:1"), "{err}");
        assert!(
            !e.tags.borrow().contains_key("b/y:1"),
            "b waits on a's base: not loaded after a failed"
        );
    }

    /// The loads `ensure_images` would make of `m` into an empty engine.
    fn loads_of<'a>(sd: &StateDir, m: &'a Manifest) -> (Vec<Load<'a>>, Vec<LoadPlan>) {
        let loads: Vec<Load> = m
            .images
            .iter()
            .map(|img| Load {
                img,
                id: img.config.digest.to_string(),
                diff_ids: config_diff_ids(sd, img).unwrap(),
            })
            .collect();
        let shapes: Vec<(&[String], Vec<u64>)> = loads
            .iter()
            .map(|l| (l.diff_ids.as_slice(), vec![1; l.diff_ids.len()]))
            .collect();
        let plan = plan_loads(&BTreeMap::new(), &shapes, true);
        (loads, plan)
    }

    fn staged_loads(sd: &StateDir) -> usize {
        std::fs::read_dir(sd.staging()).map_or(0, |rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("load-"))
                .count()
        })
    }

    #[test]
    fn plain_file_loads_write_the_next_archive_while_the_engine_loads_when_two_fit() {
        let (_d, sd, m) = stored("a/x:1=a1;b/y:1=b1;c/z:1=c1");
        std::fs::create_dir_all(sd.staging()).unwrap();
        let (loads, plan) = loads_of(&sd, &m);
        let e = FakeEngine {
            plain_files: true,
            wait_for_next_file: 2,
            ..FakeEngine::default()
        };
        load_plain_files(&sd, &e, &loads, &plan, 1 << 40, &Stderr { quiet: true }).unwrap();
        assert_eq!(*e.staged_alongside.borrow(), [2, 2, 1]);
        for img in &m.images {
            assert_eq!(e.tags.borrow()[&img.name], img.config.digest.to_string());
        }
        assert_eq!(staged_loads(&sd), 0, "every copy is removed once loaded");
    }

    #[test]
    fn plain_file_loads_start_with_the_smallest_copy() {
        // Sizes apart by more than the tar's 512-byte blocks.
        let spec = format!(
            "a/x:1={};b/y:1=b;c/z:1={}",
            "a".repeat(6000),
            "c".repeat(3000)
        );
        let (_d, sd, m) = stored(&spec);
        std::fs::create_dir_all(sd.staging()).unwrap();
        let (loads, plan) = loads_of(&sd, &m);
        let e = FakeEngine {
            plain_files: true,
            ..FakeEngine::default()
        };
        load_plain_files(&sd, &e, &loads, &plan, 1 << 40, &Stderr { quiet: true }).unwrap();
        let name_of = |p: &PathBuf| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            m.images
                .iter()
                .find(|i| f == format!("load-{}.tar", i.manifest.digest.hex()))
                .map(|i| i.name.clone())
                .unwrap()
        };
        let order: Vec<String> = e.loaded_files.borrow().iter().map(name_of).collect();
        assert_eq!(order, ["b/y:1", "c/z:1", "a/x:1"]);
    }

    #[rstest]
    #[case::by_size(&[Some(9), Some(1), Some(5)], &[None, None, None], &[1, 2, 0])]
    #[case::unknown_last_ties_in_order(&[None, Some(3), Some(3)], &[None, None, None], &[1, 2, 0])]
    #[case::after_what_it_waits_for(&[Some(9), Some(1), Some(5)], &[None, Some(0), None], &[2, 0, 1])]
    fn plain_file_loads_go_smallest_first_after_what_they_wait_for(
        #[case] sizes: &[Option<u64>],
        #[case] after: &[Option<usize>],
        #[case] want: &[usize],
    ) {
        let plan: Vec<LoadPlan> = after
            .iter()
            .map(|&after| LoadPlan { after, skip: 0 })
            .collect();
        assert_eq!(smallest_first(sizes, &plan), want);
    }

    #[test]
    fn plain_file_loads_go_one_at_a_time_when_two_copies_would_take_over_half_the_space() {
        // Layers large enough that the margin does not decide.
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let mut m = manifest();
        m.images = ["a/x:1", "b/y:1", "c/z:1"]
            .iter()
            .map(|name| stored_image(&sd, name, &[&name.repeat(STAGING_MARGIN as usize / 5)]))
            .collect();
        std::fs::create_dir_all(sd.staging()).unwrap();
        let (loads, plan) = loads_of(&sd, &m);
        let one = plain_archive_size(&sd, &m.images[0], 0).unwrap();
        let free = 3 * one;
        assert_eq!(look_ahead(free, &[Some(one); 3]), Ok(false));
        let e = FakeEngine {
            plain_files: true,
            ..FakeEngine::default()
        };
        load_plain_files(&sd, &e, &loads, &plan, free, &Stderr { quiet: true }).unwrap();
        assert_eq!(*e.staged_alongside.borrow(), [1, 1, 1]);
        assert_eq!(e.tags.borrow().len(), 3);
        assert_eq!(staged_loads(&sd), 0);
    }

    #[test]
    fn a_plain_file_load_that_would_fill_the_disk_is_refused_before_a_byte_is_written() {
        let (_d, sd, m) = stored("a/x:1=a1;b/y:1=b1");
        std::fs::create_dir_all(sd.staging()).unwrap();
        let (loads, plan) = loads_of(&sd, &m);
        let e = FakeEngine {
            plain_files: true,
            ..FakeEngine::default()
        };
        let err =
            load_plain_files(&sd, &e, &loads, &plan, 4096, &Stderr { quiet: true }).unwrap_err();
        assert!(err.starts_with("a/x:1: not enough free space in "), "{err}");
        assert!(err.contains(&sd.staging().display().to_string()), "{err}");
        assert!(err.contains("4096 free; hint: free space there"), "{err}");
        assert!(e.loaded_files.borrow().is_empty());
        assert!(e.tags.borrow().is_empty());
        assert_eq!(staged_loads(&sd), 0);
    }

    const MIB: u64 = 1 << 20;

    #[rstest]
    #[case::roomy(1 << 40, &[Some(100 * MIB), Some(200 * MIB)], Ok(true))]
    #[case::one_load(1 << 30, &[Some(900 * MIB)], Ok(true))]
    #[case::pair_over_half(1000 * MIB, &[Some(300 * MIB), Some(300 * MIB)], Ok(false))]
    #[case::pair_exactly_half(1200 * MIB, &[Some(300 * MIB), Some(300 * MIB)], Ok(true))]
    #[case::only_consecutive_pairs_count(
        1000 * MIB,
        &[Some(400 * MIB), Some(10 * MIB), Some(400 * MIB)],
        Ok(true)
    )]
    #[case::unknown_size_never_looks_ahead(1 << 40, &[Some(MIB), None], Ok(false))]
    #[case::unknown_size_is_not_refused(MIB, &[None, None], Ok(false))]
    #[case::first_too_large_named(100 * MIB, &[Some(50 * MIB), Some(99 * MIB)], Err(1))]
    #[case::margin_counts(100 * MIB, &[Some(100 * MIB - STAGING_MARGIN + 1)], Err(0))]
    #[case::margin_fits(100 * MIB, &[Some(100 * MIB - STAGING_MARGIN)], Ok(true))]
    fn the_look_ahead_copy_is_written_only_with_room_for_both(
        #[case] free: u64,
        #[case] sizes: &[Option<u64>],
        #[case] want: Result<bool, usize>,
    ) {
        assert_eq!(look_ahead(free, sizes), want);
    }

    #[test]
    fn a_gzip_layers_size_is_read_from_its_trailer() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        for data in [
            b"".to_vec(),
            b"hello".repeat(100_000),
            (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect(),
        ] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&data).unwrap();
            let gz = gz.finish().unwrap();
            let p = dir.path().join("l.gz");
            std::fs::write(&p, &gz).unwrap();
            assert_eq!(gzip_size(&p, gz.len() as u64).unwrap(), data.len() as u64);
        }
        // Over 4 GiB the trailer keeps the size modulo 2^32: the least size
        // deflate could have made the compressed bytes of counts, here at
        // least 2.5 GiB (a sparse file stands in for 5 GiB of layer).
        let p = dir.path().join("big.gz");
        let f = std::fs::File::create(&p).unwrap();
        let compressed = 5u64 << 30;
        f.set_len(compressed - 4).unwrap();
        drop(f);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&100u32.to_le_bytes()).unwrap();
        assert_eq!(gzip_size(&p, compressed).unwrap(), (1u64 << 32) + 100);
        let short = dir.path().join("short.gz");
        std::fs::write(&short, b"\x1f\x8b").unwrap();
        let err = gzip_size(&short, 2).unwrap_err().to_string();
        assert!(err.contains("short.gz: too short for gzip"), "{err}");
    }

    #[test]
    fn a_plain_archives_size_is_estimated_from_above_and_closely() {
        use std::io::Write as _;
        let (_d, sd, m) = stored("a/x:1=a1,a2");
        let mut img = m.images[0].clone();
        let diff = b"layer bytes ".repeat(50_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&diff).unwrap();
        let gz = gz.finish().unwrap();
        let digest = Digest::from_sha256_bytes(&Sha256::digest(&gz).into());
        std::fs::write(sd.blob(&digest), &gz).unwrap();
        img.layers[1] = manifest_schema::Descriptor {
            media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            digest,
            size: gz.len() as u64,
        };
        let out = sd.dir.join("plain.tar");
        write_plain_docker_archive(std::fs::File::create(&out).unwrap(), &sd, &img, 0).unwrap();
        let written = std::fs::metadata(&out).unwrap().len();
        let estimate = plain_archive_size(&sd, &img, 0).unwrap();
        assert!(written >= diff.len() as u64);
        assert!(
            (written..written + (66 << 10)).contains(&estimate),
            "{estimate} for {written}"
        );
        img.layers[1].media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
        assert_eq!(plain_archive_size(&sd, &img, 0), None);
        assert_eq!(
            plain_archive_size(&sd, &img, 2),
            Some(estimate - 512 - (diff.len() as u64).div_ceil(512) * 512 - 1024),
            "a layer left out is not counted"
        );
    }

    /// One gzip'd layer, one zstd'd (two frames, as a streaming encoder may
    /// write, neither saying its size), one plain: stored as a registry
    /// serves them, the diff IDs those of the decompressed tars. Returns
    /// the manifest with that one image, each layer's diff and its bytes
    /// as stored.
    fn three_compressions(sd: &StateDir) -> (Manifest, [Vec<u8>; 3], [Vec<u8>; 3]) {
        use std::io::Write as _;
        let diffs = [
            b"gzip layer".to_vec(),
            b"zstd layer ".repeat(30_000),
            b"plain layer".to_vec(),
        ];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&diffs[0]).unwrap();
        let mut zst = Vec::new();
        for half in diffs[1].chunks(diffs[1].len() / 2 + 1) {
            let mut z = zstd::Encoder::new(Vec::new(), 3).unwrap();
            z.include_contentsize(false).unwrap();
            z.write_all(half).unwrap();
            zst.extend(z.finish().unwrap());
        }
        let stored = [gz.finish().unwrap(), zst, diffs[2].clone()];
        let mut img = stored_image(sd, "a/x:1", &["g", "z", "p"]);
        let media = ["tar+gzip", "tar+zstd", "tar"];
        for (i, l) in img.layers.iter_mut().enumerate() {
            let digest = Digest::from_sha256_bytes(&Sha256::digest(&stored[i]).into());
            std::fs::write(sd.blob(&digest), &stored[i]).unwrap();
            *l = manifest_schema::Descriptor {
                media_type: format!("application/vnd.oci.image.layer.v1.{}", media[i]),
                digest,
                size: stored[i].len() as u64,
            };
        }
        let mut m = manifest();
        m.images = vec![img];
        (m, diffs, stored)
    }

    /// Each file of a tar, by path.
    fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut a = tar::Archive::new(bytes);
        let mut got = BTreeMap::new();
        for entry in a.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            got.insert(entry.path().unwrap().to_string_lossy().into_owned(), data);
        }
        got
    }

    #[test]
    fn an_engine_that_loads_plain_files_gets_the_layers_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let (m, diffs, _) = three_compressions(&sd);
        let img = &m.images[0];
        std::fs::create_dir_all(sd.staging()).unwrap();
        let e = FakeEngine {
            plain_files: true,
            ..FakeEngine::default()
        };
        ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        let files = e.loaded_files.borrow();
        assert_eq!(files.len(), 1);
        assert!(files[0].starts_with(sd.staging()), "{files:?}");
        assert!(
            !files[0].exists(),
            "the decompressed copy is gone once loaded"
        );
        assert_eq!(e.tags.borrow()["a/x:1"], img.config.digest.to_string());
        // What the engine read: each layer file is the layer's diff.
        let got = tar_files(&e.loads.borrow()[0]);
        for (l, diff) in img.layers.iter().zip(&diffs) {
            assert_eq!(&got[&bundle_format::oci::blob_path(&l.digest)], diff);
        }
    }

    #[rstest]
    #[case::docker_20_10(true)]
    #[case::docker_23_and_later(false)]
    fn a_streamed_docker_archive_carries_zstd_layers_decompressed_only_for_an_engine_that_reads_none(
        #[case] no_zstd: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let (m, diffs, stored) = three_compressions(&sd);
        let img = &m.images[0];
        let e = FakeEngine {
            no_zstd,
            ..FakeEngine::default()
        };
        ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        assert_eq!(e.tags.borrow()["a/x:1"], img.config.digest.to_string());
        let got = tar_files(&e.loads.borrow()[0]);
        let layer = |i: usize| &got[&bundle_format::oci::blob_path(&img.layers[i].digest)];
        assert_eq!(layer(0), &stored[0], "gzip'd, as the registry served it");
        if no_zstd {
            assert_eq!(layer(1), &diffs[1], "zstd'd: Docker 20.10 reads no zstd");
        } else {
            assert_eq!(layer(1), &stored[1], "zstd'd, as stored");
        }
        assert_eq!(layer(2), &stored[2]);
        // Leaving the engine's bottom layers out leaves out their files.
        let mut out = Vec::new();
        write_docker_archive(&mut out, &sd, img, 2, !no_zstd).unwrap();
        let got = tar_files(&out);
        assert_eq!(got.len(), 3, "manifest, config, the top layer");
        if no_zstd {
            // A zstd blob that no longer decompresses is an error, not a
            // short entry.
            std::fs::write(sd.blob(&img.layers[1].digest), b"not zstd").unwrap();
            let err = write_docker_archive(&mut Vec::new(), &sd, img, 0, false).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        }
    }

    #[test]
    fn a_second_name_for_an_image_being_loaded_is_tagged_after_its_load() {
        let (_d, sd, mut m) = stored("a/x:1=a1");
        let mut alias = m.images[0].clone();
        alias.name = "a/x:latest".into();
        m.images.push(alias);
        let e = FakeEngine::default();
        let (_, loaded) = ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        assert_eq!(loaded, ["a/x:1"]);
        assert_eq!(e.loads.borrow().len(), 1);
        assert_eq!(e.tags.borrow()["a/x:latest"], e.tags.borrow()["a/x:1"]);
    }

    /// Images as `layer:size,…` each, space-separated; plans as
    /// `after:skip` (`-` for no wait).
    #[rstest]
    #[case::unrelated("a:1 b:1 c:1", "", true, "-:0 -:0 -:0")]
    #[case::thin_base_no_wait("s:1,a:9 s:1,b:9", "", true, "-:0 -:0")]
    #[case::fat_base_waits_and_skips("s:9,a:1 s:9,b:1 s:9,c:1", "", true, "-:0 0:1 0:1")]
    #[case::equal_is_worth_it("s:5,a:5 s:5,b:5", "", true, "-:0 0:1")]
    #[case::engine_has_the_base("s:9,a:1 s:9,b:1", "s", true, "-:1 -:1")]
    #[case::longest_prefix_first_of_ties(
        "x:5,y:5,p:1 x:5,q:1 x:5,y:5,z:1",
        "",
        true,
        "-:0 0:1 0:2"
    )]
    #[case::waits_without_skipping("s:9,a:1 s:9,b:1", "", false, "-:0 0:0")]
    #[case::beyond_what_the_engine_has("s:1,t:9,a:1 s:1,t:9,b:1", "s", true, "-:1 0:2")]
    #[case::the_engine_has_more_than_is_shared("s:1,a:9 s:1,t:9,b:1", "s t", true, "-:1 -:2")]
    // Layers all present (a new config over them): nothing to wait for.
    #[case::every_layer_present("s:9,a:1 s:9", "s", true, "-:1 -:1")]
    fn a_load_waits_only_for_a_shared_base_larger_than_the_rest(
        #[case] images: &str,
        #[case] engine_has: &str,
        #[case] skips_present: bool,
        #[case] want: &str,
    ) {
        let parsed: Vec<(Vec<String>, Vec<u64>)> = images
            .split(' ')
            .map(|i| {
                i.split(',')
                    .map(|l| {
                        let (id, size) = l.split_once(':').unwrap();
                        (id.to_owned(), size.parse::<u64>().unwrap())
                    })
                    .unzip()
            })
            .collect();
        let shapes: Vec<(&[String], Vec<u64>)> = parsed
            .iter()
            .map(|(ids, sizes)| (ids.as_slice(), sizes.clone()))
            .collect();
        let existing: BTreeMap<String, Vec<String>> = [("sha256:e".to_owned(), ids(engine_has))]
            .into_iter()
            .collect();
        let got: Vec<String> = plan_loads(&existing, &shapes, skips_present)
            .iter()
            .map(|p| {
                let after = p.after.map_or("-".to_owned(), |j| j.to_string());
                format!("{after}:{}", p.skip)
            })
            .collect();
        assert_eq!(got.join(" "), want);
    }

    fn ids(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[rstest]
    #[case::nothing_there("", "a b c", 0)]
    #[case::same_base("x a b | a b y", "a b c", 2)]
    #[case::whole_image("a b c", "a b c", 3)]
    #[case::match_higher_up_does_not_count("z b c", "a b c", 0)]
    #[case::longest_of_several("a | a b | q", "a b c", 2)]
    fn only_a_common_bottom_prefix_is_left_out(
        #[case] have: &str,
        #[case] want: &str,
        #[case] skip: usize,
    ) {
        let existing: BTreeMap<String, Vec<String>> = have
            .split('|')
            .filter(|x| !x.trim().is_empty())
            .enumerate()
            .map(|(i, x)| (format!("sha256:{i}"), ids(x)))
            .collect();
        assert_eq!(layers_present(&existing, &ids(want)), skip);
    }
}
