//! The site's own registry: where it is (`HOST[:PORT][/PREFIX]`), which
//! repository each of the bundle's images goes to, and a client of the OCI
//! distribution API with what `installer push` needs (HEAD, mounts,
//! chunked uploads, manifests), over HTTPS unless told otherwise.
//!
//! Auth is the registry's own choice, learnt from its first 401: HTTP Basic
//! (distribution with htpasswd, Nexus) or bearer tokens from its token
//! service (Harbor, Zot, distribution with token auth), asked for with
//! the credentials when there are any.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bundle_format::dockerconfig::{parse_challenge, percent, Credentials, CredsError};
use manifest_schema::{Digest, ImageEntry, ImageRef};
use ureq::http::{self, Response};
use ureq::Body;
use zeroize::Zeroizing;

/// Where the site registry is and the prefix its repositories go under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// `host[:port]`.
    pub host: String,
    /// Repository prefix, empty or `a/b` (no slash at either end).
    pub prefix: String,
}

impl Site {
    /// Parses `HOST[:PORT][/PREFIX]`.
    pub fn parse(s: &str) -> Result<Site, String> {
        let bad = |why: &str| {
            format!("--registry {s:?}: {why}; hint: give HOST[:PORT][/PREFIX], e.g. registry.example.internal:5000/vendor")
        };
        if s.contains("://") {
            return Err(bad(
                "no scheme is given here (HTTPS is the default; plain HTTP is --insecure-registry)",
            ));
        }
        let (host, prefix) = s.split_once('/').unwrap_or((s, ""));
        let prefix = prefix.trim_end_matches('/');
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !host_ok {
            return Err(bad(
                "the host is empty or has characters a host name cannot",
            ));
        }
        let prefix_ok = prefix.is_empty()
            || prefix.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !prefix_ok {
            return Err(bad(
                "the prefix must be lowercase [a-z0-9._-] components separated by /",
            ));
        }
        Ok(Site {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The repository the image named `name` (as compose names it) goes
    /// to: the prefix, then the name's path without its registry
    /// (`ghcr.io/acme/api:2` and `acme/api:2` both go to `PREFIX/acme/api`).
    pub fn repository(&self, name: &str) -> Result<String, String> {
        let r = ImageRef::parse(name).map_err(|e| bundle_format::error_text(&e))?;
        Ok(if self.prefix.is_empty() {
            r.repository
        } else {
            format!("{}/{}", self.prefix, r.repository)
        })
    }

    /// The tag of the image named `name` (`latest` when it names none).
    pub fn tag(name: &str) -> String {
        ImageRef::parse(name)
            .ok()
            .and_then(|r| r.tag)
            .unwrap_or_else(|| "latest".into())
    }

    /// What the engine pulls: the image by its pinned manifest digest.
    pub fn pull_ref(&self, img: &ImageEntry) -> Result<String, String> {
        Ok(format!(
            "{}/{}@{}",
            self.host,
            self.repository(&img.name)?,
            img.manifest.digest
        ))
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            f.write_str(&self.host)
        } else {
            write!(f, "{}/{}", self.host, self.prefix)
        }
    }
}

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials, or asked for some and there
    /// were none.
    #[error("{registry}: authentication failed: {why}; hint: check the credentials (`docker login {registry}` or --registry-user with the password on stdin)")]
    Auth {
        /// The registry.
        registry: String,
        /// What it answered.
        why: String,
    },
    /// A request got an answer it should not have.
    #[error("{registry}: {what}: HTTP {status}{detail}")]
    Status {
        /// The registry.
        registry: String,
        /// The request, in words.
        what: String,
        /// The status code.
        status: u16,
        /// The registry's error text.
        detail: String,
    },
    /// The registry could not be reached or its TLS was not trusted.
    #[error("{registry}: {what}: {message}; hint: {hint}")]
    Connect {
        /// The registry.
        registry: String,
        /// The request, in words.
        what: String,
        /// The error.
        message: String,
        /// The next step.
        hint: &'static str,
    },
    /// The CA certificate file is unusable.
    #[error("--ca-cert {}: {message}; hint: give the PEM file of the CA that signed the registry's certificate", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A credential helper or the Docker config failed.
    #[error("{}; hint: {hint}", bundle_format::error_text(.0), hint = .0.hint())]
    Creds(CredsError),
}

impl From<CredsError> for RegistryError {
    fn from(e: CredsError) -> Self {
        RegistryError::Creds(e)
    }
}

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// The CA that signed the registry's certificate (PEM), instead of the
    /// public roots.
    pub ca_cert: Option<PathBuf>,
    /// The credentials, if any.
    pub creds: Option<Credentials>,
}

