//! Containers and the child images made from them.
//!
//! A container is a writable copy of an image's files (its layers composed,
//! base first: each child layer's deleted paths removed, then its files laid
//! over the parent's), in `<home>/containers/<Name>/Files/`, with
//! `container.json` (the image it came from) and `baseline.json` (what each
//! entry was when the copy was made: kind, size, modification time, link
//! target, the layer it came from). Files are cloned (copy-on-write) where
//! the file system can, else copied; hard links within a layer stay links.
//!
//! Committing ([`commit`]) compares the container with its baseline: a
//! file whose size and modification time are unchanged is unchanged and is
//! not read; one whose size is the same but time differs is compared byte
//! by byte with the layer it came from. What was added or changed becomes
//! the child image's `Files/` (with the folders leading to it), what is gone
//! its deleted paths, and its `Hives/` is empty. Changes a Windows layer
//! cannot carry are refused, naming them: the registry hives under
//! `Windows/System32/config/`, names Windows cannot hold, special files.
//! A folder can be committed the same way without a container
//! ([`CommitSource::Folder`]): all its entries are added.
//!
//! Everything runs under the store's lock, so an image cannot be removed
//! while a container is made from it; an image with containers cannot be
//! removed at all (see [`users_of`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat, Timestamps};
use serde::{Deserialize, Serialize};

use crate::config::Home;
use crate::fsutil::dir::Dir;
use crate::oci::compress::Hashing;
use crate::oci::layer::{write_child_layer, LayerError, Tree};
use crate::oci::tar::TarWriter;
use crate::progress::Reporter;
use crate::store::{
    DeletedPaths, ImageRecord, NewImage, Store, StoreError, StoreLock, DELETED_FILE, FILES_DIR,
    HIVES_DIR, METADATA_FILE,
};
use crate::version::Version;
use crate::wim::sidecar::{Sidecar, SidecarEntry, FORMAT};

/// The containers' folder, in the home folder.
pub const CONTAINERS_DIR: &str = "containers";
const RECORD_FILE: &str = "container.json";
const BASELINE_FILE: &str = "baseline.json";
/// The registry hives of an image, which only Windows may change.
const HIVES_PATH: &str = "windows/system32/config";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "a container named {name} exists; choose another name or remove it with Remove-Container"
    )]
    Exists { name: String },
    #[error("no container is named {name}; Get-Container lists the containers")]
    NotFound { name: String },
    #[error("'{name}' cannot be a container name: {reason}")]
    BadName { name: String, reason: String },
    #[error("the container {name} was made from {image}, which is no longer installed")]
    ImageGone { name: String, image: String },
    #[error("these changes cannot be carried by a Windows layer: {}", paths.join("; "))]
    Refused { paths: Vec<String> },
    #[error("the container {name} has no changes to commit")]
    NoChanges { name: String },
    #[error("cannot write the layer of the new image")]
    Layer(#[source] LayerError),
}

/// A container, as `container.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    pub name: String,
    /// The FullName of the image it was made from.
    pub image: String,
    /// That image's Id, so a reinstalled image of the same name is noticed.
    pub image_id: String,
    /// RFC 3339, UTC.
    pub created: String,
}

/// What an entry of a container was when it was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Was {
    /// `d`, `f` or `l`.
    kind: char,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    mtime: (i64, u64),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// The image whose layer the file came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
}

type Baseline = BTreeMap<String, Was>;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn kind_of(stat: &Stat) -> Option<char> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => Some('d'),
        FileType::RegularFile => Some('f'),
        FileType::Symlink => Some('l'),
        _ => None,
    }
}

