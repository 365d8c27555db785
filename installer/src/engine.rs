//! The container engine behind a trait: Docker or Podman, driven through
//! their CLIs (the only thing the installer needs on the target host).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Errors from the engine or compose, with the child's stderr.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A command could not start.
    #[error("cannot run `{cmd}`: {source}; hint: {hint}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The error.
        #[source]
        source: io::Error,
        /// The next step.
        hint: &'static str,
    },
    /// A command failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// Last lines of stderr.
        stderr: String,
    },
    /// Streaming into a command failed.
    #[error("streaming into `{cmd}`: {source}")]
    Stream {
        /// The command line.
        cmd: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No compose implementation was found.
    #[error("no compose found (tried {tried}); hint: install the docker compose plugin or docker-compose, or pass --compose")]
    NoCompose {
        /// What was tried.
        tried: String,
    },
}

/// A container of the project, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Compose service.
    pub service: String,
    /// `running`, `exited`, …
    pub status: String,
    /// Exit code when exited.
    pub exit_code: i64,
    /// Healthcheck status (`healthy`, `starting`, `unhealthy`) or empty.
    pub health: String,
    /// Image ID it runs.
    pub image_id: String,
}

/// What the installer needs from an engine.
pub trait Engine: fmt::Debug {
    /// `docker` or `podman`.
    fn kind(&self) -> &'static str;
    /// Checks that the engine answers.
    fn info(&self) -> Result<(), EngineError>;
    /// The image ID a name points to, if any.
    fn image_id(&self, name: &str) -> Result<Option<String>, EngineError>;
    /// Every image ID with its layer diff IDs.
    fn images(&self) -> Result<BTreeMap<String, Vec<String>>, EngineError>;
    /// Streams a docker-archive into the engine's load.
    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), EngineError>;
    /// Tags an image.
    fn tag(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Whether `load` may omit layer files the engine already has.
    fn skips_present_layers(&self) -> bool;
    /// Runs compose with `args` for a project.
    fn compose(
        &self,
        dir: &Path,
        project: &str,
        files: &[String],
        args: &[&str],
    ) -> Result<Output, EngineError>;
    /// The project's containers.
    fn containers(&self, project: &str) -> Result<Vec<Container>, EngineError>;
    /// The last `n` log lines of a container.
    fn logs(&self, container: &str, n: usize) -> String;
    /// A description of the compose in use.
    fn compose_name(&self) -> String;
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

/// The non-empty lines of a command's stdout.
fn lines(out: Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Runs a command, capturing output; a non-zero exit is an error.
pub fn run(cmd: &mut Command, hint: &'static str) -> Result<Output, EngineError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EngineError::Spawn {
            cmd: show(cmd),
            source: e,
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

/// Which compose CLI to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeCli {
    /// `docker compose` (v2 plugin) or `podman compose`.
    Plugin(String),
    /// A standalone binary: `docker-compose` (v1) or `podman-compose`.
    Standalone(String),
}

impl ComposeCli {
    /// Parses `--compose` ("docker compose", "docker-compose", a path).
    pub fn parse(s: &str) -> ComposeCli {
        match s.split_once(' ') {
            Some((bin, "compose")) => ComposeCli::Plugin(bin.to_owned()),
            _ => ComposeCli::Standalone(s.to_owned()),
        }
    }

    fn command(&self) -> Command {
        match self {
            ComposeCli::Plugin(bin) => {
                let mut c = Command::new(bin);
                c.arg("compose");
                c
            }
            ComposeCli::Standalone(bin) => Command::new(bin),
        }
    }

    fn is_v1(&self) -> bool {
        matches!(self, ComposeCli::Standalone(b) if b.ends_with("docker-compose"))
    }
}

impl fmt::Display for ComposeCli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComposeCli::Plugin(b) => write!(f, "{b} compose"),
            ComposeCli::Standalone(b) => f.write_str(b),
        }
    }
}

/// Docker or Podman through their CLIs.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: String,
    kind: &'static str,
    compose: ComposeCli,
}

