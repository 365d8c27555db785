//! Pure validation of specs and manifests.
//!
//! Each function returns every problem it finds, not just the first, so an
//! operator or vendor fixes them in one round. Messages name the field and
//! the value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::layout::{RESERVED, STATE_DIR};
use crate::{EnvVar, Hooks, ImageRef, KeyId, Manifest, RelPath, Spec};

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where, e.g. `files[2].dest`.
    pub field: String,
    /// What is wrong, naming the value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
    fn finish(self) -> Result<(), Vec<Problem>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// True for a product name usable in file names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// True for a compose project name (compose's own rule).
pub fn valid_project(name: &str) -> bool {
    !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

/// True for a shell/compose variable name.
pub fn valid_env_key(key: &str) -> bool {
    let mut b = key.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The spec's key ids to revoke, each parsed or a problem naming it.
fn check_revoke(p: &mut Problems, revoke: &[String]) -> Vec<KeyId> {
    let mut ids = Vec::new();
    for (i, id) in revoke.iter().enumerate() {
        match id.parse::<KeyId>() {
            Ok(k) => ids.push(k),
            Err(e) => p.push(
                format!("trust.revoke[{i}]"),
                format!("{e}, as `installer trust list` prints them"),
            ),
        }
    }
    ids
}

/// Parses an octal mode string like `"0755"`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s, 8)
        .map_err(|_| format!("invalid mode {s:?}: expected octal digits, e.g. \"0644\""))?;
    check_mode(m)?;
    Ok(m)
}

/// Rejects setuid, setgid, sticky and anything above 0o777.
pub fn check_mode(m: u32) -> Result<(), String> {
    if m > 0o777 {
        return Err(format!(
            "mode {m:04o} is not allowed: setuid, setgid and sticky bits are refused (CVE-2019-5736-style privilege escalation)"
        ));
    }
    Ok(())
}

fn check_managed_paths<'a>(
    p: &mut Problems,
    paths: impl Iterator<Item = (String, &'a RelPath)>,
) -> BTreeSet<&'a RelPath> {
    let mut seen: BTreeMap<&RelPath, String> = BTreeMap::new();
    for (field, path) in paths {
        if let Some(r) = RESERVED.iter().find(|r| path.starts_with(r)) {
            let why = if *r == STATE_DIR {
                "is inside the installer's own state dir"
            } else if crate::layout::OVERRIDE_FILES.contains(r) {
                "is the operator's compose override file, which compose loads after the bundle's files"
            } else {
                "is reserved for the operator and the installer"
            };
            p.push(
                &field,
                format!("path {path:?} {why} ({r}); hint: choose another destination"),
            );
        }
        if let Some(first) = seen.get(path) {
            p.push(&field, format!("duplicate path {path:?} (also {first})"));
        } else {
            seen.insert(path, field);
        }
    }
    // A file may not also be a directory of another file: look each path's
    // ancestors up (linear in the number of paths, not quadratic).
    let by_str: BTreeMap<&str, &RelPath> = seen.keys().map(|k| (k.as_str(), *k)).collect();
    let mut conflicts: BTreeMap<&RelPath, &RelPath> = BTreeMap::new();
    for b in seen.keys() {
        let s = b.as_str();
        for (i, _) in s.match_indices('/') {
            if let Some(a) = by_str.get(&s[..i]) {
                conflicts.entry(a).or_insert(b);
            }
        }
    }
    for (a, b) in conflicts {
        p.push(
            &seen[a],
            format!("path {a:?} is a file but {b:?} needs it to be a directory"),
        );
    }
    seen.into_keys().collect()
}

fn check_refs(
    p: &mut Problems,
    compose_files: &[RelPath],
    hooks: &Hooks,
    managed: &BTreeSet<&RelPath>,
) {
    for (i, f) in compose_files.iter().enumerate() {
        if !managed.contains(f) {
            p.push(
                format!("compose.files[{i}]"),
                format!("compose file {f:?} is not in the file list; hint: add it under files"),
            );
        }
    }
    for (name, f) in hooks.iter() {
        if !managed.contains(f) {
            p.push(
                format!("hooks.{name}"),
                format!("hook {f:?} is not in the file list; hint: add it under files"),
            );
        }
    }
}

