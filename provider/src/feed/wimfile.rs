//! Feed records for `.wim` files in a folder, and the one rule for the
//! name and version of a `.wim` file (also used by `Install-ContainerOSImage`).

use std::path::{Path, PathBuf};

use super::{FeedError, FeedRecord, HashCache};
use crate::names::check_name;
use crate::progress::Reporter;
use crate::version::Version;
use crate::wim::{info::arch_name, WimFile, WimInfo};

/// The name and version of a `.wim` file.
///
/// The name is the file name without `.wim` and without a trailing version
/// suffix (`NanoServer-10-0-14300-1010.wim` and `NanoServer.wim` are both
/// `NanoServer`). The version is the WIM's XML `WINDOWS/VERSION` of image 1
/// when `info` has one, else the file name's suffix (`10.0.14300.1010`),
/// else an error asking for `-Version`. Values given on the command line
/// win over both; callers apply them.
pub fn wim_name_and_version(
    path: &Path,
    info: Option<&WimInfo>,
) -> Result<(String, Version), FeedError> {
    // A file name that is not UTF-8 gives no name (the caller asks for
    // -Name) rather than one with replacement characters in it.
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = strip_wim_extension(file_name);
    let (name, suffix) = split_version_suffix(stem);
    if check_name(name).is_err() {
        return Err(FeedError::NoName {
            path: path.to_path_buf(),
        });
    }
    let from_xml = info
        .and_then(|i| i.images.first())
        .and_then(|i| i.windows.as_ref())
        .and_then(|w| w.version)
        .map(|v| v.to_version());
    match from_xml.or(suffix) {
        Some(version) => Ok((name.to_string(), version)),
        None => Err(FeedError::NoVersion {
            path: path.to_path_buf(),
        }),
    }
}

fn strip_wim_extension(file_name: &str) -> &str {
    let n = file_name.len();
    if n > 4 && file_name.is_char_boundary(n - 4) && file_name[n - 4..].eq_ignore_ascii_case(".wim")
    {
        &file_name[..n - 4]
    } else {
        file_name
    }
}

/// Splits `NanoServer-10-0-14300-1010` into `NanoServer` and `10.0.14300.1010`.
/// The suffix is one to four numbers joined by `-` or `.`, separated from a
/// non-empty name by `-`, `_` or `.`.
fn split_version_suffix(stem: &str) -> (&str, Option<Version>) {
    let b = stem.as_bytes();
    let mut end = b.len();
    let mut groups: Vec<&str> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (start of suffix, number of groups)
    while groups.len() < 4 {
        let start = b[..end]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        if start == end {
            break;
        }
        groups.push(&stem[start..end]);
        // A suffix must be preceded by a separator with a name before it.
        if start >= 2 && matches!(b[start - 1], b'-' | b'_' | b'.') {
            best = Some((start, groups.len()));
        }
        if start >= 1 && matches!(b[start - 1], b'-' | b'.') {
            end = start - 1;
        } else {
            break;
        }
    }
    let Some((start, count)) = best else {
        return (stem, None);
    };
    let text: Vec<&str> = groups[..count].iter().rev().copied().collect();
    match text.join(".").parse::<Version>() {
        Ok(v) => {
            let name = stem[..start - 1].trim_end_matches(['-', '_', '.']);
            if name.is_empty() {
                (stem, None)
            } else {
                (name, Some(v))
            }
        }
        Err(_) => (stem, None),
    }
}

/// The outcome of reading a folder of `.wim` files.
#[derive(Debug, Default)]
pub struct WimScan {
    /// One record per readable `.wim`, locations relative to the folder.
    pub records: Vec<FeedRecord>,
    /// Files that could not be described, with the reason.
    pub failures: Vec<FeedError>,
}

/// Describes every `*.wim` in `folder` and in its direct subfolders, in
/// path order: name and version by [`wim_name_and_version`], description and
/// architecture from the WIM's XML, size and SHA-256 from the file (or from
/// `cache` when the file has not changed since it was hashed).
pub fn scan_wim_folder(
    folder: &Path,
    cache: Option<&HashCache>,
    reporter: &dyn Reporter,
) -> Result<WimScan, FeedError> {
    let mut files = Vec::new();
    list_wims(folder, folder, 1, &mut files)?;
    files.sort();
    let mut scan = WimScan::default();
    for relative in files {
        let location = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        match entry_record_for_wim(&folder.join(&relative), &location, cache, reporter) {
            Ok(record) => scan.records.push(record),
            Err(e) => scan.failures.push(e),
        }
    }
    Ok(scan)
}

fn list_wims(
    root: &Path,
    dir: &Path,
    depth_left: u32,
    out: &mut Vec<PathBuf>,
) -> Result<(), FeedError> {
    let read = |source| FeedError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for item in std::fs::read_dir(dir).map_err(read)? {
        let item = item.map_err(read)?;
        let path = item.path();
        let kind = item.file_type().map_err(read)?;
        if kind.is_dir() {
            if depth_left > 0 {
                list_wims(root, &path, depth_left - 1, out)?;
            }
            continue;
        }
        let is_wim = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wim"));
        // Regular files, or links to them; never anything else.
        if is_wim && path.is_file() {
            if let Ok(relative) = path.strip_prefix(root) {
                out.push(relative.to_path_buf());
            }
        }
    }
    Ok(())
}

