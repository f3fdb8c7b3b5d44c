//! Link targets: a symbolic link's or junction's reparse data turned into
//! the target of a Linux symbolic link, exactly as `wimlib-imagex apply`
//! does on Linux (studied by experiment: `tests/it/wim_links.rs` compares
//! every kind of target with wimlib's result).

use std::path::Path;

use super::format::{IO_REPARSE_TAG_SYMLINK, REPARSE_FLAG_NOT_FIXED};
use super::metadata::Dentry;

/// Symbolic link reparse data flag: the substitute name is relative.
const SYMLINK_FLAG_RELATIVE: u32 = 1;

fn utf16_at(buf: &[u8], offset: usize, len: usize) -> Option<String> {
    let bytes = buf.get(offset..offset.checked_add(len)?)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

/// The Linux link target for a symbolic link or junction's reparse data
/// (without its 8-byte header), as `wimlib-imagex apply` writes it on
/// Linux. Only the substitute name is used (never the print name):
/// - a symbolic link flagged relative keeps its name as stored;
/// - otherwise a `\??\` prefix is removed together with the device that
///   follows it up to the next backslash (`C:`, `UNC`, `Volume{…}`), so
///   `\??\C:\x` gives `\x` and `\??\UNC\server\share` gives
///   `\server\share`; any other name (`C:\x`, `\\server\share`,
///   `\\?\C:\x`) is kept whole;
/// - backslashes become slashes and slashes backslashes;
/// - when the file was captured with reparse-point fixing (RP_FIX) and the
///   link was fixed, the apply folder's absolute path is put in front, as
///   text (`C:\etc` gives `<folder>C:/etc`, as wimlib does); with
///   `relative_depth` (the depth of the link's folder below the image root)
///   a target starting with `/` is made relative to the link's folder
///   instead, so the tree can be moved;
/// - an empty result is `/`.
///
/// `None` when the reparse data is unreadable or the name holds NUL.
pub(crate) fn link_target(
    data: &[u8],
    e: &Dentry,
    rp_fix: bool,
    target: &Path,
    relative_depth: Option<usize>,
) -> Option<String> {
    let u16_at = |o: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes([
            *data.get(o)?,
            *data.get(o + 1)?,
        ])))
    };
    let (sub_off, sub_len) = (u16_at(0)?, u16_at(2)?);
    let (relative, names_start) = if e.reparse_tag == IO_REPARSE_TAG_SYMLINK {
        let flags = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        (flags & SYMLINK_FLAG_RELATIVE != 0, 12)
    } else {
        (false, 8)
    };
    let name = utf16_at(data, names_start + sub_off, sub_len)?;
    if name.contains('\0') {
        return None;
    }
    let mut rest = name.as_str();
    if !relative {
        if let Some(after) = rest.strip_prefix("\\??\\") {
            rest = after.find('\\').map_or("", |i| &after[i..]);
        }
    }
    let path: String = rest
        .chars()
        .map(|c| match c {
            '\\' => '/',
            '/' => '\\',
            c => c,
        })
        .collect();
    if !relative && rp_fix && e.reparse_flags & REPARSE_FLAG_NOT_FIXED == 0 {
        match (relative_depth, path.strip_prefix('/')) {
            (Some(depth), Some(inside)) => {
                // From the link's folder up to the image root, then down.
                let inside = inside.trim_end_matches('/');
                let mut up: Vec<&str> = vec![".."; depth];
                if !inside.is_empty() {
                    up.push(inside);
                }
                return Some(if up.is_empty() {
                    ".".to_string()
                } else {
                    up.join("/")
                });
            }
            (Some(_), None) if !path.is_empty() => return Some(path),
            _ => return Some(format!("{}{path}", target.to_string_lossy())),
        }
    }
    Some(if path.is_empty() {
        "/".to_string()
    } else {
        path
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wim::format::IO_REPARSE_TAG_MOUNT_POINT;
    use crate::wim::metadata::ZERO_HASH;

    fn reparse(tag: u32, name: &str, relative: bool) -> Vec<u8> {
        let units: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let len = units.len() as u16;
        let mut d = Vec::new();
        for v in [0u16, len, len + 2, len] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        if tag == IO_REPARSE_TAG_SYMLINK {
            d.extend_from_slice(&u32::from(relative).to_le_bytes());
        }
        d.extend_from_slice(&units);
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&units);
        d
    }

    fn dentry(tag: u32, flags: u16) -> Dentry {
        Dentry {
            name_at: 0,
            name_len: 0,
            name_valid: true,
            attributes: 0x400,
            security_id: u32::MAX,
            creation_time: 0,
            last_access_time: 0,
            last_write_time: 0,
            data_hash: ZERO_HASH,
            reparse_tag: tag,
            reparse_flags: flags,
            link_group: 0,
            extra: None,
            parent: 0,
            first_child: 0,
            child_count: 0,
        }
    }

    #[test]
    fn link_targets_are_translated_like_wimlib() {
        let t = Path::new("/apply/here");
        let sym = IO_REPARSE_TAG_SYMLINK;
        let cases = [
            // (tag, stored name, relative flag, entry flags, rp_fix, expected)
            (sym, "..\\a.txt", true, 0, true, "../a.txt"),
            (sym, "\\??\\C:\\d1\\d2", false, 0, true, "/apply/here/d1/d2"),
            (
                sym,
                "\\??\\C:\\etc\\passwd",
                false,
                REPARSE_FLAG_NOT_FIXED,
                true,
                "/etc/passwd",
            ),
            (sym, "\\??\\C:\\d1", false, 0, false, "/d1"),
            (sym, "\\??\\C:\\", false, 0, true, "/apply/here/"),
            (sym, "\\??\\C:", false, 0, true, "/apply/here"),
            (sym, "C:\\etc", false, 0, true, "/apply/hereC:/etc"),
            (sym, "\\??\\UNC\\srv\\share", false, 0, false, "/srv/share"),
            (sym, "\\\\srv\\share", false, 0, false, "//srv/share"),
            (sym, "\\??\\C:\\x", true, 0, true, "/??/C:/x"),
            (sym, "/fwd", true, 0, true, "\\fwd"),
            (sym, "", false, 0, false, "/"),
            (sym, "", false, 0, true, "/apply/here"),
            (
                IO_REPARSE_TAG_MOUNT_POINT,
                "\\??\\C:\\Users",
                false,
                0,
                true,
                "/apply/here/Users",
            ),
        ];
        for (tag, name, relative, flags, rp_fix, expected) in cases {
            let data = reparse(tag, name, relative);
            let got = link_target(&data, &dentry(tag, flags), rp_fix, t, None);
            assert_eq!(got.as_deref(), Some(expected), "{name}");
        }
        assert_eq!(
            link_target(&[1, 2, 3], &dentry(sym, 0), true, t, None),
            None
        );
        assert_eq!(
            link_target(&reparse(sym, "a\0b", true), &dentry(sym, 0), true, t, None),
            None
        );
    }

    #[test]
    fn fixed_links_can_be_made_relative() {
        let t = Path::new("/apply/here");
        let sym = IO_REPARSE_TAG_SYMLINK;
        let cases = [
            ("\\??\\C:\\d1\\d2", 0, "d1/d2"),
            ("\\??\\C:\\d1\\d2", 2, "../../d1/d2"),
            ("\\??\\C:\\", 0, "."),
            ("\\??\\C:\\", 1, ".."),
        ];
        for (name, depth, expected) in cases {
            let data = reparse(sym, name, false);
            let got = link_target(&data, &dentry(sym, 0), true, t, Some(depth));
            assert_eq!(got.as_deref(), Some(expected), "{name} at depth {depth}");
        }
        // Links that were not fixed at capture stay absolute.
        let data = reparse(sym, "\\??\\C:\\etc", false);
        let got = link_target(
            &data,
            &dentry(sym, REPARSE_FLAG_NOT_FIXED),
            true,
            t,
            Some(3),
        );
        assert_eq!(got.as_deref(), Some("/etc"));
    }
}
