//! Reading `bundle.yaml` and checking that the bundle is complete offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bundle_format::compose::{self, Source};
use bundle_format::envfile::{self, Vars};
use manifest_schema::{ImageRef, Parsed, Spec};

/// Errors about the spec or its compose files.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Cannot read a file.
    #[error("{path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax or a field that does not fit the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde's message, with line and column.
        message: String,
    },
    /// Rules the types cannot express.
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<String>,
    },
}

/// Reads and validates a spec.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    load_parsed(path).map(|(spec, _)| spec)
}

/// [`load`], with what validation parsed (image references, file modes).
pub fn load_parsed(path: &Path) -> Result<(Spec, Parsed), SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    parse(path, &text)
}

/// Parses and validates a spec's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<(Spec, Parsed), SpecError> {
    let spec: Spec = serde_yaml_ng::from_str(text).map_err(|e| SpecError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let parsed = manifest_schema::validate_spec(&spec).map_err(|p| SpecError::Invalid {
        path: path.to_owned(),
        problems: p.iter().map(ToString::to_string).collect(),
    })?;
    Ok((spec, parsed))
}

/// The env defaults a vendor declares, used to interpolate compose files.
pub fn default_vars(spec: &Spec) -> Vars {
    spec.env
        .iter()
        .filter_map(|e| e.default.clone().map(|d| (e.key.clone(), d)))
        .collect()
}

/// The spec's files by their path in the bundle: what compose will read.
struct SpecFiles<'a> {
    dir: &'a Path,
    by_dest: BTreeMap<String, &'a str>,
}

impl Source for SpecFiles<'_> {
    fn read(&self, rel: &str) -> std::io::Result<Option<String>> {
        match self.by_dest.get(rel.strip_prefix("./").unwrap_or(rel)) {
            Some(src) => std::fs::read_to_string(self.dir.join(src)).map(Some),
            None => Ok(None),
        }
    }
}

/// The compose this host has, for its own resolution of the model: the
/// command named by `BUNDLER_COMPOSE` ("none" for the built-in resolver
/// only), else the `docker compose` plugin when it answers.
fn compose_command() -> Option<Command> {
    let chosen = std::env::var("BUNDLER_COMPOSE").ok();
    let words: Vec<String> = match chosen.as_deref() {
        Some("none") => return None,
        Some(c) => c.split_whitespace().map(str::to_owned).collect(),
        None => vec!["docker".into(), "compose".into()],
    };
    let (bin, args) = words.split_first()?;
    let works = Command::new(bin)
        .args(args)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then(|| {
        let mut c = Command::new(bin);
        c.args(args);
        c
    })
}

/// `compose config` over the bundle's files laid out as the target will
/// have them, with the spec's defaults as `.env`: compose's own answer to
/// which image each service runs. `None` when no compose answers here.
fn compose_config(
    spec: &Spec,
    spec_dir: &Path,
    vars: &Vars,
) -> Option<Result<BTreeMap<String, Option<String>>, String>> {
    let mut cmd = compose_command()?;
    let mut run = || -> Result<BTreeMap<String, Option<String>>, String> {
        let dir = tempfile::tempdir().map_err(|e| bundle_format::error_text(&e))?;
        for f in &spec.files {
            let dst = dir.path().join(f.dest.as_str());
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| bundle_format::error_text(&e))?;
            }
            std::fs::copy(spec_dir.join(&f.src), &dst).map_err(|e| format!("{}: {e}", f.src))?;
        }
        let env: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        std::fs::write(dir.path().join(".env"), envfile::append("", &env))
            .map_err(|e| bundle_format::error_text(&e))?;
        cmd.arg("--project-directory")
            .arg(dir.path())
            .args(["-p", &spec.compose.project]);
        for f in &spec.compose.files {
            cmd.arg("-f").arg(dir.path().join(f.as_str()));
        }
        // Its environment must not steer the answer: only the spec's defaults count.
        for k in vars
            .keys()
            .map(String::as_str)
            .chain(["COMPOSE_PROFILES", "COMPOSE_FILE"])
        {
            cmd.env_remove(k);
        }
        let out = cmd
            .arg("config")
            .output()
            .map_err(|e| bundle_format::error_text(&e))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        compose::from_config(&out.stdout)
    };
    Some(run())
}

