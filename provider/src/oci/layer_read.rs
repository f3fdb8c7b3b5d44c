//! Unpacking a Windows layer tar, read as hostile input, into a folder,
//! with the Windows metadata its PAX records carry collected into a
//! metadata file (the same form `Expand-WindowsImage -MetadataPath` writes,
//! so an imported image exports back to the same layer).
//!
//! Rules: only `Files`, `UtilityVM` and `UtilityVM/Files` and what is below
//! them; no `..`, `.`, empty or absolute names; every folder before what it
//! holds; no name twice; a hard link names a file earlier in the layer; no
//! entry below a link; named streams (`file:stream`) only right after their
//! file. A base layer has no whiteouts and no `Hives`. A child layer has no
//! `UtilityVM`; its whiteouts (`.wh.<name>`, one per deleted entry, no opaque
//! ones) are only below `Files/`, in a folder the layer names first, and are
//! returned as deleted paths, not written; `Hives/` holds plain files only.
//! Everything is written through folder handles that never follow links.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;

use base64::Engine;
use rustix::fs::Timestamps;

use super::tar::Time;
use super::tar_read::{parse_pax_time, EntryKind, TarError, TarReader};
use crate::fsutil::dir::Dir;
use crate::wim::format::{IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK};
use crate::wim::sidecar::{Sidecar, SidecarEntry, SidecarStream, FORMAT};

