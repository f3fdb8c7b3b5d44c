//! `Get-WindowsImage`, `Expand-WindowsImage` and `Test-WindowsImage` on
//! WIM files made at test time by `wimlib-imagex` and `7zz` from a generated
//! tree; every applied tree is compared with wimlib's own apply of the same
//! file.
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::common::{assert_exit, assert_fails, json_lines, require_tool, run, stderr, wimlib};

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sets a path's mtime and atime (without following a link) with `touch`.
fn touch(path: &Path, date: &str) {
    let ok = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(date)
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "touch -h -d {date} {} failed", path.display());
}

/// Builds the test tree under `root`: text, an x86 binary, random data,
/// empty files, hard links, relative and absolute symlinks, nested folders
/// and set timestamps.
pub fn make_tree(root: &Path) {
    let d = |p: &str| {
        let path = root.join(p);
        fs::create_dir_all(&path).expect("create folder");
        path
    };
    let f = |p: &str, data: &[u8]| {
        let path = root.join(p);
        fs::write(&path, data).expect("write file");
        path
    };
    d("Windows/System32/drivers/etc");
    d("Program Files/Common Files");
    d("empty dir");
    d("deep/a/b/c/d/e/f");
    let text = "The quick brown fox jumps over the lazy dog.\n".repeat(2000);
    f("Windows/System32/license.txt", text.as_bytes());
    f(
        "Windows/System32/drivers/etc/hosts",
        b"127.0.0.1 localhost\n",
    );
    let binary = ["/usr/bin/ls", "/bin/ls", "/usr/bin/env"]
        .iter()
        .find_map(|p| fs::read(p).ok())
        .expect("an x86 binary from /usr/bin");
    f("Windows/System32/cmd.exe", &binary);
    f("Program Files/random.bin", &random_bytes(7, 300_000));
    f(
        "Program Files/Common Files/small.bin",
        &random_bytes(9, 1000),
    );
    // Same content, not linked: one blob used by two files.
    f("Program Files/copy1.txt", b"same content\n");
    f("Program Files/copy2.txt", b"same content\n");
    f("empty1", b"");
    f("deep/a/b/c/d/e/f/empty2", b"");
    f("deep/a/b/c/d/e/f/leaf.txt", b"leaf\n");
    f("unicode-\u{e9}\u{4e2d}.txt", "h\u{e9}llo\n".as_bytes());
    let linked = f("Windows/System32/linked.dll", &random_bytes(11, 70_000));
    fs::hard_link(&linked, root.join("Windows/linked-too.dll")).expect("hard link");
    fs::hard_link(&linked, root.join("deep/linked-three.dll")).expect("hard link");
    let sym = |target: &str, link: &str| {
        std::os::unix::fs::symlink(target, root.join(link)).expect("symlink");
    };
    sym("System32/license.txt", "Windows/rel-link");
    sym("../../empty1", "deep/a/up-link");
    sym("nowhere", "dangling");
    sym("/etc/hostname", "abs-outside");
    let abs_inside = root.join("Windows/System32");
    sym(abs_inside.to_str().expect("utf-8 path"), "abs-inside");
    sym("Program Files", "dir-link");
    touch(
        &root.join("Windows/System32/license.txt"),
        "2001-02-03 04:05:06.789",
    );
    touch(&root.join("empty1"), "1999-12-31 23:59:59");
    touch(&root.join("Windows/rel-link"), "2010-01-01 00:00:00");
    touch(&root.join("deep/a/b"), "2015-06-07 08:09:10");
    touch(&root.join("Windows"), "2012-12-12 12:12:12");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(root.join("deep/a"), fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::set_permissions(root.join("empty1"), fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// What a tree looks like, to compare two applies.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    kind: char,
    sha256: Option<String>,
    link: Option<String>,
    mtime: (i64, i64),
    /// Permission bits (not for links).
    mode: u32,
}

/// Snapshot of a tree: entries by relative path, and the hard-link groups
/// (sets of paths sharing an inode). Link targets have `root`'s absolute
/// path replaced by `<ROOT>`.
pub fn snapshot(root: &Path) -> (BTreeMap<String, Entry>, Vec<Vec<String>>) {
    let root_abs = fs::canonicalize(root).expect("canonical root");
    let root_text = root_abs.to_string_lossy().into_owned();
    let mut entries = BTreeMap::new();
    let mut inodes: HashMap<u64, Vec<String>> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).expect("stat");
        let key = rel.to_string_lossy().into_owned();
        let ft = meta.file_type();
        let (kind, sha256, link) = if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            let t = target.to_string_lossy().replace(&root_text, "<ROOT>");
            ('l', None, Some(t))
        } else if ft.is_dir() {
            for child in fs::read_dir(&path).expect("read_dir") {
                let child = child.expect("dir entry");
                stack.push(rel.join(child.file_name()));
            }
            ('d', None, None)
        } else {
            let data = fs::read(&path).expect("read file");
            inodes.entry(meta.ino()).or_default().push(key.clone());
            ('f', Some(hex::encode(Sha256::digest(&data))), None)
        };
        entries.insert(
            key,
            Entry {
                kind,
                sha256,
                link,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                mode: if kind == 'l' { 0 } else { meta.mode() & 0o7777 },
            },
        );
    }
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    (entries, groups)
}

