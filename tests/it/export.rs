//! Export-ContainerImage (`save`): archives and layouts checked by tools
//! that did not write them (umoci, skopeo, gzip, Python's tarfile).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{assert_exit, assert_fails, json_lines, require_tool, run, stderr, wimlib};

/// A tree with folders, an empty file, a hard link and links, captured with
/// a utility VM image and installed.
pub(crate) fn installed_image(tmp: &Path) -> std::path::PathBuf {
    let os = tmp.join("os");
    fs::create_dir_all(os.join("Windows/System32/config")).expect("mkdir");
    fs::create_dir_all(os.join("Program Files/Empty")).expect("mkdir");
    fs::write(
        os.join("Windows/System32/kernel32.dll"),
        "kernel ".repeat(40_000),
    )
    .expect("write");
    fs::write(os.join("Windows/System32/config/SYSTEM"), b"hive").expect("write");
    fs::write(os.join("Windows/empty.txt"), b"").expect("write");
    fs::hard_link(
        os.join("Windows/System32/kernel32.dll"),
        os.join("Windows/kernel-link.dll"),
    )
    .expect("hard link");
    std::os::unix::fs::symlink("System32", os.join("Windows/sys")).expect("symlink");
    let uvm = tmp.join("uvm");
    fs::create_dir_all(uvm.join("EFI/Boot")).expect("mkdir");
    fs::write(uvm.join("EFI/Boot/bootx64.efi"), b"boot").expect("write");
    let wim = tmp.join("Nano-1-0.wim");
    let w = wim.to_str().expect("utf-8");
    wimlib(&["capture", os.to_str().expect("utf-8"), w, "OS"]);
    wimlib(&["append", uvm.to_str().expect("utf-8"), w, "UtilityVM"]);
    let home = tmp.join("home");
    assert_exit(&run(&home, &["Install-ContainerOSImage", w]), 0);
    home
}

