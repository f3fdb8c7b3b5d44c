//! Import-ContainerImage (`load`): archives we wrote, archives and layouts
//! written by other tools (skopeo, Python's tarfile), and hostile ones.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::common::{assert_exit, assert_fails, json_lines, require_tool, run, stdout, wimlib};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds an OCI layout at `dir` holding one image whose layer is the tar
/// Python's tarfile writes from `script_entries` (Python code adding
/// members to `t`), gzip-compressed by Python. Returns the layout.
fn handmade_layout(dir: &Path, entries: &str) -> PathBuf {
    handmade_layers(dir, &[entries])
}

/// The tar Python's tarfile writes from `entries` (see [`handmade_layout`]).
fn python_tar(path: &Path, entries: &str) -> Vec<u8> {
    require_tool("python3");
    let script = format!(
        r#"
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
def d(name, **pax):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mtime = 1600000000; i.pax_headers = pax; t.addfile(i)
def f(name, data=b"", **pax):
    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1600000000; i.pax_headers = pax; t.addfile(i, io.BytesIO(data))
def l(name, target, kind=tarfile.SYMTYPE, **pax):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; i.mtime = 1600000000; i.pax_headers = pax; t.addfile(i)
{entries}
t.close()
"#
    );
    let o = Command::new("python3")
        .args(["-c", &script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::read(path).expect("layer")
}

/// An OCI layout of one image with a layer per `layers` item, base first.
fn handmade_layers(dir: &Path, layers: &[&str]) -> PathBuf {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| -> String {
        let d = sha(bytes);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).expect("blob");
        d
    };
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (i, entries) in layers.iter().enumerate() {
        let raw = python_tar(&dir.join(format!("layer{i}.tar")), entries);
        diff_ids.push(sha(&raw));
        let mut gz = flate2_gzip(&raw);
        if gz.is_empty() {
            gz = raw.clone();
        }
        let digest = put(&gz);
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": gz.len()
        }));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "windows", "os.version": "10.0.20348.1",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "handmade"}]
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.1"},
            "annotations": {"org.opencontainers.image.ref.name": "handmade", "io.containerd.image.name": "example.test/app/handmade:handmade"}
        }]
    });
    fs::write(layout.join("index.json"), index.to_string()).expect("index");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    layout
}

/// gzip by the gzip tool.
fn flate2_gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-c", "-n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = raw.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("gzip");
    writer.join().expect("join").expect("write");
    out.stdout
}

const GOOD_LAYER: &str = r#"
sd = "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA=="
d("Files", **{"MSWINDOWS.fileattr": "16", "MSWINDOWS.rawsd": sd})
d("Files/Windows", **{"MSWINDOWS.fileattr": "16"})
f("Files/Windows/a.txt", b"hello", **{"MSWINDOWS.fileattr": "32", "LIBARCHIVE.creationtime": "1500000000.5"})
f("Files/Windows/a.txt:Zone.Identifier", b"[ZoneTransfer]")
l("Files/Windows/b.txt", "Files/Windows/a.txt", tarfile.LNKTYPE)
l("Files/Users", "C:\\Windows", **{"MSWINDOWS.mountpoint": "1"})
"#;

