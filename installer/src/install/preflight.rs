//! Preflight: every problem found before anything changes, listed together
//! (version policy, settings, trust changes, deltas, links planted where the
//! installer writes, and what will run after the install).

use super::*;
use manifest_schema::KeyId;

pub(crate) fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

pub(crate) fn version_policy(
    installed: Option<&Version>,
    m: &Manifest,
    allow_downgrade: bool,
    problems: &mut Vec<String>,
) {
    let Some(cur) = installed else { return };
    if &m.version < cur && !allow_downgrade {
        problems.push(format!(
            "{} {} is older than the installed {cur}: downgrades are refused because migrations are forward-only; hint: pass --allow-downgrade (and restore a matching backup), or use `installer rollback`",
            m.name, m.version
        ));
    }
    if let Some(req) = &m.upgrade_from {
        if &m.version != cur && !req.matches(cur) {
            let need = req
                .minimum()
                .map(|v| format!(" first install {v}"))
                .unwrap_or_default();
            problems.push(format!(
                "{} {} upgrades only from versions {req}, and {cur} is installed; hint:{need} (an intermediate version whose migrations this one needs)",
                m.name, m.version
            ));
        }
    }
}

pub(crate) fn check_env_plan(p: &EnvPlan, problems: &mut Vec<String>) {
    for (k, d) in &p.missing {
        problems.push(format!(
            "required setting {k} is missing from .env: {d}; hint: add it to .env or pass --set {k}=VALUE"
        ));
    }
    for c in &p.managed_conflicts {
        problems.push(format!(
            ".env: {k} belongs to the release (the installer sets it on every install) and was changed by hand to {found:?}{wrote}; this release sets {want:?}; hint: pass --set {k}={want} to take the release's value, or --set {k}={found} to keep yours",
            k = c.key,
            found = c.found,
            want = c.want,
            wrote = c
                .wrote
                .as_ref()
                .map(|w| format!(" (the installer wrote {w:?})"))
                .unwrap_or_default(),
        ));
    }
}

/// The operator's compose override file, if there is one the bundle does
/// not manage: compose loads it after the main files when run by hand, so
/// the installer passes it too.
pub fn override_file(fs: &Root, m: &Manifest) -> Option<String> {
    layout::OVERRIDE_FILES
        .iter()
        .filter(|name| !m.files.iter().any(|f| f.path.as_str() == **name))
        .find(|name| matches!(fs.kind(Path::new(name)), Ok((_, Kind::File))))
        .map(|s| s.to_string())
}

/// The compose files an install of `m` runs, in `-f` order.
pub(crate) fn compose_files(fs: &Root, m: &Manifest) -> Vec<String> {
    let mut files: Vec<String> = m.compose.files.iter().map(ToString::to_string).collect();
    files.extend(override_file(fs, m));
    files
}

/// The install dir as it will be after the install: managed files the
/// release replaces read from the staged bundle, `.env` as it will be
/// written, everything else (an edited managed file that is kept, the
/// override file, the operator's own files) from the install dir.
pub(crate) struct Preview<'a> {
    pub(crate) fs: &'a Root,
    pub(crate) staged: &'a Path,
    pub(crate) replaced: BTreeSet<String>,
    pub(crate) env: &'a str,
}

