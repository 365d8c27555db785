//! Podman: `podman`, with `podman compose` or `podman-compose`.

use std::process::Stdio;

use super::cli::{CliEngine, Flavor};
use super::Store;

/// Podman's flavor.
#[derive(Debug)]
pub struct Podman;

impl Flavor for Podman {
    const KIND: &'static str = "podman";
    const BIN_VAR: &'static str = "INSTALLER_PODMAN";
    const INFO_FORMAT: &'static str = "{{.Version.Version}}";
    // Podman's load opens every layer file it is given.
    const MIN_VERSION: (u64, u64) = (4, 0);
    // c/image has read zstd layers since before podman 4.0.
    const READS_ZSTD_SINCE: (u64, u64) = (0, 0);
    const SKIPS_PRESENT_LAYERS: bool = false;
    // Measured on 2 cores, the 512 MiB bench corpus, podman 4.3: `podman
    // load` of its three docker-archives with the registry's gzip'd layers
    // 16.6 s, with the layers decompressed 10.7 s; three at once take as
    // long as one after another.
    const CONCURRENT_LOADS: bool = false;
    const LOADS_PLAIN_FILES: bool = true;

    fn composes(bin: &str) -> Vec<String> {
        vec![format!("{bin} compose"), "podman-compose".into()]
    }

    /// Podman's store gives an image its config digest as ID.
    fn store_of(_info: &str) -> Store {
        Store::Classic
    }

    /// Podman schedules healthchecks with systemd timers; on a host without
    /// systemd nothing runs them, so they run here.
    fn before_inspect(engine: &CliEngine<Self>, ids: &[String]) {
        for id in ids {
            let _ = engine
                .cmd()
                .args(["healthcheck", "run", id])
                .stdin(Stdio::null())
                .output();
        }
    }
}
