//! Unpacks arbitrary bytes as a Windows layer tar (base or child, chosen by
//! the first byte) into a temporary folder: every input must give entries
//! or a clean error, never a panic, and nothing may be written outside the
//! folder.
#![no_main]

use containerimage_provider::fsutil::dir::Dir;
use containerimage_provider::oci::layer_read::{unpack_layer, LayerKind};
use containerimage_provider::oci::tar_read::TarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let kind = if first & 1 == 0 { LayerKind::Base } else { LayerKind::Child };
    let Ok(tmp) = tempfile::tempdir() else { return };
    let target = tmp.path().join("layer");
    let Ok(dir) = Dir::create_all(&target) else { return };
    let mut tar = TarReader::new(rest);
    let _ = unpack_layer(&mut tar, &dir, kind);
    // Only the target folder may exist beside nothing else.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(names, [std::ffi::OsString::from("layer")], "written outside the target");
});
