//! Registry references as docker writes them:
//! `host[:port]/path[:tag]`, `host[:port]/path@sha256:<hex>` (or both).
//!
//! The first part must be a registry host (it holds `.` or `:`, or is
//! `localhost`): this tool has no default registry, so `nanoserver` or
//! `microsoft/nanoserver` (which docker reads as Docker Hub's) are refused
//! with a message that says how to write them.

use crate::oci::spec;
use crate::store::Tag;

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a registry reference: {reason}")]
pub struct ReferenceError {
    pub text: String,
    pub reason: String,
}

/// A parsed registry reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    /// The repository inside the registry (`windows/nanoserver`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The first part of a name is a registry host when it holds `.` or `:` or
/// is `localhost` (docker's rule).
pub fn is_host(part: &str) -> bool {
    part.contains('.') || part.contains(':') || part == "localhost"
}

/// Checks `host[:port]` (a name, an IPv4 address or a bracketed IPv6 address).
pub fn check_registry(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix(':')),
            None => return Err(format!("'{host}' is not a registry host")),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !name.starts_with(['-', '.']);
    if !name_ok {
        return Err(format!("'{host}' is not a registry host"));
    }
    if let Some(p) = port {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(format!("'{host}' has a bad port"));
        }
    }
    Ok(())
}

impl Reference {
    /// Reads a reference; `tag` defaults to nothing (the caller decides
    /// whether `latest` is meant).
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason: String| ReferenceError {
            text: text.to_string(),
            reason,
        };
        if text.len() > 512 {
            return Err(bad("it is longer than 512 characters".into()));
        }
        if text.contains("://") {
            return Err(bad(
                "write the registry without a scheme (host[:port]/repository[:tag])".into(),
            ));
        }
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => {
                if spec::sha256_hex(d).is_none() {
                    return Err(bad(format!(
                        "'{d}' is not a digest; write @sha256: and 64 lower-case hex digits"
                    )));
                }
                (n, Some(d.to_string()))
            }
            None => (text, None),
        };
        let (host, rest) = match name.split_once('/') {
            Some((h, r)) if is_host(h) => (h, r),
            _ => {
                let hub = if name.contains('/') {
                    name.to_string()
                } else {
                    format!("library/{name}")
                };
                return Err(bad(format!(
                    "it names no registry host, and this tool has no default registry \
                     (docker would read it as docker.io/{hub}); write the registry, \
                     e.g. docker.io/{hub} or mcr.microsoft.com/windows/nanoserver"
                )));
            }
        };
        check_registry(host).map_err(bad)?;
        // The repository and tag follow the store's tag rules.
        let with_host = format!("{host}/{rest}");
        let has_tag = rest
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        let tag = Tag::parse(&with_host).map_err(|e| bad(e.reason))?;
        let repository = tag
            .repository
            .strip_prefix(&format!("{host}/"))
            .unwrap_or_default()
            .to_string();
        if repository.is_empty() {
            return Err(bad("the repository is empty".into()));
        }
        Ok(Reference {
            registry: host.to_string(),
            repository,
            tag: has_tag.then_some(tag.tag),
            digest,
        })
    }

    /// What the registry is asked for: the digest when given, else the tag
    /// (`latest` when none).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(crate::store::DEFAULT_TAG)
    }

    /// The store tag this reference names, when it names a tag (or nothing
    /// at all: `latest`). A reference by digest alone gives none.
    pub fn store_tag(&self) -> Option<Tag> {
        if self.digest.is_some() && self.tag.is_none() {
            return None;
        }
        Some(Tag {
            repository: format!("{}/{}", self.registry, self.repository),
            tag: self
                .tag
                .clone()
                .unwrap_or_else(|| crate::store::DEFAULT_TAG.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_docker_writes_them() {
        let r = Reference::parse("mcr.microsoft.com/windows/nanoserver:ltsc2022").expect("ok");
        assert_eq!(r.registry, "mcr.microsoft.com");
        assert_eq!(r.repository, "windows/nanoserver");
        assert_eq!(r.tag.as_deref(), Some("ltsc2022"));
        assert_eq!(r.manifest_reference(), "ltsc2022");

        let r = Reference::parse("127.0.0.1:5000/nano").expect("ok");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(
            r.store_tag().map(|t| t.to_string()).as_deref(),
            Some("127.0.0.1:5000/nano:latest")
        );

        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/a/b@{d}")).expect("ok");
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.store_tag(), None);
        let r = Reference::parse(&format!("localhost/a:1@{d}")).expect("ok");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.manifest_reference(), d);
    }

    #[test]
    fn a_name_without_a_registry_says_there_is_no_default() {
        let e = Reference::parse("nanoserver").expect_err("no host");
        assert!(e.reason.contains("no default registry"), "{e}");
        assert!(e.reason.contains("docker.io/library/nanoserver"), "{e}");
        let e = Reference::parse("microsoft/nanoserver:1").expect_err("no host");
        assert!(e.reason.contains("docker.io/microsoft/nanoserver:1"), "{e}");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "https://host.example/a",
            "host.example/A",
            "host.example/a@sha256:12",
            "host.example:99999/a",
            "host.example/a:-x",
            "host.example/",
            "bad_host.example/a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
