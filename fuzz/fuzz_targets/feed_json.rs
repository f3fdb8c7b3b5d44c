//! Any document to the JSON index reader (the original provider's format): entries or an error that
//! names the feed, never a panic or a hang; and a feed read over HTTP never
//! yields a location that is not an http(s) URL.
#![no_main]

use containerimage_provider::feed::{parse_entries, FeedBase};
use containerimage_provider::location::{Location, Url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // parse_entries tells the formats apart by the first character.
    let first = data
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(data)
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    if first != Some(b'[') {
        return;
    }
    let Ok(url) = Url::parse("http://feeds.test/dir/feed.xml") else {
        return;
    };
    match parse_entries(data, "fuzz-feed", &FeedBase::Http(url), "Web") {
        Ok(entries) => {
            for e in &entries {
                assert!(!e.locations.is_empty());
                for l in &e.locations {
                    assert!(
                        matches!(l, Location::Http(u) if matches!(u.scheme(), "http" | "https")),
                        "a remote feed yielded {l}"
                    );
                }
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz-feed"), "{e}"),
    }
    let base = FeedBase::Folder("/srv/feed".into());
    if let Err(e) = parse_entries(data, "fuzz-feed", &base, "Local") {
        assert!(e.to_string().contains("fuzz-feed"), "{e}");
    }
});
