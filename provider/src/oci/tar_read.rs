//! Reading a tar stream as hostile input: headers checked (checksum, octal
//! fields), PAX records and GNU long names bounded in size, entry data read
//! only through a reader limited to the entry's size, and only the entry
//! types a layer or an archive may hold.

use std::io::{self, Read};

use super::tar::Time;

const BLOCK: usize = 512;
/// The largest PAX extended header or GNU long name read.
pub const MAX_EXTENDED_HEADER: u64 = 1 << 20;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    HardLink,
    Symlink,
    Directory,
}

/// One entry's header, with its PAX records applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Option<EntryKind>,
    pub link: String,
    pub size: u64,
    pub mtime: Time,
    /// PAX records other than `path`, `linkpath`, `size` and `mtime`.
    pub records: Vec<(String, String)>,
}

impl Entry {
    pub fn record(&self, key: &str) -> Option<&str> {
        self.records
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("cannot read the tar stream")]
    Io(#[from] io::Error),
    #[error("the tar stream is damaged at byte {offset}: {reason}")]
    Damaged { offset: u64, reason: String },
}

/// Reads a tar stream entry by entry.
pub struct TarReader<R: Read> {
    inner: R,
    offset: u64,
    /// Data and padding of the current entry not read yet.
    remaining: u64,
    padding: u64,
    done: bool,
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    // GNU base-256 for values that do not fit.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&text).ok()?;
    u64::from_str_radix(s, 8).ok()
}

fn field_text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A PAX time: `secs` or `secs.fraction`, maybe negative.
pub fn parse_pax_time(text: &str) -> Option<Time> {
    let (negative, t) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().ok()?;
    if !negative {
        return Some(Time { secs, nanos });
    }
    if nanos == 0 {
        Some(Time {
            secs: -secs,
            nanos: 0,
        })
    } else {
        Some(Time {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        })
    }
}

/// The records of a PAX extended header.
fn parse_pax(data: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a PAX record has no length")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a PAX record's length is not a number")?;
        if len <= space + 1 || len > rest.len() {
            return Err("a PAX record's length does not fit".into());
        }
        let record = &rest[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or("a PAX record does not end with a newline")?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record has no '='")?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| "a PAX key is not UTF-8")?;
        let value = std::str::from_utf8(&record[eq + 1..])
            .map_err(|_| format!("the PAX value of {key} is not UTF-8"))?;
        out.push((key.to_string(), value.to_string()));
        rest = &rest[len..];
    }
    Ok(out)
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    fn damaged(&self, reason: impl Into<String>) -> TarError {
        TarError::Damaged {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>, TarError> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            let n = self.inner.read(&mut block[filled..])?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                return Err(self.damaged("the stream ends inside a header"));
            }
            filled += n;
        }
        self.offset += BLOCK as u64;
        Ok(Some(block))
    }

    /// Skips what is left of the current entry.
    fn skip_rest(&mut self) -> Result<(), TarError> {
        let n = self.remaining + self.padding;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
            self.offset += copied;
            if copied != n {
                return Err(self.damaged("the stream ends inside an entry"));
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    /// Reads the data of an extended header (bounded).
    fn read_small(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_EXTENDED_HEADER {
            return Err(self.damaged(format!(
                "an extended header of {size} bytes (at most {MAX_EXTENDED_HEADER})"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut self.inner).take(size).read_to_end(&mut data)?;
        if data.len() as u64 != size {
            return Err(self.damaged("the stream ends inside an extended header"));
        }
        self.offset += size;
        self.remaining = 0;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.skip_rest()?;
        Ok(data)
    }

    /// The next entry, or `None` at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pax: Vec<(String, String)> = Vec::new();
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        loop {
            let Some(h) = self.read_block()? else {
                // The end markers are optional for many writers; a clean
                // end between entries is the end.
                self.done = true;
                return Ok(None);
            };
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = parse_octal(&h[148..156])
                .ok_or_else(|| self.damaged("a header's checksum is not a number"))?;
            let sum: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        u64::from(b' ')
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            if sum != stored {
                return Err(self.damaged("a header's checksum does not match"));
            }
            let size =
                parse_octal(&h[124..136]).ok_or_else(|| self.damaged("a size is not a number"))?;
            let type_flag = h[156];
            match type_flag {
                b'x' => {
                    let data = self.read_small(size)?;
                    pax = parse_pax(&data).map_err(|r| self.damaged(r))?;
                    continue;
                }
                b'g' => {
                    self.read_small(size)?;
                    continue;
                }
                b'L' | b'K' => {
                    let data = self.read_small(size)?;
                    let text = String::from_utf8(field_text(&data).to_vec())
                        .map_err(|_| self.damaged("a long name is not UTF-8"))?;
                    if type_flag == b'L' {
                        long_name = Some(text);
                    } else {
                        long_link = Some(text);
                    }
                    continue;
                }
                _ => {}
            }
            let kind = match type_flag {
                b'0' | 0 | b'7' => EntryKind::File,
                b'1' => EntryKind::HardLink,
                b'2' => EntryKind::Symlink,
                b'5' => EntryKind::Directory,
                other => {
                    return Err(self.damaged(format!(
                        "an entry of type '{}' (only files, folders and links are allowed)",
                        char::from(other).escape_default()
                    )))
                }
            };
            let ustar = &h[257..263] == b"ustar\0";
            let name = field_text(&h[0..100]);
            let prefix = if ustar {
                field_text(&h[345..500])
            } else {
                &[][..]
            };
            let mut path = if prefix.is_empty() {
                name.to_vec()
            } else {
                let mut p = prefix.to_vec();
                p.push(b'/');
                p.extend_from_slice(name);
                p
            };
            if let Some(n) = long_name.take() {
                path = n.into_bytes();
            }
            let mut path =
                String::from_utf8(path).map_err(|_| self.damaged("a name is not UTF-8"))?;
            let mut link = String::from_utf8(field_text(&h[157..257]).to_vec())
                .map_err(|_| self.damaged("a link name is not UTF-8"))?;
            if let Some(l) = long_link.take() {
                link = l;
            }
            let mut size = size;
            let mut mtime = Time {
                secs: i64::try_from(parse_octal(&h[136..148]).unwrap_or(0)).unwrap_or(0),
                nanos: 0,
            };
            let mut records = Vec::new();
            for (k, v) in std::mem::take(&mut pax) {
                match k.as_str() {
                    "path" => path = v,
                    "linkpath" => link = v,
                    "size" => {
                        size = v
                            .parse()
                            .map_err(|_| self.damaged("a PAX size is not a number"))?
                    }
                    "mtime" => {
                        mtime = parse_pax_time(&v)
                            .ok_or_else(|| self.damaged("a PAX mtime is not a time"))?
                    }
                    _ => records.push((k, v)),
                }
            }
            if kind != EntryKind::File {
                size = 0;
            }
            self.remaining = size;
            self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            return Ok(Some(Entry {
                path,
                kind: Some(kind),
                link,
                size,
                mtime,
                records,
            }));
        }
    }

    /// What is left of the stream after the last entry read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The data of the current entry (exactly its size; a short stream is
    /// an error).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }
}

/// Reads the current entry's data.
pub struct EntryData<'a, R: Read> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(r.remaining).unwrap_or(usize::MAX));
        let n = r.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            ));
        }
        r.remaining -= n as u64;
        r.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tar::{Header, Kind, TarWriter};

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let long = format!("Files/{}", "n".repeat(150));
        let t = Time {
            secs: 1_600_000_000,
            nanos: 120_000_000,
        };
        let mut w = TarWriter::new(Vec::new());
        for (path, kind, link, data) in [
            ("Files", Kind::Directory, "", &b""[..]),
            (long.as_str(), Kind::File, "", &b"hello"[..]),
            ("Files/l", Kind::Symlink, "C:\\x", &b""[..]),
        ] {
            let h = Header {
                path: path.into(),
                kind,
                link: link.into(),
                size: data.len() as u64,
                mtime: t,
                atime: t,
                ctime: t,
                records: vec![("MSWINDOWS.fileattr".into(), "32".into())],
            };
            w.append(&h, Some(&mut &data[..])).expect("append");
        }
        let bytes = w.finish().expect("finish");
        let mut r = TarReader::new(&bytes[..]);
        let e = r.next_entry().expect("read").expect("entry");
        assert_eq!(
            (e.path.as_str(), e.kind),
            ("Files", Some(EntryKind::Directory))
        );
        assert_eq!(e.mtime, t);
        assert_eq!(e.record("MSWINDOWS.fileattr"), Some("32"));
        let e = r.next_entry().expect("read").expect("entry");
        assert_eq!(e.path, long);
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).expect("data");
        assert_eq!(data, b"hello");
        let e = r.next_entry().expect("read").expect("entry");
        assert_eq!(
            (e.kind, e.link.as_str()),
            (Some(EntryKind::Symlink), "C:\\x")
        );
        assert!(r.next_entry().expect("end").is_none());
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut w = TarWriter::new(Vec::new());
        let h = Header {
            path: "Files/a".into(),
            kind: Kind::File,
            link: String::new(),
            size: 3,
            mtime: Time::default(),
            atime: Time::default(),
            ctime: Time::default(),
            records: Vec::new(),
        };
        w.append(&h, Some(&mut &b"abc"[..])).expect("append");
        let good = w.finish().expect("finish");
        // Any byte changed in a header, any truncation: an error or a
        // shorter read, never a panic.
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let mut r = TarReader::new(&bad[..]);
            while let Ok(Some(_)) = r.next_entry() {
                let _ = io::copy(&mut r.data(), &mut io::sink());
            }
            let mut r = TarReader::new(&good[..i]);
            while let Ok(Some(_)) = r.next_entry() {
                let _ = io::copy(&mut r.data(), &mut io::sink());
            }
        }
        assert_eq!(
            parse_pax_time("-1.25"),
            Some(Time {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(parse_pax_time("1x"), None);
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"3 a\n").is_err());
    }

    #[test]
    fn huge_extended_headers_are_refused_without_reading_them() {
        let mut h = [0u8; 512];
        h[0..4].copy_from_slice(b"x/y\0");
        h[124..136].copy_from_slice(b"77777777777\0");
        h[156] = b'x';
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut r = TarReader::new(&h[..]);
        let e = r.next_entry().expect_err("too big");
        assert!(e.to_string().contains("extended header"), "{e}");
    }
}
