//! The compose model resolved to the image each service runs, as
//! `docker compose config` resolves it. The bundler's completeness check
//! and the installer's preflight use it where no compose binary answers
//! (where one does, its own `config` output is the authority, and tests
//! show the two agree).
//!
//! 1. Read the files in order (`-f a -f b`, an override file last); each is
//!    YAML with anchors and merge keys.
//! 2. Follow a file's top-level `include` first: its services join the
//!    project.
//! 3. Merge services by name: a later definition's keys win.
//! 4. Follow `extends`, in the same file or another (paths relative to the
//!    project dir, as compose v2 reads them), chained; a cycle is refused.
//! 5. Keep the services whose `profiles` are active (`COMPOSE_PROFILES`).
//! 6. Interpolate `image` (and the paths and profiles used on the way) with
//!    the variables.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::{Mapping, Value};

use crate::envfile::{interpolate, Vars};

/// Where the model's files come from: a path relative to the project dir
/// to its text, `None` when there is no such file.
pub trait Source {
    /// The text of `rel`.
    fn read(&self, rel: &str) -> std::io::Result<Option<String>>;
}

impl Source for BTreeMap<String, String> {
    fn read(&self, rel: &str) -> std::io::Result<Option<String>> {
        Ok(self.get(rel).cloned())
    }
}

/// A service as it will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The image after interpolation; `None` for a build-only service.
    pub image: Option<String>,
    /// The image as written, before interpolation.
    pub raw_image: Option<String>,
    /// The file whose definition of the service (or of what it extends)
    /// names the image.
    pub file: String,
    /// It has `build:`.
    pub build: bool,
    /// Why its image could not be interpolated.
    pub error: Option<String>,
}

/// A file the model reads besides the compose files named on the command
/// line: an `extends` or `include` target, an `env_file`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// Its path, relative to the project dir.
    pub path: String,
    /// Who names it, e.g. `docker-compose.yml: service web: env_file`.
    pub from: String,
    /// Compose fails without it (`env_file` entries may say `required: false`).
    pub required: bool,
}

/// The resolved project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The active services, in the order the files first name them.
    pub services: Vec<(String, Service)>,
    /// Every file it reads besides the compose files given.
    pub references: BTreeSet<Reference>,
    /// What stops compose from reading the model: a missing or malformed
    /// file, a cycle, a bad `extends`.
    pub problems: Vec<String>,
}

impl Resolved {
    /// Each active service's image.
    pub fn images(&self) -> BTreeMap<String, Option<String>> {
        self.services
            .iter()
            .map(|(k, s)| (k.clone(), s.image.clone()))
            .collect()
    }
}

/// The variables a raw value uses (`$X`, `${X…}`; `$$` is a literal `$`).
pub fn variables(raw: &str) -> Vec<String> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let start = if b.get(i + 1) == Some(&b'{') {
            i + 2
        } else {
            i + 1
        };
        let n = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        if n > 0 {
            let v = raw[start..start + n].to_owned();
            if !out.contains(&v) {
                out.push(v);
            }
        }
        i = start + n.max(1);
    }
    out
}

struct Resolver<'a> {
    src: &'a dyn Source,
    vars: &'a Vars,
    docs: BTreeMap<String, Option<Value>>,
    problems: Vec<String>,
    references: BTreeSet<Reference>,
}

fn key(k: &str) -> Value {
    Value::String(k.to_owned())
}

