//! `installer push`: the bundle's images into the site's own registry, in
//! one verifying pass over the bundle.
//!
//! 1. Check that the registry answers and takes the credentials, before the
//!    bundle is read.
//! 2. Check the bundle's signature; plan which repository needs which blob
//!    (`HOST/PREFIX/` and the image's path; two images may not claim one
//!    tag).
//! 3. Stream every entry, verifying it: a blob the registry has (HEAD) is
//!    not sent; one that another repository of the bundle has is mounted;
//!    the rest is uploaded in chunks and completed only once its sha256
//!    matched the signed manifest. Image manifests are kept in memory.
//! 4. Only once the whole bundle verified, put each image's manifest, byte
//!    for byte (so its digest is the one pinned), under the tag compose
//!    uses. Until then no tag changed: an interrupted push leaves only
//!    unreferenced blobs, and a re-run sends what is still missing.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use manifest_schema::{Descriptor, Digest, ImageEntry, Manifest, Provenance};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::bundle::{self, BundleError, EntryKind, EntrySink, SignedManifest};
use crate::install::{fault_on, Report};
use crate::minisign::PublicKey;
use crate::parts::OpenError;
use crate::registry::{Client, ClientOptions, RegistryError, Site};
use bundle_format::oci::{IndexEntry, OciIndex, OCI_INDEX_MEDIA_TYPE};

/// Bytes sent per upload request.
pub const CHUNK: usize = 8 << 20;

/// Flags of `installer push`.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The bundle (a file, a split bundle's parts or index, a directory).
    pub bundle: Vec<PathBuf>,
    /// The keys it must be signed by.
    pub keys: Vec<PublicKey>,
    /// Where to push.
    pub site: Site,
    /// How to reach it.
    pub client: ClientOptions,
    /// Set by a signal handler: stop.
    pub interrupted: Arc<AtomicBool>,
    /// Draw a progress line on stderr.
    pub progress: bool,
}

