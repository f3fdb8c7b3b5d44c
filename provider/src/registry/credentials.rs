//! Credentials as Docker keeps them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`.
//!
//! - `auths.<registry>.auth` = base64(`user:password`), or
//!   `auths.<registry>.identitytoken` (a refresh token);
//! - `credHelpers.<registry>` names a helper for one registry and wins over
//!   `auths`; `credsStore` names the helper for every other registry. A
//!   helper is the program `docker-credential-<name>` with the verb `get`,
//!   `store` or `erase`; the registry (or a JSON record) goes on its
//!   standard input.
//!
//! The file is written atomically (a temporary file in its folder, mode
//! 0600, then a rename), keeping every key this tool does not manage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

use super::auth::{Credentials, Secret};

/// The largest credential file read.
const MAX_CONFIG: u64 = 16 << 20;
/// The largest answer read from a helper.
const MAX_HELPER_OUTPUT: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read the credential file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential file {} is damaged: {reason}; fix or remove it", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot write the credential file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential helper docker-credential-{helper} failed: {reason}")]
    Helper { helper: String, reason: String },
    #[error("no home folder: set HOME or DOCKER_CONFIG")]
    NoHome,
}

/// Where Docker's credential file is.
pub fn config_path() -> Result<PathBuf, CredentialError> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or(CredentialError::NoHome)?;
    Ok(PathBuf::from(home).join(".docker").join("config.json"))
}