impl compose::Source for Preview<'_> {
    fn read(&self, rel: &str) -> io::Result<Option<String>> {
        let rel = rel.strip_prefix("./").unwrap_or(rel);
        let bytes = if rel == ENV_FILE {
            Some(self.env.as_bytes().to_vec())
        } else if self.replaced.contains(rel) {
            Some(std::fs::read(self.staged.join(rel))?)
        } else {
            self.fs.read(Path::new(rel))?
        };
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

/// Checks, before anything changes, what the stack will run after the
/// install: the compose files as they will be (an edited managed file is
/// kept, so its content counts), the override file, and the `.env` that
/// will be in force. Every service must run an image the bundle carries
/// (or one `compose.external` names). compose's own `config` decides where
/// it answers; the built-in resolver otherwise.
pub(crate) fn check_what_runs(
    sd: &StateDir,
    engine: &dyn Engine,
    state: &State,
    m: &Manifest,
    staging: &Path,
    env_after: &str,
    report: &dyn Report,
) -> Result<(), InstallError> {
    let fs = sd.fs()?;
    let known = known_hashes(sd, state, m);
    let mut replaced = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for f in &m.files {
        let now = sha_in(&fs, Path::new(f.path.as_str())).map_err(InstallError::Fs)?;
        match decide(now.as_ref(), &f.sha256, known.get(f.path.as_str())) {
            FileAction::KeepEdited => kept.insert(f.path.to_string()),
            _ => replaced.insert(f.path.to_string()),
        };
    }
    let files = compose_files(&fs, m);
    let preview = Preview {
        fs: &fs,
        staged: &staging.join("files"),
        replaced,
        env: env_after,
    };
    let from_env_file = envfile::parse(env_after);
    let mut vars = from_env_file.clone();
    // compose lets its environment override .env.
    vars.extend(std::env::vars());
    let r = compose::resolve(&preview, &files, &vars);
    let mut problems = r.problems.clone();
    problems.extend(r.services.iter().filter_map(|(_, s)| s.error.clone()));
    let mut images = r.images();
    if problems.is_empty() {
        match compose_config(sd, engine, m, &files, &r, &preview, staging) {
            Ok(theirs) => images = theirs,
            Err(e) => report.warn(&format!(
                "compose config could not read the release as it will run ({e}); the installer's own reading of the compose files decides"
            )),
        }
    }
    let origin = |v: &str| {
        if std::env::var_os(v).is_some() {
            format!("{v}={} from the environment", vars[v])
        } else if let Some(x) = from_env_file.get(v) {
            format!("{v}={x} from .env")
        } else {
            format!("{v} unset")
        }
    };
    let cur = state.current.as_ref().map(|c| c.version.to_string());
    problems.extend(not_carried(m, &r, &images, &kept, cur.as_deref(), &origin));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Preflight(problems))
    }
}

