//! Docker: `docker` (the daemon's CLI), with the compose v2 plugin or a
//! standalone `docker-compose`.

use super::cli::Flavor;

/// Docker's flavor.
#[derive(Debug)]
pub struct Docker;

impl Flavor for Docker {
    const KIND: &'static str = "docker";
    const BIN_VAR: &'static str = "INSTALLER_DOCKER";
    const INFO_FORMAT: &'static str = "{{.ServerVersion}}";
    // Docker's load looks a layer up by chain ID before opening its file
    // (moby image/tarexport/load.go).
    const SKIPS_PRESENT_LAYERS: bool = true;

    fn composes(bin: &str) -> Vec<String> {
        vec![format!("{bin} compose"), "docker-compose".into()]
    }
}
