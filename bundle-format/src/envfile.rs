//! `.env` files and `${VAR}` interpolation, as compose understands them.
//!
//! Pure functions over strings. Reading follows compose v2's dotenv rules
//! ([`read`]); writing changes only the bytes of the values it sets and
//! appends new keys in the file's own line endings, so comments, order and
//! every other value stay byte for byte.

use std::collections::BTreeMap;

/// Values for interpolation.
pub type Vars = BTreeMap<String, String>;

/// One assignment in a `.env` text, read as compose v2 reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key (without `export `).
    pub key: String,
    /// Its value; `None` for a key without `=`, which compose takes from
    /// the environment it runs in.
    pub value: Option<String>,
    /// Where the raw value stands in the text (quotes included, a trailing
    /// comment and spaces not); for a key without `=`, an empty range just
    /// after the key.
    pub value_span: std::ops::Range<usize>,
    /// 1-based line of the key.
    pub line: usize,
}

/// A `.env` text compose would refuse too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// A character compose does not allow in a key.
    #[error("line {line}: unexpected character {ch:?} in the name {name:?}; hint: keys are letters, digits and _ . - [ ], followed by = and the value")]
    BadKey {
        /// Line.
        line: usize,
        /// The character.
        ch: char,
        /// The line's text up to it.
        name: String,
    },
    /// A quote that is never closed.
    #[error("line {line}: the quoted value starting {start:?} is never closed; hint: close the quote, or escape a quote inside the value with a backslash")]
    Unterminated {
        /// Line.
        line: usize,
        /// The value's first line.
        start: String,
    },
    /// A `${VAR:?message}` in a value, with VAR unset.
    #[error("line {line}")]
    Interpolate {
        /// Line.
        line: usize,
        /// Why.
        #[source]
        source: InterpolateError,
    },
}

fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// compose-go's `isSpace`: blanks, never a newline.
fn is_blank(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{a0}'
    )
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

/// compose-go's escapes in double-quoted values: `\n` and `\r` become the
/// control characters, `\$` stays as written, `\X` becomes `X`.
fn expand_escapes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            // A literal `$`: the interpolation below reads `$$` as one.
            Some('$') => out.push_str("$$"),
            Some(x) => out.push(x),
            None => out.push('\\'),
        }
    }
    out
}

