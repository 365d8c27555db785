//! `bundler build`: plan, pull, then write one deterministic, signed archive.
//!
//! 1. [`plan`]: read and validate the spec, resolve file paths, check that
//!    the compose files use only bundled images, load the signing key.
//! 2. Resolve every image to its manifests, check the spec's provenance
//!    policy against the pinned digests' cosign signatures (fetched with
//!    their attestations), and fetch missing blobs into the cache
//!    ([`crate::registry`]).
//! 3. Compose the image layout files (OCI `index.json` and docker-archive
//!    `manifest.json`) and the bundle manifest; sign the manifest.
//! 4. Stream everything into a temp file next to the output in the order
//!    [`manifest_schema::layout`] fixes, re-hashing each blob from the cache
//!    as it goes; fsync; rename into place.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bundle_format::bundle::Compression;
use bundle_format::cosign::{self, CosignPublicKey, ProvenanceError};
use bundle_format::encode::{Encoder, DEFAULT_ZSTD_LEVEL};
use bundle_format::minisign::PublicKey;
use bundle_format::oci::{IndexEntry, OciIndex};
use bundle_format::tarfmt::TarWriter;
use manifest_schema::layout;
use manifest_schema::{
    BundledInstaller, Delta, Descriptor, Digest, FileEntry, ImageEntry, ImageRef, Inventory,
    Manifest, Platform, Provenance, RelPath, Spec, TrustChange, TrustedKey, Version,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::keys::SecretKey;
use crate::progress::Reporter;
use crate::registry::{Cache, PullError, PullOptions, Puller};
use crate::spec::SpecError;
use bundle_format::output::{Hashing, Output, PartWriter, SyncBehind, WrittenPart};
use bundle_format::writer::{self, Contents, WriteError};

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec or its compose files.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Files the spec lists are missing.
    #[error("files listed in {spec} are missing:\n{}", missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n"))]
    MissingFiles {
        /// The spec.
        spec: PathBuf,
        /// Each missing file.
        missing: Vec<String>,
    },
    /// Pulling.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// An image's signatures do not meet the spec's policy.
    #[error(transparent)]
    Provenance(#[from] ProvenanceError),
    /// A cached blob changed since it was verified.
    #[error("cached blob {digest} is damaged (content {actual}); it was removed from the cache; hint: run the build again to fetch it")]
    CacheCorrupt {
        /// Expected.
        digest: Digest,
        /// Found.
        actual: Digest,
    },
    /// Writing the output.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Bad option.
    #[error("{0}")]
    Option(String),
}

/// Flags of `bundler build`, unchecked.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The spec file.
    pub spec: PathBuf,
    /// Output file.
    pub out: PathBuf,
    /// Compression.
    pub compression: Compression,
    /// Compression level (zstd 1-19, gzip 1-9).
    pub level: Option<i32>,
    /// Platforms overriding the spec's.
    pub platforms: Option<Vec<Platform>>,
    /// Registry access and cache.
    pub pull: PullOptions,
    /// Fixed creation time (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
    /// zstd worker threads (0 = one per core).
    pub threads: u32,
    /// Split into parts of at most this many bytes.
    pub split_size: Option<u64>,
    /// Build a delta against this inventory (`installer inventory`).
    pub have: Option<PathBuf>,
    /// Leave the images' signatures and attestations out (a policy's
    /// signatures are still checked).
    pub no_provenance: bool,
}

/// A file to put in the bundle.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Source on disk.
    pub src: PathBuf,
    /// Destination in the install dir.
    pub dest: RelPath,
    /// Mode.
    pub mode: u32,
}

/// One image of the plan.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// Where to pull it from (pinned).
    pub source: ImageRef,
    /// The digest it is pinned by.
    pub pin: Digest,
    /// The name compose uses.
    pub name: String,
    /// Ids of the cosign keys that must each have signed it.
    pub required_keys: Vec<Digest>,
}