/// The services of `r` whose image (as `images` resolves it) the release
/// does not carry, each as a problem naming the file, the service, the
/// image and the variables behind it (`origin` says where each value came
/// from).
pub(crate) fn not_carried(
    m: &Manifest,
    r: &compose::Resolved,
    images: &BTreeMap<String, Option<String>>,
    kept: &BTreeSet<String>,
    current: Option<&str>,
    origin: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let canonical = |s: &str| {
        manifest_schema::ImageRef::parse(s)
            .map(|r| r.canonical_name())
            .unwrap_or_else(|_| s.to_owned())
    };
    let carried: BTreeSet<String> = m
        .images
        .iter()
        .map(|i| canonical(&i.name))
        .chain(m.compose.external.iter().map(|e| canonical(e)))
        .collect();
    let mut out = Vec::new();
    for (name, svc) in &r.services {
        let Some(Some(img)) = images.get(name) else {
            continue;
        };
        if carried.contains(&canonical(img)) {
            continue;
        }
        let vars = svc
            .raw_image
            .as_deref()
            .map(compose::variables)
            .unwrap_or_default();
        let why = match (&svc.raw_image, vars.is_empty()) {
            (Some(raw), false) => format!(
                " (image: {raw}, with {})",
                vars.iter()
                    .map(|v| origin(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        };
        let file = &svc.file;
        out.push(if kept.contains(file) {
            format!(
                "{file} was edited since it was installed and is kept, so service {name} would run {img}{why}, which {} {} does not carry; hint: move your changes into docker-compose.override.yml (compose loads it after the bundle's files), put back the installed {file}{}, and install again",
                m.name,
                m.version,
                current
                    .map(|v| format!(" (a copy is in {STATE_DIR}/releases/{v}/files/{file})"))
                    .unwrap_or_default()
            )
        } else {
            format!(
                "{file}: service {name} would run {img}{why}, which {} {} does not carry (it carries {}); hint: set the variable to a carried version in .env, or ask the vendor to mark it managed in the spec so each release sets it",
                m.name,
                m.version,
                m.images.iter().map(|i| i.name.as_str()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
            )
        });
    }
    out
}

/// compose's own reading of the release as it will run: the files
/// [`check_what_runs`] resolves, written into a preview dir in the state
/// dir and passed to `compose config`.
pub(crate) fn compose_config(
    sd: &StateDir,
    engine: &dyn Engine,
    m: &Manifest,
    files: &[String],
    r: &compose::Resolved,
    preview: &Preview<'_>,
    staging: &Path,
) -> Result<BTreeMap<String, Option<String>>, String> {
    use compose::Source as _;
    let fs = sd.fs().map_err(|e| bundle_format::error_text(&e))?;
    let dir = staging.join("preview");
    let rel = dir
        .strip_prefix(&sd.dir)
        .map_err(|e| bundle_format::error_text(&e))?
        .to_path_buf();
    let names = files
        .iter()
        .cloned()
        .chain(r.references.iter().map(|x| x.path.clone()))
        .chain([ENV_FILE.to_owned()]);
    for name in names {
        let Ok(Some(text)) = preview.read(&name) else {
            continue;
        };
        fs.write(&rel.join(&name), text.as_bytes(), 0o600)
            .map_err(|e| bundle_format::error_text(&e))?;
    }
    let out = engine
        .compose(&dir, &m.compose.project, files, &["config"])
        .map_err(|e| bundle_format::error_text(&e))?;
    compose::from_config(&out.stdout)
}

/// [`planted`] as a preflight error.
pub(crate) fn refuse_planted(
    sd: &StateDir,
    m: &Manifest,
    current: &[manifest_schema::FileEntry],
) -> Result<(), InstallError> {
    let problems = planted(&sd.fs()?, m, current);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Preflight(problems))
    }
}

/// Every place in the install dir where the installer will write or
/// replace a file (`.env`, the managed files of both releases and their
/// `.new` siblings, `backups/`), where another account has put a link, a
/// fifo, a device or a directory instead: each would redirect or break a
/// root write (CWE-59). Refused in preflight, before anything changes.
pub(crate) fn planted(
    fs: &Root,
    m: &Manifest,
    current: &[manifest_schema::FileEntry],
) -> Vec<String> {
    let mut places: Vec<(PathBuf, Kind)> = vec![
        (PathBuf::from(ENV_FILE), Kind::File),
        (PathBuf::from(layout::BACKUPS_DIR), Kind::Dir),
    ];
    places.extend(layout::OVERRIDE_FILES.map(|o| (PathBuf::from(o), Kind::File)));
    for f in m.files.iter().chain(current) {
        places.push((PathBuf::from(f.path.as_str()), Kind::File));
        places.push((PathBuf::from(format!("{}.new", f.path)), Kind::File));
    }
    places.sort();
    places.dedup();
    let mut out: Vec<String> = places
        .iter()
        .filter_map(|(p, k)| fs.expect(p, *k).err().map(|e| e.to_string()))
        .collect();
    out.dedup();
    out
}

/// A delta bundle may leave out only blobs this host keeps: names the ones
/// missing from the installer's store (or of the wrong size).
pub(crate) fn check_delta(sd: &StateDir, m: &Manifest, problems: &mut Vec<String>) {
    let Some(d) = &m.delta else { return };
    let sizes: BTreeMap<&Digest, (u64, &str)> = m
        .images
        .iter()
        .flat_map(|i| {
            i.blobs()
                .map(move |b| (&b.digest, (b.size, i.name.as_str())))
        })
        .collect();
    let missing: Vec<String> = d
        .present_blobs
        .iter()
        .filter(|b| {
            let want = sizes.get(b).map(|s| s.0);
            std::fs::metadata(sd.blob(b)).map(|md| Some(md.len())).ok() != Some(want)
        })
        .map(|b| format!("{b} ({})", sizes.get(b).map(|s| s.1).unwrap_or("?")))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "this is a delta against {} {}: {} of the {} blobs it leaves out are not on this host: {}; hint: install {} {} first, or use the full bundle",
            m.name,
            d.base_version,
            missing.len(),
            d.present_blobs.len(),
            missing.join(", "),
            m.name,
            d.base_version
        ));
    }
}