/// Asserts that two trees are the same (contents, types, link targets,
/// hard-link identity, mtimes).
#[track_caller]
pub fn assert_same_tree(ours: &Path, reference: &Path) {
    let (a, ag) = snapshot(ours);
    let (b, bg) = snapshot(reference);
    let a_keys: Vec<&String> = a.keys().collect();
    let b_keys: Vec<&String> = b.keys().collect();
    assert_eq!(a_keys, b_keys, "the applied trees hold different paths");
    for (k, ea) in &a {
        // The root's own times depend on when it was created by each tool
        // only if the image does not set them; both set them here.
        assert_eq!(Some(ea), b.get(k), "'{k}' differs from wimlib's apply");
    }
    assert_eq!(ag, bg, "hard-link groups differ from wimlib's apply");
}

/// A captured WIM in a temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub wim: PathBuf,
}

/// Captures the generated tree with `wimlib-imagex capture` and `extra` options.
pub fn capture(extra: &[&str]) -> Fixture {
    capture_tree(make_tree, extra)
}

/// Captures the tree `build` makes with `wimlib-imagex capture` and `extra`.
pub fn capture_tree(build: impl FnOnce(&Path), extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    build(&src);
    let wim = dir.path().join("test.wim");
    let mut args = vec![
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "Test Image",
        "A test image",
    ];
    args.extend_from_slice(extra);
    wimlib(&args);
    Fixture { dir, wim }
}

/// Applies image `index` of `wim` to `out` with `wimlib-imagex`.
fn wimlib_apply(wim: &Path, index: u32, out: &Path) {
    wimlib(&["apply", &utf8(wim), &index.to_string(), &utf8(out)]);
}

fn utf8(p: &Path) -> String {
    p.to_str().expect("utf-8").to_string()
}

