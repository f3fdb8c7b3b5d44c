//! `CONTAINERIMAGE_HOME` and the configuration file in it: registered
//! sources and the store's location.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// The environment variable naming the home folder.
pub const HOME_VAR: &str = "CONTAINERIMAGE_HOME";
const CONFIG_FILE: &str = "config.json";
const DEFAULT_STORE_DIR: &str = "images";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the configuration {path} is damaged (line {line}): {message}; fix or delete it")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot write the configuration {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot tell where the home folder is: set {HOME_VAR}")]
    NoHome,
}

/// The folder that holds the configuration and, until moved, the store.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `CONTAINERIMAGE_HOME`, else the platform default: `/var/lib/containerimage`
    /// when the effective user is root (whatever `HOME` says), `$XDG_DATA_HOME/containerimage` (or `~/.local/share/containerimage`)
    /// for other users, `%ProgramData%\ContainerImage` on Windows.
    pub fn from_env() -> Result<Home, ConfigError> {
        if let Some(v) = std::env::var_os(HOME_VAR).filter(|v| !v.is_empty()) {
            return Ok(Home::at(PathBuf::from(v)));
        }
        default_home().map(Home::at).ok_or(ConfigError::NoHome)
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// Loads the configuration; a missing file is the empty default.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let path = self.config_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConfigError::Parse {
                path,
                line: e.line(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Saves the configuration atomically.
    pub fn save(&self, config: &Config) -> Result<(), ConfigError> {
        let path = self.config_path();
        let mut bytes = serde_json::to_vec_pretty(config).map_err(|e| ConfigError::Write {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(|source| ConfigError::Write { path, source })
    }

    /// Where the image store is: the configured location, else `<home>/images`.
    pub fn store_path(&self, config: &Config) -> PathBuf {
        match &config.store {
            Some(p) => p.clone(),
            None => self.root.join(DEFAULT_STORE_DIR),
        }
    }
}

#[cfg(unix)]
fn default_home() -> Option<PathBuf> {
    // Decided by who the process is, not by what USER or HOME say.
    if rustix::process::geteuid().is_root() {
        return Some(PathBuf::from("/var/lib/containerimage"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("containerimage"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/containerimage"))
}

#[cfg(not(unix))]
fn default_home() -> Option<PathBuf> {
    std::env::var_os("ProgramData").map(|p| PathBuf::from(p).join("ContainerImage"))
}

/// The persisted configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    /// Registered package sources, in registration order.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// The store's location when it was moved away from `<home>/images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// The folders Move-ContainerImageRepository created to hold the store
    /// (deepest first); removed when a later move leaves them empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_parents: Vec<PathBuf>,
}

/// One registered package source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SourceConfig {
    pub name: String,
    /// As the user gave it: a URL, a `file://` URL or a path (made absolute).
    pub location: String,
    #[serde(default)]
    pub trusted: bool,
    /// The minisign public key pinned to this source (base64, as in a
    /// minisign `.pub` file): its feed is used only when its signature
    /// verifies with this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_config_is_default_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().join("home"));
        assert_eq!(home.load().expect("load"), Config::default());
        let cfg = Config {
            sources: vec![SourceConfig {
                name: "s".into(),
                location: "/x".into(),
                trusted: true,
                public_key: Some("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3".into()),
            }],
            ..Config::default()
        };
        home.save(&cfg).expect("save");
        assert_eq!(home.load().expect("reload"), cfg);
        assert_eq!(home.store_path(&cfg), dir.path().join("home/images"));
    }

    #[test]
    fn damaged_config_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{\n  \"Sources\": [oops").expect("write");
        let err = Home::at(dir.path()).load().expect_err("must fail");
        assert!(err.to_string().contains("damaged (line 2)"), "{err}");
    }
}
