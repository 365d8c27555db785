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
