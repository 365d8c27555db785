//! `.env` files and `${VAR}` interpolation, as compose understands them.
//!
//! Pure functions over strings: parsing keeps every line, so a merge appends
//! new keys and leaves existing values, comments and order byte for byte.

use std::collections::BTreeMap;

/// Values for interpolation.
pub type Vars = BTreeMap<String, String>;

/// Parses `KEY=VALUE` lines (comments, blanks and `export ` prefixes are
/// allowed; quotes around the value are removed).
pub fn parse(text: &str) -> Vars {
    let mut v = Vars::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        if let Some((k, val)) = l.split_once('=') {
            let k = k.trim();
            if !manifest_schema::validate::valid_env_key(k) {
                continue;
            }
            let val = val.trim();
            let val = if val.len() >= 2
                && ((val.starts_with('"') && val.ends_with('"'))
                    || (val.starts_with('\'') && val.ends_with('\'')))
            {
                &val[1..val.len() - 1]
            } else {
                val
            };
            v.insert(k.to_owned(), val.to_owned());
        }
    }
    v
}

/// Appends `KEY=VALUE` lines to `text`, keeping everything already there.
pub fn append(text: &str, new: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    if new.is_empty() {
        return out;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (k, v) in new {
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// An interpolation failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${VAR:?msg}` with VAR unset or empty.
    #[error("required variable {var} is not set: {message}")]
    Required {
        /// Variable.
        var: String,
        /// Its message.
        message: String,
    },
    /// Unbalanced `${`.
    #[error("unterminated `${{` in {0:?}")]
    Unterminated(String),
    /// Bad variable syntax.
    #[error("invalid variable expression `${{{0}}}`")]
    Invalid(String),
}

/// Interpolates `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}` and `$$`.
/// Unset variables without a default become empty, as in compose.
pub fn interpolate(s: &str, vars: &Vars) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            // Find the matching brace (defaults may nest `${...}`).
            let mut depth = 1;
            let mut end = None;
            let bytes = r.as_bytes();
            let mut j = 0;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let end = end.ok_or_else(|| InterpolateError::Unterminated(s.to_owned()))?;
            out.push_str(&expand(&r[..end], vars)?);
            rest = &r[end + 1..];
        } else {
            let n = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if n == 0 {
                out.push('$');
                rest = after;
            } else {
                out.push_str(vars.get(&after[..n]).map(String::as_str).unwrap_or(""));
                rest = &after[n..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expr: &str, vars: &Vars) -> Result<String, InterpolateError> {
    let n = expr
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (name, op) = expr.split_at(n);
    if name.is_empty() {
        return Err(InterpolateError::Invalid(expr.to_owned()));
    }
    let val = vars.get(name);
    let set = val.is_some();
    let nonempty = val.is_some_and(|v| !v.is_empty());
    let v = || val.cloned().unwrap_or_default();
    Ok(match op {
        "" => v(),
        _ if op.starts_with(":-") => {
            if nonempty {
                v()
            } else {
                interpolate(&op[2..], vars)?
            }
        }
        _ if op.starts_with('-') => {
            if set {
                v()
            } else {
                interpolate(&op[1..], vars)?
            }
        }
        _ if op.starts_with(":?") || op.starts_with('?') => {
            let colon = op.starts_with(':');
            let ok = if colon { nonempty } else { set };
            if !ok {
                return Err(InterpolateError::Required {
                    var: name.to_owned(),
                    message: op[if colon { 2 } else { 1 }..].to_owned(),
                });
            }
            v()
        }
        _ if op.starts_with(":+") => {
            if nonempty {
                interpolate(&op[2..], vars)?
            } else {
                String::new()
            }
        }
        _ if op.starts_with('+') => {
            if set {
                interpolate(&op[1..], vars)?
            } else {
                String::new()
            }
        }
        _ => return Err(InterpolateError::Invalid(expr.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn vars() -> Vars {
        [("SET", "x"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[rstest]
    #[case::plain("a${SET}b", "axb")]
    #[case::bare("$SET/$UNSET.", "x/.")]
    #[case::default_unset("vendor/app:${APP_VERSION:-1.4.2}", "vendor/app:1.4.2")]
    #[case::colon_default_empty("${EMPTY:-d}", "d")]
    #[case::dash_default_empty("${EMPTY-d}", "")]
    #[case::dash_default_unset("${NOPE-d}", "d")]
    #[case::nested_default("${NOPE:-${SET}}", "x")]
    #[case::alt("${SET:+alt}${NOPE:+alt}", "alt")]
    #[case::dollar("$$SET", "$SET")]
    fn expands(#[case] input: &str, #[case] out: &str) {
        assert_eq!(interpolate(input, &vars()).unwrap(), out);
    }

    #[test]
    fn required_and_malformed() {
        assert_eq!(
            interpolate("${TOKEN:?set TOKEN in .env}", &vars())
                .unwrap_err()
                .to_string(),
            "required variable TOKEN is not set: set TOKEN in .env"
        );
        assert!(interpolate("${EMPTY?m}", &vars()).is_ok());
        assert_eq!(
            interpolate("${SET", &vars()).unwrap_err().to_string(),
            "unterminated `${` in \"${SET\""
        );
        assert_eq!(
            interpolate("${-x}", &vars()).unwrap_err().to_string(),
            "invalid variable expression `${-x}`"
        );
    }

    #[test]
    fn parse_and_append_keep_text() {
        let text = "# mine\nA=1\nexport B=\"two\"\n\nC='3'";
        let v = parse(text);
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two");
        assert_eq!(v["C"], "3");
        let out = append(text, &[("D".into(), "4".into())]);
        assert_eq!(out, format!("{text}\nD=4\n"));
        assert!(out.starts_with(text));
    }
}

/// What an install will do to `.env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPlan {
    /// Lines to append (new keys), in spec order.
    pub append: Vec<(String, String)>,
    /// Keys appended with a generated secret.
    pub generated: Vec<String>,
    /// Required keys without a value: (key, description).
    pub missing: Vec<(String, String)>,
    /// Keys the new version no longer declares (left in place).
    pub removed: Vec<String>,
    /// Keys whose default changed: (key, old, new); existing values are kept.
    pub new_defaults: Vec<(String, String, String)>,
    /// Unrotatable keys that appear now: back them up off-host.
    pub unrotatable: Vec<String>,
    /// `--set` values for keys already in `.env` (refused: edit `.env`).
    pub conflicts: Vec<String>,
}

/// Compares `.env` with the new version's requirements. `generate` makes a
/// secret; it is called only for keys that are absent (first appearance).
pub fn plan(
    existing: &str,
    new: &[manifest_schema::EnvVar],
    old: &[manifest_schema::EnvVar],
    set: &[(String, String)],
    mut generate: impl FnMut(manifest_schema::Generate) -> String,
) -> EnvPlan {
    let have = parse(existing);
    let mut p = EnvPlan::default();
    for (k, v) in set {
        if have.get(k).is_some_and(|cur| cur != v) {
            p.conflicts.push(k.clone());
        }
    }
    for var in new {
        let old_var = old.iter().find(|o| o.key == var.key);
        if let (Some(o), Some(n)) = (old_var.and_then(|o| o.default.clone()), var.default.clone()) {
            if o != n {
                p.new_defaults.push((var.key.clone(), o, n));
            }
        }
        if have.contains_key(&var.key) {
            continue;
        }
        if let Some((_, v)) = set.iter().find(|(k, _)| k == &var.key) {
            p.append.push((var.key.clone(), v.clone()));
        } else if let Some(g) = var.generate {
            p.append.push((var.key.clone(), generate(g)));
            p.generated.push(var.key.clone());
        } else if let Some(d) = &var.default {
            p.append.push((var.key.clone(), d.clone()));
        } else if var.required {
            p.missing.push((var.key.clone(), var.description.clone()));
            continue;
        } else {
            continue;
        }
        if var.unrotatable {
            p.unrotatable.push(var.key.clone());
        }
    }
    for (k, v) in set {
        if !new.iter().any(|n| &n.key == k) && !have.contains_key(k) {
            p.append.push((k.clone(), v.clone()));
        }
    }
    for o in old {
        if !new.iter().any(|n| n.key == o.key) && have.contains_key(&o.key) {
            p.removed.push(o.key.clone());
        }
    }
    p
}

/// A fresh secret in the requested encoding, from the OS's randomness.
pub fn generate_secret(g: manifest_schema::Generate) -> String {
    use base64::Engine as _;
    use manifest_schema::Generate;
    let n = match g {
        Generate::Hex16 => 16,
        Generate::Hex32 | Generate::Base64_32 => 32,
    };
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("OS randomness");
    match g {
        Generate::Base64_32 => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b),
        _ => manifest_schema::digest::hex(&b),
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use manifest_schema::{EnvVar, Generate};

    fn var(key: &str, default: Option<&str>, generate: Option<Generate>) -> EnvVar {
        EnvVar {
            key: key.into(),
            description: format!("{key} desc"),
            required: true,
            default: default.map(Into::into),
            generate,
            unrotatable: generate.is_some(),
        }
    }

    #[test]
    fn new_required_generated_removed_and_changed_defaults() {
        let old = vec![var("PORT", Some("80"), None), var("OLD", None, None)];
        let new = vec![
            var("PORT", Some("8080"), None),
            var("EMAIL", None, None),
            var("KEY", None, Some(Generate::Hex32)),
            var("MODE", Some("fast"), None),
        ];
        let p = plan("PORT=80\nOLD=x\n", &new, &old, &[], |_| "s3cret".into());
        assert_eq!(
            p.append,
            vec![
                ("KEY".into(), "s3cret".into()),
                ("MODE".into(), "fast".into())
            ]
        );
        assert_eq!(p.missing, vec![("EMAIL".into(), "EMAIL desc".into())]);
        assert_eq!(p.generated, vec!["KEY".to_string()]);
        assert_eq!(p.unrotatable, vec!["KEY".to_string()]);
        assert_eq!(p.removed, vec!["OLD".to_string()]);
        assert_eq!(
            p.new_defaults,
            vec![("PORT".into(), "80".into(), "8080".into())]
        );
    }

    #[test]
    fn set_supplies_missing_and_generation_happens_once() {
        let new = vec![
            var("EMAIL", None, None),
            var("KEY", None, Some(Generate::Hex32)),
        ];
        let mut calls = 0;
        let p = plan(
            "KEY=old\n",
            &new,
            &[],
            &[("EMAIL".into(), "a@b".into())],
            |_| {
                calls += 1;
                "x".into()
            },
        );
        assert_eq!(calls, 0, "an existing secret is never regenerated");
        assert_eq!(p.append, vec![("EMAIL".into(), "a@b".into())]);
        assert!(p.missing.is_empty());
        let conflict = plan(
            "EMAIL=a@c\n",
            &new,
            &[],
            &[("EMAIL".into(), "a@b".into())],
            |_| "x".into(),
        );
        assert_eq!(conflict.conflicts, vec!["EMAIL".to_string()]);
    }

    #[test]
    fn generated_secrets_have_the_requested_shape() {
        assert_eq!(generate_secret(Generate::Hex32).len(), 64);
        assert_eq!(generate_secret(Generate::Hex16).len(), 32);
        assert_ne!(
            generate_secret(Generate::Hex32),
            generate_secret(Generate::Hex32)
        );
    }
}
