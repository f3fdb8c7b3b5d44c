//! Repository tags (`nanoserver:10.0.14300.1010`), as docker shows them.
//!
//! `<store>/tags.json` maps each tag to the FullName of the one image it
//! names; the file is replaced whole, so moving a tag from one image to
//! another is one atomic step. An image installed from a `.wim` or a feed is
//! tagged `<name>:<version>` (the name in lower case, see [`default_tag`]).
//! A store written before tags existed gets those default tags once, the
//! first time a command holds its lock; a damaged file is rebuilt the same
//! way, with a warning.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ImageRecord, StoreError};
use crate::fsutil::dir::Dir;
use crate::progress::Reporter;

pub(crate) const TAGS_FILE: &str = "tags.json";
const TAGS_FORMAT: u32 = 1;
const TAGS_LIMIT: u64 = 64 << 20;
/// The tag given when a reference names none (`nanoserver` is `nanoserver:latest`).
pub const DEFAULT_TAG: &str = "latest";

/// Why a tag or reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a valid image reference: {reason}")]
pub struct TagError {
    pub text: String,
    pub reason: String,
}

/// A repository and a tag, written `repository:tag`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    pub repository: String,
    pub tag: String,
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A path component of a repository: lower-case letters and digits, joined
/// by single `.`, `_`, `__` or runs of `-` (docker's rule).
fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("a part of the repository is empty".into());
    }
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "repository names must be lower case ('{}')",
            component.to_ascii_lowercase()
        ));
    }
    let chars: Vec<char> = component.chars().collect();
    if !chars.first().copied().is_some_and(is_alnum) || !chars.last().copied().is_some_and(is_alnum)
    {
        return Err(format!(
            "'{component}' must start and end with a lower-case letter or digit"
        ));
    }
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_alnum(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !is_alnum(chars[i]) {
            i += 1;
        }
        let sep: String = chars[start..i].iter().collect();
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return Err(format!(
                "'{sep}' cannot join words in '{component}'; use lower-case letters, digits, '.', '_' or '-'"
            ));
        }
    }
    Ok(())
}

/// The first part of a repository is a registry host when it holds `.` or
/// `:` or is `localhost`.
fn is_host(part: &str) -> bool {
    part.contains('.') || part.contains(':') || part == "localhost"
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(format!("'{host}' is not a registry host"));
    }
    if let Some(p) = port {
        if !p.chars().all(|c| c.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(format!("'{host}' has a bad port"));
        }
    }
    Ok(())
}

