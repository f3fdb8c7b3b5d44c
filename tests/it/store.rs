//! The image store end to end: offline installs compared with wimlib's own
//! apply, listing, removal, verification, moving the store, crash safety
//! (`kill -9` at each stage of an install) and concurrent commands.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Stdio};

use sha2::{Digest, Sha256};

use crate::common::{assert_exit, cmd, json_lines, run, stderr, wimlib};

/// A tree that looks like a small base OS image: nested folders, an empty
/// file and folder, a hard link, a relative link and an absolute link into
/// the tree (which capture records relative to the image root).
fn make_tree(root: &Path, flavour: &str) {
    let sys = root.join("Windows/System32");
    fs::create_dir_all(sys.join("config")).expect("mkdir");
    fs::create_dir_all(root.join("Program Files/Empty")).expect("mkdir");
    fs::create_dir_all(root.join("Windows/WinSxS")).expect("mkdir");
    fs::write(
        sys.join("kernel32.dll"),
        format!("kernel32 {flavour}\n").repeat(500),
    )
    .expect("write");
    fs::write(sys.join("config/SYSTEM"), format!("hive {flavour}")).expect("write");
    fs::write(sys.join("config/EMPTY"), b"").expect("write");
    fs::write(root.join("License.txt"), b"sample license\n").expect("write");
    fs::hard_link(
        sys.join("kernel32.dll"),
        root.join("Windows/WinSxS/kernel32.dll"),
    )
    .expect("link");
    std::os::unix::fs::symlink("Windows/System32", root.join("sys32")).expect("symlink");
    std::os::unix::fs::symlink(sys.join("config"), root.join("Windows/config-link"))
        .expect("symlink");
}