impl Cli {
    /// Chooses the binary (`$INSTALLER_DOCKER`/`$INSTALLER_PODMAN` override
    /// the name) and a compose: the given one, else the v2 plugin, else
    /// `docker-compose` v1 (or `podman compose`, else `podman-compose`).
    pub fn detect(kind: &str, compose: Option<&str>) -> Result<Self, EngineError> {
        let (bin, kind): (String, &'static str) = match kind {
            "podman" => (
                std::env::var("INSTALLER_PODMAN").unwrap_or_else(|_| "podman".into()),
                "podman",
            ),
            _ => (
                std::env::var("INSTALLER_DOCKER").unwrap_or_else(|_| "docker".into()),
                "docker",
            ),
        };
        let compose = match compose {
            Some(c) => ComposeCli::parse(c),
            None => {
                let candidates = if kind == "podman" {
                    vec![
                        ComposeCli::Plugin(bin.clone()),
                        ComposeCli::Standalone("podman-compose".into()),
                    ]
                } else {
                    vec![
                        ComposeCli::Plugin(bin.clone()),
                        ComposeCli::Standalone("docker-compose".into()),
                    ]
                };
                let found = candidates.iter().find(|c| {
                    c.command()
                        .arg("version")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                });
                match found {
                    Some(c) => c.clone(),
                    None => {
                        return Err(EngineError::NoCompose {
                            tried: candidates
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                }
            }
        };
        Ok(Cli { bin, kind, compose })
    }

    fn cmd(&self) -> Command {
        Command::new(&self.bin)
    }
}

const ENGINE_HINT: &str =
    "install the engine's CLI, or check that its daemon runs and DOCKER_HOST points at it";

impl Engine for Cli {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn info(&self) -> Result<(), EngineError> {
        let format = if self.kind == "podman" {
            "{{.Version.Version}}"
        } else {
            "{{.ServerVersion}}"
        };
        run(self.cmd().args(["info", "--format", format]), ENGINE_HINT).map(|_| ())
    }

    fn image_id(&self, name: &str) -> Result<Option<String>, EngineError> {
        let out = self
            .cmd()
            .args(["image", "inspect", "--format", "{{.Id}}", name])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| EngineError::Spawn {
                cmd: format!("{} image inspect", self.bin),
                source: e,
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
        let ids = lines(run(
            self.cmd().args(["image", "ls", "-q", "--no-trunc"]),
            ENGINE_HINT,
        )?);
        let mut map = BTreeMap::new();
        if ids.is_empty() {
            return Ok(map);
        }
        let mut c = self.cmd();
        c.args([
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .RootFS.Layers}}",
        ]);
        c.args(&ids);
        let out = run(&mut c, ENGINE_HINT)?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (id, layers) = line.split_once(' ').unwrap_or((line, ""));
            let id = if id.starts_with("sha256:") {
                id.to_owned()
            } else {
                format!("sha256:{id}")
            };
            map.insert(
                id,
                serde_json::from_str::<Vec<String>>(layers).unwrap_or_default(),
            );
        }
        Ok(map)
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
                source: e,
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

    fn skips_present_layers(&self) -> bool {
        // Docker's load looks a layer up by chain ID before opening its file
        // (moby image/tarexport/load.go); podman's does not.
        self.kind == "docker"
    }

    fn compose(
        &self,
        dir: &Path,
        project: &str,
        files: &[String],
        args: &[&str],
    ) -> Result<Output, EngineError> {
        let podman_compose =
            matches!(&self.compose, ComposeCli::Standalone(b) if b.ends_with("podman-compose"));
        let mut c = self.compose.command();
        c.current_dir(dir);
        if !podman_compose {
            c.arg("--project-directory").arg(dir);
        }
        c.args(["-p", project]);
        for f in files {
            c.arg("-f").arg(dir.join(f));
        }
        let mut args: Vec<&str> = args.to_vec();
        match (args.first().copied(), podman_compose, self.compose.is_v1()) {
            // v2: never pull; every image came from the bundle.
            (Some("up"), false, false) => args.extend(["--pull", "never"]),
            // podman-compose 1.0 starts existing containers as they are;
            // recreate them so a new image takes effect.
            (Some("up"), true, _) => args.push("--force-recreate"),
            (Some("down"), true, _) => args.retain(|a| *a != "--remove-orphans"),
            _ => {}
        }
        c.args(&args);
        run(
            &mut c,
            "check the compose files and that the compose CLI works",
        )
    }

    fn containers(&self, project: &str) -> Result<Vec<Container>, EngineError> {
        let ids = lines(run(
            self.cmd()
                .args(["ps", "-a", "-q", "--no-trunc", "--filter"])
                .arg(format!("label=com.docker.compose.project={project}")),
            ENGINE_HINT,
        )?);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if self.kind == "podman" {
            // Podman schedules healthchecks with systemd timers; on a host
            // without systemd nothing runs them, so run them here.
            for id in &ids {
                let _ = self
                    .cmd()
                    .args(["healthcheck", "run", id])
                    .stdin(Stdio::null())
                    .output();
            }
        }
        let mut c = self.cmd();
        c.args([
            "inspect",
            "--format",
            "{{.Name}}|{{index .Config.Labels \"com.docker.compose.service\"}}|{{.State.Status}}|{{.State.ExitCode}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Image}}",
        ]);
        c.args(&ids);
        let out = run(&mut c, ENGINE_HINT)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
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
            .collect())
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
