//! The Windows-only metadata of an image, kept beside an applied tree.
//!
//! A Linux file system cannot hold security descriptors, file attributes,
//! named data streams, short names, creation times, object ids or reparse
//! data other than symbolic links. They are collected into a [`Sidecar`] and
//! written as JSON (binary values as lowercase hex), so the image can be
//! exported faithfully later. Entries are listed by their path in the image
//! (`/`-separated, the root is ""), in the order of the metadata.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{attributes, IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK};
use super::metadata::{Image, Sha1, ZERO_HASH};
use super::stream::read_small_blobs;
use super::{WimError, WimFile};

/// The format tag written into every metadata file.
pub const FORMAT: &str = "containerimage-wim-metadata/1";
/// The most bytes of reparse data and named streams held in memory for the
/// metadata file, in total (reparse data first, then named streams, in
/// metadata order). What does not fit is listed with its size and SHA-1
/// but without its data, so the metadata a file carries cannot push an
/// apply past its memory bar.
pub const MAX_KEPT_BYTES: u64 = 16 << 20;

/// The Windows-only metadata of one image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Sidecar {
    pub format: String,
    pub image_index: u32,
    /// Self-relative security descriptors (hex), indexed by `SecurityId`.
    pub security_descriptors: Vec<String>,
    pub entries: Vec<SidecarEntry>,
}

/// One entry of the image.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SidecarEntry {
    pub path: String,
    /// FILE_ATTRIBUTE_* bits.
    pub attributes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_id: Option<u32>,
    /// FILETIME (100 ns units since 1601-01-01 UTC).
    pub creation_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reparse_tag: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reparse_flags: Option<u16>,
    /// Reparse data without its 8-byte header (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reparse_data: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named_streams: Vec<SidecarStream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// wimlib's UNIX data, when the image was captured with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<UnixOwner>,
}

/// A named data stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SidecarStream {
    pub name: String,
    pub size: u64,
    pub sha1: String,
    /// The stream's bytes (hex); absent when they did not fit in
    /// [`MAX_KEPT_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct UnixOwner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev: u32,
}

/// Attribute bits a Linux tree represents by itself.
const REPRESENTED_ATTRIBUTES: u32 = attributes::DIRECTORY | 0x80 /* NORMAL */ | 0x20 /* ARCHIVE */;

/// Collects the Windows-only metadata of image `index`. Without
/// `with_data`, reparse data and named stream contents are left out (enough
/// to count what a Linux tree cannot hold).
pub(crate) fn build(
    wim: &WimFile,
    index: u32,
    image: &Image,
    with_data: bool,
) -> Result<Sidecar, WimError> {
    // Reparse data and small named streams, read in one disk-ordered pass.
    let wanted = match with_data {
        true => data_blobs(wim, image, &HashMap::new(), MAX_KEPT_BYTES),
        false => HashMap::new(),
    };
    let hashes: Vec<Sha1> = wanted.keys().copied().collect();
    let describe = |h: &Sha1| {
        wanted
            .get(h)
            .map(|&i| format!("'{}'", image.path_of(i)))
            .unwrap_or_default()
    };
    let data = read_small_blobs(wim, &hashes, MAX_KEPT_BYTES, &describe)?;
    build_from(wim, index, image, with_data, &data)
}

/// The blobs whose bytes the metadata file holds, each with an entry that
/// uses it: reparse data, then named streams, in metadata order, as long
/// as their total stays within `budget` bytes (blobs in `already` are held
/// anyway and cost nothing more; blobs the file lacks are left out and
/// reported when the metadata file is built).
pub(crate) fn data_blobs(
    wim: &WimFile,
    image: &Image,
    already: &HashMap<Sha1, usize>,
    budget: u64,
) -> HashMap<Sha1, usize> {
    let mut wanted: HashMap<Sha1, usize> = HashMap::new();
    let mut left = budget;
    let mut want = |hash: Sha1, i: usize, wanted: &mut HashMap<Sha1, usize>| {
        if hash == ZERO_HASH || wanted.contains_key(&hash) || already.contains_key(&hash) {
            return;
        }
        if let Some(blob) = wim.blob(&hash) {
            if blob.size <= left {
                left -= blob.size;
                wanted.insert(hash, i);
            }
        }
    };
    for (i, e) in image.entries.iter().enumerate() {
        if e.is_reparse_point() {
            want(e.reparse_hash(), i, &mut wanted);
        }
    }
    for (i, e) in image.entries.iter().enumerate() {
        for s in e.named_streams() {
            want(s.hash, i, &mut wanted);
        }
    }
    wanted
}

