//! Image references as Docker spells them: `[registry/]repo[:tag][@digest]`.

use std::fmt;

use crate::Digest;

/// Registry assumed when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port), e.g. `127.0.0.1:5000` or `docker.io`.
    pub registry: String,
    /// Repository path, e.g. `demo/web` or `library/busybox`.
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefError(pub String);

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefError {}

impl ImageRef {
    /// Parses a reference.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        let bad = |why: &str| RefError(format!("invalid image reference {s:?}: {why}"));
        if s.is_empty() || s.len() > 1024 {
            return Err(bad("empty or longer than 1024 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?),
            ),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad("tag must be [A-Za-z0-9_.-], at most 128 characters"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let ok_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !ok_repo {
            return Err(bad("repository must be lowercase [a-z0-9._-] components"));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The name compose and the engine use: everything but the digest, with
    /// `latest` when no tag is given. Docker Hub names keep their short form.
    pub fn tagged_name(&self) -> String {
        let tag = self.tag.as_deref().unwrap_or("latest");
        if self.registry == DEFAULT_REGISTRY {
            let repo = self
                .repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository);
            format!("{repo}:{tag}")
        } else {
            format!("{}/{}:{tag}", self.registry, self.repository)
        }
    }

    /// The fully spelled-out name, used to compare two spellings of one image.
    pub fn canonical_name(&self) -> String {
        format!(
            "{}/{}:{}",
            self.registry,
            self.repository,
            self.tag.as_deref().unwrap_or("latest")
        )
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[rstest]
    #[case::hub_short("busybox", "docker.io/library/busybox:latest", "busybox:latest")]
    #[case::hub_user("vendor/app:1.4.2", "docker.io/vendor/app:1.4.2", "vendor/app:1.4.2")]
    #[case::local_port(
        "127.0.0.1:5000/demo/web:1.0.0",
        "127.0.0.1:5000/demo/web:1.0.0",
        "127.0.0.1:5000/demo/web:1.0.0"
    )]
    #[case::localhost("localhost/x", "localhost/x:latest", "localhost/x:latest")]
    #[case::ghcr(
        "ghcr.io/appstrate/appstrate:v1.4.2",
        "ghcr.io/appstrate/appstrate:v1.4.2",
        "ghcr.io/appstrate/appstrate:v1.4.2"
    )]
    fn names(#[case] input: &str, #[case] canonical: &str, #[case] tagged: &str) {
        let r = ImageRef::parse(input).unwrap();
        assert_eq!(r.canonical_name(), canonical);
        assert_eq!(r.tagged_name(), tagged);
    }

    #[test]
    fn parses_digest_and_port() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/demo/web:1.0.0@{D}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "demo/web");
        assert_eq!(r.tag.as_deref(), Some("1.0.0"));
        assert_eq!(r.digest.unwrap().as_str(), D);
    }

    #[rstest]
    #[case::uppercase("Vendor/App", "invalid image reference \"Vendor/App\": repository must be lowercase [a-z0-9._-] components")]
    #[case::bad_digest("a@sha256:12", "invalid image reference \"a@sha256:12\": invalid digest \"sha256:12\": expected sha256:<64 lowercase hex digits>")]
    #[case::space("a b", "invalid image reference \"a b\": contains whitespace")]
    fn rejects(#[case] input: &str, #[case] message: &str) {
        assert_eq!(ImageRef::parse(input).unwrap_err().to_string(), message);
    }
}
