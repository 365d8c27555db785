//! Which compose runs, and its dialect: `docker compose` (the v2 plugin),
//! a standalone `docker-compose` (v1, or a v2 binary under the v1 name, as
//! Debian ships 2.26), `podman compose` or `podman-compose`. The dialect is
//! told by what `version` prints, never by the binary's name.

use std::fmt;
use std::process::{Command, Stdio};

use super::EngineError;

/// How a compose takes its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// compose v2 and later (the Go rewrite, 2.x then 5.x): `up --pull
    /// never`.
    V2,
    /// compose v1 (Python): no `--pull`.
    V1,
    /// podman-compose: no `--pull`, recreates only with `--force-recreate`,
    /// no `down --remove-orphans`.
    PodmanCompose,
}

impl Dialect {
    /// The dialect of a compose whose `version` printed `out`; `None` when
    /// it is none of those.
    pub fn of_version(out: &str) -> Option<Dialect> {
        let first = out
            .lines()
            .find(|l| !l.trim().is_empty())?
            .to_ascii_lowercase();
        // podman-compose 1.0 prints its podman call first, then
        // "podman-composer version  1.0.3".
        if out.to_ascii_lowercase().contains("podman-compose") {
            return Some(Dialect::PodmanCompose);
        }
        // The Go rewrite names itself "Docker Compose", as the plugin and
        // under the v1 name alike, and went from 2.x to 5.x (there is no
        // 3 or 4); v1 is "docker-compose version 1.29.2, build …".
        if first.contains("docker compose version") {
            return Some(Dialect::V2);
        }
        let number = first.strip_prefix("docker-compose version ")?;
        match number
            .trim_start_matches('v')
            .split('.')
            .next()?
            .parse::<u64>()
        {
            Ok(1) => Some(Dialect::V1),
            Ok(2..) => Some(Dialect::V2),
            _ => None,
        }
    }
}

/// A compose command line and its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCli {
    /// The program and its leading arguments (`docker compose`).
    words: Vec<String>,
    /// How it takes its arguments.
    pub dialect: Dialect,
}

impl ComposeCli {
    /// The compose `spec` names ("docker compose", "docker-compose", a
    /// path), if its `version` answers.
    pub fn probe(spec: &str) -> Option<ComposeCli> {
        let words: Vec<String> = spec.split_whitespace().map(str::to_owned).collect();
        let (bin, args) = words.split_first()?;
        let out = Command::new(bin)
            .args(args)
            .arg("version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let dialect = Dialect::of_version(&String::from_utf8_lossy(&out.stdout))?;
        Some(ComposeCli { words, dialect })
    }

    /// The given compose, else the first of `candidates` that answers.
    pub fn choose(given: Option<&str>, candidates: &[String]) -> Result<ComposeCli, EngineError> {
        let tried: Vec<String> = match given {
            Some(g) => vec![g.to_owned()],
            None => candidates.to_vec(),
        };
        tried
            .iter()
            .find_map(|c| ComposeCli::probe(c))
            .ok_or_else(|| EngineError::NoCompose {
                tried: tried.join(", "),
            })
    }

    /// A command to run it.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.words[0]);
        c.args(&self.words[1..]);
        c
    }

    /// `args` as this dialect wants them: v2 never pulls (every image came
    /// from the bundle); podman-compose recreates containers only when told
    /// and has no `--remove-orphans` for `down`.
    pub fn args<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut args = args.to_vec();
        match (args.first().copied(), self.dialect) {
            (Some("up"), Dialect::V2) => args.extend(["--pull", "never"]),
            (Some("up"), Dialect::PodmanCompose) => args.push("--force-recreate"),
            (Some("down"), Dialect::PodmanCompose) => args.retain(|a| *a != "--remove-orphans"),
            _ => {}
        }
        args
    }
}

impl fmt::Display for ComposeCli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plugin_2_40("Docker Compose version v2.40.3\n", Some(Dialect::V2))]
    #[case::debian_2_26_under_the_v1_name("Docker Compose version 2.26.1-4\n", Some(Dialect::V2))]
    #[case::v1_1_29(
        "docker-compose version 1.29.2, build unknown\ndocker-py version: 5.0.3\n",
        Some(Dialect::V1)
    )]
    #[case::podman_compose_1_0("['podman', '--version', '']\nusing podman version: 4.3.1\npodman-composer version  1.0.3\npodman --version \npodman version 4.3.1\n", Some(Dialect::PodmanCompose))]
    #[case::plugin_5_5("Docker Compose version v5.5.0\n", Some(Dialect::V2))]
    #[case::hyphenated_v2("docker-compose version v2.20.3\n", Some(Dialect::V2))]
    #[case::hyphenated_v5("docker-compose version 5.0.2\n", Some(Dialect::V2))]
    #[case::something_else("usage: frobnicate\n", None)]
    #[case::an_unknown_number("docker-compose version next\n", None)]
    #[case::version_zero("docker-compose version 0.9.0\n", None)]
    fn the_dialect_comes_from_the_version_output(#[case] out: &str, #[case] want: Option<Dialect>) {
        assert_eq!(Dialect::of_version(out), want);
    }

    #[test]
    fn each_dialect_gets_its_arguments() {
        let c = |dialect| ComposeCli {
            words: vec!["x".into()],
            dialect,
        };
        let up = ["up", "-d", "--remove-orphans", "--no-build"];
        assert_eq!(
            c(Dialect::V2).args(&up),
            [
                "up",
                "-d",
                "--remove-orphans",
                "--no-build",
                "--pull",
                "never"
            ]
        );
        assert_eq!(c(Dialect::V1).args(&up), up);
        assert_eq!(c(Dialect::PodmanCompose).args(&up)[4], "--force-recreate");
        assert_eq!(
            c(Dialect::PodmanCompose).args(&["down", "--remove-orphans"]),
            ["down"]
        );
    }
}
