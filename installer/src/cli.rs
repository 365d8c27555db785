//! Command-line interface of `installer`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::bundle::{self, BundleError, Discard};
use crate::engine::Engine;
use crate::install::{self, InstallError, InstallOptions, Report, RollbackOptions, Stderr};
use crate::minisign::PublicKey;
use crate::push::{PushError, PushOptions};
use crate::registry::{ClientOptions, Site};
use crate::state::StateDir;
use bundle_format::cosign::{self, CosignPublicKey, KeepProvenance};

/// Exit code: bad input, preflight failure; nothing was changed.
pub const EXIT_INPUT: u8 = 1;
/// Exit code: the bundle failed verification; nothing was changed.
pub const EXIT_VERIFY: u8 = 2;
/// Exit code: the engine, compose or a registry failed outside an install
/// (a registry's refusal of the credentials among them).
pub const EXIT_ENGINE: u8 = 3;
/// Exit code: the install failed and the previous release was restored.
pub const EXIT_ROLLED_BACK: u8 = 4;
/// Exit code: the install failed and so did restoring; needs attention.
pub const EXIT_BROKEN: u8 = 5;

/// Verify and install offline bundles of a docker-compose stack.
#[derive(Debug, Parser)]
#[command(name = "installer", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print only warnings and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Container engine.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum EngineArg {
    /// Docker (default).
    #[default]
    Docker,
    /// Podman.
    Podman,
}

impl EngineArg {
    fn name(self) -> &'static str {
        match self {
            EngineArg::Docker => "docker",
            EngineArg::Podman => "podman",
        }
    }
}

