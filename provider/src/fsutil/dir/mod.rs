//! File-system work inside a folder through an open handle to it.
//!
//! A [`Dir`] is an open directory. Every operation takes a path relative to
//! it and resolves that path without following any symbolic link and without
//! leaving the folder (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`,
//! or, where the kernel lacks it, one `O_NOFOLLOW` open per component). A
//! component that is a link is an error (`ELOOP` or `ENOTDIR`), never a
//! detour: another process that swaps a folder for a link while a command
//! runs cannot redirect a read, a write or a delete to somewhere else.
//!
//! Relative paths may hold only plain names (`a/b/c`; `.` is skipped); `..`,
//! a root or a prefix is refused.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timestamps};
use rustix::io::Errno;

/// Flags for opening a directory handle; the final component is never followed.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Set once `openat2` turned out to be unavailable (old kernel, seccomp).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// An open directory; see the module documentation.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Where the directory was when it was opened, for messages only.
    path: PathBuf,
}

/// An entry of a directory, as `readdir` reports it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: OsString,
    pub file_type: FileType,
}

/// A directory to work in: the handle itself or one opened below it.
enum At<'a> {
    Here(BorrowedFd<'a>),
    Below(OwnedFd),
}

impl At<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            At::Here(fd) => *fd,
            At::Below(fd) => fd.as_fd(),
        }
    }
}

fn invalid(rel: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {why}", rel.display()),
    )
}

/// The plain names of a relative path; `..`, roots and prefixes are refused.
fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid(rel, "a path inside the folder may not hold '..'"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(
                    rel,
                    "an absolute path where one inside the folder was expected",
                ))
            }
        }
    }
    Ok(out)
}

/// Joins names with `/` for `openat2`.
fn joined(names: &[&OsStr]) -> OsString {
    let mut bytes = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(n.as_bytes());
    }
    OsString::from_vec(bytes)
}