/// Captures a `.wim` with an OS image and, with `utility_vm`, a second image.
fn make_wim(dir: &Path, file_name: &str, version: Option<&str>, utility_vm: bool) -> PathBuf {
    let os = dir.join(format!("{file_name}.os"));
    make_tree(&os, file_name);
    let wim = dir.join(file_name);
    let wim_s = wim.to_str().expect("utf-8 path");
    wimlib(&[
        "capture",
        os.to_str().expect("utf-8"),
        wim_s,
        "OS",
        "--compress=none",
    ]);
    if utility_vm {
        let uvm = dir.join(format!("{file_name}.uvm"));
        fs::create_dir_all(uvm.join("EFI/Boot")).expect("mkdir");
        fs::write(uvm.join("EFI/Boot/bootx64.efi"), b"boot").expect("write");
        wimlib(&["append", uvm.to_str().expect("utf-8"), wim_s, "UtilityVM"]);
    }
    if let Some(v) = version {
        let parts: Vec<&str> = v.split('.').collect();
        let names = ["MAJOR", "MINOR", "BUILD", "SPBUILD"];
        let mut args = vec!["info".to_string(), wim_s.to_string(), "1".to_string()];
        for (name, value) in names.iter().zip(parts) {
            args.push("--image-property".into());
            args.push(format!("WINDOWS/VERSION/{name}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wimlib(&args);
    }
    wim
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read")))
}

/// Lexically resolves `..` and `.`.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A tree as (relative path → what it is): directories, file contents with
/// their hard-link group, and where symbolic links lead (inside the tree as
/// `in:<path>`, else the target as written) — so a link stored relative and
/// one stored absolute into the same tree compare equal.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    describe_dir(root, root, &mut out, &mut inodes);
    out
}

fn describe_dir(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<u64, String>,
) {
    use std::os::unix::fs::MetadataExt;
    let mut items: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    items.sort();
    for path in items {
        let rel = path
            .strip_prefix(root)
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            let abs = normalize(&path.parent().expect("parent").join(&target));
            let what = match abs.strip_prefix(root) {
                Ok(inside) => format!("link in:{}", inside.display()),
                Err(_) => format!("link {}", target.display()),
            };
            out.insert(rel, what);
        } else if meta.is_dir() {
            out.insert(rel, "dir".into());
            describe_dir(root, &path, out, inodes);
        } else {
            let group = if meta.nlink() > 1 {
                inodes
                    .entry(meta.ino())
                    .or_insert_with(|| rel.clone())
                    .clone()
            } else {
                String::new()
            };
            out.insert(rel, format!("file {} {group}", sha256_hex(&path)));
        }
    }
}

fn store_dir(home: &Path) -> PathBuf {
    home.join("images")
}

fn get_images(home: &Path) -> Vec<serde_json::Value> {
    let o = run(home, &["Get-ContainerImage"]);
    assert_exit(&o, 0);
    json_lines(&o)
}

/// Every folder in the store is a listed image (or the store's own files),
/// nothing is left in staging, and every listed image is intact.
#[track_caller]
fn assert_store_consistent(home: &Path, store: &Path) {
    let listed: Vec<String> = get_images(home)
        .iter()
        .map(|o| o["FullName"].as_str().expect("FullName").to_string())
        .collect();
    if let Ok(items) = fs::read_dir(store) {
        for item in items {
            let name = item
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            match name.as_str() {
                "index.json" | ".cache" | ".trash" => {}
                ".staging" => assert_eq!(
                    fs::read_dir(store.join(".staging"))
                        .expect("staging")
                        .count(),
                    0,
                    "staging must be empty after cleanup"
                ),
                other => assert!(
                    listed.iter().any(|l| l == other),
                    "{other} is in the store but not listed ({listed:?})"
                ),
            }
        }
    }
    if !listed.is_empty() {
        let o = run(home, &["Test-ContainerImage"]);
        assert_exit(&o, 0);
        for t in json_lines(&o) {
            assert_eq!(t["IsValid"], true, "{t}");
        }
    }
}

#[test]
fn offline_install_matches_wimlib_apply_and_records_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(
        tmp.path(),
        "Base-10-0-1-2.wim",
        Some("10.0.14300.1010"),
        true,
    );

    let o = run(
        &home,
        &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    let objects = json_lines(&o);
    assert_eq!(objects.len(), 1, "one installed image: {objects:?}");
    let img = &objects[0];
    assert_eq!(img["Name"], "Base");
    assert_eq!(
        img["Version"], "10.0.14300.1010",
        "the XML version wins over the file name"
    );
    assert_eq!(img["Publisher"], "CN=Microsoft");
    assert_eq!(img["FullName"], "CN=Microsoft_Base_10.0.14300.1010");
    assert_eq!(img["IsOSImage"], true);
    assert_eq!(img["Id"], sha256_hex(&wim));
    let path = PathBuf::from(img["Path"].as_str().expect("Path"));
    assert_eq!(
        path,
        store_dir(&home).join("CN=Microsoft_Base_10.0.14300.1010")
    );
    assert!(img["Created"].as_str().expect("Created").ends_with('Z'));

    // Files/ is exactly what wimlib applies for image 1, UtilityVM/Files/ for image 2.
    let reference = tmp.path().join("reference");
    wimlib(&[
        "apply",
        wim.to_str().expect("utf-8"),
        "1",
        reference.to_str().expect("utf-8"),
    ]);
    assert_eq!(describe(&path.join("Files")), describe(&reference));
    let reference_uvm = tmp.path().join("reference-uvm");
    wimlib(&[
        "apply",
        wim.to_str().expect("utf-8"),
        "2",
        reference_uvm.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        describe(&path.join("UtilityVM/Files")),
        describe(&reference_uvm)
    );
    assert!(
        path.join("wim.xml").is_file(),
        "the .wim's XML is kept beside Files/"
    );

    // The absolute link into the image is stored relative, so it survives a move.
    let link = fs::read_link(path.join("Files/Windows/config-link")).expect("link");
    assert!(link.is_relative(), "{link:?} should be relative");

    // Size: the installed bytes, the hard-linked kernel32.dll counted once.
    let kernel = fs::metadata(path.join("Files/Windows/System32/kernel32.dll"))
        .expect("kernel")
        .len();
    let expected = kernel + "hive Base-10-0-1-2.wim".len() as u64 + 15 + 4;
    assert_eq!(img["Size"], expected);

    assert_eq!(
        get_images(&home),
        objects,
        "Get-ContainerImage shows the same object"
    );
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn names_versions_publishers_and_reinstalling() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "NanoServer-10-0-14300-1010.wim", None, false);
    let wim_s = wim.to_str().expect("utf-8");

    let o = run(&home, &["Install-ContainerOSImage", wim_s]);
    assert_exit(&o, 0);
    assert_eq!(
        json_lines(&o)[0]["FullName"],
        "CN=Microsoft_NanoServer_10.0.14300.1010"
    );

    let again = run(&home, &["Install-ContainerOSImage", wim_s]);
    assert_exit(&again, 1);
    assert!(
        stderr(&again).contains("already installed; use -Force"),
        "{}",
        stderr(&again)
    );
    let forced = run(&home, &["Install-ContainerOSImage", wim_s, "-Force"]);
    assert_exit(&forced, 0);

    let o = run(
        &home,
        &[
            "Install-ContainerOSImage",
            "-WimPath",
            wim_s,
            "-Name",
            "Demo",
            "-Version",
            "1.0",
            "-Publisher",
            "Acme",
        ],
    );
    assert_exit(&o, 0);
    let img = &json_lines(&o)[0];
    assert_eq!(img["FullName"], "CN=Acme_Demo_1.0.0.0");
    assert_eq!(img["Version"], "1.0.0.0");
    assert_eq!(img["Publisher"], "CN=Acme");

    let o = run(
        &home,
        &[
            "Install-ContainerOSImage",
            wim_s,
            "-Name",
            "Other",
            "-WhatIf",
        ],
    );
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("What if"), "{}", stderr(&o));
    assert_eq!(get_images(&home).len(), 2, "-WhatIf installs nothing");

    // Filters.
    let o = run(&home, &["Get-ContainerImage", "-Publisher", "Acme"]);
    assert_eq!(json_lines(&o).len(), 1);
    let o = run(&home, &["Get-ContainerImage", "*o*", "-Version", "1.0"]);
    assert_eq!(json_lines(&o)[0]["Name"], "Demo");
    let o = run(&home, &["Get-ContainerImage", "Missing"]);
    assert_exit(&o, 1);
    let o = run(&home, &["Get-Package", "-ProviderName", "ContainerImage"]);
    assert_eq!(json_lines(&o).len(), 2);

    let bad = run(
        &home,
        &[
            "Install-ContainerOSImage",
            tmp.path().join("nope.wim").to_str().expect("utf-8"),
        ],
    );
    assert_exit(&bad, 1);
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn uninstall_and_remove_rules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Nano-1-0-0-0.wim", None, false);
    let wim_s = wim.to_str().expect("utf-8");
    for version in ["1.0", "2.0", "3.0"] {
        assert_exit(
            &run(
                &home,
                &["Install-ContainerOSImage", wim_s, "-Version", version],
            ),
            0,
        );
    }

    let o = run(&home, &["Uninstall-ContainerOSImage", "-Name", "Nano"]);
    assert_exit(&o, 1);
    for v in ["1.0.0.0", "2.0.0.0", "3.0.0.0"] {
        assert!(
            stderr(&o).contains(&format!("CN=Microsoft_Nano_{v}")),
            "{}",
            stderr(&o)
        );
    }

    let o = run(&home, &["Remove-ContainerImage", "Nano", "-Version", "1.0"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("Uninstall-ContainerOSImage"),
        "{}",
        stderr(&o)
    );

    let o = run(
        &home,
        &["Uninstall-ContainerOSImage", "CN=Microsoft_Nano_1.0.0.0"],
    );
    assert_exit(&o, 0);
    assert!(!store_dir(&home).join("CN=Microsoft_Nano_1.0.0.0").exists());

    // Pipeline: Get | Uninstall.
    let listed = run(&home, &["Get-ContainerImage", "Nano", "-Version", "2.0"]);
    let mut c = cmd(&home);
    c.args(["Uninstall-ContainerOSImage"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&listed.stdout).expect("pipe");
    }
    let o = child.wait_with_output().expect("wait");
    assert_exit(&o, 0);
    let left: Vec<_> = get_images(&home)
        .iter()
        .map(|o| o["FullName"].clone())
        .collect();
    assert_eq!(left, vec![serde_json::json!("CN=Microsoft_Nano_3.0.0.0")]);

    let o = run(
        &home,
        &[
            "Uninstall-Package",
            "-ProviderName",
            "ContainerImage",
            "-Name",
            "Nano",
        ],
    );
    assert_exit(&o, 0);
    assert!(get_images(&home).is_empty());
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn test_container_image_finds_modified_deleted_and_added_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    let o = run(
        &home,
        &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    let path = PathBuf::from(json_lines(&o)[0]["Path"].as_str().expect("Path"));

    let ok = run(&home, &["Test-ContainerImage"]);
    assert_exit(&ok, 0);
    assert_eq!(json_lines(&ok)[0]["IsValid"], true);

    fs::write(path.join("Files/License.txt"), b"changed").expect("modify");
    fs::remove_file(path.join("Files/Windows/System32/config/SYSTEM")).expect("delete");
    fs::write(path.join("Files/Windows/added.dll"), b"new").expect("add");
    let bad = run(&home, &["Test-ContainerImage", "Base"]);
    assert_exit(&bad, 1);
    let t = &json_lines(&bad)[0];
    assert_eq!(t["IsValid"], false);
    assert_eq!(
        t["Problems"],
        serde_json::json!([
            "changed: Files/License.txt",
            "missing: Files/Windows/System32/config/SYSTEM",
            "extra: Files/Windows/added.dll"
        ])
    );
}

#[test]
fn a_moved_store_keeps_working() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, true);
    assert_exit(
        &run(
            &home,
            &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
        ),
        0,
    );

    let dest = tmp.path().join("moved/images");
    let o = run(
        &home,
        &[
            "Move-ContainerImageRepository",
            dest.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["Path"], dest.to_str().expect("utf-8"));
    assert!(!store_dir(&home).exists(), "the old store is gone");

    let images = get_images(&home);
    assert_eq!(images.len(), 1);
    let path = PathBuf::from(images[0]["Path"].as_str().expect("Path"));
    assert!(path.starts_with(&dest));
    assert_eq!(
        fs::read(path.join("Files/Windows/config-link/SYSTEM")).expect("link still resolves"),
        b"hive Base-1-0.wim"
    );
    assert_store_consistent(&home, &dest);

    let again = run(
        &home,
        &[
            "Move-ContainerImageRepository",
            dest.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&again, 1);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    assert_exit(
        &run(&home, &["Uninstall-ContainerOSImage", "-Name", "Base"]),
        0,
    );
    assert!(get_images(&home).is_empty());
}

/// Starts a command that pauses at `stage` (the test-only hook) and returns
/// once it says it is there.
fn spawn_paused(home: &Path, args: &[&str], stage: &str) -> Child {
    let mut c = cmd(home);
    c.args(args)
        .env("CONTAINERIMAGE_TEST_PAUSE_AT", stage)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    for line in BufReader::new(err).lines() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(&format!("test pause at {stage}")) {
            return child;
        }
    }
    let status = child.wait().expect("wait");
    panic!("the command ended ({status}) without pausing at {stage}:\n{seen}");
}

fn kill_9(mut child: Child) {
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

#[test]
fn kill_9_at_any_stage_of_an_install_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, true);
    let wim_s = wim.to_str().expect("utf-8");
    for (stage, listed_after) in [
        ("staging", false),
        ("applied", false),
        ("staged", false),
        ("published", false),
        ("recorded", true),
    ] {
        let home = tmp.path().join(format!("home-{stage}"));
        let child = spawn_paused(&home, &["Install-ContainerOSImage", wim_s], stage);
        kill_9(child);
        let images = get_images(&home);
        assert_eq!(
            images.len(),
            usize::from(listed_after),
            "killed at {stage}: listed {images:?}"
        );
        assert_store_consistent(&home, &store_dir(&home));
        // The store works normally afterwards.
        let o = run(&home, &["Install-ContainerOSImage", wim_s, "-Force"]);
        assert_exit(&o, 0);
        assert_store_consistent(&home, &store_dir(&home));
    }

    // A forced reinstall killed after publishing: the image is either the old
    // one, intact, or absent; never a mix.
    let home = tmp.path().join("home-reinstall");
    assert_exit(&run(&home, &["Install-ContainerOSImage", wim_s]), 0);
    let child = spawn_paused(
        &home,
        &["Install-ContainerOSImage", wim_s, "-Force"],
        "published",
    );
    kill_9(child);
    assert_store_consistent(&home, &store_dir(&home));

    // An uninstall killed half way.
    let home = tmp.path().join("home-remove");
    assert_exit(&run(&home, &["Install-ContainerOSImage", wim_s]), 0);
    let child = spawn_paused(
        &home,
        &["Uninstall-ContainerOSImage", "-Name", "Base"],
        "removing",
    );
    kill_9(child);
    assert!(
        get_images(&home).is_empty(),
        "a half-removed image is not listed"
    );
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn kill_9_during_a_move_leaves_the_store_usable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    for stage in ["move-started", "move-renamed"] {
        let home = tmp.path().join(format!("home-{stage}"));
        assert_exit(
            &run(
                &home,
                &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
            ),
            0,
        );
        let dest = tmp.path().join(format!("dest-{stage}"));
        let child = spawn_paused(
            &home,
            &[
                "Move-ContainerImageRepository",
                dest.to_str().expect("utf-8"),
            ],
            stage,
        );
        kill_9(child);
        let images = get_images(&home);
        assert_eq!(images.len(), 1, "killed at {stage}: {images:?}");
        let path = PathBuf::from(images[0]["Path"].as_str().expect("Path"));
        let store = path.parent().expect("store").to_path_buf();
        assert_store_consistent(&home, &store);
        assert_exit(
            &run(&home, &["Uninstall-ContainerOSImage", "-Name", "Base"]),
            0,
        );
    }
}

