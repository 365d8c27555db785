//! What every engine CLI shares, generic over a [`Flavor`] (the engine's
//! own differences), and the command runner.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{ComposeCli, Container, Engine, EngineError, Store};

/// What one engine does its own way.
pub trait Flavor: fmt::Debug + Sync + 'static {
    /// `docker`, `podman`.
    const KIND: &'static str;
    /// The variable that overrides the binary's path.
    const BIN_VAR: &'static str;
    /// The `info --format` that proves the daemon answers: the daemon's
    /// version on the first line, then what [`Flavor::store_of`] reads.
    const INFO_FORMAT: &'static str;
    /// Whether `load` may leave out layer files the engine has.
    const SKIPS_PRESENT_LAYERS: bool;
    /// Whether loads of images that share no layer may run at once.
    const CONCURRENT_LOADS: bool;
    /// Whether `load` is best given a file whose layers are decompressed
    /// (see [`Engine::loads_plain_files`]).
    const LOADS_PLAIN_FILES: bool;
    /// The oldest version supported (major, minor).
    const MIN_VERSION: (u64, u64);
    /// The first version whose pulls and loads read zstd layers (major,
    /// minor).
    const READS_ZSTD_SINCE: (u64, u64);
    /// The composes to try, in order, for the binary `bin`.
    fn composes(bin: &str) -> Vec<String>;
    /// Where the engine keeps images, read from the whole output of `info
    /// --format INFO_FORMAT`.
    fn store_of(info: &str) -> Store;
    /// Runs before the project's containers are inspected.
    fn before_inspect(_engine: &CliEngine<Self>, _ids: &[String])
    where
        Self: Sized,
    {
    }
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(b: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The daemon's version: the first line of what `info --format
/// INFO_FORMAT` printed.
pub(crate) fn daemon_version(info: &str) -> &str {
    info.lines().next().unwrap_or("").trim()
}

/// The non-empty lines of a command's stdout, trimmed.
fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What `image inspect` prints of an image: its ID, a space, and its diff
/// IDs as JSON, read by [`images_of`].
const IMAGE_FORMAT: &str = "{{.Id}} {{json .RootFS.Layers}}";

/// Each image `image inspect --format IMAGE_FORMAT` printed, by ID, with
/// its diff IDs (none when they do not parse). Podman prints an ID without
/// `sha256:`; it gets one.
fn images_of(out: &str) -> BTreeMap<String, Vec<String>> {
    out.lines()
        .map(|line| {
            let (id, layers) = line.split_once(' ').unwrap_or((line, ""));
            let id = if id.starts_with("sha256:") {
                id.to_owned()
            } else {
                format!("sha256:{id}")
            };
            (id, serde_json::from_str(layers).unwrap_or_default())
        })
        .collect()
}

/// What `inspect` prints of a container: one line of six `|`-separated
/// fields, read by [`containers_of`].
const CONTAINER_FORMAT: &str = "{{.Name}}|{{index .Config.Labels \"com.docker.compose.service\"}}|{{.State.Status}}|{{.State.ExitCode}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Image}}";

/// The containers `inspect --format CONTAINER_FORMAT` printed. A line
/// without six fields (a name or label holding `|`, which compose does not
/// make) is left out; an exit code that is no number reads as -1.
fn containers_of(out: &str) -> Vec<Container> {
    out.lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split('|').collect();
            (p.len() == 6).then(|| Container {
                name: p[0].trim_start_matches('/').to_owned(),
                service: p[1].to_owned(),
                status: p[2].to_owned(),
                exit_code: p[3].parse().unwrap_or(-1),
                health: p[4].to_owned(),
                image_id: p[5].to_owned(),
            })
        })
        .collect()
}

/// Runs a command, capturing output; a non-zero exit is an error.
pub fn run(cmd: &mut Command, hint: &'static str) -> Result<Output, EngineError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EngineError::Spawn {
            cmd: show(cmd),
            cause: e,
            hint,
        })?;
    if !out.status.success() {
        return Err(EngineError::Failed {
            cmd: show(cmd),
            status: out.status.to_string(),
            stderr: tail(&out.stderr, 15),
        });
    }
    Ok(out)
}

/// An engine driven through its CLI.
#[derive(Debug)]
pub struct CliEngine<F: Flavor> {
    bin: String,
    compose: ComposeCli,
    /// What `info` said, once it answered: the daemon's version and store
    /// do not change while the installer runs, and each `info` costs a
    /// CLI start (with docker's, every CLI plugin's as well).
    info: std::sync::OnceLock<String>,
    flavor: PhantomData<F>,
}