/// One image as pushed.
#[derive(Debug, Clone, Serialize)]
pub struct PushedImage {
    /// The name compose uses.
    pub name: String,
    /// Where it is now, by tag.
    pub reference: String,
    /// The manifest digests under that tag (one per platform).
    pub digests: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pushed {
    /// Product.
    pub name: String,
    /// Version.
    pub version: String,
    /// `HOST[:PORT][/PREFIX]`.
    pub registry: String,
    /// The images.
    pub images: Vec<PushedImage>,
    /// Blobs sent.
    pub blobs_uploaded: usize,
    /// Bytes sent in them.
    pub bytes_uploaded: u64,
    /// Blobs the registry had already.
    pub blobs_present: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Manifests and tags put.
    pub manifests_pushed: usize,
    /// Tags that already pointed at the right manifest.
    pub manifests_present: usize,
    /// Cosign signature manifests pushed along (or already there).
    pub signatures: usize,
    /// Cosign attestation manifests pushed along (or already there).
    pub attestations: usize,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The bundle could not be opened or failed verification.
    #[error("bundle {path}")]
    Open {
        /// The bundle.
        path: String,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The bundle failed verification while it streamed.
    #[error("bundle {path}: {}; no tag was changed", bundle_format::error_text(.cause))]
    Bundle {
        /// The bundle.
        path: String,
        /// Why (in the message, before what it means for the tags).
        cause: BundleError,
    },
    /// The registry failed or refused.
    #[error("{}; no tag was changed", bundle_format::error_text(.0))]
    Registry(RegistryError),
    /// The registry failed after the first tag was put.
    #[error(transparent)]
    Tagging(RegistryError),
    /// Bad input.
    #[error("{0}")]
    Input(String),
}

impl PushError {
    /// The bundle, not the host or registry, is at fault.
    pub fn is_verification(&self) -> bool {
        match self {
            PushError::Open { source, .. } => source.is_verification(),
            PushError::Bundle { cause, .. } => cause.is_verification(),
            _ => false,
        }
    }
    /// The registry is at fault.
    pub fn is_registry(&self) -> bool {
        matches!(self, PushError::Registry(_) | PushError::Tagging(_))
    }
}

/// Which repository needs which blob.
#[derive(Debug, Default)]
struct Plan {
    /// Config and layer blobs, with the repositories that need each.
    blobs: BTreeMap<Digest, Vec<String>>,
    /// Image manifests (put as manifests, not blobs).
    manifests: BTreeSet<Digest>,
    /// `(repository, tag)` with its images, one per platform.
    tags: BTreeMap<(String, String), Vec<ImageEntry>>,
    /// Signature and attestation manifests (and the indexes pins name), by
    /// the repositories of the images they are about.
    provenance: Vec<(String, Provenance)>,
    /// Bytes the read verifies (the progress line's whole).
    total: u64,
}

fn plan_for(site: &Site, m: &Manifest) -> Result<Plan, PushError> {
    let mut p = Plan {
        total: m.payload_size(),
        ..Plan::default()
    };
    for img in &m.images {
        let repo = site
            .repository(&img.name)
            .map_err(|e| PushError::Input(format!("image {}: {e}", img.name)))?;
        let tag = Site::tag(&img.name);
        let list = p.tags.entry((repo.clone(), tag.clone())).or_default();
        if let Some(other) = list.iter().find(|o| o.platform == img.platform) {
            if other.manifest.digest != img.manifest.digest {
                return Err(PushError::Input(format!(
                    "images {} and {} would both be {}/{repo}:{tag} for {}; hint: push to a prefix per source registry, or rename one in the spec",
                    other.name, img.name, site.host, img.platform
                )));
            }
            continue;
        }
        list.push(img.clone());
        p.manifests.insert(img.manifest.digest.clone());
        for d in std::iter::once(&img.config).chain(&img.layers) {
            let repos = p.blobs.entry(d.digest.clone()).or_default();
            if !repos.contains(&repo) {
                repos.push(repo.clone());
            }
        }
        // The image's signatures and attestations go where it goes, as
        // cosign looks for them there.
        if let Some(prov) = m.provenance_of(&img.source) {
            if p.provenance
                .iter()
                .any(|(r, q)| *r == repo && q.source == prov.source)
            {
                continue;
            }
            if !m
                .images
                .iter()
                .any(|i| i.manifest.digest == prov.subject.digest)
            {
                p.manifests.insert(prov.subject.digest.clone());
            }
            for a in &prov.artifacts {
                p.manifests.insert(a.manifest.digest.clone());
                for d in std::iter::once(&a.config).chain(&a.layers) {
                    let repos = p.blobs.entry(d.digest.clone()).or_default();
                    if !repos.contains(&repo) {
                        repos.push(repo.clone());
                    }
                }
            }
            p.provenance.push((repo.clone(), prov.clone()));
        }
    }
    Ok(p)
}

/// Puts the signatures and attestations, after the images: under cosign's
/// tags, or (an OCI 1.1 referrer) by digest with the referrers fallback tag
/// (`sha256-<hex>`, an index of the subject's referrers) updated, which is
/// where a registry without the referrers API is read. A pin that names an
/// index is put too when the registry takes it (it may lack platforms the
/// bundle left out).
fn put_provenance(
    client: &Client,
    plan: &Plan,
    manifests: &BTreeMap<Digest, Vec<u8>>,
    report: &dyn Report,
    done: &mut Pushed,
) -> Result<(), PushError> {
    let put_once = |repo: &str, reference: &str, d: &Descriptor, done: &mut Pushed| {
        if client
            .manifest_digest(repo, reference)
            .map_err(PushError::Tagging)?
            .as_deref()
            == Some(d.digest.as_str())
        {
            done.manifests_present += 1;
            return Ok::<_, PushError>(());
        }
        let bytes = manifests.get(&d.digest).ok_or_else(|| {
            PushError::Input(format!("manifest {} is not in the bundle", d.digest))
        })?;
        client
            .put_manifest(repo, reference, &d.media_type, bytes)
            .map_err(PushError::Tagging)?;
        done.manifests_pushed += 1;
        Ok(())
    };
    for (repo, prov) in &plan.provenance {
        if manifests.contains_key(&prov.subject.digest)
            && !plan
                .tags
                .values()
                .flatten()
                .any(|i| i.manifest.digest == prov.subject.digest)
        {
            if let Err(e) = put_once(repo, prov.subject.digest.as_str(), &prov.subject, done) {
                report.step(&format!(
                    "note: {repo}@{} (the index the pin names) was not put: {e}; its signatures are pushed, checked against it offline",
                    prov.subject.digest
                ));
            }
        }
        let mut referrers = Vec::new();
        for a in &prov.artifacts {
            match &a.tag {
                Some(tag) => put_once(repo, tag, &a.manifest, done)?,
                None => {
                    put_once(repo, a.manifest.digest.as_str(), &a.manifest, done)?;
                    referrers.push(a);
                }
            }
        }
        if !referrers.is_empty() {
            update_referrers_tag(client, repo, &prov.subject.digest, &referrers, done)?;
        }
        done.signatures += prov
            .artifacts
            .iter()
            .filter(|a| a.kind == manifest_schema::ArtifactKind::Signature)
            .count();
        done.attestations += prov
            .artifacts
            .iter()
            .filter(|a| a.kind == manifest_schema::ArtifactKind::Attestation)
            .count();
    }
    Ok(())
}

/// Adds `referrers` to the subject's referrers fallback tag, keeping what
/// the index there lists already.
fn update_referrers_tag(
    client: &Client,
    repo: &str,
    subject: &Digest,
    referrers: &[&manifest_schema::Artifact],
    done: &mut Pushed,
) -> Result<(), PushError> {
    let tag = format!("sha256-{}", subject.hex());
    // An index there that does not parse is replaced, as it was before.
    let mut listed: Vec<IndexEntry> = match client
        .manifest_digest(repo, &tag)
        .map_err(PushError::Tagging)?
    {
        Some(d) => {
            let bytes = fetch_manifest(client, repo, &d).map_err(PushError::Tagging)?;
            serde_json::from_slice::<OciIndex>(&bytes)
                .map(|i| i.manifests)
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    let before = listed.len();
    for a in referrers {
        if listed.iter().any(|m| m.digest == a.manifest.digest) {
            continue;
        }
        let mut m = IndexEntry::of(&a.manifest);
        if a.kind == manifest_schema::ArtifactKind::Signature {
            m.artifact_type = Some(bundle_format::cosign::SIGNATURE_ARTIFACT_TYPE.to_owned());
        }
        listed.push(m);
    }
    if listed.len() == before {
        done.manifests_present += 1;
        return Ok(());
    }
    let bytes = OciIndex::of(listed).to_bytes();
    client
        .put_manifest(repo, &tag, OCI_INDEX_MEDIA_TYPE, &bytes)
        .map_err(PushError::Tagging)?;
    done.manifests_pushed += 1;
    Ok(())
}

/// An upload in progress into one repository.
#[derive(Debug)]
struct Session {
    repo: String,
    at: String,
}

#[derive(Debug)]
enum Current {
    Skip,
    Manifest(Digest, Vec<u8>),
    Upload {
        digest: Digest,
        sessions: Vec<Session>,
        /// Repositories to mount into once the upload is complete.
        later: Vec<String>,
        buf: Vec<u8>,
        offset: u64,
    },
}

/// Uploads blobs as they stream out of the bundle.
struct PushSink<'a> {
    client: &'a Client,
    plan: &'a OnceCell<Plan>,
    interrupted: Arc<AtomicBool>,
    current: Current,
    /// Image manifests, verified, by digest.
    manifests: BTreeMap<Digest, Vec<u8>>,
    /// Whether the registry mounts (unknown until tried).
    mounts: Option<bool>,
    /// (blob, repository) a refused mount left without the blob.
    resend: BTreeMap<Digest, Vec<String>>,
    /// Only these blobs, when set (the second pass).
    only: Option<BTreeMap<Digest, Vec<String>>>,
    failed: Option<RegistryError>,
    done: Pushed,
    progress: Progress,
}

impl PushSink<'_> {
    fn fail(&mut self, e: RegistryError) -> io::Error {
        let text = e.to_string();
        self.failed = Some(e);
        io::Error::other(text)
    }

    fn begin_blob(&mut self, digest: &Digest) -> Result<Current, RegistryError> {
        let plan = self.plan.get().expect("planned in on_head");
        if plan.manifests.contains(digest) {
            return Ok(Current::Manifest(digest.clone(), Vec::new()));
        }
        let repos = match &self.only {
            Some(only) => only.get(digest).cloned().unwrap_or_default(),
            None => plan.blobs.get(digest).cloned().unwrap_or_default(),
        };
        let (mut have, mut missing) = (Vec::new(), Vec::new());
        for r in repos {
            if self.client.has_blob(&r, digest)? {
                have.push(r);
            } else {
                missing.push(r);
            }
        }
        if missing.is_empty() {
            if !have.is_empty() {
                self.done.blobs_present += 1;
            }
            return Ok(Current::Skip);
        }
        let mut upload = Vec::new();
        match have.first() {
            Some(from) if self.mounts != Some(false) => {
                for r in missing {
                    if self.client.mount(&r, digest, from)? {
                        self.mounts = Some(true);
                        self.done.blobs_mounted += 1;
                    } else {
                        self.mounts = Some(false);
                        upload.push(r);
                    }
                }
            }
            _ => upload = missing,
        }
        if upload.is_empty() {
            return Ok(Current::Skip);
        }
        // Upload once and mount into the rest, unless the registry
        // showed it does not mount.
        let later = if self.mounts == Some(false) {
            Vec::new()
        } else {
            upload.split_off(1)
        };
        let mut sessions = Vec::new();
        for repo in upload {
            let at = self.client.start_upload(&repo)?;
            sessions.push(Session { repo, at });
        }
        Ok(Current::Upload {
            digest: digest.clone(),
            sessions,
            later,
            buf: Vec::new(),
            offset: 0,
        })
    }

    /// Sends what is buffered to every open session.
    fn flush(&mut self) -> Result<(), RegistryError> {
        let Current::Upload {
            sessions,
            buf,
            offset,
            ..
        } = &mut self.current
        else {
            return Ok(());
        };
        if buf.is_empty() {
            return Ok(());
        }
        for s in sessions.iter_mut() {
            s.at = self.client.send_chunk(&s.repo, &s.at, *offset, buf)?;
            self.done.bytes_uploaded += buf.len() as u64;
        }
        *offset += buf.len() as u64;
        buf.clear();
        if let Some(arg) = fault_on("push-mid-blob") {
            if arg == "crash" {
                std::process::abort();
            }
        }
        Ok(())
    }

    fn finish_blob(&mut self) -> Result<(), RegistryError> {
        self.flush()?;
        match std::mem::replace(&mut self.current, Current::Skip) {
            Current::Skip => {}
            Current::Manifest(d, bytes) => {
                self.manifests.insert(d, bytes);
            }
            Current::Upload {
                digest,
                sessions,
                later,
                ..
            } => {
                for s in &sessions {
                    self.client.commit(&s.repo, &s.at, &digest)?;
                    self.done.blobs_uploaded += 1;
                }
                let from = &sessions[0].repo;
                for r in later {
                    if self.client.mount(&r, &digest, from)? {
                        self.mounts = Some(true);
                        self.done.blobs_mounted += 1;
                    } else {
                        self.mounts = Some(false);
                        self.resend.entry(digest.clone()).or_default().push(r);
                    }
                }
            }
        }
        Ok(())
    }
}

impl EntrySink for PushSink<'_> {
    fn begin(&mut self, _name: &str, kind: EntryKind<'_>) -> io::Result<()> {
        self.current = match kind {
            EntryKind::Blob(d) | EntryKind::Provenance(d) => match self.begin_blob(&d.digest) {
                Ok(c) => c,
                Err(e) => return Err(self.fail(e)),
            },
            _ => Current::Skip,
        };
        Ok(())
    }

    fn data(&mut self, chunk: &[u8]) -> io::Result<()> {
        crate::install::stop_if_interrupted(&self.interrupted)?;
        let total = self.plan.get().map_or(0, |p| p.total);
        self.progress.advance(chunk.len() as u64, total, &self.done);
        match &mut self.current {
            Current::Skip => Ok(()),
            Current::Manifest(_, bytes) => {
                bytes.extend_from_slice(chunk);
                Ok(())
            }
            Current::Upload { buf, .. } => {
                buf.extend_from_slice(chunk);
                if buf.len() >= CHUNK {
                    if let Err(e) = self.flush() {
                        return Err(self.fail(e));
                    }
                }
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.finish_blob().map_err(|e| self.fail(e))
    }
}

/// A progress line on stderr, redrawn at most five times a second.
#[derive(Debug)]
struct Progress {
    on: bool,
    seen: u64,
    last: Option<Instant>,
}

impl Progress {
    fn advance(&mut self, n: u64, total: u64, done: &Pushed) {
        self.seen += n;
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let pct = (self.seen * 100).checked_div(total).unwrap_or(100);
        eprint!(
            "\r  verified {pct:>3}% of {} MiB; sent {} MiB in {} blobs, {} already there, {} mounted   ",
            total >> 20,
            done.bytes_uploaded >> 20,
            done.blobs_uploaded,
            done.blobs_present,
            done.blobs_mounted
        );
        let _ = io::stderr().flush();
    }
    fn end(&self) {
        if self.on && self.last.is_some() {
            eprintln!();
        }
    }
}

/// Pushes the bundle's images; see the module docs for the steps.
pub fn push(opts: &PushOptions, report: &dyn Report) -> Result<Pushed, PushError> {
    let shown = opts
        .bundle
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let client = Client::new(&opts.site, opts.client.clone()).map_err(PushError::Registry)?;
    let probe = if opts.site.prefix.is_empty() {
        "library/probe".to_owned()
    } else {
        format!("{}/probe", opts.site.prefix)
    };
    client.check(&probe).map_err(PushError::Registry)?;
    let plan = OnceCell::new();
    let mut sink = PushSink {
        client: &client,
        plan: &plan,
        interrupted: opts.interrupted.clone(),
        current: Current::Skip,
        manifests: BTreeMap::new(),
        mounts: None,
        resend: BTreeMap::new(),
        only: None,
        failed: None,
        done: Pushed {
            registry: opts.site.to_string(),
            ..Pushed::default()
        },
        progress: Progress {
            on: opts.progress,
            seen: 0,
            last: None,
        },
    };
    let verified = read_pass(opts, &shown, &mut sink, |signed| {
        let p = plan_for(&opts.site, signed.manifest())?;
        report.step(&format!(
            "pushing {} {} (signed by key {}) to {}: {} images",
            signed.manifest().name,
            signed.manifest().version,
            signed.signer().id,
            opts.site,
            p.tags.len()
        ));
        let _ = plan.set(p);
        Ok(())
    })?;
    if !sink.resend.is_empty() {
        // The registry refused a mount after the bytes went by: read the
        // bundle once more for those blobs only.
        report.step(&format!(
            "{} does not mount blobs across repositories; sending {} shared blobs again",
            opts.site,
            sink.resend.len()
        ));
        sink.only = Some(std::mem::take(&mut sink.resend));
        sink.mounts = Some(false);
        sink.progress.seen = 0;
        read_pass(opts, &shown, &mut sink, |_| Ok(()))?;
    }
    sink.progress.end();
    let m = verified.manifest();
    let plan = plan.get().expect("planned");
    left_out_blobs(&client, m, plan).map_err(PushError::Registry)?;
    let mut done = std::mem::take(&mut sink.done);
    done.name = m.name.clone();
    done.version = m.version.to_string();
    put_tags(&client, &opts.site, plan, &sink.manifests, &mut done)?;
    put_provenance(&client, plan, &sink.manifests, report, &mut done)?;
    Ok(done)
}

/// One verifying read of the bundle through the sink.
fn read_pass(
    opts: &PushOptions,
    shown: &str,
    sink: &mut PushSink<'_>,
    on_head: impl FnOnce(&SignedManifest) -> Result<(), PushError>,
) -> Result<bundle::VerifiedManifest, PushError> {
    let input = crate::parts::open(&opts.bundle, &opts.keys).map_err(|source| PushError::Open {
        path: shown.to_owned(),
        source,
    })?;
    let r = bundle::read_bundle::<PushError>(input, &opts.keys, on_head, sink);
    match r {
        Ok(v) => Ok(v),
        Err(_) if sink.failed.is_some() => {
            Err(PushError::Registry(sink.failed.take().expect("checked")))
        }
        Err(PushError::Bundle { cause, .. }) => Err(PushError::Bundle {
            path: shown.to_owned(),
            cause,
        }),
        Err(e) => Err(e),
    }
}

impl From<BundleError> for PushError {
    fn from(cause: BundleError) -> Self {
        PushError::Bundle {
            path: String::new(),
            cause,
        }
    }
}

/// A delta bundle leaves out blobs the host had: the registry must have
/// them too (from the push of the full bundle), in the repository or one
/// it can mount from.
fn left_out_blobs(client: &Client, m: &Manifest, plan: &Plan) -> Result<(), RegistryError> {
    let Some(delta) = &m.delta else {
        return Ok(());
    };
    for d in &delta.present_blobs {
        let Some(repos) = plan.blobs.get(d) else {
            continue;
        };
        let mut have = None;
        let mut missing = Vec::new();
        for r in repos {
            if client.has_blob(r, d)? {
                have.get_or_insert(r.clone());
            } else {
                missing.push(r.clone());
            }
        }
        for r in missing {
            let mounted = match &have {
                Some(from) => client.mount(&r, d, from)?,
                None => false,
            };
            if !mounted {
                return Err(RegistryError::Status {
                    registry: client.host().to_owned(),
                    what: format!("blob {d} for {r}"),
                    status: 404,
                    detail: format!(
                        ": this delta bundle (against {}) leaves it out and the registry does not have it; hint: push the full bundle of {} first, or push the full bundle",
                        delta.base_version, delta.base_version
                    ),
                });
            }
        }
    }
    Ok(())
}

/// An OCI index of one tag's platform manifests, deterministic.
fn index_of(images: &[ImageEntry]) -> Vec<u8> {
    OciIndex::of(images.iter().map(IndexEntry::platform_of).collect()).to_bytes()
}

/// Puts each image's manifest under its tag (an index when the tag has
/// several platforms), unless the tag already points at it.
fn put_tags(
    client: &Client,
    site: &Site,
    plan: &Plan,
    manifests: &BTreeMap<Digest, Vec<u8>>,
    done: &mut Pushed,
) -> Result<(), PushError> {
    let mut first = true;
    for ((repo, tag), images) in &plan.tags {
        let err = |e| {
            if first {
                PushError::Registry(e)
            } else {
                PushError::Tagging(e)
            }
        };
        let (bytes, media_type) = if images.len() == 1 {
            let img = &images[0];
            match manifests.get(&img.manifest.digest) {
                Some(b) => (b.clone(), img.manifest.media_type.clone()),
                None => {
                    // A delta left the manifest out: the registry has it.
                    let d = img.manifest.digest.to_string();
                    if client.manifest_digest(repo, &d).map_err(err)?.is_none() {
                        return Err(PushError::Input(format!(
                            "{}: this delta bundle leaves out manifest {d} and {} does not have it; hint: push the full bundle first",
                            img.name, site
                        )));
                    }
                    (Vec::new(), img.manifest.media_type.clone())
                }
            }
        } else {
            for img in images {
                let d = img.manifest.digest.to_string();
                if client.manifest_digest(repo, &d).map_err(err)?.as_deref() != Some(d.as_str()) {
                    let b = manifests.get(&img.manifest.digest).ok_or_else(|| {
                        PushError::Input(format!(
                            "{}: manifest {d} is neither in the bundle nor in {site}; hint: push the full bundle first",
                            img.name
                        ))
                    })?;
                    client
                        .put_manifest(repo, &d, &img.manifest.media_type, b)
                        .map_err(err)?;
                }
            }
            (index_of(images), OCI_INDEX_MEDIA_TYPE.to_owned())
        };
        let want = if bytes.is_empty() {
            images[0].manifest.digest.to_string()
        } else {
            Digest::from_sha256_bytes(&Sha256::digest(&bytes).into()).to_string()
        };
        let reference = format!("{}/{repo}:{tag}", site.host);
        if client.manifest_digest(repo, tag).map_err(err)?.as_deref() == Some(want.as_str()) {
            done.manifests_present += 1;
        } else {
            let bytes = if bytes.is_empty() {
                fetch_manifest(client, repo, &want).map_err(err)?
            } else {
                bytes
            };
            client
                .put_manifest(repo, tag, &media_type, &bytes)
                .map_err(err)?;
            done.manifests_pushed += 1;
            first = false;
        }
        done.images.push(PushedImage {
            name: images[0].name.clone(),
            reference,
            digests: images
                .iter()
                .map(|i| i.manifest.digest.to_string())
                .collect(),
        });
    }
    Ok(())
}

/// A manifest's bytes from the registry, checked against its digest.
fn fetch_manifest(client: &Client, repo: &str, digest: &str) -> Result<Vec<u8>, RegistryError> {
    let what = format!("reading manifest {repo}@{digest}");
    let mut resp = client.call(
        crate::registry::Req::new("GET", format!("/v2/{repo}/manifests/{digest}"), &what)
            .scope(repo, "pull,push")
            .header("Accept", crate::registry::MANIFEST_ACCEPT),
    )?;
    if resp.status() != 200 {
        return Err(client.unexpected(&what, resp));
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_vec()
        .map_err(|e| RegistryError::Status {
            registry: client.host().to_owned(),
            what: what.clone(),
            status: 200,
            detail: format!(": {e}"),
        })?;
    let got = Digest::from_sha256_bytes(&Sha256::digest(&bytes).into()).to_string();
    if got != digest {
        return Err(RegistryError::Status {
            registry: client.host().to_owned(),
            what,
            status: 200,
            detail: format!(": the registry served content with digest {got}"),
        });
    }
    Ok(bytes)
}

/// Whether stderr can show a progress line.
pub fn progress_wanted(quiet: bool, json: bool) -> bool {
    !quiet && !json && io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_str(include_str!("../../fuzz/seeds/manifest/manifest.json")).unwrap()
    }

    #[test]
    fn every_image_gets_its_repository_and_each_blob_the_repositories_that_use_it() {
        let m = manifest();
        let site = Site::parse("reg.example:5000/site").unwrap();
        let p = plan_for(&site, &m).unwrap();
        assert!(!p.tags.is_empty());
        for img in &m.images {
            let repo = site.repository(&img.name).unwrap();
            assert!(repo.starts_with("site/"));
            assert!(p.manifests.contains(&img.manifest.digest));
            for l in &img.layers {
                assert!(p.blobs[&l.digest].contains(&repo), "{}", l.digest);
            }
            assert!(!p.blobs.contains_key(&img.manifest.digest));
        }
    }

    #[test]
    fn two_images_claiming_one_tag_are_refused_naming_both() {
        let mut m = manifest();
        let mut other = m.images[0].clone();
        other.name = format!(
            "ghcr.io/{}",
            m.images[0].name.trim_start_matches("docker.io/")
        );
        other.manifest.digest =
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse()
                .unwrap();
        m.images.push(other);
        let e = plan_for(&Site::parse("reg.example").unwrap(), &m)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&m.images[0].name) && e.contains("ghcr.io/"),
            "{e}"
        );
        assert!(e.contains("hint:"), "{e}");
    }

    #[test]
    fn a_multi_platform_tag_is_an_index_of_its_manifests() {
        let m = manifest();
        let mut arm = m.images[0].clone();
        arm.platform.arch = "arm64".into();
        let idx: serde_json::Value =
            serde_json::from_slice(&index_of(&[m.images[0].clone(), arm])).unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(idx["manifests"][1]["platform"]["architecture"], "arm64");
        assert_eq!(
            idx["manifests"][0]["digest"],
            m.images[0].manifest.digest.to_string()
        );
    }
}
