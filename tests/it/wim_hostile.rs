//! Damaged and hostile WIM files: each test patches the bytes of a small
//! uncompressed WIM made by `wimlib-imagex` and checks that the binary fails
//! cleanly (exit 1, a clear message, no panic) or skips the bad entry with a
//! warning, and never writes outside the apply folder.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha1::{Digest, Sha1};

use crate::common::{assert_exit, assert_fails, cmd, json_lines, run, stderr, wimlib};
use crate::wim::random_bytes;

/// A small uncompressed WIM and its bytes.
struct Hostile {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    outside: PathBuf,
}

const CONTENT: &[u8] = b"alpha-unique-content, nothing else looks like this\n";

fn make() -> Hostile {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).expect("outside");
    fs::create_dir_all(src.join("dd")).expect("dd");
    fs::create_dir_all(src.join("yy-dir")).expect("yy-dir");
    fs::write(src.join("aa.txt"), CONTENT).expect("write");
    fs::write(src.join("dd/inner.txt"), b"inner\n").expect("write");
    fs::write(src.join("yy-dir/pwned.txt"), b"must stay inside\n").expect("write");
    for name in ["ab", "c", "a-b", "a_b", "a~b"] {
        fs::write(src.join(name), name.as_bytes()).expect("write");
    }
    std::os::unix::fs::symlink(&outside, src.join("xx-lnk")).expect("symlink");
    let wim = dir.path().join("h.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--compress=none",
    ]);
    let bytes = fs::read(&wim).expect("read wim");
    Hostile {
        dir,
        bytes,
        outside,
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Hostile {
    /// (position of the metadata entry in the file, resource offset, size).
    fn metadata(&self) -> (usize, usize, usize) {
        let table = u64_at(&self.bytes, 0x38) as usize;
        let size = (u64_at(&self.bytes, 0x30) & 0x00FF_FFFF_FFFF_FFFF) as usize;
        for e in (table..table + size).step_by(50) {
            if self.bytes[e + 7] & 0x2 != 0 {
                return (
                    e,
                    u64_at(&self.bytes, e + 8) as usize,
                    u64_at(&self.bytes, e + 16) as usize,
                );
            }
        }
        panic!("no metadata resource in the blob table");
    }

    /// The blob table entry whose resource starts at `offset`.
    fn blob_entry_at(&self, offset: usize) -> usize {
        let table = u64_at(&self.bytes, 0x38) as usize;
        let size = (u64_at(&self.bytes, 0x30) & 0x00FF_FFFF_FFFF_FFFF) as usize;
        (table..table + size)
            .step_by(50)
            .find(|&e| u64_at(&self.bytes, e + 8) as usize == offset)
            .expect("a blob table entry at that offset")
    }

    /// Recomputes the metadata resource's SHA-1 after a patch.
    fn fix_metadata_hash(&mut self) {
        let (entry, off, size) = self.metadata();
        let hash = Sha1::digest(&self.bytes[off..off + size]);
        self.bytes[entry + 30..entry + 50].copy_from_slice(&hash);
    }

    /// Absolute offset of the directory entry named `name`.
    fn dentry(&self, name: &str) -> usize {
        let (_, off, size) = self.metadata();
        let mut needle = utf16(name);
        needle.extend_from_slice(&[0, 0]);
        let at = find(&self.bytes[off..off + size], &needle)
            .unwrap_or_else(|| panic!("entry {name} in the metadata"));
        off + at - 102
    }

    /// Absolute offset of the root directory entry.
    fn root(&self) -> usize {
        let (_, off, _) = self.metadata();
        let total = u32::from_le_bytes(self.bytes[off..off + 4].try_into().expect("4 bytes"));
        off + ((total.max(8) as usize + 7) & !7)
    }

    /// Renames an entry in place (same UTF-16 length).
    fn rename(&mut self, from: &str, to: &str) {
        let at = self.dentry(from) + 102;
        let new = utf16(to);
        assert_eq!(new.len(), utf16(from).len(), "same-length rename");
        self.bytes[at..at + new.len()].copy_from_slice(&new);
        self.fix_metadata_hash();
    }

    fn write(&self) -> PathBuf {
        let path = self.dir.path().join("patched.wim");
        fs::write(&path, &self.bytes).expect("write patched wim");
        path
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    fn expand(&self) -> Output {
        self.expand_with(&[])
    }

    /// Applies the file with `env` set.
    fn expand_with(&self, env: &[(&str, &str)]) -> Output {
        let wim = self.write();
        cmd(&self.dir.path().join("home"))
            .envs(env.iter().copied())
            .args([
                "Expand-WindowsImage",
                "-ImagePath",
                wim.to_str().expect("utf-8"),
                "-Index",
                "1",
                "-ApplyPath",
                self.target().to_str().expect("utf-8"),
            ])
            .output()
            .expect("the binary runs")
    }

    fn test_image(&self) -> Output {
        self.test_image_with(&[])
    }

    /// Checks the file with `env` set.
    fn test_image_with(&self, env: &[(&str, &str)]) -> Output {
        let wim = self.write();
        cmd(&self.dir.path().join("home"))
            .envs(env.iter().copied())
            .args([
                "Test-WindowsImage",
                "-ImagePath",
                wim.to_str().expect("utf-8"),
            ])
            .output()
            .expect("the binary runs")
    }

    /// Nothing may ever appear outside the apply folder.
    #[track_caller]
    fn assert_outside_untouched(&self) {
        let n = fs::read_dir(&self.outside).expect("outside").count();
        assert_eq!(n, 0, "something was written outside the apply folder");
        let mut names: Vec<String> = fs::read_dir(self.dir.path())
            .expect("tempdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in &names {
            assert!(
                ["src", "outside", "h.wim", "patched.wim", "target", "home"].contains(&n.as_str()),
                "unexpected file {n} beside the apply folder"
            );
        }
    }
}

#[test]
fn sane_file_applies() {
    let h = make();
    let o = h.expand();
    assert_exit(&o, 0);
    assert_eq!(
        fs::read(h.target().join("aa.txt")).expect("aa.txt"),
        CONTENT
    );
    h.assert_outside_untouched();
}

#[test]
fn truncated_file_fails() {
    let mut h = make();
    let keep = h.bytes.len() / 2;
    h.bytes.truncate(keep);
    assert_fails(&h.expand(), "lies past the end of the file");
    let o = h.test_image();
    assert_exit(&o, 1);
    assert_eq!(json_lines(&o)[0]["IsValid"], false);
    h.bytes.truncate(100);
    assert_fails(&h.expand(), "fewer than a WIM header");
    h.assert_outside_untouched();
}

#[test]
fn bad_magic_fails() {
    let mut h = make();
    h.bytes[0..5].copy_from_slice(b"NOWIM");
    assert_fails(&h.expand(), "does not start with the WIM magic");
}

#[test]
fn blob_table_offset_past_the_end_fails() {
    let mut h = make();
    put_u64(&mut h.bytes, 0x38, 1 << 40);
    assert_fails(&h.expand(), "past the end of the file");
}

#[test]
fn huge_declared_sizes_fail() {
    // XML data claiming a petabyte.
    let mut h = make();
    let flags = h.bytes[0x48 + 7];
    put_u64(&mut h.bytes, 0x48, (1u64 << 50) | (u64::from(flags) << 56));
    put_u64(&mut h.bytes, 0x48 + 16, 1 << 50);
    assert_fails(&h.expand(), "the XML data");

    // A file's blob claiming a terabyte.
    let mut h = make();
    let data = find(&h.bytes, CONTENT).expect("content in the file");
    let entry = h.blob_entry_at(data);
    put_u64(&mut h.bytes, entry, 1 << 40);
    put_u64(&mut h.bytes, entry + 16, 1 << 40);
    assert_fails(&h.expand(), "past the end of the file");

    // Metadata claiming a huge uncompressed size with its real stored size.
    let mut h = make();
    let (entry, _, _) = h.metadata();
    put_u64(&mut h.bytes, entry + 16, 1 << 45);
    assert_fails(&h.expand(), "the metadata of image 1 declares");
    h.assert_outside_untouched();
}

#[test]
fn wrong_image_count_fails() {
    let mut h = make();
    put_u32(&mut h.bytes, 0x2C, 3);
    assert_fails(&h.expand(), "declares 3 images");
    put_u32(&mut h.bytes, 0x2C, 0);
    assert_fails(&h.expand(), "declares 0 images");
}

#[test]
fn cyclic_directory_entries_fail() {
    let mut h = make();
    let root = h.root();
    let root_children = u64_at(&h.bytes, root + 16);
    let dd = h.dentry("dd");
    // dd's children are the root's children again: dd contains itself.
    put_u64(&mut h.bytes, dd + 16, root_children);
    h.fix_metadata_hash();
    assert_fails(&h.expand(), "cycle");
    let o = h.test_image();
    assert_exit(&o, 1);
    h.assert_outside_untouched();
}

#[test]
fn overlapping_directory_entries_fail() {
    let mut h = make();
    let (_, off, _) = h.metadata();
    let dd = h.dentry("dd");
    let aa = h.dentry("aa.txt");
    // dd's children start in the middle of another entry.
    put_u64(&mut h.bytes, dd + 16, (aa - off + 8) as u64);
    h.fix_metadata_hash();
    assert_fails(&h.expand(), "metadata of image 1 is damaged");
    h.assert_outside_untouched();
}

fn unsafe_name_is_skipped(from: &str, to: &str) {
    let mut h = make();
    h.rename(from, to);
    let o = h.expand();
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("WARNING: Skipping"), "{err}");
    assert!(
        !h.target().join(from).exists(),
        "{from} renamed to {to:?} was written"
    );
    assert!(
        h.target().join("aa.txt").exists(),
        "the other entries are applied"
    );
    let summary = &json_lines(&o)[0];
    assert_eq!(
        summary["Skipped"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    h.assert_outside_untouched();
}

#[test]
fn name_dot_dot_is_skipped() {
    unsafe_name_is_skipped("ab", "..");
}

#[test]
fn name_dot_is_skipped() {
    unsafe_name_is_skipped("c", ".");
}

#[test]
fn name_with_slash_is_skipped() {
    unsafe_name_is_skipped("a-b", "a/b");
}

#[test]
fn name_with_backslash_is_skipped() {
    unsafe_name_is_skipped("a_b", "a\\b");
}

#[test]
fn name_with_nul_is_skipped() {
    unsafe_name_is_skipped("a~b", "a\0b");
}

#[test]
fn directory_colliding_with_symlink_to_outside_writes_nothing_outside() {
    let mut h = make();
    h.rename("yy-dir", "xx-lnk");
    let o = h.expand();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("xx-lnk"),
        "the colliding entry is named: {err}"
    );
    h.assert_outside_untouched();
    assert!(!h.outside.join("pwned.txt").exists());
}

#[test]
fn sha1_mismatch_names_the_file() {
    let mut h = make();
    let data = find(&h.bytes, CONTENT).expect("content in the file");
    h.bytes[data] ^= 0x55;
    // Each way of hashing (see files_of_every_size_apply_like_wimlib_...).
    for hashing in ["chains", "rounds", "default"] {
        let env = [("CONTAINERIMAGE_TEST_HASHING", hashing)];
        let _ = fs::remove_dir_all(h.target());
        let o = h.expand_with(&env);
        assert_fails(&o, "aa.txt");
        assert!(
            stderr(&o).contains("does not match its SHA-1"),
            "{hashing}: {}",
            stderr(&o)
        );
        assert!(
            !h.target().join("aa.txt").exists(),
            "{hashing}: a file with damaged data is not left behind"
        );
        let o = h.test_image_with(&env);
        assert_exit(&o, 1);
        let result = &json_lines(&o)[0];
        assert_eq!(result["IsValid"], false, "{hashing}");
        assert!(
            result["Problems"].to_string().contains("aa.txt"),
            "{hashing}: {result}"
        );
        h.assert_outside_untouched();
    }
}

#[test]
fn pipable_wim_is_not_supported_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    fs::write(src.join("f"), b"x").expect("write");
    let wim = dir.path().join("p.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--pipable",
    ]);
    let o = run(
        &dir.path().join("home"),
        &[
            "Get-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
        ],
    );
    assert_fails(&o, "pipable WIM (WLPWM) is not supported yet");
}