/// A checked build: everything that can be verified before pulling.
#[derive(Debug)]
pub struct BuildPlan {
    /// The spec.
    pub spec: Spec,
    /// Trust changes, with the keys read.
    pub trust: TrustChange,
    /// The cosign keys of the provenance policy, read.
    pub cosign_keys: Vec<CosignPublicKey>,
    /// The target's inventory, for a delta.
    pub have: Option<Inventory>,
    /// Files, sorted by destination.
    pub files: Vec<PlannedFile>,
    /// Images.
    pub images: Vec<PlannedImage>,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Options.
    pub opts: BuildOptions,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    /// Output file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// The sha256 of the whole bundle, when split (the parts index lists
    /// it). A single file is not hashed as a whole: the signed manifest
    /// covers every entry, and hashing the output would cost a third of
    /// the build's CPU on two cores; run `sha256sum` to publish one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
    /// Product name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Images (one per platform).
    pub images: usize,
    /// Distinct blobs carried.
    pub blobs: usize,
    /// Blobs downloaded (not in the cache).
    pub downloaded: usize,
    /// Signing key id.
    pub key_id: String,
    /// Set for a delta build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaSummary>,
    /// Parts and their signed index, when split.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PathBuf>,
}

/// What a delta build left out.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaSummary {
    /// The installed version it is a delta against.
    pub base_version: String,
    /// Blobs left out.
    pub left_out: usize,
    /// Their total size.
    pub left_out_bytes: u64,
}

/// Checks the spec and options; reads nothing from the network.
pub fn plan(opts: BuildOptions) -> Result<BuildPlan, BuildError> {
    let (spec, parsed) = crate::spec::load_parsed(&opts.spec)?;
    let spec_dir = opts
        .spec
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for (f, given) in spec.files.iter().zip(&parsed.file_modes) {
        let src = spec_dir.join(&f.src);
        match std::fs::metadata(&src) {
            Ok(m) if m.is_file() => {
                use std::os::unix::fs::PermissionsExt;
                let mode = match given {
                    Some(mode) => *mode,
                    None if m.permissions().mode() & 0o111 != 0 => 0o755,
                    None => 0o644,
                };
                files.push(PlannedFile {
                    src,
                    dest: f.dest.clone(),
                    mode,
                });
            }
            Ok(_) => missing.push(format!(
                "{} (for {}): not a regular file",
                src.display(),
                f.dest
            )),
            Err(e) => missing.push(format!("{} (for {}): {e}", src.display(), f.dest)),
        }
    }
    if let Some(inst) = &spec.installer {
        let src = spec_dir.join(&inst.src);
        match std::fs::metadata(&src) {
            Ok(m) if m.is_file() => files.push(PlannedFile {
                src,
                dest: RelPath::new(layout::INSTALLER_PATH).expect("constant"),
                mode: 0o755,
            }),
            Ok(_) => missing.push(format!(
                "{} (installer.src): not a regular file",
                src.display()
            )),
            Err(e) => missing.push(format!("{} (installer.src): {e}", src.display())),
        }
    }
    let mut trust = TrustChange {
        add: Vec::new(),
        revoke: parsed.revoke.clone(),
    };
    for (i, a) in spec.trust.add.iter().enumerate() {
        let src = spec_dir.join(a);
        match std::fs::read_to_string(&src)
            .map_err(|e| bundle_format::error_text(&e))
            .and_then(|t| PublicKey::parse(&t).map_err(|e| bundle_format::error_text(&e)))
        {
            Ok(k) => trust.add.push(TrustedKey {
                id: k.id,
                key: k.key_line(),
            }),
            Err(e) => missing.push(format!(
                "{} (trust.add[{i}]): {e}; hint: give a minisign public key file",
                src.display()
            )),
        }
    }
    let mut cosign_keys: Vec<CosignPublicKey> = Vec::new();
    let mut key_ids: BTreeMap<String, Digest> = BTreeMap::new();
    let key_lists = std::iter::once((
        "provenance.cosign_keys".to_owned(),
        &spec.provenance.cosign_keys,
    ))
    .chain(spec.images.iter().enumerate().filter_map(|(i, img)| {
        img.cosign_keys
            .as_ref()
            .map(|k| (format!("images[{i}].cosign_keys"), k))
    }));
    for (field, paths) in key_lists {
        for (j, path) in paths.iter().enumerate() {
            if key_ids.contains_key(path) {
                continue;
            }
            let src = spec_dir.join(path);
            match std::fs::read_to_string(&src)
                .map_err(|e| bundle_format::error_text(&e))
                .and_then(|t| CosignPublicKey::from_pem(&t).map_err(|e| bundle_format::error_text(&e)))
            {
                Ok(k) => {
                    key_ids.insert(path.clone(), k.id().clone());
                    if !cosign_keys.iter().any(|c| c.id() == k.id()) {
                        cosign_keys.push(k);
                    }
                }
                Err(e) => missing.push(format!(
                    "{} ({field}[{j}]): {e}; hint: give the cosign.pub that `cosign generate-key-pair` wrote",
                    src.display()
                )),
            }
        }
    }
    if !missing.is_empty() {
        return Err(BuildError::MissingFiles {
            spec: opts.spec.clone(),
            missing,
        });
    }
    files.sort_by(|a, b| a.dest.cmp(&b.dest));
    let images: Vec<PlannedImage> = spec
        .images
        .iter()
        .zip(&parsed.images)
        .map(|(i, p)| {
            let source = p.source.clone();
            let name = p.name.tagged_name();
            let mut required_keys: Vec<Digest> = i
                .cosign_keys
                .as_ref()
                .unwrap_or(&spec.provenance.cosign_keys)
                .iter()
                .filter_map(|p| key_ids.get(p).cloned())
                .collect();
            required_keys.sort();
            required_keys.dedup();
            PlannedImage {
                source,
                pin: p.pin.clone(),
                name,
                required_keys,
            }
        })
        .collect();
    let bundled: Vec<String> = parsed
        .images
        .iter()
        .map(|i| i.name.canonical_name())
        .collect();
    crate::spec::check_complete(&spec, &spec_dir, &bundled)?;
    let platforms = opts
        .platforms
        .clone()
        .unwrap_or_else(|| spec.platforms.clone());
    if let Some(l) = opts.level {
        let ok = match opts.compression {
            Compression::Zstd => (1..=19).contains(&l),
            Compression::Gzip => (1..=9).contains(&l),
            Compression::None => {
                return Err(BuildError::Option(format!(
                    "--level {l} does not apply: --compression none takes no level"
                )))
            }
        };
        if !ok {
            return Err(BuildError::Option(format!(
                "--level {l} is out of range for {} (zstd 1-19, gzip 1-9)",
                opts.compression
            )));
        }
    }
    let have = match &opts.have {
        Some(p) => Some(load_inventory(p, &spec)?),
        None => None,
    };
    Ok(BuildPlan {
        spec,
        trust,
        cosign_keys,
        have,
        files,
        images,
        platforms,
        opts,
    })
}

