//! A client of one registry: the base URL (HTTPS, or plain HTTP only for
//! loopback or a registry named with `-Insecure`), authentication on demand
//! (anonymous, Basic, Bearer tokens per set of scopes, a new token when one
//! expires), bounded bodies, and verified blob downloads through
//! [`crate::download`].
//!
//! Credentials go only to the registry's own host (and, for a token, to the
//! token service the registry names, never over plain HTTP unless that is
//! loopback); a redirect to another host or port goes without them.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Body as HttpBody, Client as HttpClient, RequestBuilder, Response};
use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::{parse_challenge, Challenge, Credentials, Secret, TokenResponse};
use super::RegistryError;
use crate::download::{self, Downloader, Settings};
use crate::progress::Reporter;

/// The largest token-service answer read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
/// The largest error body read (for the registry's error message).
const MAX_ERROR_BODY: u64 = 64 << 10;

/// A host on this machine: plain HTTP is allowed there.
pub fn is_loopback(host: &str) -> bool {
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(a, _)| a))
        .unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(n, _)| n));
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A request body that can be sent again (after a 401).
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
    /// `len` bytes from `offset` of an open file (one that may still be
    /// growing, or renamed since it was opened).
    Handle {
        file: &'a std::fs::File,
        offset: u64,
        len: u64,
    },
}

struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by the scopes they were asked for.
    tokens: HashMap<String, String>,
    /// A refresh token the token service gave.
    refresh_token: Option<String>,
}

/// A client of one registry.
pub struct Client {
    http: HttpClient,
    downloader: Downloader,
    /// `host[:port]` as the user wrote it.
    registry: String,
    base: Url,
    insecure: bool,
    credentials: Option<Credentials>,
    state: Mutex<AuthState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.base)
    }
}

/// Describes a transport error with the URL it concerned.
fn transport(url: &Url, e: &reqwest::Error) -> RegistryError {
    RegistryError::Transport {
        url: url.to_string(),
        reason: download::describe(e),
    }
}