#[test]
fn concurrent_commands_are_serialised() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wims: Vec<PathBuf> = (0..3)
        .map(|i| make_wim(tmp.path(), &format!("Image{i}-1-0.wim"), None, false))
        .collect();

    // One install holds the store; a second waits for it, says so, then runs.
    let first = spawn_paused(
        &home,
        &["Install-ContainerOSImage", wims[0].to_str().expect("utf-8")],
        "staged",
    );
    let mut second = cmd(&home);
    second
        .args(["Install-ContainerOSImage", wims[1].to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let second = second.spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(500));
    kill_9(first);
    let o = second.wait_with_output().expect("wait");
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("waiting"), "{}", stderr(&o));

    // Several at once, same and different images.
    let children: Vec<Child> = [&wims[0], &wims[2], &wims[2]]
        .iter()
        .map(|w| {
            let mut c = cmd(&home);
            c.args(["Install-ContainerOSImage", w.to_str().expect("utf-8")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().expect("spawn")
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| {
            c.wait_with_output()
                .expect("wait")
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(codes[0], 0);
    let mut same = [codes[1], codes[2]];
    same.sort();
    assert_eq!(
        same,
        [0, 1],
        "one of two installs of the same image finds it installed"
    );

    let mut names: Vec<String> = get_images(&home)
        .iter()
        .map(|o| o["Name"].as_str().expect("Name").to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["Image0", "Image1", "Image2"]);
    assert_store_consistent(&home, &store_dir(&home));
}

/// A command detached from any controlling terminal (`setsid`), as in a
/// scheduled job, so an untrusted source cannot be confirmed interactively.
fn run_without_terminal(home: &Path, args: &[&str]) -> std::process::Output {
    crate::common::require_tool("setsid");
    let c = cmd(home);
    let program = c.get_program().to_owned();
    let mut detached = std::process::Command::new("setsid");
    detached.arg("-w").arg(program).args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => detached.env(k, v),
            None => detached.env_remove(k),
        };
    }
    detached.stdin(Stdio::null()).output().expect("setsid runs")
}

fn write_feed(dir: &Path, name: &str, version: &str, wim: &Path) {
    let size = fs::metadata(wim).expect("wim").len();
    let sha = sha256_hex(wim);
    let file = wim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    fs::write(
        dir.join("feed.xml"),
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<ContainerImageFeed xmlns="urn:containerimage:feed:1">
  <Image>
    <Name>{name}</Name>
    <Version>{version}</Version>
    <Description>test image</Description>
    <Size>{size}</Size>
    <Sha256>{sha}</Sha256>
    <Location>{file}</Location>
  </Image>
</ContainerImageFeed>
"#
        ),
    )
    .expect("feed.xml");
}

#[test]
fn install_from_a_feed_over_http_with_trust_rules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let feed = tmp.path().join("feed");
    fs::create_dir_all(&feed).expect("mkdir");
    let wim = make_wim(&feed, "WebImage.wim", Some("2.0.0.1"), true);
    write_feed(&feed, "WebImage", "2.0.0.1", &wim);
    let server = crate::common::server::TestServer::start(&feed);
    let url = server.url("feed.xml");
    assert_exit(
        &run(
            &home,
            &["Register-PackageSource", "-Name", "Web", "-Location", &url],
        ),
        0,
    );

    // Untrusted and no terminal: refused, naming both ways out.
    let o = run_without_terminal(&home, &["Install-ContainerImage", "WebImage"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("-Force") && err.contains("Set-PackageSource"),
        "{err}"
    );
    assert!(get_images(&home).is_empty());
    assert_eq!(
        server.requests("WebImage.wim"),
        0,
        "nothing downloaded before approval"
    );

    // -Force skips the question; the first download attempt is cut off and resumed.
    server.faults().drop_after(10_000, 1);
    let o = run(
        &home,
        &["Install-ContainerImage", "-Name", "WebImage", "-Force"],
    );
    assert_exit(&o, 0);
    let img = &json_lines(&o)[0];
    assert_eq!(img["FullName"], "CN=Microsoft_WebImage_2.0.0.1");
    assert_eq!(img["Id"], sha256_hex(&wim));
    let path = PathBuf::from(img["Path"].as_str().expect("Path"));
    let reference = tmp.path().join("reference");
    wimlib(&[
        "apply",
        wim.to_str().expect("utf-8"),
        "1",
        reference.to_str().expect("utf-8"),
    ]);
    assert_eq!(describe(&path.join("Files")), describe(&reference));
    let cache = store_dir(&home).join(".cache");
    assert_eq!(
        fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0),
        0,
        "the downloaded .wim is deleted once installed"
    );

    // Trusted source, Find | Install: already installed is an error.
    assert_exit(
        &run(&home, &["Set-PackageSource", "-Name", "Web", "-Trusted"]),
        0,
    );
    let found = run(&home, &["Find-ContainerImage", "WebImage"]);
    assert_exit(&found, 0);
    let mut c = cmd(&home);
    c.arg("Install-ContainerImage")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&found.stdout)
            .expect("pipe");
    }
    let o = child.wait_with_output().expect("wait");
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("already installed"), "{}", stderr(&o));

    let o = run(&home, &["Install-ContainerImage", "NoSuchImage"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("No match was found"), "{}", stderr(&o));
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn disk_full_during_an_install_lists_nothing_and_leaves_nothing() {
    crate::common::require_tool("unshare");
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = tmp.path().join("Big.os");
    fs::create_dir_all(big.join("Windows")).expect("mkdir");
    fs::write(big.join("Windows/big.bin"), vec![7u8; 600_000]).expect("write");
    fs::write(big.join("small.txt"), b"small").expect("write");
    let wim = tmp.path().join("Big-1-0.wim");
    wimlib(&[
        "capture",
        big.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "Big",
        "--compress=none",
    ]);
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");

    // A 256 KiB file system as the home, in a private mount namespace
    // (works unprivileged where user namespaces are enabled).
    let script = r#"
        mount -t tmpfs -o size=256k tmpfs "$1" || exit 99
        "$2" Install-ContainerOSImage "$3"; echo "install=$?"
        "$2" Get-ContainerImage; echo "get=$?"
        echo "staging=$(ls -A "$1/images/.staging" | wc -l)"
        echo "folders=$(ls "$1/images" | grep -c CN=)"
    "#;
    let o = cmd(&home)
        .get_envs()
        .fold(std::process::Command::new("unshare"), |mut c, (k, v)| {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
            c
        })
        .args(["--map-root-user", "--mount", "sh", "-c", script, "sh"])
        .arg(&home)
        .arg(crate::common::bin_path())
        .arg(&wim)
        .output()
        .expect("unshare runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = stderr(&o);
    assert_ne!(
        o.status.code(),
        Some(99),
        "cannot mount a tmpfs in a user namespace:\n{err}"
    );
    assert!(
        out.contains("install=1"),
        "the install must fail:\n{out}\n{err}"
    );
    assert!(
        err.contains("No space left"),
        "the error names the cause:\n{err}"
    );
    assert!(out.contains("get=0"), "{out}\n{err}");
    assert!(!out.contains("\"FullName\""), "nothing is listed:\n{out}");
    assert!(out.contains("staging=0"), "staging is cleaned:\n{out}");
    assert!(
        out.contains("folders=0"),
        "no image folder is left:\n{out}\n{err}"
    );
}

/// Runs a command on a pseudo-terminal (`script`), typing `answer` into it.
fn run_on_terminal(home: &Path, args: &[&str], answer: &str) -> std::process::Output {
    use std::io::Write;
    crate::common::require_tool("script");
    let line = std::iter::once(crate::common::bin_path().display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let c = cmd(home);
    let mut on_tty = std::process::Command::new("script");
    on_tty.args(["-qec", &line, "/dev/null"]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => on_tty.env(k, v),
            None => on_tty.env_remove(k),
        };
    }
    let mut child = on_tty
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("type the answer");
    child.wait_with_output().expect("wait")
}

#[test]
fn untrusted_sources_ask_on_the_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let feed = tmp.path().join("feed");
    fs::create_dir_all(&feed).expect("mkdir");
    let wim = make_wim(&feed, "Asked.wim", Some("1.2.3.4"), false);
    write_feed(&feed, "Asked", "1.2.3.4", &wim);
    let location = feed.to_str().expect("utf-8");
    assert_exit(
        &run(
            &home,
            &[
                "Register-PackageSource",
                "-Name",
                "Local",
                "-Location",
                location,
            ],
        ),
        0,
    );

    let o = run_on_terminal(&home, &["Install-ContainerImage", "Asked"], "n\n");
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        screen.contains("[Y] Yes  [A] Yes to All  [N] No  [L] No to All"),
        "{screen}"
    );
    assert!(screen.contains("declined"), "{screen}");
    assert_eq!(o.status.code(), Some(1), "{screen}");
    assert!(
        get_images(&home).is_empty(),
        "a declined install installs nothing"
    );

    let o = run_on_terminal(&home, &["Install-ContainerImage", "Asked"], "A\n");
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{screen}");
    let images = get_images(&home);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["FullName"], "CN=Microsoft_Asked_1.2.3.4");
}

