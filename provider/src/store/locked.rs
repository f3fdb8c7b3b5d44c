//! Changing the store: installing, replacing and removing images under the
//! exclusive lock (see the crash-safety rules in the parent module).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::index::Index;
use super::{
    check_component, full_name, io_err, links, manifest, normalize_publisher, test_pause, BoxError,
    ImageRecord, NewImage, Store, StoreError, FILES_DIR, MANIFEST_FILE, RECORD_FILE, STAGING_DIR,
    TRASH_DIR, UTILITY_VM_FILES_DIR,
};
use crate::progress::Reporter;

/// The store, held exclusively: the only way to change it.
pub struct StoreLock<'a> {
    pub(super) store: &'a Store,
    pub(super) _file: File,
    pub(super) index: Index,
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
        // Temporary folders are private; an installed image is readable by all.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
                .map_err(io_err("set the permissions of", staging.path()))?;
        }
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
        super::relocate::relocate(self.store, dest, reporter)
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

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0);
    now.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
