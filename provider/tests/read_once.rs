//! An apply reads every chunk of the file once: file data, the reparse data
//! of links and, for the metadata file, the same reparse data again all come
//! from one disk-ordered pass. Counted with `WimFile::chunk_bytes_read` on a
//! solid WIM made by wimlib at test time, against `WimFile::verify`, which
//! reads every blob and every image's metadata once.
//!
//! Needs `wimlib-imagex` (Debian/Ubuntu: `apt-get install wimtools`).
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::process::Command;

use containerimage_provider::progress::Silent;
use containerimage_provider::wim::{ApplyOptions, WimFile};

fn capture(src: &Path, wim: &Path, extra: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .arg("capture")
        .arg(src)
        .arg(wim)
        .args(extra)
        .output();
    assert!(
        matches!(out, Ok(ref o) if o.status.success()),
        "wimlib-imagex capture failed or is missing (install it with `apt-get install wimtools`): {out:?}"
    );
}

#[test]
fn apply_reads_each_chunk_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    // Text spread over several 32 KiB solid chunks, with links among them.
    for i in 0..40u32 {
        let text: String = (0..600).map(|n| format!("file {i} line {n}\n")).collect();
        fs::write(src.join(format!("f{i:02}.txt")), text).expect("write");
    }
    for i in 0..5 {
        std::os::unix::fs::symlink(format!("f{i:02}.txt"), src.join(format!("link{i}")))
            .expect("symlink");
    }
    std::os::unix::fs::symlink("../f00.txt", src.join("sub/up")).expect("symlink");
    let wim_path = dir.path().join("solid.wim");
    capture(&src, &wim_path, &["--solid", "--solid-chunk-size=32768"]);

    let whole = WimFile::open(&wim_path).expect("open");
    assert!(whole.verify(&Silent).is_empty(), "the WIM is sound");
    let once = whole.chunk_bytes_read();
    assert!(once > 300_000, "verify read {once} bytes of chunks");

    for metadata in [false, true] {
        let wim = WimFile::open(&wim_path).expect("open");
        let options = ApplyOptions {
            metadata_path: metadata.then(|| dir.path().join("meta.json")),
            ..ApplyOptions::default()
        };
        let target = dir.path().join(format!("out-{metadata}"));
        let summary = wim.apply(1, &target, &options, &Silent).expect("apply");
        assert_eq!(summary.symlinks, 6);
        assert_eq!(
            wim.chunk_bytes_read(),
            once,
            "apply (metadata file: {metadata}) reads each chunk once, as verify does"
        );
    }
}
