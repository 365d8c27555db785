//! Command-line interface of `bundler`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bundle_format::bundle::{self, Compression, Discard};
use bundle_format::minisign::PublicKey;
use clap::{Parser, Subcommand, ValueEnum};
use manifest_schema::{ImageRef, Platform};
use zeroize::Zeroizing;

use crate::build::{self, BuildOptions};
use crate::keys::{self, SecretKey, PASSWORD_ENV};
use crate::progress::{human, Bars, Lines, Quiet, Reporter};
use crate::registry::{default_cache_dir, PullOptions};

/// Exit code: bad input (spec, flags, files).
pub const EXIT_INPUT: u8 = 1;
/// Exit code: a bundle failed verification.
pub const EXIT_VERIFY: u8 = 2;
/// Exit code: a registry failed.
pub const EXIT_REGISTRY: u8 = 3;

/// Build signed offline bundles of a docker-compose stack.
#[derive(Debug, Parser)]
#[command(name = "bundler", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Registry access flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Reach this registry host over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Trust this extra CA certificate (PEM) for HTTPS registries.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,
    /// Blob cache dir [default: $XDG_CACHE_HOME/bundler].
    #[arg(long, env = "BUNDLER_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Attempts per registry request before the build fails (429s, 5xx,
    /// dropped connections and damaged blobs are retried with backoff).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
    /// Seconds without a byte from the registry before a request is given
    /// up (and retried).
    #[arg(long = "registry-timeout", value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

impl RegistryArgs {
    fn options(&self) -> PullOptions {
        PullOptions {
            insecure: self.insecure.clone(),
            ca_certs: self.ca_cert.clone(),
            cache_dir: self.cache_dir.clone().unwrap_or_else(default_cache_dir),
            jobs: self.jobs,
            attempts: self.attempts,
            backoff: Duration::from_millis(500),
            read_timeout: Duration::from_secs(self.timeout),
        }
    }
}

/// Compression choice.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// zstd (default): fast, multi-threaded.
    Zstd,
    /// gzip: for tools that lack zstd.
    Gzip,
    /// none: a plain tar, for media that compress themselves or when the
    /// images' layers are most of it (they are compressed already).
    None,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an ed25519 key pair in minisign's formats.
    Keygen {
        /// Secret key file to create (0600; never overwritten).
        #[arg(long)]
        secret_key: PathBuf,
        /// Public key file to create.
        #[arg(long)]
        public_key: PathBuf,
        /// Store the secret key without a password.
        #[arg(long)]
        unencrypted: bool,
    },
    /// Resolve image tags to digests and write them into the spec.
    Pin {
        /// The spec.
        spec: PathBuf,
        /// Write here instead of editing the spec in place.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Build a bundle.
    Build {
        /// The spec (bundle.yaml).
        spec: PathBuf,
        /// Secret key (minisign format).
        #[arg(long)]
        key: PathBuf,
        /// Output file [default: NAME-VERSION.bundle].
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Compression.
        #[arg(long, value_enum, default_value = "zstd")]
        compression: CompressionArg,
        /// Compression level (zstd 1-19, gzip 1-9; none takes no level).
        #[arg(long)]
        level: Option<i32>,
        /// Platforms, overriding the spec (os/arch, comma-separated).
        #[arg(long, value_delimiter = ',')]
        platform: Option<Vec<Platform>>,
        /// zstd worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: u32,
        /// Split into parts of at most SIZE (K, M, G, Ki, Mi, Gi), e.g. 3900Mi for FAT32.
        #[arg(long, value_parser = manifest_schema::parse_size)]
        split_size: Option<u64>,
        /// Build a delta: leave out every blob this inventory (`installer
        /// inventory`) says the target already has.
        #[arg(long, value_name = "HAVE.json")]
        have: Option<PathBuf>,
        /// Leave the images' cosign signatures and attestations out of the
        /// bundle (the spec's policy is still checked).
        #[arg(long)]
        no_provenance: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Verify a bundle's signature and every checksum.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// Trusted public key.
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Show what a bundle holds (the signature is not checked; use verify).
    Inspect {
        /// The bundle.
        bundle: PathBuf,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write an image's attested SBOM exactly as attested (the predicate of
    /// its `cosign attest` statement), reading the bundle only up to it.
    Sbom {
        /// The bundle.
        bundle: PathBuf,
        /// The image: the name compose uses (`demo/web:1.0.0`) or its pinned
        /// reference.
        image: String,
        /// Trusted public key of the bundle.
        #[arg(long)]
        public_key: PathBuf,
        /// Which SBOM, when the image has several.
        #[arg(long = "type", value_enum)]
        kind: Option<SbomKind>,
        /// Write it here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// The SBOM formats `cosign attest --type` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SbomKind {
    /// SPDX JSON (`https://spdx.dev/Document`).
    Spdxjson,
    /// CycloneDX (`https://cyclonedx.org/bom`).
    Cyclonedx,
}

impl SbomKind {
    fn matches(self, predicate_type: &str) -> bool {
        match self {
            SbomKind::Spdxjson => predicate_type.starts_with("https://spdx.dev/Document"),
            SbomKind::Cyclonedx => predicate_type.starts_with("https://cyclonedx.org/bom"),
        }
    }
}

fn reporter(quiet: bool) -> Arc<dyn Reporter> {
    if quiet {
        Arc::new(Quiet)
    } else if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines)
    }
}

fn password_from_env_or_prompt(confirm: bool) -> Option<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Some(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let p = Zeroizing::new(rpassword::prompt_password("key password: ").ok()?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("again: ").ok()?);
        if *again != *p {
            eprintln!("passwords differ");
            return None;
        }
    }
    Some(p)
}