fn load_inventory(p: &Path, spec: &Spec) -> Result<Inventory, BuildError> {
    let text = std::fs::read(p).map_err(io_err(p))?;
    let inv: Inventory = serde_json::from_slice(&text).map_err(|e| {
        BuildError::Option(format!(
            "--have {}: not an inventory: {e}; hint: write one with `installer inventory --dir DIR -o have.json` on the target",
            p.display()
        ))
    })?;
    let bad = |why: String| BuildError::Option(format!("--have {}: {why}", p.display()));
    if inv.format != layout::FORMAT_VERSION {
        return Err(bad(format!("unsupported inventory format {}", inv.format)));
    }
    if inv.name != spec.name {
        return Err(bad(format!(
            "the target has {:?} installed, this spec builds {:?}; hint: take the inventory from an install of {}",
            inv.name, spec.name, spec.name
        )));
    }
    if inv.version.is_none() {
        return Err(bad(
            "nothing is installed on the target; hint: ship the full bundle".into(),
        ));
    }
    Ok(inv)
}

fn sha(b: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&Sha256::digest(b).into())
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> BuildError + '_ {
    move |e| BuildError::Io {
        path: path.to_owned(),
        source: e,
    }
}

/// The OCI index and docker-archive manifest for these images. Neither
/// lists the signatures and attestations, which are blobs of the layout
/// like the images' (the signed manifest's `provenance` names them): Docker
/// with the containerd store loads every manifest `index.json` lists, and
/// would make an "image" of each signature.
pub fn layout_files(images: &[ImageEntry]) -> Vec<(String, Vec<u8>)> {
    let index = OciIndex::of(
        images
            .iter()
            .map(|i| IndexEntry::platform_of(i).named(&i.name))
            .collect(),
    );
    // docker load reads one image per name; take each name's first platform.
    let mut seen = std::collections::BTreeSet::new();
    let docker: Vec<_> = images
        .iter()
        .filter(|i| seen.insert(i.name.clone()))
        .map(bundle_format::oci::DockerArchiveImage::of)
        .collect();
    vec![
        (
            layout::OCI_LAYOUT.to_owned(),
            layout::OCI_LAYOUT_CONTENT.as_bytes().to_vec(),
        ),
        (layout::OCI_INDEX.to_owned(), index.to_bytes()),
        (
            layout::DOCKER_MANIFEST.to_owned(),
            serde_json::to_vec(&docker).expect("json"),
        ),
    ]
}

