//! minisign signatures of feed documents: the public key pinned to a
//! source, checking a feed against it, and signing the feeds this tool
//! writes.
//!
//! A feed's signature is the file `<feed>.minisig` beside it, in minisign's
//! format, so the `minisign` tool can make and check them too. Both kinds
//! that `minisign -V` accepts by default are accepted: prehashed signatures
//! (algorithm `ED`, what `minisign -S` and this tool make) and legacy ones
//! (`Ed`, `minisign -S -l`). The cryptography is the `minisign-verify` and
//! `minisign` crates'; this module only reads the files and explains failures.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::fsutil::write_atomic;

/// What a feed's signature file name adds to the feed's.
pub const SIGNATURE_SUFFIX: &str = ".minisig";
/// The largest signature read. A minisign signature is two comment lines
/// and two short base64 lines, a few hundred bytes.
pub const MAX_SIGNATURE_BYTES: u64 = 16 << 10;
/// The largest public or secret key file read (a few hundred bytes).
const MAX_KEY_FILE_BYTES: u64 = 16 << 10;

/// minisign's algorithm tags (the first two bytes of keys and signatures).
const ALG_LEGACY: &[u8; 2] = b"Ed";
const ALG_PREHASHED: &[u8; 2] = b"ED";
/// The key derivation tag of a secret key stored without a password
/// (`minisign -G -W`); `Sc` (scrypt) means the key is encrypted.
const KDF_NONE: [u8; 2] = [0, 0];
/// The key checksum that ends a secret key.
const CHECKSUM_BYTES: usize = 32;

/// Why a public key is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "'{0}' is neither a minisign public key (the base64 line that starts with RW, as in a \
         minisign.pub file) nor a file that holds one"
    )]
    NotAKey(String),
    #[error("{path} does not hold a minisign public key: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("cannot read the public key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a feed's signature does not let the feed be used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("there is no signature at {location}")]
    Missing { location: String },
    #[error("the signature {location} is damaged: {reason}")]
    Damaged { location: String, reason: String },
    #[error(
        "the signature {location} was made with the key ID {signed_by}, not with the pinned key ID {pinned}"
    )]
    ForeignKey {
        location: String,
        signed_by: String,
        pinned: String,
    },
    #[error(
        "the signature {location} does not match the feed: it was made for other bytes (an older \
         or another feed), or the feed or the signature's trusted comment was changed after signing"
    )]
    Mismatch { location: String },
    #[error("cannot fetch the signature {location}: {reason}")]
    Fetch { location: String, reason: String },
    #[error(
        "{folder} has no feed.xml, so there is no signed feed to check (its .wim files alone \
         cannot be verified)"
    )]
    NoFeedFile { folder: String },
    #[error("cannot read the signature {location}")]
    Read {
        location: String,
        #[source]
        source: io::Error,
    },
    #[error("the signature {location} is larger than {MAX_SIGNATURE_BYTES} bytes, too large to be a minisign signature")]
    TooLarge { location: String },
}

/// Why a feed cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read the secret key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a minisign secret key: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("cannot get the password of the secret key {path}: {reason}")]
    NoPassword { path: PathBuf, reason: String },
    #[error("cannot open the secret key {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("cannot sign with the secret key {path}: {reason}")]
    Sign { path: PathBuf, reason: String },
    #[error("cannot write the signature {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A minisign public key pinned to a source.
#[derive(Clone, Debug)]
pub struct PinnedKey {
    base64: String,
    key: minisign_verify::PublicKey,
    id: String,
}

impl PinnedKey {
    /// The key in the form a minisign `.pub` file's second line has
    /// (`RWQ…`), as the configuration stores it.
    pub fn from_base64(text: &str) -> Option<PinnedKey> {
        let t = text.trim();
        let key = minisign_verify::PublicKey::from_base64(t).ok()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
        let id = key_id_of(&bytes)?;
        Some(PinnedKey {
            base64: t.to_string(),
            key,
            id,
        })
    }