/// Regular files (with contents) and folders under `root`, links left out.
pub(crate) fn files_of(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            let m = fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else if m.is_file() {
                out.insert(rel, Some(fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

pub(crate) fn tool(name: &str, args: &[&str]) -> std::process::Output {
    require_tool(name);
    let o = Command::new(name).args(args).output().expect("tool runs");
    assert!(
        o.status.success(),
        "{name} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn an_exported_archive_is_read_by_umoci_and_skopeo_and_is_deterministic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let store_image = home.join("images/CN=Microsoft_Nano_1.0.0.0");
    let archive = tmp.path().join("nano.tar");
    let o = run(
        &home,
        &[
            "Export-ContainerImage",
            "nano:1.0.0.0",
            "-Path",
            archive.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let object = &json_lines(&o)[0];
    let digest = object["Digest"].as_str().expect("Digest").to_string();
    assert_eq!(
        object["Size"],
        fs::metadata(&archive).expect("archive").len()
    );

    // The same image exported again: the same bytes.
    let again = tmp.path().join("again.tar");
    let o = run(
        &home,
        &["save", "-o", again.to_str().expect("utf-8"), "nano:1.0.0.0"],
    );
    assert_exit(&o, 0);
    assert_eq!(
        fs::read(&archive).expect("read"),
        fs::read(&again).expect("read")
    );

    // umoci unpacks the layout inside the archive (it checks digests, sizes,
    // diff_ids and the layout version).
    let layout = tmp.path().join("layout");
    fs::create_dir_all(&layout).expect("mkdir");
    tool(
        "tar",
        &[
            "-xf",
            archive.to_str().expect("utf-8"),
            "-C",
            layout.to_str().expect("utf-8"),
        ],
    );
    let rootfs = tmp.path().join("rootfs");
    let image_arg = format!("{}:1.0.0.0", layout.display());
    tool(
        "umoci",
        &[
            "raw",
            "unpack",
            "--image",
            &image_arg,
            rootfs.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        files_of(&rootfs.join("Files")),
        files_of(&store_image.join("Files"))
    );
    assert_eq!(
        files_of(&rootfs.join("UtilityVM/Files")),
        files_of(&store_image.join("UtilityVM/Files"))
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(index["manifests"][0]["platform"]["os.version"], "1.0.0.0");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/nano:1.0.0.0"
    );

    // skopeo reads it both as an OCI archive and as a docker save archive
    // (the second recomputes every diff_id).
    for source in [
        format!("oci-archive:{}", archive.display()),
        format!("docker-archive:{}", archive.display()),
    ] {
        let dest = tmp
            .path()
            .join(format!("copy-{}", source.split(':').next().unwrap_or("x")));
        tool(
            "skopeo",
            &[
                "copy",
                "--override-os",
                "windows",
                &source,
                &format!("oci:{}:copied", dest.display()),
            ],
        );
        assert!(dest.join("index.json").is_file());
    }
}

#[test]
fn a_layer_carries_windows_metadata_as_pax_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let out = tmp.path().join("dir");
    let o = run(
        &home,
        &[
            "Export-ContainerImage",
            "nano:1.0.0.0",
            "-Path",
            out.to_str().expect("utf-8"),
            "-Format",
            "OciDirectory",
            "-Compression",
            "None",
        ],
    );
    assert_exit(&o, 0);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).expect("index")).expect("json");
    let manifest_hex = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(out.join("blobs/sha256").join(&manifest_hex)).expect("manifest"),
    )
    .expect("json");
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let layer = out.join("blobs/sha256").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:"),
    );
    let script = r#"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        print(m.name, m.type.decode(), m.linkname, sorted(k for k in m.pax_headers if k.startswith(("MSWINDOWS", "LIBARCHIVE"))))
"#;
    let o = tool("python3", &["-c", script, layer.to_str().expect("utf-8")]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with(
            "Files 5  ['LIBARCHIVE.creationtime', 'MSWINDOWS.fileattr', 'MSWINDOWS.rawsd']"
        ),
        "{listing}"
    );
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    // Parents before children, the utility VM after the OS files.
    for (i, n) in names.iter().enumerate() {
        if let Some((parent, _)) = n.rsplit_once('/') {
            assert!(
                names[..i].contains(&parent),
                "{n} comes before its folder {parent}:\n{listing}"
            );
        }
    }
    assert!(
        names.contains(&"UtilityVM") && names.contains(&"UtilityVM/Files/EFI/Boot/bootx64.efi")
    );
    assert!(
        !names.iter().any(|n| n.starts_with("Hives")),
        "a base layer has no Hives"
    );
    // The second name of the hard link is a link entry; the symbolic link
    // carries a Windows target.
    assert!(
        listing.contains("Files/Windows/kernel-link.dll 1 Files/Windows/System32/kernel32.dll")
            || listing
                .contains("Files/Windows/System32/kernel32.dll 1 Files/Windows/kernel-link.dll"),
        "{listing}"
    );
    // A link captured relative keeps its relative print name.
    assert!(
        listing.contains("Files/Windows/sys 2 System32 "),
        "{listing}"
    );
}

#[test]
fn export_refuses_what_it_cannot_do_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let p = tmp.path().join("x.tar");
    assert_fails(
        &run(
            &home,
            &[
                "Export-ContainerImage",
                "nothere:1",
                "-Path",
                p.to_str().expect("utf-8"),
            ],
        ),
        "no installed image is named 'nothere:1'",
    );
    assert!(!p.exists());
    let full = tmp.path().join("full");
    fs::create_dir_all(&full).expect("mkdir");
    fs::write(full.join("keep"), b"x").expect("write");
    let o = run(
        &home,
        &[
            "Export-ContainerImage",
            "nano:1.0.0.0",
            "-Path",
            full.to_str().expect("utf-8"),
            "-Format",
            "OciDirectory",
        ],
    );
    assert_fails(&o, "already exists and is not empty");
    assert_eq!(fs::read(full.join("keep")).expect("kept"), b"x");
    assert!(!stderr(&o).contains("panicked"));
}

/// containerd, started on a private root and socket, and stopped on drop.
struct Containerd {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        require_tool("containerd");
        require_tool("ctr");
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
                dir.join("root").display(),
                dir.join("state").display(),
                socket.display()
            ),
        )
        .expect("write config");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(dir.join("containerd.log")).expect("log"))
            .spawn()
            .expect("containerd starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not open its socket:\n{}",
                fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Containerd { child, socket }
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--address", self.socket.to_str().expect("utf-8")];
        all.extend(args);
        tool("ctr", &all)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_imports_the_default_archive() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let archive = tmp.path().join("nano.tar");
    assert_exit(
        &run(
            &home,
            &[
                "Export-ContainerImage",
                "nano:1.0.0.0",
                "-Path",
                archive.to_str().expect("utf-8"),
            ],
        ),
        0,
    );
    let state = tmp.path().join("containerd");
    fs::create_dir_all(&state).expect("mkdir");
    let containerd = Containerd::start(&state);
    containerd.ctr(&[
        "images",
        "import",
        "--all-platforms",
        archive.to_str().expect("utf-8"),
    ]);
    let listed = containerd.ctr(&["images", "ls"]);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(text.contains("docker.io/library/nano:1.0.0.0"), "{text}");
    assert!(text.contains("windows/amd64"), "{text}");
}
