//! An image's metadata resource: the security data and the directory tree.
//!
//! The parser walks the tree iteratively, checks every entry's extent against
//! the resource, and refuses cycles and overlapping entries, so a hostile
//! file can neither loop nor make it read outside the buffer.

use super::format::{
    self, attributes, DentryFixed, ExtraStreamEntryFixed, SecurityDataHeader, UnixData,
    TAG_OBJECT_ID, TAG_WIMLIB_UNIX_DATA,
};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the security data is damaged: {0}")]
    Security(String),
    #[error("the directory entry at offset {offset} is damaged: {reason}")]
    Dentry { offset: u64, reason: String },
    #[error("the directory tree is damaged: {0}")]
    Tree(String),
}

fn bad(offset: u64, reason: impl Into<String>) -> MetadataError {
    MetadataError::Dentry {
        offset,
        reason: reason.into(),
    }
}

pub type Sha1 = [u8; 20];
pub const ZERO_HASH: Sha1 = [0; 20];

/// A named data stream of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedStream {
    pub name: Box<str>,
    pub hash: Sha1,
}

/// What few entries have, kept apart so that the common entry stays small
/// (an image may have hundreds of thousands of entries, all in memory).
#[derive(Clone, Debug, Default)]
pub struct DentryExtra {
    /// Hash of the reparse data (reparse points only).
    pub reparse_hash: Sha1,
    pub short_name: Box<str>,
    pub named_streams: Vec<NamedStream>,
    pub object_id: Option<Box<[u8]>>,
    pub unix: Option<UnixData>,
}

/// One directory entry. Its children are a run of consecutive indexes into
/// [`Image::entries`] ([`Dentry::children`]).
#[derive(Clone, Debug)]
pub struct Dentry {
    /// Where the name is in [`Image::names`] ([`Image::name_of`]): the
    /// names of all entries are kept in one string.
    pub name_at: u32,
    pub name_len: u32,
    /// Whether the stored name was valid UTF-16.
    pub name_valid: bool,
    pub attributes: u32,
    pub security_id: u32,
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    /// Hash of the unnamed data stream (zero: none or empty).
    pub data_hash: Sha1,
    pub reparse_tag: u32,
    pub reparse_flags: u16,
    /// Hard-link group (0: not linked).
    pub link_group: u64,
    /// Short name, named streams, object id and UNIX data, when any.
    pub extra: Option<Box<DentryExtra>>,
    /// The parent's index (the root is its own parent).
    pub parent: usize,
    /// The children: `first_child .. first_child + child_count`.
    pub first_child: u32,
    pub child_count: u32,
}

impl Dentry {
    pub fn is_directory(&self) -> bool {
        self.attributes & attributes::DIRECTORY != 0 && !self.is_reparse_point()
    }

    pub fn is_reparse_point(&self) -> bool {
        self.attributes & attributes::REPARSE_POINT != 0
    }

    /// The indexes of the children in [`Image::entries`].
    pub fn children(&self) -> std::ops::Range<usize> {
        let first = self.first_child as usize;
        first..first + self.child_count as usize
    }

    /// Hash of the reparse data (zero: none, or not a reparse point).
    pub fn reparse_hash(&self) -> Sha1 {
        self.extra.as_ref().map_or(ZERO_HASH, |x| x.reparse_hash)
    }

    /// The short (8.3) name; empty when none.
    pub fn short_name(&self) -> &str {
        self.extra.as_ref().map_or("", |x| &x.short_name)
    }

    pub fn named_streams(&self) -> &[NamedStream] {
        self.extra.as_ref().map_or(&[], |x| &x.named_streams)
    }

    pub fn object_id(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|x| x.object_id.as_deref())
    }

    pub fn unix(&self) -> Option<UnixData> {
        self.extra.as_ref().and_then(|x| x.unix)
    }
}

/// A parsed metadata resource.
#[derive(Clone, Debug, Default)]
pub struct Image {
    /// Self-relative security descriptors, indexed by security id.
    pub security_descriptors: Vec<Vec<u8>>,
    /// Entry 0 is the root.
    pub entries: Vec<Dentry>,
    /// The names of all entries, one after the other.
    pub names: String,
}