impl Tag {
    /// Reads `repository[:tag]` (tag `latest` when left out).
    pub fn parse(text: &str) -> Result<Tag, TagError> {
        let bad = |reason: String| TagError {
            text: text.to_string(),
            reason,
        };
        if text.len() > 255 {
            return Err(bad("it is longer than 255 characters".into()));
        }
        let last_slash = text.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match text[last_slash..].rfind(':') {
            Some(i) => (&text[..last_slash + i], &text[last_slash + i + 1..]),
            None => (text, DEFAULT_TAG),
        };
        if text.contains('@') {
            return Err(bad(
                "digests (@sha256:…) name registry content, not a tag".into()
            ));
        }
        let mut parts: Vec<&str> = repository.split('/').collect();
        if parts.len() > 1 && parts.first().is_some_and(|p| is_host(p)) {
            check_host(parts.remove(0)).map_err(bad)?;
        }
        for part in parts {
            check_component(part).map_err(bad)?;
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            return Err(bad(format!(
                "the tag '{tag}' must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            )));
        }
        Ok(Tag {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

/// `<name in lower case>:<version>`: the tag of an image installed from a
/// `.wim` or a feed. Characters a repository cannot hold become `-`.
pub fn default_tag(record: &ImageRecord) -> Tag {
    let mut repository = String::new();
    for c in record.name.chars() {
        let c = c.to_ascii_lowercase();
        if is_alnum(c) {
            repository.push(c);
        } else if !repository.ends_with('-') && !repository.is_empty() {
            repository.push('-');
        }
    }
    while repository.ends_with('-') {
        repository.pop();
    }
    if repository.is_empty() {
        repository.push_str("image");
    }
    Tag {
        repository,
        tag: record.version.clone(),
    }
}

/// Every tag and the FullName of the image it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags {
    map: BTreeMap<Tag, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagsFile {
    format: u32,
    tags: BTreeMap<String, String>,
}

impl Tags {
    /// The default tags of `images`, a later image winning a tag two share.
    pub(crate) fn defaults(images: &[ImageRecord]) -> Tags {
        let mut tags = Tags::default();
        for r in images {
            tags.set(default_tag(r), &r.full_name);
        }
        tags
    }

    /// Reads `<store>/tags.json`: `Ok(None)` when there is none, `Err` with
    /// the reason when it is damaged. Tags that do not parse are dropped.
    pub(crate) fn load(root: &Dir) -> Result<Option<Tags>, String> {
        let bytes = match root.read_limited(Path::new(TAGS_FILE), TAGS_LIMIT) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let file: TagsFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if file.format > TAGS_FORMAT {
            return Err(format!(
                "format {} is newer than this program understands",
                file.format
            ));
        }
        let map = file
            .tags
            .into_iter()
            .filter_map(|(t, full_name)| Tag::parse(&t).ok().map(|t| (t, full_name)))
            .collect();
        Ok(Some(Tags { map }))
    }

    /// The tags of the store as a reader sees them: the file, or the
    /// default tags when there is none yet (or it is damaged).
    pub(crate) fn load_or_defaults(root: &Dir, images: &[ImageRecord]) -> Tags {
        match Tags::load(root) {
            Ok(Some(t)) => t.only_of(images),
            _ => Tags::defaults(images),
        }
    }

    /// Under the lock: the file, made to agree with `images`; created with
    /// the default tags (and a warning when it was damaged) when needed.
    pub(crate) fn reconcile(
        root: &Dir,
        images: &[ImageRecord],
        reporter: &dyn Reporter,
    ) -> Result<Tags, StoreError> {
        let (loaded, save) = match Tags::load(root) {
            Ok(Some(t)) => {
                let kept = t.clone().only_of(images);
                let changed = kept != t;
                (kept, changed)
            }
            Ok(None) => (Tags::defaults(images), !images.is_empty()),
            Err(why) => {
                reporter.warn(&format!(
                    "the tag file {} is damaged ({why}); every image gets its default tag again",
                    root.display_path(Path::new(TAGS_FILE)).display()
                ));
                (Tags::defaults(images), true)
            }
        };
        if save {
            loaded.save(root)?;
        }
        Ok(loaded)
    }

    /// Only the tags naming one of `images`.
    fn only_of(mut self, images: &[ImageRecord]) -> Tags {
        self.map
            .retain(|_, full_name| images.iter().any(|r| &r.full_name == full_name));
        self
    }

    pub(crate) fn save(&self, root: &Dir) -> Result<(), StoreError> {
        let file = TagsFile {
            format: TAGS_FORMAT,
            tags: self
                .map
                .iter()
                .map(|(t, f)| (t.to_string(), f.clone()))
                .collect(),
        };
        super::save_json(root, TAGS_FILE, "write the tag file", &file)
    }

    /// Points `tag` at `full_name` (moving it from another image).
    pub(crate) fn set(&mut self, tag: Tag, full_name: &str) {
        self.map.insert(tag, full_name.to_string());
    }

    pub(crate) fn remove(&mut self, tag: &Tag) -> Option<String> {
        self.map.remove(tag)
    }

    pub(crate) fn remove_image(&mut self, full_name: &str) {
        self.map.retain(|_, f| f != full_name);
    }

    /// The FullName of the image `tag` names.
    pub fn image_of(&self, tag: &Tag) -> Option<&str> {
        self.map.get(tag).map(String::as_str)
    }

    /// The tags of an image, sorted.
    pub fn of(&self, full_name: &str) -> Vec<Tag> {
        self.map
            .iter()
            .filter(|(_, f)| f.as_str() == full_name)
            .map(|(t, _)| t.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Tag {
        Tag::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn references_parse_as_docker_reads_them() {
        assert_eq!(t("nanoserver").to_string(), "nanoserver:latest");
        assert_eq!(t("nanoserver:10.0.14300.1010").tag, "10.0.14300.1010");
        assert_eq!(
            t("127.0.0.1:5000/windows/nano:ltsc2022").repository,
            "127.0.0.1:5000/windows/nano"
        );
        assert_eq!(t("localhost:5000/nano").tag, "latest");
        assert_eq!(t("my_app__x/a-b--c.d").repository, "my_app__x/a-b--c.d");
        for bad in [
            "",
            "Nano",
            "nano:",
            "nano:.x",
            "a//b",
            "-a",
            "a-",
            "a...b",
            "nano@sha256:00",
            "x:y:z",
            "bad host:1/a",
            "h:99999/a",
            "a:b c",
        ] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn default_tags_are_lower_case_names_and_versions() {
        let record = |name: &str| ImageRecord {
            name: name.into(),
            publisher: "CN=Microsoft".into(),
            version: "10.0.14300.1010".into(),
            full_name: format!("CN=Microsoft_{name}_10.0.14300.1010"),
            id: String::new(),
            is_os_image: true,
            parent_image: None,
            size: 0,
            created: String::new(),
            utility_vm: false,
            install_token: String::new(),
            diff_id: None,
        };
        assert_eq!(
            default_tag(&record("NanoServer")).to_string(),
            "nanoserver:10.0.14300.1010"
        );
        assert_eq!(
            default_tag(&record("Windows Server Core")).repository,
            "windows-server-core"
        );
        assert_eq!(default_tag(&record("ÄÖ")).repository, "image");
        // The repository of every default tag parses.
        for name in [
            "NanoServer",
            "Windows Server Core",
            "a.b",
            "x__y",
            "ÄÖ",
            "-a-",
        ] {
            let tag = default_tag(&record(name));
            assert!(Tag::parse(&tag.to_string()).is_ok(), "{name}: {tag}");
        }
    }
}
