//! Installing OS images into the store: from a `.wim` file on disk
//! (Install-ContainerOSImage) and from a feed entry, downloaded into the
//! store's cache first (Install-ContainerImage).
//!
//! Image 1 of the `.wim` becomes `Files/`. A `.wim` holding a second image
//! carries the utility VM there (as Windows base images do): image 2 becomes
//! `UtilityVM/Files/`. Further images are not installed (a warning says so).

mod plan;

pub use plan::{find_candidates, is_trusted, screen, Candidates, Screened, Trust, Wanted};

use std::fs::File;
use std::io::{self};
use std::path::{Path, PathBuf};

use crate::feed::FeedEntry;
use crate::progress::Reporter;
use crate::store::{
    full_name, normalize_publisher, test_pause, ImageRecord, NewImage, Store, StoreError,
    StoreLock, FILES_DIR, METADATA_FILE, UTILITY_VM_FILES_DIR, UTILITY_VM_METADATA_FILE,
    WIM_XML_FILE,
};
use crate::version::Version;
use crate::wim::{
    ApplyOptions, ImageInfo, WimError, WimFile, WimInfo, WindowsInfo, WindowsVersion,
};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: WimError,
    },
    #[error("{path} holds no image")]
    Empty { path: PathBuf },
    #[error("cannot tell the image's name and version")]
    Naming(#[source] crate::feed::FeedError),
    #[error("cannot name the downloaded file")]
    Name(#[source] crate::names::NameError),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot download {name} {version}")]
    Download {
        name: String,
        version: String,
        #[source]
        source: crate::download::DownloadError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Install-ContainerOSImage: what the user asked for.
#[derive(Clone, Debug, Default)]
pub struct OsImageRequest {
    pub wim_path: PathBuf,
    /// Wins over the name from the file name.
    pub name: Option<String>,
    /// Wins over the `.wim`'s XML and the file name.
    pub version: Option<Version>,
    pub publisher: Option<String>,
    pub force: bool,
}

/// What an install would record, worked out before anything is written
/// (for `-WhatIf` and the "already installed" check).
#[derive(Clone, Debug)]
pub struct Planned {
    pub name: String,
    pub version: Version,
    pub publisher: String,
    pub full_name: String,
}

/// Opens the `.wim` and decides its name, version, publisher and FullName.
pub fn plan_os_image(request: &OsImageRequest) -> Result<(WimFile, Planned), InstallError> {
    let wim = WimFile::open(&request.wim_path).map_err(|source| InstallError::Open {
        path: request.wim_path.clone(),
        source,
    })?;
    let (name, version) = match (&request.name, &request.version) {
        (Some(n), Some(v)) => (n.clone(), v.clone()),
        (name, Some(v)) => {
            // The version is given: only the name comes from the rule, so a
            // .wim without any version of its own is fine.
            let info = with_version(wim.info(), v);
            let (n, _) = crate::feed::wim_name_and_version(&request.wim_path, Some(&info))
                .map_err(InstallError::Naming)?;
            (name.clone().unwrap_or(n), v.clone())
        }
        (name, None) => {
            let (n, v) = crate::feed::wim_name_and_version(&request.wim_path, Some(wim.info()))
                .map_err(InstallError::Naming)?;
            (name.clone().unwrap_or(n), v)
        }
    };
    let publisher = normalize_publisher(request.publisher.as_deref());
    let full_name = full_name(&publisher, &name, &version);
    Ok((
        wim,
        Planned {
            name,
            version,
            publisher,
            full_name,
        },
    ))
}

/// The `.wim`'s XML data with image 1's WINDOWS/VERSION set to `version`.
fn with_version(info: &WimInfo, version: &Version) -> WimInfo {
    let [major, minor, build, sp_build] = version.parts();
    let mut info = info.clone();
    if info.images.is_empty() {
        info.images.push(ImageInfo::default());
    }
    if let Some(first) = info.images.first_mut() {
        first
            .windows
            .get_or_insert_with(WindowsInfo::default)
            .version = Some(WindowsVersion {
            major,
            minor,
            build,
            sp_build,
            sp_level: None,
        });
    }
    info
}

/// Install-ContainerOSImage: imports a `.wim` file into the store.
pub fn install_os_image(
    lock: &mut StoreLock<'_>,
    request: &OsImageRequest,
    reporter: &dyn Reporter,
) -> Result<ImageRecord, InstallError> {
    let (wim, planned) = plan_os_image(request)?;
    if !request.force && lock.find(&planned.full_name).is_some() {
        return Err(StoreError::AlreadyInstalled {
            full_name: planned.full_name,
        }
        .into());
    }
    let id = sha256_file(&request.wim_path, reporter)?;
    install_wim(lock, &wim, planned, id, request.force, reporter)
}

/// Applies an opened `.wim` into the store under the planned name.
fn install_wim(
    lock: &mut StoreLock<'_>,
    wim: &WimFile,
    planned: Planned,
    id: String,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<ImageRecord, InstallError> {
    let count = wim.info().images.len();
    if count == 0 {
        return Err(InstallError::Empty {
            path: wim.path().to_path_buf(),
        });
    }
    if count > 2 {
        reporter.warn(&format!(
            "{} holds {count} images; only image 1 (the OS) and image 2 (the utility VM) are installed",
            wim.path().display()
        ));
    }
    let new = NewImage {
        name: planned.name,
        publisher: Some(planned.publisher),
        version: planned.version,
        id,
        is_os_image: true,
        parent_image: None,
        tags: None,
        created: None,
        diff_id: None,
    };
    let record = lock.install(
        new,
        force,
        |dir| {
            let options = ApplyOptions {
                metadata_path: Some(dir.join(METADATA_FILE)),
                ..ApplyOptions::default()
            };
            wim.apply(1, &dir.join(FILES_DIR), &options, reporter)?;
            test_pause("applied", reporter);
            if count >= 2 {
                let options = ApplyOptions {
                    metadata_path: Some(dir.join(UTILITY_VM_METADATA_FILE)),
                    ..ApplyOptions::default()
                };
                wim.apply(2, &dir.join(UTILITY_VM_FILES_DIR), &options, reporter)?;
            }
            write_wim_xml(wim, &dir.join(WIM_XML_FILE))?;
            Ok(())
        },
        reporter,
    )?;
    Ok(record)
}

/// Keeps the `.wim`'s XML data (UTF-16LE, as stored) beside `Files/`.
fn write_wim_xml(wim: &WimFile, path: &Path) -> io::Result<()> {
    std::fs::write(path, wim.xml_bytes())
}

/// A feed entry's `.wim`, downloaded and verified in the store's cache,
/// opened, and ready to be installed with [`install_fetched`].
pub struct Fetched {
    /// How the download went (for the `Downloaded in …` line).
    pub outcome: crate::download::Outcome,
    pub planned: Planned,
    wim: WimFile,
    id: String,
}

/// What installing `entry` records: its name, version, publisher and FullName.
pub fn plan_feed_image(entry: &FeedEntry) -> Planned {
    let publisher = normalize_publisher(entry.publisher.as_deref());
    Planned {
        full_name: full_name(&publisher, &entry.name, &entry.version),
        name: entry.name.clone(),
        version: entry.version.clone(),
        publisher,
    }
}

/// Install-ContainerImage, first half: downloads the entry's `.wim` into
/// the store's cache (verified by size and SHA-256) without holding the
/// store's lock, so other commands can change the store meanwhile. Two
/// commands fetching the same image share the one cached file (its partial
/// file is locked while it grows). A failed download stays in the cache to
/// be resumed.
pub fn fetch_for_install(
    store: &Store,
    entry: &FeedEntry,
    downloader: &crate::download::Downloader,
    reporter: &dyn Reporter,
) -> Result<Fetched, InstallError> {
    let planned = plan_feed_image(entry);
    let dest = store
        .create_cache_dir()?
        .join(entry.wim_file_name().map_err(InstallError::Name)?);
    let request = crate::download::Request::from(entry);
    let mut tries = 0;
    loop {
        tries += 1;
        let outcome = crate::download::fetch(downloader, &request, &dest, false, reporter)
            .map_err(|source| InstallError::Download {
                name: entry.name.clone(),
                version: entry.version.to_string(),
                source,
            })?;
        test_pause("downloaded", reporter);
        // Opened before the store is locked: once open, the file stays
        // readable even when another install of the same image removes it.
        let wim = match WimFile::open(&dest) {
            Ok(wim) => wim,
            // Another command installed this very file and removed it from
            // the cache between our download and our opening it.
            Err(_) if tries < 3 && !dest.exists() => continue,
            Err(source) => {
                return Err(InstallError::Open {
                    path: dest.clone(),
                    source,
                })
            }
        };
        let id = match entry.sha256 {
            Some(h) => hex::encode(h),
            None => sha256_file(&dest, reporter)?,
        };
        return Ok(Fetched {
            outcome,
            planned,
            wim,
            id,
        });
    }
}

/// Install-ContainerImage, second half, under the store's lock: installs a
/// fetched `.wim`, then deletes the cached file.
pub fn install_fetched(
    lock: &mut StoreLock<'_>,
    fetched: Fetched,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<ImageRecord, InstallError> {
    let Fetched {
        outcome,
        planned,
        wim,
        id,
    } = fetched;
    // Checked again under the lock: another command may have installed it
    // while this one was downloading.
    if !force && lock.find(&planned.full_name).is_some() {
        return Err(StoreError::AlreadyInstalled {
            full_name: planned.full_name,
        }
        .into());
    }
    let record = install_wim(lock, &wim, planned, id, force, reporter)?;
    drop(wim);
    if let Err(e) = std::fs::remove_file(&outcome.path) {
        if e.kind() != io::ErrorKind::NotFound {
            reporter.verbose(&format!("could not delete {}: {e}", outcome.path.display()));
        }
    }
    Ok(record)
}

/// Install-ContainerImage for one feed entry while holding the lock
/// throughout: [`fetch_for_install`] then [`install_fetched`].
pub fn install_from_feed(
    lock: &mut StoreLock<'_>,
    entry: &FeedEntry,
    downloader: &crate::download::Downloader,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<ImageRecord, InstallError> {
    let planned = plan_feed_image(entry);
    if !force && lock.find(&planned.full_name).is_some() {
        return Err(StoreError::AlreadyInstalled {
            full_name: planned.full_name,
        }
        .into());
    }
    let fetched = fetch_for_install(lock.store(), entry, downloader, reporter)?;
    install_fetched(lock, fetched, force, reporter)
}

/// SHA-256 (hex) of a file: an installed OS image's Id.
pub fn sha256_file(path: &Path, reporter: &dyn Reporter) -> Result<String, InstallError> {
    let read_err = |source| InstallError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let total = file.metadata().map(|m| m.len()).ok();
    reporter.on_start(&format!("Hashing {}", path.display()), total);
    let result = crate::fsutil::sha256_of(&mut file, |n| reporter.on_progress(n));
    reporter.on_complete();
    result.map(|(sha, _)| hex::encode(sha)).map_err(read_err)
}