/// Named streams kept in the metadata file, in all.
pub const MAX_STREAM_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LayerReadError {
    #[error(transparent)]
    Tar(#[from] TarError),
    #[error("the layer is refused: {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// What unpacking found.
#[derive(Debug)]
pub struct Unpacked {
    pub files: Sidecar,
    /// The utility VM's metadata, when the layer has `UtilityVM/Files`.
    pub utility_vm: Option<Sidecar>,
    /// A child layer's deleted paths (below `Files/`, `/`-separated), sorted.
    pub deleted: Vec<String>,
}

/// The two kinds of Windows layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// A whole tree: `Files/`, maybe `UtilityVM/Files/`.
    Base,
    /// Changes to a parent: `Files/`, whiteouts, `Hives/`.
    Child,
}

/// Whiteouts in all, per layer: each is a path kept in memory.
pub const MAX_WHITEOUTS: usize = 1 << 20;

fn refused(path: &str, reason: impl Into<String>) -> LayerReadError {
    LayerReadError::Refused {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Which tree an entry belongs to and its path inside it ("" for the root).
fn split_tree(path: &str) -> Option<(usize, &str)> {
    for (i, root) in ["Files", "UtilityVM/Files"].iter().enumerate() {
        if path == *root {
            return Some((i, ""));
        }
        if let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
            return Some((i, rest));
        }
    }
    None
}

/// FILETIME (100 ns since 1601) of a Unix time.
fn to_filetime(t: Time) -> u64 {
    crate::wim::filetime::from_unix(t.secs, t.nanos)
}

/// The Linux target of a link whose Windows target is `target`, for a link
/// at `link_path` (inside its tree): `C:\a\b` becomes a path relative to the
/// link's folder; relative targets keep their form with `/`.
fn linux_target(link_path: &str, target: &str) -> Option<String> {
    let t = target.strip_prefix("\\??\\").unwrap_or(target);
    let bytes = t.as_bytes();
    let absolute = bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && &bytes[1..3] == b":\\";
    if absolute {
        let inside: Vec<&str> = t[3..].split('\\').filter(|p| !p.is_empty()).collect();
        if inside.iter().any(|p| *p == "." || *p == "..") {
            return None;
        }
        let depth = link_path.split('/').count().saturating_sub(1);
        let mut out: Vec<String> = vec!["..".to_string(); depth];
        out.extend(inside.iter().map(|s| s.to_string()));
        if out.is_empty() {
            return Some(".".into());
        }
        return Some(out.join("/"));
    }
    if t.is_empty() || t.starts_with('\\') || t.contains(':') {
        return None;
    }
    Some(t.replace('\\', "/"))
}

/// The reparse data (without its 8-byte header) of a link to `target`.
fn reparse_data(tag: u32, target: &str) -> Vec<u8> {
    let print: Vec<u8> = target.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let bytes = target.as_bytes();
    let absolute = bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && &bytes[1..3] == b":\\";
    let substitute_text = if absolute {
        format!("\\??\\{target}")
    } else {
        target.to_string()
    };
    let substitute: Vec<u8> = substitute_text
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut out = Vec::new();
    let len16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes();
    out.extend(0u16.to_le_bytes());
    out.extend(len16(substitute.len()));
    out.extend(len16(substitute.len()));
    out.extend(len16(print.len()));
    if tag == IO_REPARSE_TAG_SYMLINK {
        let flags: u32 = if absolute { 0 } else { 1 };
        out.extend(flags.to_le_bytes());
    }
    out.extend(substitute);
    out.extend(print);
    out
}

struct TreeState {
    sidecar: Sidecar,
    sds: HashMap<String, u32>,
}

impl TreeState {
    fn new() -> TreeState {
        TreeState {
            sidecar: Sidecar {
                format: FORMAT.to_string(),
                image_index: 1,
                security_descriptors: Vec::new(),
                entries: Vec::new(),
            },
            sds: HashMap::new(),
        }
    }
}

/// Unpacks a base layer from `tar` into `target` (which gets `Files/` and
/// maybe `UtilityVM/Files/`).
pub fn unpack_base_layer<R: Read>(
    tar: &mut TarReader<R>,
    target: &Dir,
) -> Result<Unpacked, LayerReadError> {
    unpack_layer(tar, target, LayerKind::Base)
}

/// Unpacks a layer of either kind from `tar` into `target`.
pub fn unpack_layer<R: Read>(
    tar: &mut TarReader<R>,
    target: &Dir,
    layer: LayerKind,
) -> Result<Unpacked, LayerReadError> {
    let mut trees = [TreeState::new(), TreeState::new()];
    let mut seen: HashSet<String> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut links: HashSet<String> = HashSet::new();
    let mut files: HashSet<String> = HashSet::new();
    let mut last_file: Option<(usize, String, usize)> = None;
    let mut stream_bytes = 0u64;
    let mut times: Vec<(String, Time)> = Vec::new();
    let mut has_uvm = false;
    let mut deleted: Vec<String> = Vec::new();
    let mut hives = false;
    while let Some(entry) = tar.next_entry()? {
        let path = entry.path.trim_end_matches('/').to_string();
        let kind = entry.kind.ok_or_else(|| refused(&path, "no entry type"))?;
        if path.is_empty() || path.starts_with('/') || path.contains('\\') || path.contains('\0') {
            return Err(refused(&path, "not a relative name with / separators"));
        }
        if path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(refused(
                &path,
                "a name may not hold '.', '..' or an empty part",
            ));
        }
        let (folder, last) = path.rsplit_once('/').unwrap_or(("", &path));
        if folder.split('/').any(|p| p.starts_with(".wh.")) {
            return Err(refused(&path, "an entry below a whiteout"));
        }
        if let Some(gone) = last.strip_prefix(".wh.") {
            if layer == LayerKind::Base {
                return Err(refused(
                    &path,
                    "whiteouts belong to child layers, not a base layer",
                ));
            }
            if gone == ".wh..opq" {
                return Err(refused(
                    &path,
                    "opaque whiteouts cannot be carried by a Windows layer; write one whiteout per deleted entry",
                ));
            }
            let in_files = folder == "Files" || folder.starts_with("Files/");
            if !in_files || gone.is_empty() || gone.starts_with(".wh.") || gone.contains(':') {
                return Err(refused(&path, "a whiteout must name one entry below Files"));
            }
            if kind != EntryKind::File {
                return Err(refused(&path, "a whiteout must be an empty file entry"));
            }
            if !dirs.contains(folder) {
                return Err(refused(&path, "its folder does not come before it"));
            }
            let gone_path = match folder.strip_prefix("Files/") {
                Some(f) => format!("{f}/{gone}"),
                None => gone.to_string(),
            };
            if !seen.insert(path.clone()) {
                return Err(refused(&path, "the same name twice"));
            }
            if deleted.len() >= MAX_WHITEOUTS {
                return Err(refused(
                    &path,
                    format!("more than {MAX_WHITEOUTS} whiteouts"),
                ));
            }
            deleted.push(gone_path);
            last_file = None;
            continue;
        }
        if path == "UtilityVM" && layer == LayerKind::Child {
            return Err(refused(&path, "a child layer cannot change the utility VM"));
        }
        if path == "UtilityVM" {
            if kind != EntryKind::Directory || !seen.insert(path.clone()) {
                return Err(refused(&path, "UtilityVM must be one folder"));
            }
            dirs.insert(path);
            continue;
        }
        if path == "Hives" || path.starts_with("Hives/") {
            if layer == LayerKind::Base {
                return Err(refused(
                    &path,
                    "Hives belong to child layers, not a base layer",
                ));
            }
            last_file = None;
            if !seen.insert(path.clone()) {
                return Err(refused(&path, "the same name twice"));
            }
            let write_err = |source: io::Error| LayerReadError::Write {
                path: path.clone(),
                source,
            };
            if path == "Hives" {
                if kind != EntryKind::Directory {
                    return Err(refused(&path, "Hives must be a folder"));
                }
                target
                    .create_dir(Path::new("Hives"), 0o755)
                    .map_err(write_err)?;
                hives = true;
                times.push((path.clone(), entry.mtime));
                continue;
            }
            let name = &path["Hives/".len()..];
            if !hives || kind != EntryKind::File || name.contains('/') || name.contains(':') {
                return Err(refused(
                    &path,
                    "Hives holds only files, after the Hives folder",
                ));
            }
            let file = target
                .create_file(Path::new(&path), 0o644)
                .map_err(write_err)?;
            let mut out = io::BufWriter::with_capacity(256 << 10, file);
            let copied = io::copy(&mut tar.data(), &mut out).map_err(TarError::from)?;
            io::Write::flush(&mut out).map_err(write_err)?;
            if copied != entry.size {
                return Err(refused(&path, "the data is shorter than its size"));
            }
            times.push((path.clone(), entry.mtime));
            continue;
        }
        // A named stream: `<file>:<stream>` right after its file.
        let last_part = path.rsplit('/').next().unwrap_or_default();
        if let Some((file_part, stream_name)) = last_part.split_once(':') {
            let file_path = format!("{}{file_part}", &path[..path.len() - last_part.len()]);
            let Some((tree, ref p, idx)) = last_file else {
                return Err(refused(
                    &path,
                    "a named stream that does not follow its file",
                ));
            };
            let file_in_tree = split_tree(&file_path).map(|(_, p)| p.to_string());
            if kind != EntryKind::File
                || file_in_tree.as_deref() != Some(p.as_str())
                || stream_name.is_empty()
                || stream_name.contains(':')
            {
                return Err(refused(
                    &path,
                    "a named stream that does not follow its file",
                ));
            }
            stream_bytes += entry.size;
            if stream_bytes > MAX_STREAM_BYTES {
                return Err(refused(
                    &path,
                    format!("named streams over {MAX_STREAM_BYTES} bytes in all"),
                ));
            }
            let mut data = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
            tar.data().read_to_end(&mut data).map_err(TarError::from)?;
            let sha1 = {
                use sha1::Digest;
                hex::encode(sha1::Sha1::digest(&data))
            };
            if let Some(e) = trees[tree].sidecar.entries.get_mut(idx) {
                if e.named_streams.iter().any(|s| s.name == stream_name) {
                    return Err(refused(&path, "the same named stream twice"));
                }
                e.named_streams.push(SidecarStream {
                    name: stream_name.to_string(),
                    size: data.len() as u64,
                    sha1,
                    data: Some(hex::encode(&data)),
                });
            }
            continue;
        }
        last_file = None;
        let (tree, in_tree) = split_tree(&path).ok_or_else(|| {
            refused(
                &path,
                "only Files, UtilityVM/Files and what is below them may be in a layer",
            )
        })?;
        if tree == 1 {
            has_uvm = true;
        }
        if !seen.insert(path.clone()) {
            return Err(refused(&path, "the same name twice"));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if links
                .iter()
                .any(|l| parent == l || parent.starts_with(&format!("{l}/")))
            {
                return Err(refused(&path, "an entry below a link"));
            }
            if !dirs.contains(parent) {
                return Err(refused(&path, "its folder does not come before it"));
            }
        }
        let rel = Path::new(&path);
        let write_err = |source: io::Error| LayerReadError::Write {
            path: path.clone(),
            source,
        };
        // Windows metadata from the PAX records.
        let state = &mut trees[tree];
        let mut meta = SidecarEntry {
            path: in_tree.to_string(),
            ..SidecarEntry::default()
        };
        if let Some(a) = entry.record("MSWINDOWS.fileattr") {
            meta.attributes = a
                .parse()
                .map_err(|_| refused(&path, "MSWINDOWS.fileattr is not a number"))?;
        } else if kind == EntryKind::Directory {
            meta.attributes = crate::wim::format::attributes::DIRECTORY;
        }
        if let Some(sd) = entry.record("MSWINDOWS.rawsd") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(sd)
                .map_err(|_| refused(&path, "MSWINDOWS.rawsd is not base64"))?;
            let hex_sd = hex::encode(bytes);
            let next = u32::try_from(state.sds.len()).unwrap_or(u32::MAX);
            let id = *state.sds.entry(hex_sd.clone()).or_insert_with(|| {
                state.sidecar.security_descriptors.push(hex_sd);
                next
            });
            meta.security_id = Some(id);
        }
        if let Some(c) = entry.record("LIBARCHIVE.creationtime") {
            let t = parse_pax_time(c)
                .ok_or_else(|| refused(&path, "LIBARCHIVE.creationtime is not a time"))?;
            meta.creation_time = to_filetime(t);
        }
        match kind {
            EntryKind::Directory => {
                if in_tree.is_empty() {
                    target.create_dir_all(rel).map_err(write_err)?;
                } else {
                    target.create_dir(rel, 0o755).map_err(write_err)?;
                }
                dirs.insert(path.clone());
            }
            EntryKind::File => {
                let file = target.create_file(rel, 0o644).map_err(write_err)?;
                let mut out = io::BufWriter::with_capacity(256 << 10, file);
                let copied = io::copy(&mut tar.data(), &mut out).map_err(TarError::from)?;
                io::Write::flush(&mut out).map_err(write_err)?;
                if copied != entry.size {
                    return Err(refused(&path, "the data is shorter than its size"));
                }
                files.insert(path.clone());
            }
            EntryKind::HardLink => {
                let to = entry.link.trim_end_matches('/');
                if !files.contains(to) {
                    return Err(refused(
                        &path,
                        "a hard link to a file that is not earlier in the layer",
                    ));
                }
                target.hard_link(Path::new(to), rel).map_err(write_err)?;
                files.insert(path.clone());
            }
            EntryKind::Symlink => {
                let junction = entry.record("MSWINDOWS.mountpoint") == Some("1");
                let linux = linux_target(in_tree, &entry.link).ok_or_else(|| {
                    refused(
                        &path,
                        format!(
                            "the link target '{}' cannot be carried",
                            entry.link.escape_debug()
                        ),
                    )
                })?;
                target.symlink(Path::new(&linux), rel).map_err(write_err)?;
                let tag = if junction {
                    IO_REPARSE_TAG_MOUNT_POINT
                } else {
                    IO_REPARSE_TAG_SYMLINK
                };
                meta.reparse_tag = Some(tag);
                meta.reparse_data = Some(hex::encode(reparse_data(tag, &entry.link)));
                meta.attributes |= crate::wim::format::attributes::REPARSE_POINT;
                links.insert(path.clone());
            }
        }
        times.push((path.clone(), entry.mtime));
        state.sidecar.entries.push(meta);
        if kind == EntryKind::File {
            last_file = Some((tree, in_tree.to_string(), state.sidecar.entries.len() - 1));
        }
    }
    if !seen.contains("Files") {
        return Err(refused("Files", "a layer must hold Files"));
    }
    if layer == LayerKind::Child && !hives {
        // Windows loaders expect the folder in every child layer.
        target
            .create_dir(Path::new("Hives"), 0o755)
            .map_err(|source| LayerReadError::Write {
                path: "Hives".into(),
                source,
            })?;
    }
    deleted.sort();
    deleted.dedup();
    // Times last, deepest first, so making entries does not change them.
    for (path, t) in times.iter().rev() {
        let ts = rustix::fs::Timespec {
            tv_sec: t.secs,
            tv_nsec: i64::from(t.nanos),
        };
        let stamps = Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        target
            .set_times(Path::new(path), &stamps)
            .map_err(|source| LayerReadError::Write {
                path: path.clone(),
                source,
            })?;
    }
    let [files_tree, uvm_tree] = trees;
    Ok(Unpacked {
        files: files_tree.sidecar,
        utility_vm: has_uvm.then_some(uvm_tree.sidecar),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_link_targets_become_links_inside_the_tree() {
        assert_eq!(
            linux_target("Windows/sys", "C:\\Windows\\System32").as_deref(),
            Some("../Windows/System32")
        );
        assert_eq!(linux_target("top", "C:\\Users").as_deref(), Some("Users"));
        assert_eq!(linux_target("a/b", "..\\c").as_deref(), Some("../c"));
        assert_eq!(linux_target("a", "C:\\..\\..\\etc"), None);
        assert_eq!(linux_target("a", "\\\\server\\share"), None);
        assert_eq!(linux_target("a", "D:relative"), None);
        assert_eq!(
            to_filetime(Time { secs: 0, nanos: 0 }),
            116_444_736_000_000_000
        );
    }
}
