//! Fuzzes the WIM reader: header, blob table, XML, metadata, verification
//! and applying every image into a temporary folder.
#![no_main]

use std::io::Write;

use containerimage_provider::progress::Silent;
use containerimage_provider::wim::{ApplyOptions, WimFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("input.wim");
    let Ok(mut f) = std::fs::File::create(&path) else { return };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let Ok(wim) = WimFile::open(&path) else { return };
    let _ = wim.info();
    let _ = wim.verify(&Silent);
    for index in 1..=wim.image_count().min(3) {
        let _ = wim.windows_metadata(index);
        let target = dir.path().join(format!("apply-{index}"));
        let options = ApplyOptions {
            check_integrity: true,
            verify: true,
            metadata_path: Some(dir.path().join(format!("meta-{index}.json"))),
            absolute_links: index == 1,
        };
        let _ = wim.apply(index, &target, &options, &Silent);
    }
});
