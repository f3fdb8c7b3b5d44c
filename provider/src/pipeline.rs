//! Objects piped from one cmdlet into another: JSON Lines, one object per
//! line, as the cmdlets write them when standard output is not a terminal.
//!
//! Standard input is read as hostile input, with fixed bounds:
//!
//! - a line may hold at most [`MAX_LINE_BYTES`] (1 MiB); a longer one is an
//!   error naming its line number, found without holding the whole line;
//! - at most [`MAX_OBJECTS`] objects (100,000) and [`MAX_INPUT_BYTES`]
//!   (64 MiB) in all are read; more is an error, never a silent cut.
//!
//! Blank lines are skipped. Every other line must be one JSON object.

use std::io::{BufRead, ErrorKind};

use serde::Deserialize;

use crate::feed::FeedEntry;
use crate::location::Location;
use crate::version::Version;

/// The longest line read, in bytes (the newline not counted). A Find object
/// takes well under 1 KiB.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The most objects one pipeline may carry.
pub const MAX_OBJECTS: usize = 100_000;
/// The most bytes read from the pipeline in all, blank lines included.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// A piped object: its properties by name.
pub type PipelineObject = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read line {line} of standard input")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "line {line} of standard input is longer than {MAX_LINE_BYTES} bytes; \
         pipe the JSON objects another cmdlet writes, one per line"
    )]
    LineTooLong { line: usize },
    #[error("line {line} of standard input is not a JSON object from another cmdlet: {problem}")]
    NotAnObject { line: usize, problem: String },
    #[error("standard input holds more than {MAX_OBJECTS} objects; pipe fewer at a time")]
    TooManyObjects,
    #[error("standard input is larger than {MAX_INPUT_BYTES} bytes; pipe fewer objects at a time")]
    TooLarge,
}

/// Reads piped objects from any buffered reader, one at a time.
pub struct PipelineReader<R> {
    input: R,
    /// Lines read so far (the number of the last one).
    line: usize,
    objects: usize,
    bytes: u64,
    buf: Vec<u8>,
    /// An error was returned: nothing more is read.
    stopped: bool,
}

impl<R: BufRead> PipelineReader<R> {
    pub fn new(input: R) -> Self {
        PipelineReader {
            input,
            line: 0,
            objects: 0,
            bytes: 0,
            buf: Vec::new(),
            stopped: false,
        }
    }

