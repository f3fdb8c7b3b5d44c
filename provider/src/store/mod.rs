//! The local image store: installed images, their index and metadata.
//!
//! Layout of a store folder:
//!
//! ```text
//! <store>/index.json                 the installed images (atomically replaced)
//! <store>/<FullName>/Files/...       the applied image (index 1 of the .wim)
//! <store>/<FullName>/UtilityVM/Files/...  the utility VM image (index 2), when present
//! <store>/<FullName>/wim.xml         the .wim's XML data
//! <store>/<FullName>/metadata.json   Windows-only metadata of Files/ (and UtilityVM/metadata.json)
//! <store>/<FullName>/manifest.json   every installed file with its SHA-256
//! <store>/<FullName>/image.json      the image's record, as in the index
//! <store>/<FullName>/Hives/...       a child image's registry delta hives
//! <store>/<FullName>/deleted.json    the paths a child image deletes
//! <store>/.staging/<random>/         images being installed
//! <store>/.trash/<random>/           images being replaced or removed
//! <store>/.cache/                    downloaded .wim files
//! ```
//!
//! Crash safety: every change happens under an exclusive lock on
//! `<home>/store.lock`. An image is built in `.staging` and published by one
//! rename (a reinstall swaps the new folder and the old one in one atomic
//! exchange); a removal moves the folder into `.trash` by one rename. The
//! image folders' own records (`image.json`) are the truth, the index a
//! summary of them: whoever takes the lock next lists a published folder the
//! index lacks, drops records whose folder is gone, puts back an image that a
//! removal or reinstall moved aside but never recorded as gone, and empties
//! `.staging` and `.trash`. Nothing else in the store is ever deleted, and a
//! missing, emptied or damaged index is rebuilt from the folders.
//! Readers take no lock: the index is only ever replaced whole.
//!
//! Every file-system step inside the store goes through a handle to the
//! store folder ([`crate::fsutil::dir::Dir`]) and never follows a link: a
//! `.staging`, `.trash`, `.cache` or image folder replaced by a link is
//! reported and removed as a link, never written or emptied through.

mod index;
mod links;
mod locked;
pub mod manifest;
mod reference;
mod relocate;
mod tags;
mod tidy;

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Home};
use crate::fsutil::dir::Dir;
use crate::names::NameError;
use crate::progress::Reporter;
use crate::version::Version;
use index::{Index, Loaded};

pub use locked::StoreLock;
pub use reference::{resolve, MIN_ID_PREFIX};
pub use relocate::MOVE_JOURNAL;
pub use tags::{default_tag, Tag, TagError, Tags, DEFAULT_TAG};

/// The publisher recorded when none is given.
pub const DEFAULT_PUBLISHER: &str = "CN=Microsoft";
/// The applied image, inside an image folder.
pub const FILES_DIR: &str = "Files";
/// The applied utility VM image, inside an image folder.
pub const UTILITY_VM_FILES_DIR: &str = "UtilityVM/Files";
/// The `.wim`'s XML data, inside an image folder.
pub const WIM_XML_FILE: &str = "wim.xml";
/// Windows-only metadata of `Files/`, inside an image folder.
pub const METADATA_FILE: &str = "metadata.json";
/// Windows-only metadata of `UtilityVM/Files/`, inside an image folder.
pub const UTILITY_VM_METADATA_FILE: &str = "UtilityVM/metadata.json";
/// A child image's registry delta hives, inside its image folder.
pub const HIVES_DIR: &str = "Hives";
/// The paths a child image deletes from its parents (below `Files/`),
/// inside its image folder.
pub const DELETED_FILE: &str = "deleted.json";
const MANIFEST_FILE: &str = "manifest.json";
const RECORD_FILE: &str = "image.json";
const LOCK_FILE: &str = "store.lock";
const STAGING_DIR: &str = ".staging";
const TRASH_DIR: &str = ".trash";
const CACHE_DIR: &str = ".cache";

