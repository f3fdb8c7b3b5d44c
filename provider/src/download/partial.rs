//! The `<dest>.partial` file a download grows in, hashed as it is written.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where a download of `dest` is written until it is verified.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// An open `.partial` file and the SHA-256 of everything in it.
pub(super) struct Partial {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
}

impl Partial {
    /// Opens (or creates) the partial file. With `keep`, bytes left by an
    /// earlier run are kept and re-hashed so the download can resume after
    /// them, unless there are more than `max_len`; otherwise it starts empty.
    pub(super) fn open(path: PathBuf, keep: bool, max_len: Option<u64>) -> io::Result<Partial> {
        let file = open_locked(&path)?;
        let mut partial = Partial {
            path,
            file,
            hasher: Sha256::new(),
            len: 0,
        };
        let existing = partial.file.metadata()?.len();
        let usable = keep && existing > 0 && max_len.is_none_or(|m| existing <= m);
        if usable {
            partial.rehash()?;
        } else {
            partial.restart()?;
        }
        Ok(partial)
    }

    /// Hashes what the file holds and positions writes after it.
    fn rehash(&mut self) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        let len = crate::fsutil::hash_into(&mut self.hasher, &mut self.file, |_| {})?;
        self.len = len;
        self.file.seek(SeekFrom::Start(len))?;
        Ok(())
    }

    /// Empties the file: the download starts again from byte 0.
    pub(super) fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Appends bytes that follow the current content.
    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Appends bytes without hashing them: the caller hashes them elsewhere
    /// (in order) and gives the hasher back with [`Partial::set_hasher`].
    pub(super) fn append_unhashed(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// The hash state of the content so far, to continue elsewhere.
    pub(super) fn take_hasher(&mut self) -> Sha256 {
        std::mem::take(&mut self.hasher)
    }

    /// Puts back the state from [`Partial::take_hasher`], updated with
    /// everything appended since.
    pub(super) fn set_hasher(&mut self, hasher: Sha256) {
        self.hasher = hasher;
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the content so far.
    pub(super) fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// Flushes the content to disk and renames the file to `dest`. The
    /// name renamed must still be this file (not a link or another file put
    /// in its place), and `dest` must be this file afterwards.
    pub(super) fn persist(self, dest: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        if !still_at(&self.file, &self.path) {
            return Err(io::Error::other(format!(
                "{} was replaced while the download ran; nothing was saved",
                self.path.display()
            )));
        }
        // Renamed while still locked: a process waiting for the lock then
        // sees the path gone and starts afresh instead of using this file.
        std::fs::rename(&self.path, dest)?;
        if !still_at(&self.file, dest) {
            let _ = std::fs::remove_file(dest);
            return Err(io::Error::other(format!(
                "{} was replaced while it was being saved; it is removed",
                dest.display()
            )));
        }
        drop(self.file);
        if let Some(dir) = dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            crate::fsutil::sync_dir(dir);
        }
        Ok(())
    }

    /// Deletes the partial file.
    pub(super) fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Opens (or creates) `path` and holds an exclusive lock on it, so two
/// processes downloading the same file take turns instead of interleaving.
/// When the holder renamed or deleted the file while this one waited, the
/// lock is on a stale file: open the path again.
fn open_locked(path: &Path) -> io::Result<File> {
    loop {
        let file = open_own_file(path)?;
        file.lock()?;
        if still_at(&file, path) {
            return Ok(file);
        }
    }
}

/// How often a partial path that keeps being something else than a file of
/// its own is replaced before giving up.
const REPLACE_ATTEMPTS: usize = 8;

/// Opens the partial file for writing without ever writing through
/// something planted at its path: the last component is opened without
/// following a symbolic link (and without blocking on a FIFO); a link, a
/// FIFO, a device, a socket, or a file with other hard links (which may be
/// an outside file) is removed and a fresh file created in its place.
pub(super) fn open_own_file(path: &Path) -> io::Result<File> {
    for _ in 0..REPLACE_ATTEMPTS {
        match open_no_follow(path) {
            Ok(file) => {
                let meta = file.metadata()?;
                if meta.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        format!("{} is a folder", path.display()),
                    ));
                }
                if meta.is_file() && !has_other_links(&meta) {
                    set_blocking(&file)?;
                    return Ok(file);
                }
            }
            Err(e) if is_symlink_error(&e) => {}
            Err(e) => return Err(e),
        }
        // Not a file of our own: unlink the name (never touching what it
        // points at) and create a new one.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} keeps being replaced by something that is not a file",
        path.display()
    )))
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDWR
        | OFlags::CREATE
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(
        path,
        flags,
        Mode::from_raw_mode(0o644),
    )?))
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other("a symbolic link"));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(unix)]
fn is_symlink_error(e: &io::Error) -> bool {
    // Linux says ELOOP for O_NOFOLLOW on a link; some BSDs say EMLINK.
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error())
}