/// The exit code for an error chain.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if let Some(b) = c.downcast_ref::<bundle::BundleError>() {
            return if b.is_verification() {
                EXIT_VERIFY
            } else {
                EXIT_INPUT
            };
        }
        if c.downcast_ref::<crate::registry::PullError>().is_some()
            || matches!(
                c.downcast_ref::<crate::build::BuildError>(),
                Some(crate::build::BuildError::Pull(_))
            )
        {
            return EXIT_REGISTRY;
        }
        if c.downcast_ref::<bundle_format::cosign::ProvenanceError>()
            .is_some()
            || matches!(
                c.downcast_ref::<crate::build::BuildError>(),
                Some(crate::build::BuildError::Provenance(_))
            )
        {
            return EXIT_VERIFY;
        }
    }
    EXIT_INPUT
}

/// Runs a command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen {
            secret_key,
            public_key,
            unencrypted,
        } => {
            let pw = if unencrypted {
                None
            } else {
                Some(password_from_env_or_prompt(true).with_context(|| {
                    format!("no password for the secret key; hint: set {PASSWORD_ENV}, run on a terminal, or pass --unencrypted")
                })?)
            };
            let pk = keys::keygen(&secret_key, &public_key, pw.as_deref().map(String::as_str))?;
            if !cli.quiet {
                eprintln!(
                    "key {} written: secret {} (0600), public {}",
                    pk.id,
                    secret_key.display(),
                    public_key.display()
                );
            }
            println!("{}", pk.id);
            Ok(())
        }
        Command::Pin {
            spec,
            output,
            registry,
        } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("reading {}", spec.display()))?;
            let parsed: manifest_schema::Spec = serde_yaml_ng::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", spec.display()))?;
            let opts = registry.options();
            let rt = tokio::runtime::Runtime::new()?;
            let mut pins = Vec::new();
            for img in &parsed.images {
                let r = ImageRef::parse(&img.reference)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", spec.display()))?;
                let mut unpinned = r.clone();
                unpinned.digest = None;
                let reporter: &dyn crate::progress::Reporter = if cli.quiet {
                    &crate::progress::Quiet
                } else {
                    &crate::progress::Lines
                };
                let d = rt
                    .block_on(crate::registry::resolve_tag(&opts, reporter, &unpinned))
                    .map_err(|e| {
                        anyhow::Error::new(e).context(format!("pinning {}", img.reference))
                    })?;
                let new = crate::pin::pinned(&unpinned, &d);
                if !cli.quiet {
                    eprintln!("{} -> {}", img.reference, d);
                }
                pins.push((img.reference.clone(), new));
            }
            let out = crate::pin::rewrite_refs(&text, &pins);
            let dest = output.unwrap_or(spec);
            // The spec keeps its mode; the temp file beside it is created
            // exclusively under an unpredictable name, a link at the spec's
            // path is refused.
            let mode = std::fs::metadata(&dest)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            bundle_format::safefs::write_atomic(&dest, out.as_bytes(), mode)
                .with_context(|| format!("writing {}", dest.display()))?;
            Ok(())
        }
        Command::Build {
            spec,
            key,
            output,
            compression,
            level,
            platform,
            threads,
            split_size,
            have,
            no_provenance,
            json,
            registry,
        } => {
            let compression = match compression {
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::None => Compression::None,
            };
            let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(s) => Some(s.parse::<u64>().with_context(|| {
                    format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")
                })?),
                Err(_) => None,
            };
            let out = output.unwrap_or_default();
            let opts = BuildOptions {
                spec: spec.clone(),
                out: out.clone(),
                compression,
                level,
                platforms: platform,
                pull: registry.options(),
                source_date_epoch,
                threads,
                split_size,
                have,
                no_provenance,
            };
            let mut plan = build::plan(opts)?;
            if out.as_os_str().is_empty() {
                plan.opts.out = PathBuf::from(manifest_schema::layout::bundle_file_name(
                    &plan.spec.name,
                    &plan.spec.version.to_string(),
                ));
            }
            let secret = SecretKey::read(&key, || password_from_env_or_prompt(false))
                .with_context(|| format!("loading secret key {}", key.display()))?;
            let rt = tokio::runtime::Runtime::new()?;
            let summary = rt.block_on(build::execute(
                plan,
                Arc::new(secret),
                reporter(cli.quiet || json),
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else if !cli.quiet {
                for p in &summary.parts {
                    eprintln!("wrote {}", p.display());
                }
                if let Some(d) = &summary.delta {
                    eprintln!(
                        "delta against {}: {} blobs ({}) left out, the target has them",
                        d.base_version,
                        d.left_out,
                        human(d.left_out_bytes)
                    );
                }
                eprintln!(
                    "built {} ({}, {} images, {} blobs, {} downloaded), signed by key {}",
                    summary.path.display(),
                    human(summary.size),
                    summary.images,
                    summary.blobs,
                    summary.downloaded,
                    summary.key_id,
                );
                if let Some(d) = &summary.sha256 {
                    eprintln!("sha256 {d}");
                }
            }
            Ok(())
        }
        Command::Verify {
            bundle: path,
            public_key,
        } => {
            let pk = read_public_key(&public_key)?;
            let input = bundle::open(&path)?;
            let v =
                bundle::read_bundle::<bundle::BundleError>(input, &[pk], |_| Ok(()), &mut Discard)
                    .with_context(|| format!("bundle {} failed verification", path.display()))?;
            if !cli.quiet {
                eprintln!(
                    "ok: {} {} signed by key {}; {} files and {} blobs match the manifest",
                    v.manifest().name,
                    v.manifest().version,
                    v.signer().id,
                    v.manifest().files.len() + v.manifest().layout.len(),
                    v.manifest().carried_blobs().len()
                );
            }
            Ok(())
        }
        Command::Inspect { bundle: path, json } => {
            let input = bundle::open(&path)?;
            let head = bundle::read_head_unverified(input)?;
            if json {
                let v = serde_json::json!({
                    "signer_key_id": head.signature.key_id.to_string(),
                    "signature_checked": false,
                    "compression": head.compression.to_string(),
                    "manifest": head.manifest,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print!("{}", crate::cli::inspect_table(&head));
            Ok(())
        }
        Command::Sbom {
            bundle: path,
            image,
            public_key,
            kind,
            output,
        } => {
            let pk = read_public_key(&public_key)?;
            let (sbom, predicate_type) = sbom(&path, &image, &pk, kind)?;
            match &output {
                Some(o) => bundle_format::safefs::write_atomic(o, &sbom, 0o644)
                    .with_context(|| format!("writing {}", o.display()))?,
                None => {
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&sbom)?;
                    out.flush()?;
                }
            }
            if !cli.quiet {
                eprintln!(
                    "{image}: {predicate_type} SBOM, {} bytes, as attested",
                    sbom.len()
                );
            }
            Ok(())
        }
    }
}

/// A minisign public key file, named in errors.
fn read_public_key(path: &std::path::Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    PublicKey::parse(&text).with_context(|| format!("{}", path.display()))
}

/// The SBOM attested for `image`, read from the bundle's provenance (which
/// comes before the image blobs, so the read stops there).
fn sbom(
    path: &std::path::Path,
    image: &str,
    pk: &PublicKey,
    kind: Option<SbomKind>,
) -> Result<(Vec<u8>, String)> {
    use bundle_format::cosign;
    let input = bundle::open(path)?;
    let mut sink = cosign::KeepProvenance::new(Discard);
    let v = bundle::read_bundle_scoped::<bundle::BundleError>(
        input,
        std::slice::from_ref(pk),
        bundle::Scope::FilesOnly,
        |_| Ok(()),
        &mut sink,
    )
    .with_context(|| format!("bundle {} failed verification", path.display()))?;
    let (kept, _) = sink.into_parts();
    let m = v.manifest();
    let Some(img) = m
        .images
        .iter()
        .find(|i| i.name == image || i.source == image)
    else {
        bail!(
            "bundle {} has no image {image:?} (it has: {}); hint: give the name compose uses or the pinned reference",
            path.display(),
            m.images
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for a in m
        .provenance_of(&img.source)
        .iter()
        .flat_map(|p| &p.artifacts)
        .filter(|a| a.kind == manifest_schema::ArtifactKind::Attestation)
    {
        for l in &a.layers {
            let bytes = kept
                .get(&l.digest)
                .with_context(|| format!("attestation {} is not in the bundle", l.digest))?;
            let (t, predicate) = cosign::predicate(bytes)
                .with_context(|| format!("attestation {} of {image}", l.digest))?;
            if cosign::is_sbom(&t) && kind.is_none_or(|k| k.matches(&t)) {
                found.push((t, predicate));
            }
        }
    }
    match found.len() {
        1 => {
            let (t, p) = found.remove(0);
            Ok((p, t))
        }
        0 => bail!(
            "{image} has no attested SBOM{} in {}; hint: the vendor attaches one with `cosign attest --type spdxjson|cyclonedx` before building (SBOMs are carried, not generated)",
            kind.map(|k| format!(" of type {k:?}").to_lowercase()).unwrap_or_default(),
            path.display()
        ),
        _ => bail!(
            "{image} has {} attested SBOMs ({}); hint: choose one with --type",
            found.len(),
            found.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The human `inspect` table.
pub fn inspect_table(head: &bundle::UnverifiedHead) -> String {
    use std::fmt::Write as _;
    let m = &head.manifest;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {}  (created {}, {}, signed by key {} — not checked; run verify)",
        m.name, m.version, m.created, head.compression, head.signature.key_id
    );
    let _ = writeln!(
        s,
        "platforms: {}",
        m.platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s, "images:");
    for i in &m.images {
        let size: u64 = i.blobs().map(|d| d.size).sum();
        let _ = writeln!(
            s,
            "  {:<40} {:<12} {:>10}  {}",
            i.name,
            i.platform.to_string(),
            human(size),
            i.manifest.digest
        );
    }
    let _ = writeln!(s, "files:");
    for f in &m.files {
        let _ = writeln!(
            s,
            "  {:<40} {:04o} {:>10}  {}",
            f.path.as_str(),
            f.mode,
            human(f.size),
            f.sha256
        );
    }
    if !m.env.is_empty() {
        let _ = writeln!(s, "env:");
        for e in &m.env {
            let mut tags = Vec::new();
            if e.required {
                tags.push("required".to_string());
            }
            if let Some(d) = &e.default {
                tags.push(format!("default {d:?}"));
            }
            if let Some(g) = &e.generate {
                tags.push(format!("generated {g:?}"));
            }
            if e.unrotatable {
                tags.push("unrotatable".into());
            }
            let _ = writeln!(s, "  {:<24} {} ({})", e.key, e.description, tags.join(", "));
        }
    }
    if !m.provenance.is_empty() || !m.cosign_keys.is_empty() {
        let _ = writeln!(
            s,
            "provenance (carried, not checked here; `installer verify --cosign-key` checks it):"
        );
        let mut seen = Vec::new();
        for i in &m.images {
            if seen.contains(&&i.source) {
                continue;
            }
            seen.push(&i.source);
            let p = m.provenance_of(&i.source);
            let count = |k| {
                p.iter()
                    .flat_map(|p| &p.artifacts)
                    .filter(|a| a.kind == k)
                    .map(|a| a.layers.len())
                    .sum::<usize>()
            };
            let sboms: Vec<&str> = p
                .iter()
                .flat_map(|p| &p.artifacts)
                .flat_map(|a| &a.predicate_types)
                .map(String::as_str)
                .filter(|t| bundle_format::cosign::is_sbom(t))
                .collect();
            let required: Vec<String> = p
                .iter()
                .flat_map(|p| &p.required_keys)
                .map(bundle_format::cosign::short_id)
                .collect();
            let _ = writeln!(
                s,
                "  {:<40} signatures: {}  attestations: {}  SBOM: {}{}",
                i.name,
                count(manifest_schema::ArtifactKind::Signature),
                count(manifest_schema::ArtifactKind::Attestation),
                if sboms.is_empty() {
                    "none attested".to_owned()
                } else {
                    sboms.join(", ")
                },
                if required.is_empty() {
                    String::new()
                } else {
                    format!("  must be signed by {}", required.join(", "))
                }
            );
        }
    }
    let blobs = m.carried_blobs();
    let _ = writeln!(
        s,
        "blobs: {} carried, {} total",
        blobs.len(),
        human(blobs.iter().map(|b| b.size).sum())
    );
    if let Some(d) = &m.delta {
        let _ = writeln!(
            s,
            "delta against {}: {} blobs expected on the target",
            d.base_version,
            d.present_blobs.len()
        );
    }
    s
}
