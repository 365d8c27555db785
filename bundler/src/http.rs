//! GET requests to registries: manifests and blobs by digest, tags for `pin`.
//!
//! 1. Send the request with the `Authorization` last used for the
//!    repository, if any.
//! 2. On 401, authenticate (oci-client's token flow: a bearer token from the
//!    registry's realm, or HTTP Basic) and send it once more; an expired
//!    token is renewed the same way.
//! 3. Classify the answer: 200 is a body for the caller to stream and
//!    check; 429 and 5xx may pass, after the registry's `Retry-After` when
//!    it sends one; anything else is final.
//!
//! oci-client's manifest and blob calls do not expose the response headers,
//! so `Retry-After` could not be honoured through them; they are used here
//! only to obtain credentials for a repository.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use manifest_schema::ImageRef;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use tokio::sync::Mutex;

use crate::registry::{credentials_for, PullError, PullOptions};

/// The longest `Retry-After` the bundler waits out. A registry that asks for
/// more (rate limits measured in hours) fails the build at once, saying so.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/v2/<repo>/manifests/<reference>`.
    Manifest,
    /// `/v2/<repo>/blobs/<digest>`.
    Blob,
    /// `/v2/<repo>/referrers/<digest>` (OCI 1.1).
    Referrers,
}

impl Kind {
    /// What is fetched, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
            Kind::Referrers => "referrers of",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Manifest => "manifests",
            Kind::Blob => "blobs",
            Kind::Referrers => "referrers",
        }
    }
}

/// Whether a failed attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// It will fail the same way (credentials, not found, bad data).
    Never,
    /// It may pass after the usual backoff.
    Backoff,
    /// The registry asked to wait this long first (`Retry-After`).
    After(Duration),
}

/// A failed request: what happened (never credentials), the next step, and
/// whether to try again.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// What happened.
    pub message: String,
    /// The next step for the user.
    pub hint: &'static str,
    /// Whether another attempt may pass.
    pub retry: Retry,
}

const LOGIN_HINT: &str = "log in with `docker login` (credentials are read from the Docker config's credHelpers, credsStore or auths) or set BUNDLER_REGISTRY with BUNDLER_REGISTRY_USERNAME/BUNDLER_REGISTRY_PASSWORD";
const REACH_HINT: &str =
    "check that the registry is reachable; for a plain-HTTP registry pass --insecure-registry HOST";
const BUSY_HINT: &str = "the registry is overloaded or failing; run the build again later (finished blobs stay cached), or raise --attempts";

/// A client for registry GETs, shared by every download of a build.
pub struct RegistryHttp {
    http: reqwest::Client,
    oci: Client,
    insecure: Vec<String>,
    /// `registry/repository` -> the `Authorization` that last worked there.
    auth: Mutex<HashMap<String, HeaderValue>>,
}

impl fmt::Debug for RegistryHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cached headers are credentials: never shown.
        write!(f, "RegistryHttp(insecure: {:?})", self.insecure)
    }
}

