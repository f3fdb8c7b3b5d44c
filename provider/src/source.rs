//! Package sources: a registered name and a location that yields a feed.
//!
//! A location is an `http(s)://` URL of a feed document, a `file://` URL or
//! local path of one, or a local folder: its `feed.xml`, else the `*.wim`
//! files in it and one level below.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::{Config, SourceConfig};
use crate::feed::{self, FeedBase, FeedEntry, FeedError, HashCache, FEED_FILE_NAME};
use crate::location::{Location, LocationError};
use crate::progress::Reporter;
use crate::wildcard;

/// The provider's name, as OneGet shows it.
pub const PROVIDER_NAME: &str = "ContainerImage";
/// The seeds' older name of the provider, accepted where a name is expected.
pub const PROVIDER_OLD_NAME: &str = "ContainerProvider";

/// The largest feed document read from a server.
const MAX_FEED_BYTES: u64 = 256 << 20;
/// How long fetching one feed document may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "no package source is registered; register one with \
         `Register-PackageSource -Name <name> -Location <feed URL, feed file or folder>`"
    )]
    NoneRegistered,
    #[error(
        "Unable to find package source '{0}'. Use Get-PackageSource to see all available package sources."
    )]
    NotFound(String),
    #[error(
        "a package source named '{0}' is already registered; add -Force to replace it, or use Set-PackageSource to change it"
    )]
    AlreadyRegistered(String),
    #[error("The package source name '{0}' should not have wildcards, correct it and try again.")]
    WildcardName(String),
    #[error("the package source name is empty")]
    EmptyName,
    #[error("'{location}' is not a usable source location")]
    BadLocation {
        location: String,
        #[source]
        source: LocationError,
    },
    #[error("cannot find the current folder to make '{location}' absolute")]
    CurrentDir {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch the feed {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot fetch the feed {url}: the server answered {status}")]
    Status { url: String, status: String },
    #[error("cannot fetch the feed {url}: no HTTP client ({reason})")]
    Client { url: String, reason: String },
    #[error("reading the source at {location} stopped unexpectedly")]
    Stopped { location: String },
    #[error("the feed {url} is larger than {MAX_FEED_BYTES} bytes")]
    TooLarge { url: String },
    #[error("cannot read the source {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the source '{name}' cannot be used")]
    Feed {
        name: String,
        #[source]
        source: FeedError,
    },
}

impl SourceError {
    fn feed(name: &str) -> impl FnOnce(FeedError) -> SourceError + '_ {
        move |source| SourceError::Feed {
            name: name.to_string(),
            source,
        }
    }
}

/// A location as stored in the configuration: URLs as given, local paths
/// made absolute.
pub fn normalize_location(text: &str) -> Result<String, SourceError> {
    let t = text.trim();
    let bad = |source| SourceError::BadLocation {
        location: t.to_string(),
        source,
    };
    match Location::parse(t).map_err(bad)? {
        Location::Http(_) => Ok(t.to_string()),
        Location::Path(_) if t.to_ascii_lowercase().starts_with("file:") => Ok(t.to_string()),
        Location::Path(p) => {
            if p.as_os_str().is_empty() {
                return Err(bad(LocationError::BadUrl(
                    t.to_string(),
                    "it is empty".into(),
                )));
            }
            let abs = std::path::absolute(&p).map_err(|source| SourceError::CurrentDir {
                location: t.to_string(),
                source,
            })?;
            Ok(abs.to_string_lossy().into_owned())
        }
    }
}

fn check_name(name: &str) -> Result<&str, SourceError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(SourceError::EmptyName);
    }
    if wildcard::has_wildcards(n) {
        return Err(SourceError::WildcardName(n.to_string()));
    }
    Ok(n)
}

fn position(config: &Config, name: &str) -> Option<usize> {
    config
        .sources
        .iter()
        .position(|s| s.name.eq_ignore_ascii_case(name))
}

/// `Register-PackageSource`: adds a source; an existing name is an error
/// unless `force`, which replaces it.
pub fn register(
    config: &mut Config,
    name: &str,
    location: &str,
    trusted: bool,
    force: bool,
) -> Result<SourceConfig, SourceError> {
    let name = check_name(name)?;
    let source = SourceConfig {
        name: name.to_string(),
        location: normalize_location(location)?,
        trusted,
    };
    match position(config, name) {
        Some(_) if !force => return Err(SourceError::AlreadyRegistered(name.to_string())),
        Some(i) => {
            if let Some(slot) = config.sources.get_mut(i) {
                *slot = source.clone();
            }
        }
        None => config.sources.push(source.clone()),
    }
    Ok(source)
}