/// The arguments of `Expand-WindowsImage` applying image `index` of `wim`
/// to `out`, then `extra`.
fn expand_args(wim: &Path, index: u32, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "Expand-WindowsImage".into(),
        "-ImagePath".into(),
        utf8(wim),
        "-Index".into(),
        index.to_string(),
        "-ApplyPath".into(),
        utf8(out),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Runs `Expand-WindowsImage` (see [`expand_args`]) from `home`.
fn expand(home: &Path, wim: &Path, index: u32, out: &Path, extra: &[&str]) -> Output {
    let args = expand_args(wim, index, out, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(home, &args)
}

/// Applies image `index` with our binary and with wimlib, and compares.
#[track_caller]
pub fn apply_and_compare(fx: &Fixture, index: u32) {
    let ours = fx.dir.path().join(format!("ours-{index}"));
    let theirs = fx.dir.path().join(format!("wimlib-{index}"));
    let home = fx.dir.path().join("home");
    let o = expand(&home, &fx.wim, index, &ours, &[]);
    assert_exit(&o, 0);
    let out = json_lines(&o);
    assert_eq!(out.len(), 1, "one summary object");
    assert!(
        out[0]["Files"].as_u64().unwrap_or(0) > 0,
        "files counted: {}",
        out[0]
    );
    wimlib_apply(&fx.wim, index, &theirs);
    // Rename so that absolute links (rooted at the apply folder) compare.
    assert_same_tree(&ours, &theirs);
}

fn check_compression(extra: &[&str]) {
    let fx = capture(extra);
    apply_and_compare(&fx, 1);
}

#[test]
fn apply_uncompressed_matches_wimlib() {
    check_compression(&["--compress=none"]);
}

/// wimlib's UNIX data (mode, owner) is kept in the metadata file; like
/// `wimlib-imagex apply` without `--unix-data`, the tree gets default modes.
#[test]
fn apply_with_unix_data_matches_wimlib() {
    check_compression(&["--compress=none", "--unix-data"]);
}

#[test]
fn apply_xpress_matches_wimlib() {
    check_compression(&["--compress=XPRESS"]);
}

#[test]
fn apply_lzx_matches_wimlib() {
    check_compression(&["--compress=LZX"]);
}

#[test]
fn apply_lzms_matches_wimlib() {
    check_compression(&["--compress=LZMS"]);
}

#[test]
fn apply_solid_matches_wimlib() {
    check_compression(&["--solid"]);
}

/// A solid WIM of incompressible data: its solid chunks are stored raw, so
/// this exercises the solid layout without any decoder.
#[test]
fn apply_solid_raw_chunks_matches_wimlib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).expect("dirs");
    for (i, size) in [300_000usize, 5_000, 1, 70_000, 0].iter().enumerate() {
        fs::write(
            src.join(format!("r{i}.bin")),
            random_bytes(i as u64 + 40, *size),
        )
        .expect("write");
    }
    fs::write(src.join("sub/deeper/x.bin"), random_bytes(99, 123_456)).expect("write");
    fs::hard_link(src.join("r0.bin"), src.join("sub/r0-link.bin")).expect("link");
    let wim = dir.path().join("solid.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--solid",
        "--compress=none",
    ]);
    apply_and_compare(&Fixture { dir, wim }, 1);
}

/// A solid WIM whose solid chunks (16 MiB) are each decoded and written by
/// one of a thread per core, a file running across them written in order
/// from thread to thread: the usual test tree plus 19 MB of compressible
/// text and 6 MB of random data. The chunk holding the random data is
/// stored in 6.4 MB, so it is read 1 MiB from each end at a time; the
/// last one, of counting text, expands about 72,000 times.
fn capture_large_solid_chunks() -> Fixture {
    let build = |src: &Path| {
        make_tree(src);
        let numbers: String = (1..=2_600_000u32).map(|n| format!("{n}\n")).collect();
        fs::write(src.join("numbers.txt"), numbers).expect("write");
        fs::write(src.join("random.bin"), random_bytes(77, 6_000_000)).expect("write");
    };
    capture_tree(build, &["--solid", "--solid-chunk-size=16M"])
}