/// Where an image came from, for messages: the file, and each variable
/// in it with its value.
fn origin(svc: &compose::Service, vars: &Vars) -> String {
    let Some(raw) = &svc.raw_image else {
        return String::new();
    };
    let used = compose::variables(raw);
    if used.is_empty() {
        return String::new();
    }
    let values: Vec<String> = used
        .iter()
        .map(|v| match vars.get(v) {
            Some(x) => format!("{v}={x}"),
            None => format!("{v} unset"),
        })
        .collect();
    format!(" (image: {raw}, with {})", values.join(", "))
}

/// Checks that every service image of the compose files is in the bundle
/// (or declared in `compose.external`), and that every file the model reads
/// (`extends` and `include` targets, `env_file`) is among the bundle's
/// files. Follows the model as compose does (`extends`, `include`,
/// profiles, interpolation with the spec's defaults); where a compose
/// binary runs here, its resolution decides. Returns every problem at once.
pub fn check_complete(spec: &Spec, spec_dir: &Path, bundled: &[String]) -> Result<(), SpecError> {
    let vars = default_vars(spec);
    let src = SpecFiles {
        dir: spec_dir,
        by_dest: spec
            .files
            .iter()
            .map(|f| (f.dest.to_string(), f.src.as_str()))
            .collect(),
    };
    let files: Vec<String> = spec.compose.files.iter().map(ToString::to_string).collect();
    let r = compose::resolve(&src, &files, &vars);
    let mut problems = r.problems.clone();
    for rf in &r.references {
        if rf.required
            && !src.by_dest.contains_key(rf.path.as_str())
            && !problems.iter().any(|p| p.contains(&rf.path))
        {
            problems.push(format!(
                "{} names {}, which is not among the bundle's files; hint: add it under files (compose needs it on the target)",
                rf.from, rf.path
            ));
        }
    }
    for (name, svc) in &r.services {
        if let Some(e) = &svc.error {
            problems.push(e.clone());
        } else if svc.image.is_none() && svc.build {
            problems.push(format!(
                "{}: service {name} has `build:` and no image; hint: build and push the image, then list it under images in the spec",
                svc.file
            ));
        }
    }
    let mut images = r.images();
    if problems.is_empty() {
        match compose_config(spec, spec_dir, &vars) {
            Some(Ok(theirs)) => images = theirs,
            Some(Err(e)) => problems.push(format!(
                "compose config refuses the bundle's compose files: {e}; hint: run `docker compose config` on them"
            )),
            None => {}
        }
    }
    let external: Vec<String> = spec
        .compose
        .external
        .iter()
        .map(|e| {
            ImageRef::parse(e)
                .map(|r| r.canonical_name())
                .unwrap_or_else(|_| e.clone())
        })
        .collect();
    for (name, svc) in &r.services {
        let Some(Some(img)) = images.get(name) else {
            continue;
        };
        let canonical = match ImageRef::parse(img) {
            Ok(r) => r.canonical_name(),
            Err(e) => {
                problems.push(format!("{}: service {name}: {e}", svc.file));
                continue;
            }
        };
        if !bundled.contains(&canonical) && !external.contains(&canonical) {
            problems.push(format!(
                "{}: service {name} uses image {canonical}{}, which is not in the bundle; hint: add it under images (pinned by digest), or under compose.external if the target has it",
                svc.file,
                origin(svc, &vars)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SpecError::Invalid {
            path: spec_dir.join("bundle.yaml"),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn spec_text(extra_images: &str) -> String {
        format!(
            "name: demo\nversion: 1.0.0\nimages:\n  - ref: 127.0.0.1:5000/vendor/app:1.4.2@{D}\n    name: vendor/app:1.4.2\n{extra_images}compose:\n  project: demo\n  files: [compose.yml]\nfiles:\n  - src: compose.yml\n    dest: compose.yml\nenv:\n  - key: APP_VERSION\n    description: app version\n    default: 1.4.2\n"
        )
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "bundle.yaml",
            &spec_text("").replace("    name: vendor", "    nmae: vendor"),
        );
        let e = load(&dir.path().join("bundle.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `nmae`"), "{e}");
        assert!(e.contains("line 5 column 5"), "{e}");
    }

    #[test]
    fn compose_images_resolve_through_anchors_merges_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bundle.yaml", &spec_text(""));
        write(
            dir.path(),
            "compose.yml",
            "x-base: &base\n  image: vendor/app:${APP_VERSION:-9.9.9}\nservices:\n  app:\n    <<: *base\n  again:\n    image: vendor/app:${NOT_SET-1.4.2}\n",
        );
        let spec = load(&dir.path().join("bundle.yaml")).unwrap();
        check_complete(&spec, dir.path(), &["docker.io/vendor/app:1.4.2".into()]).unwrap();
    }

    #[test]
    fn reports_every_missing_image_and_build_at_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bundle.yaml", &spec_text(""));
        write(
            dir.path(),
            "compose.yml",
            "services:\n  app:\n    image: vendor/app:${APP_VERSION}\n  db:\n    image: postgres:16\n  web:\n    build: .\n  bad:\n    image: x:${TOKEN:?set TOKEN}\n",
        );
        let spec = load(&dir.path().join("bundle.yaml")).unwrap();
        let e =
            check_complete(&spec, dir.path(), &["docker.io/vendor/app:1.4.2".into()]).unwrap_err();
        let SpecError::Invalid { problems, .. } = e else {
            panic!()
        };
        assert_eq!(
            problems,
            vec![
                "compose.yml: service web has `build:` and no image; hint: build and push the image, then list it under images in the spec".to_string(),
                "compose.yml: service bad: image \"x:${TOKEN:?set TOKEN}\": required variable TOKEN is not set: set TOKEN".to_string(),
                "compose.yml: service db uses image docker.io/library/postgres:16, which is not in the bundle; hint: add it under images (pinned by digest), or under compose.external if the target has it".to_string(),
            ]
        );
    }

    /// The spec's files for the extends/include cases: the compose file,
    /// the file it extends and the file it includes.
    fn layered(dir: &Path, bundle_all: bool) -> Spec {
        let files = if bundle_all {
            "  - {src: base.yml, dest: base.yml}\n  - {src: db.yml, dest: db.yml}\n  - {src: app.env, dest: app.env}\n"
        } else {
            ""
        };
        let spec = spec_text("").replace(
            "    dest: compose.yml\n",
            &format!("    dest: compose.yml\n{files}"),
        );
        write(dir, "bundle.yaml", &spec);
        write(
            dir,
            "compose.yml",
            "include:\n  - db.yml\nservices:\n  app:\n    extends: {file: base.yml, service: common}\n    env_file: [app.env]\n",
        );
        write(dir, "base.yml", "services:\n  common:\n    image: vendor/app:${APP_VERSION}\n  worker:\n    image: vendor/worker:1\n");
        write(
            dir,
            "db.yml",
            "services:\n  db:\n    image: postgres:${PG:-16}\n",
        );
        write(dir, "app.env", "X=1\n");
        load(&dir.join("bundle.yaml")).unwrap()
    }

    /// What the completeness check refuses, with vendor/app:1.4.2 bundled.
    fn problems(spec: &Spec, dir: &Path) -> Vec<String> {
        match check_complete(spec, dir, &["docker.io/vendor/app:1.4.2".into()]) {
            Err(SpecError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        }
    }

    #[rstest::rstest]
    #[case::built_in("none")]
    #[case::compose_decides("docker compose")]
    fn extends_and_include_are_followed_and_their_files_must_be_bundled(#[case] compose: &str) {
        std::env::set_var("BUNDLER_COMPOSE", compose);
        let dir = tempfile::tempdir().unwrap();
        let spec = layered(dir.path(), false);
        assert_eq!(
            problems(&spec, dir.path()),
            [
                "compose.yml: include names db.yml, which is not there; hint: add it to the files",
                "compose.yml: service app: extends names base.yml, which is not there; hint: add it to the files",
                "compose.yml: service app: env_file names app.env, which is not among the bundle's files; hint: add it under files (compose needs it on the target)",
            ]
        );
        // With the files bundled: the included db's image is not.
        let spec = layered(dir.path(), true);
        assert_eq!(
            problems(&spec, dir.path()),
            ["db.yml: service db uses image docker.io/library/postgres:16 (image: postgres:${PG:-16}, with PG unset), which is not in the bundle; hint: add it under images (pinned by digest), or under compose.external if the target has it"]
        );
        // Declared external, it passes; the extended image is the bundled one.
        let mut spec = spec;
        spec.compose.external.push("postgres:16".into());
        check_complete(&spec, dir.path(), &["docker.io/vendor/app:1.4.2".into()]).unwrap();
        // The extended service's image moves with APP_VERSION's default.
        spec.env[0].default = Some("1.5.0".into());
        let e = check_complete(&spec, dir.path(), &["docker.io/vendor/app:1.4.2".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("base.yml: service app uses image docker.io/vendor/app:1.5.0 (image: vendor/app:${APP_VERSION}, with APP_VERSION=1.5.0)"),
            "{e}"
        );
    }
}