fn times_of(stat: &Stat) -> Timestamps {
    let ts = rustix::fs::Timespec {
        tv_sec: stat.st_mtime,
        tv_nsec: i64::try_from(stat.st_mtime_nsec).unwrap_or(0),
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// Copies `src` into the new file `dst`: a copy-on-write clone when the
/// file system can, else an in-kernel copy, else a read and write.
fn clone_file(src: &File, dst: &File) -> io::Result<()> {
    if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    loop {
        match rustix::fs::copy_file_range(src, None, dst, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // Start again from the first byte for the plain copy.
    let len = src.metadata()?.len();
    dst.set_len(0)?;
    let mut reader = src.try_clone()?;
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0))?;
    let mut writer = dst.try_clone()?;
    io::Seek::seek(&mut writer, io::SeekFrom::Start(0))?;
    let copied = io::copy(&mut reader.take(len), &mut writer)?;
    if copied != len {
        return Err(io::Error::other("the file changed while it was copied"));
    }
    Ok(())
}

/// Checks a container name with the image name rule.
fn check_container_name(name: &str) -> Result<(), ContainerError> {
    crate::names::check_name(name).map_err(|e| ContainerError::BadName {
        name: name.escape_debug().to_string(),
        reason: e.reason,
    })
}

fn containers_dir(home: &Home) -> PathBuf {
    home.root().join(CONTAINERS_DIR)
}

/// The containers, sorted by name; damaged records are reported and skipped.
pub fn list(home: &Home, reporter: &dyn Reporter) -> Result<Vec<ContainerRecord>, ContainerError> {
    let path = containers_dir(home);
    let dir = match Dir::open(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ContainerError::Io {
                what: "open",
                path,
                source,
            })
        }
    };
    let mut out = Vec::new();
    for e in dir.entries().map_err(io_err("read", &path))? {
        if e.file_type != FileType::Directory || e.name.as_bytes().starts_with(b".") {
            continue;
        }
        match read_record(&dir, &e.name) {
            Ok(r) => out.push(r),
            Err(why) => reporter.warn(&format!(
                "ignoring the container folder {}: {why}",
                e.name.to_string_lossy()
            )),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn read_record(dir: &Dir, folder: &OsStr) -> Result<ContainerRecord, String> {
    let rel = Path::new(folder).join(RECORD_FILE);
    let bytes = dir
        .read_limited(&rel, 1 << 20)
        .map_err(|e| format!("cannot read {RECORD_FILE}: {e}"))?;
    let r: ContainerRecord =
        serde_json::from_slice(&bytes).map_err(|e| format!("{RECORD_FILE} is damaged: {e}"))?;
    if OsStr::new(&r.name) != folder || crate::names::check_name(&r.name).is_err() {
        return Err(format!("{RECORD_FILE} names another container"));
    }
    Ok(r)
}

/// The names of the containers made from the image `full_name`.
pub fn users_of(home: &Home, full_name: &str) -> Vec<String> {
    list(home, &crate::progress::Silent)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.image.eq_ignore_ascii_case(full_name))
        .map(|c| c.name)
        .collect()
}

/// Makes the container `name` from the image `reference` names.
pub fn create(
    store: &Store,
    reference: &str,
    name: &str,
    reporter: &dyn Reporter,
) -> Result<(ContainerRecord, PathBuf), ContainerError> {
    check_container_name(name)?;
    let lock = store.lock(reporter)?;
    let record = lock.resolve(reference)?.clone();
    let home = store.home();
    let parent_path = containers_dir(home);
    let parent = Dir::create_all(&parent_path).map_err(io_err("create", &parent_path))?;
    remove_leftovers(&parent, reporter);
    if parent
        .file_type(Path::new(name))
        .map_err(io_err("inspect", &parent_path))?
        .is_some()
    {
        return Err(ContainerError::Exists {
            name: name.to_string(),
        });
    }
    let staging_rel = PathBuf::from(format!(".new-{}", random_suffix()));
    parent
        .create_dir(&staging_rel, 0o755)
        .map_err(io_err("create a folder in", &parent_path))?;
    let result = (|| {
        let staging = parent
            .open_dir(&staging_rel)
            .map_err(io_err("open", &parent_path))?;
        staging
            .create_dir(Path::new(FILES_DIR), 0o755)
            .map_err(io_err("create", staging.path()))?;
        let files = staging
            .open_dir(Path::new(FILES_DIR))
            .map_err(io_err("open", staging.path()))?;
        let root = lock_root(&lock)?;
        let listing = crate::store::Listing {
            images: lock.images().to_vec(),
            tags: lock.tags().clone(),
        };
        let mut chain = listing.chain(&record)?;
        chain.reverse();
        let mut sources: HashMap<String, String> = HashMap::new();
        let mut copied = 0u64;
        let total: u64 = chain.iter().map(|r| r.size).sum();
        reporter.on_start(
            &format!("Copying the files of {}", record.full_name),
            Some(total),
        );
        for image in &chain {
            reporter.verbose(&format!("copying the files of {}", image.full_name));
            let image_dir = root.open_dir(Path::new(&image.full_name)).map_err(io_err(
                "open",
                &root.display_path(Path::new(&image.full_name)),
            ))?;
            if image.parent_image.is_some() {
                let deleted = DeletedPaths::read(&image_dir)
                    .map_err(io_err("read the deleted paths of", image_dir.path()))?;
                for p in &deleted.paths {
                    match files.remove_all(Path::new(p)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(ContainerError::Io {
                                what: "remove",
                                path: files.display_path(Path::new(p)),
                                source,
                            })
                        }
                    }
                    sources.retain(|k, _| k != p && !k.starts_with(&format!("{p}/")));
                }
            }
            let src = image_dir.open_dir(Path::new(FILES_DIR)).map_err(io_err(
                "open",
                &image_dir.display_path(Path::new(FILES_DIR)),
            ))?;
            let mut links = HashMap::new();
            overlay(
                &src,
                &files,
                &files,
                "",
                &image.full_name,
                &mut links,
                &mut sources,
                &mut copied,
                reporter,
            )?;
        }
        reporter.on_complete();
        reporter.verbose(&format!("{copied} files copied"));
        // The root's times: the top layer's.
        if let Some(top) = chain.last() {
            let rel = Path::new(&top.full_name).join(FILES_DIR);
            let stat = root
                .stat(&rel)
                .map_err(io_err("read", &root.display_path(&rel)))?;
            staging
                .set_times(Path::new(FILES_DIR), &times_of(&stat))
                .map_err(io_err("set the times of", staging.path()))?;
        }
        let mut baseline = Baseline::new();
        scan(&files, "", &mut |path, _, stat, target| {
            let kind = kind_of(stat).unwrap_or('?');
            baseline.insert(
                path.to_string(),
                Was {
                    kind,
                    size: if kind == 'f' {
                        u64::try_from(stat.st_size).unwrap_or(0)
                    } else {
                        0
                    },
                    mtime: (stat.st_mtime, stat.st_mtime_nsec),
                    target,
                    layer: sources.get(path).cloned(),
                },
            );
            Ok(())
        })?;
        write_json(&staging, BASELINE_FILE, &baseline)?;
        let c = ContainerRecord {
            name: name.to_string(),
            image: record.full_name.clone(),
            image_id: record.id.clone(),
            created: now_rfc3339(),
        };
        write_json(&staging, RECORD_FILE, &c)?;
        staging.sync();
        crate::store::test_pause("container-copied", reporter);
        parent
            .rename_new(&staging_rel, &parent, Path::new(name))
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => ContainerError::Exists {
                    name: name.to_string(),
                },
                _ => ContainerError::Io {
                    what: "publish",
                    path: parent.display_path(Path::new(name)),
                    source: e,
                },
            })?;
        Ok(c)
    })();
    match result {
        Ok(c) => Ok((c, parent_path.join(name).join(FILES_DIR))),
        Err(e) => {
            let _ = parent.remove_all(&staging_rel);
            Err(e)
        }
    }
}

