//! The XML manifest (`urn:containerimage:feed:1`): a pull parser that keeps
//! the line of every element, so a broken feed names the line and the field.
//!
//! Unknown elements and attributes are skipped (forward compatibility).

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::Reader;

use super::lines::{line_of, LineCounter};
use super::{parse_sha256, FeedError, FeedRecord, FEED_NAMESPACE};
use crate::names::check_name;

const ROOT: &[u8] = b"ContainerImageFeed";
const IMAGE: &[u8] = b"Image";

/// An element's text (borrowed from the document unless it had to be
/// unescaped) and the line it starts on.
struct WireText<'a> {
    text: Cow<'a, str>,
    line: usize,
}

/// One `<Image>` as written, before validation.
#[derive(Default)]
struct WireImage<'a> {
    line: usize,
    name: Option<WireText<'a>>,
    version: Option<WireText<'a>>,
    publisher: Option<WireText<'a>>,
    description: Option<WireText<'a>>,
    architecture: Option<WireText<'a>>,
    size: Option<WireText<'a>>,
    sha256: Option<WireText<'a>>,
    locations: Vec<WireText<'a>>,
}

/// Reads the manifest, handing each `<Image>` to `each` as a validated
/// record as soon as its end tag is read; nothing else of the document is
/// copied.
pub(super) fn parse(
    text: &str,
    feed: &str,
    each: &mut dyn FnMut(FeedRecord) -> Result<(), FeedError>,
) -> Result<(), FeedError> {
    let mut parser = Parser {
        reader: Reader::from_str(text),
        lines: LineCounter::new(text.as_bytes()),
        bytes: text.as_bytes(),
        feed,
    };
    parser.document(&mut |wire| each(validate(wire, feed)?))
}

/// Receives each `<Image>` as written.
type OnImage<'e, 'a> = dyn FnMut(WireImage<'a>) -> Result<(), FeedError> + 'e;

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    lines: LineCounter<'a>,
    bytes: &'a [u8],
    feed: &'a str,
}

impl<'a> Parser<'a> {
    fn syntax(&self, line: usize, message: impl Into<String>) -> FeedError {
        FeedError::Syntax {
            feed: self.feed.to_string(),
            line,
            message: message.into(),
        }
    }

    /// The next event and the byte offset it starts at.
    fn next(&mut self) -> Result<(Event<'a>, usize), FeedError> {
        let start = offset(self.reader.buffer_position());
        match self.reader.read_event() {
            Ok(event) => Ok((event, start)),
            Err(e) => {
                let line = line_of(self.bytes, offset(self.reader.error_position()));
                Err(self.syntax(line, e.to_string()))
            }
        }
    }

    fn skip(&mut self, name: QName<'_>, start: usize) -> Result<(), FeedError> {
        match self.reader.read_to_end(name) {
            Ok(_) => Ok(()),
            Err(e) => {
                let line = line_of(self.bytes, offset(self.reader.error_position()).max(start));
                Err(self.syntax(line, e.to_string()))
            }
        }
    }

    fn document(&mut self, images: &mut OnImage<'_, 'a>) -> Result<(), FeedError> {
        let mut seen_root = false;
        loop {
            let (event, start) = self.next()?;
            let line = self.lines.line_at(start);
            match event {
                Event::Start(e) | Event::Empty(e) if seen_root => {
                    let _ = e;
                    return Err(self.syntax(line, "more than one root element"));
                }
                Event::Start(e) => {
                    self.check_root(&e, line)?;
                    seen_root = true;
                    self.feed_body(images)?;
                }
                Event::Empty(e) => {
                    self.check_root(&e, line)?;
                    seen_root = true;
                }
                Event::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => {
                    return Err(self.syntax(line, "text outside the root element"));
                }
                Event::CData(_) => {
                    return Err(self.syntax(line, "text outside the root element"));
                }
                Event::Eof if seen_root => return Ok(()),
                Event::Eof => {
                    return Err(self.syntax(
                        line,
                        "the document has no <ContainerImageFeed> element (is this a feed?)",
                    ))
                }
                _ => {}
            }
        }
    }