impl<F: Flavor> CliEngine<F> {
    /// The engine's binary (`$BIN_VAR` overrides its name) with the given
    /// compose, else the flavor's first that answers.
    pub fn detect(compose: Option<&str>) -> Result<Self, EngineError> {
        let bin = std::env::var(F::BIN_VAR).unwrap_or_else(|_| F::KIND.into());
        Self::with_bin(bin, compose)
    }

    /// [`CliEngine::detect`] for the binary `bin`. The daemon's `info` is
    /// asked while compose's `version` answers: each starts a CLI (docker's
    /// with every plugin's metadata), and every install needs both.
    fn with_bin(bin: String, compose: Option<&str>) -> Result<Self, EngineError> {
        let (compose, info) = std::thread::scope(|s| {
            let info = s.spawn(|| ask_info::<F>(&bin));
            let compose = ComposeCli::choose(compose, &F::composes(&bin));
            (compose, info.join())
        });
        let engine = CliEngine {
            bin,
            compose: compose?,
            info: std::sync::OnceLock::new(),
            flavor: PhantomData,
        };
        // A daemon that did not answer is asked again when it matters,
        // and its error told then.
        if let Ok(Ok(text)) = info {
            let _ = engine.info.set(text);
        }
        Ok(engine)
    }

    /// A command for the engine's binary.
    pub fn cmd(&self) -> Command {
        Command::new(&self.bin)
    }

    /// What the daemon's `info --format INFO_FORMAT` says; asked once it
    /// answers, again while it does not.
    fn info_output(&self) -> Result<&str, EngineError> {
        if let Some(i) = self.info.get() {
            return Ok(i);
        }
        let text = ask_info::<F>(&self.bin)?;
        Ok(self.info.get_or_init(|| text))
    }

    /// The daemon's version, as its `info` reports it.
    fn version(&self) -> Result<String, EngineError> {
        Ok(daemon_version(self.info_output()?).to_owned())
    }
}