/// `Set-PackageSource`: renames, moves or (un)trusts a registered source.
pub fn set(
    config: &mut Config,
    name: &str,
    new_name: Option<&str>,
    new_location: Option<&str>,
    trusted: Option<bool>,
) -> Result<SourceConfig, SourceError> {
    let i = position(config, name.trim()).ok_or_else(|| SourceError::NotFound(name.to_string()))?;
    let new_name = new_name.map(check_name).transpose()?;
    if let Some(n) = new_name {
        if position(config, n).is_some_and(|j| j != i) {
            return Err(SourceError::AlreadyRegistered(n.to_string()));
        }
    }
    let new_location = new_location.map(normalize_location).transpose()?;
    let slot = config
        .sources
        .get_mut(i)
        .ok_or_else(|| SourceError::NotFound(name.to_string()))?;
    if let Some(n) = new_name {
        slot.name = n.to_string();
    }
    if let Some(l) = new_location {
        slot.location = l;
    }
    if let Some(t) = trusted {
        slot.trusted = t;
    }
    Ok(slot.clone())
}

/// `Unregister-PackageSource`: removes a source and returns it.
pub fn unregister(config: &mut Config, name: &str) -> Result<SourceConfig, SourceError> {
    let i = position(config, name.trim()).ok_or_else(|| SourceError::NotFound(name.to_string()))?;
    Ok(config.sources.remove(i))
}

/// `Get-PackageSource`: the sources whose name matches `pattern` (all when
/// none). A name without wildcards that matches nothing is an error.
pub fn matching(config: &Config, pattern: Option<&str>) -> Result<Vec<SourceConfig>, SourceError> {
    let pattern = pattern.map(str::trim).filter(|p| !p.is_empty());
    let Some(p) = pattern else {
        return Ok(config.sources.clone());
    };
    let found: Vec<SourceConfig> = config
        .sources
        .iter()
        .filter(|s| wildcard::matches(p, &s.name))
        .cloned()
        .collect();
    if found.is_empty() && !wildcard::has_wildcards(p) {
        return Err(SourceError::NotFound(p.to_string()));
    }
    Ok(found)
}

/// The sources a command searches: all registered ones, or those named by
/// `-Source` (names, wildcards, or a location used as it is).
pub fn select(config: &Config, names: &[String]) -> Result<Vec<SourceConfig>, SourceError> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        if config.sources.is_empty() {
            return Err(SourceError::NoneRegistered);
        }
        return Ok(config.sources.clone());
    }
    let mut chosen: Vec<SourceConfig> = Vec::new();
    for &name in &names {
        let found: Vec<&SourceConfig> = config
            .sources
            .iter()
            .filter(|s| wildcard::matches(name, &s.name))
            .collect();
        if found.is_empty() {
            if wildcard::has_wildcards(name) {
                continue;
            }
            if let Some(adhoc) = adhoc_source(name) {
                chosen.push(adhoc);
                continue;
            }
            return Err(SourceError::NotFound(name.to_string()));
        }
        for s in found {
            if !chosen.iter().any(|c| c.name.eq_ignore_ascii_case(&s.name)) {
                chosen.push(s.clone());
            }
        }
    }
    if chosen.is_empty() {
        return Err(SourceError::NotFound(names.join(", ")));
    }
    Ok(chosen)
}

/// A `-Source` value that is a location rather than a registered name.
fn adhoc_source(text: &str) -> Option<SourceConfig> {
    let is_location = match Location::parse(text).ok()? {
        Location::Http(_) => true,
        Location::Path(p) => p.exists(),
    };
    if !is_location {
        return None;
    }
    Some(SourceConfig {
        name: text.to_string(),
        location: normalize_location(text).ok()?,
        trusted: false,
    })
}

/// Fetches feed documents over HTTP. The HTTP client is built on first use,
/// so local sources cost nothing; proxies come from the environment
/// (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
pub struct FeedClient {
    timeout: Duration,
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    hash_cache: Option<HashCache>,
}

