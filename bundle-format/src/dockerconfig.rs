//! A registry's credentials from where `docker login` put them, in
//! docker's order (what the bundler pulls with and `installer push` pushes
//! with):
//!
//! 1. `credHelpers[registry]` in the Docker config: `docker-credential-NAME
//!    get`, the server URL on stdin, JSON on stdout;
//! 2. `credsStore`: the same protocol, with the default store's helper;
//! 3. `auths[registry]`: `auth` (base64 of `user:password`), or `username`
//!    and `password`, or `identitytoken` (an OAuth refresh token, exchanged
//!    at the registry's token service: [`Credentials::refresh_form`]).
//!
//! Docker Hub is `https://index.docker.io/v1/` in all of them. A helper that
//! has nothing for the registry falls through to the next source; one that
//! fails is an error naming the helper and the registry and never what it
//! printed on stdout, where secrets go.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

/// Registry credentials; `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: Zeroizing<String>,
    /// `password` is an identity token (an OAuth refresh token: `auths`'
    /// `identitytoken`, or a helper's answer with user `<token>`), to be
    /// exchanged at the registry's token service, never sent as Basic.
    pub identity_token: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// A user and password.
    pub fn password(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password: Zeroizing::new(password.to_owned()),
            identity_token: false,
        }
    }

    /// The form a token service takes to exchange the identity token for
    /// an access token to `scopes` (OAuth2 `refresh_token` grant, as the
    /// docker CLI sends it).
    pub fn refresh_form(
        &self,
        service: Option<&str>,
        scopes: &[String],
        client_id: &str,
    ) -> Zeroizing<String> {
        let mut f = format!(
            "grant_type=refresh_token&client_id={}&refresh_token={}",
            percent(client_id),
            percent(&self.password)
        );
        if let Some(s) = service {
            f.push_str(&format!("&service={}", percent(s)));
        }
        for s in scopes {
            f.push_str(&format!("&scope={}", percent(s)));
        }
        Zeroizing::new(f)
    }

    /// The `Authorization: Basic` value.
    pub fn basic(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        let pair = Zeroizing::new(format!("{}:{}", self.username, *self.password));
        Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        ))
    }
}

/// Why credentials could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredsError {
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry} (asked for {server}): {message}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// The registry.
        registry: String,
        /// What the helper was asked for.
        server: String,
        /// Its exit status and stderr (never its stdout).
        message: String,
    },
    /// The Docker config is not readable as JSON.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl CredsError {
    /// The next step.
    pub fn hint(&self) -> &'static str {
        match self {
            CredsError::Helper { .. } => "run `echo SERVER | docker-credential-NAME get` with the names above to see why (a locked keychain, a missing gpg key), or `docker login` again",
            CredsError::Config { .. } => "fix or move the Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json)",
        }
    }
}

/// The server address docker uses for `registry` (Docker Hub's is its v1 URL).
pub fn server_url(registry: &str) -> String {
    if is_hub(registry) {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_owned()
    }
}

/// Docker Hub, by any of its names.
pub fn is_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// A Docker config key (`https://host/v1/`, `host`) names `registry`.
fn names(key: &str, registry: &str) -> bool {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    host == registry || (is_hub(host) && is_hub(registry))
}

/// The parts of `config.json` that hold credentials.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl Drop for AuthEntry {
    fn drop(&mut self) {
        self.auth.zeroize();
        self.password.zeroize();
        self.identitytoken.zeroize();
    }
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

/// A helper's answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl Drop for HelperAnswer {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

fn config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"))
}

fn load_config() -> Result<DockerConfig, CredsError> {
    let Some(path) = config_path() else {
        return Ok(DockerConfig::default());
    };
    let Ok(text) = std::fs::read_to_string(&path).map(Zeroizing::new) else {
        return Ok(DockerConfig::default());
    };
    serde_json::from_str(&text).map_err(|e| CredsError::Config {
        path,
        message: e.to_string(),
    })
}