#[cfg(not(unix))]
fn is_symlink_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other
}

#[cfg(unix)]
fn has_other_links(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.nlink() > 1
}

#[cfg(not(unix))]
fn has_other_links(_meta: &std::fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn set_blocking(file: &File) -> io::Result<()> {
    Ok(rustix::fs::fcntl_setfl(file, rustix::fs::OFlags::empty())?)
}

#[cfg(not(unix))]
fn set_blocking(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Whether `path` itself (not what a link there points at) is the open `file`.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// The SHA-256 and length of a whole regular file (see
/// [`crate::location::open_local_file`]).
pub(super) fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let (mut file, _) = crate::location::open_local_file(path)?;
    crate::fsutil::sha256_of(&mut file, |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_a_kept_prefix_with_the_same_hash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.wim.partial");
        std::fs::write(&path, b"hello ").expect("write prefix");

        let mut p = Partial::open(path.clone(), true, Some(11)).expect("open");
        assert_eq!(p.len(), 6);
        p.append(b"world").expect("append");
        let whole: [u8; 32] = Sha256::digest(b"hello world").into();
        assert_eq!(p.digest(), whole);

        let dest = dir.path().join("a.wim");
        p.persist(&dest).expect("persist");
        assert_eq!(std::fs::read(&dest).expect("read"), b"hello world");
        assert!(!path.exists());
    }

    #[test]
    fn a_prefix_longer_than_the_file_or_not_kept_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.wim.partial");
        std::fs::write(&path, b"too long for it").expect("write prefix");
        let p = Partial::open(path.clone(), true, Some(4)).expect("open");
        assert_eq!(p.len(), 0);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
        drop(p);

        std::fs::write(&path, b"abc").expect("write prefix");
        let p = Partial::open(path.clone(), false, None).expect("open");
        assert_eq!(p.len(), 0);
        p.discard();
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_or_hard_link_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, b"precious").expect("write outside file");
        let path = dir.path().join("a.wim.partial");
        std::os::unix::fs::symlink(&outside, &path).expect("symlink");
        let mut p = Partial::open(path.clone(), true, None).expect("open");
        p.append(b"new").expect("append");
        assert!(!std::fs::symlink_metadata(&path)
            .expect("stat")
            .file_type()
            .is_symlink());
        drop(p);
        std::fs::remove_file(&path).expect("remove");
        std::fs::hard_link(&outside, &path).expect("hard link");
        let mut p = Partial::open(path.clone(), true, None).expect("open");
        assert_eq!(p.len(), 0, "another file's bytes are not a prefix to keep");
        p.append(b"new").expect("append");
        drop(p);
        assert_eq!(std::fs::read(&outside).expect("read"), b"precious");
    }

    #[test]
    fn partial_path_adds_a_suffix() {
        assert_eq!(
            partial_path(Path::new("/x/NanoServer-10-0.wim")),
            PathBuf::from("/x/NanoServer-10-0.wim.partial")
        );
    }
}
