//! The original provider's JSON index: an array of
//! `{"Name", "Version", "Description", "SasToken"}` where `SasToken` is the
//! download URL. It has no size and no hash.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lines::LineCounter;
use super::{FeedError, FeedRecord};
use crate::names::check_name;

/// One index entry as written. Property names are matched as PowerShell's
/// `ConvertFrom-Json` users wrote them: PascalCase, or all lower case.
#[derive(Deserialize)]
struct WireEntry {
    #[serde(rename = "Name", alias = "name")]
    name: Option<String>,
    #[serde(rename = "Version", alias = "version")]
    version: Option<String>,
    #[serde(rename = "Description", alias = "description")]
    description: Option<String>,
    #[serde(rename = "SasToken", alias = "sasToken", alias = "sastoken")]
    sas_token: Option<String>,
}

/// Reads the index, handing each entry to `each` as a validated record as
/// soon as it is read: the array is walked element by element, never
/// collected.
pub(super) fn parse(
    text: &str,
    feed: &str,
    each: &mut dyn FnMut(FeedRecord) -> Result<(), FeedError>,
) -> Result<(), FeedError> {
    let syntax = |line, message: String| FeedError::Syntax {
        feed: feed.to_string(),
        line,
        message,
    };
    let mut walker = Walker {
        text,
        feed,
        lines: LineCounter::new(text.as_bytes()),
        each,
        failure: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = serde::Deserializer::deserialize_seq(&mut de, &mut walker).and_then(|()| de.end());
    // A record's own problem comes first: the JSON error is only its echo.
    if let Some(failure) = walker.failure {
        return Err(failure);
    }
    walked.map_err(|e| syntax(e.line(), e.to_string()))
}

/// Visits the top-level array one element at a time.
struct Walker<'t, 'e> {
    text: &'t str,
    feed: &'t str,
    lines: LineCounter<'t>,
    each: &'e mut dyn FnMut(FeedRecord) -> Result<(), FeedError>,
    /// The error that stopped the walk, when it was not a JSON syntax error.
    failure: Option<FeedError>,
}

impl Walker<'_, '_> {
    fn entry(&mut self, item: &RawValue) -> Result<(), FeedError> {
        // Every item is a slice of `text`: its offset gives its line.
        let start = (item.get().as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        let line = self.lines.line_at(start);
        let wire: WireEntry = serde_json::from_str(item.get()).map_err(|e| FeedError::Syntax {
            feed: self.feed.to_string(),
            line: line + e.line().saturating_sub(1),
            message: e.to_string(),
        })?;
        (self.each)(validate(wire, line, self.feed)?)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Walker<'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of images")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if let Err(e) = self.entry(item) {
                self.failure = Some(e);
                return Err(serde::de::Error::custom("stopped at an invalid entry"));
            }
        }
        Ok(())
    }
}

fn validate(w: WireEntry, line: usize, feed: &str) -> Result<FeedRecord, FeedError> {
    let missing = |field| FeedError::Missing {
        feed: feed.to_string(),
        line,
        field,
    };
    let bad = |field, problem: String| FeedError::Field {
        feed: feed.to_string(),
        line,
        field,
        problem,
    };
    let name = w
        .name
        .as_deref()
        .map(str::trim)
        .ok_or_else(|| missing("Name"))?;
    check_name(name).map_err(|e| bad("Name", e.to_string()))?;
    let version = w
        .version
        .as_deref()
        .ok_or_else(|| missing("Version"))?
        .trim()
        .parse()
        .map_err(|e: crate::version::VersionError| bad("Version", e.to_string()))?;
    let location = w
        .sas_token
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("SasToken"))?;
    Ok(FeedRecord {
        name: name.to_string(),
        version,
        publisher: None,
        description: w
            .description
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        architecture: None,
        size: None,
        sha256: None,
        locations: vec![location.to_string()],
        line,
    })
}