/// Engine selection flags.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Container engine.
    #[arg(long, value_enum, default_value = "docker")]
    pub engine: EngineArg,
    /// Compose to run, e.g. "docker compose" or docker-compose [default: detected].
    #[arg(long)]
    pub compose: Option<String>,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a bundle's signature and every checksum, writing nothing.
    Verify {
        /// The bundle: a file, a split bundle's parts or index, or a directory.
        #[arg(required = true)]
        bundle: Vec<PathBuf>,
        /// Trusted public key [default: the keys recorded in --dir].
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Install dir whose recorded keys to trust.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also require every image to be signed by this cosign public key
        /// (repeatable), checked offline against the signatures the bundle
        /// carries.
        #[arg(long, value_name = "COSIGN.pub")]
        cosign_key: Vec<PathBuf>,
    },
    /// Install or upgrade from a bundle, rolling back on failure.
    Install {
        /// The bundle: a file, a split bundle's index or first part, or a directory.
        bundle: PathBuf,
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
        /// Vendor public key (required for the first install; recorded).
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Allow installing an older version.
        #[arg(long)]
        allow_downgrade: bool,
        /// Install into a non-empty dir (its files are kept) or over another product.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Supply a setting for .env (repeatable): KEY=VALUE.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Pull the images by digest from this site registry
        /// (`HOST[:PORT][/PREFIX]`, seeded by `installer push`) instead of
        /// loading them from the bundle, which is read only up to its
        /// files. The engine's own trust (certs.d) and login are used.
        #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = parse_site)]
        registry: Option<Site>,
    },
    /// Push the bundle's images into the site's registry, for installs with
    /// `install --registry` on many hosts.
    Push {
        /// The bundle: a file, a split bundle's parts or index, or a directory.
        #[arg(required = true)]
        bundle: Vec<PathBuf>,
        /// The registry: `HOST[:PORT][/PREFIX]`.
        #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = parse_site)]
        registry: Site,
        /// Trusted public key [default: the keys recorded in --dir].
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Install dir whose recorded keys to trust.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// User for the registry; the password is read from stdin
        /// [default: the Docker config's credential helpers and auths].
        #[arg(long)]
        registry_user: Option<String>,
        /// The CA certificate (PEM) that signed the registry's certificate.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Reach the registry over plain HTTP.
        #[arg(long)]
        insecure_registry: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Go back to the previous release (or finish an interrupted install).
    Rollback {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
        /// Also restore the data backup taken before the upgrade.
        #[arg(long)]
        restore_data: bool,
    },
    /// List, add or revoke the public keys an install trusts.
    Trust {
        /// What to do.
        #[command(subcommand)]
        action: TrustAction,
    },
    /// Write what this install holds (version, image blobs) for a delta build
    /// (`bundler build --have`).
    Inventory {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List the pre-upgrade backups of an install.
    Backups {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Show what is installed, the history, trusted keys and container health.
    Status {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `installer trust` actions.
#[derive(Debug, Subcommand)]
pub enum TrustAction {
    /// Show trusted and revoked keys.
    List {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Trust another public key (minisign format).
    Add {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
        /// The public key file.
        key: PathBuf,
    },
    /// Stop trusting a key: bundles signed only by it are refused.
    Revoke {
        /// Install dir.
        #[arg(long)]
        dir: PathBuf,
        /// Key id (16 hex digits) or public key file.
        key: String,
    },
}

fn parse_site(s: &str) -> Result<Site, String> {
    Site::parse(s)
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    if !manifest_schema::validate::valid_env_key(k) {
        return Err(format!("{k:?}: not a valid variable name"));
    }
    if v.contains('\n') {
        return Err(format!("{k}: value contains a newline"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Set for an installer re-executed after a self-update: the sha256 of the
/// bundled binary, so it does not update itself again.
pub const SELF_UPDATED_ENV: &str = "INSTALLER_SELF_UPDATED";

/// An error and its causes on one line ([`bundle_format::error_text`]).
pub fn error_text(e: &anyhow::Error) -> String {
    bundle_format::error_text(e.as_ref())
}

/// The exit code for an error chain.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if let Some(i) = c.downcast_ref::<InstallError>() {
            return match i {
                InstallError::Bundle { source, .. } if source.is_verification() => EXIT_VERIFY,
                InstallError::Parts(p) if p.is_verification() => EXIT_VERIFY,
                InstallError::RolledBack { .. } => EXIT_ROLLED_BACK,
                InstallError::RollbackFailed { .. } => EXIT_BROKEN,
                InstallError::Engine(_) => EXIT_ENGINE,
                InstallError::Provenance(_) => EXIT_VERIFY,
                _ => EXIT_INPUT,
            };
        }
        if let Some(b) = c.downcast_ref::<BundleError>() {
            return if b.is_verification() {
                EXIT_VERIFY
            } else {
                EXIT_INPUT
            };
        }
        if let Some(o) = c.downcast_ref::<crate::parts::OpenError>() {
            return if o.is_verification() {
                EXIT_VERIFY
            } else {
                EXIT_INPUT
            };
        }
        if c.downcast_ref::<crate::engine::EngineError>().is_some() {
            return EXIT_ENGINE;
        }
        if c.downcast_ref::<cosign::ProvenanceError>().is_some() {
            return EXIT_VERIFY;
        }
        if let Some(p) = c.downcast_ref::<PushError>() {
            return if p.is_verification() {
                EXIT_VERIFY
            } else if p.is_registry() {
                EXIT_ENGINE
            } else {
                EXIT_INPUT
            };
        }
    }
    EXIT_INPUT
}

fn interrupted_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

/// Reads `--cosign-key` files.
fn cosign_keys(paths: &[PathBuf]) -> Result<Vec<CosignPublicKey>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--cosign-key {}", p.display()))?;
            CosignPublicKey::from_pem(&text).with_context(|| {
                format!(
                    "--cosign-key {}: hint: give the cosign.pub that `cosign generate-key-pair` wrote",
                    p.display()
                )
            })
        })
        .collect()
}

fn engine(args: &EngineArgs) -> Result<Box<dyn Engine>, crate::engine::EngineError> {
    crate::engine::detect(args.engine.name(), args.compose.as_deref())
}

/// Runs a command.
pub fn run(cli: Cli) -> Result<()> {
    let report = Stderr { quiet: cli.quiet };
    match cli.command {
        Command::Verify {
            bundle: path,
            public_key,
            dir,
            cosign_key,
        } => {
            let keys = keys_to_trust(public_key.as_ref(), dir.as_ref())?;
            let cosign_keys = cosign_keys(&cosign_key)?;
            let shown = path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let input = crate::parts::open(&path, &keys).with_context(|| {
                format!("bundle {shown} failed verification; nothing was written")
            })?;
            let mut sink = KeepProvenance::new(Discard);
            let v = bundle::read_bundle::<BundleError>(input, &keys, |_| Ok(()), &mut sink)
                .with_context(|| {
                    format!("bundle {shown} failed verification; nothing was written")
                })?;
            let (kept, _) = sink.into_parts();
            let images = cosign::check_bundle(v.manifest(), &kept, &cosign_keys)
                .with_context(|| format!("bundle {shown} failed provenance verification"))?;
            if !cli.quiet {
                eprintln!(
                    "ok: {} {} signed by key {}; every entry matches the manifest",
                    v.manifest().name,
                    v.manifest().version,
                    v.signer().id
                );
                for line in cosign::summary_lines(&images) {
                    eprintln!("  {line}");
                }
            }
            Ok(())
        }
        Command::Install {
            bundle,
            dir,
            public_key,
            engine: eargs,
            allow_downgrade,
            force,
            yes,
            set,
            json,
            registry,
        } => {
            let self_updated = std::env::var(SELF_UPDATED_ENV).ok();
            if !yes
                && self_updated.is_none()
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal()
            {
                eprint!(
                    "install {} into {}? [y/N] ",
                    bundle.display(),
                    dir.display()
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    anyhow::bail!("cancelled; nothing was changed");
                }
            }
            let opts = InstallOptions {
                bundle,
                dir,
                public_key,
                allow_downgrade,
                force,
                set,
                interrupted: interrupted_flag(),
                self_updated,
                registry,
            };
            let r = match install::install(&opts, engine(&eargs), &report) {
                Err(InstallError::SelfUpdated { binary, sha256, .. }) => {
                    use std::os::unix::process::CommandExt;
                    let err = std::process::Command::new(&binary)
                        .args(std::env::args_os().skip(1))
                        .env(SELF_UPDATED_ENV, sha256)
                        .exec();
                    anyhow::bail!(
                        "could not run the updated installer {}: {err}; the install did not start",
                        binary.display()
                    );
                }
                r => r?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for n in &r.notes {
                    report.step(&format!("note: {n}"));
                }
                let from = r
                    .from
                    .as_ref()
                    .map(|f| format!(" (from {f})"))
                    .unwrap_or_default();
                report.step(&format!(
                    "installed {} {}{from}: healthy",
                    r.name, r.version
                ));
            }
            Ok(())
        }
        Command::Push {
            bundle,
            registry,
            public_key,
            dir,
            registry_user,
            ca_cert,
            insecure_registry,
            json,
        } => {
            let keys = keys_to_trust(public_key.as_ref(), dir.as_ref())?;
            let creds = crate::registry::credentials(&registry, registry_user.as_deref())
                .map_err(PushError::Registry)?;
            let opts = PushOptions {
                bundle,
                keys,
                site: registry,
                client: ClientOptions {
                    insecure: insecure_registry,
                    ca_cert,
                    creds,
                },
                interrupted: interrupted_flag(),
                progress: crate::push::progress_wanted(cli.quiet, json),
            };
            let done = crate::push::push(&opts, &report)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                for i in &done.images {
                    report.step(&format!("  {} -> {}", i.name, i.reference));
                }
                report.step(&format!(
                    "pushed {} {} to {}: {} blobs sent ({} bytes), {} already there, {} mounted; {} tags set, {} already right",
                    done.name,
                    done.version,
                    done.registry,
                    done.blobs_uploaded,
                    done.bytes_uploaded,
                    done.blobs_present,
                    done.blobs_mounted,
                    done.manifests_pushed,
                    done.manifests_present
                ));
                if done.signatures + done.attestations > 0 {
                    report.step(&format!(
                        "  with {} cosign signature(s) and {} attestation(s), where cosign looks for them",
                        done.signatures, done.attestations
                    ));
                }
            }
            Ok(())
        }
        Command::Rollback {
            dir,
            engine: eargs,
            restore_data,
        } => {
            let e = engine(&eargs)?;
            let what = install::rollback(&RollbackOptions { dir, restore_data }, e, &report)?;
            report.step(&format!("rolled back: {what}"));
            Ok(())
        }
        Command::Trust { action } => trust(action, &report),
        Command::Inventory {
            dir,
            engine: eargs,
            output,
        } => {
            let engine = engine(&eargs).ok();
            let inv = install::inventory(&dir, engine.as_deref())?;
            let mut text = serde_json::to_string_pretty(&inv)?;
            text.push('\n');
            match output {
                Some(p) => {
                    bundle_format::safefs::write_atomic(&p, text.as_bytes(), 0o644)?;
                    report.step(&format!(
                        "{}: {} {} with {} blobs in the installer's store; carry it to the vendor for `bundler build --have`",
                        p.display(),
                        inv.name,
                        inv.version.as_ref().map(ToString::to_string).unwrap_or_default(),
                        inv.blobs.len()
                    ));
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Backups { dir } => {
            let b = dir.join(manifest_schema::layout::BACKUPS_DIR);
            let mut v: Vec<_> = match std::fs::read_dir(&b) {
                Ok(rd) => rd.flatten().filter(|e| e.path().is_dir()).collect(),
                Err(_) => Vec::new(),
            };
            v.sort_by_key(|e| e.file_name());
            if v.is_empty() {
                report.step(&format!("no backups under {}", b.display()));
            }
            for e in v {
                let size: u64 = std::fs::read_dir(e.path())
                    .map(|rd| {
                        rd.flatten()
                            .filter_map(|f| f.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0);
                println!(
                    "{}  {size} bytes  {}",
                    e.file_name().to_string_lossy(),
                    e.path().display()
                );
            }
            Ok(())
        }
        Command::Status {
            dir,
            engine: eargs,
            json: as_json,
        } => {
            let sd = StateDir::new(&dir);
            if !sd.exists() {
                anyhow::bail!(
                    "{} is not an install (no .installer/ state); hint: check --dir",
                    dir.display()
                );
            }
            let state = sd.load()?;
            let keys = sd.trusted_keys()?;
            let revoked = sd.revoked_keys()?;
            let engine = engine(&eargs);
            let engine_text = match &engine {
                Ok(e) => e.describe(),
                Err(e) => e.to_string(),
            };
            let containers = match (engine, &state.current) {
                (Ok(e), Some(cur)) => {
                    let project = sd
                        .release_manifest(&cur.version)
                        .map(|m| m.compose.project)
                        .unwrap_or_default();
                    e.containers(&project).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let journal = sd.journal();
            let provenance = match &state.current {
                Some(cur) => sd
                    .release_manifest(&cur.version)
                    .map_err(|e| bundle_format::error_text(&e))
                    .and_then(|m| sd.provenance(&m).map_err(|e| bundle_format::error_text(&e))),
                None => Ok(Vec::new()),
            };
            let override_file = match (&state.current, sd.fs()) {
                (Some(cur), Ok(fs)) => sd
                    .release_manifest(&cur.version)
                    .ok()
                    .and_then(|m| install::override_file(&fs, &m)),
                _ => None,
            };
            if as_json {
                let v = json!({
                    "name": state.name,
                    "current": state.current.as_ref().map(|c| c.version.to_string()),
                    "previous": state.previous.as_ref().map(|c| c.version.to_string()),
                    "interrupted": journal.as_ref().map(|j| json!({"op": j.op, "to": j.to, "phase": j.phase})),
                    "history": state.history,
                    "trusted_keys": keys.iter().map(|k| k.id.to_string()).collect::<Vec<_>>(),
                    "revoked_keys": revoked.iter().map(|k| k.id.to_string()).collect::<Vec<_>>(),
                    "containers": containers.iter().map(|c| json!({"name": c.name, "service": c.service, "status": c.status, "health": c.health})).collect::<Vec<_>>(),
                    "override_file": override_file,
                    "engine": engine_text,
                    "provenance": match &provenance {
                        Ok(images) => json!(images.iter().map(|i| json!({
                            "source": i.source,
                            "names": i.names,
                            "signed_by": i.checked.signed_by,
                            "signatures": i.checked.signatures,
                            "attestations": i.checked.attestations.iter().map(|a| json!({
                                "predicate_type": a.predicate_type,
                                "sbom": cosign::is_sbom(&a.predicate_type),
                                "signed_by": a.signed_by,
                            })).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>()),
                        Err(e) => json!({"error": e}),
                    },
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "{} {}{}",
                state.name,
                state
                    .current
                    .as_ref()
                    .map(|c| c.version.to_string())
                    .unwrap_or_else(|| "(nothing installed)".into()),
                state
                    .previous
                    .as_ref()
                    .map(|p| format!("  (previous: {})", p.version))
                    .unwrap_or_default()
            );
            if let Some(j) = journal {
                println!("interrupted: {} of {} stopped in phase {}; run install again or `installer rollback`", j.op, j.to, j.phase);
            }
            println!("engine: {engine_text}");
            match &provenance {
                Ok(images) if !images.is_empty() => {
                    println!("images (cosign signatures and SBOMs the bundle carried):");
                    for line in cosign::summary_lines(images) {
                        println!("  {line}");
                    }
                }
                Ok(_) => {}
                Err(e) => println!("provenance: cannot be read: {e}"),
            }
            if let Some(o) = &override_file {
                println!("override file: {o} (yours: compose loads it after the bundle's files; kept as it is across upgrades and rollbacks)");
            }
            println!(
                "trusted keys: {}",
                keys.iter()
                    .map(|k| k.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if !revoked.is_empty() {
                println!(
                    "revoked keys: {}",
                    revoked
                        .iter()
                        .map(|k| k.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            println!("containers:");
            for c in &containers {
                println!(
                    "  {:<30} {:<10} {:<10} {}",
                    c.name, c.service, c.status, c.health
                );
            }
            println!("history:");
            for h in &state.history {
                println!(
                    "  {}  {:<9} {} -> {}  {}{}",
                    h.time,
                    h.action,
                    h.from.as_deref().unwrap_or("-"),
                    h.to,
                    h.outcome,
                    if h.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", h.message)
                    }
                );
            }
            Ok(())
        }
    }
}

/// The keys `verify` and `push` check against: the file given, else the
/// ones an install records.
fn keys_to_trust(public_key: Option<&PathBuf>, dir: Option<&PathBuf>) -> Result<Vec<PublicKey>> {
    Ok(match (public_key, dir) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading public key {}", p.display()))?;
            vec![PublicKey::parse(&text).with_context(|| p.display().to_string())?]
        }
        (None, Some(d)) => StateDir::new(d).trusted_keys()?,
        (None, None) => anyhow::bail!(
            "no trusted key: pass --public-key, or --dir of an install whose keys to trust"
        ),
    })
}

fn trust(action: TrustAction, report: &dyn Report) -> Result<()> {
    let dir = match &action {
        TrustAction::List { dir }
        | TrustAction::Add { dir, .. }
        | TrustAction::Revoke { dir, .. } => dir.clone(),
    };
    let sd = StateDir::new(&dir);
    if !sd.exists() {
        anyhow::bail!(
            "{} is not an install (no .installer/ state); hint: check --dir",
            dir.display()
        );
    }
    let _lock = sd.lock()?;
    let trusted = sd.trusted_keys()?;
    match action {
        TrustAction::List { .. } => {
            for k in &trusted {
                println!("trusted {}", k.id);
            }
            for k in sd.revoked_keys()? {
                println!("revoked {}", k.id);
            }
        }
        TrustAction::Add { key, .. } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let k = PublicKey::parse(&text).with_context(|| key.display().to_string())?;
            sd.add_key(&k)?;
            report.step(&format!("now trusting key {}", k.id));
        }
        TrustAction::Revoke { key, .. } => {
            let id: manifest_schema::KeyId = match std::fs::read_to_string(&key) {
                Ok(text) => PublicKey::parse(&text).with_context(|| key.clone())?.id,
                Err(e) => key.parse().map_err(|bad| {
                    anyhow::anyhow!(
                        "{key}: not a public key file ({e}), nor a key id: {bad}; hint: give the .pub file or the id `installer trust list` prints"
                    )
                })?,
            };
            let Some(k) = trusted.iter().find(|k| k.id == id) else {
                anyhow::bail!(
                    "key {id} is not trusted by {}; hint: `installer trust list --dir {}`",
                    dir.display(),
                    dir.display()
                );
            };
            if trusted.len() == 1 {
                anyhow::bail!("key {id} is the only trusted key; revoking it would leave no way to install; hint: `installer trust add` its successor first");
            }
            sd.revoke_key(k)?;
            report.warn(&format!(
                "revoked key {id}: bundles signed only by it are refused from now on"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}")]
    struct Named {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_kept_as_the_source_is_said_once() {
        let e = anyhow::Error::new(Named {
            path: "/opt/demo".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(error_text(&e), "/opt/demo: entity not found");
        assert_eq!(error_text(&e), format!("{e:#}"));
    }

    /// Each of our errors says its cause once, whether it keeps it as the
    /// source or prints it before a hint.
    #[test]
    fn every_cause_is_said_exactly_once() {
        use bundle_format::tarfmt::TarError;
        let gone = || std::io::Error::other("medium gone");
        let tar = || TarError::Io {
            offset: 512,
            source: gone(),
        };
        let errors: Vec<anyhow::Error> = vec![
            InstallError::Bundle {
                path: "/media/b".into(),
                source: BundleError::Tar(tar()),
            }
            .into(),
            crate::push::PushError::Bundle {
                path: "/media/b".into(),
                cause: BundleError::Tar(tar()),
            }
            .into(),
            BundleError::Open {
                path: "/media/b".into(),
                source: gone(),
            }
            .into(),
            crate::engine::EngineError::Spawn {
                cmd: "docker load".into(),
                cause: gone(),
                hint: "install docker",
            }
            .into(),
            crate::state::StateError::Io {
                path: "/opt/demo/.installer".into(),
                source: gone(),
            }
            .into(),
        ];
        for e in &errors {
            let t = error_text(e);
            assert_eq!(t.matches("medium gone").count(), 1, "{t}");
            assert!(t.matches("at byte 512").count() <= 1, "{t}");
        }
        assert_eq!(
            error_text(&errors[0]),
            "bundle /media/b: reading the archive at byte 512: medium gone; hint: the bundle is damaged or incomplete, copy it again"
        );
    }

    #[test]
    fn context_and_causes_not_in_the_message_are_kept() {
        let e = anyhow::Error::new(std::io::Error::other("disk full"))
            .context("writing /opt/demo/.env")
            .context("install of demo 2.0.0");
        assert_eq!(
            error_text(&e),
            "install of demo 2.0.0: writing /opt/demo/.env: disk full"
        );
    }
}