fn lock_root(lock: &StoreLock<'_>) -> Result<Dir, ContainerError> {
    let path = lock.store().root();
    Dir::open(path).map_err(io_err("open", path))
}

/// Removes what an interrupted New-Container or Remove-Container left
/// (`.new-*`, `.gone-*`); called under the store's lock, so no other
/// command is making or removing a container meanwhile.
fn remove_leftovers(parent: &Dir, reporter: &dyn Reporter) {
    let Ok(entries) = parent.entries() else {
        return;
    };
    for e in entries {
        let name = e.name.as_bytes();
        if name.starts_with(b".new-") || name.starts_with(b".gone-") {
            let rel = Path::new(&e.name);
            match parent.remove_all(rel) {
                Ok(()) => reporter.verbose(&format!(
                    "removed {}, left by an interrupted command",
                    parent.display_path(rel).display()
                )),
                Err(err) => reporter.warn(&format!(
                    "could not remove {}: {err}",
                    parent.display_path(rel).display()
                )),
            }
        }
    }
}

/// Lays the tree `src` over `dst` (the folder `rel` of the container tree
/// `top`): folders merge, anything else replaces what was there.
#[allow(clippy::too_many_arguments)]
fn overlay(
    src: &Dir,
    dst: &Dir,
    top: &Dir,
    rel: &str,
    layer: &str,
    links: &mut HashMap<(u64, u64), String>,
    sources: &mut HashMap<String, String>,
    copied: &mut u64,
    reporter: &dyn Reporter,
) -> Result<(), ContainerError> {
    let mut entries = src.entries().map_err(io_err("read", src.path()))?;
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for e in entries {
        let name = Path::new(&e.name);
        let Some(name_str) = e.name.to_str() else {
            continue;
        };
        let path = join(rel, name_str);
        let stat = src
            .stat(name)
            .map_err(io_err("read", &src.display_path(name)))?;
        let existing = dst
            .file_type(name)
            .map_err(io_err("inspect", &dst.display_path(name)))?;
        let replace = |dst: &Dir| -> Result<(), ContainerError> {
            if existing.is_some() {
                dst.remove_all(name)
                    .map_err(io_err("replace", &dst.display_path(name)))?;
            }
            Ok(())
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                if existing != Some(FileType::Directory) {
                    replace(dst)?;
                    dst.create_dir(name, 0o755)
                        .map_err(io_err("create", &dst.display_path(name)))?;
                }
                let sub_src = src
                    .open_dir(name)
                    .map_err(io_err("open", &src.display_path(name)))?;
                let sub_dst = dst
                    .open_dir(name)
                    .map_err(io_err("open", &dst.display_path(name)))?;
                overlay(
                    &sub_src, &sub_dst, top, &path, layer, links, sources, copied, reporter,
                )?;
                dst.set_times(name, &times_of(&stat))
                    .map_err(io_err("set the times of", &dst.display_path(name)))?;
            }
            FileType::RegularFile => {
                replace(dst)?;
                let key = (stat.st_dev, stat.st_ino);
                if stat.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        top.hard_link(Path::new(first), Path::new(&path))
                            .map_err(io_err("link", &top.display_path(Path::new(&path))))?;
                        sources.insert(path, layer.to_string());
                        continue;
                    }
                    links.insert(key, path.clone());
                }
                let from = src
                    .open_regular(name)
                    .map_err(io_err("read", &src.display_path(name)))?;
                let to = dst
                    .create_file(name, 0o644)
                    .map_err(io_err("create", &dst.display_path(name)))?;
                clone_file(&from, &to).map_err(io_err("copy", &dst.display_path(name)))?;
                drop(to);
                dst.set_times(name, &times_of(&stat))
                    .map_err(io_err("set the times of", &dst.display_path(name)))?;
                sources.insert(path, layer.to_string());
                *copied += 1;
                reporter.on_progress(u64::try_from(stat.st_size).unwrap_or(0));
            }
            FileType::Symlink => {
                replace(dst)?;
                let target = src
                    .read_link(name)
                    .map_err(io_err("read", &src.display_path(name)))?;
                dst.symlink(&target, name)
                    .map_err(io_err("link", &dst.display_path(name)))?;
                dst.set_times(name, &times_of(&stat))
                    .map_err(io_err("set the times of", &dst.display_path(name)))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A visitor of [`scan`]: an entry's path, status and link target.
type Visit<'a> = dyn FnMut(&str, &OsStr, &Stat, Option<String>) -> Result<(), ContainerError> + 'a;

/// Visits every entry below `dir` (parents before children, names in byte
/// order) with its path, status and link target.
fn scan(dir: &Dir, rel: &str, visit: &mut Visit<'_>) -> Result<(), ContainerError> {
    let mut entries = dir.entries().map_err(io_err("read", dir.path()))?;
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for e in entries {
        let name = Path::new(&e.name);
        let path = join(rel, &e.name.to_string_lossy());
        let stat = dir
            .stat(name)
            .map_err(io_err("read", &dir.display_path(name)))?;
        let target = match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => Some(
                dir.read_link(name)
                    .map_err(io_err("read", &dir.display_path(name)))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            _ => None,
        };
        visit(&path, &e.name, &stat, target)?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            let sub = dir
                .open_dir(name)
                .map_err(io_err("open", &dir.display_path(name)))?;
            scan(&sub, &path, visit)?;
        }
    }
    Ok(())
}