    fn check_root(&self, e: &BytesStart<'_>, line: usize) -> Result<(), FeedError> {
        let name = e.name();
        if name.local_name().as_ref() != ROOT {
            return Err(self.syntax(
                line,
                format!(
                    "the root element is <{}>, expected <ContainerImageFeed xmlns=\"{FEED_NAMESPACE}\">",
                    String::from_utf8_lossy(name.as_ref())
                ),
            ));
        }
        // The namespace declaration that applies to the root's own prefix.
        let decl: Vec<u8> = match name.prefix() {
            Some(p) => [b"xmlns:".as_slice(), p.as_ref()].concat(),
            None => b"xmlns".to_vec(),
        };
        for attr in e.attributes().flatten() {
            if attr.key.as_ref() == decl.as_slice() {
                let value = attr.unescape_value().unwrap_or_default();
                if value != FEED_NAMESPACE {
                    return Err(self.syntax(
                        line,
                        format!("the namespace is '{value}', expected '{FEED_NAMESPACE}'"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn feed_body(&mut self, images: &mut OnImage<'_, 'a>) -> Result<(), FeedError> {
        loop {
            let (event, start) = self.next()?;
            match event {
                Event::Start(e) if e.local_name().as_ref() == IMAGE => {
                    let line = self.lines.line_at(start);
                    let image = self.image(line)?;
                    images(image)?;
                }
                Event::Start(e) => self.skip(e.name(), start)?,
                Event::Empty(e) if e.local_name().as_ref() == IMAGE => {
                    images(WireImage {
                        line: self.lines.line_at(start),
                        ..WireImage::default()
                    })?;
                }
                Event::End(_) => return Ok(()),
                Event::Eof => {
                    let line = self.lines.line_at(start);
                    return Err(self.syntax(line, "<ContainerImageFeed> is not closed"));
                }
                _ => {}
            }
        }
    }

    fn image(&mut self, line: usize) -> Result<WireImage<'a>, FeedError> {
        let mut image = WireImage {
            line,
            ..WireImage::default()
        };
        loop {
            let (event, start) = self.next()?;
            let (element, text) = match event {
                Event::Start(e) => {
                    let field_line = self.lines.line_at(start);
                    let text = self.text(e.name(), start)?;
                    (
                        e,
                        WireText {
                            text,
                            line: field_line,
                        },
                    )
                }
                Event::Empty(e) => {
                    let field_line = self.lines.line_at(start);
                    (
                        e,
                        WireText {
                            text: Cow::Borrowed(""),
                            line: field_line,
                        },
                    )
                }
                Event::End(_) => return Ok(image),
                Event::Eof => {
                    let l = self.lines.line_at(start);
                    return Err(self.syntax(l, "<Image> is not closed"));
                }
                _ => continue,
            };
            let slot = match element.local_name().as_ref() {
                b"Name" => &mut image.name,
                b"Version" => &mut image.version,
                b"Publisher" => &mut image.publisher,
                b"Description" => &mut image.description,
                b"Architecture" => &mut image.architecture,
                b"Size" => &mut image.size,
                b"Sha256" => &mut image.sha256,
                b"Location" => {
                    image.locations.push(text);
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(FeedError::Field {
                    feed: self.feed.to_string(),
                    line: text.line,
                    field: field_name(element.local_name().as_ref()),
                    problem: "the element appears more than once in one <Image>".into(),
                });
            }
            *slot = Some(text);
        }
    }

    /// The text of the element just opened, up to its end tag; nested
    /// elements are skipped.
    fn text(&mut self, name: QName<'_>, start: usize) -> Result<Cow<'a, str>, FeedError> {
        let owned = name.as_ref().to_vec();
        let mut out: Cow<'a, str> = Cow::Borrowed("");
        let append = |out: &mut Cow<'a, str>, piece: Cow<'a, str>| {
            if out.is_empty() {
                *out = piece;
            } else {
                out.to_mut().push_str(&piece);
            }
        };
        loop {
            let (event, at) = self.next()?;
            match event {
                Event::Text(t) => match t.unescape() {
                    Ok(s) => append(&mut out, s),
                    Err(e) => {
                        let line = line_of(self.bytes, at);
                        return Err(self.syntax(line, e.to_string()));
                    }
                },
                Event::CData(c) => append(
                    &mut out,
                    Cow::Owned(String::from_utf8_lossy(&c).into_owned()),
                ),
                Event::Start(e) => self.skip(e.name(), at)?,
                Event::End(_) => return Ok(out),
                Event::Eof => {
                    let line = line_of(self.bytes, start);
                    return Err(self.syntax(
                        line,
                        format!("<{}> is not closed", String::from_utf8_lossy(&owned)),
                    ));
                }
                _ => {}
            }
        }
    }
}

fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

fn field_name(local: &[u8]) -> &'static str {
    match local {
        b"Name" => "Name",
        b"Version" => "Version",
        b"Publisher" => "Publisher",
        b"Description" => "Description",
        b"Architecture" => "Architecture",
        b"Size" => "Size",
        b"Sha256" => "Sha256",
        _ => "Location",
    }
}

/// Checks one `<Image>` and turns it into a record.
fn validate(w: WireImage, feed: &str) -> Result<FeedRecord, FeedError> {
    let missing = |field| FeedError::Missing {
        feed: feed.to_string(),
        line: w.line,
        field,
    };
    let bad = |field, line, problem: String| FeedError::Field {
        feed: feed.to_string(),
        line,
        field,
        problem,
    };

    let name = w.name.as_ref().ok_or_else(|| missing("Name"))?;
    let name_text = name.text.trim();
    check_name(name_text).map_err(|e| bad("Name", name.line, e.to_string()))?;

    let version = w.version.as_ref().ok_or_else(|| missing("Version"))?;
    let version_value = version
        .text
        .trim()
        .parse()
        .map_err(|e: crate::version::VersionError| bad("Version", version.line, e.to_string()))?;

    let size = w.size.as_ref().ok_or_else(|| missing("Size"))?;
    let size_value = size.text.trim().parse::<u64>().map_err(|_| {
        bad(
            "Size",
            size.line,
            format!("'{}' is not a size in bytes", size.text.trim()),
        )
    })?;

    let sha = w.sha256.as_ref().ok_or_else(|| missing("Sha256"))?;
    let sha_value = parse_sha256(&sha.text).map_err(|p| bad("Sha256", sha.line, p))?;

    if w.locations.is_empty() {
        return Err(missing("Location"));
    }
    let mut locations = Vec::with_capacity(w.locations.len());
    for l in &w.locations {
        let t = l.text.trim();
        if t.is_empty() {
            return Err(bad("Location", l.line, "the location is empty".into()));
        }
        locations.push(t.to_string());
    }

    let optional = |t: &Option<WireText<'_>>| {
        t.as_ref()
            .map(|t| t.text.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(FeedRecord {
        name: name_text.to_string(),
        version: version_value,
        publisher: optional(&w.publisher),
        description: optional(&w.description),
        architecture: optional(&w.architecture),
        size: Some(size_value),
        sha256: Some(sha_value),
        locations,
        line: w.line,
    })
}