impl Client {
    /// A client for `registry` (`host[:port]`). `insecure` allows plain HTTP
    /// to a host that is not loopback.
    pub fn new(
        registry: &str,
        insecure: bool,
        credentials: Option<Credentials>,
        settings: Settings,
    ) -> Result<Client, RegistryError> {
        super::reference::check_registry(registry).map_err(|reason| RegistryError::Invalid {
            what: format!("the registry '{registry}'"),
            reason,
        })?;
        let scheme = if insecure || is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        let base =
            Url::parse(&format!("{scheme}://{registry}/")).map_err(|e| RegistryError::Invalid {
                what: format!("the registry '{registry}'"),
                reason: e.to_string(),
            })?;
        // Redirects: at most 10, never from HTTPS down to plain HTTP;
        // reqwest drops Authorization when the host or port changes.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade = attempt.previous().iter().any(|u| u.scheme() == "https")
                && attempt.url().scheme() != "https";
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if downgrade {
                attempt.error("a redirect from HTTPS to plain HTTP is refused")
            } else {
                attempt.follow()
            }
        });
        let mut builder = HttpClient::builder()
            .user_agent(concat!("containerimage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.read_timeout)
            .redirect(policy);
        if let Some(p) = &settings.proxy {
            let proxy = reqwest::Proxy::all(p.as_str()).map_err(|e| RegistryError::Invalid {
                what: format!("the proxy '{p}'"),
                reason: download::describe(&e),
            })?;
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(|e| RegistryError::Transport {
            url: base.to_string(),
            reason: download::describe(&e),
        })?;
        let downloader = Downloader::new(settings).map_err(|e| RegistryError::Invalid {
            what: "the HTTP client".into(),
            reason: crate::error_chain(&e),
        })?;
        Ok(Client {
            http,
            downloader,
            registry: registry.to_string(),
            base,
            insecure,
            credentials,
            state: Mutex::new(AuthState {
                challenge: None,
                tokens: HashMap::new(),
                refresh_token: None,
            }),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// `<base>/v2/<path>`.
    pub fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(&format!("v2/{path}"))
            .map_err(|e| RegistryError::Invalid {
                what: format!("the path '{path}'"),
                reason: e.to_string(),
            })
    }

    /// Resolves a `Location` or `Link` the registry sent against `base`.
    pub fn resolve(&self, base: &Url, location: &str) -> Result<Url, RegistryError> {
        let url = base.join(location).map_err(|e| RegistryError::Invalid {
            what: format!("the location '{location}' the registry sent"),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Invalid {
                what: format!("the location '{location}' the registry sent"),
                reason: "it is not an http(s) URL".into(),
            });
        }
        Ok(url)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Authorization header for `scopes`, fetching a token when the
    /// registry asked for one and none is held.
    fn authorization(
        &self,
        scopes: &[String],
        reporter: &dyn Reporter,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = self.state().challenge.clone();
        let text = match challenge {
            None => None,
            Some(Challenge::Basic) => self.credentials.as_ref().and_then(|c| c.basic_header()),
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut wanted: Vec<String> = scopes.to_vec();
                if wanted.is_empty() {
                    wanted.extend(scope);
                }
                wanted.sort();
                wanted.dedup();
                let key = wanted.join(" ");
                let held = self.state().tokens.get(&key).cloned();
                let token = match held {
                    Some(t) => t,
                    None => {
                        let t = self.fetch_token(&realm, service.as_deref(), &wanted, reporter)?;
                        self.state().tokens.insert(key, t.clone());
                        t
                    }
                };
                Some(format!("Bearer {token}"))
            }
        };
        Ok(match text {
            Some(t) => {
                let mut v = HeaderValue::from_str(&t).map_err(|_| RegistryError::Invalid {
                    what: "the credentials".into(),
                    reason: "they hold characters an HTTP header cannot carry".into(),
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        })
    }

    /// Asks the token service for a token with `scopes`.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        reporter: &dyn Reporter,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Invalid {
            what: format!("the token service '{realm}' the registry names"),
            reason: e.to_string(),
        })?;
        let host = url.host_str().unwrap_or_default().to_string();
        let plain_ok = url.scheme() == "https"
            || (url.scheme() == "http" && (is_loopback(&host) || self.insecure));
        if !plain_ok {
            return Err(RegistryError::Invalid {
                what: format!("the token service '{realm}' the registry names"),
                reason: "it is not an https:// URL (plain HTTP is only used for loopback or with -Insecure)".into(),
            });
        }
        let refresh = match &self.credentials {
            Some(Credentials {
                secret: Secret::IdentityToken(t),
                ..
            }) => Some(t.clone()),
            _ => self.state().refresh_token.clone(),
        };
        reporter.verbose(&format!(
            "asking {} for a token (scopes: {})",
            url.as_str(),
            if scopes.is_empty() {
                "none".to_string()
            } else {
                scopes.join(" ")
            }
        ));
        let response = if let Some(refresh) = refresh {
            // OAuth2 refresh grant (docker's identity tokens).
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "containerimage"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let scope_text = scopes.join(" ");
            if !scopes.is_empty() {
                form.push(("scope", &scope_text));
            }
            self.http.post(url.clone()).form(&form).send()
        } else {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            let mut request = self.http.get(url.clone());
            if let Some(basic) = self.credentials.as_ref().and_then(|c| c.basic_header()) {
                let mut v = HeaderValue::from_str(&basic).map_err(|_| RegistryError::Invalid {
                    what: "the credentials".into(),
                    reason: "they hold characters an HTTP header cannot carry".into(),
                })?;
                v.set_sensitive(true);
                request = request.header(AUTHORIZATION, v);
            }
            request.send()
        }
        .map_err(|e| transport(&url, &e))?;
        let status = response.status();
        if !status.is_success() {
            let detail = error_detail(response);
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!("the token service answered {status}{detail}"),
                hint: self.login_hint(),
            });
        }
        let bytes = read_limited(response, MAX_TOKEN_RESPONSE, &url)?;
        let answer: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
                what: format!("the answer of the token service {}", url.as_str()),
                reason: e.to_string(),
            })?;
        if let Some(r) = &answer.refresh_token {
            self.state().refresh_token = Some(r.clone());
        }
        answer
            .bearer()
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Invalid {
                what: format!("the answer of the token service {}", url.as_str()),
                reason: "it holds no token".into(),
            })
    }

    fn login_hint(&self) -> String {
        if self.credentials.is_some() {
            format!(
                "check the user name and password, then log in again with Connect-ContainerRegistry {}",
                self.registry
            )
        } else {
            format!(
                "log in first with Connect-ContainerRegistry {}",
                self.registry
            )
        }
    }

    /// The Authorization header for a blob download of `scopes`.
    pub fn download_authorization(
        &self,
        scopes: &[String],
        reporter: &dyn Reporter,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        self.authorization(scopes, reporter)
    }

    /// Drops the tokens held, so the next request fetches new ones (a token
    /// that expired during a long transfer).
    pub fn forget_tokens(&self) {
        self.state().tokens.clear();
    }

    pub fn downloader(&self) -> &Downloader {
        &self.downloader
    }

    /// Sends a request, authenticating as the registry asks: on a 401 the
    /// challenge is read, a token fetched (or Basic credentials used) and
    /// the request sent again; a second 401 is an error that says how to
    /// log in. Other statuses are returned to the caller.
    #[allow(clippy::too_many_arguments)] // one request's parts, all needed again after a 401
    pub fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, String)],
        body: &Body<'_>,
        scopes: &[String],
        timeout: Option<Duration>,
        reporter: &dyn Reporter,
    ) -> Result<Response, RegistryError> {
        // A token refused once is replaced once (it expired); a refused
        // fresh token or Basic credentials are an error.
        let mut refreshed = false;
        for _ in 0..4 {
            let auth = self.authorization(scopes, reporter)?;
            let sent_auth = auth.is_some();
            let mut request: RequestBuilder = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                request = request.header(*k, v.as_str());
            }
            if let Some(a) = auth {
                request = request.header(AUTHORIZATION, a);
            }
            if let Some(t) = timeout {
                request = request.timeout(t);
            }
            request = match body {
                Body::Empty => request,
                Body::Bytes(b) => request.body(b.to_vec()),
                Body::File { path, offset, len } => {
                    request.body(file_body(path, *offset, *len).map_err(|source| {
                        RegistryError::Io {
                            path: path.to_path_buf(),
                            source,
                        }
                    })?)
                }
                Body::Handle { file, offset, len } => {
                    request.body(handle_body(file, *offset, *len).map_err(|source| {
                        RegistryError::Invalid {
                            what: format!("{method} {url}"),
                            reason: format!("cannot read the blob being sent: {source}"),
                        }
                    })?)
                }
            };
            reporter.verbose(&format!("{method} {url}"));
            let response = request.send().map_err(|e| transport(url, &e))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_challenge);
            let detail = error_detail(response);
            let Some(challenge) = challenge else {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    reason: format!(
                        "{method} {url} answered 401 without a challenge this client speaks (Basic or Bearer){detail}"
                    ),
                    hint: self.login_hint(),
                });
            };
            if challenge == Challenge::Basic && self.credentials.is_none() {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    reason: "the registry asks for a user name and password".into(),
                    hint: self.login_hint(),
                });
            }
            let basic = challenge == Challenge::Basic;
            if sent_auth && (refreshed || basic) {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    reason: format!("{method} {url} was refused (401){detail}"),
                    hint: self.login_hint(),
                });
            }
            if sent_auth {
                refreshed = true;
                reporter.verbose("the registry refused the token; asking for a new one");
            }
            let mut state = self.state();
            state.tokens.clear();
            state.challenge = Some(challenge);
        }
        Err(RegistryError::Unauthorized {
            registry: self.registry.clone(),
            reason: format!("{method} {url} kept answering 401"),
            hint: self.login_hint(),
        })
    }

    /// `GET /v2/`: is this a registry, and do the credentials work?
    pub fn ping(&self, reporter: &dyn Reporter) -> Result<(), RegistryError> {
        let url = self.url("")?;
        let response = self.send(Method::GET, &url, &[], &Body::Empty, &[], None, reporter)?;
        let status = response.status();
        if status.is_success() {
            // With a Bearer challenge, a token proves the credentials only
            // when the token service was asked with them.
            Ok(())
        } else {
            Err(status_error(
                &format!("the registry {}", self.registry),
                &url,
                response,
            ))
        }
    }

    /// Checks the credentials with the registry: `GET /v2/` with them, and
    /// for token authentication, a token asked for with them.
    pub fn check_login(&self, reporter: &dyn Reporter) -> Result<(), RegistryError> {
        self.ping(reporter)?;
        let challenge = self.state().challenge.clone();
        match challenge {
            Some(Challenge::Bearer { realm, service, .. }) => {
                if self.credentials.is_some() {
                    self.fetch_token(&realm, service.as_deref(), &[], reporter)?;
                }
                Ok(())
            }
            Some(Challenge::Basic) => Ok(()),
            None => {
                reporter.warn(&format!(
                    "the registry {} asks for no authentication; the credentials are stored anyway",
                    self.registry
                ));
                Ok(())
            }
        }
    }

    /// Downloads a blob into `dest` (verified digest and size, resumable
    /// through `<dest>.partial`). A 401 half way (an expired token) gets a
    /// new token and resumes.
    pub fn download_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        label: &str,
        dest: &Path,
        reporter: &dyn Reporter,
    ) -> Result<download::Outcome, RegistryError> {
        let hex = crate::oci::spec::sha256_hex(digest).ok_or_else(|| RegistryError::Invalid {
            what: "a descriptor".into(),
            reason: format!("'{digest}' is not a sha256 digest"),
        })?;
        let mut sha = [0u8; 32];
        hex::decode_to_slice(hex, &mut sha).map_err(|e| RegistryError::Invalid {
            what: "a descriptor".into(),
            reason: e.to_string(),
        })?;
        let url = self.url(&format!("{repository}/blobs/{digest}"))?;
        let scopes = [format!("repository:{repository}:pull")];
        let location =
            crate::location::Location::parse(url.as_str()).map_err(|e| RegistryError::Invalid {
                what: format!("the URL {url}"),
                reason: e.to_string(),
            })?;
        let locations = [location];
        let mut renewed = false;
        loop {
            // A first request learns how the registry authenticates.
            if self.state().challenge.is_none() {
                let _ = self.ping(reporter);
            }
            let request = download::Request {
                label: label.to_string(),
                locations: &locations,
                size: Some(size),
                sha256: Some(sha),
                authorization: self.authorization(&scopes, reporter)?,
            };
            match download::fetch(&self.downloader, &request, dest, true, reporter) {
                Ok(o) => return Ok(o),
                Err(e) => {
                    let text = crate::error_chain(&e);
                    if !renewed && text.contains("401") {
                        reporter
                            .verbose(&format!("{url}: 401; asking for a new token and resuming"));
                        renewed = true;
                        self.forget_tokens();
                        continue;
                    }
                    return Err(RegistryError::Download {
                        digest: digest.to_string(),
                        source: e,
                    });
                }
            }
        }
    }
}