fn write_json<T: Serialize>(dir: &Dir, name: &str, value: &T) -> Result<(), ContainerError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ContainerError::Io {
        what: "encode",
        path: dir.display_path(Path::new(name)),
        source: io::Error::other(e),
    })?;
    dir.write_atomic(Path::new(name), &bytes)
        .map_err(io_err("write", &dir.display_path(Path::new(name))))
}

/// Removes the container `name` (its folder goes whole).
pub fn remove(store: &Store, name: &str, reporter: &dyn Reporter) -> Result<(), ContainerError> {
    check_container_name(name)?;
    let _lock = store.lock(reporter)?;
    let parent_path = containers_dir(store.home());
    let parent = match Dir::open(&parent_path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ContainerError::NotFound {
                name: name.to_string(),
            })
        }
        Err(source) => {
            return Err(ContainerError::Io {
                what: "open",
                path: parent_path,
                source,
            })
        }
    };
    if parent
        .file_type(Path::new(name))
        .map_err(io_err("inspect", &parent_path))?
        != Some(FileType::Directory)
    {
        return Err(ContainerError::NotFound {
            name: name.to_string(),
        });
    }
    remove_leftovers(&parent, reporter);
    // Out of sight in one rename, then deleted.
    let gone = PathBuf::from(format!(".gone-{}", random_suffix()));
    parent
        .rename_new(Path::new(name), &parent, &gone)
        .map_err(io_err("remove", &parent.display_path(Path::new(name))))?;
    parent
        .remove_all(&gone)
        .map_err(io_err("remove", &parent.display_path(&gone)))
}

