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
//! <store>/.staging/<random>/         images being installed
//! <store>/.trash/<random>/           images being replaced or removed
//! <store>/.cache/                    downloaded .wim files
//! ```
//!
//! Crash safety: every change happens under an exclusive lock on
//! `<home>/store.lock`. An image is built in `.staging`, published by one
//! rename, then recorded in the index. Whoever takes the lock next removes
//! what an interrupted command left: staging and trash folders, published
//! folders the index does not record, and records whose folder is missing.
//! Readers take no lock: the index is only ever replaced whole.

mod index;
mod links;
mod locked;
pub mod manifest;
mod relocate;
mod tidy;

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Home};
use crate::progress::Reporter;
use crate::version::Version;
use index::Index;

pub use locked::StoreLock;
pub use relocate::MOVE_JOURNAL;

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
    #[error("'{value}' cannot be used as an image {field}: {reason}")]
    BadName {
        field: &'static str,
        value: String,
        reason: &'static str,
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

/// Names become folder names: refuse anything that is not one portable path component.
fn check_component(field: &'static str, value: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::BadName {
            field,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.starts_with('.') || value.ends_with('.') || value.ends_with(' ') {
        return bad("it starts with a dot or ends with a dot or space");
    }
    if value.chars().any(|c| {
        c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
    }) {
        return bad("it contains a character not allowed in file names (/ \\ : * ? \" < > | or a control character)");
    }
    if value.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    Ok(())
}

/// Test-only hook: when `CONTAINERIMAGE_TEST_PAUSE_AT` names `stage`, report
/// "test pause at <stage>" as a warning and sleep, so a test can kill the
/// process at that exact point. Compiled only with the `test-hooks` feature.
pub fn test_pause(stage: &str, reporter: &dyn Reporter) {
    #[cfg(feature = "test-hooks")]
    if std::env::var(TEST_PAUSE_VAR).is_ok_and(|v| v == stage) {
        reporter.warn(&format!("test pause at {stage}"));
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = (stage, reporter);
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

    /// The installed images. Cleans up after an interrupted command first when
    /// no other command holds the store; never waits for one.
    pub fn images(&self, reporter: &dyn Reporter) -> Result<Vec<ImageRecord>, StoreError> {
        if self.root.exists() {
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
        }
        let index = Index::load(&self.root)?;
        Ok(index
            .images
            .into_iter()
            .filter(|r| self.image_path(&r.full_name).is_dir())
            .collect())
    }

    /// Takes the store's exclusive lock (waiting for other commands), cleans
    /// up after interrupted commands and reads the index.
    pub fn lock(&self, reporter: &dyn Reporter) -> Result<StoreLock<'_>, StoreError> {
        let file = lock_file(&self.home, reporter)?;
        self.locked(file, reporter)
    }

    fn try_lock(&self, reporter: &dyn Reporter) -> Result<Option<StoreLock<'_>>, StoreError> {
        let path = self.home.root().join(LOCK_FILE);
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => self.locked(file, reporter).map(Some),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(StoreError::Io {
                what: "lock",
                path,
                source,
            }),
        }
    }

    fn locked(&self, file: File, reporter: &dyn Reporter) -> Result<StoreLock<'_>, StoreError> {
        let index = tidy::tidy(self, reporter)?;
        Ok(StoreLock {
            store: self,
            _file: file,
            index,
        })
    }

    /// Re-hashes an installed image's files and compares them with what was
    /// recorded at install time. Returns the problems (empty when intact).
    pub fn verify(&self, record: &ImageRecord) -> Result<Vec<String>, StoreError> {
        let dir = self.image_path(&record.full_name);
        let manifest_path = dir.join(MANIFEST_FILE);
        let recorded: manifest::Manifest = match fs::read(&manifest_path) {
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
                    path: manifest_path,
                    source,
                })
            }
        };
        let actual = manifest::scan(&dir, &[FILES_DIR, UTILITY_VM_FILES_DIR])
            .map_err(io_err("read the installed files of", &dir))?;
        Ok(manifest::compare(&recorded, &actual.manifest))
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open the lock file", path))
}

/// Takes `<home>/store.lock` exclusively, saying so when it has to wait.
fn lock_file(home: &Home, reporter: &dyn Reporter) -> Result<File, StoreError> {
    let path = home.root().join(LOCK_FILE);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => {
            reporter.warn(
                "another containerimage command is using the image store; waiting for it to finish",
            );
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
    Ok(file)
}

fn read_record(image_dir: &Path) -> Option<ImageRecord> {
    let bytes = fs::read(image_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests;