/// Bodies up to this size are read into memory and handed to the HTTP
/// stack whole; larger ones are streamed from the file, which the HTTP
/// stack does 8 KiB at a time, each piece a wake-up of its I/O thread.
const BODY_IN_MEMORY: u64 = 16 << 20;

fn file_body(path: &Path, offset: u64, len: u64) -> std::io::Result<HttpBody> {
    handle_body(&crate::fsutil::open_regular(path)?, offset, len)
}

fn handle_body(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<HttpBody> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    if len <= BODY_IN_MEMORY {
        // `len` is bounded above, and positioned reads leave the handle's
        // position alone.
        let mut bytes = vec![0; len as usize];
        file.read_exact_at(&mut bytes, offset)?;
        return Ok(HttpBody::from(bytes));
    }
    // The handle's own position is the sender's alone: it is not shared
    // with whoever writes the file.
    let mut file = file.try_clone()?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(HttpBody::sized(file.take(len), len))
}

/// Reads a response body, at most `limit` bytes (more is an error).
pub fn read_limited(response: Response, limit: u64, url: &Url) -> Result<Vec<u8>, RegistryError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge {
            url: url.to_string(),
            limit,
        });
    }
    let mut bytes = Vec::new();
    response
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RegistryError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            url: url.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

/// The registry's error message (`{"errors":[{"code","message"}]}`), as
/// `: CODE message`, or nothing.
pub fn error_detail(response: Response) -> String {
    let mut bytes = Vec::new();
    let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut bytes);
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(&bytes) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .take(4)
                .map(|i| {
                    let text = format!("{} {}", i.code, i.message);
                    text.chars()
                        .filter(|c| !c.is_control())
                        .take(300)
                        .collect::<String>()
                })
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    }
}

/// An unexpected status as an error naming what was asked.
pub fn status_error(what: &str, url: &Url, response: Response) -> RegistryError {
    let status = response.status();
    RegistryError::Status {
        what: what.to_string(),
        url: url.to_string(),
        status: status.to_string(),
        detail: error_detail(response),
    }
}

/// A folder for blob downloads that survive across runs (resume).
pub fn blob_cache(store_root: &Path) -> PathBuf {
    store_root.join(".cache").join("registry-blobs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:1",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "localhost.example",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