#[test]
fn a_layout_written_by_other_tools_imports_and_exports_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = handmade_layout(tmp.path(), GOOD_LAYER);
    let home = tmp.path().join("home");
    let o = run(
        &home,
        &["Import-ContainerImage", layout.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    let image = &json_lines(&o)[0];
    assert_eq!(image["FullName"], "CN=example.test_handmade_10.0.20348.1");
    assert_eq!(
        image["RepoTags"],
        serde_json::json!(["example.test/app/handmade:handmade"])
    );
    let files = home.join("images/CN=example.test_handmade_10.0.20348.1/Files");
    assert_eq!(fs::read(files.join("Windows/a.txt")).expect("a"), b"hello");
    assert_eq!(
        fs::read_link(files.join("Users")).expect("link"),
        PathBuf::from("Windows")
    );
    // Importing it again changes nothing and succeeds.
    assert_exit(
        &run(
            &home,
            &["Import-ContainerImage", layout.to_str().expect("utf-8")],
        ),
        0,
    );
    assert_eq!(json_lines(&run(&home, &["Get-ContainerImage"])).len(), 1);

    // skopeo turns the layout into an OCI archive and a docker archive; both import.
    require_tool("skopeo");
    for (kind, name) in [("oci-archive", "oci.tar"), ("docker-archive", "docker.tar")] {
        let archive = tmp.path().join(name);
        let dest = format!(
            "{kind}:{}:example.test/app/handmade:handmade",
            archive.display()
        );
        let src = format!("oci:{}:handmade", layout.display());
        let o = Command::new("skopeo")
            .args(["copy", "--override-os", "windows", &src, &dest])
            .output()
            .expect("skopeo");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let fresh = tmp.path().join(format!("home-{kind}"));
        let o = run(&fresh, &["load", "-i", archive.to_str().expect("utf-8")]);
        assert_exit(&o, 0);
        assert!(
            stdout(&o).contains("Loaded image: example.test/app/handmade:handmade"),
            "{}",
            stdout(&o)
        );
    }

    // Exported again, the layer is the same bytes: the same digest.
    let out = tmp.path().join("again");
    let o = run(
        &home,
        &[
            "Export-ContainerImage",
            "example.test/app/handmade:handmade",
            "-Path",
            out.to_str().expect("utf-8"),
            "-Format",
            "OciDirectory",
        ],
    );
    assert_exit(&o, 0);
    let theirs: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("i")).expect("j");
    let _ = theirs;
    let diff_of = |layout: &Path| -> String {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index"))
                .expect("json");
        let m = index["manifests"][0]["digest"]
            .as_str()
            .expect("m")
            .trim_start_matches("sha256:")
            .to_string();
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs::read(layout.join("blobs/sha256").join(m)).expect("manifest"),
        )
        .expect("json");
        let c = manifest["config"]["digest"]
            .as_str()
            .expect("c")
            .trim_start_matches("sha256:")
            .to_string();
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(c)).expect("config"))
                .expect("json");
        config["rootfs"]["diff_ids"][0]
            .as_str()
            .expect("diff")
            .to_string()
    };
    // Python writes other PAX records than we do, so compare our own round
    // trip: export, import elsewhere, export again.
    let ours_first = diff_of(&out);
    let second_home = tmp.path().join("home-second");
    assert_exit(
        &run(
            &second_home,
            &["Import-ContainerImage", out.to_str().expect("utf-8")],
        ),
        0,
    );
    let out2 = tmp.path().join("again2");
    assert_exit(
        &run(
            &second_home,
            &[
                "Export-ContainerImage",
                "example.test/app/handmade:handmade",
                "-Path",
                out2.to_str().expect("utf-8"),
                "-Format",
                "OciDirectory",
            ],
        ),
        0,
    );
    assert_eq!(
        diff_of(&out2),
        ours_first,
        "an imported image exports to the same layer"
    );
}

