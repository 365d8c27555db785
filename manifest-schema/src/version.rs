//! Versions (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`) and simple requirements
//! (`>=1.2.0, <2.0.0`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A semantic version.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Pre-release identifiers, dot-separated, empty when none.
    pub pre: String,
    /// Build metadata, ignored for ordering.
    pub build: String,
}

/// Why a string is not a version or requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError(String);

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VersionError {}

fn num(s: &str, whole: &str) -> Result<u64, VersionError> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VersionError(format!(
            "invalid version {whole:?}: expected MAJOR.MINOR.PATCH, e.g. 1.4.2"
        )));
    }
    s.parse()
        .map_err(|_| VersionError(format!("invalid version {whole:?}: number too large")))
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        let (rest, build) = s.split_once('+').unwrap_or((s, ""));
        let (core, pre) = rest.split_once('-').unwrap_or((rest, ""));
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3 {
            return Err(VersionError(format!(
                "invalid version {s:?}: expected MAJOR.MINOR.PATCH, e.g. 1.4.2"
            )));
        }
        let ok_ident = |x: &str| {
            x.split('.')
                .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        };
        if (s.contains('-') && !ok_ident(pre)) || (s.contains('+') && !ok_ident(build)) {
            return Err(VersionError(format!(
                "invalid version {s:?}: bad pre-release or build identifiers"
            )));
        }
        Ok(Version {
            major: num(parts[0], s)?,
            minor: num(parts[1], s)?,
            patch: num(parts[2], s)?,
            pre: pre.to_owned(),
            build: build.to_owned(),
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(&self.pre, &other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut ai = a.split('.');
    let mut bi = b.split('.');
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(n), Ok(m)) => n.cmp(&m),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, VersionError> {
        s.parse()
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.to_string()
    }
}

impl JsonSchema for Version {
    fn schema_name() -> Cow<'static, str> {
        "Version".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$",
            "description": "A semantic version, e.g. 1.4.2"
        })
    }
}

/// One comparison in a [`VersionReq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// A conjunction of comparisons, e.g. `>=1.2.0, <2.0.0`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VersionReq {
    text: String,
    terms: Vec<(Op, Version)>,
}

impl VersionReq {
    /// True when `v` meets every comparison.
    pub fn matches(&self, v: &Version) -> bool {
        self.terms.iter().all(|(op, r)| match op {
            Op::Ge => v >= r,
            Op::Gt => v > r,
            Op::Le => v <= r,
            Op::Lt => v < r,
            Op::Eq => v == r,
        })
    }

    /// The lowest version this requirement names with `>=` or `>`, if any.
    pub fn minimum(&self) -> Option<&Version> {
        self.terms
            .iter()
            .filter(|(op, _)| matches!(op, Op::Ge | Op::Gt))
            .map(|(_, v)| v)
            .max()
    }
}

impl FromStr for VersionReq {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        let mut terms = Vec::new();
        for term in s.split(',') {
            let t = term.trim();
            let (op, rest) = if let Some(r) = t.strip_prefix(">=") {
                (Op::Ge, r)
            } else if let Some(r) = t.strip_prefix("<=") {
                (Op::Le, r)
            } else if let Some(r) = t.strip_prefix('>') {
                (Op::Gt, r)
            } else if let Some(r) = t.strip_prefix('<') {
                (Op::Lt, r)
            } else if let Some(r) = t.strip_prefix('=') {
                (Op::Eq, r)
            } else {
                return Err(VersionError(format!(
                    "invalid version requirement {s:?}: each term needs >=, >, <=, < or =, e.g. \">=1.2.0, <2.0.0\""
                )));
            };
            terms.push((op, rest.trim().parse()?));
        }
        Ok(VersionReq {
            text: s.to_owned(),
            terms,
        })
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionReq({})", self.text)
    }
}

impl TryFrom<String> for VersionReq {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, VersionError> {
        s.parse()
    }
}

impl From<VersionReq> for String {
    fn from(v: VersionReq) -> String {
        v.text
    }
}

impl JsonSchema for VersionReq {
    fn schema_name() -> Cow<'static, str> {
        "VersionReq".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Comma-separated comparisons, e.g. \">=1.2.0, <2.0.0\""
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[rstest]
    #[case::patch("1.0.0", "1.0.1")]
    #[case::minor_beats_patch("1.0.9", "1.1.0")]
    #[case::numeric_not_lexical("1.9.0", "1.10.0")]
    #[case::prerelease_first("2.0.0-rc.1", "2.0.0")]
    #[case::prerelease_numeric("2.0.0-rc.2", "2.0.0-rc.10")]
    fn orders(#[case] lo: &str, #[case] hi: &str) {
        assert!(v(lo) < v(hi));
    }

    #[rstest]
    #[case::two_parts(
        "1.2",
        "invalid version \"1.2\": expected MAJOR.MINOR.PATCH, e.g. 1.4.2"
    )]
    #[case::leading_zero(
        "01.2.3",
        "invalid version \"01.2.3\": expected MAJOR.MINOR.PATCH, e.g. 1.4.2"
    )]
    #[case::v_prefix(
        "v1.2.3",
        "invalid version \"v1.2.3\": expected MAJOR.MINOR.PATCH, e.g. 1.4.2"
    )]
    #[case::empty_pre(
        "1.2.3-",
        "invalid version \"1.2.3-\": bad pre-release or build identifiers"
    )]
    fn rejects(#[case] input: &str, #[case] message: &str) {
        assert_eq!(input.parse::<Version>().unwrap_err().to_string(), message);
    }

    #[test]
    fn requirements_match() {
        let r: VersionReq = ">=1.2.0, <2.0.0".parse().unwrap();
        assert!(r.matches(&v("1.2.0")));
        assert!(r.matches(&v("1.9.9")));
        assert!(!r.matches(&v("1.1.9")));
        assert!(!r.matches(&v("2.0.0")));
        assert_eq!(r.minimum(), Some(&v("1.2.0")));
        assert_eq!(
            "1.2.0".parse::<VersionReq>().unwrap_err().to_string(),
            "invalid version requirement \"1.2.0\": each term needs >=, >, <=, < or =, e.g. \">=1.2.0, <2.0.0\""
        );
    }
}
