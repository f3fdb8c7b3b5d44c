//! The record of an installed image's files: every directory, file (with its
//! SHA-256) and symbolic link under the image's `Files/` trees, written at
//! install time and compared against the disk by Test-ContainerImage.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The largest manifest read back (Server Core's holds about 100,000 entries,
/// some 15 MB).
pub const MANIFEST_LIMIT: u64 = 256 << 20;

/// One entry of the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "Type", rename_all = "PascalCase")]
pub enum Entry {
    Directory,
    #[serde(rename_all = "PascalCase")]
    File {
        size: u64,
        sha256: String,
    },
    #[serde(rename_all = "PascalCase")]
    Symlink {
        target: String,
    },
}

/// Paths relative to the image folder, with `/` separators, in sorted order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Manifest {
    pub entries: BTreeMap<String, Entry>,
}

/// What a walk of the installed trees found.
pub struct Scan {
    pub manifest: Manifest,
    /// Bytes of regular files, each hard-linked file counted once.
    pub size: u64,
}

struct FileItem {
    key: String,
    path: PathBuf,
    size: u64,
    /// Identity of the file on disk, so hard links are hashed and counted once.
    identity: Option<(u64, u64)>,
}

/// Walks `roots` (folders relative to `image_dir`; missing ones are skipped)
/// without following links, hashing files on all cores.
pub fn scan(image_dir: &Path, roots: &[&str]) -> io::Result<Scan> {
    let mut entries = BTreeMap::new();
    let mut files = Vec::new();
    for root in roots {
        let dir = image_dir.join(root);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {
                entries.insert((*root).to_string(), Entry::Directory);
                walk(&dir, root, &mut entries, &mut files)?;
            }
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a folder",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }

    // Hash each distinct file once; hard links share the result.
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut unique = Vec::new();
    let mut alias = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        match f.identity.map(|id| *first_of.entry(id).or_insert(i)) {
            Some(first) if first != i => alias.push(first),
            _ => {
                alias.push(i);
                unique.push(i);
            }
        }
    }
    let hashes: Vec<(usize, io::Result<String>)> = unique
        .par_iter()
        .filter_map(|&i| files.get(i).map(|f| (i, hash_file(&f.path))))
        .collect();
    let mut by_index = HashMap::with_capacity(hashes.len());
    let mut size = 0u64;
    for (i, h) in hashes {
        let h = h?;
        if let Some(f) = files.get(i) {
            size = size.saturating_add(f.size);
        }
        by_index.insert(i, h);
    }
    for (f, first) in files.iter().zip(alias) {
        let sha256 = by_index.get(&first).cloned().unwrap_or_default();
        entries.insert(
            f.key.clone(),
            Entry::File {
                size: f.size,
                sha256,
            },
        );
    }
    Ok(Scan {
        manifest: Manifest { entries },
        size,
    })
}

fn walk(
    dir: &Path,
    key: &str,
    entries: &mut BTreeMap<String, Entry>,
    files: &mut Vec<FileItem>,
) -> io::Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let child_key = format!("{key}/{}", name.to_string_lossy());
        let path = item.path();
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            entries.insert(
                child_key,
                Entry::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
            );
        } else if ft.is_dir() {
            entries.insert(child_key.clone(), Entry::Directory);
            walk(&path, &child_key, entries, files)?;
        } else {
            files.push(FileItem {
                key: child_key,
                path,
                size: meta.len(),
                identity: identity(&meta),
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

fn hash_file(path: &Path) -> io::Result<String> {
    // A file swapped for a link or a FIFO since the walk is not followed.
    let mut file = open_regular_nofollow(path)?;
    let (sha, _) = crate::fsutil::sha256_of(&mut file, |_| {})?;
    Ok(hex::encode(sha))
}

#[cfg(unix)]
fn open_regular_nofollow(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

#[cfg(not(unix))]
fn open_regular_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::File::open(path)
}

/// The differences between what was installed and what is on disk now,
/// one line each: `changed: <path>`, `missing: <path>`, `extra: <path>`.
pub fn compare(recorded: &Manifest, actual: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, want) in &recorded.entries {
        match actual.entries.get(path) {
            None => problems.push(format!("missing: {path}")),
            Some(have) if have != want => problems.push(format!("changed: {path}")),
            Some(_) => {}
        }
    }
    for path in actual.entries.keys() {
        if !recorded.entries.contains_key(path) {
            problems.push(format!("extra: {path}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_hashes_files_counts_links_once_and_compare_finds_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = dir.path().join("Files");
        fs::create_dir_all(files.join("Windows/System32")).expect("mkdir");
        fs::write(files.join("Windows/System32/a.dll"), b"hello").expect("write");
        fs::write(files.join("License.txt"), b"abc").expect("write");
        fs::hard_link(files.join("License.txt"), files.join("License2.txt")).expect("link");
        #[cfg(unix)]
        std::os::unix::fs::symlink("Windows/System32/a.dll", files.join("a")).expect("symlink");

        let before = scan(dir.path(), &["Files", "UtilityVM/Files"]).expect("scan");
        assert_eq!(before.size, 8, "5 + 3 bytes, the hard link counted once");
        assert_eq!(
            before.manifest.entries.get("Files/License.txt"),
            Some(&Entry::File {
                size: 3,
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            })
        );
        assert_eq!(
            compare(&before.manifest, &before.manifest),
            Vec::<String>::new()
        );

        fs::write(files.join("Windows/System32/a.dll"), b"HELLO").expect("write");
        fs::remove_file(files.join("License2.txt")).expect("rm");
        fs::write(files.join("new.txt"), b"x").expect("write");
        let after = scan(dir.path(), &["Files"]).expect("rescan");
        assert_eq!(
            compare(&before.manifest, &after.manifest),
            vec![
                "missing: Files/License2.txt".to_string(),
                "changed: Files/Windows/System32/a.dll".to_string(),
                "extra: Files/new.txt".to_string(),
            ]
        );
    }
}