/// The credential file as a JSON object (empty when missing).
fn read_config(path: &Path) -> Result<Map<String, Value>, CredentialError> {
    let file = match crate::fsutil::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => {
            return Err(CredentialError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_CONFIG + 1), &mut bytes)
        .map_err(|source| CredentialError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(CredentialError::Damaged {
            path: path.to_path_buf(),
            reason: format!("it is larger than {MAX_CONFIG} bytes"),
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(CredentialError::Damaged {
            path: path.to_path_buf(),
            reason: "it is not a JSON object".into(),
        }),
        Err(e) => Err(CredentialError::Damaged {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// The keys under which a registry may appear in `auths`: the host itself,
/// or a URL of it (`https://host/v1/`, as Docker writes Docker Hub's).
fn key_matches(key: &str, registry: &str) -> bool {
    let bare = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = bare.split('/').next().unwrap_or_default();
    host.eq_ignore_ascii_case(registry)
        || (registry == "docker.io" && host.eq_ignore_ascii_case("index.docker.io"))
}

/// The helper that holds `registry`'s credentials, if any.
fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
    let specific = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| key_matches(k, registry)))
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    specific.or_else(|| {
        config
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

/// A helper's name may only name a `docker-credential-*` program.
fn check_helper(name: &str) -> Result<(), CredentialError> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
    {
        Ok(())
    } else {
        Err(CredentialError::Helper {
            helper: name.to_string(),
            reason: "the name may only hold letters, digits, '-', '_' and '.'".into(),
        })
    }
}

/// Runs `docker-credential-<helper> <verb>` with `input`; returns its
/// standard output, or `None` when it says it has no credentials.
fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<Option<Vec<u8>>, CredentialError> {
    check_helper(helper)?;
    let fail = |reason: String| CredentialError::Helper {
        helper: helper.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot start it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot read its answer: {e}")))?;
    let mut out = output.stdout;
    out.truncate(MAX_HELPER_OUTPUT);
    if output.status.success() {
        return Ok(Some(out));
    }
    // The helper protocol's "not found" answer.
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    if verb == "get" && text.contains("credentials not found") {
        return Ok(None);
    }
    Err(fail(format!(
        "it exited with {} (its answer is not shown: it may hold secrets)",
        output.status
    )))
}

/// The credentials stored for `registry`, from its helper or `auths`.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, CredentialError> {
    let path = config_path()?;
    let config = read_config(&path)?;
    lookup_in(&config, &path, registry)
}

fn lookup_in(
    config: &Map<String, Value>,
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    if let Some(helper) = helper_for(config, registry) {
        let Some(out) = run_helper(&helper, "get", registry.as_bytes())? else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct HelperAnswer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let a: HelperAnswer =
            serde_json::from_slice(&out).map_err(|e| CredentialError::Helper {
                helper: helper.clone(),
                reason: format!("its answer is not the helper protocol's JSON: {e}"),
            })?;
        if a.secret.is_empty() {
            return Ok(None);
        }
        return Ok(Some(if a.username == "<token>" {
            Credentials {
                username: String::new(),
                secret: Secret::IdentityToken(a.secret),
            }
        } else {
            Credentials {
                username: a.username,
                secret: Secret::Password(a.secret),
            }
        }));
    }
    let Some(auths) = config.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some(entry) = auths
        .iter()
        .find(|(k, _)| key_matches(k, registry))
        .and_then(|(_, v)| v.as_object())
    else {
        return Ok(None);
    };
    let damaged = |reason: &str| CredentialError::Damaged {
        path: path.to_path_buf(),
        reason: format!("auths.{registry}: {reason}"),
    };
    let user_from_auth = match entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        Some(auth) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| damaged("'auth' is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| damaged("'auth' is not UTF-8"))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| damaged("'auth' is not user:password"))?;
            Some((user.to_string(), password.to_string()))
        }
        None => None,
    };
    if let Some(token) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials {
            username: user_from_auth.map(|(u, _)| u).unwrap_or_default(),
            secret: Secret::IdentityToken(token.to_string()),
        }));
    }
    Ok(user_from_auth.map(|(username, password)| Credentials {
        username,
        secret: Secret::Password(password),
    }))
}

/// Writes the file atomically with mode 0600.
fn write_config(path: &Path, config: &Map<String, Value>) -> Result<(), CredentialError> {
    let err = |source| CredentialError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut bytes = serde_json::to_vec_pretty(config).map_err(|e| err(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Stores credentials for `registry`: in its helper when one is set,
/// else in `auths`.
pub fn store(registry: &str, credentials: &Credentials) -> Result<PathBuf, CredentialError> {
    let path = config_path()?;
    let mut config = read_config(&path)?;
    if let Some(helper) = helper_for(&config, registry) {
        let (user, secret) = match &credentials.secret {
            Secret::Password(p) => (credentials.username.clone(), p.clone()),
            Secret::IdentityToken(t) => ("<token>".to_string(), t.clone()),
        };
        let record = serde_json::json!({"ServerURL": registry, "Username": user, "Secret": secret});
        run_helper(&helper, "store", record.to_string().as_bytes())?;
        return Ok(path);
    }
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Some(map) = auths.as_object_mut() {
        map.retain(|k, _| !key_matches(k, registry) || k == registry);
        let mut entry = Map::new();
        match &credentials.secret {
            Secret::Password(p) => {
                entry.insert(
                    "auth".into(),
                    Value::String(
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{}:{p}", credentials.username)),
                    ),
                );
            }
            Secret::IdentityToken(t) => {
                entry.insert("identitytoken".into(), Value::String(t.clone()));
            }
        }
        map.insert(registry.to_string(), Value::Object(entry));
    }
    write_config(&path, &config)?;
    Ok(path)
}

/// Removes the credentials of `registry`; `false` when there were none.
pub fn erase(registry: &str) -> Result<bool, CredentialError> {
    let path = config_path()?;
    let mut config = read_config(&path)?;
    if let Some(helper) = helper_for(&config, registry) {
        run_helper(&helper, "erase", registry.as_bytes())?;
        return Ok(true);
    }
    let removed = match config.get_mut("auths").and_then(Value::as_object_mut) {
        Some(map) => {
            let before = map.len();
            map.retain(|k, _| !key_matches(k, registry));
            before != map.len()
        }
        None => false,
    };
    if removed {
        write_config(&path, &config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_keys_match_hosts_and_urls() {
        assert!(key_matches("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(key_matches(
            "https://registry.example/v2/",
            "registry.example"
        ));
        assert!(key_matches("https://index.docker.io/v1/", "docker.io"));
        assert!(!key_matches("registry.example:5000", "registry.example"));
        assert!(!key_matches("other.example", "registry.example"));
    }

    #[test]
    fn entries_are_read() {
        let config: Map<String, Value> = serde_json::from_str(
            r#"{"auths":{"a.example":{"auth":"dXNlcjpwYTpzcw=="},"b.example":{"identitytoken":"tok"},"c.example":{"auth":"!!"}}}"#,
        )
        .expect("json");
        let p = Path::new("config.json");
        let a = lookup_in(&config, p, "a.example")
            .expect("ok")
            .expect("some");
        assert_eq!(a.username, "user");
        assert_eq!(a.secret, Secret::Password("pa:ss".into()));
        let b = lookup_in(&config, p, "b.example")
            .expect("ok")
            .expect("some");
        assert_eq!(b.secret, Secret::IdentityToken("tok".into()));
        assert!(lookup_in(&config, p, "d.example").expect("ok").is_none());
        let e = lookup_in(&config, p, "c.example").expect_err("damaged");
        assert!(e.to_string().contains("not base64"), "{e}");
        assert!(check_helper("../x").is_err());
    }
}
