//! Paths inside a bundle and inside an install dir.
//!
//! A [`RelPath`] is the only path type the format carries. It is checked on
//! construction, so a path read from a manifest can be joined under an install
//! dir without escaping it (zip-slip, CVE-2018-1002200 and its many cousins).

use std::borrow::Cow;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::layout::STATE_DIR;

/// Longest path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A relative, normalised, `/`-separated path that cannot leave its root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(String);

/// Why a string is not a [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The offending path, lossily printable.
    pub path: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path {:?}: {}", self.path, self.reason)
    }
}

impl std::error::Error for PathError {}

impl RelPath {
    /// Checks raw bytes (as found in a tar header) and builds a path.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PathError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Self::new(s),
            Err(_) => Err(PathError {
                path: String::from_utf8_lossy(bytes).into_owned(),
                reason: "not valid UTF-8",
            }),
        }
    }

    /// Checks a string and builds a path.
    pub fn new(s: &str) -> Result<Self, PathError> {
        let err = |reason| {
            Err(PathError {
                path: s.to_owned(),
                reason,
            })
        };
        if s.is_empty() {
            return err("empty path");
        }
        if s.len() > MAX_PATH_BYTES {
            return err("longer than 4096 bytes");
        }
        if s.contains('\0') {
            return err("contains a NUL byte");
        }
        if s.starts_with('/') {
            return err("absolute paths are not allowed");
        }
        if s.contains('\\') {
            return err("backslashes are not allowed");
        }
        for comp in s.split('/') {
            match comp {
                "" => return err("empty component (`//` or trailing `/`)"),
                "." => return err("`.` components are not allowed"),
                ".." => return err("`..` components are not allowed"),
                c if c.len() > MAX_COMPONENT_BYTES => {
                    return err("a component is longer than 255 bytes")
                }
                c if c.chars().any(char::is_control) => return err("contains a control character"),
                _ => {}
            }
        }
        Ok(RelPath(s.to_owned()))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first component.
    pub fn first_component(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }

    /// True when the path is `prefix` or lies under it.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0 == prefix
            || (self.0.starts_with(prefix) && self.0.as_bytes().get(prefix.len()) == Some(&b'/'))
    }

    /// True when the path is inside the installer's state dir.
    pub fn is_under_state_dir(&self) -> bool {
        self.starts_with(STATE_DIR)
    }

    /// Joins another relative path.
    pub fn join(&self, other: &RelPath) -> RelPath {
        RelPath(format!("{}/{}", self.0, other.0))
    }

    /// Strips a leading directory, returning the rest as a path.
    pub fn strip_prefix(&self, prefix: &str) -> Option<RelPath> {
        let rest = self.0.strip_prefix(prefix)?.strip_prefix('/')?;
        Some(RelPath(rest.to_owned()))
    }
}

impl TryFrom<String> for RelPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, PathError> {
        RelPath::new(&s)
    }
}

impl From<RelPath> for String {
    fn from(p: RelPath) -> String {
        p.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<std::path::Path> for RelPath {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl JsonSchema for RelPath {
    fn schema_name() -> Cow<'static, str> {
        "RelPath".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH_BYTES,
            "pattern": "^[^/\\\\]",
            "description": "A relative `/`-separated path without `.`, `..`, empty components, NUL or control characters"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::empty("", "path \"\": empty path")]
    #[case::absolute("/etc/passwd", "path \"/etc/passwd\": absolute paths are not allowed")]
    #[case::dotdot("a/../../etc", "path \"a/../../etc\": `..` components are not allowed")]
    #[case::leading_dotdot("../x", "path \"../x\": `..` components are not allowed")]
    #[case::dot("./x", "path \"./x\": `.` components are not allowed")]
    #[case::nul("a\0b", "path \"a\\0b\": contains a NUL byte")]
    #[case::double_slash("a//b", "path \"a//b\": empty component (`//` or trailing `/`)")]
    #[case::trailing_slash("a/", "path \"a/\": empty component (`//` or trailing `/`)")]
    #[case::backslash("a\\..\\b", "path \"a\\\\..\\\\b\": backslashes are not allowed")]
    #[case::newline("a\nb", "path \"a\\nb\": contains a control character")]
    fn rejects(#[case] input: &str, #[case] message: &str) {
        assert_eq!(RelPath::new(input).unwrap_err().to_string(), message);
    }

    #[test]
    fn rejects_long_component_and_path() {
        let long = "a".repeat(256);
        assert_eq!(
            RelPath::new(&long).unwrap_err().reason,
            "a component is longer than 255 bytes"
        );
        let deep = vec!["abcdefgh"; 600].join("/");
        assert_eq!(
            RelPath::new(&deep).unwrap_err().reason,
            "longer than 4096 bytes"
        );
    }

    #[test]
    fn rejects_non_utf8_bytes() {
        let e = RelPath::from_bytes(b"caf\xe9").unwrap_err();
        assert_eq!(e.reason, "not valid UTF-8");
    }

    #[test]
    fn prefix_checks_respect_component_boundaries() {
        let p = RelPath::new(".installer/state.json").unwrap();
        assert!(p.is_under_state_dir());
        assert!(!RelPath::new(".installer-notes")
            .unwrap()
            .is_under_state_dir());
        assert_eq!(
            RelPath::new("files/a/b")
                .unwrap()
                .strip_prefix("files")
                .unwrap()
                .as_str(),
            "a/b"
        );
        assert!(RelPath::new("filesx/a")
            .unwrap()
            .strip_prefix("files")
            .is_none());
    }
}