impl Default for FeedClient {
    fn default() -> Self {
        FeedClient::new(DEFAULT_TIMEOUT)
    }
}

impl FeedClient {
    pub fn new(timeout: Duration) -> Self {
        FeedClient {
            timeout,
            client: OnceLock::new(),
            hash_cache: None,
        }
    }

    /// Remembers the hashes of `.wim` files in folder sources in `file`
    /// (e.g. `<home>/cache/wim-hashes.json`), so unchanged files are not
    /// read again at the next search.
    pub fn with_hash_cache(mut self, file: PathBuf) -> Self {
        self.hash_cache = Some(HashCache::open(file));
        self
    }

    /// Writes remembered hashes back; a failure only costs time later.
    pub fn save_hash_cache(&self, reporter: &dyn Reporter) {
        if let Some(cache) = &self.hash_cache {
            if let Err(e) = cache.save() {
                reporter.verbose(&format!("cannot save the hash cache: {e}"));
            }
        }
    }

    fn client(&self, url: &str) -> Result<&reqwest::blocking::Client, SourceError> {
        let built = self.client.get_or_init(|| {
            reqwest::blocking::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
                .user_agent(concat!("containerimage/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        });
        built.as_ref().map_err(|e| SourceError::Client {
            url: url.to_string(),
            reason: e.clone(),
        })
    }

    /// The document at `url` and the URL it was finally served from
    /// (after redirects), which relative locations are resolved against.
    pub fn get(
        &self,
        url: &crate::location::Url,
    ) -> Result<(Vec<u8>, crate::location::Url), SourceError> {
        let text = url.to_string();
        let fetch = |source| SourceError::Fetch {
            url: text.clone(),
            source,
        };
        let response = self.client(&text)?.get(url.clone()).send().map_err(fetch)?;
        let status = response.status();
        if !status.is_success() {
            return Err(SourceError::Status {
                url: text,
                status: status.to_string(),
            });
        }
        let final_url = response.url().clone();
        let mut body = Vec::new();
        response
            .take(MAX_FEED_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|source| SourceError::Read {
                path: PathBuf::from(&text),
                source,
            })?;
        if body.len() as u64 > MAX_FEED_BYTES {
            return Err(SourceError::TooLarge { url: text });
        }
        Ok((body, final_url))
    }
}

/// Everything `source` offers.
pub fn load(
    source: &SourceConfig,
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Result<Vec<FeedEntry>, SourceError> {
    let name = source.name.as_str();
    let started = std::time::Instant::now();
    let location = Location::parse(&source.location).map_err(|e| SourceError::BadLocation {
        location: source.location.clone(),
        source: e,
    })?;
    let entries = match location {
        Location::Http(url) => {
            reporter.verbose(&format!("Fetching the feed of source '{name}' from {url}"));
            let (body, final_url) = client.get(&url)?;
            if final_url != url {
                reporter.verbose(&format!("The feed of source '{name}' is at {final_url}"));
            }
            feed::parse_entries(&body, url.as_str(), &FeedBase::Http(final_url), name)
                .map_err(SourceError::feed(name))?
        }
        Location::Path(path) => load_path(name, &path, client.hash_cache.as_ref(), reporter)?,
    };
    reporter.verbose(&format!(
        "Source '{name}' lists {} image(s), read in {} ms",
        entries.len(),
        started.elapsed().as_millis()
    ));
    Ok(entries)
}

fn load_path(
    name: &str,
    path: &Path,
    cache: Option<&HashCache>,
    reporter: &dyn Reporter,
) -> Result<Vec<FeedEntry>, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        reporter.verbose(&format!(
            "Reading the feed of source '{name}' from {}",
            path.display()
        ));
        let bytes = read_feed_file(path)?;
        let base = FeedBase::Folder(path.parent().map(Path::to_path_buf).unwrap_or_default());
        return feed::parse_entries(&bytes, &path.display().to_string(), &base, name)
            .map_err(SourceError::feed(name));
    }
    let manifest = path.join(FEED_FILE_NAME);
    match read_feed_file(&manifest) {
        Ok(bytes) => {
            reporter.verbose(&format!(
                "Reading the feed of source '{name}' from {}",
                manifest.display()
            ));
            let base = FeedBase::Folder(path.to_path_buf());
            feed::parse_entries(&bytes, &manifest.display().to_string(), &base, name)
                .map_err(SourceError::feed(name))
        }
        Err(SourceError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            reporter.verbose(&format!(
                "Source '{name}': {} has no {FEED_FILE_NAME}; reading the .wim files in it",
                path.display()
            ));
            let scan =
                feed::scan_wim_folder(path, cache, reporter).map_err(SourceError::feed(name))?;
            for failure in &scan.failures {
                reporter.warn(&format!("source '{name}': skipping a file: {failure}"));
            }
            let base = FeedBase::Folder(path.to_path_buf());
            scan.records
                .into_iter()
                .map(|r| r.resolve(&base, &path.display().to_string(), name))
                .collect::<Result<_, _>>()
                .map_err(SourceError::feed(name))
        }
        Err(other) => Err(other),
    }
}

/// A local feed document, refusing one too large to be a feed.
fn read_feed_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FEED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(SourceError::TooLarge {
            url: path.display().to_string(),
        });
    }
    Ok(bytes)
}

/// Loads several sources at once. Each result is in the order of `sources`.
pub fn load_all(
    sources: &[SourceConfig],
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Vec<Result<Vec<FeedEntry>, SourceError>> {
    let results = if sources.len() == 1 {
        sources.iter().map(|s| load(s, client, reporter)).collect()
    } else {
        load_parallel(sources, client, reporter)
    };
    client.save_hash_cache(reporter);
    results
}

fn load_parallel(
    sources: &[SourceConfig],
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Vec<Result<Vec<FeedEntry>, SourceError>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|s| scope.spawn(move || load(s, client, reporter)))
            .collect();
        handles
            .into_iter()
            .zip(sources)
            .map(|(h, s)| {
                h.join().unwrap_or_else(|_| {
                    Err(SourceError::Stopped {
                        location: s.location.clone(),
                    })
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(names: &[&str]) -> Config {
        Config {
            sources: names
                .iter()
                .map(|n| SourceConfig {
                    name: n.to_string(),
                    location: format!("https://{n}.test/feed.xml"),
                    trusted: false,
                })
                .collect(),
            store: None,
        }
    }

    #[test]
    fn register_set_unregister() {
        let mut c = Config::default();
        let s = register(&mut c, "Local", "some/dir", false, false).expect("register");
        assert!(Path::new(&s.location).is_absolute(), "{}", s.location);
        assert!(matches!(
            register(&mut c, "local", "https://x.test/f.xml", false, false),
            Err(SourceError::AlreadyRegistered(_))
        ));
        register(&mut c, "local", "https://x.test/f.xml", true, true).expect("force replaces");
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].location, "https://x.test/f.xml");
        assert!(matches!(
            register(&mut c, "a*", "https://x.test", false, false),
            Err(SourceError::WildcardName(_))
        ));
        let s = set(&mut c, "LOCAL", Some("Renamed"), None, Some(false)).expect("set");
        assert_eq!((s.name.as_str(), s.trusted), ("Renamed", false));
        assert!(matches!(
            set(&mut c, "nope", None, None, None),
            Err(SourceError::NotFound(_))
        ));
        unregister(&mut c, "renamed").expect("unregister");
        assert!(c.sources.is_empty());
        assert!(matches!(
            unregister(&mut c, "renamed"),
            Err(SourceError::NotFound(_))
        ));
    }

    #[test]
    fn get_and_select_follow_wildcards() {
        let c = config(&["Gallery", "Mirror", "Local"]);
        assert_eq!(matching(&c, None).expect("all").len(), 3);
        assert_eq!(matching(&c, Some("*l*")).expect("some").len(), 2);
        assert!(matching(&c, Some("z*")).expect("none").is_empty());
        assert!(matches!(
            matching(&c, Some("zzz")),
            Err(SourceError::NotFound(_))
        ));
        let picked = select(&c, &["mirror".into(), "M*".into()]).expect("select");
        assert_eq!(picked.len(), 1);
        assert!(matches!(
            select(&Config::default(), &[]),
            Err(SourceError::NoneRegistered)
        ));
        assert!(matches!(
            select(&c, &["nope".into()]),
            Err(SourceError::NotFound(_))
        ));
        let adhoc = select(&c, &["https://adhoc.test/feed.xml".into()]).expect("adhoc");
        assert_eq!(adhoc[0].location, "https://adhoc.test/feed.xml");
    }
}