/// What a new child image is made from.
pub enum CommitSource<'a> {
    /// A container's changes to its image.
    Container(&'a str),
    /// A folder's files, added below `Files/` on top of an image.
    Folder { path: &'a Path, parent: &'a str },
}

/// The new image's names.
pub struct CommitNames {
    pub name: String,
    pub publisher: String,
    pub version: Version,
    /// `None`: the default tag, `<lower-case name>:<version>`.
    pub tags: Option<Vec<crate::store::Tag>>,
}

/// The changes found: paths to carry (below `Files/`), deleted paths.
#[derive(Default)]
struct Changes {
    carried: BTreeSet<String>,
    deleted: Vec<String>,
    refused: Vec<String>,
}

impl Changes {
    /// Carries `path` into the layer, refusing what a Windows layer cannot
    /// hold: a hive, or (for a new entry) a name Windows cannot hold.
    fn carry(&mut self, path: &str, name: &OsStr, new: bool) {
        if new {
            if let Some(why) = windows_name_problem(name) {
                self.refused.push(format!("{path}: {why}"));
            }
        }
        self.refuse_hive(path);
        self.carried.insert(path.to_string());
    }

    fn refuse_hive(&mut self, path: &str) {
        if is_hive_path(path) {
            self.refused.push(format!(
                "{path}: the registry hives are changed only by Windows"
            ));
        }
    }

    fn refuse_special(&mut self, path: &str) {
        self.refused
            .push(format!("{path}: a special file (device, FIFO or socket)"));
    }
}

fn windows_name_problem(name: &OsStr) -> Option<String> {
    let Some(s) = name.to_str() else {
        return Some("the name is not UTF-8".into());
    };
    if s.chars()
        .any(|c| c.is_control() || matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'))
    {
        return Some("the name holds a character Windows does not allow (\\ : * ? \" < > | or a control character)".into());
    }
    if s.ends_with(' ') || s.ends_with('.') {
        return Some("the name ends with a space or a dot".into());
    }
    if s.encode_utf16().count() > 255 {
        return Some("the name is longer than 255 characters".into());
    }
    let stem = s.split('.').next().unwrap_or(s).trim_end();
    const DEVICES: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if DEVICES.iter().any(|d| d.eq_ignore_ascii_case(stem)) {
        return Some(format!("{stem} is a device name on Windows"));
    }
    None
}

fn is_hive_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == HIVES_PATH || lower.starts_with(&format!("{HIVES_PATH}/"))
}

/// Compares a container's files with its baseline.
fn container_changes(
    files: &Dir,
    baseline: &Baseline,
    store_root: &Dir,
) -> Result<Changes, ContainerError> {
    let mut changes = Changes::default();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut kept_dirs: BTreeSet<String> = BTreeSet::new();
    kept_dirs.insert(String::new());
    scan(files, "", &mut |path, name, stat, target| {
        seen.insert(path.to_string());
        let Some(kind) = kind_of(stat) else {
            changes.refuse_special(path);
            return Ok(());
        };
        let was = baseline.get(path);
        let changed = match was {
            None => true,
            Some(w) if w.kind != kind => {
                // Replaced by another kind: the old entry (and what a
                // folder held) goes, then the new one is made.
                changes.deleted.push(path.to_string());
                true
            }
            Some(w) => match kind {
                'd' => {
                    kept_dirs.insert(path.to_string());
                    false
                }
                'l' => w.target != target,
                _ => {
                    let size = u64::try_from(stat.st_size).unwrap_or(0);
                    if size != w.size {
                        true
                    } else if (stat.st_mtime, stat.st_mtime_nsec) == w.mtime {
                        false
                    } else {
                        !same_as_layer(files, path, w.layer.as_deref(), store_root)?
                    }
                }
            },
        };
        if changed {
            changes.carry(path, name, was.is_none());
        }
        Ok(())
    })?;
    for path in baseline.keys() {
        if seen.contains(path) {
            continue;
        }
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        // Only the top of a deleted subtree is written.
        if kept_dirs.contains(parent) {
            changes.refuse_hive(path);
            changes.deleted.push(path.clone());
        }
    }
    Ok(changes)
}