/// Runs `script` (with `$1`.. = `args`) in a private mount namespace where it
/// may mount a tmpfs (works unprivileged where user namespaces are enabled).
fn run_in_mount_namespace(home: &Path, script: &str, args: &[&Path]) -> std::process::Output {
    crate::common::require_tool("unshare");
    let c = cmd(home);
    let mut ns = std::process::Command::new("unshare");
    ns.args(["--map-root-user", "--mount", "sh", "-c", script, "sh"]);
    ns.args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => ns.env(k, v),
            None => ns.env_remove(k),
        };
    }
    ns.stdin(Stdio::null()).output().expect("unshare runs")
}

#[test]
fn moving_to_another_file_system_copies_and_survives_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, true);
    assert_exit(
        &run(
            &home,
            &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
        ),
        0,
    );
    let other = tmp.path().join("other-fs");
    fs::create_dir_all(&other).expect("mkdir");
    let log = tmp.path().join("move.log");

    let script = r#"
        mount -t tmpfs -o size=16m tmpfs "$1" || exit 99
        # Killed once the copy is complete but before it is renamed into place.
        CONTAINERIMAGE_TEST_PAUSE_AT=move-copied "$2" Move-ContainerImageRepository "$1/store" 2>"$3" &
        pid=$!
        n=0
        until grep -q "test pause at move-copied" "$3"; do
            n=$((n + 1)); [ $n -gt 3000 ] && { cat "$3"; exit 98; }
            sleep 0.1
        done
        kill -9 $pid; wait $pid
        echo "after-kill:"; "$2" Get-ContainerImage; ls -A "$1"
        echo "move:"; "$2" Move-ContainerImageRepository "$1/store"; echo "move=$?"
        echo "get:"; "$2" Get-ContainerImage
        echo "test:"; "$2" Test-ContainerImage; echo "test=$?"
        echo "links:"; cat "$1/store/CN=Microsoft_Base_1.0.0.0/Files/Windows/config-link/SYSTEM"; echo
        echo "hardlinks:"; stat -c %h "$1/store/CN=Microsoft_Base_1.0.0.0/Files/Windows/WinSxS/kernel32.dll"
        echo "uninstall:"; "$2" Uninstall-ContainerOSImage -Name Base; echo "uninstall=$?"
    "#;
    let o = run_in_mount_namespace(&home, script, &[&other, &crate::common::bin_path(), &log]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = stderr(&o);
    assert_ne!(
        o.status.code(),
        Some(99),
        "cannot mount a tmpfs in a user namespace:\n{err}"
    );
    assert_ne!(
        o.status.code(),
        Some(98),
        "the move never paused:\n{out}\n{err}"
    );
    let section = |name: &str| {
        out.split(&format!("{name}:\n"))
            .nth(1)
            .and_then(|s| {
                s.split('\n')
                    .take_while(|l| !l.ends_with(':'))
                    .collect::<Vec<_>>()
                    .into()
            })
            .map(|lines: Vec<&str>| lines.join("\n"))
            .unwrap_or_default()
    };
    let after_kill = section("after-kill");
    assert!(
        after_kill.contains("CN=Microsoft_Base_1.0.0.0")
            && after_kill.contains(&store_dir(&home).display().to_string()),
        "after the kill the store is still at its old place:\n{out}\n{err}"
    );
    assert!(
        !after_kill.contains("store.moving"),
        "the partial copy was removed:\n{out}"
    );
    assert!(out.contains("move=0"), "{out}\n{err}");
    let get = section("get");
    assert!(
        get.contains(&format!(
            "{}/store/CN=Microsoft_Base_1.0.0.0",
            other.display()
        )),
        "{out}"
    );
    assert!(out.contains("test=0"), "{out}\n{err}");
    assert!(section("links").starts_with("hive Base-1-0.wim"), "{out}");
    assert_eq!(
        section("hardlinks").trim(),
        "2",
        "hard links survive the copy:\n{out}"
    );
    assert!(out.contains("uninstall=0"), "{out}\n{err}");
    assert!(!store_dir(&home).exists(), "the old copy is deleted");
}

