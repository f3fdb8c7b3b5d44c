//! The original provider's JSON index: an array of
//! `{"Name", "Version", "Description", "SasToken"}` where `SasToken` is the
//! download URL. It has no size and no hash.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lines::LineCounter;
use super::{check_image_name, FeedError, FeedRecord};

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

pub(super) fn parse(text: &str, feed: &str) -> Result<Vec<FeedRecord>, FeedError> {
    let syntax = |line, message: String| FeedError::Syntax {
        feed: feed.to_string(),
        line,
        message,
    };
    let items: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|e| syntax(e.line(), e.to_string()))?;
    let mut lines = LineCounter::new(text.as_bytes());
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        // Every item is a slice of `text`: its offset gives its line.
        let start = (item.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let line = lines.line_at(start);
        let wire: WireEntry = serde_json::from_str(item.get())
            .map_err(|e| syntax(line + e.line().saturating_sub(1), e.to_string()))?;
        records.push(validate(wire, line, feed)?);
    }
    Ok(records)
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
    check_image_name(name).map_err(|p| bad("Name", p))?;
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