#[test]
fn split_wim_is_not_supported_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    for i in 0..3 {
        fs::write(src.join(format!("r{i}")), random_bytes(i, 700_000)).expect("write");
    }
    let wim = dir.path().join("s.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--compress=none",
    ]);
    let swm = dir.path().join("s.swm");
    wimlib(&[
        "split",
        wim.to_str().expect("utf-8"),
        swm.to_str().expect("utf-8"),
        "1",
    ]);
    let o = run(
        &dir.path().join("home"),
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            swm.to_str().expect("utf-8"),
            "-Index",
            "1",
            "-ApplyPath",
            dir.path().join("t").to_str().expect("utf-8"),
        ],
    );
    assert_fails(&o, "a split WIM (part 1 of");
    assert!(!Path::new(&dir.path().join("t")).exists());
}

#[test]
fn integrity_table_mismatch_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    fs::write(src.join("f.txt"), CONTENT).expect("write");
    let wim = dir.path().join("c.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--compress=none",
        "--check",
    ]);
    let mut bytes = fs::read(&wim).expect("read");
    let at = find(&bytes, CONTENT).expect("content");
    bytes[at] ^= 1;
    fs::write(&wim, &bytes).expect("write");
    let home = dir.path().join("home");
    let o = run(
        &home,
        &[
            "Test-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 1);
    let problems = json_lines(&o)[0]["Problems"].to_string();
    assert!(problems.contains("integrity table"), "{problems}");
    assert!(problems.contains("f.txt"), "{problems}");
    let o = run(
        &home,
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
            "-Index",
            "1",
            "-ApplyPath",
            dir.path().join("t").to_str().expect("utf-8"),
            "-CheckIntegrity",
        ],
    );
    assert_fails(&o, "integrity table");
    assert!(
        !dir.path().join("t/f.txt").exists(),
        "nothing applied after a failed check"
    );
}