/// Whether the container's file `path` has the bytes of the file it was
/// copied from.
fn same_as_layer(
    files: &Dir,
    path: &str,
    layer: Option<&str>,
    store_root: &Dir,
) -> Result<bool, ContainerError> {
    let Some(layer) = layer else {
        return Ok(false);
    };
    let original_rel = Path::new(layer).join(FILES_DIR).join(path);
    let Ok(original) = store_root.open_regular(&original_rel) else {
        return Ok(false);
    };
    let current = files
        .open_regular(Path::new(path))
        .map_err(io_err("read", &files.display_path(Path::new(path))))?;
    let mut a = io::BufReader::with_capacity(1 << 20, original);
    let mut b = io::BufReader::with_capacity(1 << 20, current);
    loop {
        let (x, y) = (
            io::BufRead::fill_buf(&mut a).map_err(io_err("read", &original_rel))?,
            io::BufRead::fill_buf(&mut b).map_err(io_err("read", Path::new(path)))?,
        );
        if x.is_empty() || y.is_empty() {
            return Ok(x.is_empty() && y.is_empty());
        }
        let n = x.len().min(y.len());
        if x[..n] != y[..n] {
            return Ok(false);
        }
        io::BufRead::consume(&mut a, n);
        io::BufRead::consume(&mut b, n);
    }
}

/// A folder's entries, all carried.
fn folder_changes(folder: &Dir) -> Result<Changes, ContainerError> {
    let mut changes = Changes::default();
    scan(folder, "", &mut |path, name, stat, _| {
        if kind_of(stat).is_none() {
            changes.refuse_special(path);
        }
        changes.carry(path, name, true);
        Ok(())
    })?;
    Ok(changes)
}

/// The metadata of the composed image `chain` (base first), by path: the
/// top-most layer's entry for each path, with its security descriptor.
fn chain_metadata(
    store_root: &Dir,
    chain: &[&ImageRecord],
) -> Result<HashMap<String, (SidecarEntry, Option<String>)>, ContainerError> {
    let mut out: HashMap<String, (SidecarEntry, Option<String>)> = HashMap::new();
    for image in chain {
        let rel = Path::new(&image.full_name).join(METADATA_FILE);
        let sidecar: Sidecar = match store_root.read_limited(&rel, 1 << 30) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ContainerError::Io {
                what: "read",
                path: store_root.display_path(&rel),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ContainerError::Io {
                    what: "read",
                    path: store_root.display_path(&rel),
                    source,
                })
            }
        };
        if image.parent_image.is_some() {
            let dir = store_root
                .open_dir(Path::new(&image.full_name))
                .map_err(io_err(
                    "open",
                    &store_root.display_path(Path::new(&image.full_name)),
                ))?;
            let deleted = DeletedPaths::read(&dir).map_err(io_err("read", dir.path()))?;
            for p in &deleted.paths {
                out.retain(|k, _| k != p && !k.starts_with(&format!("{p}/")));
            }
        }
        for e in sidecar.entries {
            let sd = e
                .security_id
                .and_then(|id| sidecar.security_descriptors.get(id as usize).cloned());
            out.insert(e.path.clone(), (e, sd));
        }
    }
    Ok(out)
}

