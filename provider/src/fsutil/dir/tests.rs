use super::*;
use std::os::unix::fs::symlink;

fn setup() -> (tempfile::TempDir, PathBuf, Dir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inside = tmp.path().join("inside");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&inside).expect("mkdir inside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    std::fs::write(outside.join("keep"), b"outside file").expect("write keep");
    let dir = Dir::open(&inside).expect("open inside");
    (tmp, outside, dir)
}

fn is_refused_link(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == Errno::LOOP.raw_os_error() || code == Errno::NOTDIR.raw_os_error())
}

#[test]
fn links_on_the_way_are_refused_not_followed() {
    let (_tmp, outside, dir) = setup();
    symlink(&outside, dir.path().join("sub")).expect("plant link");
    for rel in ["sub/keep", "sub/new"] {
        let e = dir.create_file(Path::new(rel), 0o644).expect_err(rel);
        assert!(
            is_refused_link(&e),
            "{rel}: expected ELOOP/ENOTDIR, got {e}"
        );
    }
    let e = dir
        .open_dir(Path::new("sub"))
        .expect_err("open_dir through link");
    assert!(is_refused_link(&e), "got {e}");
    let e = dir
        .create_dir_all(Path::new("sub/x"))
        .expect_err("create_dir_all through link");
    assert!(is_refused_link(&e), "got {e}");
    assert!(dir.write_atomic(Path::new("sub/f"), b"x").is_err());
    // Deeper down, where the whole parent path is resolved in one call.
    dir.create_dir_all(Path::new("a/b")).expect("mkdir -p");
    symlink(&outside, dir.path().join("a/b/c")).expect("plant deep link");
    let e = dir
        .create_file(Path::new("a/b/c/new"), 0o644)
        .expect_err("deep");
    assert!(is_refused_link(&e), "expected ELOOP/ENOTDIR, got {e}");
    dir.create_file(Path::new("a/b/ok"), 0o644)
        .expect("a plain deep path works");
    assert!(
        !outside.join("new").exists() && !outside.join("x").exists() && !outside.join("f").exists()
    );
}

#[test]
fn a_link_as_the_last_name_is_not_opened_or_written_through() {
    let (_tmp, outside, dir) = setup();
    symlink(outside.join("keep"), dir.path().join("file")).expect("plant link");
    assert!(dir.create_file(Path::new("file"), 0o644).is_err());
    assert!(dir.open_regular(Path::new("file")).is_err());
    assert!(dir.set_mode(Path::new("file"), 0o600).is_err());
    assert_eq!(
        dir.file_type(Path::new("file")).expect("stat"),
        Some(FileType::Symlink)
    );
    // Replacing the name replaces the link, not the file it points to.
    dir.write_atomic(Path::new("file"), b"new")
        .expect("write_atomic");
    assert_eq!(
        std::fs::read(outside.join("keep")).expect("read"),
        b"outside file"
    );
    assert_eq!(
        std::fs::read(dir.path().join("file")).expect("read"),
        b"new"
    );
}

#[test]
fn dot_dot_and_absolute_paths_are_refused() {
    let (_tmp, _outside, dir) = setup();
    for rel in ["../outside/keep", "/etc/passwd", "a/../../outside"] {
        let e = dir.open_regular(Path::new(rel)).expect_err(rel);
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{rel}: {e}");
    }
}

#[test]
fn remove_all_removes_links_as_themselves() {
    let (_tmp, outside, dir) = setup();
    let tree = dir.create_dir_all(Path::new("a/b")).expect("mkdir -p");
    std::fs::write(tree.path().join("f"), b"x").expect("write");
    symlink(&outside, tree.path().join("to-outside")).expect("dir link");
    symlink(outside.join("keep"), dir.path().join("a/file-link")).expect("file link");
    dir.remove_all(Path::new("a")).expect("remove_all");
    assert_eq!(dir.file_type(Path::new("a")).expect("stat"), None);
    assert_eq!(
        std::fs::read(outside.join("keep")).expect("read"),
        b"outside file"
    );
    // A link given as the thing to remove is removed, not what it names.
    symlink(&outside, dir.path().join("l")).expect("link");
    dir.remove_all(Path::new("l")).expect("remove link");
    assert!(outside.join("keep").exists());
    dir.remove_all(Path::new("missing"))
        .expect("nothing there is fine");
}

#[test]
fn special_files_are_not_regular_files() {
    let (_tmp, _outside, dir) = setup();
    rfs::mknodat(
        &dir,
        "fifo",
        FileType::Fifo,
        Mode::from_bits_truncate(0o644),
        0,
    )
    .expect("mkfifo");
    let e = dir.open_regular(Path::new("fifo")).expect_err("fifo");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    std::fs::write(dir.path().join("big"), vec![0u8; 100]).expect("write");
    assert_eq!(
        dir.read_limited(Path::new("big"), 100)
            .expect("at limit")
            .len(),
        100
    );
    assert!(dir.read_limited(Path::new("big"), 99).is_err());
}

#[test]
fn rename_new_never_replaces() {
    let (_tmp, _outside, dir) = setup();
    std::fs::write(dir.path().join("a"), b"a").expect("write");
    std::fs::write(dir.path().join("b"), b"b").expect("write");
    let e = dir
        .rename_new(Path::new("a"), &dir, Path::new("b"))
        .expect_err("target exists");
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    dir.rename_new(Path::new("a"), &dir, Path::new("c"))
        .expect("rename");
    assert_eq!(std::fs::read(dir.path().join("c")).expect("read"), b"a");
}