impl Image {
    /// The name of entry `e` as stored (UTF-16 decoded; invalid UTF-16 is
    /// replaced, see [`Dentry::name_valid`]).
    pub fn name_of(&self, e: &Dentry) -> &str {
        let start = e.name_at as usize;
        self.names
            .get(start..start.saturating_add(e.name_len as usize))
            .unwrap_or("")
    }

    /// The name of entry `i`.
    pub fn name(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |e| self.name_of(e))
    }

    /// The path of entry `i` from the root, `/`-separated (root: "").
    pub fn path_of(&self, mut i: usize) -> String {
        let mut parts = Vec::new();
        while i != 0 {
            let Some(e) = self.entries.get(i) else { break };
            parts.push(self.name_of(e));
            i = e.parent;
        }
        parts.reverse();
        parts.join("/")
    }
}

fn align8(v: u64) -> u64 {
    v.saturating_add(7) & !7
}

fn slice(buf: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    buf.get(start..end)
}

fn utf16(bytes: &[u8]) -> (String, bool) {
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    match String::from_utf16(&units.clone().collect::<Vec<_>>()) {
        Ok(s) => (s, true),
        Err(_) => (
            char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
            false,
        ),
    }
}

/// Parses a metadata resource.
pub fn parse(buf: &[u8]) -> Result<Image, MetadataError> {
    let len = buf.len() as u64;
    let (security_descriptors, root_offset) = parse_security(buf)?;
    let mut image = Image {
        security_descriptors,
        entries: Vec::new(),
        names: String::new(),
    };
    // Every entry is at least 8 bytes apart; cap the walk accordingly.
    let max_entries = (len / 8) as usize + 1;
    // Entries start 8-byte aligned: one bit per 8 bytes of the resource,
    // for the starts seen (a cycle) and for the bytes entries take (an
    // overlap), so the checks cost the same whatever the number of entries.
    let mut starts = Bits::new(len / 8 + 1);
    let mut taken = Bits::new(len / 8 + 1);
    let mut claim = |offset: u64, end: u64| -> Result<(), MetadataError> {
        for unit in offset / 8..end.div_ceil(8) {
            if taken.test_and_set(unit) {
                return Err(MetadataError::Tree(format!(
                    "the entry at offset {offset} overlaps another one"
                )));
            }
        }
        Ok(())
    };

    let (root, root_end) = parse_dentry(buf, root_offset, 0, &mut image.names)?;
    if !root.is_directory() {
        return Err(MetadataError::Tree(
            "the root entry is not a directory".into(),
        ));
    }
    starts.test_and_set(root_offset / 8);
    claim(root_offset, root_end)?;
    image.entries.push(root);

    // Directories whose children are still to be read.
    // (entry, its offset in the resource) of the directories to read.
    let mut pending = vec![(0usize, root_offset)];
    while let Some((dir, dir_offset)) = pending.pop() {
        let subdir = match image.entries.get(dir) {
            Some(d) if d.is_directory() => read_subdir_offset(buf, dir_offset),
            _ => 0,
        };
        if subdir == 0 {
            continue;
        }
        let mut offset = subdir;
        loop {
            let Some(len_bytes) = slice(buf, offset, 8) else {
                return Err(bad(offset, "the entry lies past the end of the metadata"));
            };
            let length = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8]));
            if length <= 8 {
                break;
            }
            if starts.test_and_set(offset / 8) {
                return Err(MetadataError::Tree(format!(
                    "the entry at offset {offset} is reached twice (a cycle)"
                )));
            }
            if image.entries.len() >= max_entries || image.entries.len() >= u32::MAX as usize {
                return Err(MetadataError::Tree("too many entries".into()));
            }
            let (mut entry, end) = parse_dentry(buf, offset, dir, &mut image.names)?;
            entry.parent = dir;
            let index = image.entries.len();
            claim(offset, end)?;
            let is_dir = entry.is_directory();
            image.entries.push(entry);
            // Siblings are read in one run: the children are consecutive.
            if let Some(p) = image.entries.get_mut(dir) {
                if p.child_count == 0 {
                    p.first_child = index as u32;
                }
                p.child_count += 1;
            }
            if is_dir {
                pending.push((index, offset));
            }
            offset = end;
        }
    }

    Ok(image)
}

