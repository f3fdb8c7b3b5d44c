//! Where a feed or an image lives: an `http(s)://` URL or a local path
//! (`file://` URLs become paths).

use std::fmt;
use std::path::{Path, PathBuf};

pub use reqwest::Url;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An `http://` or `https://` URL.
    Http(Url),
    /// A local file or folder (also what a `file://` URL names).
    Path(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("'{0}' is not a valid URL: {1}")]
    BadUrl(String, String),
    #[error("'{0}' uses an unsupported scheme; use http://, https://, file:// or a local path")]
    UnsupportedScheme(String),
}

impl Location {
    /// Reads a location as a user or a feed wrote it.
    pub fn parse(text: &str) -> Result<Location, LocationError> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url =
                Url::parse(t).map_err(|e| LocationError::BadUrl(t.to_string(), e.to_string()))?;
            return Ok(Location::Http(url));
        }
        if lower.starts_with("file:") {
            let url =
                Url::parse(t).map_err(|e| LocationError::BadUrl(t.to_string(), e.to_string()))?;
            let path = url
                .to_file_path()
                .map_err(|_| LocationError::BadUrl(t.to_string(), "not a local file URL".into()))?;
            return Ok(Location::Path(path));
        }
        // A Windows drive path ("C:\x") is a path, anything else with a scheme is not.
        if let Some(colon) = t.find("://") {
            if colon > 1 {
                return Err(LocationError::UnsupportedScheme(t.to_string()));
            }
        }
        Ok(Location::Path(PathBuf::from(t)))
    }

    /// Resolves `reference` (as written in a feed) against this location,
    /// which is the feed's own location. Absolute references stay as they are.
    pub fn join(&self, reference: &str) -> Result<Location, LocationError> {
        let r = reference.trim();
        let lower = r.to_ascii_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("file:")
        {
            return Location::parse(r);
        }
        match self {
            Location::Http(base) => base
                .join(r)
                .map(Location::Http)
                .map_err(|e| LocationError::BadUrl(r.to_string(), e.to_string())),
            Location::Path(base) => {
                let p = Path::new(r);
                if p.is_absolute() {
                    return Ok(Location::Path(p.to_path_buf()));
                }
                let dir = if base.is_dir() {
                    base.as_path()
                } else {
                    base.parent().unwrap_or(Path::new(""))
                };
                Ok(Location::Path(dir.join(p)))
            }
        }
    }

    /// The last path segment (a file name), if any.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Http(u) => u
                .path_segments()?
                .next_back()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            Location::Path(p) => p.file_name().map(|s| s.to_string_lossy().into_owned()),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Http(u) => write!(f, "{u}"),
            Location::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins() {
        let feed = Location::parse("https://example.test/feeds/feed.xml").expect("url");
        assert_eq!(
            feed.join("NanoServer.wim").expect("join").to_string(),
            "https://example.test/feeds/NanoServer.wim"
        );
        assert_eq!(
            feed.join("http://mirror.test/a.wim")
                .expect("join")
                .to_string(),
            "http://mirror.test/a.wim"
        );
        let local = Location::parse("file:///srv/feed/feed.xml").expect("file url");
        assert_eq!(local, Location::Path(PathBuf::from("/srv/feed/feed.xml")));
        assert_eq!(
            local.join("a.wim").expect("join"),
            Location::Path(PathBuf::from("/srv/feed/a.wim"))
        );
        assert!(Location::parse("ftp://x/y").is_err());
    }
}
