//! Windows four-part numeric versions (`10.0.14300.1010`).
//!
//! Missing parts count as 0 and every part compares as an unsigned integer,
//! so `10.0.14300.1010 > 10.0.14300.999` and `1.0 == 1.0.0.0`. This is not
//! semver: there are no pre-release tags.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A version as written (kept for display) with its numeric value.
#[derive(Clone, Debug)]
pub struct Version {
    parts: [u32; 4],
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a version: expected one to four numbers separated by dots, like 10.0.14300.1010")]
pub struct VersionError {
    pub text: String,
}

impl Version {
    /// Builds a version from its four numeric parts.
    pub fn from_parts(parts: [u32; 4]) -> Self {
        Version {
            parts,
            text: format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[3]),
        }
    }

    pub fn parts(&self) -> [u32; 4] {
        self.parts
    }

    /// The version as it was written.
    pub fn as_written(&self) -> &str {
        &self.text
    }

    /// The normalised four-part form the store records (`1.0` → `1.0.0.0`).
    pub fn four_part(&self) -> String {
        let p = self.parts;
        format!("{}.{}.{}.{}", p[0], p[1], p[2], p[3])
    }

    /// The form used in saved file names: dots as dashes (`10-0-14300-1010`).
    pub fn dashed(&self) -> String {
        self.text.replace('.', "-")
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let err = || VersionError {
            text: s.to_string(),
        };
        let mut parts = [0u32; 4];
        for (i, piece) in text.split('.').enumerate() {
            let slot = parts.get_mut(i).ok_or_else(err)?;
            if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            *slot = piece.parse().map_err(|_| err())?;
        }
        Ok(Version {
            parts,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect(s)
    }

    #[test]
    fn numeric_comparison_per_part() {
        assert!(v("10.0.14300.1010") > v("10.0.14300.999"));
        assert!(v("10.0.14393.0") > v("10.0.14300.1010"));
        assert_eq!(v("1.0"), v("1.0.0.0"));
        assert!(v("2") > v("1.99.99.99"));
    }

    #[test]
    fn keeps_text_and_normalises() {
        assert_eq!(v("1.0").to_string(), "1.0");
        assert_eq!(v("1.0").four_part(), "1.0.0.0");
        assert_eq!(v("10.0.14300.1010").dashed(), "10-0-14300-1010");
    }

    #[test]
    fn rejects_non_versions() {
        for bad in [
            "",
            "1.",
            ".1",
            "1..2",
            "1.2.3.4.5",
            "v1",
            "1.-2",
            "1.2a",
            "99999999999",
        ] {
            assert!(
                bad.parse::<Version>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