    /// A `-PublicKey` value: the base64 key itself, or a file that holds
    /// it (a minisign `.pub` file: an untrusted comment line, then the key).
    pub fn from_argument(text: &str) -> Result<PinnedKey, KeyError> {
        if let Some(key) = PinnedKey::from_base64(text) {
            return Ok(key);
        }
        let path = Path::new(text);
        if !path.exists() {
            return Err(KeyError::NotAKey(text.to_string()));
        }
        let bytes = read_small_file(path, MAX_KEY_FILE_BYTES).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: &str| KeyError::BadKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("it is not text"))?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter(|l| !l.starts_with("untrusted comment:"))
            .collect();
        match lines.as_slice() {
            [line] => PinnedKey::from_base64(line).ok_or_else(|| {
                let decoded_len = base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .map(|b| b.len())
                    .unwrap_or(0);
                if decoded_len > 42 {
                    bad("it is a secret key or a signature, not a public key")
                } else {
                    bad("its key line is not a minisign public key (a base64 line that starts with RW)")
                }
            }),
            [] => Err(bad("it holds no key line")),
            _ => Err(bad(
                "it holds more than one line besides the untrusted comment",
            )),
        }
    }

    /// The key as stored in the configuration.
    pub fn as_base64(&self) -> &str {
        &self.base64
    }

    /// The key ID as minisign shows it: upper-case hex digits, no leading zeros.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks `signature` (the text of a `.minisig` file read from
    /// `location`) against `feed`, the exact bytes that will be used.
    pub fn verify(
        &self,
        feed: &[u8],
        signature: &[u8],
        location: &str,
    ) -> Result<Verified, SignatureError> {
        let damaged = |reason: &str| SignatureError::Damaged {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        let text = std::str::from_utf8(signature).map_err(|_| damaged("it is not text"))?;
        let parsed = minisign_verify::Signature::decode(text).map_err(|e| match e {
            minisign_verify::Error::UnsupportedAlgorithm => {
                damaged("it names a signature algorithm minisign does not have")
            }
            _ => damaged("it is not in minisign's four-line format"),
        })?;
        let signed_by = text
            .lines()
            .nth(1)
            .and_then(|l| {
                base64::engine::general_purpose::STANDARD
                    .decode(l.trim())
                    .ok()
            })
            .and_then(|b| key_id_of(&b))
            .unwrap_or_default();
        let prehashed = text
            .lines()
            .nth(1)
            .and_then(|l| {
                base64::engine::general_purpose::STANDARD
                    .decode(l.trim())
                    .ok()
            })
            .is_some_and(|b| b.get(..2) == Some(ALG_PREHASHED.as_slice()));
        // Legacy signatures are accepted, as `minisign -V` accepts them.
        match self.key.verify(feed, &parsed, true) {
            Ok(()) => Ok(Verified {
                trusted_comment: parsed.trusted_comment().to_string(),
                prehashed,
            }),
            Err(minisign_verify::Error::UnexpectedKeyId) => Err(SignatureError::ForeignKey {
                location: location.to_string(),
                signed_by,
                pinned: self.id.clone(),
            }),
            Err(_) => Err(SignatureError::Mismatch {
                location: location.to_string(),
            }),
        }
    }
}

/// A signature that verified.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The signed comment (minisign's "trusted comment"), as signed.
    pub trusted_comment: String,
    /// Whether it is a prehashed (`ED`) signature rather than a legacy one.
    pub prehashed: bool,
}

/// minisign's key ID of a decoded key or signature (bytes 2..10, a
/// little-endian number shown as hex), when the algorithm tag is one of
/// minisign's.
fn key_id_of(bytes: &[u8]) -> Option<String> {
    let alg = bytes.get(..2)?;
    if alg != ALG_LEGACY.as_slice() && alg != ALG_PREHASHED.as_slice() {
        return None;
    }
    let id: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
    Some(format!("{:X}", u64::from_le_bytes(id)))
}

