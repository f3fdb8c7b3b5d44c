//! Naming an installed image: by FullName, by Id or a unique Id prefix of at
//! least 4 hex digits, or by `repository[:tag]` (tag `latest` when left out).

use super::tags::{Tag, Tags};
use super::{ImageRecord, StoreError};

/// The shortest Id prefix accepted.
pub const MIN_ID_PREFIX: usize = 4;

/// The installed image `reference` names. A FullName wins, then a whole Id,
/// then a tag, then a unique Id prefix (as docker tries a name before an Id
/// prefix).
pub fn resolve<'a>(
    images: &'a [ImageRecord],
    tags: &Tags,
    reference: &str,
) -> Result<&'a ImageRecord, StoreError> {
    let not_found = || StoreError::UnknownReference {
        reference: reference.to_string(),
    };
    if let Some(r) = images
        .iter()
        .find(|r| r.full_name.eq_ignore_ascii_case(reference))
    {
        return Ok(r);
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let is_hex = hex.len() >= MIN_ID_PREFIX && hex.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        if let Some(r) = images.iter().find(|r| r.id.eq_ignore_ascii_case(hex)) {
            return Ok(r);
        }
    }
    if let Ok(tag) = Tag::parse(reference) {
        if let Some(full_name) = tags.image_of(&tag) {
            if let Some(r) = images.iter().find(|r| r.full_name == full_name) {
                return Ok(r);
            }
        }
    }
    if is_hex {
        let lower = hex.to_ascii_lowercase();
        let matching: Vec<&ImageRecord> = images
            .iter()
            .filter(|r| r.id.to_ascii_lowercase().starts_with(&lower))
            .collect();
        match matching.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                return Err(StoreError::AmbiguousReference {
                    reference: reference.to_string(),
                    candidates: many.iter().map(|r| r.full_name.clone()).collect(),
                })
            }
        }
    }
    Err(not_found())
}