/// The environment variable of the test-only pause hook (see [`test_pause`]).
pub const TEST_PAUSE_VAR: &str = "CONTAINERIMAGE_TEST_PAUSE_AT";

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the store index {path} is damaged: {message}; restore it from a backup or delete the store folder")]
    DamagedIndex { path: PathBuf, message: String },
    #[error("the image {full_name} is already installed; use -Force to reinstall it")]
    AlreadyInstalled { full_name: String },
    #[error(
        "no installed image is named {full_name}; Get-ContainerImage lists the installed images"
    )]
    NotInstalled { full_name: String },
    #[error("{full_name} cannot be removed: {} depend on it; remove them first", dependants.join(", "))]
    HasDependants {
        full_name: String,
        dependants: Vec<String>,
    },
    #[error(transparent)]
    BadName(#[from] NameError),
    #[error(transparent)]
    BadTag(#[from] TagError),
    #[error("the ParentImage records of {full_name} form a loop")]
    ParentLoop { full_name: String },
    #[error("no installed image is named '{reference}' (by FullName, tag or Id); Get-ContainerImage lists the installed images")]
    UnknownReference { reference: String },
    #[error("'{reference}' is the start of several images' Ids ({}); give more digits", candidates.join(", "))]
    AmbiguousReference {
        reference: String,
        candidates: Vec<String>,
    },
    #[error("cannot install {full_name}")]
    Fill {
        full_name: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot move the store to {path}: {reason}")]
    MoveTarget { path: PathBuf, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// One installed image, as the index records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRecord {
    pub name: String,
    pub publisher: String,
    /// Four-part form (`1.0.0.0`).
    pub version: String,
    pub full_name: String,
    /// SHA-256 (hex) of the `.wim` the image was installed from.
    pub id: String,
    #[serde(rename = "IsOSImage")]
    pub is_os_image: bool,
    #[serde(default)]
    pub parent_image: Option<String>,
    /// Bytes of the installed files, hard links counted once.
    pub size: u64,
    /// RFC 3339, UTC.
    pub created: String,
    #[serde(default, rename = "UtilityVM")]
    pub utility_vm: bool,
    /// Ties the record to the folder it describes (see `image.json`).
    pub install_token: String,
    /// The digest of the image's layer tar, uncompressed (`sha256:…`),
    /// when the image came from one: a layer already in the store is
    /// found by it and never stored twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
}

/// The installed images and their tags.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub images: Vec<ImageRecord>,
    pub tags: Tags,
}

impl Listing {
    /// The installed image `reference` names (see [`resolve`]).
    pub fn resolve(&self, reference: &str) -> Result<&ImageRecord, StoreError> {
        resolve(&self.images, &self.tags, reference)
    }

    /// `record` and its parents, newest first. A missing parent is an
    /// error, and so are ParentImage records that form a loop.
    pub fn chain<'a>(
        &'a self,
        record: &'a ImageRecord,
    ) -> Result<Vec<&'a ImageRecord>, StoreError> {
        let mut out = vec![record];
        let mut current = record;
        while let Some(parent) = &current.parent_image {
            if out.len() > self.images.len() {
                return Err(StoreError::ParentLoop {
                    full_name: record.full_name.clone(),
                });
            }
            current = self
                .images
                .iter()
                .find(|r| r.full_name.eq_ignore_ascii_case(parent))
                .ok_or_else(|| StoreError::NotInstalled {
                    full_name: parent.clone(),
                })?;
            out.push(current);
        }
        Ok(out)
    }
}

impl ImageRecord {
    /// What made the image, as an image config's history says it
    /// (`Apply image <version>` for an OS image, as Microsoft writes).
    pub fn created_by(&self) -> String {
        if self.is_os_image {
            format!("Apply image {}", self.version)
        } else {
            format!("New-ContainerImage {}", self.full_name)
        }
    }
}

/// A child image's deleted paths (`deleted.json`): below `Files/`,
/// `/`-separated, sorted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeletedPaths {
    #[serde(rename = "Deleted")]
    pub paths: Vec<String>,
}

impl DeletedPaths {
    pub fn new(mut paths: Vec<String>) -> DeletedPaths {
        paths.sort();
        paths.dedup();
        DeletedPaths { paths }
    }

    /// The deleted paths of the image folder `image_dir` (none when it has
    /// no record); a path with an empty, `.` or `..` part is refused.
    pub fn read(image_dir: &Dir) -> io::Result<DeletedPaths> {
        let bytes = match image_dir.read_limited(Path::new(DELETED_FILE), 256 << 20) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DeletedPaths::default()),
            Err(e) => return Err(e),
        };
        let d: DeletedPaths = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{DELETED_FILE}: {e}"))
        })?;
        for p in &d.paths {
            if p.split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
                || p.contains(['\\', '\0'])
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{DELETED_FILE}: the path '{}' is not below Files",
                        p.escape_debug()
                    ),
                ));
            }
        }
        Ok(DeletedPaths::new(d.paths))
    }
}