/// The signature file of the feed document at `feed`.
pub fn signature_path(feed: &Path) -> PathBuf {
    let mut name = feed.as_os_str().to_os_string();
    name.push(SIGNATURE_SUFFIX);
    PathBuf::from(name)
}

/// Reads a local signature file: a regular file of at most
/// [`MAX_SIGNATURE_BYTES`].
pub fn read_signature_file(path: &Path) -> Result<Vec<u8>, SignatureError> {
    let location = path.display().to_string();
    read_small_file(path, MAX_SIGNATURE_BYTES).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SignatureError::Missing { location },
        io::ErrorKind::FileTooLarge => SignatureError::TooLarge { location },
        _ => SignatureError::Read { location, source },
    })
}

/// A regular local file (never a device or FIFO) of at most `limit` bytes.
fn read_small_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (file, meta) = crate::location::open_local_file(path)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("it is larger than {limit} bytes"),
        )
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A minisign secret key, opened, to sign feeds with.
pub struct SigningKey {
    secret: minisign::SecretKey,
    path: PathBuf,
    id: String,
}

impl SigningKey {
    /// Opens the secret key file at `path`. A key stored without a
    /// password (`minisign -G -W`) opens as it is; for an encrypted one
    /// `password` is asked for the password.
    pub fn open(
        path: &Path,
        password: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<SigningKey, SigningError> {
        let bytes =
            read_small_file(path, MAX_KEY_FILE_BYTES).map_err(|source| SigningError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let bad = |reason: &str| SigningError::BadKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let text = String::from_utf8(bytes).map_err(|_| bad("it is not text"))?;
        let key_line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| bad("it holds no key line"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key_line)
            .map_err(|_| bad("its key line is not base64"))?;
        if raw.get(..2) != Some(ALG_LEGACY.as_slice()) {
            return Err(bad(
                "its key line does not start with Ed; is it a public key or a signature?",
            ));
        }
        let encrypted = raw.get(2..4).is_some_and(|kdf| kdf != KDF_NONE);
        let boxed = minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(&e.to_string()))?;
        let open_err = |e: minisign::PError| SigningError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let secret = if encrypted {
            let pw = password().map_err(|reason| SigningError::NoPassword {
                path: path.to_path_buf(),
                reason,
            })?;
            // Given a password, the crate never prompts on its own.
            minisign::SecretKey::from_box(boxed, Some(pw)).map_err(open_err)?
        } else if raw.iter().rev().take(CHECKSUM_BYTES).all(|&b| b == 0) {
            // `minisign -G -W` leaves the checksum of a key without a
            // password empty; the crate's own loader calls that corrupt.
            // Damage is still caught: every signature is checked against
            // the key's public half before it is written (see `sign`).
            minisign::SecretKey::from_bytes(&raw).map_err(open_err)?
        } else {
            minisign::SecretKey::from_unencrypted_box(boxed).map_err(open_err)?
        };
        let mut id_bytes = [0u8; 8];
        if let Some(k) = secret.keynum().get(..8) {
            id_bytes.copy_from_slice(k);
        }
        Ok(SigningKey {
            secret,
            path: path.to_path_buf(),
            id: format!("{:X}", u64::from_le_bytes(id_bytes)),
        })
    }

    /// The key ID, as minisign shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A prehashed signature of `bytes`, the text of a `.minisig` file.
    /// The trusted comment records when and which file was signed, in the
    /// form `minisign -S` writes it.
    pub fn sign(&self, bytes: &[u8], file_name: &str) -> Result<String, SigningError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let file_name: String = file_name
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        let trusted = format!("timestamp:{now}\tfile:{file_name}\thashed");
        let untrusted = format!("signature from containerimage, key ID {}", self.id);
        let sign_err = |e: minisign::PError| SigningError::Sign {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        // Given the public half, the crate checks the signature it made
        // with it, so a damaged key never writes a signature that fails.
        let public = minisign::PublicKey::from_secret_key(&self.secret).map_err(sign_err)?;
        let signature = minisign::sign(
            Some(&public),
            &self.secret,
            bytes,
            Some(&trusted),
            Some(&untrusted),
        )
        .map_err(sign_err)?;
        Ok(signature.into_string())
    }

    /// Signs `bytes`, the content just written to the feed file `feed`,
    /// and writes the signature beside it (replacing it atomically).
    pub fn sign_file(&self, feed: &Path, bytes: &[u8]) -> Result<PathBuf, SigningError> {
        let name = feed
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let signature = self.sign(bytes, &name)?;
        let path = signature_path(feed);
        write_atomic(&path, signature.as_bytes()).map_err(|source| SigningError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// `text` with tabs as spaces and other control characters shown as
/// escapes, for a terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c == '\t' {
                vec![' ']
            } else if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unencrypted_key(dir: &Path) -> (SigningKey, PinnedKey) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().expect("keypair");
        let sk_path = dir.join("test.key");
        let sk_box = pair.sk.to_box(None).expect("box");
        std::fs::write(&sk_path, sk_box.into_string()).expect("write key");
        let pk_path = dir.join("test.pub");
        std::fs::write(&pk_path, pair.pk.to_box().expect("pk box").into_string()).expect("pub");
        let sk = SigningKey::open(&sk_path, &mut || Err("no password expected".into()))
            .expect("open key");
        let pk = PinnedKey::from_argument(&pk_path.display().to_string()).expect("pub key");
        (sk, pk)
    }

    #[test]
    fn signs_and_verifies_and_tells_failures_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sk, pk) = unencrypted_key(dir.path());
        assert_eq!(sk.id(), pk.id());
        let feed = b"<ContainerImageFeed/>\n";
        let sig = sk.sign(feed, "feed.xml").expect("sign");
        let ok = pk.verify(feed, sig.as_bytes(), "sig").expect("verifies");
        assert!(ok.prehashed);
        assert!(
            ok.trusted_comment.contains("file:feed.xml"),
            "{}",
            ok.trusted_comment
        );