/// Checks a bundle's trust change against this host's keys: every added key
/// parses and matches its id, none was revoked here, and at least one key
/// stays trusted.
pub(crate) fn check_trust_change(
    t: &manifest_schema::TrustChange,
    trusted: &[PublicKey],
    revoked: &[PublicKey],
    problems: &mut Vec<String>,
) {
    let mut after: Vec<KeyId> = trusted.iter().map(|k| k.id).collect();
    for (i, a) in t.add.iter().enumerate() {
        match PublicKey::parse(&a.key) {
            Ok(k) if k.id != a.id => problems.push(format!(
                "trust.add[{i}]: the key's id is {}, the manifest says {}; hint: rebuild the bundle",
                k.id, a.id
            )),
            Ok(k) if revoked.contains(&k) => problems.push(format!(
                "trust.add[{i}]: key {} was revoked on this host; a bundle cannot trust it again; hint: `installer trust add` it by hand if that is intended",
                k.id
            )),
            Ok(k) => after.push(k.id),
            Err(e) => problems.push(format!("trust.add[{i}]: {e}")),
        }
    }
    after.retain(|id| !t.revoke.contains(id));
    if after.is_empty() {
        let revoked: Vec<String> = t.revoke.iter().map(KeyId::to_string).collect();
        problems.push(format!(
            "trust.revoke ({}) would leave this install with no trusted key; hint: the bundle must also add the vendor's next key",
            revoked.join(", ")
        ));
    }
}

/// Every problem preflight finds once the signed manifest `m` is read, before
/// any entry is: the engine, the dir, the installer's version, the version
/// policy, the platform, free space, links planted where the installer
/// writes, `.env`, trust changes, a delta's base.
pub(crate) fn preflight(
    plan: &Plan,
    engine: &Result<Box<dyn Engine>, EngineError>,
    m: &Manifest,
    fs: &Root,
    old: Option<&Manifest>,
    env: &Result<String, InstallError>,
) -> Vec<String> {
    let (opts, state) = (&plan.opts, &plan.state);
    let mut problems = host_problems(plan, engine, m);
    if !state.name.is_empty() && state.name != m.name && !opts.force {
        problems.push(format!(
            "{} holds {}, not {}; hint: choose another dir, or pass --force to replace it",
            opts.dir.display(),
            state.name,
            m.name
        ));
    }
    if !plan.was_install && !plan.dir_was_empty && !opts.force {
        problems.push(format!(
            "{} is not empty and is not an install; hint: choose an empty dir, or pass --force to install beside its files (they are kept)",
            opts.dir.display()
        ));
    }
    let ours: Version = INSTALLER_VERSION.parse().expect("crate version");
    let updates_itself = plan.was_install
        && m.installer
            .as_ref()
            .is_some_and(|i| i.version >= m.min_installer_version);
    if m.min_installer_version > ours && !updates_itself {
        problems.push(format!(
            "the bundle needs installer {} or newer, this is {ours}; hint: use the installer shipped with the bundle",
            m.min_installer_version
        ));
    }
    let installed = state.current.as_ref().map(|r| &r.version);
    version_policy(installed, m, opts.allow_downgrade, &mut problems);
    let mut found = planted(fs, m, old.map(|o| o.files.as_slice()).unwrap_or(&[]));
    match env {
        Err(e) if !found.contains(&e.to_string()) => found.insert(0, e.to_string()),
        Ok(text) => {
            if let Err(e) = envfile::read(text) {
                found.push(format!(
                    "{}: {e}; compose would refuse it too",
                    opts.dir.join(ENV_FILE).display()
                ));
            }
        }
        Err(_) => {}
    }
    problems.extend(found);
    check_trust_change(&m.trust, &plan.keys, &plan.revoked, &mut problems);
    if opts.registry.is_none() {
        check_delta(&plan.sd, m, &mut problems);
    }
    problems
}

