//! A small writer of uncompressed one-image WIM files, for tests that need
//! what `wimlib-imagex capture` cannot make on Linux: reparse points with
//! Windows targets, security descriptors, named streams, short names,
//! creation times and attributes. The files follow `shared/WIM-FORMAT.md`
//! and are read back by wimlib itself in the tests that use them.
#![allow(dead_code)]

use std::path::Path;

use sha1::{Digest, Sha1};

pub const ATTR_READONLY: u32 = 0x1;
pub const ATTR_HIDDEN: u32 = 0x2;
pub const ATTR_SYSTEM: u32 = 0x4;
pub const ATTR_DIRECTORY: u32 = 0x10;
pub const ATTR_ARCHIVE: u32 = 0x20;
pub const ATTR_NORMAL: u32 = 0x80;
pub const ATTR_REPARSE_POINT: u32 = 0x400;
pub const TAG_SYMLINK: u32 = 0xA000_000C;
pub const TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// Header flag: reparse targets were made relative to the image root.
pub const FLAG_RP_FIX: u32 = 0x80;

/// 2020-01-02 03:04:05 UTC as a FILETIME.
pub const SOME_TIME: u64 = 132_224_642_450_000_000;

/// One entry of the image to write.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub short_name: String,
    pub attributes: u32,
    /// Index into the image's security descriptors (`None`: -1).
    pub security_id: Option<u32>,
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    /// The unnamed data stream (files).
    pub data: Option<Vec<u8>>,
    /// Reparse tag, reparse flags and reparse data (without the 8-byte
    /// header).
    pub reparse: Option<(u32, u16, Vec<u8>)>,
    pub streams: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

impl Node {
    pub fn dir(name: &str, children: Vec<Node>) -> Node {
        Node {
            name: name.into(),
            short_name: String::new(),
            attributes: ATTR_DIRECTORY,
            security_id: None,
            creation_time: SOME_TIME,
            last_access_time: SOME_TIME,
            last_write_time: SOME_TIME,
            data: None,
            reparse: None,
            streams: Vec::new(),
            children,
        }
    }

    pub fn file(name: &str, data: &[u8]) -> Node {
        Node {
            attributes: ATTR_ARCHIVE,
            data: (!data.is_empty()).then(|| data.to_vec()),
            ..Node::dir(name, Vec::new())
        }
    }

    /// A symbolic link whose substitute and print names are `target`;
    /// `relative` sets SYMLINK_FLAG_RELATIVE.
    pub fn symlink(name: &str, target: &str, relative: bool, rp_flags: u16) -> Node {
        Node {
            attributes: ATTR_REPARSE_POINT | ATTR_ARCHIVE,
            reparse: Some((
                TAG_SYMLINK,
                rp_flags,
                link_data(TAG_SYMLINK, target, target, relative),
            )),
            ..Node::dir(name, Vec::new())
        }
    }

