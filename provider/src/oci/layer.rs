//! Writing a Windows layer tar from an applied tree and its Windows-only
//! metadata (the metadata file `Expand-WindowsImage -MetadataPath` writes).
//!
//! Entries come parents first in name order (`Files`, `Files/a`,
//! `Files/a/b`, …), each with PAX records for what Windows keeps:
//! `MSWINDOWS.fileattr`, `MSWINDOWS.rawsd` (the recorded security descriptor,
//! else [`DEFAULT_SECURITY_DESCRIPTOR`]), `LIBARCHIVE.creationtime`. Named
//! streams follow their file as `<file>:<stream>` entries; hard links after
//! the first name are link entries; symbolic links and junctions are link
//! entries whose target is the Windows print name (`C:\Windows`), junctions
//! with `MSWINDOWS.mountpoint=1`. Times come from the tree (modification
//! time, written as access and change time too, so the bytes do not depend
//! on when files were last read) and from the metadata (creation time).
//! The tree is read through folder handles without following links.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rustix::fs::{FileType, Stat};

use super::tar::{Header, Kind, TarWriter, Time};
use crate::fsutil::dir::Dir;
use crate::wim::format::{attributes, IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK};
use crate::wim::sidecar::{Sidecar, SidecarEntry};

/// The security descriptor given to an entry with none recorded: owner and
/// group BUILTIN\Users (S-1-5-32-545), no DACL, so a container's user can
/// read and run it (self-relative form).
pub const DEFAULT_SECURITY_DESCRIPTOR: [u8; 52] = {
    let mut sd = [0u8; 52];
    sd[0] = 1; // revision
    sd[2] = 0x00;
    sd[3] = 0x80; // control: SE_SELF_RELATIVE
    sd[4] = 20; // owner at 20
    sd[8] = 36; // group at 36
    let sid: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 0x02, 0, 0];
    let mut i = 0;
    while i < 16 {
        sd[20 + i] = sid[i];
        sd[36 + i] = sid[i];
        i += 1;
    }
    sd
};

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the layer")]
    Write(#[source] io::Error),
    #[error("the metadata of {path} is damaged: {reason}")]
    Metadata { path: String, reason: String },
}

/// One tree of a layer: `Files` or `UtilityVM/Files`, and its metadata.
pub struct Tree<'a> {
    /// The folder holding the applied tree.
    pub dir: &'a Dir,
    /// Its name in the layer (`Files`, `UtilityVM/Files`).
    pub name: &'a str,
    pub metadata: Option<&'a Sidecar>,
}

/// Writes the entries of `trees` (in that order) into `tar`. The parent
/// folders of a tree's name (`UtilityVM`) are written before it.
pub fn write_base_layer<W: Write>(
    tar: &mut TarWriter<W>,
    trees: &[Tree<'_>],
) -> Result<(), LayerError> {
    let mut written_dirs: Vec<String> = Vec::new();
    for tree in trees {
        let meta = Metadata::new(tree.metadata);
        let mut links: HashMap<(u64, u64), String> = HashMap::new();
        // Parents of the tree's own name: plain folders.
        let parts: Vec<&str> = tree.name.split('/').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            if !written_dirs.contains(&parent) {
                let stat = tree
                    .dir
                    .stat(Path::new(""))
                    .map_err(read_err(tree.dir.path()))?;
                let header = header_for(&parent, Kind::Directory, "", 0, &stat, None, &meta)?;
                tar.append(&header, None).map_err(LayerError::Write)?;
                written_dirs.push(parent);
            }
        }
        write_tree(tar, tree, &meta, &mut links, &mut Whiteouts::new())?;
    }
    Ok(())
}

