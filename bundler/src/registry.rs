//! Pulling pinned images from OCI registries into a content-addressed cache.
//!
//! 1. Resolve each pinned reference: fetch its manifest by digest and check
//!    the bytes against the digest; an index resolves to the requested
//!    platforms.
//! 2. Fetch every config and layer blob the cache lacks, streaming each to a
//!    temp file while hashing; only a blob whose digest matches is renamed
//!    into the cache (a bad blob never enters it). Downloads run in
//!    parallel, bounded, with retries: after a backoff that doubles, or
//!    after the registry's `Retry-After` (see [`crate::http`]).
//!
//! Manifests are small and kept in memory; blobs never are.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bundle_format::cosign;
use futures_util::StreamExt;
use manifest_schema::{Artifact, ArtifactKind, Descriptor, Digest, ImageEntry, ImageRef, Platform};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::http::{chain, HttpError, Kind, RegistryHttp, Retry};
use crate::progress::Reporter;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = bundle_format::oci::OCI_INDEX_MEDIA_TYPE;
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
/// The largest manifest accepted (distribution's own limit is 4 MiB).
const MAX_MANIFEST: usize = 8 << 20;

/// Errors while pulling.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry refused or failed.
    #[error("image {image}: {what}: {message}; hint: {hint}")]
    Registry {
        /// The image.
        image: String,
        /// What was fetched.
        what: String,
        /// The registry's or client's message (never credentials).
        message: String,
        /// The next step.
        hint: &'static str,
    },
    /// Content did not match its digest.
    #[error("image {image}: {what} {expected}: content has digest {actual}; the registry served wrong or damaged data; hint: it was not cached; run the build again, and if it persists report it to the registry's operator")]
    Digest {
        /// The image.
        image: String,
        /// "manifest" or "blob".
        what: &'static str,
        /// Expected digest.
        expected: Digest,
        /// Computed digest.
        actual: Digest,
    },
    /// A requested platform is missing.
    #[error("image {image} has no manifest for platform {platform} (it has: {available}); hint: drop the platform or use an image built for it")]
    Platform {
        /// The image.
        image: String,
        /// Requested platform.
        platform: Platform,
        /// Platforms the index lists.
        available: String,
    },
    /// A manifest could not be understood.
    #[error("image {image}: manifest {digest}: {message}")]
    Manifest {
        /// The image.
        image: String,
        /// Its digest.
        digest: Digest,
        /// What is wrong.
        message: String,
    },
    /// A `--ca-cert` file could not be used.
    #[error("CA certificate {path}: {message}; hint: pass the registry's CA certificate in PEM form with --ca-cert")]
    CaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the registry client: {message}; hint: check the --ca-cert files")]
    Client {
        /// What is wrong.
        message: String,
    },
    /// Cache I/O.
    #[error("cache {path}")]
    Cache {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

pub use bundle_format::dockerconfig::Credentials;

pub use crate::creds::{credentials_for, PASSWORD_ENV, REGISTRY_ENV, USER_ENV};

/// How to reach registries and where to cache.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Hosts reached over plain HTTP.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM).
    pub ca_certs: Vec<PathBuf>,
    /// Cache dir (blobs under `blobs/sha256`).
    pub cache_dir: PathBuf,
    /// Parallel downloads.
    pub jobs: usize,
    /// Attempts per request.
    pub attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff: Duration,
    /// Longest wait for the next byte of a response.
    pub read_timeout: Duration,
}

/// The default cache dir: `$BUNDLER_CACHE_DIR`, else `$XDG_CACHE_HOME/bundler`,
/// else `~/.cache/bundler`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BUNDLER_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("bundler");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/bundler"))
        .unwrap_or_else(|| PathBuf::from(".bundler-cache"))
}

