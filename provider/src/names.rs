//! The one rule for image names and publishers, wherever they come from: a
//! feed, a piped object, a command line or a store record.
//!
//! A name becomes part of file and folder names (`<Name>-<version>.wim` in a
//! save folder, `<Publisher>_<Name>_<Version>` in the store) and must read
//! back as it was written, on Linux and on Windows alike. So it is one
//! portable path component: not empty, at most [`MAX_NAME_BYTES`] bytes, no
//! leading or trailing space, no leading or trailing dot, none of
//! `/ \ : * ? " < > |`, no control character, not a name Windows reserves
//! (`CON`, `NUL`, `COM1`, …). A publisher follows the same rule after its
//! `CN=` and may not hold `_`, the separator of FullNames: then
//! `<Publisher>_<Name>_<Version>` splits one way only (at the first `_`
//! and the last), and two different images never share a FullName.

/// The longest image name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest publisher (with its `CN=`), in bytes.
pub const MAX_PUBLISHER_BYTES: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{shown}' cannot be used as an image {field}: {reason}")]
pub struct NameError {
    pub field: &'static str,
    /// The name with control characters escaped.
    pub shown: String,
    pub reason: String,
}

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn check_component(field: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    let bad = |reason: String| {
        Err(NameError {
            field,
            shown: value.escape_debug().to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("it is empty".into());
    }
    if value.len() > max {
        return bad(format!("it is longer than {max} bytes"));
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return bad("it starts or ends with a space".into());
    }
    if value.starts_with('.') || value.ends_with('.') {
        return bad("it starts or ends with a dot".into());
    }
    if let Some(c) = value.chars().find(|c| {
        c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
    }) {
        return bad(format!(
            "it contains {:?}; names may not hold / \\ : * ? \" < > | or control characters",
            c
        ));
    }
    let stem = value.split('.').next().unwrap_or(value);
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return bad(format!("{stem} is a device name on Windows"));
    }
    Ok(())
}

/// Checks an image name (`NanoServer`).
pub fn check_name(name: &str) -> Result<(), NameError> {
    check_component("name", name, MAX_NAME_BYTES)
}

/// Checks a publisher in its stored form (`CN=Microsoft`).
pub fn check_publisher(publisher: &str) -> Result<(), NameError> {
    let shown = || publisher.escape_debug().to_string();
    let Some(rest) = publisher.strip_prefix("CN=") else {
        return Err(NameError {
            field: "publisher",
            shown: shown(),
            reason: "it does not start with CN=".into(),
        });
    };
    if rest.is_empty() {
        return Err(NameError {
            field: "publisher",
            shown: shown(),
            reason: "nothing follows CN=; give a name, e.g. -Publisher Demo".into(),
        });
    }
    if publisher.contains('_') {
        return Err(NameError {
            field: "publisher",
            shown: shown(),
            reason: "it contains '_', which separates the parts of a FullName".into(),
        });
    }
    check_component("publisher", publisher, MAX_PUBLISHER_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_names() {
        for good in ["NanoServer", "Windows Server Core", "my_app", "a.b", "ÄÖ-1"] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "", ".", "..", ".hidden", "dot.", " lead", "trail ", "tab\t", "we*ird\"", "a/b",
            "a\\b", "c:", "a\0b", "nul", "COM1.wim", "x\u{7f}",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(check_name(&"n".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(check_name(&"n".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn publishers_cannot_make_two_images_share_a_full_name() {
        assert_eq!(check_publisher("CN=Microsoft"), Ok(()));
        assert!(
            check_publisher("CN=A_B").is_err(),
            "A_B + C would equal A + B_C"
        );
        let e = check_publisher("CN=").expect_err("empty after CN=");
        assert!(e.to_string().contains("nothing follows CN="), "{e}");
        assert!(check_publisher("Microsoft").is_err());
        assert!(check_publisher("CN=..").is_err());
    }
}
