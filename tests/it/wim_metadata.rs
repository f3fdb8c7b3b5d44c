//! The metadata file of `Expand-WindowsImage -MetadataPath` checked with
//! Windows-shaped data (security descriptors as Windows writes them, named
//! streams, short names, creation times to 100 ns, attributes, reparse
//! points) against what `wimlib-imagex dir --detailed` and 7-Zip
//! (`7zz l -slt`) read from the same `.wim`. wimlib cannot capture such
//! data on Linux without an NTFS volume, so the file is written by the
//! tests' own WIM writer and read back by both tools.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use sha1::{Digest, Sha1};

use crate::common::{assert_exit, require_tool, run, wimlib};
use crate::wim_craft::{
    write_wim, Node, ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READONLY, ATTR_SYSTEM,
};

/// A SID: revision 1, identifier authority `auth`, sub-authorities.
fn sid(auth: u8, subs: &[u32]) -> Vec<u8> {
    let mut s = vec![1, subs.len() as u8, 0, 0, 0, 0, 0, auth];
    for v in subs {
        s.extend_from_slice(&v.to_le_bytes());
    }
    s
}

/// A self-relative security descriptor with owner, group and a DACL of
/// access-allowed ACEs `(flags, mask, sid)`, laid out as Windows does
/// (owner, group, then the DACL).
fn security_descriptor(owner: &[u8], group: &[u8], aces: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
    let mut acl_body = Vec::new();
    for (flags, mask, s) in aces {
        let size = (8 + s.len()) as u16;
        acl_body.extend_from_slice(&[0, *flags]);
        acl_body.extend_from_slice(&size.to_le_bytes());
        acl_body.extend_from_slice(&mask.to_le_bytes());
        acl_body.extend_from_slice(s);
    }
    let mut acl = vec![2, 0];
    acl.extend_from_slice(&((8 + acl_body.len()) as u16).to_le_bytes());
    acl.extend_from_slice(&(aces.len() as u16).to_le_bytes());
    acl.extend_from_slice(&[0, 0]);
    acl.extend_from_slice(&acl_body);
    let owner_at = 20u32;
    let group_at = owner_at + owner.len() as u32;
    let dacl_at = group_at + group.len() as u32;
    // Revision 1; control: self-relative, DACL present, DACL auto-inherited.
    let mut sd = vec![1, 0];
    sd.extend_from_slice(&(0x8000u16 | 0x0400 | 0x0004).to_le_bytes());
    for v in [owner_at, group_at, 0, dacl_at] {
        sd.extend_from_slice(&v.to_le_bytes());
    }
    sd.extend_from_slice(owner);
    sd.extend_from_slice(group);
    sd.extend_from_slice(&acl);
    sd
}

/// The descriptors of a Windows system folder: TrustedInstaller-owned,
/// SYSTEM and Administrators full control, Users read and execute.
fn descriptors() -> Vec<Vec<u8>> {
    let system = sid(5, &[18]);
    let admins = sid(5, &[32, 544]);
    let users = sid(5, &[32, 545]);
    let trusted_installer = sid(
        5,
        &[
            80,
            956_008_885,
            3_418_522_649,
            1_831_038_044,
            1_853_292_631,
            2_271_478_464,
        ],
    );
    vec![
        security_descriptor(
            &trusted_installer,
            &system,
            &[
                (0, 0x001F_01FF, trusted_installer.clone()),
                (0, 0x001F_01FF, system.clone()),
                (0, 0x001F_01FF, admins.clone()),
                (0, 0x0012_00A9, users.clone()),
            ],
        ),
        security_descriptor(
            &admins,
            &system,
            &[
                (0x3, 0x001F_01FF, system.clone()),
                (0x3, 0x001F_01FF, admins.clone()),
                (0x3, 0x0012_00A9, users),
            ],
        ),
    ]
}

