//! The image store end to end, and the helpers its tests share.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Stdio};

use sha2::{Digest, Sha256};

use crate::common::{assert_exit, assert_fails, cmd, json_lines, run, stderr, wimlib};

mod crash;
mod feed;
mod hostile;
mod install;
mod tags;

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

/// Installs `wim` with Install-ContainerOSImage, which must succeed.
#[track_caller]
fn install_os_image(home: &Path, wim: &Path) {
    let o = run(
        home,
        &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
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
                "index.json" | "tags.json" | ".cache" | ".trash" => {}
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

/// Starts a command that pauses at `stage` (the test-only hook) and returns
/// once it says it is there.
pub(crate) fn spawn_paused(home: &Path, args: &[&str], stage: &str) -> Child {
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

pub(crate) fn kill_9(mut child: Child) {
    child.kill().expect("kill -9");
    child.wait().expect("reap");
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
