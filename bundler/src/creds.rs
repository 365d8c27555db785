//! A registry's credentials for the bundler:
//!
//! 1. `BUNDLER_REGISTRY_USERNAME` / `BUNDLER_REGISTRY_PASSWORD`, for the one
//!    registry `BUNDLER_REGISTRY` names and no other: one registry's
//!    password never reaches another;
//! 2. then where `docker login` put them ([`bundle_format::dockerconfig`]:
//!    `credHelpers`, `credsStore`, `auths`).
//!
//! A helper that fails stops the build (exit 3).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use bundle_format::dockerconfig::{self, is_hub};

use crate::registry::Credentials;

/// Names the one registry the environment's credentials are for.
pub const REGISTRY_ENV: &str = "BUNDLER_REGISTRY";
/// User name for [`REGISTRY_ENV`].
pub const USER_ENV: &str = "BUNDLER_REGISTRY_USERNAME";
/// Password for [`REGISTRY_ENV`].
pub const PASSWORD_ENV: &str = "BUNDLER_REGISTRY_PASSWORD";

/// Why credentials could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredsError {
    /// The Docker config or a helper failed.
    #[error(transparent)]
    Config(#[from] dockerconfig::CredsError),
    /// Environment credentials without the registry they are for.
    #[error("{USER_ENV} and {PASSWORD_ENV} are set but {REGISTRY_ENV} is not")]
    EnvWithoutRegistry,
}

impl CredsError {
    /// The next step.
    pub fn hint(&self) -> &'static str {
        match self {
            CredsError::Config(e) => e.hint(),
            CredsError::EnvWithoutRegistry => "set BUNDLER_REGISTRY=HOST[:PORT] to the registry they belong to; they are sent to that one only",
        }
    }
}

/// `registry`'s credentials from the sources, in order (see the module
/// docs); `None` for anonymous access. Looked up once per registry.
pub fn credentials_for(registry: &str) -> Result<Option<Credentials>, CredsError> {
    static SEEN: OnceLock<Mutex<BTreeMap<String, Option<Credentials>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(c) = seen.lock().expect("no panic holds it").get(registry) {
        return Ok(c.clone());
    }
    let found = look_up(registry)?;
    seen.lock()
        .expect("no panic holds it")
        .insert(registry.to_owned(), found.clone());
    Ok(found)
}

fn look_up(registry: &str) -> Result<Option<Credentials>, CredsError> {
    match (
        std::env::var(REGISTRY_ENV),
        std::env::var(USER_ENV),
        std::env::var(PASSWORD_ENV),
    ) {
        (Ok(r), Ok(u), Ok(p)) if r == registry || (is_hub(&r) && is_hub(registry)) => {
            return Ok(Some(Credentials::password(&u, &p)))
        }
        (Err(_), Ok(_), Ok(_)) => return Err(CredsError::EnvWithoutRegistry),
        _ => {}
    }
    Ok(dockerconfig::lookup(registry)?)
}