fn tree() -> Node {
    let at = |n: &mut Node, ft: u64| {
        n.creation_time = ft;
        n.last_write_time = ft + 10_000_000;
        n.last_access_time = ft + 20_000_000;
    };
    let mut ini = Node::file(
        "desktop.ini",
        b"[.ShellClassInfo]\r\nLocalizedResourceName=@x\r\n",
    );
    ini.attributes = ATTR_HIDDEN | ATTR_SYSTEM | ATTR_ARCHIVE;
    ini.security_id = Some(1);
    at(&mut ini, 132_000_000_001_234_567);
    let mut long = Node::file("A long file name.txt", b"long name\r\n");
    long.short_name = "ALONGF~1.TXT".into();
    long.attributes = ATTR_READONLY | ATTR_ARCHIVE;
    long.security_id = Some(1);
    at(&mut long, 131_111_111_119_999_999);
    long.streams.push((
        "Zone.Identifier".into(),
        b"[ZoneTransfer]\r\nZoneId=3\r\n".to_vec(),
    ));
    long.streams.push(("empty".into(), Vec::new()));
    long.streams
        .push(("big".into(), crate::wim::random_bytes(5, 70_000)));
    let mut plain = Node::file("no-descriptor.dat", b"x");
    at(&mut plain, 125_000_000_000_000_001);
    let mut link = Node::symlink("link", "\\??\\C:\\Windows", false, 0);
    link.security_id = Some(1);
    link.short_name = "LINK~1".into();
    let mut junction = Node::junction("Documents and Settings", "\\??\\C:\\Users", 0);
    junction.attributes |= ATTR_HIDDEN | ATTR_SYSTEM;
    junction.short_name = "DOCUME~1".into();
    junction.security_id = Some(0);
    let mut program_files = Node::dir("Program Files", vec![ini, long]);
    program_files.short_name = "PROGRA~1".into();
    program_files.security_id = Some(0);
    program_files.attributes = ATTR_DIRECTORY | ATTR_READONLY;
    at(&mut program_files, 130_000_000_000_000_007);
    let mut windows = Node::dir("Windows", vec![plain]);
    windows.security_id = Some(0);
    let mut root = Node::dir("", vec![program_files, windows, link, junction]);
    root.security_id = Some(1);
    root.attributes = ATTR_DIRECTORY | ATTR_HIDDEN | ATTR_SYSTEM;
    root
}

/// One entry as `wimlib-imagex dir --detailed` shows it.
#[derive(Debug, Default, PartialEq)]
struct Shown {
    short_name: String,
    attributes: u32,
    security_descriptor: Option<String>,
    creation_time: String,
    reparse_tag: Option<u32>,
    /// wimlib's UNIX data: `uid:0 gid:0 mode:0100644 rdev:0x0`.
    unix: Option<String>,
    /// Named streams: name → (SHA-1, size).
    streams: BTreeMap<String, (String, u64)>,
}