impl RegistryHttp {
    /// Builds the client: HTTPS with the system roots plus `opts.ca_certs`,
    /// plain HTTP only for the hosts named insecure.
    pub fn new(opts: &PullOptions) -> Result<Self, PullError> {
        let mut certs = Vec::new();
        let mut oci_certs = Vec::new();
        for p in &opts.ca_certs {
            let data = std::fs::read(p).map_err(|e| PullError::CaCert {
                path: p.clone(),
                message: e.to_string(),
            })?;
            certs.push(
                reqwest::Certificate::from_pem(&data).map_err(|e| PullError::CaCert {
                    path: p.clone(),
                    message: format!("not a PEM certificate: {}", chain(&e)),
                })?,
            );
            oci_certs.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            });
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(certs)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(opts.read_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| PullError::Client { message: chain(&e) })?;
        let oci = Client::new(oci_client::client::ClientConfig {
            protocol: if opts.insecure.is_empty() {
                oci_client::client::ClientProtocol::Https
            } else {
                oci_client::client::ClientProtocol::HttpsExcept(opts.insecure.clone())
            },
            extra_root_certificates: oci_certs,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(opts.read_timeout),
            user_agent: USER_AGENT,
            ..Default::default()
        });
        Ok(RegistryHttp {
            http,
            oci,
            insecure: opts.insecure.clone(),
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// GETs `reference` (a digest, or a tag for manifests) of `image`'s
    /// repository. `Ok` is a 200 whose body the caller streams and checks.
    pub async fn get(
        &self,
        image: &ImageRef,
        kind: Kind,
        reference: &str,
        accept: &[&str],
    ) -> Result<Response, HttpError> {
        let response = self.send_authorized(image, kind, reference, accept).await?;
        classify(kind, response).await
    }

    /// [`Self::get`], with a 404 as `None`: for what may well not be there
    /// (a signature's tag, the referrers API of an older registry).
    pub async fn get_if_present(
        &self,
        image: &ImageRef,
        kind: Kind,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<Response>, HttpError> {
        let response = self.send_authorized(image, kind, reference, accept).await?;
        let status = response.status().as_u16();
        // A registry without the referrers API may answer its path with a
        // client error other than 404 (an unknown route, a bad reference).
        let absent = status == 404
            || (kind == Kind::Referrers && matches!(status, 400 | 405 | 406 | 415 | 501));
        if absent {
            return Ok(None);
        }
        classify(kind, response).await.map(Some)
    }

    async fn send_authorized(
        &self,
        image: &ImageRef,
        kind: Kind,
        reference: &str,
        accept: &[&str],
    ) -> Result<Response, HttpError> {
        let oci_ref = Reference::with_tag(
            image.registry.clone(),
            image.repository.clone(),
            "latest".into(),
        );
        let host = oci_ref.resolve_registry().to_owned();
        let scheme = if self.insecure.iter().any(|h| h == &host) {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{host}/v2/{}/{}/{reference}",
            image.repository,
            kind.path()
        );
        let key = format!("{host}/{}", image.repository);
        let cached = self.auth.lock().await.get(&key).cloned();
        let mut response = self.send(&url, accept, cached.as_ref()).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let header = self.authenticate(&oci_ref, &challenge).await?;
            response = self.send(&url, accept, header.as_ref()).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                let mut map = self.auth.lock().await;
                match header {
                    Some(h) => map.insert(key, h),
                    None => map.remove(&key),
                };
            }
        }
        Ok(response)
    }

    async fn send(
        &self,
        url: &str,
        accept: &[&str],
        auth: Option<&HeaderValue>,
    ) -> Result<Response, HttpError> {
        let mut req = self.http.get(url);
        if !accept.is_empty() {
            req = req.header(ACCEPT, accept.join(", "));
        }
        if let Some(h) = auth {
            req = req.header(AUTHORIZATION, h.clone());
        }
        req.send().await.map_err(|e| HttpError {
            message: chain(&e),
            hint: REACH_HINT,
            retry: Retry::Backoff,
        })
    }

    /// The `Authorization` for a repository: a bearer token when the
    /// registry hands them out, else HTTP Basic with the user's credentials,
    /// else none.
    async fn authenticate(
        &self,
        reference: &Reference,
        challenge: &str,
    ) -> Result<Option<HeaderValue>, HttpError> {
        let creds = credentials_for(reference.registry()).map_err(|e| HttpError {
            message: e.to_string(),
            hint: e.hint(),
            retry: Retry::Never,
        })?;
        if let Some(c) = creds.as_ref().filter(|c| c.identity_token) {
            let token = self.exchange(reference, challenge, c).await?;
            return sensitive(&zeroize::Zeroizing::new(format!(
                "Bearer {}",
                token.as_str()
            )))
            .map(Some);
        }
        let auth = match &creds {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.to_string()),
            None => RegistryAuth::Anonymous,
        };
        let token = self
            .oci
            .auth(reference, &auth, RegistryOperation::Pull)
            .await
            .map_err(|e| HttpError {
                message: format!("authentication failed: {e}"),
                hint: LOGIN_HINT,
                retry: Retry::Never,
            })?;
        let value = match (token, creds) {
            (Some(t), _) => zeroize::Zeroizing::new(format!("Bearer {t}")),
            (None, Some(c)) => c.basic(),
            (None, None) => return Ok(None),
        };
        sensitive(&value).map(Some)
    }

    /// Exchanges an identity token (an OAuth refresh token) for an access
    /// token at the token service the registry's challenge names
    /// (`grant_type=refresh_token`, as the docker CLI does).
    async fn exchange(
        &self,
        reference: &Reference,
        challenge: &str,
        creds: &crate::registry::Credentials,
    ) -> Result<zeroize::Zeroizing<String>, HttpError> {
        let registry = reference.registry();
        let fail = |message: String| HttpError {
            message: format!("{registry}: {message}"),
            hint: LOGIN_HINT,
            retry: Retry::Never,
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let params = bundle_format::dockerconfig::parse_challenge(params);
        let realm = match params.get("realm") {
            Some(r) if scheme.eq_ignore_ascii_case("bearer") => r,
            _ => {
                return Err(fail(format!(
                    "the Docker config holds an identity token, but the registry asks for {scheme:?} auth, not a token service"
                )))
            }
        };
        let scope = format!("repository:{}:pull", reference.repository());
        let form = creds.refresh_form(
            params.get("service").map(String::as_str),
            &[scope],
            "bundler",
        );
        let resp = self
            .http
            .post(realm)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.to_string())
            .send()
            .await
            .map_err(|e| fail(format!("token service {realm}: {}", chain(&e))))?;
        let status = resp.status();
        let body =
            zeroize::Zeroizing::new(resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default());
        if !status.is_success() {
            return Err(fail(format!(
                "token service {realm} refused the identity token (HTTP {status})"
            )));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            token: Option<String>,
        }
        let a: Answer = serde_json::from_slice(&body)
            .map_err(|_| fail(format!("token service {realm}: its answer holds no token")))?;
        a.access_token
            .or(a.token)
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| fail(format!("token service {realm}: its answer holds no token")))
    }
}

