//! Where a feed or an image lives: an `http(s)://` URL or a local path
//! (`file://` URLs become paths).

use std::fmt;
use std::fs::{File, Metadata};
use std::io;
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
    #[error(
        "'{0}' names a local file, but the feed was read over HTTP: a remote feed may only \
         name http:// and https:// locations"
    )]
    LocalFromRemote(String),
}

/// What a reference in a feed is resolved against: the URL of a feed read
/// over HTTP(S), or the folder of a local feed.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    Remote(&'a Url),
    LocalFolder(&'a Path),
}

/// The scheme of `text` (`http`, `file`, `javascript`, …), if it starts
/// with one. One letter before the colon is a Windows drive (`C:\x`), not a
/// scheme.
fn scheme_of(text: &str) -> Option<&str> {
    let colon = text.find(':')?;
    let scheme = text.get(..colon)?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && scheme.len() > 1).then_some(scheme)
}

/// `C:\x`, `C:/x` or `\\server\share`: a path in Windows form, which a URL
/// parser would take for a scheme or a host.
fn is_windows_local_path(text: &str) -> bool {
    let b = text.as_bytes();
    let drive =
        b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/');
    drive || text.starts_with("\\\\")
}

impl Location {
    /// Reads a location as a user wrote it: an `http(s)://` URL, a `file:`
    /// URL, or a local path. Any other scheme is refused.
    pub fn parse(text: &str) -> Result<Location, LocationError> {
        let t = text.trim();
        match scheme_of(t).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(Location::Path(PathBuf::from(t))),
            Some("http" | "https") => {
                let url = Url::parse(t)
                    .map_err(|e| LocationError::BadUrl(t.to_string(), e.to_string()))?;
                Ok(Location::Http(url))
            }
            Some("file") => {
                let url = Url::parse(t)
                    .map_err(|e| LocationError::BadUrl(t.to_string(), e.to_string()))?;
                let path = url.to_file_path().map_err(|_| {
                    LocationError::BadUrl(t.to_string(), "not a local file URL".into())
                })?;
                Ok(Location::Path(path))
            }
            Some(_) => Err(LocationError::UnsupportedScheme(t.to_string())),
        }
    }

    /// Resolves `reference` (as written in a feed) against the feed's
    /// origin. This is the one place that decides what a feed may point at:
    ///
    /// - from a remote feed, only `http(s)://` locations: relative references
    ///   become URLs under the feed's URL, and `file:` URLs or anything else
    ///   that is not http(s) are refused;
    /// - from a local feed, `http(s)://` URLs, `file:` URLs and paths
    ///   (relative ones under the feed's folder);
    /// - any other scheme (`ftp:`, `data:`, `javascript:` …) is refused.
    pub fn resolve(origin: Origin<'_>, reference: &str) -> Result<Location, LocationError> {
        let r = reference.trim();
        match origin {
            Origin::Remote(base) => {
                if scheme_of(r).is_some_and(|s| s.eq_ignore_ascii_case("file"))
                    || is_windows_local_path(r)
                {
                    return Err(LocationError::LocalFromRemote(r.to_string()));
                }
                let url = base
                    .join(r)
                    .map_err(|e| LocationError::BadUrl(r.to_string(), e.to_string()))?;
                match url.scheme() {
                    "http" | "https" => Ok(Location::Http(url)),
                    "file" => Err(LocationError::LocalFromRemote(r.to_string())),
                    _ => Err(LocationError::UnsupportedScheme(r.to_string())),
                }
            }
            Origin::LocalFolder(dir) => match Location::parse(r)? {
                Location::Path(p) if p.is_relative() => Ok(Location::Path(dir.join(p))),
                other => Ok(other),
            },
        }
    }

    /// Resolves `reference` against this location, the location of a feed
    /// document (see [`Location::resolve`]).
    pub fn join(&self, reference: &str) -> Result<Location, LocationError> {
        match self {
            Location::Http(base) => Location::resolve(Origin::Remote(base), reference),
            Location::Path(base) => {
                let dir = if base.is_dir() {
                    base.as_path()
                } else {
                    base.parent().unwrap_or(Path::new(""))
                };
                Location::resolve(Origin::LocalFolder(dir), reference)
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

/// Opens a local file location (a `.wim`, a feed document) for reading.
///
/// Only a regular file is accepted: a device, FIFO, socket or folder is
/// refused before a byte is read. The kind is checked on the path first (so
/// a device is not even opened) and again on the opened file, which is
/// opened non-blocking so a FIFO swapped in between cannot hang the open.
/// Symbolic links are followed: the check applies to the file reached.
pub fn open_local_file(path: &Path) -> io::Result<(File, Metadata)> {
    let before = std::fs::metadata(path)?;
    if !before.is_file() {
        return Err(not_a_regular_file(path, &before));
    }
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_a_regular_file(path, &meta));
    }
    Ok((file, meta))
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    // Back to blocking reads: it is a regular file (checked by the caller).
    rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// The error for a local location that is not a regular file.
pub fn not_a_regular_file(path: &Path, meta: &Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {}, not a regular file; only regular files are read",
            path.display(),
            file_kind(meta)
        ),
    )
}

fn file_kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
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
        assert!(Location::parse("javascript:alert(1)").is_err());
        assert_eq!(
            Location::parse("C:\\images\\a.wim").expect("a drive path"),
            Location::Path(PathBuf::from("C:\\images\\a.wim"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.wim");
        std::fs::write(&file, b"abc").expect("write");
        let (_, meta) = open_local_file(&file).expect("a regular file opens");
        assert_eq!(meta.len(), 3);
        let fifo = dir.path().join("fifo.wim");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        for special in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let err = open_local_file(special).expect_err("refused");
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn a_remote_feed_may_only_name_http_locations() {
        let url = Url::parse("https://example.test/feeds/feed.xml").expect("url");
        let remote = Origin::Remote(&url);
        for ok in [
            "a.wim",
            "/etc/passwd",
            "../x.wim",
            "//other.test/x.wim",
            "HTTP://m.test/a",
        ] {
            let l = Location::resolve(remote, ok).expect(ok);
            assert!(matches!(l, Location::Http(_)), "{ok} gave {l}");
        }
        for local in [
            "file:///etc/passwd",
            "FILE:/etc/passwd",
            "file:a.wim",
            "C:\\images\\a.wim",
            "c:/images/a.wim",
            "\\\\server\\share\\a.wim",
        ] {
            assert!(
                matches!(
                    Location::resolve(remote, local),
                    Err(LocationError::LocalFromRemote(_))
                ),
                "{local}"
            );
        }
        for other in [
            "ftp://x/a.wim",
            "data:text/plain,abc",
            "javascript:alert(1)",
            "gopher://x",
        ] {
            assert!(
                matches!(
                    Location::resolve(remote, other),
                    Err(LocationError::UnsupportedScheme(_))
                ),
                "{other}"
            );
        }
        let dir = Path::new("/srv/feed");
        let local = Origin::LocalFolder(dir);
        assert_eq!(
            Location::resolve(local, "a.wim").expect("relative"),
            Location::Path(PathBuf::from("/srv/feed/a.wim"))
        );
        assert_eq!(
            Location::resolve(local, "file:///srv/x.wim").expect("file url"),
            Location::Path(PathBuf::from("/srv/x.wim"))
        );
        assert!(Location::resolve(local, "data:,x").is_err());
    }
}
