//! Docker: `docker` (the daemon's CLI), with the compose v2 plugin or a
//! standalone `docker-compose`.

use super::cli::{run, CliEngine, Flavor};
use super::{EngineError, Store};

/// Docker's flavor.
#[derive(Debug)]
pub struct Docker;

impl Flavor for Docker {
    const KIND: &'static str = "docker";
    const BIN_VAR: &'static str = "INSTALLER_DOCKER";
    const INFO_FORMAT: &'static str = "{{.ServerVersion}}";
    // Docker's load looks a layer up by chain ID before opening its file
    // (moby image/tarexport/load.go).
    const MIN_VERSION: (u64, u64) = (20, 10);
    // moby 23.0 reads zstd layers (moby#41759); 20.10's pull fails on them.
    const ZSTD_PULLS_SINCE: (u64, u64) = (23, 0);
    const SKIPS_PRESENT_LAYERS: bool = true;
    // One load unpacks its layers one after another, mostly on one core
    // (the classic store's untar and digest, containerd's gunzip and
    // unpack); loads of unrelated images fill the others. Measured on
    // 2 cores, three images of the 512 MiB bench corpus: 20.10 classic
    // 25.7-30.2 s one at a time, 18.1-21.6 s three at once; 26.1 containerd
    // 17.8-21.0 s against 13.1-15.0 s.
    const CONCURRENT_LOADS: bool = true;
    // dockerd reads the stream as it comes; decompressed layers would only
    // make its temp copy of the archive (moby tarexport) larger.
    const LOADS_PLAIN_FILES: bool = false;

    fn composes(bin: &str) -> Vec<String> {
        vec![format!("{bin} compose"), "docker-compose".into()]
    }

    /// The containerd store says so in `docker info`'s driver status
    /// (`driver-type: io.containerd.snapshotter.v1`).
    fn store(engine: &CliEngine<Self>) -> Result<Store, EngineError> {
        let out = run(
            engine
                .cmd()
                .args(["info", "--format", "{{json .DriverStatus}}"]),
            "check that the docker daemon runs and DOCKER_HOST points at it",
        )?;
        Ok(
            if String::from_utf8_lossy(&out.stdout).contains("io.containerd.snapshotter") {
                Store::Containerd
            } else {
                Store::Classic
            },
        )
    }
}