/// Pulls what is missing and writes the bundle.
pub async fn execute(
    plan: BuildPlan,
    key: Arc<SecretKey>,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildSummary, BuildError> {
    let puller = Puller::new(plan.opts.pull.clone(), reporter.clone())?;
    let mut entries: Vec<ImageEntry> = Vec::new();
    for img in &plan.images {
        for r in puller
            .resolve(&img.source, &img.pin, &img.name, &plan.platforms)
            .await?
        {
            entries.push(r.entry);
        }
    }
    // The policy is checked before any layer is pulled.
    let provenance = provenance(&plan, &puller, &*reporter).await?;
    let mut image_of: BTreeMap<Digest, (ImageRef, String)> = BTreeMap::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    for e in &entries {
        let img = plan
            .images
            .iter()
            .find(|p| p.name == e.name)
            .expect("planned");
        for d in e.blobs() {
            image_of
                .entry(d.digest.clone())
                .or_insert_with(|| (img.source.clone(), img.source.to_string()));
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d.clone());
            }
        }
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    // A delta leaves out what the target has; those blobs need no pull.
    let present: Vec<Descriptor> = match &plan.have {
        Some(inv) => {
            let have: std::collections::BTreeSet<&Digest> = inv.blobs.iter().collect();
            let (p, carried): (Vec<Descriptor>, Vec<Descriptor>) =
                blobs.into_iter().partition(|b| have.contains(&b.digest));
            blobs = carried;
            p
        }
        None => Vec::new(),
    };
    let to_fetch: u64 = blobs
        .iter()
        .filter(|d| !puller.cache().has(d))
        .map(|d| d.size)
        .sum();
    reporter.phase("pulling", to_fetch);
    let downloaded = puller.fetch(&image_of, &blobs).await?;
    let cache = puller.cache().clone();
    tokio::task::spawn_blocking(move || {
        let images = Images {
            entries,
            provenance,
            blobs,
            present,
        };
        write(plan, images, &cache, &key, reporter, downloaded)
    })
    .await
    .map_err(|e| BuildError::Option(format!("writer thread: {e}")))?
}