fn check_common(
    p: &mut Problems,
    name: &str,
    project: &str,
    compose_files: &[RelPath],
    env: &[EnvVar],
) {
    if !valid_name(name) {
        p.push(
            "name",
            format!(
                "invalid name {name:?}: use lowercase letters, digits, '.', '_', '-', at most 64"
            ),
        );
    }
    if !valid_project(project) {
        p.push(
            "compose.project",
            format!("invalid project name {project:?}: use lowercase letters, digits, '_', '-'"),
        );
    }
    if compose_files.is_empty() {
        p.push("compose.files", "no compose file given");
    }
    let mut keys = BTreeSet::new();
    for (i, e) in env.iter().enumerate() {
        if !valid_env_key(&e.key) {
            p.push(
                format!("env[{i}].key"),
                format!("invalid key {:?}: use [A-Za-z_][A-Za-z0-9_]*", e.key),
            );
        }
        if !keys.insert(e.key.as_str()) {
            p.push(
                format!("env[{i}].key"),
                format!("duplicate key {:?}", e.key),
            );
        }
        if e.managed && (e.default.is_none() || e.generate.is_some()) {
            p.push(
                format!("env[{i}]"),
                format!(
                    "key {:?} is managed but has no default: a managed key is set to the release's default on every install; hint: give it a default, or drop managed",
                    e.key
                ),
            );
        }
        if e.generate.is_some() && e.default.is_some() {
            p.push(
                format!("env[{i}]"),
                format!("key {:?} has both default and generate; keep one", e.key),
            );
        }
        if let Some(d) = &e.default {
            if d.contains('\n') || d.contains('\0') {
                p.push(
                    format!("env[{i}].default"),
                    format!("default of {:?} contains a newline or NUL", e.key),
                );
            }
        }
    }
}

/// Checks a spec. Image references must be pinned by digest.
pub fn validate_spec(spec: &Spec) -> Result<Parsed, Vec<Problem>> {
    let mut p = Problems::default();
    let mut parsed = Parsed::default();
    check_common(
        &mut p,
        &spec.name,
        &spec.compose.project,
        &spec.compose.files,
        &spec.env,
    );
    if spec.platforms.is_empty() {
        p.push("platforms", "no platform given; hint: e.g. [linux/amd64]");
    }
    if spec.images.is_empty() {
        p.push("images", "no image given");
    }
    let mut names = BTreeMap::new();
    for (i, img) in spec.images.iter().enumerate() {
        match ImageRef::parse(&img.reference) {
            Err(e) => p.push(format!("images[{i}].ref"), e.to_string()),
            Ok(r) => {
                if r.digest.is_none() {
                    p.push(
                        format!("images[{i}].ref"),
                        format!(
                            "image {:?} is not pinned by digest; hint: run `bundler pin` to resolve tags to digests",
                            img.reference
                        ),
                    );
                }
                let tagged = match &img.name {
                    Some(n) => match ImageRef::parse(n) {
                        Ok(nr) if nr.digest.is_none() => nr,
                        Ok(_) => {
                            p.push(
                                format!("images[{i}].name"),
                                format!("name {n:?} must not carry a digest"),
                            );
                            continue;
                        }
                        Err(e) => {
                            p.push(format!("images[{i}].name"), e.to_string());
                            continue;
                        }
                    },
                    None => r.clone(),
                };
                let name = tagged.canonical_name();
                if let Some(j) = names.insert(name.clone(), i) {
                    p.push(
                        format!("images[{i}]"),
                        format!("image name {name:?} also given by images[{j}]"),
                    );
                }
                if let Some(pin) = r.digest.clone() {
                    parsed.images.push(ParsedImage {
                        source: r,
                        pin,
                        name: tagged,
                    });
                }
            }
        }
    }
    for (i, f) in spec.files.iter().enumerate() {
        match f.mode.as_deref().map(parse_mode) {
            Some(Err(e)) => p.push(format!("files[{i}].mode"), e),
            Some(Ok(m)) => parsed.file_modes.push(Some(m)),
            None => parsed.file_modes.push(None),
        }
        if f.src.is_empty() {
            p.push(format!("files[{i}].src"), "empty source path");
        }
    }
    let managed = check_managed_paths(
        &mut p,
        spec.files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("files[{i}].dest"), &f.dest)),
    );
    check_refs(&mut p, &spec.compose.files, &spec.hooks, &managed);
    for (i, a) in spec.trust.add.iter().enumerate() {
        if a.is_empty() {
            p.push(format!("trust.add[{i}]"), "empty public key path");
        }
    }
    parsed.revoke = check_revoke(&mut p, &spec.trust.revoke);
    if let Some(inst) = &spec.installer {
        if inst.src.is_empty() {
            p.push("installer.src", "empty source path");
        }
        if let Some(i) = spec
            .files
            .iter()
            .position(|f| f.dest.as_str() == crate::layout::INSTALLER_PATH)
        {
            p.push(
                format!("files[{i}].dest"),
                format!(
                    "{} is where the bundled installer goes; hint: remove this file, `installer:` puts it there",
                    crate::layout::INSTALLER_PATH
                ),
            );
        }
    }
    p.finish().map(|()| parsed)
}