fn parse_wimlib(text: &str) -> BTreeMap<String, Shown> {
    let mut out = BTreeMap::new();
    for block in
        text.split("----------------------------------------------------------------------------")
    {
        let mut path = None;
        let mut shown = Shown::default();
        let mut stream: Option<String> = None;
        for line in block.lines() {
            let Some((key, value)) = line.split_once(" = ") else {
                if let Some(name) = line
                    .trim()
                    .strip_prefix("Named data stream \"")
                    .and_then(|s| s.strip_suffix("\":"))
                {
                    stream = Some(name.to_string());
                } else if line.trim() == "Unnamed data stream:" {
                    stream = None;
                }
                continue;
            };
            let key = key.trim();
            let value = value.trim();
            match key {
                "Full Path" => path = Some(value.trim_matches('"').to_string()),
                "Short Name" => shown.short_name = value.trim_matches('"').to_string(),
                "Attributes" => {
                    shown.attributes =
                        u32::from_str_radix(value.trim_start_matches("0x"), 16).expect("hex")
                }
                "Security Descriptor" => shown.security_descriptor = Some(value.to_string()),
                "UNIX Data" => shown.unix = Some(value.to_string()),
                "Creation Time" => shown.creation_time = value.to_string(),
                "Reparse Tag" => {
                    shown.reparse_tag =
                        Some(u32::from_str_radix(value.trim_start_matches("0x"), 16).expect("hex"))
                }
                "Hash" | "Uncompressed size" => {
                    if let Some(name) = &stream {
                        let slot = shown.streams.entry(name.clone()).or_default();
                        if key == "Hash" {
                            slot.0 = value.trim_start_matches("0x").to_string();
                        } else {
                            slot.1 = value.trim_end_matches(" bytes").parse().expect("a size");
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(p) = path {
            out.insert(p, shown);
        }
    }
    out
}

/// `7zz l -slt`: path → Created, with its 100 ns digits.
fn parse_7zip(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for block in text.split("\n\n") {
        let mut path = None;
        let mut created = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("Path = ") {
                path = Some(p.to_string());
            } else if let Some(c) = line.strip_prefix("Created = ") {
                created = Some(c.to_string());
            }
        }
        if let (Some(p), Some(c)) = (path, created) {
            out.insert(p, c);
        }
    }
    out
}

fn filetime(ft: u64) -> time::OffsetDateTime {
    let unix_100ns = i128::from(ft) - 116_444_736_000_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(unix_100ns * 100).expect("a time")
}

/// As wimlib prints times: `Thu Jan 02 18:44:05 2020 UTC`.
fn wimlib_time(ft: u64) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [year] UTC"
    );
    filetime(ft).format(&f).expect("format")
}

/// As 7-Zip prints times: `2020-01-02 18:44:05.1234567`.
fn seven_zip_time(ft: u64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    format!(
        "{}.{:07}",
        filetime(ft).format(&f).expect("format"),
        ft % 10_000_000
    )
}

/// The metadata file's `Unix` object as wimlib prints UNIX data.
fn unix_shown(u: &serde_json::Value) -> Option<String> {
    let n = |k: &str| u[k].as_u64();
    Some(format!(
        "uid:{} gid:{} mode:0{:o} rdev:{:#x}",
        n("Uid")?,
        n("Gid")?,
        n("Mode")?,
        n("Rdev")?
    ))
}

fn expand_with_metadata(wim: &Path, dir: &Path) -> serde_json::Value {
    let meta = dir.join("meta.json");
    let o = run(
        &dir.join("home"),
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
            "-Index",
            "1",
            "-ApplyPath",
            dir.join("applied").to_str().expect("utf-8"),
            "-MetadataPath",
            meta.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    serde_json::from_slice(&fs::read(&meta).expect("the metadata file")).expect("JSON")
}

#[test]
fn metadata_file_matches_wimlib_and_7zip() {
    require_tool("7zz");
    let dir = tempfile::tempdir().expect("tempdir");
    let wim = dir.path().join("windows.wim");
    let sds = descriptors();
    write_wim(&wim, &tree(), &sds, 0);
    let meta = expand_with_metadata(&wim, dir.path());

    let shown = parse_wimlib(&String::from_utf8_lossy(
        &wimlib(&["dir", wim.to_str().expect("utf-8"), "1", "--detailed"]).stdout,
    ));
    let seven = Command::new("7zz")
        .args(["l", "-slt", wim.to_str().expect("utf-8")])
        .env("TZ", "UTC")
        .output()
        .expect("7zz runs");
    assert!(seven.status.success(), "7zz l failed");
    let created_7z = parse_7zip(&String::from_utf8_lossy(&seven.stdout));

    let descriptors: Vec<String> = meta["SecurityDescriptors"]
        .as_array()
        .expect("SecurityDescriptors")
        .iter()
        .map(|v| v.as_str().expect("hex").to_string())
        .collect();
    assert_eq!(
        descriptors,
        sds.iter().map(hex::encode).collect::<Vec<_>>(),
        "the descriptors as stored"
    );
    let entries = meta["Entries"].as_array().expect("Entries");
    assert_eq!(
        entries.len(),
        shown.len(),
        "one entry per file wimlib lists"
    );
    for e in entries {
        let path = e["Path"].as_str().expect("Path");
        let theirs = shown
            .get(&format!("/{path}"))
            .unwrap_or_else(|| panic!("wimlib lists /{path}"));
        let ft = e["CreationTime"].as_u64().expect("CreationTime");
        let streams: BTreeMap<String, (String, u64)> = e["NamedStreams"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let data = hex::decode(s["Data"].as_str().expect("Data")).expect("hex data");
                let sha1 = s["Sha1"].as_str().expect("Sha1").to_string();
                let size = s["Size"].as_u64().expect("Size");
                assert_eq!(data.len() as u64, size, "{path}: stream data and size");
                if size > 0 {
                    assert_eq!(
                        hex::encode(Sha1::digest(&data)),
                        sha1,
                        "{path}: stream data"
                    );
                }
                (s["Name"].as_str().expect("Name").to_string(), (sha1, size))
            })
            .collect();
        let ours = Shown {
            short_name: e["ShortName"].as_str().unwrap_or("").to_string(),
            attributes: e["Attributes"].as_u64().expect("Attributes") as u32,
            security_descriptor: e["SecurityId"]
                .as_u64()
                .map(|i| descriptors[i as usize].clone()),
            creation_time: wimlib_time(ft),
            reparse_tag: e["ReparseTag"].as_u64().map(|t| t as u32),
            unix: unix_shown(&e["Unix"]),
            streams,
        };
        assert_eq!(&ours, theirs, "'{path}' differs from wimlib's listing");
        if !path.is_empty() {
            assert_eq!(
                created_7z.get(path),
                Some(&seven_zip_time(ft)),
                "'{path}': creation time to 100 ns against 7-Zip"
            );
        }
    }
    let count = |what: &str| entries.iter().filter(|e| !e[what].is_null()).count();
    assert_eq!(count("ShortName"), 4);
    assert_eq!(count("NamedStreams"), 1);
    assert_eq!(count("ReparseData"), 2);
}

/// A tree captured by wimlib itself with `--unix-data` (files, folders,
/// hard links, symbolic links, times, owners and modes): every entry of the
/// metadata file matches `wimlib-imagex dir --detailed`.
#[test]
fn metadata_file_of_a_wimlib_capture_matches_wimlib() {
    let fx = crate::wim::capture(&["--unix-data", "--compress=LZX"]);
    let meta = expand_with_metadata(&fx.wim, fx.dir.path());
    let shown = parse_wimlib(&String::from_utf8_lossy(
        &wimlib(&["dir", fx.wim.to_str().expect("utf-8"), "1", "--detailed"]).stdout,
    ));
    let entries = meta["Entries"].as_array().expect("Entries");
    assert_eq!(
        entries.len(),
        shown.len(),
        "one entry per file wimlib lists"
    );
    let mut with_unix = 0;
    for e in entries {
        let path = e["Path"].as_str().expect("Path");
        let theirs = shown
            .get(&format!("/{path}"))
            .unwrap_or_else(|| panic!("wimlib lists /{path}"));
        let ours = Shown {
            short_name: e["ShortName"].as_str().unwrap_or("").to_string(),
            attributes: e["Attributes"].as_u64().expect("Attributes") as u32,
            security_descriptor: None,
            creation_time: wimlib_time(e["CreationTime"].as_u64().expect("CreationTime")),
            reparse_tag: e["ReparseTag"].as_u64().map(|t| t as u32),
            unix: unix_shown(&e["Unix"]),
            streams: BTreeMap::new(),
        };
        with_unix += usize::from(ours.unix.is_some());
        assert_eq!(&ours, theirs, "'{path}' differs from wimlib's listing");
    }
    assert_eq!(with_unix, entries.len(), "every entry has UNIX data");
}