/// Reads every assignment of a `.env` text as compose v2 does: a BOM and
/// CRLF line ends are allowed; `#` starts a comment line; `export ` and
/// blanks around `=` (or compose's YAML-style `:`) are allowed; an unquoted
/// value ends at ` #` and loses trailing blanks; single quotes are literal
/// (but for `\'`); double quotes take `\n`, `\r`, `\"` and other escapes
/// and may span lines; `${VAR}` in unquoted and double-quoted values is
/// expanded from the keys above it, then from this process's environment.
/// Returns what was read before the first error, and the error.
pub fn read_partial(text: &str) -> (Vec<Entry>, Option<DotenvError>) {
    let mut out: Vec<Entry> = Vec::new();
    let mut vars = Vars::new();
    let b = text.as_bytes();
    let mut i = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let next_char = |i: usize| text[i..].chars().next();
    loop {
        // The start of the next statement: skip blanks, newlines and comment lines.
        while let Some(c) = next_char(i) {
            if c == '\n' || is_blank(c) {
                i += c.len_utf8();
            } else if c == '#' {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            } else {
                break;
            }
        }
        if i >= b.len() {
            return (out, None);
        }
        let line = line_at(text, i);
        if let Some(rest) = text[i..].strip_prefix("export") {
            if rest.starts_with([' ', '\t']) {
                i += "export".len();
                while next_char(i).is_some_and(is_blank) {
                    i += 1;
                }
            }
        }
        // The key, up to `=`, `:` or a newline (a key without a value).
        let kstart = i;
        let mut sep = None;
        while let Some(c) = next_char(i) {
            if is_blank(c) || is_key_char(c) {
                i += c.len_utf8();
                continue;
            }
            if matches!(c, '=' | ':' | '\n') {
                sep = Some(c);
                break;
            }
            let name = text[kstart..i].to_owned();
            return (out, Some(DotenvError::BadKey { line, ch: c, name }));
        }
        let key = text[kstart..i].trim_end_matches(is_blank).to_owned();
        if !matches!(sep, Some('=' | ':')) {
            // A key alone takes its value from the environment.
            if let Ok(v) = std::env::var(&key) {
                vars.insert(key.clone(), v);
            }
            out.push(Entry {
                key,
                value: None,
                value_span: i..i,
                line,
            });
            continue;
        }
        i += 1;
        while next_char(i).is_some_and(is_blank) {
            i += 1;
        }
        let lookup = |vars: &Vars| {
            let mut all: Vars = std::env::vars().collect();
            all.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            all
        };
        let (value, span) = match next_char(i) {
            Some(q @ ('\'' | '"')) => {
                let mut raw = String::new();
                let mut escaped = false;
                let mut close = None;
                for (j, c) in text[i + 1..].char_indices() {
                    if c != q {
                        if !escaped && c == '\\' {
                            escaped = true;
                            continue;
                        }
                        if escaped {
                            escaped = false;
                            raw.push('\\');
                        }
                        raw.push(c);
                        continue;
                    }
                    if escaped {
                        escaped = false;
                        raw.push(c);
                        continue;
                    }
                    close = Some(i + 1 + j);
                    break;
                }
                let Some(close) = close else {
                    let start = text[i..].lines().next().unwrap_or("").to_owned();
                    return (out, Some(DotenvError::Unterminated { line, start }));
                };
                let value = if q == '"' {
                    match interpolate(&expand_escapes(&raw), &lookup(&vars)) {
                        Ok(v) => v,
                        Err(source) => {
                            return (out, Some(DotenvError::Interpolate { line, source }))
                        }
                    }
                } else {
                    raw
                };
                let span = i..close + 1;
                i = close + 1;
                (value, span)
            }
            _ => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                let raw = &text[i..end];
                let raw = raw.split(" #").next().unwrap_or("");
                let raw = raw.trim_end();
                let value = match interpolate(raw, &lookup(&vars)) {
                    Ok(v) => v,
                    Err(source) => return (out, Some(DotenvError::Interpolate { line, source })),
                };
                let span = i..i + raw.len();
                i = end;
                (value, span)
            }
        };
        vars.insert(key.clone(), value.clone());
        out.push(Entry {
            key,
            value: Some(value),
            value_span: span,
            line,
        });
    }
}

/// [`read_partial`], failing on the first error.
pub fn read(text: &str) -> Result<Vec<Entry>, DotenvError> {
    match read_partial(text) {
        (v, None) => Ok(v),
        (_, Some(e)) => Err(e),
    }
}

/// The values compose would see (later keys win; a key without `=` takes
/// this process's environment). Stops at the first error, keeping what came
/// before it: [`read`] reports errors.
pub fn parse(text: &str) -> Vars {
    let mut v = Vars::new();
    for e in read_partial(text).0 {
        match e.value {
            Some(val) => {
                v.insert(e.key, val);
            }
            None => {
                if let Ok(val) = std::env::var(&e.key) {
                    v.insert(e.key, val);
                }
            }
        }
    }
    v
}