/// Asks `docker-credential-<helper>` for `registry`'s credentials.
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, CredsError> {
    let server = server_url(registry);
    let fail = |message: String| CredsError::Helper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        server: server.clone(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = Zeroizing::new(out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        // The helpers' own word for "nothing stored" (some say it on stdout).
        let said = format!("{stderr} {}", String::from_utf8_lossy(&stdout));
        if said.contains("credentials not found") {
            return Ok(None);
        }
        let why = stderr
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect::<String>();
        return Err(fail(format!("{}: {why}", out.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&stdout)
        .map_err(|_| fail("its answer is not the helper protocol's JSON".into()))?;
    if answer.username.is_empty() && answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username.clone(),
        password: Zeroizing::new(answer.secret.clone()),
        identity_token: answer.username == "<token>",
    }))
}

fn from_auths(config: &DockerConfig, registry: &str) -> Option<Credentials> {
    let entry = config
        .auths
        .iter()
        .find_map(|(k, e)| names(k, registry).then_some(e))?;
    if let Some(t) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Some(Credentials {
            username: entry.username.clone().unwrap_or_default(),
            password: Zeroizing::new(t.clone()),
            identity_token: true,
        });
    }
    if let Some(a) = &entry.auth {
        use base64::Engine as _;
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(a.as_bytes())
                .ok()?,
        );
        let s = std::str::from_utf8(&decoded).ok()?;
        let (u, p) = s.split_once(':')?;
        return Some(Credentials::password(u, p));
    }
    Some(Credentials::password(
        entry.username.as_ref()?,
        entry.password.as_ref()?,
    ))
}

/// `key="value", key2="value2"` of a `WWW-Authenticate` challenge, after
/// its scheme; keys lowercased.
pub fn parse_challenge(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (&q[..i], &q[i + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        out.insert(k, v.to_owned());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Percent-encodes a query or form value.
pub fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `registry`'s credentials from the Docker config: `credHelpers`, then
/// `credsStore`, then `auths`; `None` for anonymous access.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, CredsError> {
    let config = load_config()?;
    let helper = config
        .cred_helpers
        .iter()
        .find_map(|(k, h)| names(k, registry).then_some(h));
    if let Some(h) = helper {
        if let Some(c) = from_helper(h, registry)? {
            return Ok(Some(c));
        }
    }
    if let Some(store) = &config.creds_store {
        if let Some(c) = from_helper(store, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(from_auths(&config, registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_its_v1_url_and_keys_name_hosts() {
        assert_eq!(server_url("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_url("127.0.0.1:5000"), "127.0.0.1:5000");
        assert!(names("https://index.docker.io/v1/", "docker.io"));
        assert!(names("registry.example.com", "registry.example.com"));
        assert!(names(
            "https://registry.example.com/",
            "registry.example.com"
        ));
        assert!(!names("registry.example.com", "evil.example.com"));
    }

    #[test]
    fn the_config_reads_helpers_stores_and_auths_and_hides_secrets() {
        let c: DockerConfig = serde_json::from_str(
            r#"{"auths":{"a.example":{"auth":"dXNlcjpwYXNz"},"b.example":{"username":"u","password":"p"}},"credsStore":"pass","credHelpers":{"c.example":"ecr-login"}}"#,
        )
        .unwrap();
        assert_eq!(c.creds_store.as_deref(), Some("pass"));
        assert_eq!(c.cred_helpers["c.example"], "ecr-login");
        let a = from_auths(&c, "a.example").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("user", "pass"));
        let b = from_auths(&c, "b.example").unwrap();
        assert_eq!((b.username.as_str(), b.password.as_str()), ("u", "p"));
        assert!(from_auths(&c, "c.example").is_none());
        let t: DockerConfig =
            serde_json::from_str(r#"{"auths":{"acr.example":{"identitytoken":"refresh-abc"}}}"#)
                .unwrap();
        let i = from_auths(&t, "acr.example").unwrap();
        assert!(i.identity_token);
        assert_eq!(i.password.as_str(), "refresh-abc");
        assert_eq!(
            i.refresh_form(Some("acr.example"), &["repository:a/b:pull".into()], "bundler").as_str(),
            "grant_type=refresh_token&client_id=bundler&refresh_token=refresh-abc&service=acr.example&scope=repository%3Aa%2Fb%3Apull"
        );
        assert!(!format!("{c:?}").contains("dXNlcjpwYXNz"));
    }
}
