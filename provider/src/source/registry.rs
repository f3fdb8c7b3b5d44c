//! The registered sources in the configuration: register, change, remove,
//! list, and choose the ones a search uses.

use crate::config::{Config, SourceConfig};
use crate::location::{Location, LocationError};
use crate::signing::PinnedKey;
use crate::wildcard;

use super::SourceError;

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

/// What `Set-PackageSource` does to a source's pinned key.
#[derive(Clone, Debug, Default)]
pub enum KeyChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Pin this key (replacing any other).
    Pin(PinnedKey),
    /// Unpin: the feed is used without checking a signature.
    Unpin,
}

/// `Register-PackageSource`: adds a source; an existing name is an error
/// unless `force`, which replaces it. `public_key` pins a key to it.
pub fn register(
    config: &mut Config,
    name: &str,
    location: &str,
    trusted: bool,
    public_key: Option<&PinnedKey>,
    force: bool,
) -> Result<SourceConfig, SourceError> {
    let name = check_name(name)?;
    let source = SourceConfig {
        name: name.to_string(),
        location: normalize_location(location)?,
        trusted,
        public_key: public_key.map(|k| k.as_base64().to_string()),
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

/// `Set-PackageSource`: renames, moves, (un)trusts a registered source, or
/// pins, replaces or removes its key.
pub fn set(
    config: &mut Config,
    name: &str,
    new_name: Option<&str>,
    new_location: Option<&str>,
    trusted: Option<bool>,
    key: KeyChange,
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
    match key {
        KeyChange::Keep => {}
        KeyChange::Pin(k) => slot.public_key = Some(k.as_base64().to_string()),
        KeyChange::Unpin => slot.public_key = None,
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
        public_key: None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(names: &[&str]) -> Config {
        Config {
            sources: names
                .iter()
                .map(|n| SourceConfig {
                    name: n.to_string(),
                    location: format!("https://{n}.test/feed.xml"),
                    trusted: false,
                    public_key: None,
                })
                .collect(),
            ..Config::default()
        }
    }

    #[test]
    fn register_set_unregister() {
        let mut c = Config::default();
        let s = register(&mut c, "Local", "some/dir", false, None, false).expect("register");
        assert!(Path::new(&s.location).is_absolute(), "{}", s.location);
        assert!(matches!(
            register(&mut c, "local", "https://x.test/f.xml", false, None, false),
            Err(SourceError::AlreadyRegistered(_))
        ));
        register(&mut c, "local", "https://x.test/f.xml", true, None, true)
            .expect("force replaces");
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].location, "https://x.test/f.xml");
        assert!(matches!(
            register(&mut c, "a*", "https://x.test", false, None, false),
            Err(SourceError::WildcardName(_))
        ));
        let s = set(
            &mut c,
            "LOCAL",
            Some("Renamed"),
            None,
            Some(false),
            KeyChange::Keep,
        )
        .expect("set");
        assert_eq!((s.name.as_str(), s.trusted), ("Renamed", false));
        assert!(matches!(
            set(&mut c, "nope", None, None, None, KeyChange::Keep),
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
