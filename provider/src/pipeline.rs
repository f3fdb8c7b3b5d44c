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
}