/// Writes a child layer: `files` (what the layer adds or changes, with
/// every folder leading to a change), a whiteout for each of `deleted`
/// (paths below `Files/`) right after its folder's entry, then `Hives` and
/// the delta hives in `hives`.
pub fn write_child_layer<W: Write>(
    tar: &mut TarWriter<W>,
    files: &Tree<'_>,
    deleted: &[String],
    hives: Option<&Dir>,
) -> Result<(), LayerError> {
    let meta = Metadata::new(files.metadata);
    let mut whiteouts = Whiteouts::new();
    for path in deleted {
        let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
        whiteouts
            .entry(folder.to_string())
            .or_default()
            .push(name.to_string());
    }
    write_tree(tar, files, &meta, &mut HashMap::new(), &mut whiteouts)?;
    if let Some((folder, names)) = whiteouts.into_iter().next() {
        return Err(LayerError::Metadata {
            path: format!("{folder}/{}", names.join(", ")),
            reason: "a deleted path whose folder the layer does not hold".into(),
        });
    }
    let Some(hives) = hives else {
        return Ok(());
    };
    let empty = Metadata::new(None);
    let stat = hives.stat(Path::new("")).map_err(read_err(hives.path()))?;
    let header = header_for("Hives", Kind::Directory, "", 0, &stat, None, &empty)?;
    tar.append(&header, None).map_err(LayerError::Write)?;
    let mut entries = hives.entries().map_err(read_err(hives.path()))?;
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for e in entries {
        let name_rel = Path::new(&e.name);
        let name = e.name.to_str().ok_or_else(|| LayerError::Metadata {
            path: format!("Hives/{}", e.name.to_string_lossy()),
            reason: "the name is not UTF-8".into(),
        })?;
        let stat = hives
            .stat(name_rel)
            .map_err(read_err(&hives.display_path(name_rel)))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(LayerError::Metadata {
                path: format!("Hives/{name}"),
                reason: "Hives may hold only files".into(),
            });
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let header = header_for(
            &format!("Hives/{name}"),
            Kind::File,
            "",
            size,
            &stat,
            None,
            &empty,
        )?;
        let mut file = hives
            .open_regular(name_rel)
            .map_err(read_err(&hives.display_path(name_rel)))?;
        tar.append(&header, Some(&mut file as &mut dyn Read))
            .map_err(LayerError::Write)?;
    }
    Ok(())
}

/// The entry of a tree's root folder, then everything below it.
fn write_tree<W: Write>(
    tar: &mut TarWriter<W>,
    tree: &Tree<'_>,
    meta: &Metadata<'_>,
    links: &mut HashMap<(u64, u64), String>,
    whiteouts: &mut Whiteouts,
) -> Result<(), LayerError> {
    let root_stat = tree
        .dir
        .stat(Path::new(""))
        .map_err(read_err(tree.dir.path()))?;
    let header = header_for(
        tree.name,
        Kind::Directory,
        "",
        0,
        &root_stat,
        meta.entry(""),
        meta,
    )?;
    tar.append(&header, None).map_err(LayerError::Write)?;
    walk(tar, tree.dir, tree.name, "", meta, links, whiteouts)
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The metadata by path, and the security descriptors.
struct Metadata<'a> {
    by_path: HashMap<&'a str, &'a SidecarEntry>,
    descriptors: &'a [String],
}

impl<'a> Metadata<'a> {
    fn new(sidecar: Option<&'a Sidecar>) -> Metadata<'a> {
        match sidecar {
            Some(s) => Metadata {
                by_path: s.entries.iter().map(|e| (e.path.as_str(), e)).collect(),
                descriptors: &s.security_descriptors,
            },
            None => Metadata {
                by_path: HashMap::new(),
                descriptors: &[],
            },
        }
    }

    fn entry(&self, path: &str) -> Option<&'a SidecarEntry> {
        self.by_path.get(path).copied()
    }
}

fn decode_hex(path: &str, what: &str, text: &str) -> Result<Vec<u8>, LayerError> {
    hex::decode(text).map_err(|e| LayerError::Metadata {
        path: path.to_string(),
        reason: format!("{what}: {e}"),
    })
}

/// FILETIME (100 ns since 1601) as a Unix time.
fn filetime(ft: u64) -> Time {
    let (secs, nanos) = crate::wim::filetime::to_unix(ft);
    Time { secs, nanos }
}

fn mtime_of(stat: &Stat) -> Time {
    Time {
        secs: stat.st_mtime,
        nanos: u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
    }
}

