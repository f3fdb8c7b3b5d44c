//! A tar writer for Windows layers: POSIX ustar headers, each preceded by a
//! PAX extended header (`x`) with the entry's records.
//!
//! Windows importers read names and link names longer than ustar allows
//! from the PAX `path` and `linkpath` records, and access, change and
//! creation times and the `MSWINDOWS.*` metadata only from PAX records, so
//! every entry gets one. GNU extensions (`././@LongLink`) are never written.
//! Output depends only on what is written: no user or group names, ids 0,
//! times as given, so the same entries give the same bytes.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    HardLink,
}

impl Kind {
    fn type_flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Directory => b'5',
        }
    }
}

/// A time as seconds and nanoseconds since the Unix epoch (may be negative
/// for times before 1970).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

impl Time {
    /// `secs` or `secs.fraction` with trailing zeros trimmed, as PAX
    /// writes times.
    pub fn pax(self) -> String {
        let (mut secs, mut nanos) = (self.secs, self.nanos);
        let negative = secs < 0 && nanos > 0;
        if negative {
            // -1.25 s is secs = -2, nanos = 750_000_000.
            secs += 1;
            nanos = 1_000_000_000 - nanos;
        }
        let sign = if negative && secs == 0 { "-" } else { "" };
        if nanos == 0 {
            return format!("{sign}{secs}");
        }
        let mut fraction = format!("{nanos:09}");
        while fraction.ends_with('0') {
            fraction.pop();
        }
        format!("{sign}{secs}.{fraction}")
    }
}

/// One entry's header.
#[derive(Clone, Debug)]
pub struct Header {
    /// `/`-separated, relative, no trailing slash.
    pub path: String,
    pub kind: Kind,
    /// The link name of a link, else empty.
    pub link: String,
    pub size: u64,
    pub mtime: Time,
    pub atime: Time,
    pub ctime: Time,
    /// Further PAX records (`MSWINDOWS.fileattr`, …), written in this order.
    pub records: Vec<(String, String)>,
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len.to_string().len() + body > len {
        len += 1;
    }
    let len = body + len.to_string().len();
    format!("{len} {key}={value}\n").into_bytes()
}

fn octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{value} does not fit a {digits}-digit tar field"),
        ));
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// A ustar header block. Names longer than the fields hold are cut there:
/// the PAX record before it carries the whole name.
fn ustar(name: &str, kind: u8, link: &str, size: u64, mtime: i64) -> io::Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    let copy = |field: &mut [u8], s: &str| {
        let b = s.as_bytes();
        let n = b.len().min(field.len());
        field[..n].copy_from_slice(&b[..n]);
    };
    copy(&mut h[0..100], name);
    let mode = match kind {
        b'5' => 0o755,
        b'2' => 0o777,
        _ => 0o644,
    };
    octal(&mut h[100..108], mode)?;
    octal(&mut h[108..116], 0)?;
    octal(&mut h[116..124], 0)?;
    octal(&mut h[124..136], size)?;
    octal(&mut h[136..148], u64::try_from(mtime.max(0)).unwrap_or(0))?;
    h[148..156].fill(b' ');
    h[156] = kind;
    copy(&mut h[157..257], link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0)?;
    octal(&mut h[337..345], 0)?;
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