/// Commits `source` as a new child image named by `names`.
pub fn commit(
    store: &Store,
    source: CommitSource<'_>,
    names: CommitNames,
    reporter: &dyn Reporter,
) -> Result<ImageRecord, ContainerError> {
    let mut lock = store.lock(reporter)?;
    let store_root = lock_root(&lock)?;
    let (parent, changes, from, from_name) = match source {
        CommitSource::Container(name) => {
            check_container_name(name)?;
            let parent_path = containers_dir(store.home());
            let containers = Dir::open(&parent_path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => ContainerError::NotFound {
                    name: name.to_string(),
                },
                _ => ContainerError::Io {
                    what: "open",
                    path: parent_path.clone(),
                    source: e,
                },
            })?;
            let record = read_record(&containers, OsStr::new(name)).map_err(|_| {
                ContainerError::NotFound {
                    name: name.to_string(),
                }
            })?;
            let image = lock
                .find(&record.image)
                .filter(|i| i.id == record.image_id)
                .cloned()
                .ok_or_else(|| ContainerError::ImageGone {
                    name: name.to_string(),
                    image: record.image.clone(),
                })?;
            let dir = containers
                .open_dir(Path::new(name))
                .map_err(io_err("open", &parent_path.join(name)))?;
            let baseline: Baseline = serde_json::from_slice(
                &dir.read_limited(Path::new(BASELINE_FILE), 1 << 30)
                    .map_err(io_err("read", &dir.display_path(Path::new(BASELINE_FILE))))?,
            )
            .map_err(|e| ContainerError::Io {
                what: "read",
                path: dir.display_path(Path::new(BASELINE_FILE)),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?;
            let files = dir
                .open_dir(Path::new(FILES_DIR))
                .map_err(io_err("open", &dir.display_path(Path::new(FILES_DIR))))?;
            reporter.verbose(&format!("comparing {} with {}", name, image.full_name));
            let changes = container_changes(&files, &baseline, &store_root)?;
            (image, changes, files, format!("the container {name}"))
        }
        CommitSource::Folder { path, parent } => {
            let image = lock.resolve(parent)?.clone();
            let folder = Dir::open(path).map_err(io_err("open", path))?;
            let changes = folder_changes(&folder)?;
            (image, changes, folder, path.display().to_string())
        }
    };
    if !changes.refused.is_empty() {
        return Err(ContainerError::Refused {
            paths: changes.refused,
        });
    }
    if changes.carried.is_empty() && changes.deleted.is_empty() {
        return Err(ContainerError::NoChanges { name: from_name });
    }
    let listing = crate::store::Listing {
        images: lock.images().to_vec(),
        tags: lock.tags().clone(),
    };
    let mut chain = listing.chain(&parent)?;
    chain.reverse();
    let metadata = chain_metadata(&store_root, &chain)?;

    // The child's folder, built in the store's staging area first.
    let staging_parent = store_root
        .create_dir_all(Path::new(".staging"))
        .map_err(io_err(
            "create",
            &store_root.display_path(Path::new(".staging")),
        ))?;
    let work_rel = PathBuf::from(format!("commit-{}", random_suffix()));
    staging_parent
        .create_dir(&work_rel, 0o755)
        .map_err(io_err("create", staging_parent.path()))?;
    let work = staging_parent
        .open_dir(&work_rel)
        .map_err(io_err("open", staging_parent.path()))?;
    let built = build_child(&work, &from, &changes, &metadata);
    let diff_id = match built {
        Ok(d) => d,
        Err(e) => {
            let _ = staging_parent.remove_all(&work_rel);
            return Err(e);
        }
    };
    let hex = diff_id.trim_start_matches("sha256:").to_string();
    let new = NewImage {
        name: names.name,
        publisher: Some(names.publisher),
        version: names.version,
        id: hex,
        is_os_image: false,
        parent_image: Some(parent.full_name.clone()),
        tags: names.tags,
        created: None,
        diff_id: Some(diff_id),
    };
    let fill = |staged: &Path| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = Dir::open(staged)?;
        for name in [FILES_DIR, HIVES_DIR, METADATA_FILE, DELETED_FILE] {
            work.rename(Path::new(name), &target, Path::new(name))?;
        }
        Ok(())
    };
    let result = lock.install(new, false, fill, reporter);
    let _ = staging_parent.remove_all(&work_rel);
    Ok(result?)
}

