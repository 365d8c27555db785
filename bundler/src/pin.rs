//! `bundler pin`: resolve tags to digests and write them into the spec.
//!
//! The spec is edited as text: only the `ref:` values change, so comments,
//! order and formatting stay as the vendor wrote them.

use manifest_schema::ImageRef;

/// Rewrites every `ref:` line whose value is `old` to `new`.
pub fn rewrite_refs(text: &str, pins: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len() + pins.len() * 72);
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
        let replaced = trimmed.strip_prefix("ref:").and_then(|rest| {
            // Drop a trailing YAML comment before comparing.
            let rest = rest.split(" #").next().unwrap_or(rest);
            let value = rest.trim().trim_matches(|c| c == '"' || c == '\'');
            pins.iter()
                .find(|(old, _)| old == value)
                .map(|(old, new)| line.replacen(old.as_str(), new, 1))
        });
        out.push_str(replaced.as_deref().unwrap_or(line));
    }
    out
}

/// The pinned form of a reference: tag kept, digest replaced.
pub fn pinned(r: &ImageRef, digest: &manifest_schema::Digest) -> String {
    let mut p = r.clone();
    p.digest = Some(digest.clone());
    let s = p.to_string();
    // Keep Docker Hub names as the vendor wrote them (without docker.io/library).
    if r.registry == manifest_schema::reference::DEFAULT_REGISTRY {
        format!("{}@{digest}", r.tagged_name())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_ref_values_keeping_comments() {
        let text = "# comment\nimages:\n  - ref: r/a:1 # pinned by CI\n    name: r/a:1\n  - ref: \"r/b:2\"\n";
        let out = rewrite_refs(
            text,
            &[
                ("r/a:1".into(), "r/a:1@sha256:x".into()),
                ("r/b:2".into(), "r/b:2@sha256:y".into()),
            ],
        );
        assert_eq!(out, "# comment\nimages:\n  - ref: r/a:1@sha256:x # pinned by CI\n    name: r/a:1\n  - ref: \"r/b:2@sha256:y\"\n");
    }
}