/// Checks that every blob the metadata file refers to is in the file (the
/// reparse data only `with_data`).
pub(crate) fn check_blobs(wim: &WimFile, image: &Image, with_data: bool) -> Result<(), WimError> {
    let missing = |hash: &Sha1, what: String| WimError::MissingBlob {
        path: wim.path().to_path_buf(),
        files: what,
        hash: hex::encode(hash),
    };
    for (i, e) in image.entries.iter().enumerate() {
        if with_data
            && e.is_reparse_point()
            && e.reparse_hash() != ZERO_HASH
            && wim.blob(&e.reparse_hash()).is_none()
        {
            return Err(missing(
                &e.reparse_hash(),
                format!("'{}'", image.path_of(i)),
            ));
        }
        for s in e.named_streams() {
            if s.hash != ZERO_HASH && wim.blob(&s.hash).is_none() {
                let what = format!("'{}:{}'", image.path_of(i), s.name);
                return Err(missing(&s.hash, what));
            }
        }
    }
    Ok(())
}

/// The metadata-file entry of image entry `i` (its blobs checked before).
fn entry_of(
    wim: &WimFile,
    image: &Image,
    i: usize,
    with_data: bool,
    data: &HashMap<Sha1, Vec<u8>>,
) -> SidecarEntry {
    let Some(e) = image.entries.get(i) else {
        return SidecarEntry::default();
    };
    let mut entry = SidecarEntry {
        path: image.path_of(i),
        attributes: e.attributes,
        security_id: (e.security_id != u32::MAX).then_some(e.security_id),
        creation_time: e.creation_time,
        short_name: (!e.short_name().is_empty()).then(|| e.short_name().to_string()),
        object_id: e.object_id().map(hex::encode),
        unix: e.unix().map(|u| UnixOwner {
            uid: u.uid,
            gid: u.gid,
            mode: u.mode,
            rdev: u.rdev,
        }),
        ..SidecarEntry::default()
    };
    if e.is_reparse_point() {
        entry.reparse_tag = Some(e.reparse_tag);
        entry.reparse_flags = Some(e.reparse_flags);
        if with_data && e.reparse_hash() != ZERO_HASH {
            entry.reparse_data = data.get(&e.reparse_hash()).map(hex::encode);
        }
    }
    for s in e.named_streams() {
        let (size, bytes) = if s.hash == ZERO_HASH {
            (0, Some(String::new()))
        } else {
            let size = wim.blob(&s.hash).map_or(0, |b| b.size);
            (size, data.get(&s.hash).map(hex::encode))
        };
        entry.named_streams.push(SidecarStream {
            name: s.name.to_string(),
            size,
            sha1: hex::encode(s.hash),
            data: bytes,
        });
    }
    entry
}

/// [`build`] from blob contents already read (those of [`data_blobs`]).
pub(crate) fn build_from(
    wim: &WimFile,
    index: u32,
    image: &Image,
    with_data: bool,
    data: &HashMap<Sha1, Vec<u8>>,
) -> Result<Sidecar, WimError> {
    check_blobs(wim, image, with_data)?;
    Ok(Sidecar {
        format: FORMAT.to_string(),
        image_index: index,
        security_descriptors: image.security_descriptors.iter().map(hex::encode).collect(),
        entries: (0..image.entries.len())
            .map(|i| entry_of(wim, image, i, with_data, data))
            .collect(),
    })
}

/// Writes the metadata file of `image` as [`Sidecar::write`] does, but
/// entry by entry, never holding more than one entry of it in memory: an
/// image of hundreds of thousands of entries costs nothing more to
/// describe.
pub(crate) fn write_streamed(
    path: &Path,
    wim: &WimFile,
    index: u32,
    image: &Image,
    data: &HashMap<Sha1, Vec<u8>>,
) -> Result<(), WimError> {
    check_blobs(wim, image, true)?;
    write_json(
        path,
        &Streamed {
            wim,
            index,
            image,
            data,
        },
    )
}

/// The metadata file of an image, serialised entry by entry.
struct Streamed<'a> {
    wim: &'a WimFile,
    index: u32,
    image: &'a Image,
    data: &'a HashMap<Sha1, Vec<u8>>,
}

