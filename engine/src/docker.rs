//! Docker: `docker` (the daemon's CLI), with the compose v2 plugin or a
//! standalone `docker-compose`.

use super::cli::Flavor;
use super::Store;

/// Docker's flavor.
#[derive(Debug)]
pub struct Docker;

impl Flavor for Docker {
    const KIND: &'static str = "docker";
    const BIN_VAR: &'static str = "INSTALLER_DOCKER";
    const INFO_FORMAT: &'static str = "{{.ServerVersion}}\n{{json .DriverStatus}}";
    // Docker's load looks a layer up by chain ID before opening its file
    // (moby image/tarexport/load.go).
    const MIN_VERSION: (u64, u64) = (20, 10);
    // moby 23.0 reads zstd layers (moby#41759) in pulls and loads; 20.10's
    // fail on them.
    const READS_ZSTD_SINCE: (u64, u64) = (23, 0);
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
    fn store_of(info: &str) -> Store {
        if info.contains("io.containerd.snapshotter") {
            Store::Containerd
        } else {
            Store::Classic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::daemon_version;

    // What `docker info --format INFO_FORMAT` printed: Docker 26.1.5 with
    // the containerd store, Docker 20.10 with overlay2.
    const CONTAINERD: &str = "26.1.5+dfsg1\n[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]";
    const OVERLAY2: &str = "20.10.24+dfsg1\n[[\"Backing Filesystem\",\"extfs\"],[\"Supports d_type\",\"true\"],[\"Native Overlay Diff\",\"true\"],[\"userxattr\",\"false\"]]";

    #[test]
    fn one_info_gives_the_daemons_version_and_its_store() {
        assert_eq!(daemon_version(CONTAINERD), "26.1.5+dfsg1");
        assert_eq!(Docker::store_of(CONTAINERD), Store::Containerd);
        assert_eq!(daemon_version(OVERLAY2), "20.10.24+dfsg1");
        assert_eq!(Docker::store_of(OVERLAY2), Store::Classic);
        assert_eq!(daemon_version(""), "");
    }
}