#[test]
fn the_committed_sample_feed_installs_and_the_quickstart_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sample = root.join("manifests/sample");
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let location = sample.to_str().expect("utf-8");
    assert_exit(
        &run(
            &home,
            &["Register-PackageSource", "Sample", location, "-Trusted"],
        ),
        0,
    );
    let o = run(&home, &["Install-ContainerImage", "NanoServerSample"]);
    assert_exit(&o, 0);
    let img = &json_lines(&o)[0];
    let wim = sample.join("NanoServerSample-10-0-14300-1010.wim");
    assert_eq!(img["Id"], sha256_hex(&wim));
    assert!(
        fs::metadata(&wim).expect("sample").len() < 200 * 1024,
        "the sample stays small"
    );
    let path = PathBuf::from(img["Path"].as_str().expect("Path"));
    assert!(path.join("Files/Windows/System32/config/SYSTEM").is_file());
    assert!(path
        .join("UtilityVM/Files/EFI/Microsoft/Boot/BCD")
        .is_file());

    let quick_home = tmp.path().join("quick");
    let o = std::process::Command::new(root.join("scripts/quickstart.sh"))
        .env("CONTAINERIMAGE_BIN", crate::common::bin_path())
        .env("CONTAINERIMAGE_HOME", &quick_home)
        .stdin(Stdio::null())
        .output()
        .expect("quickstart runs");
    assert_exit(&o, 0);
    let shown = String::from_utf8_lossy(&o.stdout);
    for step in [
        "Find-ContainerImage",
        "Save-ContainerImage",
        "Install-ContainerImage",
        "Uninstall-ContainerOSImage",
    ] {
        assert!(
            shown.contains(step),
            "the quickstart shows {step}:\n{shown}"
        );
    }
    assert!(
        get_images(&quick_home).is_empty(),
        "the quickstart removes what it installed"
    );
}