/// The engine answers, the bundle has images for this host, and there is
/// room for it.
fn host_problems(
    plan: &Plan,
    engine: &Result<Box<dyn Engine>, EngineError>,
    m: &Manifest,
) -> Vec<String> {
    let mut problems = Vec::new();
    match engine {
        Err(e) => problems.push(e.to_string()),
        Ok(e) => match e.info() {
            Err(err) => problems.push(err.to_string()),
            // From a site registry the engine pulls the layers as they are.
            Ok(()) if plan.opts.registry.is_some() => match e.reads_zstd() {
                Ok(true) => {}
                Ok(false) => problems.extend(zstd_pulls_refused(m, e.kind())),
                Err(err) => problems.push(err.to_string()),
            },
            Ok(()) => {}
        },
    }
    let (os, arch) = host_platform();
    if !m
        .images
        .iter()
        .any(|i| i.platform.os == os && i.platform.arch == arch)
    {
        problems.push(format!(
            "the bundle has no images for this host's platform {os}/{arch} (it has {}); hint: build it with --platform {os}/{arch}",
            m.platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    // A registry install keeps the files only; the engine pulls the rest.
    let payload = match plan.opts.registry {
        Some(_) => m.files.iter().chain(&m.layout).map(|f| f.size).sum(),
        None => m.payload_size(),
    };
    let need = payload + payload / 10 + (16 << 20);
    let dir = plan.opts.dir.display();
    match free_space(&plan.sd.root) {
        Ok(free) if free < need && fault_on("ignore-free-space").is_none() => problems.push(format!(
            "not enough free space in {dir}: {need} needed, {free} free; hint: free space or install elsewhere"
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("cannot measure free space in {dir}: {e}")),
    }
    problems
}

/// For an engine whose pulls read no zstd layers: each image of this host's
/// platform that has some, named with a way out.
pub(crate) fn zstd_pulls_refused(m: &Manifest, kind: &str) -> Vec<String> {
    let (os, arch) = host_platform();
    m.images
        .iter()
        .filter(|i| i.platform.os == os && i.platform.arch == arch)
        .filter_map(|i| {
            let zstd = i
                .layers
                .iter()
                .filter(|l| {
                    bundle_format::oci::LayerCompression::of(&l.media_type)
                        == Some(bundle_format::oci::LayerCompression::Zstd)
                })
                .count();
            (zstd > 0).then(|| {
                format!(
                    "{}: {zstd} of its {} layers are zstd-compressed, and this {kind} cannot pull zstd layers (Docker can from 23.0); hint: install from the whole bundle without --registry (the installer decompresses them for this engine), or upgrade the engine",
                    i.name,
                    i.layers.len()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::fake_engine::FakeEngine;

    /// A signed-manifest stand-in: the fuzz seed's manifest, edited.
    fn manifest(edit: &[(&str, &str)]) -> Manifest {
        let mut text = include_str!("../../../fuzz/seeds/manifest/manifest.json").to_owned();
        for (from, to) in edit {
            assert!(text.contains(from), "{from}");
            text = text.replace(from, to);
        }
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_problem_is_listed_together() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("opt");
        std::fs::create_dir(&dir).unwrap();
        // Not empty, not an install; .env planted as a link to elsewhere.
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join(".env")).unwrap();
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = crate::minisign::PublicKey {
            id: crate::minisign::KeyId([7; 8]),
            key: sk.verifying_key(),
        };
        let pk_file = t.path().join("vendor.pub");
        std::fs::write(&pk_file, pk.to_file()).unwrap();
        let plan = plan::plan(&InstallOptions {
            dir: dir.clone(),
            public_key: Some(pk_file),
            ..Default::default()
        })
        .unwrap();
        let engine: Result<Box<dyn Engine>, EngineError> = Ok(Box::new(FakeEngine {
            info_error: Some("Cannot connect to the Docker daemon".into()),
            ..Default::default()
        }));
        let m = manifest(&[
            (
                "\"min_installer_version\": \"0.1.0\"",
                "\"min_installer_version\": \"99.0.0\"",
            ),
            (
                "\"platform\": \"linux/amd64\"",
                "\"platform\": \"linux/s390x\"",
            ),
        ]);
        let fs = plan.sd.fs().unwrap();
        let problems = preflight(&plan, &engine, &m, &fs, None, &read_env(&fs));
        let has = |s: &str| problems.iter().any(|p| p.contains(s));
        assert!(has("Cannot connect to the Docker daemon"), "{problems:#?}");
        assert!(has("is not empty and is not an install"), "{problems:#?}");
        assert!(
            has("the bundle needs installer 99.0.0 or newer"),
            "{problems:#?}"
        );
        let (os, arch) = host_platform();
        assert!(
            has(&format!("no images for this host's platform {os}/{arch}")),
            "{problems:#?}"
        );
        assert!(
            has("/.env is a symbolic link, not a regular file"),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }

    /// A plan for an empty dir, with `registry` as its image source.
    fn plan_with(t: &Path, registry: Option<&str>) -> Plan {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = crate::minisign::PublicKey {
            id: crate::minisign::KeyId([7; 8]),
            key: sk.verifying_key(),
        };
        let pk_file = t.join("vendor.pub");
        std::fs::write(&pk_file, pk.to_file()).unwrap();
        plan::plan(&InstallOptions {
            dir: t.join("opt"),
            public_key: Some(pk_file),
            registry: registry.map(|r| Site::parse(r).unwrap()),
            ..Default::default()
        })
        .unwrap()
    }

    #[rstest::rstest]
    #[case::registry_engine_without_zstd(Some("reg.example:5000/acme"), true, true)]
    #[case::registry_engine_with_zstd(Some("reg.example:5000/acme"), false, false)]
    #[case::bundle_engine_without_zstd(None, true, false)]
    fn zstd_layers_from_a_site_registry_need_an_engine_that_pulls_them(
        #[case] registry: Option<&str>,
        #[case] no_zstd: bool,
        #[case] refused: bool,
    ) {
        let t = tempfile::tempdir().unwrap();
        let plan = plan_with(t.path(), registry);
        let engine: Result<Box<dyn Engine>, EngineError> = Ok(Box::new(FakeEngine {
            no_zstd,
            ..Default::default()
        }));
        let (os, arch) = host_platform();
        let m = manifest(&[
            (
                "\"platform\": \"linux/amd64\"",
                &format!("\"platform\": \"{os}/{arch}\""),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar\"",
                "application/vnd.oci.image.layer.v1.tar+zstd\"",
            ),
        ]);
        let problems = host_problems(&plan, &engine, &m);
        let want = "fuzz/web:1: 1 of its 1 layers are zstd-compressed, and this fake cannot pull zstd layers (Docker can from 23.0); hint: install from the whole bundle without --registry";
        assert_eq!(
            problems.iter().any(|p| p.starts_with(want)),
            refused,
            "{problems:#?}"
        );
        // The same image with gzip'd layers is pulled by any engine.
        let gz = manifest(&[
            (
                "\"platform\": \"linux/amd64\"",
                &format!("\"platform\": \"{os}/{arch}\""),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar\"",
                "application/vnd.oci.image.layer.v1.tar+gzip\"",
            ),
        ]);
        assert!(zstd_pulls_refused(&gz, "docker").is_empty());
    }
}