/// The content-addressed blob cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creates) a cache.
    pub fn open(root: &Path) -> Result<Self, PullError> {
        let err = |e| PullError::Cache {
            path: root.to_owned(),
            source: e,
        };
        std::fs::create_dir_all(root.join("blobs/sha256")).map_err(err)?;
        std::fs::create_dir_all(root.join("tmp")).map_err(err)?;
        Ok(Cache {
            root: root.to_owned(),
        })
    }

    /// Path of a blob (whether present or not).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// True when the blob is cached with the expected size.
    pub fn has(&self, d: &Descriptor) -> bool {
        std::fs::metadata(self.path(&d.digest)).is_ok_and(|m| m.len() == d.size)
    }

    /// Stores small verified bytes (manifests).
    pub fn put(&self, d: &Digest, bytes: &[u8]) -> Result<(), PullError> {
        let err = |e| PullError::Cache {
            path: self.path(d),
            source: e,
        };
        // Written through the temp file's own handle (tempfile created it
        // exclusively under a random name): reopening it by name would follow
        // a link swapped in meanwhile.
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(err)?;
        std::io::Write::write_all(tmp.as_file_mut(), bytes).map_err(err)?;
        tmp.persist(self.path(d)).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Removes a blob found damaged.
    pub fn evict(&self, d: &Digest) {
        let _ = std::fs::remove_file(self.path(d));
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

/// Pulls from registries.
pub struct Puller {
    http: RegistryHttp,
    opts: PullOptions,
    cache: Cache,
    reporter: Arc<dyn Reporter>,
}

impl fmt::Debug for Puller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Puller({:?})", self.opts)
    }
}

fn sha(b: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&Sha256::digest(b).into())
}

/// One failed attempt, and whether another may pass.
#[derive(Debug)]
struct Failed {
    error: PullError,
    retry: Retry,
}

impl Failed {
    fn registry(image: &str, what: &str, e: HttpError) -> Failed {
        Failed {
            error: PullError::Registry {
                image: image.to_owned(),
                what: what.to_owned(),
                message: e.message,
                hint: e.hint,
            },
            retry: e.retry,
        }
    }
}

/// Runs `attempt` until it passes, fails for good, or `opts.attempts` are
/// used. Between attempts it waits the backoff (from `opts.backoff`,
/// doubling), or longer when the registry's `Retry-After` asks for more.
async fn retrying<T, F, Fut>(
    opts: &PullOptions,
    reporter: &dyn Reporter,
    what: &str,
    mut attempt: F,
) -> Result<T, PullError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failed>>,
{
    let mut backoff = opts.backoff;
    let mut n = 1;
    loop {
        let Failed { error, retry } = match attempt().await {
            Ok(v) => return Ok(v),
            Err(f) => f,
        };
        let (wait, why) = match retry {
            _ if n >= opts.attempts => return Err(error),
            Retry::Never => return Err(error),
            Retry::Backoff => (backoff, String::new()),
            Retry::After(asked) if asked > backoff => {
                (asked, " (the registry's Retry-After)".to_owned())
            }
            Retry::After(_) => (backoff, String::new()),
        };
        reporter.message(&format!(
            "retrying {what} (attempt {} of {}) in {:.1}s{why} after: {}",
            n + 1,
            opts.attempts,
            wait.as_secs_f64(),
            error.brief()
        ));
        tokio::time::sleep(wait).await;
        backoff *= 2;
        n += 1;
    }
}

/// Reads a manifest body, refusing more than [`MAX_MANIFEST`] bytes.
async fn manifest_body(
    shown: &str,
    what: &str,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, Failed> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(c)) => {
                body.extend_from_slice(&c);
                if body.len() > MAX_MANIFEST {
                    return Err(Failed::registry(
                        shown,
                        what,
                        HttpError {
                            message: format!("more than {MAX_MANIFEST} bytes: not a manifest"),
                            hint: "check the reference; the registry serves something else there",
                            retry: Retry::Never,
                        },
                    ));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Failed::registry(
                    shown,
                    what,
                    HttpError {
                        message: format!("download interrupted: {}", chain(&e)),
                        hint: "the connection dropped or stalled; run the build again",
                        retry: Retry::Backoff,
                    },
                ))
            }
        }
    }
}

impl PullError {
    /// The message without the image and hint (for retry notices).
    fn brief(&self) -> String {
        match self {
            PullError::Registry { message, .. } => message.clone(),
            PullError::Digest { actual, .. } => {
                format!("content has digest {actual} (wrong or damaged data)")
            }
            e => e.to_string(),
        }
    }
}