/// What to install: everything the record says except what the store computes.
#[derive(Clone, Debug)]
pub struct NewImage {
    pub name: String,
    /// As given; normalised to `CN=<...>`, `CN=Microsoft` when `None` or empty.
    pub publisher: Option<String>,
    pub version: Version,
    /// SHA-256 (hex) of the source `.wim`.
    pub id: String,
    pub is_os_image: bool,
    pub parent_image: Option<String>,
    /// Tags to give the image; `None` gives the default `<name>:<version>`.
    pub tags: Option<Vec<Tag>>,
    /// When the image was made (RFC 3339); `None` is now.
    pub created: Option<String>,
    /// The uncompressed layer digest, when the image came from a layer.
    pub diff_id: Option<String>,
}

/// `Demo` → `CN=Demo`; `cn=Demo` → `CN=Demo`; empty → `CN=Microsoft`.
pub fn normalize_publisher(publisher: Option<&str>) -> String {
    let p = publisher.map(str::trim).unwrap_or_default();
    if p.is_empty() {
        return DEFAULT_PUBLISHER.to_string();
    }
    match p.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("CN=") => {
            format!("CN={}", p.get(3..).unwrap_or_default())
        }
        _ => format!("CN={p}"),
    }
}

/// `<Publisher>_<Name>_<Version>`, e.g. `CN=Microsoft_NanoServer_10.0.14300.1010`.
pub fn full_name(publisher: &str, name: &str, version: &Version) -> String {
    format!("{publisher}_{name}_{}", version.four_part())
}