/// `value` as `.env` text that compose (v2 and v1) reads back as `value`:
/// bare when it is plain, single-quoted (literal) when it holds no quote or
/// line break, else double-quoted with escapes.
pub fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@,+%=-".contains(c);
    if value.chars().all(plain) {
        return value.to_owned();
    }
    if !value.contains(['\'', '\n', '\r', '\\']) {
        return format!("'{value}'");
    }
    let mut s = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '$' => s.push_str("$$"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The line ending the text uses (CRLF when any line ends so).
fn newline_of(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// The new text of `.env` after `plan`: values set in place, then new
/// keys appended.
pub fn apply(text: &str, plan: &EnvPlan) -> String {
    let mut out = text.to_owned();
    for (k, v) in &plan.set_in_place {
        out = set(&out, k, v);
    }
    append(&out, &plan.append)
}

/// `old` with the keys of `now` that `old` lacks appended (with their
/// values in `now`): every other byte of `old` stays.
pub fn carry_over(old: &str, now: &str) -> String {
    let have = parse(old);
    let mut seen = std::collections::BTreeSet::new();
    let extra: Vec<(String, String)> = read_partial(now)
        .0
        .into_iter()
        .rev()
        .filter(|e| !have.contains_key(&e.key) && seen.insert(e.key.clone()))
        .filter_map(|e| e.value.map(|v| (e.key, v)))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    append(old, &extra)
}

/// Appends `KEY=VALUE` lines to `text`, keeping everything already there
/// and its line endings.
pub fn append(text: &str, new: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    if new.is_empty() {
        return out;
    }
    let nl = newline_of(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(nl);
    }
    for (k, v) in new {
        out.push_str(k);
        out.push('=');
        out.push_str(&quote(v));
        out.push_str(nl);
    }
    out
}

/// Sets `key` to `value` in place: the value of its last assignment (the
/// one compose uses) is replaced and every other byte stays; a key that is
/// not there is appended.
pub fn set(text: &str, key: &str, value: &str) -> String {
    let entries = read_partial(text).0;
    match entries.iter().rev().find(|e| e.key == key) {
        Some(e) => {
            let q = quote(value);
            let mut out = String::with_capacity(text.len() + q.len());
            out.push_str(&text[..e.value_span.start]);
            if e.value.is_none() {
                out.push('=');
            }
            out.push_str(&q);
            out.push_str(&text[e.value_span.end..]);
            out
        }
        None => append(text, &[(key.to_owned(), value.to_owned())]),
    }
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

    /// compose v2's reading of each case (checked against the real
    /// binaries by `tests/dotenv_compose.rs`).
    #[rstest]
    #[case::comment_after_unquoted("APP_PORT=18555 # the port\n", "APP_PORT", Some("18555"))]
    #[case::comment_after_quoted("APP_PORT=\"18555\" # port\n", "APP_PORT", Some("18555"))]
    #[case::hash_without_space("H=a#b\n", "H", Some("a#b"))]
    #[case::bom("\u{feff}APP_PORT=1\n", "APP_PORT", Some("1"))]
    #[case::crlf("A=1\r\nB=2\r\n", "A", Some("1"))]
    #[case::single_quotes_literal("S='$HOME x\\'y'\n", "S", Some("$HOME x'y"))]
    #[case::double_quote_escapes("D=\"a\\nb\\$c$$d\\\\e\\\"f\"\n", "D", Some("a\nb$c$d\\e\"f"))]
    #[case::double_quote_multiline("M=\"l1\nl2\"\nN=1\n", "M", Some("l1\nl2"))]
    #[case::export_and_blanks("export  E = v \n", "E", Some("v"))]
    #[case::empty("EMPTY=\n", "EMPTY", Some(""))]
    #[case::key_without_equals("NOEQ_UNSET_IN_TESTS\nA=1\n", "NOEQ_UNSET_IN_TESTS", None)]
    #[case::expands_earlier_keys("H=a#b\nR=${H}-x\n", "R", Some("a#b-x"))]
    #[case::single_quotes_do_not_expand("H=a\nR='${H}'\n", "R", Some("${H}"))]
    #[case::double_dollar_is_literal("H=a\nDD=\"x$${H}\"\n", "DD", Some("x${H}"))]
    #[case::yaml_style("Y: yam\n", "Y", Some("yam"))]
    #[case::later_wins("A=1\nA=2\n", "A", Some("2"))]
    fn reads_as_compose_v2(#[case] text: &str, #[case] key: &str, #[case] want: Option<&str>) {
        assert_eq!(parse(text).get(key).map(String::as_str), want, "{text:?}");
    }

    #[rstest]
    #[case::unterminated(
        "A=\"open\nB=1\n",
        "line 1: the quoted value starting \"\\\"open\" is never closed"
    )]
    #[case::bad_key("A B!=1\n", "line 1: unexpected character '!' in the name \"A B\"")]
    fn refuses_what_compose_refuses(#[case] text: &str, #[case] says: &str) {
        let e = read(text).unwrap_err().to_string();
        assert!(e.starts_with(says), "{e}");
    }

    #[test]
    fn set_changes_one_value_in_place_and_keeps_every_other_byte() {
        let text = "\u{feff}# ops\r\nAPP_PORT=18555 # the port\r\nexport  MODE = 'fast'\r\nAPP_PORT=1\r\nLAST=x";
        let out = set(text, "APP_PORT", "9000");
        assert_eq!(
            out,
            "\u{feff}# ops\r\nAPP_PORT=18555 # the port\r\nexport  MODE = 'fast'\r\nAPP_PORT=9000\r\nLAST=x"
        );
        let out = set(text, "MODE", "slow and steady");
        assert_eq!(
            out,
            text.replace("'fast'", "'slow and steady'"),
            "the spelling around the value stays"
        );
        assert_eq!(parse(&out)["MODE"], "slow and steady");
        // A key not there is appended in the file's line endings.
        assert_eq!(set(text, "NEW", "1"), format!("{text}\r\nNEW=1\r\n"));
        assert_eq!(set("NOEQ\n", "NOEQ", "v"), "NOEQ=v\n");
    }

    #[test]
    fn carry_over_keeps_the_old_text_and_adds_only_new_keys() {
        let old = "# 1.0.0\r\nAPP_VERSION=1.0.0\r\n";
        let now = "# 1.0.0\r\nAPP_VERSION=2.0.0\r\nSIGNING_KEY=abc\r\nX=1\r\nX='two'\r\n";
        assert_eq!(
            carry_over(old, now),
            "# 1.0.0\r\nAPP_VERSION=1.0.0\r\nSIGNING_KEY=abc\r\nX=two\r\n"
        );
        assert_eq!(carry_over(old, old), old);
    }

    #[test]
    fn appends_never_duplicate_a_key_spelled_another_way() {
        let text = "export APP_PORT = 1\n\u{a0}";
        let p = plan(
            text,
            &[manifest_schema::EnvVar {
                key: "APP_PORT".into(),
                description: String::new(),
                required: true,
                default: Some("2".into()),
                generate: None,
                unrotatable: false,
                managed: false,
            }],
            &[],
            &BTreeMap::new(),
            &[],
            |_| unreachable!(),
        );
        assert!(p.append.is_empty(), "{p:?}");
    }

    #[rstest]
    #[case::plain("ops@example.com", "ops@example.com")]
    #[case::space("two words", "'two words'")]
    #[case::hash("a #b", "'a #b'")]
    #[case::dollar("$HOME", "'$HOME'")]
    #[case::quote("it's", "\"it's\"")]
    #[case::newline("l1\nl2", "\"l1\\nl2\"")]
    #[case::backslash_and_dollar("a\\b$c'", "\"a\\\\b$$c'\"")]
    #[case::empty("", "")]
    fn written_values_read_back_unchanged(#[case] value: &str, #[case] written: &str) {
        assert_eq!(quote(value), written);
        let text = append("", &[("K".into(), value.into())]);
        assert_eq!(parse(&text)["K"], value, "{text:?}");
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
    /// `--set` values for keys `.env` already holds with another value, and
    /// managed keys moving with the release: changed in place, every other
    /// byte kept.
    pub set_in_place: Vec<(String, String)>,
    /// Managed keys moving with the release: (key, from, to).
    pub managed: Vec<(String, String, String)>,
    /// Managed keys the operator changed: refused.
    pub managed_conflicts: Vec<ManagedConflict>,
}

/// A managed key whose value in `.env` is neither what the installer wrote
/// there nor the new release's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedConflict {
    /// The key.
    pub key: String,
    /// What `.env` says.
    pub found: String,
    /// What the installer last wrote, if known.
    pub wrote: Option<String>,
    /// The new release's value.
    pub want: String,
}

