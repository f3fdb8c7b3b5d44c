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
/// process at that exact point. Not for production use.
pub fn test_pause(stage: &str, reporter: &dyn Reporter) {
    if std::env::var(TEST_PAUSE_VAR).is_ok_and(|v| v == stage) {
        reporter.warn(&format!("test pause at {stage}"));
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
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
            if let Some(lock) = self.try_lock(reporter)? {
                return Ok(lock.index.images);
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

/// The store, held exclusively: the only way to change it.
pub struct StoreLock<'a> {
    store: &'a Store,
    _file: File,
    index: Index,
}

impl StoreLock<'_> {
    pub fn store(&self) -> &Store {
        self.store
    }

    pub fn images(&self) -> &[ImageRecord] {
        &self.index.images
    }

    /// The installed image named `full_name` (case-insensitive).
    pub fn find(&self, full_name: &str) -> Option<&ImageRecord> {
        self.index
            .position(full_name)
            .and_then(|i| self.index.images.get(i))
    }

    /// The FullNames of images whose ParentImage is `full_name`.
    pub fn dependants(&self, full_name: &str) -> Vec<String> {
        self.index
            .images
            .iter()
            .filter(|r| {
                r.parent_image
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case(full_name))
            })
            .map(|r| r.full_name.clone())
            .collect()
    }

    /// Installs an image: `fill` writes it into an empty staging folder
    /// (`Files/`, optionally `UtilityVM/Files/`, `wim.xml`, metadata), then the
    /// store fixes internal symbolic links, records every file's hash,
    /// publishes the folder by rename and records it in the index.
    /// With `force`, an installed image of the same FullName is replaced.
    pub fn install(
        &mut self,
        new: NewImage,
        force: bool,
        fill: impl FnOnce(&Path) -> Result<(), BoxError>,
        reporter: &dyn Reporter,
    ) -> Result<ImageRecord, StoreError> {
        check_component("name", &new.name)?;
        let publisher = normalize_publisher(new.publisher.as_deref());
        check_component("publisher", &publisher)?;
        let full_name = full_name(&publisher, &new.name, &new.version);
        let existing = self.index.position(&full_name);
        if existing.is_some() && !force {
            return Err(StoreError::AlreadyInstalled { full_name });
        }
        if let Some(parent) = &new.parent_image {
            if self.index.position(parent).is_none() {
                return Err(StoreError::NotInstalled {
                    full_name: parent.clone(),
                });
            }
        }

        let root = self.store.root.clone();
        let staging_root = root.join(STAGING_DIR);
        fs::create_dir_all(&staging_root).map_err(io_err("create", &staging_root))?;
        let staging = tempfile::Builder::new()
            .prefix("install-")
            .tempdir_in(&staging_root)
            .map_err(io_err("create a staging folder in", &staging_root))?;
        // The absolute, resolved path: apply writes links relative to it.
        let staged = fs::canonicalize(staging.path()).map_err(io_err("resolve", staging.path()))?;
        let install_token = staged
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        test_pause("staging", reporter);

        reporter.verbose(&format!("installing {full_name} in {}", staged.display()));
        fill(&staged).map_err(|source| StoreError::Fill {
            full_name: full_name.clone(),
            source,
        })?;
        for tree in [FILES_DIR, UTILITY_VM_FILES_DIR] {
            let dir = staged.join(tree);
            if dir.is_dir() {
                let n = links::make_internal_links_relative(&dir, &dir)
                    .map_err(io_err("fix the symbolic links in", &dir))?;
                if n > 0 {
                    reporter.verbose(&format!("made {n} symbolic link(s) in {tree} relative"));
                }
            }
        }
        let scan = manifest::scan(&staged, &[FILES_DIR, UTILITY_VM_FILES_DIR])
            .map_err(io_err("record the installed files of", &staged))?;
        let record = ImageRecord {
            name: new.name.clone(),
            publisher,
            version: new.version.four_part(),
            full_name: full_name.clone(),
            id: new.id.to_ascii_lowercase(),
            is_os_image: new.is_os_image,
            parent_image: new.parent_image.clone(),
            size: scan.size,
            created: now_rfc3339(),
            utility_vm: staged.join(UTILITY_VM_FILES_DIR).is_dir(),
            install_token,
        };
        write_json(&staged.join(MANIFEST_FILE), &scan.manifest)?;
        write_json(&staged.join(RECORD_FILE), &record)?;
        test_pause("staged", reporter);

        let dest = self.store.image_path(&full_name);
        let displaced = match fs::symlink_metadata(&dest) {
            Ok(_) if existing.is_some() => Some(self.move_to_trash(&dest)?),
            Ok(_) => {
                return Err(StoreError::Io {
                    what: "install into",
                    path: dest,
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the folder exists but is not an installed image; move it away",
                    ),
                })
            }
            Err(_) => None,
        };
        let staged_path = staging.keep();
        if let Err(source) = fs::rename(&staged_path, &dest) {
            let _ = fs::remove_dir_all(&staged_path);
            if let Some(old) = &displaced {
                let _ = fs::rename(old, &dest);
            }
            return Err(StoreError::Io {
                what: "publish the image at",
                path: dest,
                source,
            });
        }
        crate::fsutil::sync_dir(&root);
        test_pause("published", reporter);

        let mut index = self.index.clone();
        match existing {
            Some(i) => {
                if let Some(slot) = index.images.get_mut(i) {
                    *slot = record.clone();
                }
            }
            None => index.images.push(record.clone()),
        }
        if let Err(e) = index.save(&root) {
            let _ = fs::remove_dir_all(&dest);
            if let Some(old) = &displaced {
                let _ = fs::rename(old, &dest);
            }
            return Err(e);
        }
        self.index = index;
        test_pause("recorded", reporter);
        if let Some(old) = displaced {
            remove_quietly(&old, reporter);
        }
        Ok(record)
    }

    /// Removes an installed image; refused while other images depend on it.
    pub fn remove(
        &mut self,
        full_name: &str,
        reporter: &dyn Reporter,
    ) -> Result<ImageRecord, StoreError> {
        let i = self
            .index
            .position(full_name)
            .ok_or_else(|| StoreError::NotInstalled {
                full_name: full_name.to_string(),
            })?;
        let record = self
            .index
            .images
            .get(i)
            .cloned()
            .ok_or_else(|| StoreError::NotInstalled {
                full_name: full_name.to_string(),
            })?;
        let dependants = self.dependants(&record.full_name);
        if !dependants.is_empty() {
            return Err(StoreError::HasDependants {
                full_name: record.full_name,
                dependants,
            });
        }
        let dir = self.store.image_path(&record.full_name);
        let trashed = match fs::symlink_metadata(&dir) {
            Ok(_) => Some(self.move_to_trash(&dir)?),
            Err(_) => None,
        };
        test_pause("removing", reporter);
        let mut index = self.index.clone();
        index.images.remove(i);
        if let Err(e) = index.save(&self.store.root) {
            if let Some(t) = &trashed {
                let _ = fs::rename(t, &dir);
            }
            return Err(e);
        }
        self.index = index;
        if let Some(t) = trashed {
            remove_quietly(&t, reporter);
        }
        Ok(record)
    }

    /// Moves the whole store to `dest` (which must not exist) and records the
    /// new location in the configuration. Returns the new location.
    pub fn relocate(self, dest: &Path, reporter: &dyn Reporter) -> Result<PathBuf, StoreError> {
        relocate::relocate(self.store, dest, reporter)
    }

    fn move_to_trash(&self, dir: &Path) -> Result<PathBuf, StoreError> {
        let trash = self.store.root.join(TRASH_DIR);
        fs::create_dir_all(&trash).map_err(io_err("create", &trash))?;
        let slot = tempfile::Builder::new()
            .prefix("old-")
            .tempdir_in(&trash)
            .map_err(io_err("create a folder in", &trash))?
            .keep();
        let target = slot.join("image");
        fs::rename(dir, &target).map_err(io_err("move aside", dir))?;
        Ok(slot)
    }
}

fn remove_quietly(dir: &Path, reporter: &dyn Reporter) {
    if let Err(e) = fs::remove_dir_all(dir) {
        reporter.warn(&format!(
            "could not delete {} ({e}); the next command will retry",
            dir.display()
        ));
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Io {
        what: "encode",
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    fs::write(path, bytes).map_err(io_err("write", path))
}

fn read_record(image_dir: &Path) -> Option<ImageRecord> {
    let bytes = fs::read(image_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0);
    now.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