/// What the registry asked for in its first 401.
#[derive(Debug, Clone)]
enum Auth {
    /// Not asked yet.
    Unknown,
    /// HTTP Basic with the credentials.
    Basic,
    /// Bearer tokens from `realm`, one per scope set.
    Bearer {
        realm: String,
        service: Option<String>,
        tokens: BTreeMap<String, Zeroizing<String>>,
    },
}

/// A blocking client of one registry.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    host: String,
    creds: Option<Credentials>,
    auth: RefCell<Auth>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Client({})", self.base)
    }
}

/// A request: method, path or URL, the repositories it needs access to,
/// headers, body.
#[derive(Debug)]
pub struct Req<'a> {
    method: &'a str,
    url: String,
    scopes: Vec<String>,
    headers: Vec<(&'static str, String)>,
    body: &'a [u8],
    what: String,
}

impl<'a> Req<'a> {
    /// A request for `url` (a path below the registry, or a URL it gave).
    pub fn new(method: &'a str, url: impl Into<String>, what: impl Into<String>) -> Self {
        Req {
            method,
            url: url.into(),
            scopes: Vec::new(),
            headers: Vec::new(),
            body: &[],
            what: what.into(),
        }
    }
    /// Needs `actions` (`pull`, `pull,push`) on `repo`.
    pub fn scope(mut self, repo: &str, actions: &str) -> Self {
        self.scopes.push(format!("repository:{repo}:{actions}"));
        self
    }
    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// Sends `body`.
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }
}