/// Replaces the XML data of `h` with `xml` (appended at the end of the file).
fn replace_xml(h: &mut Hostile, xml: &str) {
    let mut data = vec![0xFF, 0xFE];
    data.extend_from_slice(&utf16(xml));
    let at = h.bytes.len() as u64;
    h.bytes.extend_from_slice(&data);
    let flags = h.bytes[0x48 + 7];
    put_u64(
        &mut h.bytes,
        0x48,
        data.len() as u64 | (u64::from(flags) << 56),
    );
    put_u64(&mut h.bytes, 0x48 + 8, at);
    put_u64(&mut h.bytes, 0x48 + 16, data.len() as u64);
}

#[test]
fn deeply_nested_xml_is_refused_quickly() {
    let mut h = make();
    let depth = 20_000;
    let xml = format!(
        "<WIM><IMAGE INDEX=\"1\"><NAME>deep</NAME>{}{}</IMAGE></WIM>",
        "<A>x".repeat(depth),
        "</A>".repeat(depth)
    );
    replace_xml(&mut h, &xml);
    let wim = h.write();
    let o = run(
        &h.dir.path().join("home"),
        &[
            "Get-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
        ],
    );
    assert_fails(&o, "nests elements more than 64 deep");
    assert_fails(&h.expand(), "nests elements more than 64 deep");
    // A folder source holding the file still lists it, by its file name.
    let feed = h.dir.path().join("feed");
    fs::create_dir(&feed).expect("feed folder");
    fs::copy(&wim, feed.join("Deep-1-0-0-0.wim")).expect("copy");
    let home = h.dir.path().join("home");
    assert_exit(
        &run(
            &home,
            &[
                "Register-PackageSource",
                "-Name",
                "deep",
                "-Location",
                feed.to_str().expect("utf-8"),
            ],
        ),
        0,
    );
    let o = run(&home, &["Find-ContainerImage"]);
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["Name"], "Deep");
}