    /// A junction (mount point) to `target`.
    pub fn junction(name: &str, target: &str, rp_flags: u16) -> Node {
        Node {
            attributes: ATTR_REPARSE_POINT | ATTR_DIRECTORY,
            reparse: Some((
                TAG_MOUNT_POINT,
                rp_flags,
                link_data(TAG_MOUNT_POINT, target, target, false),
            )),
            ..Node::dir(name, Vec::new())
        }
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Symbolic link or junction reparse data (without the 8-byte header).
pub fn link_data(tag: u32, substitute: &str, print: &str, relative: bool) -> Vec<u8> {
    let sub = utf16(substitute);
    let prn = utf16(print);
    let mut d = Vec::new();
    let sub_len = sub.len() as u16;
    let prn_off = sub_len + 2;
    for v in [0u16, sub_len, prn_off, prn.len() as u16] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    if tag == TAG_SYMLINK {
        d.extend_from_slice(&u32::from(relative).to_le_bytes());
    }
    d.extend_from_slice(&sub);
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(&prn);
    d.extend_from_slice(&[0, 0]);
    d
}

fn align8(v: usize) -> usize {
    (v + 7) & !7
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// The blobs of a file being written: hash → (data, reference count).
#[derive(Default)]
struct Blobs {
    order: Vec<[u8; 20]>,
    data: std::collections::HashMap<[u8; 20], (Vec<u8>, u32)>,
}

impl Blobs {
    fn add(&mut self, data: &[u8]) -> [u8; 20] {
        if data.is_empty() {
            return [0; 20];
        }
        let h = sha1(data);
        let slot = self.data.entry(h).or_insert_with(|| {
            self.order.push(h);
            (data.to_vec(), 0)
        });
        slot.1 += 1;
        h
    }
}

/// Serialises one dentry (with its extra stream entries); the subdirectory
/// offset is patched later at `at + 16`.
fn dentry(node: &Node, blobs: &mut Blobs) -> Vec<u8> {
    let name = utf16(&node.name);
    let short = utf16(&node.short_name);
    let mut len = 102 + name.len() + if name.is_empty() { 0 } else { 2 };
    if !short.is_empty() {
        len += short.len() + 2;
    }
    let len = align8(len);
    let mut d = vec![0u8; len];
    d[0..8].copy_from_slice(&(len as u64).to_le_bytes());
    d[8..12].copy_from_slice(&node.attributes.to_le_bytes());
    let sid = node.security_id.map_or(u32::MAX, |s| s);
    d[12..16].copy_from_slice(&sid.to_le_bytes());
    d[40..48].copy_from_slice(&node.creation_time.to_le_bytes());
    d[48..56].copy_from_slice(&node.last_access_time.to_le_bytes());
    d[56..64].copy_from_slice(&node.last_write_time.to_le_bytes());
    // The unnamed stream: the reparse data of a reparse point, else the data.
    let unnamed: Vec<u8> = match (&node.reparse, &node.data) {
        (Some((_, _, r)), _) => r.clone(),
        (None, Some(data)) => data.clone(),
        (None, None) => Vec::new(),
    };
    if let Some((tag, flags, _)) = &node.reparse {
        d[88..92].copy_from_slice(&tag.to_le_bytes());
        d[94..96].copy_from_slice(&flags.to_le_bytes());
    }
    let mut extra: Vec<(Vec<u8>, [u8; 20])> = Vec::new();
    if node.streams.is_empty() {
        let h = blobs.add(&unnamed);
        d[64..84].copy_from_slice(&h);
    } else {
        extra.push((Vec::new(), blobs.add(&unnamed)));
        for (sname, sdata) in &node.streams {
            extra.push((utf16(sname), blobs.add(sdata)));
        }
    }
    d[96..98].copy_from_slice(&(extra.len() as u16).to_le_bytes());
    d[98..100].copy_from_slice(&(short.len() as u16).to_le_bytes());
    d[100..102].copy_from_slice(&(name.len() as u16).to_le_bytes());
    d[102..102 + name.len()].copy_from_slice(&name);
    if !short.is_empty() {
        let at = 102 + name.len() + 2;
        d[at..at + short.len()].copy_from_slice(&short);
    }
    for (sname, hash) in extra {
        let elen = align8(38 + sname.len() + if sname.is_empty() { 0 } else { 2 });
        let mut e = vec![0u8; elen];
        e[0..8].copy_from_slice(&(elen as u64).to_le_bytes());
        e[16..36].copy_from_slice(&hash);
        e[36..38].copy_from_slice(&(sname.len() as u16).to_le_bytes());
        e[38..38 + sname.len()].copy_from_slice(&sname);
        d.extend_from_slice(&e);
    }
    d
}

/// Writes the children of `node` (whose dentry starts at `at`) as a sibling
/// list, then their subdirectories, depth first.
fn write_children(meta: &mut Vec<u8>, at: usize, node: &Node, blobs: &mut Blobs) {
    let start = meta.len();
    meta[at + 16..at + 24].copy_from_slice(&(start as u64).to_le_bytes());
    let mut positions = Vec::new();
    for child in &node.children {
        positions.push(meta.len());
        let bytes = dentry(child, blobs);
        meta.extend_from_slice(&bytes);
    }
    meta.extend_from_slice(&[0u8; 8]);
    for (child, pos) in node.children.iter().zip(positions) {
        if child.attributes & ATTR_DIRECTORY != 0 && child.reparse.is_none() {
            write_children(meta, pos, child, blobs);
        }
    }
}

fn count(node: &Node, dirs: &mut u64, files: &mut u64, bytes: &mut u64) {
    for c in &node.children {
        if c.attributes & ATTR_DIRECTORY != 0 && c.reparse.is_none() {
            *dirs += 1;
            count(c, dirs, files, bytes);
        } else {
            *files += 1;
            *bytes += c.data.as_ref().map_or(0, |d| d.len() as u64);
        }
    }
}

fn reshdr(stored: u64, flags: u8, offset: u64, size: u64) -> [u8; 24] {
    let mut r = [0u8; 24];
    r[0..8].copy_from_slice(&(stored | (u64::from(flags) << 56)).to_le_bytes());
    r[8..16].copy_from_slice(&offset.to_le_bytes());
    r[16..24].copy_from_slice(&size.to_le_bytes());
    r
}

/// Writes `root` (an unnamed directory) as image 1 of an uncompressed WIM.
pub fn write_wim(path: &Path, root: &Node, security: &[Vec<u8>], header_flags: u32) {
    let mut blobs = Blobs::default();
    // Security data.
    let mut meta = Vec::new();
    let total: usize = 8 + 8 * security.len() + security.iter().map(Vec::len).sum::<usize>();
    let total = align8(total);
    meta.extend_from_slice(&(total as u32).to_le_bytes());
    meta.extend_from_slice(&(security.len() as u32).to_le_bytes());
    for sd in security {
        meta.extend_from_slice(&(sd.len() as u64).to_le_bytes());
    }
    for sd in security {
        meta.extend_from_slice(sd);
    }
    meta.resize(total, 0);
    let root_at = meta.len();
    let bytes = dentry(root, &mut blobs);
    meta.extend_from_slice(&bytes);
    meta.extend_from_slice(&[0u8; 8]);
    write_children(&mut meta, root_at, root, &mut blobs);

    let mut out = vec![0u8; 208];
    let mut table = Vec::new();
    for h in &blobs.order {
        let (data, refs) = &blobs.data[h];
        let offset = out.len() as u64;
        out.extend_from_slice(data);
        table.extend_from_slice(&reshdr(data.len() as u64, 0, offset, data.len() as u64));
        table.extend_from_slice(&1u16.to_le_bytes());
        table.extend_from_slice(&refs.to_le_bytes());
        table.extend_from_slice(h);
    }
    let meta_at = out.len() as u64;
    out.extend_from_slice(&meta);
    table.extend_from_slice(&reshdr(meta.len() as u64, 0x2, meta_at, meta.len() as u64));
    table.extend_from_slice(&1u16.to_le_bytes());
    table.extend_from_slice(&1u32.to_le_bytes());
    table.extend_from_slice(&sha1(&meta));
    let table_at = out.len() as u64;
    out.extend_from_slice(&table);

    let (mut dirs, mut files, mut bytes) = (0, 0, 0);
    count(root, &mut dirs, &mut files, &mut bytes);
    let xml = format!(
        "<WIM><TOTALBYTES>{}</TOTALBYTES><IMAGE INDEX=\"1\"><DIRCOUNT>{dirs}</DIRCOUNT>\
         <FILECOUNT>{files}</FILECOUNT><TOTALBYTES>{bytes}</TOTALBYTES>\
         <HARDLINKBYTES>0</HARDLINKBYTES><NAME>crafted</NAME></IMAGE></WIM>",
        out.len()
    );
    let mut xml_bytes = vec![0xFF, 0xFE];
    xml_bytes.extend_from_slice(&utf16(&xml));
    let xml_at = out.len() as u64;
    out.extend_from_slice(&xml_bytes);

    let mut h = Vec::with_capacity(208);
    h.extend_from_slice(b"MSWIM\0\0\0");
    h.extend_from_slice(&208u32.to_le_bytes());
    h.extend_from_slice(&0x10D00u32.to_le_bytes());
    h.extend_from_slice(&header_flags.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&sha1(path.to_string_lossy().as_bytes())[..16]);
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&reshdr(
        table.len() as u64,
        0x2,
        table_at,
        table.len() as u64,
    ));
    h.extend_from_slice(&reshdr(
        xml_bytes.len() as u64,
        0x2,
        xml_at,
        xml_bytes.len() as u64,
    ));
    h.resize(208, 0);
    out[..208].copy_from_slice(&h);
    std::fs::write(path, out).expect("write the crafted WIM");
}