/// A feed record for one `.wim` file, with `location` as the text of its
/// `<Location>`.
pub fn entry_record_for_wim(
    path: &Path,
    location: &str,
    cache: Option<&HashCache>,
    reporter: &dyn Reporter,
) -> Result<FeedRecord, FeedError> {
    let info = match WimFile::open(path) {
        Ok(wim) => Some(wim.info().clone()),
        Err(e) => {
            reporter.verbose(&format!(
                "{}: the WIM's XML is not available ({e}); using the file name",
                path.display()
            ));
            None
        }
    };
    let (name, version) = wim_name_and_version(path, info.as_ref())?;
    let first = info.as_ref().and_then(|i| i.images.first());
    let description = first
        .and_then(|i| {
            i.description
                .clone()
                .or_else(|| i.display_description.clone())
        })
        .filter(|d| !d.trim().is_empty());
    let architecture = first
        .and_then(|i| i.windows.as_ref())
        .and_then(|w| w.arch)
        .map(|a| arch_name(a).to_string());
    let (size, sha256) = hash_file(path, cache, reporter)?;
    Ok(FeedRecord {
        name,
        version,
        publisher: None,
        description,
        architecture,
        size: Some(size),
        sha256: Some(sha256),
        locations: vec![location.to_string()],
        line: 0,
    })
}

/// Size and SHA-256 of a file, read in one pass.
fn hash_file(
    path: &Path,
    cache: Option<&HashCache>,
    reporter: &dyn Reporter,
) -> Result<(u64, [u8; 32]), FeedError> {
    let read = |source| FeedError::Read {
        path: path.to_path_buf(),
        source,
    };
    // A FIFO or device put in the folder after it was listed is refused, never waited on.
    let mut file = crate::fsutil::open_regular(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if let Some(sha) = cache.and_then(|c| c.get(path, &meta)) {
        return Ok((meta.len(), sha));
    }
    let total = meta.len();
    reporter.on_start(&format!("Hashing {}", path.display()), Some(total));
    let result = crate::fsutil::sha256_of(&mut file, |n| reporter.on_progress(n));
    reporter.on_complete();
    let (sha, size) = result.map_err(read)?;
    // Only a file that did not change while it was read is remembered.
    if let (Some(c), Ok(after)) = (cache, std::fs::metadata(path)) {
        if after.len() == size && after.modified().ok() == meta.modified().ok() {
            c.put(path, &after, &sha);
        }
    }
    Ok((size, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_version_from_file_names() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "NanoServer-10-0-14300-1010.wim",
                "NanoServer",
                Some("10.0.14300.1010"),
            ),
            ("NanoServer.wim", "NanoServer", None),
            ("NanoServer.WIM", "NanoServer", None),
            (
                "WindowsServerCore-10.0.14300.1000.wim",
                "WindowsServerCore",
                Some("10.0.14300.1000"),
            ),
            ("Nano_Server_10-0-1.wim", "Nano_Server", Some("10.0.1")),
            ("Server2016.wim", "Server2016", None),
            ("Server2016-1-2.wim", "Server2016", Some("1.2")),
            ("Win10-2-3-4-5-6.wim", "Win10-2", Some("3.4.5.6")),
            ("Image-99999999999.wim", "Image-99999999999", None),
            ("-1.wim", "-1", None),
            ("12.wim", "12", None),
        ];
        for (file, name, version) in cases {
            let (n, v) = split_version_suffix(strip_wim_extension(file));
            assert_eq!(n, *name, "name of {file}");
            assert_eq!(
                v.map(|v| v.to_string()),
                version.map(str::to_string),
                "version of {file}"
            );
        }
    }

    #[test]
    fn xml_version_wins_over_the_suffix_and_missing_version_is_an_error() {
        use crate::wim::{ImageInfo, WindowsInfo, WindowsVersion};
        let info = WimInfo {
            total_bytes: None,
            images: vec![ImageInfo {
                index: 1,
                windows: Some(WindowsInfo {
                    version: Some(WindowsVersion {
                        major: 10,
                        minor: 0,
                        build: 14393,
                        sp_build: 0,
                        sp_level: None,
                    }),
                    ..WindowsInfo::default()
                }),
                ..ImageInfo::default()
            }],
        };
        let p = Path::new("/x/NanoServer-10-0-14300-1010.wim");
        let (n, v) = wim_name_and_version(p, Some(&info)).expect("named");
        assert_eq!(
            (n.as_str(), v.to_string().as_str()),
            ("NanoServer", "10.0.14393.0")
        );
        let (_, v) = wim_name_and_version(p, None).expect("named");
        assert_eq!(v.to_string(), "10.0.14300.1010");
        let err =
            wim_name_and_version(Path::new("/x/NanoServer.wim"), None).expect_err("no version");
        assert!(err.to_string().contains("-Version"), "{err}");
        assert!(wim_name_and_version(Path::new("/x/NanoServer.wim"), Some(&info)).is_ok());
    }
}