/// Writes the child image's folder into `work` from `from` and returns the
/// digest of its layer (its diff_id).
fn build_child(
    work: &Dir,
    from: &Dir,
    changes: &Changes,
    metadata: &HashMap<String, (SidecarEntry, Option<String>)>,
) -> Result<String, ContainerError> {
    let werr = |what: &'static str| io_err(what, work.path());
    work.create_dir(Path::new(FILES_DIR), 0o755)
        .map_err(werr("create"))?;
    work.create_dir(Path::new(HIVES_DIR), 0o755)
        .map_err(werr("create"))?;
    let files = work.open_dir(Path::new(FILES_DIR)).map_err(werr("open"))?;
    // Every folder leading to a change, then the changes, parents first.
    let mut folders: BTreeSet<String> = BTreeSet::new();
    for p in changes.carried.iter().chain(&changes.deleted) {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            acc = join(&acc, part);
            folders.insert(acc.clone());
        }
    }
    let mut all: BTreeSet<&String> = folders.iter().collect();
    all.extend(changes.carried.iter());
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut dir_times: Vec<(String, Timestamps)> = Vec::new();
    let mut sidecar = Sidecar {
        format: FORMAT.to_string(),
        image_index: 1,
        security_descriptors: Vec::new(),
        entries: Vec::new(),
    };
    let mut sds: HashMap<String, u32> = HashMap::new();
    // Sorted so every folder comes before what it holds.
    let mut ordered: Vec<&String> = all.into_iter().collect();
    ordered.sort_by(|a, b| {
        a.split('/')
            .collect::<Vec<_>>()
            .cmp(&b.split('/').collect::<Vec<_>>())
    });
    for path in ordered {
        let rel = Path::new(path.as_str());
        let stat = from
            .stat(rel)
            .map_err(io_err("read", &from.display_path(rel)))?;
        let kind = kind_of(&stat);
        match kind {
            Some('d') => {
                files
                    .create_dir(rel, 0o755)
                    .map_err(io_err("create", &files.display_path(rel)))?;
                dir_times.push((path.clone(), times_of(&stat)));
            }
            Some('f') => {
                let key = (stat.st_dev, stat.st_ino);
                if stat.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        files
                            .hard_link(Path::new(first), rel)
                            .map_err(io_err("link", &files.display_path(rel)))?;
                        carry_metadata(path, 'f', metadata, &mut sidecar, &mut sds);
                        continue;
                    }
                    links.insert(key, path.clone());
                }
                let src = from
                    .open_regular(rel)
                    .map_err(io_err("read", &from.display_path(rel)))?;
                let dst = files
                    .create_file(rel, 0o644)
                    .map_err(io_err("create", &files.display_path(rel)))?;
                clone_file(&src, &dst).map_err(io_err("copy", &files.display_path(rel)))?;
                drop(dst);
                files
                    .set_times(rel, &times_of(&stat))
                    .map_err(io_err("set the times of", &files.display_path(rel)))?;
            }
            Some('l') => {
                let target = from
                    .read_link(rel)
                    .map_err(io_err("read", &from.display_path(rel)))?;
                files
                    .symlink(&target, rel)
                    .map_err(io_err("link", &files.display_path(rel)))?;
                files
                    .set_times(rel, &times_of(&stat))
                    .map_err(io_err("set the times of", &files.display_path(rel)))?;
            }
            _ => {
                let mut refused = Changes::default();
                refused.refuse_special(path);
                return Err(ContainerError::Refused {
                    paths: refused.refused,
                });
            }
        }
        carry_metadata(path, kind.unwrap_or('f'), metadata, &mut sidecar, &mut sds);
    }
    for (path, t) in dir_times.iter().rev() {
        files.set_times(Path::new(path), t).map_err(io_err(
            "set the times of",
            &files.display_path(Path::new(path)),
        ))?;
    }
    // The root's own metadata (the `Files` entry).
    carry_metadata("", 'd', metadata, &mut sidecar, &mut sds);
    write_json(work, METADATA_FILE, &sidecar)?;
    write_json(
        work,
        DELETED_FILE,
        &DeletedPaths::new(changes.deleted.clone()),
    )?;
    let hives = work.open_dir(Path::new(HIVES_DIR)).map_err(werr("open"))?;
    let deleted = DeletedPaths::new(changes.deleted.clone());
    let mut tar = TarWriter::new(Hashing::new(io::sink()));
    write_child_layer(
        &mut tar,
        &Tree {
            dir: &files,
            name: FILES_DIR,
            metadata: Some(&sidecar),
        },
        &deleted.paths,
        Some(&hives),
    )
    .map_err(ContainerError::Layer)?;
    let (_, diff_id, _) = tar
        .finish()
        .map_err(|e| ContainerError::Layer(LayerError::Write(e)))?
        .finish();
    Ok(diff_id)
}

/// Gives `path` the parent's metadata when the parent had an entry of the
/// same kind there; a new entry gets none (the default descriptor).
fn carry_metadata(
    path: &str,
    kind: char,
    metadata: &HashMap<String, (SidecarEntry, Option<String>)>,
    sidecar: &mut Sidecar,
    sds: &mut HashMap<String, u32>,
) {
    let Some((entry, sd)) = metadata.get(path) else {
        return;
    };
    let is_dir = entry.attributes & crate::wim::format::attributes::DIRECTORY != 0;
    let is_link = entry.reparse_tag.is_some();
    let same = match kind {
        'd' => is_dir && !is_link,
        'l' => is_link,
        _ => !is_dir && !is_link,
    };
    if !same {
        return;
    }
    let mut e = entry.clone();
    e.security_id = sd.as_ref().map(|sd| {
        let next = u32::try_from(sds.len()).unwrap_or(u32::MAX);
        *sds.entry(sd.clone()).or_insert_with(|| {
            sidecar.security_descriptors.push(sd.clone());
            next
        })
    });
    sidecar.entries.push(e);
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    format!("{}-{}", std::process::id(), hex::encode(bytes))
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
