//! Small file-system helpers shared by the configuration, feeds and the store.

#[cfg(unix)]
pub mod dir;

use std::io::{self, Write};
use std::path::Path;

/// Makes room for `count` open descriptors in the process's table now, while
/// it may still have one thread. The table grows by doubling as descriptors
/// are opened; in a process with several threads each growth waits for
/// every core to pass a quiescent point (an RCU grace period: 5 to 10 ms
/// on a busy machine), and the thread opening a file waits with it. An apply
/// keeps a few hundred folders open on all cores, and so grew the table
/// three times mid-way. Nothing happens where the limit on open files is
/// lower, or on systems without such a table.
pub fn reserve_descriptors(count: usize) {
    #[cfg(unix)]
    {
        use rustix::fs::{Mode, OFlags};
        let (Ok(min), Ok(root)) = (
            i32::try_from(count.saturating_sub(1)),
            rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()),
        ) else {
            return;
        };
        // A copy at the last place asked for grows the table to hold it;
        // the table keeps its size once the copy is closed.
        drop(rustix::io::fcntl_dupfd_cloexec(&root, min));
    }
    #[cfg(not(unix))]
    let _ = count;
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over the target. Readers see the old file or
/// the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    // Temporary files are private (0600); the result is an ordinary file
    // that others may read, like a feed.xml served from a saved folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Opens the file at `path` (a path the user or a local feed named; links
/// in it are followed) for reading, refusing anything but a regular file:
/// a device, FIFO or socket is an error, and opening a FIFO never blocks.
pub fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)?;
        if file.metadata()?.is_file() {
            // Reads of a regular file never block; clear the flag all the same.
            rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())?;
        }
        file
    };
    #[cfg(not(unix))]
    let file = std::fs::File::open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {what}, not a file", path.display()),
        ));
    }
    Ok(file)
}

/// Flushes a directory entry change (a rename) to disk where the platform
/// supports it. Failure is not an error: not every file system allows it.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Free bytes on the file system holding `path` (or its nearest existing parent).
pub fn available_space(path: &Path) -> io::Result<u64> {
    let mut p = path;
    loop {
        if p.exists() {
            return fs4::available_space(p);
        }
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => return fs4::available_space(Path::new(".")),
        }
    }
}

/// Reads `input` to its end through `hasher`; returns how many bytes it
/// held. `on_chunk` is told the length of each chunk (for progress).
pub fn hash_into(
    hasher: &mut sha2::Sha256,
    input: &mut impl io::Read,
    mut on_chunk: impl FnMut(u64),
) -> io::Result<u64> {
    use sha2::Digest;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(n) => {
                hasher.update(buf.get(..n).unwrap_or_default());
                len += n as u64;
                on_chunk(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The SHA-256 and length of everything `input` holds.
pub fn sha256_of(
    input: &mut impl io::Read,
    on_chunk: impl FnMut(u64),
) -> io::Result<([u8; 32], u64)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let len = hash_into(&mut hasher, input, on_chunk)?;
    Ok((hasher.finalize().into(), len))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_and_is_world_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/feed.xml");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "feed files must be readable by a web server");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    /// The table's size, as the system reports it.
    #[cfg(target_os = "linux")]
    fn table_size() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize in /proc/self/status")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn descriptor_table_grows_and_no_descriptor_stays_open() {
        let want = (table_size() * 2).max(2048);
        super::reserve_descriptors(want);
        assert!(table_size() >= want, "{} < {want}", table_size());
        // The copy that made the room is closed again.
        let highest = std::fs::read_dir("/proc/self/fd")
            .expect("read /proc/self/fd")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        assert!(highest < want - 1, "descriptor {highest} left open");
    }
}