/// Compares `.env` with the new version's requirements. `generate` makes a
/// secret; it is called only for keys that are absent (first appearance).
///
/// A `managed` key belongs to the release: it moves to the new release's
/// default when `.env` holds what the installer last wrote there (`last`,
/// or the old release's default when nothing is recorded) or nothing; an
/// operator's own value is a conflict (refused in preflight), unless
/// `--set` names the value to use.
pub fn plan(
    existing: &str,
    new: &[manifest_schema::EnvVar],
    old: &[manifest_schema::EnvVar],
    last: &BTreeMap<String, String>,
    set: &[(String, String)],
    mut generate: impl FnMut(manifest_schema::Generate) -> String,
) -> EnvPlan {
    let have = parse(existing);
    let mut p = EnvPlan::default();
    for var in new.iter().filter(|v| v.managed) {
        let (Some(want), Some(cur)) = (&var.default, have.get(&var.key)) else {
            continue;
        };
        if cur == want || set.iter().any(|(k, _)| k == &var.key) {
            continue;
        }
        let wrote = last.get(&var.key).or_else(|| {
            old.iter()
                .find(|o| o.key == var.key)
                .and_then(|o| o.default.as_ref())
        });
        if wrote == Some(cur) {
            p.set_in_place.push((var.key.clone(), want.clone()));
            p.managed.push((var.key.clone(), cur.clone(), want.clone()));
        } else {
            p.managed_conflicts.push(ManagedConflict {
                key: var.key.clone(),
                found: cur.clone(),
                wrote: wrote.cloned(),
                want: want.clone(),
            });
        }
    }
    for (k, v) in set {
        if have.get(k).is_some_and(|cur| cur != v) {
            p.set_in_place.push((k.clone(), v.clone()));
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
            managed: false,
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
        let p = plan(
            "PORT=80\nOLD=x\n",
            &new,
            &old,
            &BTreeMap::new(),
            &[],
            |_| "s3cret".into(),
        );
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
            &BTreeMap::new(),
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
            &BTreeMap::new(),
            &[("EMAIL".into(), "a@b".into())],
            |_| "x".into(),
        );
        assert_eq!(
            conflict.set_in_place,
            vec![("EMAIL".to_string(), "a@b".to_string())]
        );
    }

    #[test]
    fn a_managed_key_moves_with_the_release_unless_the_operator_changed_it() {
        let managed = |d: &str| EnvVar {
            managed: true,
            ..var("APP_VERSION", Some(d), None)
        };
        let (old, new) = (vec![managed("1.0.0")], vec![managed("2.0.0")]);
        let none = BTreeMap::new();
        // What the installer wrote: moved in place.
        let text = "# pin\nAPP_VERSION=1.0.0 # set by the installer\n";
        let p = plan(text, &new, &old, &none, &[], |_| unreachable!());
        assert_eq!(
            p.managed,
            [("APP_VERSION".into(), "1.0.0".into(), "2.0.0".into())]
        );
        assert_eq!(
            apply(text, &p),
            "# pin\nAPP_VERSION=2.0.0 # set by the installer\n"
        );
        // The recorded value counts over the old default.
        let last: BTreeMap<String, String> = [("APP_VERSION".into(), "1.0.1".into())].into();
        let p = plan(
            "APP_VERSION=1.0.1\n",
            &new,
            &old,
            &last,
            &[],
            |_| unreachable!(),
        );
        assert_eq!(p.set_in_place, [("APP_VERSION".into(), "2.0.0".into())]);
        // The operator's own value: a conflict naming all three values.
        let p = plan(
            "APP_VERSION=1.5.0\n",
            &new,
            &old,
            &none,
            &[],
            |_| unreachable!(),
        );
        assert!(p.set_in_place.is_empty());
        assert_eq!(
            p.managed_conflicts,
            [ManagedConflict {
                key: "APP_VERSION".into(),
                found: "1.5.0".into(),
                wrote: Some("1.0.0".into()),
                want: "2.0.0".into()
            }]
        );
        // ... unless --set names the value to use.
        let set = [("APP_VERSION".to_string(), "1.5.0".to_string())];
        let p = plan(
            "APP_VERSION=1.4.0\n",
            &new,
            &old,
            &none,
            &set,
            |_| unreachable!(),
        );
        assert!(p.managed_conflicts.is_empty());
        assert_eq!(p.set_in_place, [("APP_VERSION".into(), "1.5.0".into())]);
        // Absent: appended like any default; already right: untouched.
        let p = plan("", &new, &old, &none, &[], |_| unreachable!());
        assert_eq!(p.append, [("APP_VERSION".into(), "2.0.0".into())]);
        let p = plan(
            "APP_VERSION=2.0.0\n",
            &new,
            &old,
            &none,
            &[],
            |_| unreachable!(),
        );
        assert_eq!(
            p,
            EnvPlan {
                new_defaults: p.new_defaults.clone(),
                ..EnvPlan::default()
            }
        );
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
