//! Registry authentication: credentials (never shown), `WWW-Authenticate`
//! challenges, and bearer tokens from a registry's token service.

use std::fmt;

use base64::Engine;

/// A user's credentials for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
}

/// What a user authenticates with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    /// A refresh token (`identitytoken` in Docker's file), exchanged at the
    /// token service for access tokens.
    IdentityToken(String),
}

impl Secret {
    /// The secret's text, for the places it must be sent or stored.
    pub fn expose(&self) -> &str {
        match self {
            Secret::Password(s) | Secret::IdentityToken(s) => s,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.secret {
            Secret::Password(_) => "password",
            Secret::IdentityToken(_) => "identity token",
        };
        write!(f, "Credentials({}, {kind} hidden)", self.username)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl Credentials {
    /// `Basic base64(user:password)`, or `None` for an identity token
    /// (which is only ever sent to the token service).
    pub fn basic_header(&self) -> Option<String> {
        match &self.secret {
            Secret::Password(p) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", self.username, p))
            )),
            Secret::IdentityToken(_) => None,
        }
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Reads a `WWW-Authenticate` value: a scheme and `key="value"` pairs.
/// `None` for a scheme this client does not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `a="x, y",b=z` → pairs; quoted values may hold commas and `\"`.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// The token service's answer.
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub(crate) fn bearer(&self) -> Option<&str> {
        self.token
            .as_deref()
            .or(self.access_token.as_deref())
            .filter(|t| !t.is_empty())
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenResponse(hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="r""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Credentials {
            username: "user".into(),
            secret: Secret::Password("hunter2".into()),
        };
        let text = format!("{c:?} {:?}", c.secret);
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(c.basic_header().as_deref(), Some("Basic dXNlcjpodW50ZXIy"));
    }
}
