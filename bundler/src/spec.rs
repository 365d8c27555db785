//! Reading `bundle.yaml` and checking that the bundle is complete offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bundle_format::envfile::{interpolate, Vars};
use manifest_schema::{ImageRef, Spec};

/// Errors about the spec or its compose files.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Cannot read a file.
    #[error("{path}: {source}")]
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
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    parse(path, &text)
}

/// Parses and validates a spec's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
    let spec: Spec = serde_yaml_ng::from_str(text).map_err(|e| SpecError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    manifest_schema::validate_spec(&spec).map_err(|p| SpecError::Invalid {
        path: path.to_owned(),
        problems: p.iter().map(ToString::to_string).collect(),
    })?;
    Ok(spec)
}

/// The env defaults a vendor declares, used to interpolate compose files.
pub fn default_vars(spec: &Spec) -> Vars {
    spec.env
        .iter()
        .filter_map(|e| e.default.clone().map(|d| (e.key.clone(), d)))
        .collect()
}

/// The image name (canonical) each service of a compose document uses, or
/// the problem with it.
fn service_images(
    doc: &serde_yaml_ng::Value,
    vars: &Vars,
    file: &str,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) else {
        return (found, problems);
    };
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?").to_owned();
        match svc.get("image").and_then(|i| i.as_str()) {
            Some(raw) => match interpolate(raw, vars) {
                Ok(img) => match ImageRef::parse(&img) {
                    Ok(r) => found.push((name, r.canonical_name())),
                    Err(e) => problems.push(format!("{file}: service {name}: {e}")),
                },
                Err(e) => problems.push(format!("{file}: service {name}: image {raw:?}: {e}")),
            },
            None if svc.get("build").is_some() => problems.push(format!(
                "{file}: service {name} has `build:` and no image; hint: build and push the image, then list it under images in the spec"
            )),
            None => {}
        }
    }
    (found, problems)
}

/// Checks that every service image of the compose files is in the bundle.
/// Returns every problem at once.
pub fn check_complete(spec: &Spec, spec_dir: &Path, bundled: &[String]) -> Result<(), SpecError> {
    let vars = default_vars(spec);
    let by_dest: BTreeMap<_, _> = spec.files.iter().map(|f| (&f.dest, &f.src)).collect();
    let mut problems = Vec::new();
    let mut services: BTreeMap<String, (String, String)> = BTreeMap::new();
    for cf in &spec.compose.files {
        let Some(src) = by_dest.get(cf) else { continue };
        let path = spec_dir.join(src);
        let text = std::fs::read_to_string(&path).map_err(|e| SpecError::Read {
            path: path.clone(),
            source: e,
        })?;
        let mut doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| SpecError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
        doc.apply_merge().map_err(|e| SpecError::Parse {
            path: path.clone(),
            message: format!("merge keys: {e}"),
        })?;
        let (found, p) = service_images(&doc, &vars, src);
        problems.extend(p);
        // Later files override earlier ones, as `compose -f a -f b` does.
        for (svc, img) in found {
            services.insert(svc, (img, src.to_string()));
        }
    }
    for (svc, (img, file)) in &services {
        if !bundled.contains(img) {
            problems.push(format!(
                "{file}: service {svc} uses image {img}, which is not in the bundle; hint: add it under images (pinned by digest)"
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
                "compose.yml: service db uses image docker.io/library/postgres:16, which is not in the bundle; hint: add it under images (pinned by digest)".to_string(),
            ]
        );
    }
}