/// Every manifest type the installer pushes or asks about.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Client {
    /// A client for `site`'s registry.
    pub fn new(site: &Site, opts: ClientOptions) -> Result<Client, RegistryError> {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let mut tls = TlsConfig::builder();
        if let Some(path) = &opts.ca_cert {
            let ca = |message: String| RegistryError::Ca {
                path: path.clone(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca("holds no PEM certificate".into()));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .max_redirects(5)
            .user_agent(concat!("installer/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let scheme = if opts.insecure { "http" } else { "https" };
        Ok(Client {
            agent,
            base: format!("{scheme}://{}", site.host),
            host: site.host.clone(),
            creds: opts.creds,
            auth: RefCell::new(Auth::Unknown),
        })
    }

    /// The registry's `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, u: &str) -> String {
        if u.starts_with("http://") || u.starts_with("https://") {
            u.to_owned()
        } else {
            format!("{}{u}", self.base)
        }
    }

    fn connect_error(&self, what: &str, e: ureq::Error) -> RegistryError {
        let message = e.to_string();
        let hint = if message.contains("certificate")
            || message.contains("Certificate")
            || message.contains("tls")
            || message.contains("TLS")
        {
            "pass --ca-cert with the CA that signed the registry's certificate (or --insecure-registry for a plain-HTTP registry)"
        } else {
            "check that the registry runs and this host reaches it (HOST[:PORT] as the engine would pull it)"
        };
        RegistryError::Connect {
            registry: self.host.clone(),
            what: what.to_owned(),
            message,
            hint,
        }
    }

    fn authorization(&self, scopes: &[String]) -> Option<Zeroizing<String>> {
        match &*self.auth.borrow() {
            Auth::Unknown => None,
            Auth::Basic => self.creds.as_ref().map(Credentials::basic),
            Auth::Bearer { tokens, .. } => tokens
                .get(&scopes.join(" "))
                .map(|t| Zeroizing::new(format!("Bearer {}", t.as_str()))),
        }
    }

    fn send(&self, r: &Req<'_>) -> Result<Response<Body>, RegistryError> {
        let mut b = http::Request::builder()
            .method(r.method)
            .uri(self.url(&r.url));
        for (k, v) in &r.headers {
            b = b.header(*k, v.as_str());
        }
        if let Some(a) = self.authorization(&r.scopes) {
            b = b.header("Authorization", a.as_str());
        }
        let req = b.body(r.body).map_err(|e| RegistryError::Connect {
            registry: self.host.clone(),
            what: r.what.clone(),
            message: e.to_string(),
            hint: "report this: the request could not be formed",
        })?;
        self.agent
            .run(req)
            .map_err(|e| self.connect_error(&r.what, e))
    }

    /// Sends `r`, answering the registry's first 401 with the auth it asks
    /// for; a second 401 (or a 403) is [`RegistryError::Auth`].
    pub fn call(&self, r: Req<'_>) -> Result<Response<Body>, RegistryError> {
        self.ensure_token(&r.scopes)?;
        let resp = self.send(&r)?;
        if resp.status() != 401 {
            return self.refused(&r, resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.answer(&challenge, &r.scopes)?;
        let resp = self.send(&r)?;
        if resp.status() == 401 {
            return Err(RegistryError::Auth {
                registry: self.host.clone(),
                why: match &self.creds {
                    Some(c) => format!("the registry refused user {:?}", c.username),
                    None => "the registry asks for credentials and none were found".into(),
                },
            });
        }
        self.refused(&r, resp)
    }

    fn refused(&self, r: &Req<'_>, resp: Response<Body>) -> Result<Response<Body>, RegistryError> {
        if resp.status() == 403 {
            return Err(RegistryError::Auth {
                registry: self.host.clone(),
                why: format!("{} is forbidden for this user", r.what),
            });
        }
        Ok(resp)
    }

    /// With a token service known, a token for new scopes is asked for
    /// before the request rather than after its 401.
    fn ensure_token(&self, scopes: &[String]) -> Result<(), RegistryError> {
        let key = scopes.join(" ");
        let (realm, service) = match &*self.auth.borrow() {
            Auth::Bearer {
                realm,
                service,
                tokens,
            } if !tokens.contains_key(&key) => (realm.clone(), service.clone()),
            _ => return Ok(()),
        };
        let token = self.token(&realm, service.as_deref(), scopes)?;
        if let Auth::Bearer { tokens, .. } = &mut *self.auth.borrow_mut() {
            tokens.insert(key, token);
        }
        Ok(())
    }

    /// Sets up the auth a `WWW-Authenticate` challenge asks for.
    fn answer(&self, challenge: &str, scopes: &[String]) -> Result<(), RegistryError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let params = parse_challenge(params);
        if scheme.eq_ignore_ascii_case("basic") {
            if self.creds.is_none() {
                return Err(RegistryError::Auth {
                    registry: self.host.clone(),
                    why: "the registry asks for credentials and none were found".into(),
                });
            }
            *self.auth.borrow_mut() = Auth::Basic;
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RegistryError::Auth {
                registry: self.host.clone(),
                why: format!("it asks for auth this installer does not speak: {challenge:?}"),
            });
        }
        let realm = params.get("realm").cloned().unwrap_or_default();
        let service = params.get("service").cloned();
        let token = self.token(&realm, service.as_deref(), scopes)?;
        let mut auth = self.auth.borrow_mut();
        if !matches!(&*auth, Auth::Bearer { realm: r, .. } if *r == realm) {
            *auth = Auth::Bearer {
                realm,
                service,
                tokens: BTreeMap::new(),
            };
        }
        if let Auth::Bearer { tokens, .. } = &mut *auth {
            tokens.insert(scopes.join(" "), token);
        }
        Ok(())
    }

    /// A token for `scopes` from the token service at `realm`.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Zeroizing<String>, RegistryError> {
        let mut url = realm.to_owned();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in service
            .map(|s| ("service", s.to_owned()))
            .into_iter()
            .chain(scopes.iter().map(|s| ("scope", s.clone())))
        {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&percent(&v));
            sep = '&';
        }
        let mut b = http::Request::builder().method("GET").uri(&url);
        if let Some(c) = &self.creds {
            b = b.header("Authorization", c.basic().as_str());
        }
        let what = format!("asking the token service {realm} for a token");
        let req = b.body(()).map_err(|e| RegistryError::Connect {
            registry: self.host.clone(),
            what: what.clone(),
            message: e.to_string(),
            hint: "the registry's token realm is not a usable URL",
        })?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| self.connect_error(&what, e))?;
        if matches!(resp.status().as_u16(), 401 | 403) {
            return Err(RegistryError::Auth {
                registry: self.host.clone(),
                why: format!(
                    "its token service refused {}",
                    match &self.creds {
                        Some(c) => format!("user {:?}", c.username),
                        None => "anonymous access".into(),
                    }
                ),
            });
        }
        let body = Zeroizing::new(
            resp.body_mut()
                .read_to_vec()
                .map_err(|e| self.connect_error(&what, e))?,
        );
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let a: TokenAnswer = serde_json::from_slice(&body).map_err(|_| RegistryError::Status {
            registry: self.host.clone(),
            what,
            status: resp.status().as_u16(),
            detail: ": the answer holds no token".into(),
        })?;
        Ok(Zeroizing::new(
            a.token.or(a.access_token).unwrap_or_default(),
        ))
    }

    /// An error for an unexpected answer, with the registry's error text.
    pub fn unexpected(&self, what: &str, mut resp: Response<Body>) -> RegistryError {
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        let detail = match text.trim() {
            "" => String::new(),
            t => format!(": {}", t.chars().take(300).collect::<String>()),
        };
        RegistryError::Status {
            registry: self.host.clone(),
            what: what.to_owned(),
            status,
            detail,
        }
    }

    /// Checks that the registry answers and takes the credentials, before
    /// anything is read or sent.
    pub fn check(&self, repo: &str) -> Result<(), RegistryError> {
        let what = "checking access";
        let resp = self.call(
            Req::new("GET", format!("/v2/{repo}/tags/list"), what).scope(repo, "pull,push"),
        )?;
        match resp.status().as_u16() {
            200 | 404 => Ok(()),
            _ => Err(self.unexpected(what, resp)),
        }
    }

    /// Whether `repo` has the blob.
    pub fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let what = format!("checking blob {digest} in {repo}");
        let resp = self.call(
            Req::new("HEAD", format!("/v2/{repo}/blobs/{digest}"), &what).scope(repo, "pull,push"),
        )?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    /// Mounts the blob from `from` into `repo`: `Ok(true)` when the
    /// registry did; `Ok(false)` when it does not mount (the upload it
    /// opened instead is cancelled).
    pub fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let what = format!("mounting blob {digest} from {from} into {repo}");
        let resp = self.call(
            Req::new(
                "POST",
                format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
                &what,
            )
            .scope(repo, "pull,push")
            .scope(from, "pull")
            .header("Content-Length", "0"),
        )?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                if let Some(loc) = location(&resp) {
                    let _ = self.call(
                        Req::new("DELETE", loc, "cancelling an upload").scope(repo, "pull,push"),
                    );
                }
                Ok(false)
            }
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    /// Opens an upload into `repo`: its location.
    pub fn start_upload(&self, repo: &str) -> Result<String, RegistryError> {
        let what = format!("starting an upload into {repo}");
        let resp = self.call(
            Req::new("POST", format!("/v2/{repo}/blobs/uploads/"), &what)
                .scope(repo, "pull,push")
                .header("Content-Length", "0"),
        )?;
        match (resp.status().as_u16(), location(&resp)) {
            (202, Some(l)) => Ok(l),
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    /// Sends the next chunk of an upload, at `offset`: the next location.
    pub fn send_chunk(
        &self,
        repo: &str,
        at: &str,
        offset: u64,
        chunk: &[u8],
    ) -> Result<String, RegistryError> {
        let what = format!("uploading into {repo}");
        let end = offset + chunk.len() as u64 - 1;
        let resp = self.call(
            Req::new("PATCH", at, &what)
                .scope(repo, "pull,push")
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{offset}-{end}"))
                .header("Content-Length", chunk.len().to_string())
                .body(chunk),
        )?;
        match (resp.status().as_u16(), location(&resp)) {
            (202, Some(l)) => Ok(l),
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    /// Ends an upload: the registry checks the digest and keeps the blob.
    pub fn commit(&self, repo: &str, at: &str, digest: &Digest) -> Result<(), RegistryError> {
        let what = format!("completing blob {digest} in {repo}");
        let sep = if at.contains('?') { '&' } else { '?' };
        let resp = self.call(
            Req::new("PUT", format!("{at}{sep}digest={digest}"), &what)
                .scope(repo, "pull,push")
                .header("Content-Length", "0"),
        )?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    /// The digest `repo:reference` points to, if any.
    pub fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let what = format!("looking up {repo}:{reference}");
        let resp = self.call(
            Req::new("HEAD", format!("/v2/{repo}/manifests/{reference}"), &what)
                .scope(repo, "pull,push")
                .header("Accept", MANIFEST_ACCEPT),
        )?;
        match resp.status().as_u16() {
            200 => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)),
            404 => Ok(None),
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    /// Puts a manifest's exact bytes at `repo:reference`.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let what = format!("pushing manifest {repo}:{reference}");
        let resp = self.call(
            Req::new("PUT", format!("/v2/{repo}/manifests/{reference}"), &what)
                .scope(repo, "pull,push")
                .header("Content-Type", media_type)
                .header("Content-Length", bytes.len().to_string())
                .body(bytes),
        )?;
        match resp.status().as_u16() {
            201 | 200 | 204 => Ok(()),
            _ => Err(self.unexpected(&what, resp)),
        }
    }
}

fn location(resp: &Response<Body>) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads the password for `--registry-user` from stdin (one line).
pub fn password_from_stdin(user: &str) -> Result<Credentials, String> {
    use std::io::BufRead;
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let password = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    if password.is_empty() {
        return Err(format!(
            "--registry-user {user}: no password on stdin; hint: pipe it in, e.g. `installer push … --registry-user {user} < password-file`"
        ));
    }
    Ok(Credentials::password(user, &password))
}

/// The credentials for `site`: `--registry-user` with the password on
/// stdin, else the Docker config's helpers and `auths`.
pub fn credentials(site: &Site, user: Option<&str>) -> Result<Option<Credentials>, RegistryError> {
    match user {
        Some(u) => password_from_stdin(u)
            .map(Some)
            .map_err(|message| RegistryError::Auth {
                registry: site.host.clone(),
                why: message,
            }),
        None => Ok(bundle_format::dockerconfig::lookup(&site.host)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_a_host_and_a_prefix_and_images_keep_their_path() {
        let s = Site::parse("reg.example:5000/vendor/acme/").unwrap();
        assert_eq!(
            (s.host.as_str(), s.prefix.as_str()),
            ("reg.example:5000", "vendor/acme")
        );
        assert_eq!(
            s.repository("demo/web:1.0.0").unwrap(),
            "vendor/acme/demo/web"
        );
        assert_eq!(
            s.repository("postgres:16").unwrap(),
            "vendor/acme/library/postgres"
        );
        assert_eq!(
            s.repository("ghcr.io/acme/api:2").unwrap(),
            "vendor/acme/acme/api"
        );
        assert_eq!(Site::tag("ghcr.io/acme/api:2"), "2");
        assert_eq!(Site::tag("acme/api"), "latest");
        let bare = Site::parse("127.0.0.1:5000").unwrap();
        assert_eq!(bare.repository("demo/web:1").unwrap(), "demo/web");
        assert_eq!(bare.to_string(), "127.0.0.1:5000");
        for bad in [
            "https://reg.example",
            "",
            "reg.example/Upper",
            "reg example",
            "reg.example//x",
        ] {
            let e = Site::parse(bad).unwrap_err();
            assert!(e.contains("hint: give HOST[:PORT][/PREFIX]"), "{bad}: {e}");
        }
    }

    #[test]
    fn challenges_are_read_as_registries_send_them() {
        use bundle_format::dockerconfig::{parse_challenge, percent};
        let p = parse_challenge(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(
            parse_challenge(r#"realm="x", error="invalid_token""#)["error"],
            "invalid_token"
        );
        assert_eq!(
            percent("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