/// The blob table entries of a file: (position, flags, size).
fn blob_entries(bytes: &[u8]) -> Vec<(usize, u8, u64)> {
    let table = u64_at(bytes, 0x38) as usize;
    let size = (u64_at(bytes, 0x30) & 0x00FF_FFFF_FFFF_FFFF) as usize;
    (table..table + size)
        .step_by(50)
        .map(|e| (e, bytes[e + 7], u64_at(bytes, e + 16)))
        .collect()
}

#[test]
fn metadata_declaring_more_than_the_limit_is_refused_before_reading() {
    // A small LZX file whose metadata entry points at 256 MiB of zeros
    // (with their right SHA-1): reading it would take 256 MiB of memory.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    let zeros = 256u64 << 20;
    fs::File::create(src.join("zeros"))
        .and_then(|f| f.set_len(zeros))
        .expect("sparse file");
    let wim = dir.path().join("bomb.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--compress=LZX",
    ]);
    let mut bytes = fs::read(&wim).expect("read");
    assert!(bytes.len() < 8 << 20, "the file is small");
    let entries = blob_entries(&bytes);
    let (meta, _, _) = *entries
        .iter()
        .find(|(_, f, _)| f & 0x2 != 0)
        .expect("metadata entry");
    let (blob, flags, _) = *entries
        .iter()
        .find(|(_, _, s)| *s == zeros)
        .expect("the zeros blob");
    let copy: Vec<u8> = bytes[blob..blob + 50].to_vec();
    bytes[meta..meta + 50].copy_from_slice(&copy);
    bytes[meta + 7] = flags | 0x2;
    fs::write(&wim, &bytes).expect("write");
    let home = dir.path().join("home");
    for args in [
        vec!["Expand-WindowsImage", "-Index", "1", "-ApplyPath"],
        vec!["Test-WindowsImage"],
    ] {
        let mut args = args;
        let target = dir.path().join("t");
        if args[0] == "Expand-WindowsImage" {
            args.push(target.to_str().expect("utf-8"));
        }
        args.extend(["-ImagePath", wim.to_str().expect("utf-8")]);
        let o = run(&home, &args);
        assert_exit(&o, 1);
        let text = format!("{}{}", stderr(&o), crate::common::stdout(&o));
        assert!(
            text.contains(
                "the metadata of image 1 declares 268435456 bytes, more than the 50331648 accepted"
            ),
            "{text}"
        );
    }
}