/// A resolved image: its entry for the manifest, plus the manifest bytes.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The entry as the bundle manifest lists it.
    pub entry: ImageEntry,
}

impl Puller {
    /// Builds a client.
    pub fn new(opts: PullOptions, reporter: Arc<dyn Reporter>) -> Result<Self, PullError> {
        let http = RegistryHttp::new(&opts)?;
        let cache = Cache::open(&opts.cache_dir)?;
        Ok(Puller {
            http,
            opts,
            cache,
            reporter,
        })
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    async fn manifest_bytes(
        &self,
        image: &ImageRef,
        digest: &Digest,
        shown: &str,
    ) -> Result<Vec<u8>, PullError> {
        if let Ok(b) = std::fs::read(self.cache.path(digest)) {
            if sha(&b) == *digest {
                return Ok(b);
            }
            self.cache.evict(digest);
        }
        let what = format!("manifest {digest}");
        let bytes = retrying(
            &self.opts,
            &*self.reporter,
            &format!("{what} of {shown}"),
            || async {
                let response = self
                    .http
                    .get(image, Kind::Manifest, digest.as_str(), ACCEPTED)
                    .await
                    .map_err(|e| Failed::registry(shown, &what, e))?;
                let bytes = manifest_body(shown, &what, response).await?;
                let actual = sha(&bytes);
                if &actual != digest {
                    return Err(Failed {
                        error: PullError::Digest {
                            image: shown.to_owned(),
                            what: "manifest",
                            expected: digest.clone(),
                            actual,
                        },
                        retry: Retry::Backoff,
                    });
                }
                Ok(bytes)
            },
        )
        .await?;
        self.cache.put(digest, &bytes)?;
        Ok(bytes)
    }

    /// Resolves a pinned image to one entry per requested platform.
    pub async fn resolve(
        &self,
        image: &ImageRef,
        top: &Digest,
        name: &str,
        platforms: &[Platform],
    ) -> Result<Vec<Resolved>, PullError> {
        let shown = image.to_string();
        let top = top.clone();
        let bytes = self.manifest_bytes(image, &top, &shown).await?;
        let bad = |message: String| PullError::Manifest {
            image: shown.clone(),
            digest: top.clone(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let media = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
        let is_index = media == OCI_INDEX
            || media == DOCKER_LIST
            || (media.is_empty() && v.get("manifests").is_some());
        let mut out = Vec::new();
        if is_index {
            let entries = v["manifests"].as_array().cloned().unwrap_or_default();
            let list: Vec<(Platform, Descriptor)> = entries
                .iter()
                .filter_map(|m| {
                    let p = m.get("platform")?;
                    let mut plat = format!(
                        "{}/{}",
                        p.get("os")?.as_str()?,
                        p.get("architecture")?.as_str()?
                    );
                    if let Some(var) = p.get("variant").and_then(|x| x.as_str()) {
                        plat = format!("{plat}/{var}");
                    }
                    Some((plat.parse().ok()?, descriptor(m).ok()?))
                })
                .collect();
            for want in platforms {
                let found = list.iter().find(|(p, _)| {
                    p == want || (p.os == want.os && p.arch == want.arch && want.variant.is_none())
                });
                let Some((plat, d)) = found else {
                    return Err(PullError::Platform {
                        image: shown.clone(),
                        platform: want.clone(),
                        available: list
                            .iter()
                            .map(|(p, _)| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                let mb = self.manifest_bytes(image, &d.digest, &shown).await?;
                out.push(self.image_entry(image, name, &shown, plat.clone(), d.clone(), &mb)?);
            }
        } else {
            let d = Descriptor {
                media_type: if media.is_empty() {
                    OCI_MANIFEST.into()
                } else {
                    media.into()
                },
                digest: top.clone(),
                size: bytes.len() as u64,
            };
            let entry = self.image_entry(
                image,
                name,
                &shown,
                Platform {
                    os: String::new(),
                    arch: String::new(),
                    variant: None,
                },
                d,
                &bytes,
            )?;
            // A single-platform manifest: its config says which platform.
            if !self.cache.has(&entry.entry.config) {
                self.fetch_one(image, &shown, &entry.entry.config).await?;
            }
            let cfg = std::fs::read(self.cache.path(&entry.entry.config.digest)).ok();
            let plat = cfg
                .as_deref()
                .and_then(|c| serde_json::from_slice::<serde_json::Value>(c).ok())
                .and_then(|c| {
                    let mut p = format!(
                        "{}/{}",
                        c.get("os")?.as_str()?,
                        c.get("architecture")?.as_str()?
                    );
                    if let Some(var) = c.get("variant").and_then(|x| x.as_str()) {
                        p = format!("{p}/{var}");
                    }
                    p.parse::<Platform>().ok()
                })
                .ok_or_else(|| bad("config does not name os and architecture".into()))?;
            if !platforms
                .iter()
                .any(|w| w.os == plat.os && w.arch == plat.arch)
            {
                return Err(PullError::Platform {
                    image: shown.clone(),
                    platform: platforms[0].clone(),
                    available: plat.to_string(),
                });
            }
            let mut e = entry;
            e.entry.platform = plat;
            out.push(e);
        }
        Ok(out)
    }

    fn image_entry(
        &self,
        image: &ImageRef,
        name: &str,
        shown: &str,
        platform: Platform,
        manifest: Descriptor,
        bytes: &[u8],
    ) -> Result<Resolved, PullError> {
        let bad = |message: String| PullError::Manifest {
            image: shown.to_owned(),
            digest: manifest.digest.clone(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let config =
            descriptor(v.get("config").ok_or_else(|| bad("no config".into()))?).map_err(bad)?;
        let layers = v
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or_else(|| bad("no layers".into()))?
            .iter()
            .map(descriptor)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        Ok(Resolved {
            entry: ImageEntry {
                name: name.to_owned(),
                source: image.to_string(),
                platform,
                manifest,
                config,
                layers,
            },
        })
    }

    /// Fetches every blob the cache lacks, in parallel. Returns how many
    /// were downloaded.
    pub async fn fetch(
        &self,
        image_of: &BTreeMap<Digest, (ImageRef, String)>,
        blobs: &[Descriptor],
    ) -> Result<usize, PullError> {
        let missing: Vec<&Descriptor> = blobs.iter().filter(|d| !self.cache.has(d)).collect();
        let results = futures_util::stream::iter(missing.iter().map(|d| {
            let (img, shown) = &image_of[&d.digest];
            self.fetch_one(img, shown, d)
        }))
        .buffer_unordered(self.opts.jobs.max(1))
        .collect::<Vec<_>>()
        .await;
        for r in results {
            r?;
        }
        Ok(missing.len())
    }

    async fn fetch_one(
        &self,
        image: &ImageRef,
        shown: &str,
        d: &Descriptor,
    ) -> Result<(), PullError> {
        let what = format!("blob {} of {shown}", d.digest);
        retrying(&self.opts, &*self.reporter, &what, || {
            self.try_fetch(image, shown, d)
        })
        .await
    }

    async fn try_fetch(&self, image: &ImageRef, shown: &str, d: &Descriptor) -> Result<(), Failed> {
        let what = format!("blob {}", d.digest);
        let fail = |message: String, hint: &'static str, retry: Retry| {
            Failed::registry(
                shown,
                &what,
                HttpError {
                    message,
                    hint,
                    retry,
                },
            )
        };
        let cache_err = |e: std::io::Error| Failed {
            error: PullError::Cache {
                path: self.cache.path(&d.digest),
                source: e,
            },
            retry: Retry::Never,
        };
        let too_long = |got: u64| {
            fail(
                format!(
                    "registry sent {got} bytes or more, the manifest declares {}",
                    d.size
                ),
                "the registry serves wrong data; report it to its operator",
                Retry::Never,
            )
        };
        let mut response = self
            .http
            .get(image, Kind::Blob, d.digest.as_str(), &[])
            .await
            .map_err(|e| Failed::registry(shown, &what, e))?;
        if let Some(len) = response.content_length().filter(|&l| l > d.size) {
            return Err(too_long(len));
        }
        let tmp = tempfile::NamedTempFile::new_in(self.cache.tmp_dir()).map_err(cache_err)?;
        let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(cache_err)?);
        let mut hasher = Sha256::new();
        let mut got: u64 = 0;
        self.reporter.blob_start(&d.digest, d.size);
        let streamed = async {
            loop {
                let chunk = match response.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        return Err(fail(
                            format!(
                                "download interrupted after {got} of {} bytes: {}",
                                d.size,
                                chain(&e)
                            ),
                            "the connection dropped or stalled; run the build again, finished blobs stay cached (--registry-timeout sets how long a stall may last)",
                            Retry::Backoff,
                        ))
                    }
                };
                got += chunk.len() as u64;
                if got > d.size {
                    return Err(too_long(got));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(cache_err)?;
                self.reporter.blob_progress(&d.digest, chunk.len() as u64);
            }
        }
        .await;
        self.reporter.blob_done(&d.digest);
        streamed?;
        file.flush().await.map_err(cache_err)?;
        file.sync_all().await.map_err(cache_err)?;
        drop(file);
        if got != d.size {
            return Err(fail(
                format!(
                    "registry sent {got} bytes, the manifest declares {}",
                    d.size
                ),
                "the download was cut short; run the build again",
                Retry::Backoff,
            ));
        }
        let actual = Digest::from_sha256_bytes(&hasher.finalize().into());
        if actual != d.digest {
            // The temp file is dropped (deleted): a bad blob never enters the cache.
            return Err(Failed {
                error: PullError::Digest {
                    image: shown.to_owned(),
                    what: "blob",
                    expected: d.digest.clone(),
                    actual,
                },
                retry: Retry::Backoff,
            });
        }
        tmp.persist(self.cache.path(&d.digest))
            .map_err(|e| cache_err(e.error))?;
        Ok(())
    }
}

/// How a cosign tag or an OCI referrer may be served.
const ARTIFACT_ACCEPT: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];
/// The most referrers of one image looked at.
const MAX_REFERRERS: usize = 64;

/// A manifest's own media type: its `mediaType`, else what its shape says.
fn media_type_of(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_owned(),
        None if v.get("manifests").is_some() => OCI_INDEX.into(),
        None => OCI_MANIFEST.into(),
    }
}

impl Puller {
    /// What a pinned image's signatures are over: the manifest or index
    /// its digest names (fetched, checked and cached by [`Self::resolve`]).
    pub async fn subject(&self, image: &ImageRef, top: &Digest) -> Result<Descriptor, PullError> {
        let top = top.clone();
        let bytes = self.manifest_bytes(image, &top, &image.to_string()).await?;
        Ok(Descriptor {
            media_type: media_type_of(&bytes),
            digest: top,
            size: bytes.len() as u64,
        })
    }

    /// The cosign signatures and attestations the registry has for
    /// `subject`: its `sha256-<hex>.sig` and `.att` tags, then its OCI 1.1
    /// referrers (the referrers API, else the fallback tag `sha256-<hex>`).
    /// Each manifest is cached under the digest of its bytes, and its
    /// config and layers are fetched into the cache like any blob.
    pub async fn provenance(
        &self,
        image: &ImageRef,
        subject: &Descriptor,
    ) -> Result<Vec<Artifact>, PullError> {
        let shown = image.to_string();
        let hex = subject.digest.hex();
        let bad = |digest: &Digest, message: String| PullError::Manifest {
            image: shown.clone(),
            digest: digest.clone(),
            message,
        };
        let mut out: Vec<Artifact> = Vec::new();
        for (suffix, kind) in [
            ("sig", ArtifactKind::Signature),
            ("att", ArtifactKind::Attestation),
        ] {
            let tag = format!("sha256-{hex}.{suffix}");
            let Some(bytes) = self
                .optional(image, Kind::Manifest, &tag, ARTIFACT_ACCEPT, &shown)
                .await?
            else {
                continue;
            };
            let d = Descriptor {
                media_type: media_type_of(&bytes),
                digest: sha(&bytes),
                size: bytes.len() as u64,
            };
            self.cache.put(&d.digest, &bytes)?;
            match cosign::describe(&d, &bytes).map_err(|e| bad(&d.digest, format!("tag {tag}: {e}")))? {
                Some(mut a) if a.kind == kind => {
                    a.tag = Some(tag);
                    out.push(a);
                }
                _ => {
                    return Err(bad(
                        &d.digest,
                        format!("tag {tag} holds no cosign {suffix} (its layers are of another type); hint: remove the tag, or push what cosign wrote there"),
                    ))
                }
            }
        }
        let listing = match self
            .optional(
                image,
                Kind::Referrers,
                subject.digest.as_str(),
                &[OCI_INDEX],
                &shown,
            )
            .await?
        {
            Some(b) => Some(b),
            None => {
                self.optional(
                    image,
                    Kind::Manifest,
                    &format!("sha256-{hex}"),
                    &[OCI_INDEX],
                    &shown,
                )
                .await?
            }
        };
        if let Some(listing) = listing {
            let v: serde_json::Value = serde_json::from_slice(&listing)
                .map_err(|e| bad(&subject.digest, format!("its referrers are not JSON: {e}")))?;
            let manifests = v["manifests"].as_array().cloned().unwrap_or_default();
            for m in manifests.iter().take(MAX_REFERRERS) {
                let d =
                    descriptor(m).map_err(|e| bad(&subject.digest, format!("a referrer: {e}")))?;
                if out.iter().any(|a| a.manifest.digest == d.digest) {
                    continue;
                }
                let bytes = self.manifest_bytes(image, &d.digest, &shown).await?;
                let d = Descriptor {
                    media_type: media_type_of(&bytes),
                    ..d
                };
                // Another tool's referrer (or a new-format sigstore bundle)
                // is not cosign's: left where it is.
                if let Some(a) = cosign::describe(&d, &bytes)
                    .map_err(|e| bad(&d.digest, format!("a referrer of {}: {e}", subject.digest)))?
                {
                    out.push(a);
                }
            }
        }
        for a in &out {
            for d in std::iter::once(&a.config).chain(&a.layers) {
                if !self.cache.has(d) {
                    self.fetch_one(image, &shown, d).await?;
                }
            }
        }
        Ok(out)
    }

    /// The body of what may not be there (`None` for a 404), with the usual
    /// retries and the manifest size limit.
    async fn optional(
        &self,
        image: &ImageRef,
        kind: Kind,
        reference: &str,
        accept: &[&str],
        shown: &str,
    ) -> Result<Option<Vec<u8>>, PullError> {
        let what = format!("{} {reference}", kind.noun());
        retrying(
            &self.opts,
            &*self.reporter,
            &format!("{what} of {shown}"),
            || async {
                match self
                    .http
                    .get_if_present(image, kind, reference, accept)
                    .await
                    .map_err(|e| Failed::registry(shown, &what, e))?
                {
                    Some(r) => Ok(Some(manifest_body(shown, &what, r).await?)),
                    None => Ok(None),
                }
            },
        )
        .await
    }
}

fn descriptor(v: &serde_json::Value) -> Result<Descriptor, String> {
    let digest = v
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or("descriptor without digest")?
        .parse::<Digest>()
        .map_err(|e| bundle_format::error_text(&e))?;
    Ok(Descriptor {
        media_type: v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned(),
        size: v
            .get("size")
            .and_then(serde_json::Value::as_u64)
            .ok_or("descriptor without size")?,
        digest,
    })
}

/// Resolves a tag to its digest (for `bundler pin`): the sha256 of the
/// manifest the registry serves for it, with the same retries as a build.
pub async fn resolve_tag(
    opts: &PullOptions,
    reporter: &dyn Reporter,
    image: &ImageRef,
) -> Result<Digest, PullError> {
    let http = RegistryHttp::new(opts)?;
    let tag = image.tag.clone().unwrap_or_else(|| "latest".into());
    let shown = image.to_string();
    let what = format!("tag {tag}");
    retrying(opts, reporter, &format!("{what} of {shown}"), || async {
        let response = http
            .get(image, Kind::Manifest, &tag, ACCEPTED)
            .await
            .map_err(|e| Failed::registry(&shown, &what, e))?;
        Ok(sha(&manifest_body(&shown, &what, response).await?))
    })
    .await
}