/// A set of small integers.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Bits {
        Bits(vec![0; (n / 64 + 1) as usize])
    }

    /// Adds `i`; returns whether it was already there (or out of range).
    fn test_and_set(&mut self, i: u64) -> bool {
        match self.0.get_mut((i / 64) as usize) {
            Some(word) => {
                let bit = 1u64 << (i % 64);
                let was = *word & bit != 0;
                *word |= bit;
                was
            }
            None => true,
        }
    }
}

fn read_subdir_offset(buf: &[u8], offset: u64) -> u64 {
    slice(buf, offset + 16, 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Returns the descriptors and the offset of the root entry.
fn parse_security(buf: &[u8]) -> Result<(Vec<Vec<u8>>, u64), MetadataError> {
    let sec = |m: &str| MetadataError::Security(m.to_string());
    let header: SecurityDataHeader =
        format::parse(buf).ok_or_else(|| sec("the metadata is too short"))?;
    let total = if header.total_length == 0 {
        8
    } else {
        u64::from(header.total_length)
    };
    let len = buf.len() as u64;
    if total > len {
        return Err(sec("its length exceeds the metadata resource"));
    }
    let count = u64::from(header.count);
    let sizes_end = count
        .checked_mul(8)
        .and_then(|v| v.checked_add(SecurityDataHeader::SIZE as u64))
        .filter(|&v| v <= total)
        .ok_or_else(|| sec("its descriptor count does not fit its length"))?;
    let sizes = slice(buf, 8, sizes_end - 8).ok_or_else(|| sec("truncated"))?;
    let mut pos = sizes_end;
    let mut descriptors = Vec::with_capacity(count as usize);
    for s in sizes.chunks_exact(8) {
        let size = u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= total)
            .ok_or_else(|| sec("a descriptor lies past its end"))?;
        descriptors.push(slice(buf, pos, size).unwrap_or(&[]).to_vec());
        pos = end;
    }
    Ok((descriptors, align8(total)))
}

/// Parses the entry at `offset` with its extra stream entries; returns it
/// and the offset just past it (where its next sibling starts).
/// Its name is appended to `names`.
fn parse_dentry(
    buf: &[u8],
    offset: u64,
    parent: usize,
    names: &mut String,
) -> Result<(Dentry, u64), MetadataError> {
    if !offset.is_multiple_of(8) {
        return Err(bad(offset, "not 8-byte aligned"));
    }
    let fixed_bytes = slice(buf, offset, DentryFixed::SIZE as u64)
        .ok_or_else(|| bad(offset, "the entry lies past the end of the metadata"))?;
    let fixed: DentryFixed =
        format::parse(fixed_bytes).ok_or_else(|| bad(offset, "truncated entry"))?;
    let length = fixed.length;
    if length < DentryFixed::SIZE as u64 {
        return Err(bad(offset, format!("its length {length} is too small")));
    }
    let body =
        slice(buf, offset, length).ok_or_else(|| bad(offset, "its length runs past the end"))?;
    let name_len = u64::from(fixed.name_length);
    let short_len = u64::from(fixed.short_name_length);
    if !name_len.is_multiple_of(2) || !short_len.is_multiple_of(2) {
        return Err(bad(offset, "odd name length"));
    }
    let mut p = DentryFixed::SIZE as u64;
    let name_bytes = slice(body, p, name_len).ok_or_else(|| bad(offset, "name past its end"))?;
    if name_len > 0 {
        p += name_len + 2;
    }
    let short_bytes =
        slice(body, p, short_len).ok_or_else(|| bad(offset, "short name past its end"))?;
    if short_len > 0 {
        p += short_len + 2;
    }
    if p > length {
        return Err(bad(offset, "names run past its end"));
    }
    let (name, name_valid) = utf16(name_bytes);
    let (short_name, _) = utf16(short_bytes);

    // Tagged items.
    let mut object_id = None;
    let mut unix = None;
    let mut t = align8(p);
    while t + 8 <= length {
        let Some(h) = slice(body, t, 8) else { break };
        let tag = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let tlen = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let Some(data) = slice(body, t + 8, tlen) else {
            break;
        };
        match tag {
            TAG_OBJECT_ID => object_id = Some(Box::from(data)),
            TAG_WIMLIB_UNIX_DATA => unix = format::parse::<UnixData>(data),
            _ => {}
        }
        t = align8(t + 8 + tlen);
    }

    // Extra stream entries.
    let mut pos = align8(offset + length);
    let mut unnamed_extra: Vec<Sha1> = Vec::new();
    let mut named_streams = Vec::new();
    for _ in 0..fixed.extra_stream_count {
        let sb = slice(buf, pos, ExtraStreamEntryFixed::SIZE as u64)
            .ok_or_else(|| bad(pos, "a stream entry lies past the end of the metadata"))?;
        let s: ExtraStreamEntryFixed =
            format::parse(sb).ok_or_else(|| bad(pos, "truncated stream entry"))?;
        let slen = s.length;
        let nlen = u64::from(s.name_length);
        if slen < ExtraStreamEntryFixed::SIZE as u64
            || !nlen.is_multiple_of(2)
            || ExtraStreamEntryFixed::SIZE as u64 + nlen > slen
        {
            return Err(bad(pos, "a stream entry has a bad length"));
        }
        slice(buf, pos, slen).ok_or_else(|| bad(pos, "a stream entry runs past the end"))?;
        if nlen == 0 {
            unnamed_extra.push(s.hash);
        } else {
            let nb = slice(buf, pos + ExtraStreamEntryFixed::SIZE as u64, nlen)
                .ok_or_else(|| bad(pos, "stream name past the end"))?;
            named_streams.push(NamedStream {
                name: utf16(nb).0.into_boxed_str(),
                hash: s.hash,
            });
        }
        pos = align8(pos + slen);
    }

    let is_reparse = fixed.attributes & attributes::REPARSE_POINT != 0;
    let mut unnamed: Vec<Sha1> = Vec::new();
    if unnamed_extra.is_empty() {
        unnamed.push(fixed.hash);
    } else {
        unnamed.extend(unnamed_extra);
    }
    let (reparse_hash, data_hash) = if is_reparse {
        (
            unnamed.first().copied().unwrap_or(ZERO_HASH),
            unnamed.get(1).copied().unwrap_or(ZERO_HASH),
        )
    } else {
        (ZERO_HASH, unnamed.first().copied().unwrap_or(ZERO_HASH))
    };

    let extra = (reparse_hash != ZERO_HASH
        || !short_name.is_empty()
        || !named_streams.is_empty()
        || object_id.is_some()
        || unix.is_some())
    .then(|| {
        Box::new(DentryExtra {
            reparse_hash,
            short_name: short_name.into_boxed_str(),
            named_streams,
            object_id,
            unix,
        })
    });
    let name_at = u32::try_from(names.len())
        .map_err(|_| MetadataError::Tree("the names take too much room".into()))?;
    names.push_str(&name);
    let dentry = Dentry {
        name_at,
        name_len: name.len() as u32,
        name_valid,
        attributes: fixed.attributes,
        security_id: fixed.security_id,
        creation_time: fixed.creation_time,
        last_access_time: fixed.last_access_time,
        last_write_time: fixed.last_write_time,
        data_hash,
        reparse_tag: if is_reparse { fixed.reparse_tag() } else { 0 },
        reparse_flags: if is_reparse { fixed.reparse_flags() } else { 0 },
        link_group: if is_reparse {
            0
        } else {
            fixed.hard_link_group()
        },
        extra,
        parent,
        first_child: 0,
        child_count: 0,
    };
    Ok((dentry, pos))
}
