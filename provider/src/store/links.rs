//! Symbolic links in an applied image whose absolute target lies inside the
//! image are rewritten relative to the link, so a moved store stays intact.
//!
//! Applying a `.wim` on Linux turns links captured relative to the image root
//! into absolute paths under the folder they were applied to (as
//! `wimlib-imagex apply` does); inside the store that folder is a temporary
//! staging folder, so such targets would point nowhere once published.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Rewrites, under `tree`, every symbolic link whose target is an absolute
/// path inside `applied_root` (the path the tree was applied to). Returns how
/// many links were rewritten.
pub fn make_internal_links_relative(tree: &Path, applied_root: &Path) -> io::Result<u64> {
    let mut count = 0;
    fix_dir(tree, tree, applied_root, &mut count)?;
    Ok(count)
}

fn fix_dir(dir: &Path, tree: &Path, applied_root: &Path, count: &mut u64) -> io::Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        let ft = item.file_type()?;
        if ft.is_dir() {
            fix_dir(&path, tree, applied_root, count)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            let Ok(inside) = target.strip_prefix(applied_root) else {
                continue;
            };
            if !target.is_absolute() || inside.components().any(|c| c == Component::ParentDir) {
                continue;
            }
            let link_dir = path
                .parent()
                .and_then(|p| p.strip_prefix(tree).ok())
                .unwrap_or(Path::new(""));
            let relative = relative_path(link_dir, inside);
            replace_symlink(&path, &relative)?;
            *count += 1;
        }
    }
    Ok(())
}

/// The path from folder `from` to `to`, both relative to the same root.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in to.iter().skip(common) {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(unix)]
fn replace_symlink(link: &Path, target: &Path) -> io::Result<()> {
    // Create beside, then rename over: the link is never missing.
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = link.with_file_name(format!(".{name}.relink"));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)
}

#[cfg(not(unix))]
fn replace_symlink(_link: &Path, _target: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_into_the_tree_become_relative() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("Files");
        fs::create_dir_all(tree.join("Windows/System32")).expect("mkdir");
        fs::write(tree.join("Windows/System32/a.txt"), b"a").expect("write");
        symlink(tree.join("Windows/System32/a.txt"), tree.join("top")).expect("link");
        symlink(tree.join("Windows"), tree.join("Windows/System32/up")).expect("link");
        symlink("/etc/passwd", tree.join("outside")).expect("link");
        symlink("System32/a.txt", tree.join("Windows/rel")).expect("link");

        assert_eq!(make_internal_links_relative(&tree, &tree).expect("fix"), 2);
        let read = |p: &str| fs::read_link(tree.join(p)).expect("readlink");
        assert_eq!(read("top"), PathBuf::from("Windows/System32/a.txt"));
        assert_eq!(read("Windows/System32/up"), PathBuf::from(".."));
        assert_eq!(read("outside"), PathBuf::from("/etc/passwd"));
        assert_eq!(read("Windows/rel"), PathBuf::from("System32/a.txt"));
        assert_eq!(fs::read(tree.join("top")).expect("follow"), b"a");
    }
}
