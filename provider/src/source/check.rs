//! A look at a source's location when it is registered: PowerShell
//! registers whatever it is given, and so do we, but a location that cannot
//! be read now (a missing folder, a dead port, a web page instead of a
//! feed) deserves a warning before the first search fails.

use std::path::Path;
use std::time::Duration;

use crate::feed::{self, FeedBase, FEED_FILE_NAME};
use crate::location::Location;

use super::FeedClient;

/// How long registering waits for a feed server's answer.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// What is wrong with `location` now, with what to do; `None` when it
/// reads as a feed (a folder counts when it holds `feed.xml` or `.wim` files).
pub fn check_location(location: &str) -> Option<String> {
    let parsed = match Location::parse(location) {
        Ok(l) => l,
        Err(e) => return Some(format!("'{location}' is not a usable location: {e}")),
    };
    match parsed {
        Location::Path(path) => check_path(&path),
        Location::Http(url) => {
            let client = FeedClient::new(CHECK_DEADLINE);
            let (body, final_url) = match client.get(&url) {
                Ok(answer) => answer,
                Err(e) => {
                    return Some(format!(
                        "the feed at {url} cannot be read now: {}",
                        crate::error_chain(&e)
                    ))
                }
            };
            if looks_like_html(&body) {
                let text = url.as_str();
                let suggestion = if text.ends_with('/') {
                    format!("{text}{FEED_FILE_NAME}")
                } else {
                    format!("{text}/{FEED_FILE_NAME}")
                };
                return Some(format!(
                    "{url} answers with a web page, not a feed; a feed is an XML or JSON document, \
                     e.g. {suggestion} (change it with Set-PackageSource -NewLocation)"
                ));
            }
            match feed::parse_entries(&body, url.as_str(), &FeedBase::Http(final_url), "check") {
                Ok(_) => None,
                Err(e) => Some(format!(
                    "{url} does not hold a readable feed: {}",
                    crate::error_chain(&e)
                )),
            }
        }
    }
}

fn check_path(path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Some(format!(
            "{} cannot be read now: {e}; create it (or copy a saved folder there) before searching",
            path.display()
        ))
        }
    };
    if !meta.is_dir() {
        return None;
    }
    if path.join(FEED_FILE_NAME).is_file() {
        return None;
    }
    let has_wim = std::fs::read_dir(path).ok().is_some_and(|entries| {
        entries.flatten().any(|e| {
            let p = e.path();
            p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wim"))
                || (p.is_dir()
                    && std::fs::read_dir(&p).ok().is_some_and(|inner| {
                        inner.flatten().any(|i| {
                            i.path()
                                .extension()
                                .is_some_and(|x| x.eq_ignore_ascii_case("wim"))
                        })
                    }))
        })
    });
    if has_wim {
        return None;
    }
    Some(format!(
        "{} holds neither {FEED_FILE_NAME} nor .wim files, so it offers no image yet",
        path.display()
    ))
}

/// An HTML document rather than a feed: `<!DOCTYPE html` or `<html` first.
fn looks_like_html(body: &[u8]) -> bool {
    let head = body.get(..body.len().min(512)).unwrap_or_default();
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with("<!doctype html") || text.starts_with("<html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_pages_are_told_from_feeds() {
        assert!(looks_like_html(
            b"<!DOCTYPE html><html><body>index</body></html>"
        ));
        assert!(looks_like_html(b"\n  <HTML><head>"));
        assert!(!looks_like_html(
            b"<?xml version=\"1.0\"?><ContainerImageFeed/>"
        ));
    }
}