impl Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Descriptors<'a>(&'a [Vec<u8>]);
        impl Serialize for Descriptors<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(hex::encode))
            }
        }
        struct Entries<'a>(&'a Streamed<'a>);
        impl Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let t = self.0;
                s.collect_seq(
                    (0..t.image.entries.len()).map(|i| entry_of(t.wim, t.image, i, true, t.data)),
                )
            }
        }
        let mut st = s.serialize_struct("Sidecar", 4)?;
        st.serialize_field("Format", FORMAT)?;
        st.serialize_field("ImageIndex", &self.index)?;
        st.serialize_field(
            "SecurityDescriptors",
            &Descriptors(&self.image.security_descriptors),
        )?;
        st.serialize_field("Entries", &Entries(self))?;
        st.end()
    }
}

/// What a Linux tree cannot hold of `image`, as [`Sidecar::not_represented`]
/// reports it, counted without building the metadata file.
pub(crate) fn not_represented_of(image: &Image) -> Vec<String> {
    let entries = &image.entries;
    counts(&[
        ("security descriptors", image.security_descriptors.len()),
        (
            "file attributes",
            entries
                .iter()
                .filter(|e| {
                    e.attributes & !(REPRESENTED_ATTRIBUTES | attributes::REPARSE_POINT) != 0
                })
                .count(),
        ),
        (
            "named data streams",
            entries.iter().map(|e| e.named_streams().len()).sum(),
        ),
        (
            "short names",
            entries
                .iter()
                .filter(|e| !e.short_name().is_empty())
                .count(),
        ),
        (
            "object ids",
            entries.iter().filter(|e| e.object_id().is_some()).count(),
        ),
        (
            "reparse points other than links",
            entries
                .iter()
                .filter(|e| {
                    e.is_reparse_point()
                        && e.reparse_tag != IO_REPARSE_TAG_SYMLINK
                        && e.reparse_tag != IO_REPARSE_TAG_MOUNT_POINT
                })
                .count(),
        ),
    ])
}

/// "kind: count" lines for the kinds with a count.
fn counts(kinds: &[(&str, usize)]) -> Vec<String> {
    kinds
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what}: {n}"))
        .collect()
}

/// Writes `value` as JSON to `path`, atomically, streamed to the file.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), WimError> {
    let err = |source| WimError::Sidecar {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        serde_json::to_writer(&mut out, value).map_err(|e| err(std::io::Error::other(e)))?;
        std::io::Write::flush(&mut out).map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    crate::fsutil::sync_dir(dir);
    Ok(())
}

impl Sidecar {
    /// What a Linux tree cannot hold, as "kind: count" lines.
    pub fn not_represented(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |what: &str, n: usize| {
            if n > 0 {
                out.push(format!("{what}: {n}"));
            }
        };
        add("security descriptors", self.security_descriptors.len());
        add(
            "file attributes",
            self.entries
                .iter()
                .filter(|e| {
                    e.attributes & !(REPRESENTED_ATTRIBUTES | attributes::REPARSE_POINT) != 0
                })
                .count(),
        );
        add(
            "named data streams",
            self.entries.iter().map(|e| e.named_streams.len()).sum(),
        );
        add(
            "short names",
            self.entries
                .iter()
                .filter(|e| e.short_name.is_some())
                .count(),
        );
        add(
            "object ids",
            self.entries
                .iter()
                .filter(|e| e.object_id.is_some())
                .count(),
        );
        add(
            "reparse points other than links",
            self.entries
                .iter()
                .filter(|e| {
                    e.reparse_tag.is_some_and(|t| {
                        t != IO_REPARSE_TAG_SYMLINK && t != IO_REPARSE_TAG_MOUNT_POINT
                    })
                })
                .count(),
        );
        out
    }

    /// Writes the metadata as JSON, atomically, streamed to the file (no
    /// second copy of it in memory).
    pub fn write(&self, path: &Path) -> Result<(), WimError> {
        write_json(path, self)
    }

    /// Reads a metadata file written by [`Sidecar::write`].
    pub fn read(path: &Path) -> Result<Sidecar, WimError> {
        let err = |source| WimError::Sidecar {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(err)?;
        serde_json::from_slice(&bytes).map_err(|e| err(std::io::Error::other(e)))
    }
}

/// Whether `path` (which may not exist yet) lies inside the folder `dir`
/// (already canonical).
pub(crate) fn is_inside(path: &Path, dir: &Path) -> bool {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => return false,
        }
    };
    // Canonicalise the deepest existing ancestor, keep the rest as written.
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut full = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for part in rest.iter().rev() {
        full.push(part);
    }
    full.starts_with(dir)
}