#[test]
fn apply_solid_large_chunks_matches_wimlib() {
    let fx = capture_large_solid_chunks();
    apply_and_compare(&fx, 1);
    let home = fx.dir.path().join("home");
    let o = run(
        &home,
        &["Test-WindowsImage", fx.wim.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["IsValid"], true);

    // A damaged byte in the middle of the large solid chunks fails the
    // apply with an error naming what it hit, and nothing hangs or panics.
    let mut bytes = fs::read(&fx.wim).expect("read");
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5A;
    bytes[at + 1] ^= 0xA5;
    let damaged = fx.dir.path().join("damaged.wim");
    fs::write(&damaged, &bytes).expect("write");
    let home = fx.dir.path().join("home");
    let o = expand(&home, &damaged, 1, &fx.dir.path().join("damaged-out"), &[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    assert!(
        err.contains("damaged.wim") && (err.contains("SHA-1") || err.contains("the data of")),
        "the error names the file and what is damaged: {err}"
    );
    let o = run(
        &home,
        &["Test-WindowsImage", damaged.to_str().expect("utf-8")],
    );
    assert_exit(&o, 1);
    assert_eq!(json_lines(&o)[0]["IsValid"], false);
}

/// Zeros as wimlib writes them in solid chunks: 16 MiB from 14 bytes.
#[test]
fn apply_solid_zeros_matches_wimlib() {
    let build = |src: &Path| {
        fs::write(src.join("zeros.bin"), vec![0u8; 29_000_000]).expect("write");
        fs::write(src.join("t.txt"), "a little text\n").expect("write");
    };
    let fx = capture_tree(build, &["--solid", "--solid-chunk-size=16M"]);
    let size = fs::metadata(&fx.wim).expect("wim").len();
    assert!(size < 8192, "29 MB of zeros in {size} bytes");
    apply_and_compare(&fx, 1);
}

#[test]
fn apply_solid_lzx_matches_wimlib() {
    check_compression(&["--solid", "--solid-compress=LZX"]);
}

#[test]
fn apply_xpress_small_chunks_matches_wimlib() {
    check_compression(&["--compress=XPRESS", "--chunk-size=4096"]);
}

#[test]
fn apply_lzx_large_chunks_matches_wimlib() {
    check_compression(&["--compress=LZX", "--chunk-size=1048576"]);
}

#[test]
fn apply_with_integrity_table_and_check() {
    let fx = capture(&["--compress=none", "--check"]);
    let ours = fx.dir.path().join("ours");
    let home = fx.dir.path().join("home");
    let o = expand(&home, &fx.wim, 1, &ours, &["-CheckIntegrity", "-Verify"]);
    assert_exit(&o, 0);
    let theirs = fx.dir.path().join("theirs");
    wimlib_apply(&fx.wim, 1, &theirs);
    assert_same_tree(&ours, &theirs);
    let o = run(
        &fx.dir.path().join("home"),
        &[
            "Get-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
            "-Index",
            "1",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["IntegrityTable"], true);
}

#[test]
fn two_images_apply_by_index_and_name() {
    let fx = capture(&["--compress=none"]);
    let second = fx.dir.path().join("second");
    fs::create_dir_all(second.join("UtilityVM")).expect("dir");
    fs::write(second.join("UtilityVM/vm.txt"), b"utility vm\n").expect("write");
    fs::write(second.join("shared.bin"), random_bytes(7, 300_000)).expect("write");
    wimlib(&[
        "append",
        second.to_str().expect("utf-8"),
        fx.wim.to_str().expect("utf-8"),
        "Second",
        "--compress=none",
    ]);
    apply_and_compare(&fx, 1);
    apply_and_compare(&fx, 2);
    let home = fx.dir.path().join("home");
    let o = run(
        &home,
        &[
            "Get-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let images = json_lines(&o);
    let names: Vec<&str> = images
        .iter()
        .filter_map(|i| i["ImageName"].as_str())
        .collect();
    assert_eq!(names, ["Test Image", "Second"]);
    let by_name = fx.dir.path().join("by-name");
    let o = run(
        &home,
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
            "-Name",
            "Second",
            "-ApplyPath",
            by_name.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    assert_same_tree(&by_name, &fx.dir.path().join("wimlib-2"));
    let o = run(
        &home,
        &[
            "Get-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
            "-Index",
            "3",
        ],
    );
    assert_fails(&o, "has no image 3");
}

#[test]
fn seven_zip_wim_applies_like_wimlib() {
    require_tool("7zz");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    fs::create_dir_all(src.join("a/b")).expect("dirs");
    fs::write(src.join("a/b/text.txt"), "seven zip\n".repeat(100)).expect("write");
    fs::write(src.join("random.bin"), random_bytes(3, 200_000)).expect("write");
    fs::write(src.join("empty"), b"").expect("write");
    let wim = dir.path().join("7z.wim");
    let o = Command::new("7zz")
        .current_dir(&src)
        .args(["a", "-twim", wim.to_str().expect("utf-8"), "."])
        .output()
        .expect("7zz runs");
    assert!(
        o.status.success(),
        "7zz failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fx = Fixture { dir, wim };
    apply_and_compare(&fx, 1);
}

#[test]
fn get_windows_image_matches_wimlib_info() {
    let fx = capture(&["--compress=none"]);
    let info =
        String::from_utf8_lossy(&wimlib(&["info", fx.wim.to_str().expect("utf-8"), "1"]).stdout)
            .into_owned();
    let field = |name: &str| -> String {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("wimlib-imagex info shows {name}:\n{info}"))
    };
    let home = fx.dir.path().join("home");
    let o = run(
        &home,
        &[
            "Get-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
            "-Index",
            "1",
        ],
    );
    assert_exit(&o, 0);
    let obj = &json_lines(&o)[0];
    assert_eq!(obj["ImageName"], field("Name"));
    assert_eq!(obj["ImageDescription"], field("Description"));
    assert_eq!(obj["DirectoryCount"].to_string(), field("Directory Count"));
    assert_eq!(obj["FileCount"].to_string(), field("File Count"));
    assert_eq!(obj["ImageSize"].to_string(), field("Total Bytes"));
    assert_eq!(obj["Compression"], "None");
    // wimlib shows "Tue Nov 24 07:54:58 2026 UTC"; compare the time of day.
    let created = obj["CreatedTime"].as_str().expect("CreatedTime");
    let hms = created.get(11..19).expect("RFC 3339 time");
    assert!(
        field("Creation Time").contains(hms),
        "CreatedTime {created} vs wimlib {}",
        field("Creation Time")
    );

    let lzx = capture(&["--compress=LZX"]);
    let o = run(
        &home,
        &[
            "Get-WindowsImage",
            "-ImagePath",
            lzx.wim.to_str().expect("utf-8"),
            "-Index",
            "1",
        ],
    );
    assert_exit(&o, 0);
    let obj = &json_lines(&o)[0];
    assert_eq!(obj["Compression"], "LZX");
    assert_eq!(obj["ChunkSize"], 32768);
}

#[test]
fn test_windows_image_reports_valid_file() {
    let fx = capture(&["--compress=none", "--check"]);
    let o = run(
        &fx.dir.path().join("home"),
        &[
            "Test-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let obj = &json_lines(&o)[0];
    assert_eq!(obj["IsValid"], true, "{obj}");
    assert_eq!(obj["Problems"], serde_json::json!([]));
}

#[test]
fn metadata_file_is_written_beside_not_inside() {
    let fx = capture(&["--compress=none"]);
    let home = fx.dir.path().join("home");
    let ours = fx.dir.path().join("ours");
    let meta = fx.dir.path().join("meta.json");
    let o = expand(&home, &fx.wim, 1, &ours, &["-MetadataPath", &utf8(&meta)]);
    assert_exit(&o, 0);
    let text = fs::read_to_string(&meta).expect("metadata file written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("metadata is JSON");
    assert_eq!(v["Format"], "containerimage-wim-metadata/1");
    let entries = v["Entries"].as_array().expect("Entries");
    let link = entries
        .iter()
        .find(|e| e["Path"] == "abs-inside")
        .expect("the absolute link is listed");
    assert_eq!(link["ReparseTag"], 0xA000_000Cu32);
    assert!(link["ReparseData"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(!ours.join("meta.json").exists());

    // Inside the apply folder: refused.
    let inside = fx.dir.path().join("again");
    let meta = utf8(&inside.join("meta.json"));
    let o = expand(&home, &fx.wim, 1, &inside, &["-MetadataPath", &meta]);
    assert_fails(&o, "must not be inside");
}

#[test]
fn missing_index_and_name_is_a_usage_error() {
    let fx = capture(&["--compress=none"]);
    let o = run(
        &fx.dir.path().join("home"),
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            fx.wim.to_str().expect("utf-8"),
            "-ApplyPath",
            fx.dir.path().join("x").to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 2);
}

#[test]
fn test_windows_image_checks_solid_and_compressed_files() {
    for opts in [&["--solid"][..], &["--compress=LZX"][..]] {
        let fx = capture(opts);
        let o = run(
            &fx.dir.path().join("home"),
            &["Test-WindowsImage", fx.wim.to_str().expect("utf-8")],
        );
        assert_exit(&o, 0);
        assert_eq!(json_lines(&o)[0]["IsValid"], true, "{opts:?}");
    }
}

/// 3,000 files holding the same bytes share one blob; applying them must not
/// hold a file descriptor per file (wimlib applies this under a low limit).
#[test]
fn shared_blob_in_3000_files_applies_under_a_low_fd_limit() {
    let fx = capture_tree(
        |root| {
            for d in 0..3 {
                let dir = root.join(format!("d{d}"));
                fs::create_dir(&dir).expect("folder");
                for i in 0..1000 {
                    fs::write(dir.join(format!("f{i}")), b"one blob for all of them\n")
                        .expect("write");
                }
            }
        },
        &["--compress=LZX"],
    );
    let ours = fx.dir.path().join("ours");
    let theirs = fx.dir.path().join("theirs");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$BIN\" Expand-WindowsImage -ImagePath \"$WIM\" -Index 1 -ApplyPath \"$OUT\"")
        .env("BIN", crate::common::bin_path())
        .env("WIM", &fx.wim)
        .env("OUT", &ours)
        .env("CONTAINERIMAGE_HOME", fx.dir.path().join("home"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh runs");
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["Files"], 3000);
    wimlib_apply(&fx.wim, 1, &theirs);
    assert_same_tree(&ours, &theirs);
}

/// Files with the same data, not linked: a small one's copies are written
/// from the decoded batch, a large one's (12 MB, across batches) copied
/// from its first file once it is complete. Each copy has its own times.
/// Small files in runs, files of a few hundred KiB to a few MiB (one with
/// copies), and one file of many groups: the same tree as wimlib's,
/// whether one thread does the work or more threads than cores.
#[test]
fn files_of_every_size_apply_like_wimlib_on_any_number_of_threads() {
    let fx = capture_tree(
        |root| {
            fs::create_dir(root.join("small")).expect("folder");
            for i in 0..300usize {
                let text = format!("line {i} of a small file\n").repeat(i % 97 + 1);
                let mut data = text.into_bytes();
                data.extend(random_bytes(i as u64, i * 13 % 3000));
                fs::write(root.join(format!("small/f{i}.txt")), data).expect("write");
            }
            for (i, size) in [300_000, 700_000, 1_100_000, 3_000_000].iter().enumerate() {
                let mut data = random_bytes(100 + i as u64, *size / 2);
                data.extend(b"half text, half noise. ".repeat(*size / 46));
                fs::write(root.join(format!("medium{i}.bin")), &data).expect("write");
                if i == 1 {
                    fs::write(root.join("medium copy.bin"), &data).expect("write");
                    fs::write(root.join("small/medium copy.bin"), &data).expect("write");
                }
            }
            let big: Vec<u8> = (0..3_000_000u32)
                .flat_map(|n| (n / 3).to_le_bytes())
                .chain(random_bytes(7, 8_000_000))
                .collect();
            fs::write(root.join("big.bin"), big).expect("write");
        },
        &["--compress=LZX"],
    );
    let theirs = fx.dir.path().join("wimlib");
    wimlib_apply(&fx.wim, 1, &theirs);
    let home = fx.dir.path().join("home");
    // Each way of hashing: blobs one chain each, in lane rounds hashed
    // one chain each, and as the processor allows (lanes where it has
    // AVX-512VL).
    for hashing in ["chains", "rounds", "default"] {
        for threads in ["1", "2", "5"] {
            let ours = fx.dir.path().join(format!("ours-{hashing}-{threads}"));
            let o = crate::common::cmd(&home)
                .env("RAYON_NUM_THREADS", threads)
                .env("CONTAINERIMAGE_TEST_HASHING", hashing)
                .args(expand_args(&fx.wim, 1, &ours, &[]))
                .output()
                .expect("the binary runs");
            assert_exit(&o, 0);
            assert_same_tree(&ours, &theirs);
        }
    }
}

#[test]
fn copies_of_small_and_large_files_apply_like_wimlib() {
    let fx = capture_tree(
        |root| {
            make_tree(root);
            let big: Vec<u8> = (0..1_500_000u32)
                .flat_map(|n| (n.wrapping_mul(2_654_435_761) >> 7).to_le_bytes())
                .chain(random_bytes(21, 6_000_000))
                .collect();
            fs::create_dir(root.join("again")).expect("folder");
            for (i, name) in ["big.bin", "again/big copy.bin", "again/big third.bin"]
                .iter()
                .enumerate()
            {
                fs::write(root.join(name), &big).expect("write");
                touch(&root.join(name), &format!("200{i}-05-06 07:08:09"));
            }
            for i in 0..50 {
                let name = root.join(format!("again/small{i}.txt"));
                fs::write(&name, b"small and the same\n").expect("write");
                touch(&name, &format!("2011-01-{:02} 00:00:00", i % 28 + 1));
            }
        },
        &["--compress=XPRESS"],
    );
    apply_and_compare(&fx, 1);
}