/// Checks a manifest, whoever signed it: the build host is not trusted to be
/// bug-free, so a signed manifest that lists hostile paths is still refused.
pub fn validate_manifest(m: &Manifest) -> Result<(), Vec<Problem>> {
    let mut p = Problems::default();
    if m.format != crate::layout::FORMAT_VERSION {
        p.push(
            "format",
            format!(
                "unsupported format version {} (this build reads {}); hint: use a matching installer",
                m.format,
                crate::layout::FORMAT_VERSION
            ),
        );
    }
    check_common(
        &mut p,
        &m.name,
        &m.compose.project,
        &m.compose.files,
        &m.env,
    );
    for (i, f) in m.files.iter().chain(&m.layout).enumerate() {
        if let Err(e) = check_mode(f.mode) {
            p.push(format!("files[{i}].mode"), format!("{}: {e}", f.path));
        }
    }
    let managed = check_managed_paths(
        &mut p,
        m.files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("files[{i}].path"), &f.path)),
    );
    check_refs(&mut p, &m.compose.files, &m.hooks, &managed);
    let known_layout = [
        crate::layout::OCI_LAYOUT,
        crate::layout::OCI_INDEX,
        crate::layout::DOCKER_MANIFEST,
    ];
    let mut seen_layout = BTreeSet::new();
    for (i, f) in m.layout.iter().enumerate() {
        if !known_layout.contains(&f.path.as_str()) {
            p.push(
                format!("layout[{i}].path"),
                format!("unexpected layout entry {:?}", f.path.as_str()),
            );
        }
        if !seen_layout.insert(&f.path) {
            p.push(
                format!("layout[{i}].path"),
                format!("duplicate layout entry {:?}", f.path.as_str()),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, img) in m.images.iter().enumerate() {
        if let Err(e) = ImageRef::parse(&img.name) {
            p.push(format!("images[{i}].name"), e.to_string());
        }
        if !names.insert((img.name.as_str(), &img.platform)) {
            p.push(
                format!("images[{i}]"),
                format!("image {:?} for {} listed twice", img.name, img.platform),
            );
        }
    }
    for (i, k) in m.trust.add.iter().enumerate() {
        if k.key.is_empty() || k.key.len() > 64 {
            p.push(
                format!("trust.add[{i}].key"),
                "expected the base64 key line of a minisign public key",
            );
        }
    }
    if let Some(inst) = &m.installer {
        match m.files.iter().find(|f| f.path == inst.path) {
            _ if inst.path.as_str() != crate::layout::INSTALLER_PATH => p.push(
                "installer.path",
                format!(
                    "the bundled installer must be {}, not {:?}",
                    crate::layout::INSTALLER_PATH,
                    inst.path.as_str()
                ),
            ),
            None => p.push(
                "installer.path",
                format!("{:?} is not in the file list", inst.path.as_str()),
            ),
            Some(f) if f.mode != 0o755 => p.push(
                "installer.path",
                format!(
                    "{:?} has mode {:04o}, expected 0755",
                    f.path.as_str(),
                    f.mode
                ),
            ),
            Some(_) => {}
        }
    }
    check_provenance(&mut p, m);
    if let Some(d) = &m.delta {
        let all: BTreeSet<_> = m.all_blobs().into_iter().map(|d| &d.digest).collect();
        for (i, b) in d.present_blobs.iter().enumerate() {
            if !all.contains(b) {
                p.push(
                    format!("delta.present_blobs[{i}]"),
                    format!("blob {b} is not used by any image"),
                );
            }
        }
    }
    p.finish()
}

/// What [`validate_spec`] parsed, so that nothing parses it again: one
/// entry per image and per file, in the spec's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Each image's reference and the name compose uses for it.
    pub images: Vec<ParsedImage>,
    /// Each file's mode, when the spec gives one.
    pub file_modes: Vec<Option<u32>>,
    /// The key ids `trust.revoke` names.
    pub revoke: Vec<KeyId>,
}