impl Resolver<'_> {
    /// A file's document (merge keys applied); `None` after a problem.
    fn doc(&mut self, file: &str, from: Option<&str>) -> Option<Value> {
        if let Some(d) = self.docs.get(file) {
            return d.clone();
        }
        let doc = match self.src.read(file) {
            Ok(Some(text)) => match serde_yaml_ng::from_str::<Value>(&text) {
                Ok(mut v) => match v.apply_merge() {
                    Ok(()) => Some(v),
                    Err(e) => {
                        self.problems.push(format!("{file}: merge keys: {e}"));
                        None
                    }
                },
                Err(e) => {
                    self.problems.push(format!("{file}: {e}"));
                    None
                }
            },
            Ok(None) => {
                self.problems.push(match from {
                    Some(f) => {
                        format!("{f} names {file}, which is not there; hint: add it to the files")
                    }
                    None => format!("{file} is not there"),
                });
                None
            }
            Err(e) => {
                self.problems.push(format!("{file}: {e}"));
                None
            }
        };
        self.docs.insert(file.to_owned(), doc.clone());
        doc
    }

    fn interp(&mut self, raw: &str, at: &str) -> Option<String> {
        match interpolate(raw, self.vars) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("{at} {raw:?}: {e}"));
                None
            }
        }
    }

    /// Services of `file`, its includes first, into `defs` (later wins).
    fn load(
        &mut self,
        file: &str,
        from: Option<&str>,
        defs: &mut Vec<(String, Mapping, String)>,
        stack: &mut Vec<String>,
    ) {
        if stack.iter().any(|f| f == file) {
            self.problems.push(format!(
                "{file}: include cycle: {} -> {file}",
                stack.join(" -> ")
            ));
            return;
        }
        let Some(doc) = self.doc(file, from) else {
            return;
        };
        stack.push(file.to_owned());
        let includes: Vec<Value> = match doc.get("include") {
            Some(Value::Sequence(s)) => s.clone(),
            Some(v) => vec![v.clone()],
            None => vec![],
        };
        for inc in includes {
            let paths: Vec<Value> = match &inc {
                Value::String(_) => vec![inc.clone()],
                Value::Mapping(m) => match m.get(key("path")) {
                    Some(Value::Sequence(s)) => s.clone(),
                    Some(v) => vec![v.clone()],
                    None => vec![],
                },
                _ => vec![],
            };
            for p in paths.iter().filter_map(Value::as_str) {
                let at = format!("{file}: include");
                let Some(p) = self.interp(p, &at) else {
                    continue;
                };
                self.references.insert(Reference {
                    path: p.clone(),
                    from: at.clone(),
                    required: true,
                });
                self.load(&p, Some(&at), defs, stack);
            }
        }
        if let Some(Value::Mapping(services)) = doc.get("services") {
            for (name, svc) in services {
                let (Some(name), Some(svc)) = (name.as_str(), svc.as_mapping()) else {
                    continue;
                };
                match defs.iter_mut().find(|(n, _, _)| n == name) {
                    Some((_, have, at)) => {
                        for (k, v) in svc {
                            have.insert(k.clone(), v.clone());
                        }
                        if svc.contains_key(key("image")) || svc.contains_key(key("extends")) {
                            *at = file.to_owned();
                        }
                    }
                    None => defs.push((name.to_owned(), svc.clone(), file.to_owned())),
                }
            }
        }
        stack.pop();
    }

    /// `def` with what it `extends` folded in (its own keys win), and the
    /// file that names the image.
    fn flatten(
        &mut self,
        name: &str,
        def: &Mapping,
        file: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Option<(Mapping, String)> {
        let Some(ext) = def.get(key("extends")) else {
            return Some((def.clone(), file.to_owned()));
        };
        let at = format!("{file}: service {name}: extends");
        let (base_name, base_file) = match ext {
            Value::String(s) => (self.interp(s, &at)?, file.to_owned()),
            Value::Mapping(m) => {
                let s = m.get(key("service")).and_then(Value::as_str).unwrap_or("");
                let s = self.interp(s, &at)?;
                let f = match m.get(key("file")).and_then(Value::as_str) {
                    Some(f) => {
                        let f = self.interp(f, &at)?;
                        self.references.insert(Reference {
                            path: f.clone(),
                            from: at.clone(),
                            required: true,
                        });
                        f
                    }
                    None => file.to_owned(),
                };
                (s, f)
            }
            _ => {
                self.problems
                    .push(format!("{at}: neither a service name nor a mapping"));
                return None;
            }
        };
        if stack
            .iter()
            .any(|(s, f)| *s == base_name && *f == base_file)
        {
            self.problems.push(format!(
                "{at}: extends cycle through service {base_name} of {base_file}"
            ));
            return None;
        }
        let doc = self.doc(&base_file, Some(&at))?;
        let Some(base) = doc
            .get("services")
            .and_then(|s| s.get(base_name.as_str()))
            .and_then(Value::as_mapping)
        else {
            self.problems
                .push(format!("{at}: {base_file} has no service {base_name}"));
            return None;
        };
        stack.push((base_name.clone(), base_file.clone()));
        let (mut merged, mut image_file) = self.flatten(&base_name, base, &base_file, stack)?;
        stack.pop();
        for (k, v) in def {
            if k.as_str() != Some("extends") {
                merged.insert(k.clone(), v.clone());
            }
        }
        if def.contains_key(key("image")) {
            image_file = file.to_owned();
        }
        Some((merged, image_file))
    }

    fn env_files(&mut self, name: &str, file: &str, def: &Mapping) {
        let at = format!("{file}: service {name}: env_file");
        let entries: Vec<Value> = match def.get(key("env_file")) {
            Some(Value::Sequence(s)) => s.clone(),
            Some(v) => vec![v.clone()],
            None => return,
        };
        for e in entries {
            let (path, required) = match &e {
                Value::String(s) => (s.clone(), true),
                Value::Mapping(m) => (
                    m.get(key("path"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    m.get(key("required"))
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                ),
                _ => continue,
            };
            if let Some(path) = self.interp(&path, &at) {
                let path = path.strip_prefix("./").unwrap_or(&path).to_owned();
                self.references.insert(Reference {
                    path,
                    from: at.clone(),
                    required,
                });
            }
        }
    }

    fn active(&mut self, name: &str, file: &str, def: &Mapping, on: &BTreeSet<String>) -> bool {
        let Some(Value::Sequence(ps)) = def.get(key("profiles")) else {
            return true;
        };
        let at = format!("{file}: service {name}: profiles");
        let ps: Vec<String> = ps
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|p| self.interp(p, &at))
            .collect();
        ps.is_empty() || ps.iter().any(|p| on.contains(p) || on.contains("*"))
    }
}

/// Resolves the compose `files` (paths relative to the project dir, in
/// `-f` order) with `vars` (the `.env` in force). Every problem is
/// returned together, in [`Resolved::problems`] and each service's
/// [`Service::error`].
pub fn resolve(src: &dyn Source, files: &[String], vars: &Vars) -> Resolved {
    let mut r = Resolver {
        src,
        vars,
        docs: BTreeMap::new(),
        problems: Vec::new(),
        references: BTreeSet::new(),
    };
    let mut defs = Vec::new();
    for f in files {
        r.load(f, None, &mut defs, &mut Vec::new());
    }
    let profiles: BTreeSet<String> = vars
        .get("COMPOSE_PROFILES")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut services = Vec::new();
    for (name, def, file) in defs {
        r.env_files(&name, &file, &def);
        let Some((flat, image_file)) = r.flatten(&name, &def, &file, &mut Vec::new()) else {
            continue;
        };
        r.env_files(&name, &file, &flat);
        if !r.active(&name, &file, &flat, &profiles) {
            continue;
        }
        let raw_image = flat
            .get(key("image"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (image, error) = match &raw_image {
            Some(raw) => match interpolate(raw, vars) {
                Ok(v) => (Some(v), None),
                Err(e) => (
                    None,
                    Some(format!("{image_file}: service {name}: image {raw:?}: {e}")),
                ),
            },
            None => (None, None),
        };
        let build = flat.contains_key(key("build"));
        if image.is_none() && raw_image.is_none() && !build {
            r.problems.push(format!(
                "{file}: service {name} has neither image nor build"
            ));
        }
        services.push((
            name,
            Service {
                image,
                raw_image,
                file: image_file,
                build,
                error,
            },
        ));
    }
    Resolved {
        services,
        references: r.references,
        problems: r.problems,
    }
}

/// The services and images in `compose config` output (YAML or JSON).
pub fn from_config(output: &[u8]) -> Result<BTreeMap<String, Option<String>>, String> {
    let v: Value =
        serde_yaml_ng::from_slice(output).map_err(|e| format!("compose config output: {e}"))?;
    let mut out = BTreeMap::new();
    if let Some(Value::Mapping(s)) = v.get("services") {
        for (name, svc) in s {
            if let Some(name) = name.as_str() {
                let image = svc.get("image").and_then(Value::as_str).map(str::to_owned);
                out.insert(name.to_owned(), image);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn references_and_problems_are_named() {
        let src = files(&[(
            "c.yml",
            "services:\n  web:\n    image: a:1\n    env_file: [app.env, {path: opt.env, required: false}]\n    extends: {file: gone.yml, service: x}\n  loop:\n    extends: loop\n",
        )]);
        let e = resolve(&src, &["c.yml".into()], &Vars::new()).problems;
        assert!(e.contains(&"c.yml: service web: extends names gone.yml, which is not there; hint: add it to the files".to_string()), "{e:?}");
        assert!(
            e.iter()
                .any(|p| p.contains("extends cycle through service loop")),
            "{e:?}"
        );
        let src = files(&[(
            "c.yml",
            "services:\n  web:\n    image: a:1\n    env_file: [./app.env, {path: opt.env, required: false}]\n",
        )]);
        let r = resolve(&src, &["c.yml".into()], &Vars::new());
        let refs: Vec<(String, bool)> = r
            .references
            .iter()
            .map(|r| (r.path.clone(), r.required))
            .collect();
        assert_eq!(
            refs,
            [
                ("app.env".to_string(), true),
                ("opt.env".to_string(), false)
            ]
        );
    }

    #[test]
    fn variables_are_listed_once_and_dollar_dollar_is_not_one() {
        assert_eq!(
            variables("vendor/app:${APP_VERSION:-${DEFAULT}}-$SUFFIX$$NOT$APP_VERSION"),
            ["APP_VERSION", "DEFAULT", "SUFFIX"]
        );
    }
}