fn header_for(
    path: &str,
    kind: Kind,
    link: &str,
    size: u64,
    stat: &Stat,
    entry: Option<&SidecarEntry>,
    meta: &Metadata<'_>,
) -> Result<Header, LayerError> {
    let mtime = mtime_of(stat);
    let mut records = Vec::new();
    let default_attributes = if kind == Kind::Directory {
        attributes::DIRECTORY
    } else {
        0x20 // ARCHIVE
    };
    let attributes = entry.map_or(default_attributes, |e| e.attributes);
    records.push(("MSWINDOWS.fileattr".to_string(), attributes.to_string()));
    let sd = match entry.and_then(|e| e.security_id) {
        Some(id) => {
            let hex = meta
                .descriptors
                .get(id as usize)
                .ok_or_else(|| LayerError::Metadata {
                    path: path.to_string(),
                    reason: format!("security descriptor {id} is not recorded"),
                })?;
            decode_hex(path, "security descriptor", hex)?
        }
        None => DEFAULT_SECURITY_DESCRIPTOR.to_vec(),
    };
    records.push((
        "MSWINDOWS.rawsd".to_string(),
        base64::engine::general_purpose::STANDARD.encode(sd),
    ));
    // Without a recorded one, the modification time at FILETIME's 100 ns
    // precision, so an imported layer (which keeps FILETIMEs) exports back
    // to the same bytes.
    let created = entry.filter(|e| e.creation_time != 0).map_or(
        Time {
            secs: mtime.secs,
            nanos: mtime.nanos - mtime.nanos % 100,
        },
        |e| filetime(e.creation_time),
    );
    records.push(("LIBARCHIVE.creationtime".to_string(), created.pax()));
    if entry.and_then(|e| e.reparse_tag) == Some(IO_REPARSE_TAG_MOUNT_POINT) {
        records.push(("MSWINDOWS.mountpoint".to_string(), "1".to_string()));
    }
    Ok(Header {
        path: path.to_string(),
        kind,
        link: link.to_string(),
        size,
        mtime,
        atime: mtime,
        ctime: mtime,
        records,
    })
}

/// The print name of a link from its reparse data (without the 8-byte
/// header), else `None`.
fn print_name(tag: u32, data: &[u8]) -> Option<String> {
    let u16_at = |i: usize| data.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let (sub_off, sub_len, print_off, print_len) = (u16_at(0)?, u16_at(2)?, u16_at(4)?, u16_at(6)?);
    let buffer_start = if tag == IO_REPARSE_TAG_SYMLINK { 12 } else { 8 };
    let utf16 = |off: u16, len: u16| -> Option<String> {
        let start = buffer_start + usize::from(off);
        let bytes = data.get(start..start + usize::from(len))?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).ok()
    };
    let print = utf16(print_off, print_len)?;
    if !print.is_empty() {
        return Some(print);
    }
    let substitute = utf16(sub_off, sub_len)?;
    Some(
        substitute
            .strip_prefix("\\??\\")
            .unwrap_or(&substitute)
            .to_string(),
    )
}

