//! Changing the store: installing, replacing and removing images under the
//! exclusive lock (see the crash-safety rules in the parent module).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::index::Index;
use super::tags::{default_tag, Tag, Tags};
use super::{
    full_name, io_err, links, manifest, normalize_publisher, test_pause, BoxError, ImageRecord,
    NewImage, Store, StoreError, CACHE_DIR, FILES_DIR, HIVES_DIR, MANIFEST_FILE, RECORD_FILE,
    STAGING_DIR, TRASH_DIR, UTILITY_VM_FILES_DIR,
};
use crate::fsutil::dir::Dir;
use crate::progress::Reporter;

/// The store, held exclusively: the only way to change it.
pub struct StoreLock<'a> {
    pub(super) store: &'a Store,
    /// The store folder, opened once: every change goes through it.
    pub(super) root: Dir,
    pub(super) _file: File,
    pub(super) index: Index,
    pub(super) tags: Tags,
}

impl StoreLock<'_> {
    pub fn store(&self) -> &Store {
        self.store
    }

    pub fn images(&self) -> &[ImageRecord] {
        &self.index.images
    }

    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// The installed image `reference` names (see [`super::resolve`]).
    pub fn resolve(&self, reference: &str) -> Result<&ImageRecord, StoreError> {
        super::resolve(&self.index.images, &self.tags, reference)
    }

    /// Points `tag` at the installed image `full_name`, moving it from the
    /// image that had it.
    pub fn add_tag(&mut self, tag: Tag, full_name: &str) -> Result<(), StoreError> {
        if self.find(full_name).is_none() {
            return Err(StoreError::NotInstalled {
                full_name: full_name.to_string(),
            });
        }
        let mut tags = self.tags.clone();
        tags.set(tag, full_name);
        tags.save(&self.root)?;
        self.tags = tags;
        Ok(())
    }

    /// Removes `tag`; returns the FullName of the image it named.
    pub fn remove_tag(&mut self, tag: &Tag) -> Result<Option<String>, StoreError> {
        let mut tags = self.tags.clone();
        let had = tags.remove(tag);
        if had.is_some() {
            tags.save(&self.root)?;
            self.tags = tags;
        }
        Ok(had)
    }

    /// `<store>/.cache`, where downloaded `.wim` files wait to be installed,
    /// created when missing (a link planted there is refused).
    pub fn cache_dir(&self) -> Result<PathBuf, StoreError> {
        let rel = Path::new(CACHE_DIR);
        self.root
            .create_dir_all(rel)
            .map_err(io_err("create", &self.root.display_path(rel)))?;
        Ok(self.store.root.join(CACHE_DIR))
    }

    /// The installed image named `full_name` (case-insensitive).
    pub fn find(&self, full_name: &str) -> Option<&ImageRecord> {
        self.index
            .position(full_name)
            .and_then(|i| self.index.images.get(i))
    }

    /// The image holding the layer `diff_id` on top of `parent` (`None`:
    /// a base layer), when the store has it.
    pub fn find_layer(&self, diff_id: &str, parent: Option<&str>) -> Option<&ImageRecord> {
        self.index.images.iter().find(|r| {
            r.diff_id.as_deref() == Some(diff_id)
                && match (&r.parent_image, parent) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                }
        })
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
        crate::names::check_name(&new.name)?;
        let publisher = normalize_publisher(new.publisher.as_deref());
        crate::names::check_publisher(&publisher)?;
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

        let root = &self.root;
        let staging_root = root
            .create_dir_all(Path::new(STAGING_DIR))
            .map_err(io_err("create", &root.display_path(Path::new(STAGING_DIR))))?;
        let token = random_name("install-");
        staging_root
            .create_dir(Path::new(&token), 0o755)
            .map_err(io_err("create a staging folder in", staging_root.path()))?;
        let staged_rel = Path::new(STAGING_DIR).join(&token);
        let staging = Staging {
            root,
            rel: staged_rel.clone(),
            armed: true,
        };
        // Installed images are readable by all, whatever the umask.
        root.set_mode(&staged_rel, 0o755).map_err(io_err(
            "set the permissions of",
            &root.display_path(&staged_rel),
        ))?;
        // The absolute, resolved path: apply writes links relative to it.
        let staged_path = root.display_path(&staged_rel);
        let staged =
            std::fs::canonicalize(&staged_path).map_err(io_err("resolve", &staged_path))?;
        test_pause("staging", reporter);

        reporter.verbose(&format!("installing {full_name} in {}", staged.display()));
        fill(&staged).map_err(|source| StoreError::Fill {
            full_name: full_name.clone(),
            source,
        })?;
        let staged_dir = root
            .open_dir(&staged_rel)
            .map_err(io_err("open", &staged))?;
        for tree in [FILES_DIR, UTILITY_VM_FILES_DIR] {
            let dir = staged.join(tree);
            if matches!(
                staged_dir.file_type(Path::new(tree)),
                Ok(Some(rustix::fs::FileType::Directory))
            ) {
                let n = links::make_internal_links_relative(&dir, &dir)
                    .map_err(io_err("fix the symbolic links in", &dir))?;
                if n > 0 {
                    reporter.verbose(&format!("made {n} symbolic link(s) in {tree} relative"));
                }
            }
        }
        let scan = manifest::scan(&staged, &[FILES_DIR, UTILITY_VM_FILES_DIR, HIVES_DIR])
            .map_err(io_err("record the installed files of", &staged))?;
        let utility_vm = matches!(
            staged_dir.file_type(Path::new(UTILITY_VM_FILES_DIR)),
            Ok(Some(rustix::fs::FileType::Directory))
        );
        let record = ImageRecord {
            name: new.name.clone(),
            publisher,
            version: new.version.four_part(),
            full_name: full_name.clone(),
            id: new.id.to_ascii_lowercase(),
            is_os_image: new.is_os_image,
            parent_image: new.parent_image.clone(),
            size: scan.size,
            created: new.created.clone().unwrap_or_else(now_rfc3339),
            utility_vm,
            install_token: token,
            diff_id: new.diff_id.clone(),
        };
        super::save_json(&staged_dir, MANIFEST_FILE, "write", &scan.manifest)?;
        super::save_json(&staged_dir, RECORD_FILE, "write", &record)?;
        staged_dir.sync();
        test_pause("staged", reporter);

        // Publish: one rename, or for a reinstall one atomic exchange of the
        // new folder and the old one (which then waits in .staging).
        let dest = Path::new(&full_name);
        let dest_path = root.display_path(dest);
        let replaced = match root.file_type(dest) {
            Ok(None) => {
                root.rename_new(&staged_rel, root, dest)
                    .map_err(io_err("publish the image at", &dest_path))?;
                None
            }
            Ok(Some(rustix::fs::FileType::Directory)) if existing.is_some() => {
                Some(self.exchange(&staged_rel, dest, reporter)?)
            }
            Ok(Some(_)) => {
                return Err(StoreError::Io {
                    what: "install into",
                    path: dest_path,
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the folder exists but is not an installed image; move it away",
                    ),
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    what: "inspect",
                    path: dest_path,
                    source,
                })
            }
        };
        let mut staging = staging;
        staging.armed = false;
        root.sync();
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
        if let Err(e) = index.save(root) {
            // Undo the publication: the old image goes back where it was.
            let undone = match &replaced {
                Some(old) => root
                    .rename_exchange(old, dest)
                    .and_then(|()| root.remove_all(old)),
                None => root
                    .rename_new(dest, root, &staged_rel)
                    .and_then(|()| root.remove_all(&staged_rel)),
            };
            if let Err(undo) = undone {
                reporter.warn(&format!(
                    "could not undo the publication of {full_name} ({undo}); the next command lists what its folder holds"
                ));
            }
            return Err(e);
        }
        self.index = index;
        test_pause("recorded", reporter);
        // The image is installed; its default tag is a convenience, and a
        // tag file that cannot be written is repaired by the next command.
        let mut tags = self.tags.clone();
        match &new.tags {
            None => tags.set(default_tag(&record), &record.full_name),
            Some(given) => {
                for t in given {
                    tags.set(t.clone(), &record.full_name);
                }
            }
        }
        match tags.save(root) {
            Ok(()) => self.tags = tags,
            Err(e) => reporter.warn(&format!(
                "could not tag {full_name}: {}",
                crate::error_chain(&e)
            )),
        }
        if let Some(old) = replaced {
            remove_quietly(root, &old, reporter);
        }
        Ok(record)
    }

    /// Swaps the staged folder and the published one atomically; returns
    /// where the old image now is. Where the file system cannot exchange,
    /// the old image is moved into `.trash` first: if the command stops
    /// between the two renames, the next one puts it back.
    fn exchange(
        &self,
        staged_rel: &Path,
        dest: &Path,
        reporter: &dyn Reporter,
    ) -> Result<PathBuf, StoreError> {
        let root = &self.root;
        let exchanged = if super::test_no_exchange() {
            Err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            ))
        } else {
            root.rename_exchange(staged_rel, dest)
        };
        match exchanged {
            Ok(()) => return Ok(staged_rel.to_path_buf()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                reporter.verbose("the file system cannot exchange folders; renaming twice");
            }
            Err(source) => {
                return Err(StoreError::Io {
                    what: "publish the image at",
                    path: root.display_path(dest),
                    source,
                })
            }
        }
        let old = self.move_to_trash(dest)?;
        test_pause("moved-aside", reporter);
        if let Err(source) = root.rename_new(staged_rel, root, dest) {
            if let Err(e) = root.rename_new(&old, root, dest) {
                reporter.warn(&format!(
                    "could not put {} back ({e}); the next command will",
                    root.display_path(dest).display()
                ));
            }
            return Err(StoreError::Io {
                what: "publish the image at",
                path: root.display_path(dest),
                source,
            });
        }
        Ok(old)
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
        let mut dependants = self.dependants(&record.full_name);
        dependants.extend(
            crate::container::users_of(self.store.home(), &record.full_name)
                .into_iter()
                .map(|c| format!("the container {c}")),
        );
        if !dependants.is_empty() {
            return Err(StoreError::HasDependants {
                full_name: record.full_name,
                dependants,
            });
        }
        let dir = PathBuf::from(&record.full_name);
        let trashed = match self.root.file_type(&dir) {
            Ok(Some(_)) => Some(self.move_to_trash(&dir)?),
            _ => None,
        };
        test_pause("removing", reporter);
        let mut index = self.index.clone();
        index.images.remove(i);
        if let Err(e) = index.save(&self.root) {
            if let Some(t) = &trashed {
                if let Err(undo) = self.root.rename_new(t, &self.root, &dir) {
                    reporter.warn(&format!(
                        "could not put {} back ({undo}); the next command will",
                        record.full_name
                    ));
                }
            }
            return Err(e);
        }
        self.index = index;
        let mut tags = self.tags.clone();
        tags.remove_image(&record.full_name);
        match tags.save(&self.root) {
            Ok(()) => self.tags = tags,
            Err(e) => reporter.warn(&format!(
                "could not untag {}: {}",
                record.full_name,
                crate::error_chain(&e)
            )),
        }
        if let Some(t) = trashed {
            remove_quietly(&self.root, &t, reporter);
        }
        Ok(record)
    }

    /// Moves the whole store to `dest` (which must not exist) and records the
    /// new location in the configuration. Returns the new location.
    pub fn relocate(self, dest: &Path, reporter: &dyn Reporter) -> Result<PathBuf, StoreError> {
        super::relocate::relocate(self.store, dest, reporter)
    }

    /// Moves the image folder `dir` (relative to the store) into `.trash`
    /// by one rename; returns its new place, relative to the store.
    fn move_to_trash(&self, dir: &Path) -> Result<PathBuf, StoreError> {
        let root = &self.root;
        root.create_dir_all(Path::new(TRASH_DIR))
            .map_err(io_err("create", &root.display_path(Path::new(TRASH_DIR))))?;
        let target = Path::new(TRASH_DIR).join(random_name("old-"));
        root.rename_new(dir, root, &target)
            .map_err(io_err("move aside", &root.display_path(dir)))?;
        root.sync();
        Ok(target)
    }
}

/// A staging folder that is removed unless published.
struct Staging<'a> {
    root: &'a Dir,
    rel: PathBuf,
    armed: bool,
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.root.remove_all(&self.rel);
        }
    }
}

/// `<prefix><16 random hex digits>`.
fn random_name(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{prefix}{:016x}", h.finish())
}

fn remove_quietly(root: &Dir, rel: &Path, reporter: &dyn Reporter) {
    if let Err(e) = root.remove_all(rel) {
        reporter.warn(&format!(
            "could not delete {} ({e}); the next command will retry",
            root.display_path(rel).display()
        ));
    }
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
