//! Link targets as `wimlib-imagex apply` writes them on Linux: crafted WIMs
//! hold symbolic links and junctions with every kind of Windows target
//! (drive paths, `\??\` and `\\?\` prefixes, UNC, volume GUIDs, relative,
//! rooted, empty), fixed at capture or not, in files with and without the
//! RP_FIX header flag; each applied link must read back as wimlib's does.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::common::{assert_exit, run, wimlib};
use crate::wim_craft::{link_data, write_wim, Node, FLAG_RP_FIX, TAG_SYMLINK};

/// Reparse flag: the target was not made relative to the image root.
const NOT_FIXED: u16 = 1;

fn cases() -> Vec<Node> {
    let mut n = Vec::new();
    let targets = [
        "C:\\etc\\passwd",
        "\\??\\C:\\x",
        "\\??\\C:\\Windows\\System32",
        "\\??\\C:\\",
        "\\??\\C:",
        "\\??\\UNC\\server\\share",
        "\\??\\UNC\\server\\share\\dir\\file",
        "\\\\server\\share",
        "\\\\?\\C:\\y",
        "\\??\\Volume{01234567-89ab-cdef-0123-456789abcdef}\\z",
        "\\rooted\\no\\drive",
        "C:drive-relative",
        "D:\\other\\drive",
        "\\??\\",
        "",
        "/forward/slashes",
        "a\\..\\..\\b",
    ];
    for (i, t) in targets.iter().enumerate() {
        n.push(Node::symlink(&format!("s{i:02}-fixed"), t, false, 0));
        n.push(Node::symlink(
            &format!("s{i:02}-notfixed"),
            t,
            false,
            NOT_FIXED,
        ));
        n.push(Node::symlink(&format!("s{i:02}-relflag"), t, true, 0));
        n.push(Node::junction(&format!("j{i:02}-fixed"), t, 0));
        n.push(Node::junction(&format!("j{i:02}-notfixed"), t, NOT_FIXED));
    }
    for (i, t) in ["..\\up\\file", "sibling", "dir\\child", ".\\dot", "..", "."]
        .iter()
        .enumerate()
    {
        n.push(Node::symlink(&format!("r{i:02}"), t, true, 0));
    }
    // Substitute and print names that differ, or one of them empty.
    let mut odd = |name: &str, sub: &str, print: &str| {
        let mut s = Node::symlink(name, "", false, 0);
        s.reparse = Some((TAG_SYMLINK, 0, link_data(TAG_SYMLINK, sub, print, false)));
        n.push(s);
    };
    odd("p-differ", "\\??\\C:\\sub", "C:\\print");
    odd("p-nosub", "", "C:\\print-only");
    odd("p-noprint", "\\??\\C:\\sub-only", "");
    let mut deep = Node::dir("deep", Vec::new());
    deep.children
        .push(Node::symlink("in-deep", "\\??\\C:\\x\\y", false, 0));
    deep.children
        .push(Node::symlink("in-deep-rel", "..\\s00", true, 0));
    n.push(deep);
    n
}

/// `readlink` of every link directly under `root` and in `deep/`, with the
/// root's absolute path written as `<ROOT>`; `None` where no link exists.
fn links(root: &Path, names: &[String]) -> BTreeMap<String, Option<String>> {
    let root_text = fs::canonicalize(root)
        .expect("canonical root")
        .to_string_lossy()
        .into_owned();
    names
        .iter()
        .map(|n| {
            let target = fs::read_link(root.join(n))
                .ok()
                .map(|t| t.to_string_lossy().replace(&root_text, "<ROOT>"));
            (n.clone(), target)
        })
        .collect()
}

fn check(header_flags: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = cases();
    let mut names: Vec<String> = nodes
        .iter()
        .filter(|n| n.name != "deep")
        .map(|n| n.name.clone())
        .collect();
    names.push("deep/in-deep".into());
    names.push("deep/in-deep-rel".into());
    let wim = dir.path().join("links.wim");
    write_wim(&wim, &Node::dir("", nodes), &[], header_flags);
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    let o = run(
        &dir.path().join("home"),
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            wim.to_str().expect("utf-8"),
            "-Index",
            "1",
            "-ApplyPath",
            ours.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    wimlib(&[
        "apply",
        wim.to_str().expect("utf-8"),
        "1",
        theirs.to_str().expect("utf-8"),
    ]);
    let (a, b) = (links(&ours, &names), links(&theirs, &names));
    let differ: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: ours {v:?}, wimlib {:?}", b.get(k).cloned().flatten()))
        .collect();
    assert!(
        differ.is_empty(),
        "link targets differ from wimlib's:\n{}",
        differ.join("\n")
    );
}

#[test]
fn link_targets_match_wimlib_with_rp_fix() {
    check(FLAG_RP_FIX);
}

#[test]
fn link_targets_match_wimlib_without_rp_fix() {
    check(0);
}