        assert!(matches!(
            pk.verify(b"<other/>", sig.as_bytes(), "sig"),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            pk.verify(feed, b"garbage", "sig"),
            Err(SignatureError::Damaged { .. })
        ));
        let other_dir = tempfile::tempdir().expect("tempdir");
        let (other_sk, _) = unencrypted_key(other_dir.path());
        let foreign = other_sk.sign(feed, "feed.xml").expect("sign");
        match pk.verify(feed, foreign.as_bytes(), "sig") {
            Err(SignatureError::ForeignKey {
                signed_by, pinned, ..
            }) => {
                assert_eq!(signed_by, other_sk.id());
                assert_eq!(pinned, pk.id());
            }
            other => panic!("expected a foreign-key error, got {other:?}"),
        }
        // A changed trusted comment breaks the global signature.
        let tampered = sig.replace("timestamp:", "timestamp:1");
        assert!(matches!(
            pk.verify(feed, tampered.as_bytes(), "sig"),
            Err(SignatureError::Mismatch { .. })
        ));
    }

    #[test]
    fn public_key_arguments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, pk) = unencrypted_key(dir.path());
        let same = PinnedKey::from_argument(pk.as_base64()).expect("base64 form");
        assert_eq!(same.id(), pk.id());
        assert!(matches!(
            PinnedKey::from_argument("not-a-key"),
            Err(KeyError::NotAKey(_))
        ));
        let secret = dir.path().join("test.key").display().to_string();
        assert!(matches!(
            PinnedKey::from_argument(&secret),
            Err(KeyError::BadKeyFile { .. })
        ));
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("a\tb\u{1b}[2J"), "a b\\u{1b}[2J");
    }
}