/// A Linux link target as Windows names it: `C:\` and the target's path in
/// the image, backslashed (a relative target is resolved against the link's
/// folder; `..` never climbs above the image root).
fn windows_target(link_dir: &str, target: &Path) -> String {
    let mut parts: Vec<String> = if target.is_absolute() {
        Vec::new()
    } else {
        link_dir
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    for c in target.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("C:\\{}", parts.join("\\"))
}

/// A child layer's whiteouts: deleted names by their folder ("" for the
/// tree's root).
type Whiteouts = BTreeMap<String, Vec<String>>;

fn walk<W: Write>(
    tar: &mut TarWriter<W>,
    dir: &Dir,
    tree_name: &str,
    rel: &str,
    meta: &Metadata<'_>,
    links: &mut HashMap<(u64, u64), String>,
    whiteouts: &mut Whiteouts,
) -> Result<(), LayerError> {
    // Deletions first, so a name deleted and made anew keeps the new entry.
    if let Some(names) = whiteouts.remove(rel) {
        let stat = dir.stat(Path::new("")).map_err(read_err(dir.path()))?;
        let folder = if rel.is_empty() {
            tree_name.to_string()
        } else {
            format!("{tree_name}/{rel}")
        };
        for name in names {
            let header = Header {
                path: format!("{folder}/.wh.{name}"),
                kind: Kind::File,
                link: String::new(),
                size: 0,
                mtime: mtime_of(&stat),
                atime: mtime_of(&stat),
                ctime: mtime_of(&stat),
                records: Vec::new(),
            };
            tar.append(&header, Some(&mut io::empty() as &mut dyn Read))
                .map_err(LayerError::Write)?;
        }
    }
    let mut entries = dir.entries().map_err(read_err(dir.path()))?;
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for e in entries {
        let name = e.name.to_str().ok_or_else(|| LayerError::Metadata {
            path: format!("{rel}/{}", e.name.to_string_lossy()),
            reason: "the name is not UTF-8, which Windows cannot hold".into(),
        })?;
        let image_path = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let layer_path = format!("{tree_name}/{image_path}");
        let name_rel = Path::new(OsStr::new(name));
        let stat = dir
            .stat(name_rel)
            .map_err(read_err(&dir.display_path(name_rel)))?;
        let entry = meta.entry(&image_path);
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let header = header_for(&layer_path, Kind::Directory, "", 0, &stat, entry, meta)?;
                tar.append(&header, None).map_err(LayerError::Write)?;
                let sub = dir
                    .open_dir(name_rel)
                    .map_err(read_err(&dir.display_path(name_rel)))?;
                walk(tar, &sub, tree_name, &image_path, meta, links, whiteouts)?;
            }
            FileType::Symlink => {
                let target =
                    match entry.and_then(|e| Some((e.reparse_tag?, e.reparse_data.as_deref()?))) {
                        Some((tag, hex)) => {
                            let data = decode_hex(&image_path, "reparse data", hex)?;
                            print_name(tag, &data)
                        }
                        None => None,
                    };
                let target = match target {
                    Some(t) => t,
                    None => {
                        let linux = dir
                            .read_link(name_rel)
                            .map_err(read_err(&dir.display_path(name_rel)))?;
                        windows_target(rel, &linux)
                    }
                };
                let header =
                    header_for(&layer_path, Kind::Symlink, &target, 0, &stat, entry, meta)?;
                tar.append(&header, None).map_err(LayerError::Write)?;
            }
            FileType::RegularFile => {
                let key = (stat.st_dev, stat.st_ino);
                if stat.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        let header =
                            header_for(&layer_path, Kind::HardLink, first, 0, &stat, entry, meta)?;
                        tar.append(&header, None).map_err(LayerError::Write)?;
                        continue;
                    }
                    links.insert(key, layer_path.clone());
                }
                let size = u64::try_from(stat.st_size).unwrap_or(0);
                let header = header_for(&layer_path, Kind::File, "", size, &stat, entry, meta)?;
                let mut file = dir
                    .open_regular(name_rel)
                    .map_err(read_err(&dir.display_path(name_rel)))?;
                tar.append(&header, Some(&mut file as &mut dyn Read))
                    .map_err(LayerError::Write)?;
                for stream in entry
                    .map(|e| e.named_streams.as_slice())
                    .unwrap_or_default()
                {
                    let data = stream.data.as_deref().ok_or_else(|| LayerError::Metadata {
                        path: image_path.clone(),
                        reason: format!(
                            "the named stream '{}' ({} bytes) was not kept at install",
                            stream.name, stream.size
                        ),
                    })?;
                    let bytes = decode_hex(&image_path, "named stream", data)?;
                    let header = Header {
                        path: format!("{layer_path}:{}", stream.name),
                        kind: Kind::File,
                        link: String::new(),
                        size: bytes.len() as u64,
                        mtime: mtime_of(&stat),
                        atime: mtime_of(&stat),
                        ctime: mtime_of(&stat),
                        records: Vec::new(),
                    };
                    tar.append(&header, Some(&mut &bytes[..] as &mut dyn Read))
                        .map_err(LayerError::Write)?;
                }
            }
            other => {
                return Err(LayerError::Metadata {
                    path: image_path,
                    reason: format!("a {other:?} cannot be part of a Windows layer"),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_descriptor_names_builtin_users() {
        let sd = DEFAULT_SECURITY_DESCRIPTOR;
        assert_eq!(u16::from_le_bytes([sd[2], sd[3]]), 0x8000);
        let sid = &sd[20..36];
        // S-1-5-32-545
        assert_eq!(sid[1], 2);
        assert_eq!(sid[7], 5);
        assert_eq!(u32::from_le_bytes([sid[8], sid[9], sid[10], sid[11]]), 32);
        assert_eq!(
            u32::from_le_bytes([sid[12], sid[13], sid[14], sid[15]]),
            545
        );
        assert_eq!(&sd[36..52], sid);
    }

    #[test]
    fn times_and_targets_convert() {
        assert_eq!(
            filetime(116_444_736_000_000_000),
            Time { secs: 0, nanos: 0 }
        );
        assert_eq!(
            filetime(116_444_736_000_000_000 + 15),
            Time {
                secs: 0,
                nanos: 1500
            }
        );
        assert_eq!(
            Time {
                secs: 3,
                nanos: 1500
            }
            .pax(),
            "3.0000015"
        );
        assert_eq!(
            windows_target("Windows", Path::new("System32/x")),
            "C:\\Windows\\System32\\x"
        );
        assert_eq!(windows_target("a/b", Path::new("../../../c")), "C:\\c");
        let mut data = vec![0u8; 12];
        let print: Vec<u8> = "C:\\Users"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        data[4..6].copy_from_slice(&0u16.to_le_bytes());
        data[6..8].copy_from_slice(&(print.len() as u16).to_le_bytes());
        data.extend(&print);
        assert_eq!(
            print_name(IO_REPARSE_TAG_SYMLINK, &data).as_deref(),
            Some("C:\\Users")
        );
        assert_eq!(print_name(IO_REPARSE_TAG_SYMLINK, &data[..5]), None);
    }
}