#[test]
fn a_wim_image_round_trips_through_export_and_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let os = tmp.path().join("os");
    fs::create_dir_all(os.join("Windows/System32")).expect("mkdir");
    fs::write(os.join("Windows/System32/k.dll"), "k".repeat(5000)).expect("write");
    fs::hard_link(os.join("Windows/System32/k.dll"), os.join("Windows/k2.dll")).expect("link");
    std::os::unix::fs::symlink("System32", os.join("Windows/sys")).expect("symlink");
    let uvm = tmp.path().join("uvm");
    fs::create_dir_all(uvm.join("EFI")).expect("mkdir");
    fs::write(uvm.join("EFI/boot.efi"), b"boot").expect("write");
    let wim = tmp.path().join("Nano-1-0.wim");
    wimlib(&[
        "capture",
        os.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "OS",
    ]);
    wimlib(&[
        "append",
        uvm.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "UVM",
    ]);
    let home = tmp.path().join("home");
    assert_exit(
        &run(
            &home,
            &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
        ),
        0,
    );
    let archive = tmp.path().join("nano.tar");
    assert_exit(
        &run(
            &home,
            &[
                "save",
                "-o",
                archive.to_str().expect("utf-8"),
                "nano:1.0.0.0",
            ],
        ),
        0,
    );
    let fresh = tmp.path().join("fresh");
    let o = run(
        &fresh,
        &["Import-ContainerImage", archive.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    let a = home.join("images/CN=Microsoft_Nano_1.0.0.0");
    let b = fresh.join("images/CN=docker.io_nano_1.0.0.0");
    for tree in ["Files", "UtilityVM/Files"] {
        let o = Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(a.join(tree))
            .arg(b.join(tree))
            .output()
            .expect("diff");
        assert!(
            o.status.success(),
            "{tree} differs:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // Exporting the imported image gives the same archive but for the
    // config's creation time: the same layer digest.
    let again = tmp.path().join("again.tar");
    assert_exit(
        &run(
            &fresh,
            &["save", "-o", again.to_str().expect("utf-8"), "nano:1.0.0.0"],
        ),
        0,
    );
    let layers = |p: &Path| -> serde_json::Value {
        let x = tmp
            .path()
            .join(format!("x-{}", p.file_name().expect("n").to_string_lossy()));
        fs::create_dir_all(&x).expect("mkdir");
        let o = Command::new("tar")
            .arg("-xf")
            .arg(p)
            .arg("-C")
            .arg(&x)
            .output()
            .expect("tar");
        assert!(o.status.success());
        let m: serde_json::Value =
            serde_json::from_slice(&fs::read(x.join("manifest.json")).expect("m")).expect("json");
        m[0]["Layers"].clone()
    };
    assert_eq!(layers(&archive), layers(&again));
}

/// Re-writes a blob of `layout` (and what names it) after `change`.
fn tamper(layout: &Path, what: &str) {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    let m = index["manifests"][0]["digest"]
        .as_str()
        .expect("m")
        .trim_start_matches("sha256:")
        .to_string();
    let blobs = layout.join("blobs/sha256");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blobs.join(&m)).expect("manifest")).expect("json");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("l")
        .trim_start_matches("sha256:")
        .to_string();
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("c")
        .trim_start_matches("sha256:")
        .to_string();
    match what {
        "corrupt layer" => {
            let mut bytes = fs::read(blobs.join(&layer)).expect("layer");
            let last = bytes.len() - 9;
            bytes[last] ^= 0xff;
            fs::write(blobs.join(&layer), bytes).expect("write");
        }
        "wrong diff_id" | "wrong size" => {
            let mut c: serde_json::Value =
                serde_json::from_slice(&fs::read(blobs.join(&config)).expect("config"))
                    .expect("json");
            let mut mf = manifest.clone();
            if what == "wrong diff_id" {
                c["rootfs"]["diff_ids"][0] = format!("sha256:{}", "0".repeat(64)).into();
            } else {
                mf["layers"][0]["size"] =
                    (mf["layers"][0]["size"].as_u64().expect("size") + 1).into();
            }
            let cb = c.to_string();
            let cd = sha(cb.as_bytes());
            fs::write(blobs.join(cd.trim_start_matches("sha256:")), &cb).expect("write");
            mf["config"]["digest"] = cd.into();
            mf["config"]["size"] = cb.len().into();
            let mb = mf.to_string();
            let md = sha(mb.as_bytes());
            fs::write(blobs.join(md.trim_start_matches("sha256:")), &mb).expect("write");
            let mut i = index.clone();
            i["manifests"][0]["digest"] = md.into();
            i["manifests"][0]["size"] = mb.len().into();
            fs::write(layout.join("index.json"), i.to_string()).expect("write");
        }
        "missing oci-layout" => fs::remove_file(layout.join("oci-layout")).expect("rm"),
        "wrong oci-layout" => fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .expect("write"),
        other => panic!("no such change {other}"),
    }
}

#[test]
fn damaged_layouts_are_refused_and_nothing_is_installed() {
    for (change, message) in [
        ("corrupt layer", "digest"),
        ("wrong diff_id", "uncompressed digest"),
        ("wrong size", "bytes where the manifest says"),
        ("missing oci-layout", "neither an OCI layout"),
        ("wrong oci-layout", "version 2.0.0"),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = handmade_layout(tmp.path(), GOOD_LAYER);
        tamper(&layout, change);
        let home = tmp.path().join("home");
        let o = run(
            &home,
            &["Import-ContainerImage", layout.to_str().expect("utf-8")],
        );
        assert_fails(&o, message);
        assert!(
            json_lines(&run(&home, &["Get-ContainerImage"])).is_empty(),
            "{change}: nothing installed"
        );
        let staging = home.join("images/.staging");
        assert_eq!(
            fs::read_dir(&staging).map_or(0, |d| d.count()),
            0,
            "{change}: staging is empty"
        );
    }
}

#[test]
fn hostile_layers_are_refused_rule_by_rule() {
    let cases: &[(&str, &str)] = &[
        (
            "d('Files'); f('Etc/passwd', b'x')",
            "only Files, UtilityVM/Files",
        ),
        ("d('Files'); f('Files/../../escape', b'x')", "'..'"),
        ("d('Files'); f('/Files/abs', b'x')", "not a relative name"),
        (
            "d('Files'); f('Files/a', b'x'); f('Files/a', b'y')",
            "the same name twice",
        ),
        (
            "d('Files'); l('Files/h', 'Files/nothere', tarfile.LNKTYPE)",
            "not earlier in the layer",
        ),
        (
            "d('Files'); l('Files/h', '/etc/passwd', tarfile.LNKTYPE)",
            "not earlier in the layer",
        ),
        (
            "d('Files'); l('Files/s', 'C:\\\\Windows'); f('Files/s/x', b'x')",
            "below a link",
        ),
        (
            "d('Files'); f('Files/.wh.gone')",
            "whiteouts belong to child layers",
        ),
        ("d('Files'); d('Hives')", "Hives belong to child layers"),
        (
            "f('Files/orphan', b'x')",
            "its folder does not come before it",
        ),
        (
            "d('Files'); f('Files/a:stream', b'x')",
            "does not follow its file",
        ),
        (
            "d('Files'); l('Files/s', '\\\\\\\\server\\\\share')",
            "cannot be carried",
        ),
        (
            "d('Files'); i = tarfile.TarInfo('Files/dev'); i.type = tarfile.CHRTYPE; t.addfile(i)",
            "only files, folders and links",
        ),
    ];
    for (entries, message) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = handmade_layout(tmp.path(), entries);
        let home = tmp.path().join("home");
        let o = run(
            &home,
            &["Import-ContainerImage", layout.to_str().expect("utf-8")],
        );
        assert_fails(&o, message);
        assert!(
            json_lines(&run(&home, &["Get-ContainerImage"])).is_empty(),
            "{entries}: nothing installed"
        );
        assert!(!tmp.path().join("escape").exists() && !home.join("escape").exists());
    }
}