/// What `bin info --format INFO_FORMAT` prints.
fn ask_info<F: Flavor>(bin: &str) -> Result<String, EngineError> {
    let out = run(
        Command::new(bin).args(["info", "--format", F::INFO_FORMAT]),
        ENGINE_HINT,
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

const ENGINE_HINT: &str =
    "install the engine's CLI, or check that its daemon runs and DOCKER_HOST points at it";

impl<F: Flavor> Engine for CliEngine<F> {
    fn kind(&self) -> &'static str {
        F::KIND
    }

    fn info(&self) -> Result<(), EngineError> {
        super::check_version(F::KIND, &self.version()?, F::MIN_VERSION)
    }

    fn reads_zstd(&self) -> Result<bool, EngineError> {
        // A version info() accepted but this cannot read is taken as new.
        Ok(super::version_at_least(&self.version()?, F::READS_ZSTD_SINCE).unwrap_or(true))
    }

    fn image_id(&self, name: &str) -> Result<Option<String>, EngineError> {
        let out = self
            .cmd()
            .args(["image", "inspect", "--format", "{{.Id}}", name])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| EngineError::Spawn {
                cmd: format!("{} image inspect", self.bin),
                cause: e,
                hint: ENGINE_HINT,
            })?;
        if !out.status.success() {
            return Ok(None);
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Some(if id.starts_with("sha256:") {
            id
        } else {
            format!("sha256:{id}")
        }))
    }

    fn images(&self) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
        let ids = lines(
            &run(
                self.cmd().args(["image", "ls", "-q", "--no-trunc"]),
                ENGINE_HINT,
            )?
            .stdout,
        );
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut c = self.cmd();
        c.args(["image", "inspect", "--format", IMAGE_FORMAT]);
        c.args(&ids);
        let out = run(&mut c, ENGINE_HINT)?;
        Ok(images_of(&String::from_utf8_lossy(&out.stdout)))
    }

    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), EngineError> {
        let mut c = self.cmd();
        c.arg("load");
        let cmd = show(&c);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Spawn {
                cmd: cmd.clone(),
                cause: e,
                hint: ENGINE_HINT,
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        let streamed = write(&mut stdin).and_then(|()| stdin.flush());
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| EngineError::Stream {
            cmd: cmd.clone(),
            source: e,
        })?;
        // The child's own complaint explains a broken pipe better than the pipe.
        if !out.status.success() {
            return Err(EngineError::Failed {
                cmd,
                status: out.status.to_string(),
                stderr: tail(&out.stderr, 15),
            });
        }
        if let Err(e) = streamed {
            return Err(EngineError::Stream { cmd, source: e });
        }
        Ok(())
    }

    fn tag(&self, id: &str, name: &str) -> Result<(), EngineError> {
        run(self.cmd().args(["tag", id, name]), ENGINE_HINT).map(|_| ())
    }

    fn pull(&self, reference: &str) -> Result<(), EngineError> {
        run(
            self.cmd().args(["pull", "-q", reference]),
            "check that the engine reaches the site registry, trusts its CA (docker: /etc/docker/certs.d/HOST:PORT/ca.crt; podman: /etc/containers/certs.d) and has its credentials (`docker login HOST`), and that `installer push` put the bundle there",
        )
        .map(|_| ())
    }

    fn store(&self) -> Result<Store, EngineError> {
        Ok(F::store_of(self.info_output()?))
    }

    fn describe(&self) -> String {
        let version = self.version().unwrap_or_else(|_| "(not answering)".into());
        let store = self
            .store()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "unknown store".into());
        format!("{} {version}, {store}; {}", F::KIND, self.compose)
    }

    fn loads_plain_files(&self) -> bool {
        F::LOADS_PLAIN_FILES
    }

    fn load_file(&self, archive: &Path) -> Result<(), EngineError> {
        run(self.cmd().arg("load").arg("-i").arg(archive), ENGINE_HINT).map(|_| ())
    }

    fn load_lanes(&self) -> usize {
        if F::CONCURRENT_LOADS {
            // One more than the cores: while one load waits on the disk or
            // on its stream, another has work for the CPU.
            std::thread::available_parallelism().map_or(2, |n| n.get() + 1)
        } else {
            1
        }
    }

    fn skips_present_layers(&self) -> bool {
        // containerd's import wants every blob the manifest names.
        F::SKIPS_PRESENT_LAYERS && self.store().ok() == Some(Store::Classic)
    }

    fn compose(
        &self,
        dir: &Path,
        project: &str,
        files: &[String],
        args: &[&str],
    ) -> Result<Output, EngineError> {
        let mut c = self.compose.command();
        c.current_dir(dir);
        if self.compose.dialect != super::compose::Dialect::PodmanCompose {
            c.arg("--project-directory").arg(dir);
        }
        c.args(["-p", project]);
        for f in files {
            c.arg("-f").arg(dir.join(f));
        }
        c.args(self.compose.args(args));
        run(
            &mut c,
            "check the compose files and that the compose CLI works",
        )
    }

    fn containers(&self, project: &str) -> Result<Vec<Container>, EngineError> {
        let ids = lines(
            &run(
                self.cmd()
                    .args(["ps", "-a", "-q", "--no-trunc", "--filter"])
                    .arg(format!("label=com.docker.compose.project={project}")),
                ENGINE_HINT,
            )?
            .stdout,
        );
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        F::before_inspect(self, &ids);
        let mut c = self.cmd();
        c.args(["inspect", "--format", CONTAINER_FORMAT]);
        c.args(&ids);
        let out = run(&mut c, ENGINE_HINT)?;
        Ok(containers_of(&String::from_utf8_lossy(&out.stdout)))
    }

    fn logs(&self, container: &str, n: usize) -> String {
        self.cmd()
            .args(["logs", "--tail", &n.to_string(), container])
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s.trim_end().to_owned()
            })
            .unwrap_or_default()
    }

    fn compose_name(&self) -> String {
        self.compose.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Docker;
    use std::os::unix::fs::PermissionsExt;

    /// A `docker` that logs each call. Its compose `version` answers only
    /// once `info` has been asked (giving up after 10 s), so a detect that
    /// asks one after the other fails.
    fn fake_docker(dir: &Path) -> String {
        fake_engine(dir, CONTAINERD_INFO)
    }

    /// What Docker 26.1's `info --format` printed with the containerd store.
    const CONTAINERD_INFO: &str = r#"26.1.5\n[["driver-type","io.containerd.snapshotter.v1"]]"#;
    /// And Docker 20.10's, with overlay2.
    const OVERLAY2_INFO: &str =
        r#"20.10.24+dfsg1\n[["Backing Filesystem","extfs"],["Supports d_type","true"]]"#;

    /// [`fake_docker`], whose `info` prints `info` (a `printf` format).
    fn fake_engine(dir: &Path, info: &str) -> String {
        let bin = dir.join("docker");
        std::fs::write(
            &bin,
            r#"#!/bin/sh
d=$(dirname "$0")
echo "$1" >>"$d/calls"
case "$1" in
info) : >"$d/info-asked"; printf 'INFO\n' ;;
compose)
  i=0
  while [ ! -e "$d/info-asked" ]; do
    i=$((i + 1)); [ "$i" -gt 200 ] && exit 1; sleep 0.05
  done
  echo "Docker Compose version v2.26.1" ;;
*) exit 1 ;;
esac
"#
            .replace("INFO", info),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin.to_string_lossy().into_owned()
    }

    #[test]
    fn detect_asks_info_while_compose_answers_and_never_again() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_docker(dir.path());
        // Named, so that no compose of this machine's answers instead.
        let compose = format!("{bin} compose");
        let engine = CliEngine::<Docker>::with_bin(bin, Some(&compose)).unwrap();
        assert_eq!(engine.compose.dialect, crate::compose::Dialect::V2);
        engine.info().unwrap();
        assert_eq!(engine.store().unwrap(), Store::Containerd);
        assert_eq!(engine.version().unwrap(), "26.1.5");
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        let mut calls: Vec<&str> = calls.lines().collect();
        calls.sort_unstable();
        assert_eq!(calls, ["compose", "info"]);
    }

    /// What the installer asks of an engine before loading, for `F` with
    /// `info` printing `info`: (skips present layers, load lanes, loads
    /// plain files, reads zstd).
    fn load_decisions<F: Flavor>(info: &str) -> (bool, usize, bool, bool) {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_engine(dir.path(), info);
        let compose = format!("{bin} compose");
        let engine = CliEngine::<F>::with_bin(bin, Some(&compose)).unwrap();
        (
            engine.skips_present_layers(),
            engine.load_lanes(),
            engine.loads_plain_files(),
            engine.reads_zstd().unwrap(),
        )
    }

    #[test]
    fn how_each_engine_and_store_is_loaded() {
        let lanes = std::thread::available_parallelism().unwrap().get() + 1;
        // The classic store looks a layer up before it opens its file, and
        // dockerd loads several archives at once. Docker before 23.0 reads
        // no zstd.
        assert_eq!(
            load_decisions::<Docker>(OVERLAY2_INFO),
            (true, lanes, false, false)
        );
        // containerd's import wants every blob the manifest names.
        assert_eq!(
            load_decisions::<Docker>(CONTAINERD_INFO),
            (false, lanes, false, true)
        );
        // Podman opens every layer file, takes one load at a time, loads
        // decompressed files best, and reads zstd.
        assert_eq!(
            load_decisions::<crate::podman::Podman>("4.3.1"),
            (false, 1, true, true)
        );
    }

    #[test]
    fn lines_are_trimmed_and_blank_ones_dropped() {
        assert_eq!(lines(b"  abc \n\n\t\ndef\r\n"), ["abc", "def"]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn containers_come_from_their_inspect_lines() {
        let out = "/app-web-1|web|running|0|healthy|sha256:aaa\n\
                   /app-db-1|db|exited|137||sha256:bbb\n\
                   /app-odd-1|odd|created|||sha256:ccc\n\
                   a line of another shape\n";
        let got = containers_of(out);
        let want = [
            ("app-web-1", "web", "running", 0, "healthy", "sha256:aaa"),
            ("app-db-1", "db", "exited", 137, "", "sha256:bbb"),
            ("app-odd-1", "odd", "created", -1, "", "sha256:ccc"),
        ]
        .map(
            |(name, service, status, exit_code, health, image_id)| Container {
                name: name.into(),
                service: service.into(),
                status: status.into(),
                exit_code,
                health: health.into(),
                image_id: image_id.into(),
            },
        );
        assert_eq!(got, want);
    }

    #[test]
    fn images_come_from_their_inspect_lines_with_sha256_ids() {
        // Docker prints `sha256:` IDs, podman bare ones.
        let out = "sha256:aaa [\"sha256:l1\",\"sha256:l2\"]\nbbb [\"sha256:l1\"]\nccc null\n";
        let got = images_of(out);
        let want: BTreeMap<String, Vec<String>> = [
            ("sha256:aaa", vec!["sha256:l1", "sha256:l2"]),
            ("sha256:bbb", vec!["sha256:l1"]),
            ("sha256:ccc", vec![]),
        ]
        .into_iter()
        .map(|(id, l)| (id.to_owned(), l.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(got, want);
    }
}
