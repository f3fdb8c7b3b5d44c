//! Find-ContainerRegistryImage (`docker search`): the registry's catalog,
//! filtered by a wildcard pattern (a plain word matches as a substring),
//! with each repository's tags. Both lists follow `Link: <…>; rel="next"`
//! pagination, on the registry's own host only, for a bounded number of
//! pages.

use reqwest::{Method, Url};

use super::client::{read_limited, status_error, Body, Client};
use super::{RegistryError, MAX_DOCUMENT};
use crate::progress::Reporter;

/// Page size asked for.
const PAGE: u32 = 100;

/// The page size; with the `test-hooks` feature (never in a release build)
/// `CONTAINERIMAGE_REGISTRY_PAGE` sets it.
fn page_size() -> u32 {
    #[cfg(feature = "test-hooks")]
    if let Some(n) = std::env::var("CONTAINERIMAGE_REGISTRY_PAGE")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        return n.max(1);
    }
    PAGE
}
/// The most pages followed for one list.
const MAX_PAGES: usize = 10_000;

/// One repository found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub registry: String,
    pub repository: String,
    pub tags: Vec<String>,
}

/// The next page's URL from a `Link` header.
fn next_link(
    client: &Client,
    current: &Url,
    response: &reqwest::blocking::Response,
) -> Option<Url> {
    let link = response.headers().get("Link")?.to_str().ok()?;
    for part in link.split(',') {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            continue;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let url = client.resolve(current, target).ok()?;
        // Only pages of the same registry.
        if url.host_str() == current.host_str() && url.port() == current.port() {
            return Some(url);
        }
    }
    None
}

/// Reads every page of a list (`repositories` or `tags`).
fn list_all(
    client: &Client,
    first: Url,
    field: &str,
    scopes: &[String],
    reporter: &dyn Reporter,
) -> Result<Vec<String>, RegistryError> {
    let mut out = Vec::new();
    let mut url = Some(first);
    let mut seen = std::collections::HashSet::new();
    while let Some(u) = url.take() {
        if !seen.insert(u.to_string()) || seen.len() > MAX_PAGES {
            reporter.warn(&format!(
                "the registry's pages of {field} repeat or do not end; the list stops at {}",
                out.len()
            ));
            break;
        }
        let response = client.send(Method::GET, &u, &[], &Body::Empty, scopes, None, reporter)?;
        if !response.status().is_success() {
            return Err(status_error(&format!("listing {field}"), &u, response));
        }
        url = next_link(client, &u, &response);
        let bytes = read_limited(response, MAX_DOCUMENT, &u)?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
                what: format!("the answer of {u}"),
                reason: e.to_string(),
            })?;
        if let Some(items) = value.get(field).and_then(|v| v.as_array()) {
            out.extend(items.iter().filter_map(|i| i.as_str()).map(str::to_string));
        }
    }
    Ok(out)
}

/// True when `repository` matches `pattern` (wildcards `*` `?`; a plain word
/// matches as a substring; case-insensitive).
pub fn matches(pattern: &str, repository: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    if crate::wildcard::has_wildcards(pattern) {
        crate::wildcard::matches(pattern, repository)
    } else {
        repository
            .to_ascii_lowercase()
            .contains(&pattern.to_ascii_lowercase())
    }
}

/// The repositories of the registry matching `pattern`, with their tags.
pub fn search(
    client: &Client,
    pattern: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<Found>, RegistryError> {
    let mut first = client.url("_catalog")?;
    first
        .query_pairs_mut()
        .append_pair("n", &page_size().to_string());
    let repositories = list_all(
        client,
        first,
        "repositories",
        &["registry:catalog:*".to_string()],
        reporter,
    )?;
    let mut found = Vec::new();
    for repository in repositories.into_iter().filter(|r| matches(pattern, r)) {
        if super::reference::Reference::parse(&format!("{}/{repository}", client.registry()))
            .is_err()
        {
            reporter.warn(&format!(
                "the catalog names '{repository}', which is not a repository name; skipped"
            ));
            continue;
        }
        let mut url = client.url(&format!("{repository}/tags/list"))?;
        url.query_pairs_mut()
            .append_pair("n", &page_size().to_string());
        let mut tags = list_all(
            client,
            url,
            "tags",
            &[format!("repository:{repository}:pull")],
            reporter,
        )?;
        tags.sort();
        found.push(Found {
            registry: client.registry().to_string(),
            repository,
            tags,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_match_as_substrings() {
        assert!(matches("nano", "windows/nanoserver"));
        assert!(matches("NANO", "windows/nanoserver"));
        assert!(!matches("nano*", "windows/nanoserver"));
        assert!(matches("windows/*", "windows/nanoserver"));
        assert!(matches("", "anything"));
    }
}