/// One image of the spec, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedImage {
    /// Where to pull it from, pinned by digest.
    pub source: ImageRef,
    /// The digest it is pinned by (the source's).
    pub pin: crate::Digest,
    /// The name compose uses (`name:`, else the reference's), no digest.
    pub name: ImageRef,
}

/// The index media types a pin may name.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn check_provenance(p: &mut Problems, m: &Manifest) {
    let mut ids = BTreeSet::new();
    for (i, k) in m.cosign_keys.iter().enumerate() {
        if !ids.insert(&k.id) {
            p.push(
                format!("cosign_keys[{i}]"),
                format!("key {} listed twice", k.id),
            );
        }
    }
    let mut sources = BTreeSet::new();
    for (i, pv) in m.provenance.iter().enumerate() {
        let at = |f: &str| format!("provenance[{i}].{f}");
        if !sources.insert(pv.source.as_str()) {
            p.push(at("source"), format!("{:?} listed twice", pv.source));
        }
        let images: Vec<_> = m.images.iter().filter(|e| e.source == pv.source).collect();
        if images.is_empty() {
            p.push(
                at("source"),
                format!("{:?} is not an image's source", pv.source),
            );
        }
        let is_manifest = images
            .iter()
            .any(|e| e.manifest.digest == pv.subject.digest);
        if !is_manifest && !INDEX_TYPES.contains(&pv.subject.media_type.as_str()) {
            p.push(
                at("subject"),
                format!(
                    "{} is neither an image's manifest nor an index",
                    pv.subject.digest
                ),
            );
        }
        for k in &pv.required_keys {
            if !ids.contains(k) {
                p.push(
                    at("required_keys"),
                    format!("key {k} is not in cosign_keys"),
                );
            }
        }
        for (j, a) in pv.artifacts.iter().enumerate() {
            let Some(tag) = &a.tag else { continue };
            let suffix = match a.kind {
                crate::ArtifactKind::Signature => "sig",
                crate::ArtifactKind::Attestation => "att",
            };
            let want = format!("sha256-{}.{suffix}", pv.subject.digest.hex());
            if tag != &want {
                p.push(
                    format!("provenance[{i}].artifacts[{j}].tag"),
                    format!("{tag:?} is not cosign's tag for the subject ({want:?})"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compose, Descriptor, Digest, FileEntry, ImageEntry, Spec, SpecFile, SpecImage};
    use rstest::rstest;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn spec() -> Spec {
        Spec {
            name: "demo".into(),
            version: "1.0.0".parse().unwrap(),
            platforms: crate::spec::default_platforms(),
            images: vec![SpecImage {
                reference: format!("127.0.0.1:5000/demo/web:1.0.0@{D}"),
                name: None,
                cosign_keys: None,
            }],
            compose: Compose {
                project: "demo".into(),
                files: vec![rel("docker-compose.yml")],
                external: vec![],
            },
            files: vec![SpecFile {
                src: "docker-compose.yml".into(),
                dest: rel("docker-compose.yml"),
                mode: None,
            }],
            env: vec![],
            health: None,
            hooks: Hooks::default(),
            upgrade_from: None,
            min_installer_version: None,
            trust: Default::default(),
            installer: None,
            provenance: Default::default(),
        }
    }

    fn desc(d: &str) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: d.parse().unwrap(),
            size: 1,
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            name: "demo".into(),
            version: "1.0.0".parse().unwrap(),
            created: "1970-01-01T00:00:00Z".into(),
            min_installer_version: "0.1.0".parse().unwrap(),
            platforms: crate::spec::default_platforms(),
            files: vec![FileEntry {
                path: rel("docker-compose.yml"),
                size: 3,
                sha256: D.parse().unwrap(),
                mode: 0o644,
            }],
            layout: vec![],
            images: vec![ImageEntry {
                name: "demo/web:1.0.0".into(),
                source: format!("127.0.0.1:5000/demo/web:1.0.0@{D}"),
                platform: "linux/amd64".parse().unwrap(),
                manifest: desc(D),
                config: desc(D),
                layers: vec![desc(D)],
            }],
            compose: Compose {
                project: "demo".into(),
                files: vec![rel("docker-compose.yml")],
                external: vec![],
            },
            env: vec![],
            health: None,
            hooks: Hooks::default(),
            upgrade_from: None,
            delta: None,
            trust: Default::default(),
            installer: None,
            cosign_keys: Vec::new(),
            provenance: Vec::new(),
        }
    }

    fn messages<T: std::fmt::Debug>(r: Result<T, Vec<Problem>>) -> Vec<String> {
        r.unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_spec_comes_back_parsed() {
        let mut s = spec();
        s.images[0].name = Some("vendor/app:1.4.2".into());
        s.files[0].mode = Some("0750".into());
        s.trust.revoke = vec!["0807060504030a0b".into()];
        let p = validate_spec(&s).unwrap();
        assert_eq!(p.images.len(), 1);
        assert_eq!(p.images[0].source.to_string(), s.images[0].reference);
        assert_eq!(p.images[0].name.tagged_name(), "vendor/app:1.4.2");
        assert_eq!(p.file_modes, vec![Some(0o750)]);
        // Written into the manifest as minisign prints it.
        assert_eq!(p.revoke, vec![KeyId([0x0b, 0x0a, 3, 4, 5, 6, 7, 8])]);
        assert_eq!(p.revoke[0].to_string(), "0807060504030A0B");
    }

    #[test]
    fn valid_spec_and_manifest_pass() {
        validate_spec(&spec()).unwrap();
        validate_manifest(&manifest()).unwrap();
    }

    #[rstest]
    #[case::unpinned(|s: &mut Spec| s.images[0].reference = "127.0.0.1:5000/demo/web:1.0.0".into(),
        "images[0].ref: image \"127.0.0.1:5000/demo/web:1.0.0\" is not pinned by digest; hint: run `bundler pin` to resolve tags to digests")]
    #[case::bad_name(|s: &mut Spec| s.name = "Demo App".into(),
        "name: invalid name \"Demo App\": use lowercase letters, digits, '.', '_', '-', at most 64")]
    #[case::state_dir(|s: &mut Spec| s.files.push(SpecFile { src: "x".into(), dest: rel(".installer/state.json"), mode: None }),
        "files[1].dest: path \".installer/state.json\" is inside the installer's own state dir (.installer); hint: choose another destination")]
    #[case::env_file(|s: &mut Spec| s.files.push(SpecFile { src: "x".into(), dest: rel(".env"), mode: None }),
        "files[1].dest: path \".env\" is reserved for the operator and the installer (.env); hint: choose another destination")]
    #[case::override_file(|s: &mut Spec| s.files.push(SpecFile { src: "x".into(), dest: rel("docker-compose.override.yml"), mode: None }),
        "files[1].dest: path \"docker-compose.override.yml\" is the operator's compose override file, which compose loads after the bundle's files (docker-compose.override.yml); hint: choose another destination")]
    #[case::managed_without_default(|s: &mut Spec| s.env.push(EnvVar { key: "APP_VERSION".into(), description: "x".into(), required: true, default: None, generate: None, unrotatable: false, managed: true }),
        "env[0]: key \"APP_VERSION\" is managed but has no default: a managed key is set to the release's default on every install; hint: give it a default, or drop managed")]
    #[case::setuid(|s: &mut Spec| s.files[0].mode = Some("4755".into()),
        "files[0].mode: mode 4755 is not allowed: setuid, setgid and sticky bits are refused (CVE-2019-5736-style privilege escalation)")]
    #[case::not_octal(|s: &mut Spec| s.files[0].mode = Some("0x1ff".into()),
        "files[0].mode: invalid mode \"0x1ff\": expected octal digits, e.g. \"0644\"")]
    #[case::hook_missing(|s: &mut Spec| s.hooks.pre_upgrade = Some(rel("hooks/backup.sh")),
        "hooks.pre_upgrade: hook \"hooks/backup.sh\" is not in the file list; hint: add it under files")]
    #[case::bad_env(|s: &mut Spec| s.env.push(EnvVar { key: "1X".into(), description: "x".into(), required: true, default: None, generate: None, unrotatable: false, managed: false }),
        "env[0].key: invalid key \"1X\": use [A-Za-z_][A-Za-z0-9_]*")]
    #[case::duplicate_image(|s: &mut Spec| { let i = s.images[0].clone(); s.images.push(i) },
        "images[1]: image name \"127.0.0.1:5000/demo/web:1.0.0\" also given by images[0]")]
    #[case::revoke_id(|s: &mut Spec| s.trust.revoke.push("nothex".into()),
        "trust.revoke[0]: invalid key id \"nothex\": expected 16 hex digits, as `installer trust list` prints them")]
    #[case::installer_dest(|s: &mut Spec| { s.installer = Some(crate::SpecInstaller { src: "installer".into(), version: "1.0.0".parse().unwrap() }); let mut f = s.files[0].clone(); f.dest = rel("bin/installer"); s.files.push(f) },
        "files[1].dest: bin/installer is where the bundled installer goes; hint: remove this file, `installer:` puts it there")]
    fn spec_rules(#[case] edit: fn(&mut Spec), #[case] message: &str) {
        let mut s = spec();
        edit(&mut s);
        assert_eq!(messages(validate_spec(&s)), vec![message.to_string()]);
    }

    #[rstest]
    #[case::duplicate(|m: &mut Manifest| { let f = m.files[0].clone(); m.files.push(f) },
        "files[1].path: duplicate path \"docker-compose.yml\" (also files[0].path)")]
    #[case::compose_missing(|m: &mut Manifest| m.compose.files.push(rel("other.yml")),
        "compose.files[1]: compose file \"other.yml\" is not in the file list; hint: add it under files")]
    #[case::state_dir(|m: &mut Manifest| { let mut f = m.files[0].clone(); f.path = rel(".installer/trusted/evil.pub"); m.files.push(f) },
        "files[1].path: path \".installer/trusted/evil.pub\" is inside the installer's own state dir (.installer); hint: choose another destination")]
    #[case::file_and_dir(|m: &mut Manifest| { let mut f = m.files[0].clone(); f.path = rel("docker-compose.yml/x"); m.files.push(f) },
        "files[0].path: path \"docker-compose.yml\" is a file but \"docker-compose.yml/x\" needs it to be a directory")]
    #[case::setuid(|m: &mut Manifest| m.files[0].mode = 0o4755,
        "files[0].mode: docker-compose.yml: mode 4755 is not allowed: setuid, setgid and sticky bits are refused (CVE-2019-5736-style privilege escalation)")]
    #[case::format(|m: &mut Manifest| m.format = 9,
        "format: unsupported format version 9 (this build reads 1); hint: use a matching installer")]
    #[case::layout(|m: &mut Manifest| m.layout.push(FileEntry { path: rel("images/evil"), size: 1, sha256: D.parse().unwrap(), mode: 0o644 }),
        "layout[0].path: unexpected layout entry \"images/evil\"")]
    #[case::delta_unknown(|m: &mut Manifest| m.delta = Some(crate::Delta { base_version: "0.9.0".parse().unwrap(), present_blobs: vec![Digest::from_sha256_bytes(&[1; 32])] }),
        "delta.present_blobs[0]: blob sha256:0101010101010101010101010101010101010101010101010101010101010101 is not used by any image")]
    #[case::installer_missing(|m: &mut Manifest| m.installer = Some(crate::BundledInstaller { path: rel("bin/installer"), version: "1.0.0".parse().unwrap() }),
        "installer.path: \"bin/installer\" is not in the file list")]
    #[case::installer_elsewhere(|m: &mut Manifest| m.installer = Some(crate::BundledInstaller { path: rel("docker-compose.yml"), version: "1.0.0".parse().unwrap() }),
        "installer.path: the bundled installer must be bin/installer, not \"docker-compose.yml\"")]
    fn manifest_rules(#[case] edit: fn(&mut Manifest), #[case] message: &str) {
        let mut m = manifest();
        edit(&mut m);
        assert_eq!(messages(validate_manifest(&m)), vec![message.to_string()]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut m = manifest();
        m.name = "BAD".into();
        m.compose.project = "Bad Project".into();
        m.files[0].mode = 0o2755;
        assert_eq!(messages(validate_manifest(&m)).len(), 3);
    }

    #[rstest]
    #[case::absolute(
        r#""/etc/passwd""#,
        "path \"/etc/passwd\": absolute paths are not allowed"
    )]
    #[case::dotdot(r#""../x""#, "path \"../x\": `..` components are not allowed")]
    #[case::nul(r#""a\u0000b""#, "path \"a\\0b\": contains a NUL byte")]
    fn manifest_json_rejects_hostile_paths(#[case] path: &str, #[case] message: &str) {
        let mut v = serde_json::to_value(manifest()).unwrap();
        v["files"][0]["path"] = serde_json::from_str(path).unwrap();
        let e = serde_json::from_value::<Manifest>(v)
            .unwrap_err()
            .to_string();
        assert_eq!(e, message);
    }

    #[test]
    fn manifest_json_rejects_malformed_digest() {
        let mut v = serde_json::to_value(manifest()).unwrap();
        v["images"][0]["config"]["digest"] = "sha256:xyz".into();
        let e = serde_json::from_value::<Manifest>(v)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid digest \"sha256:xyz\": expected sha256:<64 lowercase hex digits>"
        );
    }

    #[rstest]
    #[case::trust_add_id("add", serde_json::json!([{"id": "12", "key": "RWQ="}]))]
    #[case::trust_revoke("revoke", serde_json::json!(["12"]))]
    fn manifest_json_rejects_malformed_key_ids(
        #[case] field: &str,
        #[case] value: serde_json::Value,
    ) {
        // A key id is parsed with the manifest: no later check can miss it.
        let mut v = serde_json::to_value(manifest()).unwrap();
        v["trust"] = serde_json::json!({ field: value });
        let e = serde_json::from_value::<Manifest>(v)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid key id \"12\": expected 16 hex digits");
    }

    #[test]
    fn manifest_json_rejects_unknown_field() {
        let mut v = serde_json::to_value(manifest()).unwrap();
        v["extra"] = 1.into();
        let e = serde_json::from_value::<Manifest>(v)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("unknown field `extra`"), "{e}");
    }
}