const BASE_LAYER: &str =
    "d('Files'); d('Files/Windows'); f('Files/Windows/a', b'a'); f('Files/Windows/b', b'b')";

#[test]
fn a_child_layer_from_another_tool_imports_with_its_whiteouts_and_hives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = handmade_layers(
        tmp.path(),
        &[
            BASE_LAYER,
            "d('Files'); d('Files/Windows'); f('Files/Windows/.wh.a'); f('Files/Windows/c', b'c'); \
             d('Hives'); f('Hives/Software_Delta', b'regf')",
        ],
    );
    let home = tmp.path().join("home");
    let o = run(
        &home,
        &["Import-ContainerImage", layout.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    let top = &json_lines(&o)[0];
    assert_eq!(top["IsOSImage"], false);
    let top_dir = PathBuf::from(top["Path"].as_str().expect("Path"));
    assert_eq!(
        fs::read(top_dir.join("Hives/Software_Delta")).expect("hive"),
        b"regf"
    );
    let deleted: serde_json::Value =
        serde_json::from_slice(&fs::read(top_dir.join("deleted.json")).expect("deleted"))
            .expect("json");
    assert_eq!(deleted["Deleted"], serde_json::json!(["Windows/a"]));
    // A container of it: the base with the child's changes.
    let o = run(
        &home,
        &["New-Container", "example.test/app/handmade:handmade", "c"],
    );
    assert_exit(&o, 0);
    let files = home.join("containers/c/Files/Windows");
    let mut names: Vec<String> = fs::read_dir(&files)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "c"]);
}

#[test]
fn hostile_child_layers_are_refused_rule_by_rule() {
    let cases: &[(&str, &str)] = &[
        ("d('Files'); f('Files/.wh..wh..opq')", "opaque whiteouts"),
        ("d('Files'); d('UtilityVM')", "cannot change the utility VM"),
        (
            "d('Files'); d('Hives'); d('Hives/sub')",
            "Hives holds only files",
        ),
        ("d('Files'); f('Hives/x', b'x')", "Hives holds only files"),
        (
            "d('Files'); f('Files/Windows/.wh.a')",
            "its folder does not come before it",
        ),
        (
            "d('Files'); d('Hives'); f('Hives/.wh.x')",
            "a whiteout must name one entry below Files",
        ),
        (
            "d('Files'); f('Files/.wh.x'); f('Files/.wh.x')",
            "the same name twice",
        ),
        (
            "d('Files'); d('Files/.wh.d')",
            "a whiteout must be an empty file entry",
        ),
        (
            "d('Files'); l('Files/.wh.x', 'C:\\\\x')",
            "a whiteout must be an empty file entry",
        ),
        ("d('Files'); f('Files/.wh.x/y', b'y')", "below a whiteout"),
        ("d('Hives')", "a layer must hold Files"),
    ];
    for (entries, message) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = handmade_layers(tmp.path(), &[BASE_LAYER, entries]);
        let home = tmp.path().join("home");
        let o = run(
            &home,
            &["Import-ContainerImage", layout.to_str().expect("utf-8")],
        );
        assert_fails(&o, message);
        assert!(
            json_lines(&run(&home, &["Get-ContainerImage"])).is_empty(),
            "{entries}: nothing installed, the base layer removed again"
        );
    }
}