#[test]
fn named_streams_kept_for_the_metadata_file_are_capped() {
    use crate::wim_craft::{write_wim, Node};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for i in 0..24u64 {
        let mut f = Node::file(&format!("f{i:02}"), b"main data");
        f.streams
            .push(("ads".into(), random_bytes(100 + i, 1 << 20)));
        files.push(f);
    }
    let wim = dir.path().join("streams.wim");
    write_wim(&wim, &Node::dir("", files), &[], 0);
    let meta = dir.path().join("meta.json");
    let o = run(
        &dir.path().join("home"),
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
            "-Index",
            "1",
            "-ApplyPath",
            dir.path().join("t").to_str().expect("utf-8"),
            "-MetadataPath",
            meta.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(&meta).expect("metadata file")).expect("JSON");
    let streams: Vec<&serde_json::Value> = v["Entries"]
        .as_array()
        .expect("Entries")
        .iter()
        .flat_map(|e| e["NamedStreams"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(streams.len(), 24, "every stream is listed");
    let held: usize = streams
        .iter()
        .filter_map(|s| s["Data"].as_str())
        .map(|d| d.len() / 2)
        .sum();
    assert!(held <= 16 << 20, "{held} bytes of stream data kept");
    assert!(held >= 15 << 20, "streams are kept up to the limit: {held}");
    for s in &streams {
        assert_eq!(s["Size"], 1 << 20, "{s}");
        assert_eq!(s["Sha1"].as_str().map(str::len), Some(40), "{s}");
    }
}

/// Starts `Expand-WindowsImage` of `wim` into `target`, paused once the
/// folders exist and before any data is written; returns the child.
fn spawn_expand_paused(
    home: &Path,
    wim: &Path,
    target: &Path,
    resume: &Path,
) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = crate::common::cmd(home)
        .args([
            "Expand-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
            "-Index",
            "1",
            "-ApplyPath",
            target.to_str().expect("utf-8"),
        ])
        .env("CONTAINERIMAGE_TEST_PAUSE_AT", "apply-data")
        .env("CONTAINERIMAGE_TEST_RESUME", resume)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(err).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("test pause at apply-data") {
            // Keep draining standard error so the child never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return child;
        }
    }
    let status = child.wait().expect("wait");
    panic!("Expand-WindowsImage ended ({status}) without pausing:\n{seen}");
}

#[test]
fn folder_swapped_for_a_link_during_expand_writes_nothing_outside() {
    let h = make();
    let wim = h.write();
    let target = h.target();
    let resume = h.dir.path().join("home").join("resume");
    fs::create_dir_all(h.dir.path().join("home")).expect("home");
    let child = spawn_expand_paused(&h.dir.path().join("home"), &wim, &target, &resume);
    // Another process swaps the folders for links to the outside folder.
    for name in ["dd", "yy-dir"] {
        fs::rename(target.join(name), target.join(format!("{name}.moved"))).expect("rename");
        std::os::unix::fs::symlink(&h.outside, target.join(name)).expect("symlink");
    }
    fs::write(&resume, b"").expect("resume");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1), "the apply fails cleanly");
    assert_eq!(
        fs::read_dir(&h.outside).expect("outside").count(),
        0,
        "something was written outside the apply folder"
    );
    assert_eq!(
        fs::read_link(target.join("dd")).expect("the link is left alone"),
        h.outside
    );
}