    /// Reads the next line into `self.buf` (without its line ending).
    /// `Ok(false)` at the end of the input.
    fn next_line(&mut self) -> Result<bool, PipelineError> {
        self.buf.clear();
        let mut seen_any = false;
        self.line += 1;
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(PipelineError::Read {
                        line: self.line,
                        source,
                    })
                }
            };
            if available.is_empty() {
                return Ok(seen_any);
            }
            seen_any = true;
            let (piece, consumed, ended) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if self.buf.len() + piece.len() > MAX_LINE_BYTES + 1 {
                return Err(PipelineError::LineTooLong { line: self.line });
            }
            self.buf.extend_from_slice(piece);
            self.input.consume(consumed);
            self.bytes += consumed as u64;
            if self.bytes > MAX_INPUT_BYTES {
                return Err(PipelineError::TooLarge);
            }
            if ended {
                break;
            }
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(PipelineError::LineTooLong { line: self.line });
        }
        Ok(true)
    }

    fn next_object(&mut self) -> Option<Result<PipelineObject, PipelineError>> {
        loop {
            match self.next_line() {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.objects >= MAX_OBJECTS {
                return Some(Err(PipelineError::TooManyObjects));
            }
            self.objects += 1;
            let line = self.line;
            let bad = |problem: String| PipelineError::NotAnObject { line, problem };
            return Some(
                match serde_json::from_slice::<serde_json::Value>(&self.buf) {
                    Ok(serde_json::Value::Object(map)) => Ok(map),
                    Ok(other) => Err(bad(format!("it is {}", kind(&other)))),
                    Err(e) => Err(bad(e.to_string())),
                },
            );
        }
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl<R: BufRead> Iterator for PipelineReader<R> {
    type Item = Result<PipelineObject, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        let item = self.next_object();
        if matches!(item, Some(Err(_))) {
            self.stopped = true;
        }
        item
    }
}

/// Every object in `input`, or the first problem.
pub fn read_all<R: BufRead>(input: R) -> Result<Vec<PipelineObject>, PipelineError> {
    PipelineReader::new(input).collect()
}

/// A Find-ContainerImage object as it comes down the pipe: the wire form,
/// every property optional and unknown ones ignored. [`PipedImage::entry`]
/// and [`PipedImage::reference`] turn it into checked domain values.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PipedImage {
    name: Option<String>,
    version: Option<String>,
    source: Option<String>,
    publisher: Option<String>,
    description: Option<String>,
    architecture: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
    /// The first mirror, or (as older objects wrote it) all of them.
    location: Option<OneOrMany>,
    /// Every mirror, in the order they are tried.
    locations: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Why a piped object cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PipedObjectError {
    #[error("{0}")]
    Shape(String),
    #[error("it has no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(transparent)]
    Version(#[from] crate::version::VersionError),
    #[error("{name} {version} has no Location")]
    NoLocation { name: String, version: Version },
    #[error("{0}")]
    Location(#[from] crate::location::LocationError),
    #[error("Sha256 {0}")]
    Sha256(String),
}

/// What Install needs of a piped object: which image, from which source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipedReference {
    pub name: String,
    pub version: Version,
    /// The source the object came from, when it says.
    pub source: Option<String>,
}

impl PipedImage {
    /// Reads the wire form of one piped object.
    pub fn from_object(object: &serde_json::Value) -> Result<PipedImage, PipedObjectError> {
        PipedImage::deserialize(object).map_err(|e| PipedObjectError::Shape(e.to_string()))
    }

    /// The image an object names (Name and Version, checked) and its source.
    pub fn reference(&self) -> Result<PipedReference, PipedObjectError> {
        let name = self.name.clone().ok_or(PipedObjectError::Missing("Name"))?;
        // The one name rule: the name becomes a file name and a feed entry
        // that must read back as it was written.
        crate::names::check_name(&name)?;
        let version = self
            .version
            .as_deref()
            .ok_or(PipedObjectError::Missing("Version"))?
            .parse()?;
        Ok(PipedReference {
            name,
            version,
            source: non_empty(&self.source),
        })
    }

    /// The feed entry an object describes (Save downloads it as it is):
    /// its name and version checked, at least one location, the SHA-256 as
    /// 64 hexadecimal digits when given.
    pub fn entry(&self) -> Result<FeedEntry, PipedObjectError> {
        let PipedReference {
            name,
            version,
            source,
        } = self.reference()?;
        let texts: Vec<&str> = match (&self.locations, &self.location) {
            (Some(all), _) => all.iter().map(String::as_str).collect(),
            (None, Some(OneOrMany::One(one))) => vec![one.as_str()],
            (None, Some(OneOrMany::Many(all))) => all.iter().map(String::as_str).collect(),
            (None, None) => Vec::new(),
        };
        if texts.is_empty() {
            return Err(PipedObjectError::NoLocation { name, version });
        }
        let locations = texts
            .into_iter()
            .map(Location::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let sha256 = match non_empty(&self.sha256) {
            None => None,
            Some(text) => Some(crate::feed::parse_sha256(&text).map_err(PipedObjectError::Sha256)?),
        };
        Ok(FeedEntry {
            source: source.unwrap_or_default(),
            publisher: non_empty(&self.publisher),
            description: non_empty(&self.description),
            architecture: non_empty(&self.architecture),
            name,
            version,
            size: self.size,
            sha256,
            locations,
        })
    }
}

fn non_empty(text: &Option<String>) -> Option<String> {
    text.clone().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_and_skips_blank_lines() {
        let input = b"{\"Name\":\"a\"}\r\n\n   \n{\"Name\":\"b\"}";
        let objects = read_all(&input[..]).expect("objects");
        let names: Vec<_> = objects
            .iter()
            .map(|o| o.get("Name").and_then(|v| v.as_str()).unwrap_or("?"))
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(read_all(&b""[..]).expect("empty").is_empty());
    }

    #[test]
    fn names_the_line_of_anything_that_is_not_an_object() {
        let err = read_all(&b"{}\n\n[1]\n"[..]).expect_err("an array");
        assert!(
            matches!(err, PipelineError::NotAnObject { line: 3, .. }),
            "{err}"
        );
        let err = read_all(&b"{}\n{oops\n"[..]).expect_err("bad JSON");
        assert!(
            err.to_string().starts_with("line 2 of standard input"),
            "{err}"
        );
    }

    #[test]
    fn a_line_over_the_cap_is_refused_by_number_without_reading_it_all() {
        let mut input = b"{}\n".to_vec();
        input.extend(std::iter::repeat_n(b' ', MAX_LINE_BYTES + 10));
        input.extend(b"{}\n");
        // A small buffer: the line arrives in many pieces.
        let reader = std::io::BufReader::with_capacity(4096, &input[..]);
        let err = read_all(reader).expect_err("too long");
        assert!(
            matches!(err, PipelineError::LineTooLong { line: 2 }),
            "{err}"
        );

        // Exactly at the cap is fine.
        let mut input = vec![b' '; MAX_LINE_BYTES - 2];
        input.splice(0..0, b"{}".iter().copied());
        input.push(b'\n');
        assert_eq!(read_all(&input[..]).expect("at the cap").len(), 1);
    }

    #[test]
    fn object_count_is_capped() {
        let input = "{}\n".repeat(MAX_OBJECTS + 1);
        let err = read_all(input.as_bytes()).expect_err("too many");
        assert!(matches!(err, PipelineError::TooManyObjects), "{err}");
    }

    #[test]
    fn total_input_is_capped() {
        // Blank lines count too.
        let mut blank = vec![b' '; MAX_LINE_BYTES - 1];
        blank.push(b'\n');
        let input = blank.repeat((MAX_INPUT_BYTES as usize / MAX_LINE_BYTES) + 1);
        let err = read_all(&input[..]).expect_err("too large");
        assert!(matches!(err, PipelineError::TooLarge), "{err}");
    }

    #[test]
    fn piped_objects_become_entries() {
        let o = serde_json::json!({
            "Name": "NanoServer", "Version": "10.0.14300.1010", "Source": "Local",
            "Location": ["http://a.test/n.wim", "http://b.test/n.wim"],
            "Sha256": "00".repeat(32), "Size": 42, "Extra": {"ignored": true}
        });
        let e = PipedImage::from_object(&o)
            .and_then(|p| p.entry())
            .expect("entry");
        assert_eq!(e.locations.len(), 2);
        assert_eq!(e.size, Some(42));
        assert_eq!(e.sha256, Some([0u8; 32]));
        assert_eq!(e.source, "Local");

        let locations = serde_json::json!({
            "Name": "N", "Version": "1.0", "Location": "http://a.test/1.wim",
            "Locations": ["http://b.test/1.wim", "http://c.test/1.wim"]
        });
        let e = PipedImage::from_object(&locations)
            .and_then(|p| p.entry())
            .expect("entry");
        assert_eq!(e.locations.len(), 2, "Locations wins over Location");

        for (bad, says) in [
            (
                serde_json::json!({"Name": "x", "Version": "1.0", "Location": "http://a/x", "Sha256": "zz"}),
                "Sha256",
            ),
            (
                serde_json::json!({"Name": "x", "Version": "1.0"}),
                "has no Location",
            ),
            (
                serde_json::json!({"Version": "1.0", "Location": "http://a/x"}),
                "has no Name",
            ),
            (
                serde_json::json!({"Name": "../x", "Version": "1.0", "Location": "http://a/x"}),
                "cannot be used",
            ),
            (
                serde_json::json!({"Name": "x", "Version": "1.0", "Location": "http://a/x", "Size": -1}),
                "invalid value",
            ),
        ] {
            let err = PipedImage::from_object(&bad)
                .and_then(|p| p.entry())
                .expect_err("refused")
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