/// Whether two FullNames name the same image: publisher and name compared
/// ignoring case, the versions as versions (`CN=Demo_Base_1.0` is
/// `CN=Demo_Base_1.0.0.0`).
pub fn same_full_name(a: &str, b: &str) -> bool {
    fn split(full_name: &str) -> (&str, Option<Version>) {
        match full_name.rsplit_once('_') {
            Some((head, version)) => match version.parse::<Version>() {
                Ok(v) => (head, Some(v)),
                Err(_) => (full_name, None),
            },
            None => (full_name, None),
        }
    }
    match (split(a), split(b)) {
        ((ha, Some(va)), (hb, Some(vb))) => ha.eq_ignore_ascii_case(hb) && va == vb,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Which installed images a Get/Remove/Test command means: a name pattern
/// (wildcards, case-insensitive), a publisher (`Demo` or `CN=Demo`,
/// wildcards allowed) and an exact version (`1.0` matches `1.0.0.0`).
#[derive(Clone, Debug, Default)]
pub struct ImageFilter {
    pub name: Option<String>,
    pub publisher: Option<String>,
    pub version: Option<Version>,
}

impl ImageFilter {
    pub fn matches(&self, record: &ImageRecord) -> bool {
        let name_ok = self
            .name
            .as_deref()
            .is_none_or(|p| crate::wildcard::matches(p, &record.name));
        let publisher_ok = self.publisher.as_deref().is_none_or(|p| {
            crate::wildcard::matches(&normalize_publisher(Some(p)), &record.publisher)
        });
        let version_ok = self.version.as_ref().is_none_or(|v| {
            record
                .version
                .parse::<Version>()
                .is_ok_and(|have| have == *v)
        });
        name_ok && publisher_ok && version_ok
    }
}

/// Checks a record read from disk (the index or an image folder's
/// `image.json`): its names pass the one name rule and its FullName is the
/// one they make, so it names exactly one folder directly in the store.
pub(crate) fn check_record(r: &ImageRecord) -> Result<(), String> {
    let shown = r.full_name.escape_debug();
    crate::names::check_name(&r.name).map_err(|e| format!("{shown}: {e}"))?;
    crate::names::check_publisher(&r.publisher).map_err(|e| format!("{shown}: {e}"))?;
    let version: Version = r
        .version
        .parse()
        .map_err(|e| format!("{shown}: bad version: {e}"))?;
    if r.full_name != full_name(&r.publisher, &r.name, &version) {
        return Err(format!(
            "{shown} is not the FullName of {} {} {}",
            r.publisher.escape_debug(),
            r.name.escape_debug(),
            r.version.escape_debug()
        ));
    }
    if let Some(parent) = &r.parent_image {
        if parent.is_empty() || parent.contains(['/', '\\', '\0']) || parent.starts_with('.') {
            return Err(format!(
                "{shown}: bad ParentImage {}",
                parent.escape_debug()
            ));
        }
    }
    Ok(())
}

/// Replaces `<dir>/<name>` atomically with `value` as pretty JSON; `what`
/// names the file in errors ("the store index").
pub(crate) fn save_json<T: Serialize>(
    dir: &Dir,
    name: &str,
    what: &'static str,
    value: &T,
) -> Result<(), StoreError> {
    let rel = Path::new(name);
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Io {
        what: "encode",
        path: dir.display_path(rel),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    dir.write_atomic(rel, &bytes)
        .map_err(|source| StoreError::Io {
            what,
            path: dir.display_path(rel),
            source,
        })
}

/// Test-only hook: when `CONTAINERIMAGE_TEST_PAUSE_AT` names `stage`, report
/// "test pause at <stage>" as a warning and wait, so a test can kill the
/// process at that exact point (or change the store and let it go on). Compiled only with the `test-hooks` feature.
pub fn test_pause(stage: &str, reporter: &dyn Reporter) {
    #[cfg(feature = "test-hooks")]
    if std::env::var(TEST_PAUSE_VAR).is_ok_and(|v| v == stage) {
        reporter.warn(&format!("test pause at {stage}"));
        // Until killed, or until the file named by CONTAINERIMAGE_TEST_RESUME
        // appears (so a test can change the store, then let the command go on).
        let resume = std::env::var_os("CONTAINERIMAGE_TEST_RESUME").map(PathBuf::from);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < until {
            if resume.as_deref().is_some_and(Path::exists) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = (stage, reporter);
}

/// Test-only switch: with `CONTAINERIMAGE_TEST_NO_EXCHANGE` set, a reinstall
/// takes the path of file systems that cannot exchange two folders.
#[cfg(feature = "test-hooks")]
fn test_no_exchange() -> bool {
    std::env::var_os("CONTAINERIMAGE_TEST_NO_EXCHANGE").is_some()
}

#[cfg(not(feature = "test-hooks"))]
fn test_no_exchange() -> bool {
    false
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A store, found through the home folder's configuration.
pub struct Store {
    home: Home,
    root: PathBuf,
}

impl Store {
    /// Finds the store of `home`, finishing or rolling back a move that was
    /// interrupted. Creates nothing until something is installed.
    pub fn open(home: &Home, reporter: &dyn Reporter) -> Result<Store, StoreError> {
        if home.root().join(MOVE_JOURNAL).exists() {
            let lock = lock_file(home, reporter)?;
            relocate::recover(home, reporter)?;
            drop(lock);
        }
        let config = home.load()?;
        Ok(Store {
            home: home.clone(),
            root: home.store_path(&config),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// `<store>/<FullName>`, the folder holding `Files/`.
    pub fn image_path(&self, full_name: &str) -> PathBuf {
        self.root.join(full_name)
    }

    /// Where downloaded `.wim` files are kept: `<store>/.cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join(CACHE_DIR)
    }

    /// `<store>/.cache`, created when missing (without the lock: downloads
    /// wait there until installed; a link planted there is refused).
    pub fn create_cache_dir(&self) -> Result<PathBuf, StoreError> {
        let root = self.create_root()?;
        let rel = Path::new(CACHE_DIR);
        root.create_dir_all(rel)
            .map_err(io_err("create", &root.display_path(rel)))?;
        Ok(self.cache_dir())
    }

    /// The store folder, opened, or `None` before anything was installed.
    pub(crate) fn open_root(&self) -> Result<Option<Dir>, StoreError> {
        match Dir::open(&self.root) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                what: "open the store folder",
                path: self.root.clone(),
                source,
            }),
        }
    }

    /// The store folder, created when missing, opened.
    pub(crate) fn create_root(&self) -> Result<Dir, StoreError> {
        Dir::create_all(&self.root).map_err(io_err("create the store folder", &self.root))
    }

    /// The installed images. Cleans up after an interrupted command first when
    /// no other command holds the store; never waits for one.
    pub fn images(&self, reporter: &dyn Reporter) -> Result<Vec<ImageRecord>, StoreError> {
        let Some(root) = self.open_root()? else {
            return Ok(Vec::new());
        };
        match self.try_lock(reporter) {
            Ok(Some(lock)) => return Ok(lock.index.images),
            Ok(None) => {}
            // A user who may read the store but not change it (or a
            // read-only file system) still gets the list.
            Err(StoreError::Io { what, path, source })
                if matches!(
                    source.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                reporter.verbose(&format!(
                    "not cleaning up the store: cannot {what} {}: {source}",
                    path.display()
                ));
            }
            Err(e) => return Err(e),
        }
        // Another command holds the store: what is published, as the index
        // orders it, without changing anything.
        let listed = match Index::load(&root, reporter)? {
            Loaded::Good(index) => index.images,
            Loaded::Missing | Loaded::Damaged(_) => Vec::new(),
        };
        let published = tidy::published_records(&root, reporter)?;
        Ok(tidy::reconcile(listed, published).images)
    }

    /// The installed images and their tags, as [`Store::images`] reads them.
    pub fn listing(&self, reporter: &dyn Reporter) -> Result<Listing, StoreError> {
        let images = self.images(reporter)?;
        let tags = match self.open_root()? {
            Some(root) => Tags::load_or_defaults(&root, &images),
            None => Tags::default(),
        };
        Ok(Listing { images, tags })
    }

    /// Takes the store's exclusive lock (waiting for other commands), cleans
    /// up after interrupted commands and reads the index.
    pub fn lock(&self, reporter: &dyn Reporter) -> Result<StoreLock<'_>, StoreError> {
        let file = lock_file(&self.home, reporter)?;
        self.locked(file, reporter)
    }

    fn try_lock(&self, reporter: &dyn Reporter) -> Result<Option<StoreLock<'_>>, StoreError> {
        let file = open_lock_file(&self.home)?;
        match file.try_lock() {
            Ok(()) => {
                record_holder(&file);
                self.locked(file, reporter).map(Some)
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(StoreError::Io {
                what: "lock",
                path: self.home.root().join(LOCK_FILE),
                source,
            }),
        }
    }

    fn locked(&self, file: File, reporter: &dyn Reporter) -> Result<StoreLock<'_>, StoreError> {
        let root = self.create_root()?;
        let index = tidy::tidy(&root, reporter)?;
        let tags = Tags::reconcile(&root, &index.images, reporter)?;
        Ok(StoreLock {
            store: self,
            root,
            _file: file,
            index,
            tags,
        })
    }

    /// Re-hashes an installed image's files and compares them with what was
    /// recorded at install time. Returns the problems (empty when intact).
    pub fn verify(&self, record: &ImageRecord) -> Result<Vec<String>, StoreError> {
        check_record(record).map_err(|why| StoreError::Io {
            what: "check",
            path: self.root.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, why),
        })?;
        let Some(root) = self.open_root()? else {
            return Ok(vec!["missing: the store folder".into()]);
        };
        let manifest_rel = Path::new(&record.full_name).join(MANIFEST_FILE);
        let recorded: manifest::Manifest =
            match root.read_limited(&manifest_rel, manifest::MANIFEST_LIMIT) {
                Ok(bytes) => match serde_json::from_slice(&bytes) {
                    Ok(m) => m,
                    Err(e) => return Ok(vec![format!("damaged: {MANIFEST_FILE} ({e})")]),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(vec![format!("missing: {MANIFEST_FILE}")])
                }
                Err(source) => {
                    return Err(StoreError::Io {
                        what: "read",
                        path: root.display_path(&manifest_rel),
                        source,
                    })
                }
            };
        let dir = self.image_path(&record.full_name);
        let actual = manifest::scan(&dir, &[FILES_DIR, UTILITY_VM_FILES_DIR, HIVES_DIR])
            .map_err(io_err("read the installed files of", &dir))?;
        Ok(manifest::compare(&recorded, &actual.manifest))
    }
}

/// Opens `<home>/store.lock`, creating it; never through a link (a link
/// planted there is removed and the file made anew).
fn open_lock_file(home: &Home) -> Result<File, StoreError> {
    let home_dir = Dir::create_all(home.root()).map_err(io_err("create", home.root()))?;
    let rel = Path::new(LOCK_FILE);
    let open = || home_dir.open_with(rel, OFlags::RDWR | OFlags::CREATE | OFlags::NONBLOCK, 0o644);
    let file = match open() {
        Ok(f) => f,
        Err(_) if matches!(home_dir.file_type(rel), Ok(Some(t)) if t != FileType::RegularFile) => {
            home_dir
                .remove_file(rel)
                .map_err(io_err("remove the planted", &home_dir.display_path(rel)))?;
            open().map_err(io_err("open the lock file", &home_dir.display_path(rel)))?
        }
        Err(source) => {
            return Err(StoreError::Io {
                what: "open the lock file",
                path: home_dir.display_path(rel),
                source,
            })
        }
    };
    Ok(file)
}

/// What the command holding the lock is called (`Install-ContainerImage`),
/// written into the lock file for whoever has to wait for it.
static LOCK_HOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the command this process runs, for the lock file (see [`lock_holder`]).
pub fn set_lock_holder(command: &str) {
    let _ = LOCK_HOLDER.set(command.to_string());
}

/// Records this process as the holder: `<pid> <command>` in the lock file.
fn record_holder(file: &File) {
    use std::os::unix::fs::FileExt;
    let command = LOCK_HOLDER.get().map_or("containerimage", String::as_str);
    let line = format!("{} {command}\n", std::process::id());
    // Only a courtesy to waiting commands: a failure changes nothing else.
    let _ = file.set_len(0);
    let _ = file.write_all_at(line.as_bytes(), 0);
}

/// Who holds the lock, as its file says: `process 4242 (Install-ContainerImage)`.
pub fn lock_holder(file: &File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 256];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?.trim();
    let (pid, command) = text.split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let command: String = command
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    Some(format!("process {pid} ({command})"))
}

/// Takes `<home>/store.lock` exclusively, saying so (and who holds it) when
/// it has to wait.
fn lock_file(home: &Home, reporter: &dyn Reporter) -> Result<File, StoreError> {
    let path = home.root().join(LOCK_FILE);
    let file = open_lock_file(home)?;
    match file.try_lock() {
        Ok(()) => {
            record_holder(&file);
            return Ok(file);
        }
        Err(TryLockError::WouldBlock) => {
            let holder =
                lock_holder(&file).unwrap_or_else(|| "another containerimage command".to_string());
            reporter.warn(&format!(
                "{holder} is changing the image store; waiting for it to finish"
            ));
        }
        Err(TryLockError::Error(source)) => {
            return Err(StoreError::Io {
                what: "lock",
                path,
                source,
            })
        }
    }
    file.lock().map_err(io_err("lock", &path))?;
    record_holder(&file);
    Ok(file)
}

/// The record `<root>/<folder>/image.json`, when it is there, readable and
/// passes the checks (a damaged one is `Err` with the reason).
fn read_record(root: &Dir, folder: &std::ffi::OsStr) -> Option<Result<ImageRecord, String>> {
    let record = match read_record_anywhere(root, folder)? {
        Ok(r) => r,
        Err(why) => return Some(Err(why)),
    };
    if std::ffi::OsStr::new(&record.full_name) != folder {
        return Some(Err(format!(
            "{}/{RECORD_FILE} records the image {}, not {}",
            folder.to_string_lossy(),
            record.full_name.escape_debug(),
            folder.to_string_lossy()
        )));
    }
    Some(Ok(record))
}

/// The checked record `<dir>/<folder>/image.json`, whatever the folder is
/// called (an image moved into `.trash`); `None` when there is none.
fn read_record_anywhere(
    dir: &Dir,
    folder: &std::ffi::OsStr,
) -> Option<Result<ImageRecord, String>> {
    let rel = Path::new(folder).join(RECORD_FILE);
    let bytes = match dir.read_limited(&rel, 1 << 20) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("cannot read {}: {e}", rel.display()))),
    };
    let record: ImageRecord = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return Some(Err(format!("{} is damaged: {e}", rel.display()))),
    };
    Some(check_record(&record).map(|()| record))
}

#[cfg(test)]
mod tests;