#[test]
fn racing_folder_swaps_during_expand_write_nothing_outside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).expect("outside");
    for d in 0..60u64 {
        let sub = src.join(format!("d{d:02}"));
        fs::create_dir_all(sub.join("inner")).expect("folder");
        for f in 0..20u64 {
            fs::write(sub.join(format!("f{f}")), random_bytes(d * 100 + f, 20_000)).expect("write");
        }
        fs::write(sub.join("inner/leaf"), random_bytes(d, 5000)).expect("write");
    }
    let wim = dir.path().join("race.wim");
    wimlib(&[
        "capture",
        src.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "--compress=XPRESS",
    ]);
    for round in 0..3 {
        let target = dir.path().join(format!("target{round}"));
        let mut child = crate::common::cmd(&dir.path().join("home"))
            .args([
                "Expand-WindowsImage",
                "-ImagePath",
                wim.to_str().expect("utf-8"),
                "-Index",
                "1",
                "-ApplyPath",
                target.to_str().expect("utf-8"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Swap every folder for a link to the outside folder as soon as it
        // appears, and keep doing so until the apply ends.
        let mut swapped = 0;
        while child.try_wait().expect("try_wait").is_none() {
            let Ok(list) = fs::read_dir(&target) else {
                continue;
            };
            for entry in list.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                if is_dir && !name.ends_with(".moved") {
                    let moved = target.join(format!("{name}.moved"));
                    if fs::rename(&path, &moved).is_ok()
                        && std::os::unix::fs::symlink(&outside, &path).is_ok()
                    {
                        swapped += 1;
                    }
                }
            }
        }
        let o = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(swapped > 0, "the race swapped nothing");
        let leaked: Vec<String> = fs::read_dir(&outside)
            .expect("outside")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            leaked.is_empty(),
            "round {round}: written outside the apply folder: {leaked:?} ({err})"
        );
    }
}

#[test]
fn links_already_in_the_apply_folder_are_not_followed() {
    let h = make();
    let target = h.target();
    fs::create_dir_all(&target).expect("target");
    std::os::unix::fs::symlink(&h.outside, target.join("dd")).expect("symlink");
    let o = h.expand();
    assert_fails(&o, "dd");
    h.assert_outside_untouched();

    let h = make();
    let target = h.target();
    fs::create_dir_all(&target).expect("target");
    std::os::unix::fs::symlink(h.outside.join("aa.txt"), target.join("aa.txt")).expect("symlink");
    let o = h.expand();
    assert_fails(&o, "aa.txt");
    h.assert_outside_untouched();
}

#[test]
fn chunk_sizes_beyond_what_the_codec_allows_are_refused() {
    // An XPRESS file whose header claims 1 GiB chunks: one chunk's buffer
    // would be sized by the file. wimlib writes at most 64 KiB for XPRESS.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("src");
    fs::write(src.join("f"), random_bytes(3, 200_000)).expect("write");
    for (codec, limit) in [("XPRESS", 65_536u32), ("LZX", 2_097_152)] {
        let wim = dir.path().join(format!("{codec}.wim"));
        wimlib(&[
            "capture",
            src.to_str().expect("utf-8"),
            wim.to_str().expect("utf-8"),
            &format!("--compress={codec}"),
        ]);
        let mut bytes = fs::read(&wim).expect("read");
        put_u32(&mut bytes, 0x14, 1 << 30);
        fs::write(&wim, &bytes).expect("write");
        let o = run(
            &dir.path().join("home"),
            &[
                "Expand-WindowsImage",
                "-ImagePath",
                wim.to_str().expect("utf-8"),
                "-Index",
                "1",
                "-ApplyPath",
                dir.path()
                    .join(format!("t-{codec}"))
                    .to_str()
                    .expect("utf-8"),
            ],
        );
        assert_fails(
            &o,
            &format!("bad chunk size 1073741824 (a power of two, at most {limit} for {codec})"),
        );
    }
}

#[test]
fn blob_sizes_that_add_up_past_64_bits_are_no_panic() {
    // Two blobs each declaring 2^63 bytes (found by fuzzing: the total
    // overflowed while Test-WindowsImage added them up).
    let mut h = make();
    for content in [CONTENT, b"inner\n".as_slice()] {
        let at = find(&h.bytes, content).expect("content in the file");
        let entry = h.blob_entry_at(at);
        h.bytes[entry + 7] |= 0x4;
        put_u64(&mut h.bytes, entry + 16, 1 << 63);
    }
    let o = h.test_image();
    assert_exit(&o, 1);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let o = h.expand();
    assert_exit(&o, 1);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    h.assert_outside_untouched();
}