/// Each pinned image's signatures and attestations, checked against the
/// policy before anything is written: a required key that did not sign the
/// pinned digest fails the build, naming the image.
///
/// Without a policy for an image, its provenance is carried when the
/// registry serves it in a form read here; a registry that will not say, or
/// serves something else under cosign's tags, is no reason to fail the
/// build: it is reported, and the bundle carries none for that image.
async fn provenance(
    plan: &BuildPlan,
    puller: &Puller,
    reporter: &dyn Reporter,
) -> Result<Vec<Provenance>, BuildError> {
    let mut out = Vec::new();
    for img in &plan.images {
        if plan.opts.no_provenance && img.required_keys.is_empty() {
            continue;
        }
        let subject = puller.subject(&img.source, &img.pin).await?;
        let found = async {
            let artifacts = puller.provenance(&img.source, &subject).await?;
            let p = Provenance {
                source: img.source.to_string(),
                subject: subject.clone(),
                required_keys: img.required_keys.clone(),
                artifacts,
            };
            let cache = puller.cache();
            cosign::check(&p.source, &p, &plan.cosign_keys, &img.required_keys, &|d| {
                std::fs::read(cache.path(d)).ok()
            })?;
            Ok::<_, BuildError>(p)
        }
        .await;
        let p = match found {
            Ok(p) => p,
            Err(e) if img.required_keys.is_empty() => {
                reporter.message(&format!(
                    "note: {}: its signatures and attestations were not read ({}); the bundle carries none for it",
                    img.source,
                    bundle_format::error_text(&e)
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        if plan.opts.no_provenance || p.artifacts.is_empty() {
            continue;
        }
        out.push(p);
    }
    Ok(out)
}

/// What the images contribute to the bundle.
struct Images {
    /// One entry per image and platform.
    entries: Vec<ImageEntry>,
    /// The pinned images' signatures and attestations.
    provenance: Vec<Provenance>,
    /// The image blobs carried.
    blobs: Vec<Descriptor>,
    /// The image blobs a delta leaves out.
    present: Vec<Descriptor>,
}

fn write(
    plan: BuildPlan,
    Images {
        entries: images,
        provenance,
        blobs,
        present,
    }: Images,
    cache: &Cache,
    key: &SecretKey,
    reporter: Arc<dyn Reporter>,
    downloaded: usize,
) -> Result<BuildSummary, BuildError> {
    let opts = &plan.opts;
    let mut files = Vec::new();
    for f in &plan.files {
        let data = std::fs::read(&f.src).map_err(io_err(&f.src))?;
        files.push((
            FileEntry {
                path: f.dest.clone(),
                size: data.len() as u64,
                sha256: sha(&data),
                mode: f.mode,
            },
            data,
        ));
    }
    let layout_data = layout_files(&images);
    let layout_entries: Vec<FileEntry> = layout_data
        .iter()
        .map(|(name, data)| FileEntry {
            path: RelPath::new(name).expect("constant"),
            size: data.len() as u64,
            sha256: sha(data),
            mode: 0o644,
        })
        .collect();
    let created_unix = opts.source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let spec = &plan.spec;
    let manifest = Manifest {
        format: layout::FORMAT_VERSION,
        name: spec.name.clone(),
        version: spec.version.clone(),
        created: manifest_schema::rfc3339(created_unix),
        min_installer_version: spec.min_installer_version.clone().unwrap_or_else(|| {
            env!("CARGO_PKG_VERSION")
                .parse::<Version>()
                .expect("crate version")
        }),
        platforms: plan.platforms.clone(),
        files: files.iter().map(|(e, _)| e.clone()).collect(),
        layout: layout_entries,
        images: images.clone(),
        compose: spec.compose.clone(),
        env: spec.env.clone(),
        health: spec.health.clone(),
        hooks: spec.hooks.clone(),
        upgrade_from: spec.upgrade_from.clone(),
        delta: match (&plan.have, present.is_empty()) {
            (Some(inv), false) => Some(Delta {
                base_version: inv.version.clone().expect("checked in plan"),
                present_blobs: present.iter().map(|d| d.digest.clone()).collect(),
            }),
            _ => None,
        },
        trust: plan.trust.clone(),
        installer: spec.installer.as_ref().map(|i| BundledInstaller {
            path: RelPath::new(layout::INSTALLER_PATH).expect("constant"),
            version: i.version.clone(),
        }),
        cosign_keys: if provenance.iter().any(|p| !p.required_keys.is_empty()) {
            plan.cosign_keys
                .iter()
                .map(CosignPublicKey::to_manifest)
                .collect()
        } else {
            Vec::new()
        },
        provenance,
    };
    manifest_schema::validate_manifest(&manifest).map_err(|p| {
        BuildError::Option(format!(
            "internal: the manifest breaks the format's rules: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    manifest_bytes.push(b'\n');
    let comment = format!(
        "name:{} version:{} created:{}",
        manifest.name, manifest.version, manifest.created
    );
    let signature = key.sign(&manifest_bytes, &comment);
    let key_id = signature.key_id.to_string();

    let out = &opts.out;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    refuse_non_file(out)?;
    let total: u64 = files.iter().map(|(e, _)| e.size).sum::<u64>()
        + manifest.carried_blobs().iter().map(|b| b.size).sum::<u64>();
    reporter.phase("writing", total);
    let output = match opts.split_size {
        None => {
            let tmp = tempfile::Builder::new()
                .prefix(".bundler-partial-")
                .tempfile_in(dir)
                .map_err(io_err(dir))?;
            let f = tmp.as_file().try_clone().map_err(io_err(out))?;
            let f = SyncBehind::new(f).map_err(io_err(out))?;
            Output::Single(tmp, io::BufWriter::with_capacity(1 << 20, f))
        }
        Some(n) => Output::Split(PartWriter::new(dir, n)),
    };
    let counted = match output {
        Output::Single(..) => Hashing::counting(output),
        Output::Split(_) => Hashing::new(output),
    };
    let sink =
        Encoder::new(counted, opts.compression, opts.level, opts.threads).map_err(io_err(out))?;
    let mut tar = TarWriter::new(sink, created_unix);
    let e = io_err(out);
    let contents = Contents {
        manifest: &manifest,
        manifest_bytes: &manifest_bytes,
        signature: &signature,
        files: &files,
        layout: &layout_data,
    };
    let level = opts.level.unwrap_or(DEFAULT_ZSTD_LEVEL);
    writer::write_entries(&mut tar, &contents, level, &|d| cache.path(d), &|n| {
        reporter.advance(n)
    })
    .map_err(|w| match w {
        WriteError::Output(source) => e(source),
        WriteError::Blob { path, source } => BuildError::Io { path, source },
        WriteError::Mismatch { digest, actual } => {
            cache.evict(&digest);
            BuildError::CacheCorrupt { digest, actual }
        }
        WriteError::Missing(what) => BuildError::Option(format!("internal: {what}")),
    })?;
    let sink = tar.finish().map_err(&e)?;
    let (output, size, digest) = sink.finish().map_err(&e)?.finish();
    let parts = match output {
        Output::Single(tmp, w) => {
            let f = w.into_inner().map_err(|x| e(x.into_error()))?;
            f.finish().map_err(&e)?;
            let f = tmp.persist(out).map_err(|x| e(x.error))?;
            set_readable(&f, out)?;
            Vec::new()
        }
        Output::Split(p) => {
            let written = p.finish().map_err(&e)?;
            finish_parts(
                out,
                dir,
                written,
                size,
                digest.as_ref().expect("split output is hashed"),
                &manifest,
                opts.split_size.unwrap_or(0),
                key,
            )?
        }
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(BuildSummary {
        path: out.clone(),
        size,
        sha256: digest,
        name: manifest.name,
        version: manifest.version.to_string(),
        images: images.len(),
        blobs: blobs.len(),
        downloaded,
        key_id,
        delta: manifest.delta.as_ref().map(|d| DeltaSummary {
            base_version: d.base_version.to_string(),
            left_out: present.len(),
            left_out_bytes: present.iter().map(|p| p.size).sum(),
        }),
        parts,
    })
}

/// Bundles are not secret: 0644 like any release artifact (temp files start 0600).
fn set_readable(f: &std::fs::File, path: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(path))
}

/// Refuses a link, fifo, device or dir at an output path: the rename into
/// place would replace it without following it, but a link planted where
/// the bundle goes is worth an error, not a silent replacement (CWE-59).
fn refuse_non_file(path: &Path) -> Result<(), BuildError> {
    use bundle_format::safefs::{Kind, Refused};
    let found = match std::fs::symlink_metadata(path) {
        Ok(md) => Kind::of_metadata(&md),
        Err(_) => return Ok(()),
    };
    if found == Kind::File {
        return Ok(());
    }
    Err(BuildError::Option(
        Refused {
            path: path.to_owned(),
            found,
            wanted: Kind::File,
        }
        .to_string(),
    ))
}

/// Renames the parts to their final names (removing stale parts of an
/// earlier split of the same name first) and writes the signed index.
#[allow(clippy::too_many_arguments)]
fn finish_parts(
    out: &Path,
    dir: &Path,
    written: Vec<WrittenPart>,
    size: u64,
    digest: &Digest,
    manifest: &Manifest,
    part_size: u64,
    key: &SecretKey,
) -> Result<Vec<PathBuf>, BuildError> {
    let base = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BuildError::Option(format!("{}: not a file name", out.display())))?;
    let stale = format!("{base}.part-");
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&stale) {
                refuse_non_file(&entry.path())?;
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let n = written.len();
    let mut parts = Vec::with_capacity(n);
    let mut paths = Vec::with_capacity(n);
    for (i, w) in written.into_iter().enumerate() {
        let name = layout::part_file_name(&base, i + 1, n);
        let path = dir.join(&name);
        refuse_non_file(&path)?;
        let f = w.tmp.persist(&path).map_err(|x| BuildError::Io {
            path: path.clone(),
            source: x.error,
        })?;
        set_readable(&f, &path)?;
        parts.push(manifest_schema::Part {
            index: i + 1,
            file: name,
            size: w.size,
            sha256: w.sha256,
        });
        paths.push(path);
    }
    let index = manifest_schema::PartsIndex {
        format: layout::FORMAT_VERSION,
        bundle: base.clone(),
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        size,
        sha256: digest.clone(),
        part_size,
        parts,
    };
    let mut bytes = serde_json::to_vec_pretty(&index).expect("json");
    bytes.push(b'\n');
    let sig = key.sign(
        &bytes,
        &format!(
            "parts of {} {} ({n} parts)",
            manifest.name, manifest.version
        ),
    );
    let ipath = dir.join(layout::parts_index_name(&base));
    let spath = dir.join(format!("{}.minisig", layout::parts_index_name(&base)));
    for (p, data) in [(&ipath, bytes), (&spath, sig.to_file().into_bytes())] {
        bundle_format::safefs::write_atomic(p, &data, 0o644).map_err(io_err(p))?;
    }
    paths.push(ipath);
    paths.push(spath);
    Ok(paths)
}