/// Writes a tar stream.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rest = (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64;
        let zeros = [0u8; BLOCK];
        self.put(&zeros[..rest as usize])
    }

    /// Writes an entry's headers; for a file, `data` must then supply
    /// exactly `header.size` bytes.
    pub fn append(&mut self, header: &Header, data: Option<&mut dyn Read>) -> io::Result<()> {
        let size = if header.kind == Kind::File {
            header.size
        } else {
            0
        };
        let mut pax = Vec::new();
        if header.path.len() > 100 || !header.path.is_ascii() {
            pax.extend(pax_record("path", &header.path));
        }
        if header.link.len() > 100 || !header.link.is_ascii() {
            pax.extend(pax_record("linkpath", &header.link));
        }
        pax.extend(pax_record("mtime", &header.mtime.pax()));
        pax.extend(pax_record("atime", &header.atime.pax()));
        pax.extend(pax_record("ctime", &header.ctime.pax()));
        for (k, v) in &header.records {
            pax.extend(pax_record(k, v));
        }
        // The extended header's own name, as common writers form it.
        let short: String = header.path.chars().take(80).collect();
        let x = ustar(
            &format!("PaxHeaders/{short}"),
            b'x',
            "",
            pax.len() as u64,
            header.mtime.secs,
        )?;
        self.put(&x)?;
        self.put(&pax)?;
        self.pad(pax.len() as u64)?;
        let h = ustar(
            &header.path,
            header.kind.type_flag(),
            &header.link,
            size,
            header.mtime.secs,
        )?;
        self.put(&h)?;
        if header.kind == Kind::File {
            let Some(data) = data else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no data for {}", header.path),
                ));
            };
            let copied = io::copy(&mut data.take(size), &mut self.out)?;
            self.written += copied;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} changed while it was read: {copied} of {size} bytes",
                        header.path
                    ),
                ));
            }
            self.pad(size)?;
        }
        Ok(())
    }

    /// Writes the two zero blocks that end an archive and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("a", "b"), b"6 a=b\n");
        // 9 bytes of body + a 2-digit length = 11 ... then the length grows.
        let r = pax_record("path", &"x".repeat(93));
        let text = String::from_utf8(r.clone()).expect("utf-8");
        let (len, _) = text.split_once(' ').expect("space");
        assert_eq!(len.parse::<usize>().expect("number"), r.len());
        for n in 0..300 {
            let r = pax_record("k", &"v".repeat(n));
            let text = String::from_utf8(r.clone()).expect("utf-8");
            let (len, _) = text.split_once(' ').expect("space");
            assert_eq!(
                len.parse::<usize>().expect("number"),
                r.len(),
                "value of {n}"
            );
        }
    }

    #[test]
    fn times_are_written_as_pax_does() {
        assert_eq!(Time { secs: 5, nanos: 0 }.pax(), "5");
        assert_eq!(
            Time {
                secs: 5,
                nanos: 250_000_000
            }
            .pax(),
            "5.25"
        );
        assert_eq!(
            Time {
                secs: -2,
                nanos: 750_000_000
            }
            .pax(),
            "-1.25"
        );
        assert_eq!(
            Time {
                secs: -1,
                nanos: 500_000_000
            }
            .pax(),
            "-0.5"
        );
    }
}

#[cfg(test)]
mod read_back {
    use super::*;

    /// Python's tarfile (a reader this project did not write) reads every
    /// name, link, size, time and record back.
    #[test]
    fn python_tarfile_reads_what_was_written() {
        let long = format!("Files/{}/{}", "d".repeat(90), "é".repeat(40));
        let entry = |path: &str, kind, link: &str, size| Header {
            path: path.to_string(),
            kind,
            link: link.to_string(),
            size,
            mtime: Time {
                secs: 1_600_000_000,
                nanos: 5,
            },
            atime: Time {
                secs: 1_600_000_001,
                nanos: 0,
            },
            ctime: Time {
                secs: 1_600_000_002,
                nanos: 0,
            },
            records: vec![("MSWINDOWS.fileattr".into(), "32".into())],
        };
        let mut w = TarWriter::new(Vec::new());
        w.append(&entry("Files", Kind::Directory, "", 0), None)
            .expect("dir");
        let data = b"hello";
        w.append(&entry(&long, Kind::File, "", 5), Some(&mut &data[..]))
            .expect("file");
        w.append(&entry("Files/link", Kind::Symlink, "C:\\Windows", 0), None)
            .expect("symlink");
        w.append(&entry("Files/hard", Kind::HardLink, &long, 0), None)
            .expect("hard link");
        let bytes = w.finish().expect("finish");
        assert_eq!(bytes.len() % 512, 0);
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = dir.path().join("layer.tar");
        std::fs::write(&tar, &bytes).expect("write");
        let script = r#"
import sys, tarfile
with tarfile.open(sys.argv[1], format=tarfile.PAX_FORMAT) as t:
    for m in t.getmembers():
        print(repr((m.name, m.type.decode(), m.linkname, m.size, m.pax_headers.get("mtime"),
                    m.pax_headers.get("MSWINDOWS.fileattr"))))
        if m.isfile():
            print(repr(t.extractfile(m).read().decode()))
"#;
        let o = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&tar)
            .output()
            .expect("python3 runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = String::from_utf8_lossy(&o.stdout).into_owned();
        let want = format!(
            "('Files', '5', '', 0, '1600000000.000000005', '32')\n\
             ('{long}', '0', '', 5, '1600000000.000000005', '32')\n\
             'hello'\n\
             ('Files/link', '2', 'C:\\\\Windows', 0, '1600000000.000000005', '32')\n\
             ('Files/hard', '1', '{long}', 0, '1600000000.000000005', '32')\n"
        );
        assert_eq!(got, want);
    }
}