/// A header value kept out of reqwest's and our own Debug output.
fn sensitive(value: &str) -> Result<HeaderValue, HttpError> {
    let mut h = HeaderValue::from_str(value).map_err(|_| HttpError {
        message: "the credentials hold characters an HTTP header cannot carry".into(),
        hint: LOGIN_HINT,
        retry: Retry::Never,
    })?;
    h.set_sensitive(true);
    Ok(h)
}

const USER_AGENT: &str = concat!("bundler/", env!("CARGO_PKG_VERSION"));

/// A 200 is passed on; anything else becomes an error saying whether to
/// retry.
async fn classify(kind: Kind, response: Response) -> Result<Response, HttpError> {
    let status = response.status();
    if status == StatusCode::OK {
        return Ok(response);
    }
    let after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()));
    let detail = error_detail(response).await;
    let mut message = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    if let Some(wait) = after.filter(|w| *w > MAX_RETRY_AFTER) {
        message.push_str(&format!(
            "; the registry asks to wait {} s before trying again (Retry-After), more than the {} s the bundler waits",
            wait.as_secs(),
            MAX_RETRY_AFTER.as_secs()
        ));
        return Err(HttpError {
            message,
            hint: "the registry is rate-limiting this client; run the build again after that wait (finished blobs stay cached), or build from a mirror",
            retry: Retry::Never,
        });
    }
    let (hint, retry) = match status.as_u16() {
        401 | 403 => (LOGIN_HINT, Retry::Never),
        404 => (
            match kind {
                Kind::Manifest => "check the reference and digest; run `bundler pin` again if the tag moved",
                Kind::Blob => "the registry lacks a blob its manifest names; report it to the registry's operator",
                Kind::Referrers => "the registry does not serve OCI referrers",
            },
            Retry::Never,
        ),
        429 | 500..=599 => (BUSY_HINT, after.map_or(Retry::Backoff, Retry::After)),
        _ => (REACH_HINT, Retry::Never),
    };
    Err(HttpError {
        message,
        hint,
        retry,
    })
}

/// The registry's own words from an error body (the distribution spec's
/// `{"errors":[{"code","message"}]}`), short and printable.
async fn error_detail(mut response: Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 4096 {
            break;
        }
    }
    let text = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => v["errors"]
            .as_array()
            .map(|errs| {
                errs.iter()
                    .map(|e| {
                        let code = e["code"].as_str().unwrap_or("");
                        let msg = e["message"].as_str().unwrap_or("");
                        if msg.is_empty() || msg == code {
                            code.to_owned()
                        } else {
                            format!("{code}: {msg}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
    };
    text.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// An error and its sources, joined: reqwest's own message is only "error
/// sending request"; the cause (refused, timed out, TLS) is in the chain.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Parses `Retry-After` (RFC 9110 10.2.3): delay-seconds, or an HTTP-date
/// (IMF-fixdate) measured from `now`. A date in the past means no wait.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(value)?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(s: &str) -> Option<u64> {
    let (_, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm, years from 1970).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[rstest]
    #[case::seconds("120", Some(120))]
    #[case::seconds_with_spaces(" 3 ", Some(3))]
    #[case::zero("0", Some(0))]
    #[case::date_ahead("Sun, 06 Nov 1994 08:50:07 GMT", Some(30))]
    #[case::date_a_day_ahead("Mon, 07 Nov 1994 08:49:37 GMT", Some(86_400))]
    #[case::date_past("Sun, 06 Nov 1994 08:00:00 GMT", Some(0))]
    #[case::leap_day("Thu, 29 Feb 1996 08:49:37 GMT", Some(41_472_000))]
    #[case::negative("-5", None)]
    #[case::fraction("1.5", None)]
    #[case::not_gmt("Sun, 06 Nov 1994 08:49:37 PST", None)]
    #[case::obsolete_rfc850("Sunday, 06-Nov-94 08:49:37 GMT", None)]
    #[case::garbage("soon", None)]
    fn retry_after_values(#[case] value: &str, #[case] want: Option<u64>) {
        assert_eq!(
            retry_after(value, at(NOW)),
            want.map(Duration::from_secs),
            "{value:?}"
        );
    }

    #[test]
    fn http_date_is_seconds_since_the_epoch() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOW));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Mon, 23 Nov 2026 00:00:00 GMT"),
            Some(1_795_392_000)
        );
    }
}