/// Opens the directory `names` below `base`, following no link.
fn open_below(base: BorrowedFd<'_>, names: &[&OsStr]) -> io::Result<OwnedFd> {
    if names.is_empty() {
        return Ok(rfs::openat(base, ".", DIR_FLAGS, Mode::empty())?);
    }
    if names.len() > 1 && !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let path = joined(names);
        // EAGAIN: a rename elsewhere raced the lookup; the kernel asks for a retry.
        for _ in 0..8 {
            match rfs::openat2(base, &path, DIR_FLAGS, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) | Err(Errno::PERM) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                // Linux reports a symbolic link under RESOLVE_NO_SYMLINKS as ELOOP.
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut cur = rfs::openat(base, names[0], DIR_FLAGS, Mode::empty())?;
    for name in &names[1..] {
        cur = rfs::openat(&cur, *name, DIR_FLAGS, Mode::empty())?;
    }
    Ok(cur)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(base: &OsStr) -> OsString {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mut name = OsString::from(".tmp-");
    name.push(base);
    name.push(format!(".{}.{n}.{nanos:x}", std::process::id()));
    name
}

impl Dir {
    /// Opens the directory at `path`, a path the user chose (links in it are
    /// followed, as for any path given on a command line).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Creates `path` and its missing parents (a path the user chose), then opens it.
    pub fn create_all(path: &Path) -> io::Result<Dir> {
        std::fs::create_dir_all(path)?;
        Dir::open(path)
    }

    /// Where the directory was when it was opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()` joined with `rel`, for messages.
    pub fn display_path(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// The parent directory of `rel` and the last name of `rel`.
    fn parent_of<'r>(&self, rel: &'r Path) -> io::Result<(At<'_>, &'r OsStr)> {
        let names = names(rel)?;
        let Some((last, parents)) = names.split_last() else {
            return Err(invalid(rel, "an empty path where a name was expected"));
        };
        if parents.is_empty() {
            Ok((At::Here(self.fd.as_fd()), last))
        } else {
            Ok((At::Below(open_below(self.fd.as_fd(), parents)?), last))
        }
    }

    /// Opens the directory `rel` below this one.
    pub fn open_dir(&self, rel: &Path) -> io::Result<Dir> {
        let fd = open_below(self.fd.as_fd(), &names(rel)?)?;
        Ok(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// Creates the directory `rel` (its parent must exist).
    pub fn create_dir(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        rfs::mkdirat(at.fd(), name, Mode::from_bits_truncate(mode))?;
        Ok(())
    }

    /// Creates `rel` and its missing parents below this directory and opens
    /// it. An existing link anywhere on the way is an error.
    pub fn create_dir_all(&self, rel: &Path) -> io::Result<Dir> {
        let mut cur = rfs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        for name in names(rel)? {
            match rfs::mkdirat(&cur, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            cur = rfs::openat(&cur, name, DIR_FLAGS, Mode::empty())?;
        }
        Ok(Dir {
            fd: cur,
            path: self.path.join(rel),
        })
    }

    /// Opens `rel` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` are always added).
    pub fn open_with(&self, rel: &Path, flags: OFlags, mode: u32) -> io::Result<File> {
        let (at, name) = self.parent_of(rel)?;
        let fd = rfs::openat(
            at.fd(),
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Creates the new file `rel` for writing; an existing entry of that name
    /// (a link included) is an error.
    pub fn create_file(&self, rel: &Path, mode: u32) -> io::Result<File> {
        self.open_with(rel, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, mode)
    }

    /// Opens the regular file `rel` for reading. Devices, FIFOs, sockets,
    /// folders and links are refused (the open never blocks on a FIFO).
    pub fn open_regular(&self, rel: &Path) -> io::Result<File> {
        let file = self.open_with(rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
        let stat = rfs::fstat(&file)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path.join(rel).display()),
            ));
        }
        // Reads of a regular file never block; clear the flag all the same.
        rfs::fcntl_setfl(&file, OFlags::empty())?;
        Ok(file)
    }

    /// Reads the regular file `rel` whole, refusing one larger than `limit` bytes.
    pub fn read_limited(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let file = self.open_regular(rel)?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is larger than {limit} bytes",
                    self.path.join(rel).display()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Replaces the file `rel` atomically with `bytes` (a temporary file
    /// beside it, flushed, then renamed over it), readable by all (0644).
    pub fn write_atomic(&self, rel: &Path, bytes: &[u8]) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        let tmp = temp_name(name);
        let fd = rfs::openat(
            at.fd(),
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?;
        let mut file = File::from(fd);
        let written = (|| {
            rfs::fchmod(&file, Mode::from_bits_truncate(0o644))?;
            file.write_all(bytes)?;
            file.sync_all()?;
            rfs::renameat(at.fd(), &tmp, at.fd(), name)?;
            io::Result::Ok(())
        })();
        if written.is_err() {
            let _ = rfs::unlinkat(at.fd(), &tmp, AtFlags::empty());
        }
        written?;
        let _ = rfs::fsync(at.fd());
        Ok(())
    }

    /// The status of `rel` itself (a link is reported as a link); the
    /// directory's own when `rel` is empty.
    pub fn stat(&self, rel: &Path) -> io::Result<Stat> {
        if names(rel)?.is_empty() {
            return Ok(rfs::fstat(&self.fd)?);
        }
        let (at, name) = self.parent_of(rel)?;
        Ok(rfs::statat(at.fd(), name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// The type of `rel` itself, or `None` when nothing has that name.
    pub fn file_type(&self, rel: &Path) -> io::Result<Option<FileType>> {
        match self.stat(rel) {
            Ok(s) => Ok(Some(FileType::from_raw_mode(s.st_mode))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The target of the symbolic link `rel`.
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        let (at, name) = self.parent_of(rel)?;
        let target = rfs::readlinkat(at.fd(), name, Vec::new())?;
        Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// Makes `rel` a symbolic link to `target`.
    pub fn symlink(&self, target: &Path, rel: &Path) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        rfs::symlinkat(target, at.fd(), name)?;
        Ok(())
    }

    /// Makes `new_rel` a hard link of `existing_rel` (a link is linked as itself).
    pub fn hard_link(&self, existing_rel: &Path, new_rel: &Path) -> io::Result<()> {
        self.hard_link_to(existing_rel, self, new_rel)
    }

    /// Makes `new_rel` below `to` a hard link of `existing_rel` here (a link
    /// is linked as itself).
    pub fn hard_link_to(&self, existing_rel: &Path, to: &Dir, new_rel: &Path) -> io::Result<()> {
        let (from, from_name) = self.parent_of(existing_rel)?;
        let (at, to_name) = to.parent_of(new_rel)?;
        rfs::linkat(from.fd(), from_name, at.fd(), to_name, AtFlags::empty())?;
        Ok(())
    }

    /// Renames `from_rel` here to `to_rel` in `to_dir`, replacing a file there.
    pub fn rename(&self, from_rel: &Path, to_dir: &Dir, to_rel: &Path) -> io::Result<()> {
        let (from, from_name) = self.parent_of(from_rel)?;
        let (to, to_name) = to_dir.parent_of(to_rel)?;
        rfs::renameat(from.fd(), from_name, to.fd(), to_name)?;
        Ok(())
    }

    /// Renames `from_rel` here to `to_rel` in `to_dir`; an existing entry
    /// there is an error (`AlreadyExists`), never replaced.
    pub fn rename_new(&self, from_rel: &Path, to_dir: &Dir, to_rel: &Path) -> io::Result<()> {
        let (from, from_name) = self.parent_of(from_rel)?;
        let (to, to_name) = to_dir.parent_of(to_rel)?;
        match rfs::renameat_with(
            from.fd(),
            from_name,
            to.fd(),
            to_name,
            rfs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            // File systems without RENAME_NOREPLACE: check, then rename. The
            // store lock keeps other commands of ours from racing this.
            Err(Errno::INVAL) | Err(Errno::NOSYS) => {
                match rfs::statat(to.fd(), to_name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
                    Err(Errno::NOENT) => {
                        rfs::renameat(from.fd(), from_name, to.fd(), to_name)?;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Swaps the entries `a` and `b` of this directory in one atomic step.
    /// File systems that cannot do it report `EINVAL`.
    pub fn rename_exchange(&self, a: &Path, b: &Path) -> io::Result<()> {
        let (at_a, name_a) = self.parent_of(a)?;
        let (at_b, name_b) = self.parent_of(b)?;
        rfs::renameat_with(
            at_a.fd(),
            name_a,
            at_b.fd(),
            name_b,
            rfs::RenameFlags::EXCHANGE,
        )?;
        Ok(())
    }

    /// Removes the file or link `rel`.
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        rfs::unlinkat(at.fd(), name, AtFlags::empty())?;
        Ok(())
    }

    /// Removes the empty directory `rel`.
    pub fn remove_dir(&self, rel: &Path) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        rfs::unlinkat(at.fd(), name, AtFlags::REMOVEDIR)?;
        Ok(())
    }

    /// Removes `rel` and everything below it, never following a link (a link
    /// is removed as itself). Nothing there is not an error.
    pub fn remove_all(&self, rel: &Path) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        remove_entry(at.fd(), name)
    }

    /// Removes everything inside this directory, never following a link.
    pub fn clear(&self) -> io::Result<()> {
        clear_dir(self.fd.as_fd())
    }

    /// The entries of this directory (without `.` and `..`).
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        read_entries(self.fd.as_fd())
    }

    /// Sets the access and modification times of `rel` itself (a link's own).
    pub fn set_times(&self, rel: &Path, times: &Timestamps) -> io::Result<()> {
        let (at, name) = self.parent_of(rel)?;
        rfs::utimensat(at.fd(), name, times, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Sets the permission bits of the file or folder `rel` (never of what a
    /// link points to: a link is an error).
    pub fn set_mode(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let file = if names(rel)?.is_empty() {
            File::from(rfs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?)
        } else {
            self.open_with(rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)?
        };
        rfs::fchmod(&file, Mode::from_bits_truncate(mode))?;
        Ok(())
    }

    /// Flushes this directory's entries (renames, creations) to disk.
    /// Failure is not an error: not every file system allows it.
    pub fn sync(&self) {
        let _ = rfs::fsync(&self.fd);
    }

    /// Another handle to the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn read_entries(fd: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in rfs::Dir::read_from(fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push(Entry {
            name: OsString::from_vec(name.to_vec()),
            file_type: entry.file_type(),
        });
    }
    Ok(out)
}

/// Removes the entry `name` of `parent`, recursively for a directory.
fn remove_entry(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let stat = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        match rfs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => clear_dir(fd.as_fd())?,
            Err(Errno::NOENT) => return Ok(()),
            // Swapped for a link or a file since the stat: remove it as itself.
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                return match rfs::unlinkat(parent, name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        match rfs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn clear_dir(fd: BorrowedFd<'_>) -> io::Result<()> {
    for entry in read_entries(fd)? {
        remove_entry(fd, &entry.name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
