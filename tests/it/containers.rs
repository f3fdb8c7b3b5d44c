//! Containers and child images: New-Container, New-ContainerImage (from a
//! container and from a folder), ParentImage, history, removal rules, and
//! child layers through Export and Import, checked with umoci, skopeo and
//! Python's tarfile.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{assert_exit, assert_fails, json_lines, run, stderr, stdout};
use crate::export::{files_of, installed_image, tool};

const BASE: &str = "CN=Microsoft_Nano_1.0.0.0";
const CHILD: &str = "CN=Demo_DemoImage_1.0.0.0";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// A container made from the installed image, with its files' folder.
fn container(home: &Path, name: &str) -> PathBuf {
    let o = run(home, &["New-Container", "nano:1.0.0.0", name]);
    assert_exit(&o, 0);
    let object = &json_lines(&o)[0];
    assert_eq!(object["Image"], BASE);
    let files = PathBuf::from(object["Path"].as_str().expect("Path"));
    assert_eq!(files, home.join("containers").join(name).join("Files"));
    files
}

/// How many images `rmi` says it deleted.
fn deleted_lines(o: &std::process::Output) -> usize {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with("Deleted: "))
        .count()
}

/// The seeds' commit: the container demo as CN=Demo_DemoImage_1.0.0.0.
fn commit_demo(home: &Path) -> std::process::Output {
    run(
        home,
        &[
            "New-ContainerImage",
            "-Container",
            "demo",
            "-Publisher",
            "Demo",
            "-Name",
            "DemoImage",
            "-Version",
            "1.0",
        ],
    )
}

/// Changes of every kind: added, changed, touched without change, deleted
/// file, deleted folder, a folder replacing a file.
fn change(files: &Path) {
    fs::create_dir_all(files.join("App/bin")).expect("mkdir");
    fs::write(files.join("App/bin/app.exe"), b"MZ app").expect("write");
    let kernel = files.join("Windows/System32/kernel32.dll");
    let mut bytes = fs::read(&kernel).expect("read");
    bytes.extend_from_slice(b" patched");
    fs::write(&kernel, bytes).expect("write");
    let empty = files.join("Windows/empty.txt");
    fs::remove_file(files.join("Windows/empty.txt")).expect("rm");
    fs::create_dir(&empty).expect("a folder where a file was");
    fs::remove_dir_all(files.join("Program Files")).expect("rm -r");
}

fn layer_entries(layer: &Path) -> Vec<String> {
    let script = "import sys, tarfile\nfor m in tarfile.open(sys.argv[1]):\n    print(m.name)";
    let o = tool("python3", &["-c", script, s(layer)]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The manifest and config of the one image in an OCI layout folder.
fn manifest_and_config(layout: &Path) -> (serde_json::Value, serde_json::Value) {
    let blob = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice::<serde_json::Value>(
            &fs::read(layout.join("blobs/sha256").join(hex)).expect("blob"),
        )
        .expect("json")
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    let manifest = blob(index["manifests"][0]["digest"].as_str().expect("digest"));
    let config = blob(manifest["config"]["digest"].as_str().expect("digest"));
    (manifest, config)
}

#[test]
fn a_committed_container_is_a_child_image_that_umoci_applies_over_its_parent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let files = container(&home, "demo");
    // The container is the image's tree, hard links kept.
    assert_eq!(
        files_of(&files),
        files_of(&home.join("images").join(BASE).join("Files"))
    );
    let a = fs::metadata(files.join("Windows/System32/kernel32.dll")).expect("stat");
    let b = fs::metadata(files.join("Windows/kernel-link.dll")).expect("stat");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&a),
        std::os::unix::fs::MetadataExt::ino(&b)
    );
    change(&files);
    // Rewritten with the same bytes: only the time differs.
    let hive = files.join("Windows/System32/config/SYSTEM");
    fs::write(&hive, fs::read(&hive).expect("read")).expect("write");

    let o = commit_demo(&home);
    assert_exit(&o, 0);
    let image = &json_lines(&o)[0];
    assert_eq!(image["FullName"], CHILD);
    assert_eq!(image["IsOSImage"], false);
    assert_eq!(image["ParentImage"], BASE);
    assert_eq!(image["RepoTags"][0], "demoimage:1.0.0.0");
    let id = image["Id"].as_str().expect("Id").to_string();

    // Lists show the parent as the seeds did.
    let o = run(
        &home,
        &["Get-ContainerImage", "DemoImage", "-OutputFormat", "List"],
    );
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(
            "ParentImage : ContainerImage (Name = 'Nano') [Publisher = 'CN=Microsoft', Version = '1.0.0.0']"
        ),
        "{}",
        stdout(&o)
    );
    let o = run(&home, &["history", "demoimage:1.0.0.0"]);
    assert_exit(&o, 0);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].starts_with(&id[..12]) && lines[1].contains("New-ContainerImage"));
    assert!(lines[2].contains("Apply image 1.0.0.0"));

    // The child holds only the changes and the folders leading to them.
    let child = files_of(&home.join("images").join(CHILD).join("Files"));
    let names: Vec<&str> = child.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "App",
            "App/bin",
            "App/bin/app.exe",
            "Windows",
            "Windows/System32",
            "Windows/System32/kernel32.dll",
            "Windows/empty.txt",
            "Windows/kernel-link.dll",
        ]
    );

    // Exported as two layers; umoci applies them to the container's tree.
    let layout = tmp.path().join("layout");
    let o = run(
        &home,
        &[
            "Export-ContainerImage",
            "demoimage:1.0.0.0",
            "-Path",
            s(&layout),
            "-Format",
            "OciDirectory",
            "-Compression",
            "None",
        ],
    );
    assert_exit(&o, 0);
    let (manifest, config) = manifest_and_config(&layout);
    assert_eq!(manifest["layers"].as_array().expect("layers").len(), 2);
    // The child's Id is its layer's uncompressed digest.
    assert_eq!(config["rootfs"]["diff_ids"][1], format!("sha256:{id}"));
    assert_eq!(config["os.version"], "1.0.0.0");
    let child_layer = layout.join("blobs/sha256").join(
        manifest["layers"][1]["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:"),
    );
    let entries = layer_entries(&child_layer);
    for wanted in [
        "Files",
        "Files/.wh.Program Files",
        "Files/Windows/.wh.empty.txt",
        "Files/Windows/empty.txt",
        "Files/App/bin/app.exe",
        "Hives",
    ] {
        assert!(
            entries.iter().any(|e| e == wanted),
            "{wanted} in {entries:?}"
        );
    }
    // The whiteout comes before the folder made in its place.
    let wh = entries
        .iter()
        .position(|e| e == "Files/Windows/.wh.empty.txt")
        .expect("whiteout");
    let made = entries
        .iter()
        .position(|e| e == "Files/Windows/empty.txt")
        .expect("new folder");
    assert!(wh < made, "{entries:?}");
    assert!(
        !entries.iter().any(|e| e.contains("config/SYSTEM")),
        "an untouched file is not carried: {entries:?}"
    );

    let rootfs = tmp.path().join("rootfs");
    let image_arg = format!("{}:1.0.0.0", layout.display());
    tool(
        "umoci",
        &[
            "raw",
            "unpack",
            "--rootless",
            "--image",
            &image_arg,
            s(&rootfs),
        ],
    );
    assert_eq!(files_of(&rootfs.join("Files")), files_of(&files));
    assert!(!rootfs.join("Files/Program Files").exists());

    // skopeo reads the two-layer archive too.
    let archive = tmp.path().join("demo.tar");
    assert_exit(
        &run(&home, &["save", "-o", s(&archive), "demoimage:1.0.0.0"]),
        0,
    );
    let o = tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    );
    let inspected: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(inspected["Layers"].as_array().expect("Layers").len(), 2);
}

#[test]
fn a_folder_committed_on_a_parent_adds_its_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let app = tmp.path().join("app");
    fs::create_dir_all(app.join("inetpub/wwwroot")).expect("mkdir");
    fs::write(app.join("inetpub/wwwroot/index.html"), b"<h1>hi</h1>").expect("write");
    fs::create_dir_all(app.join("Windows")).expect("mkdir");
    fs::write(app.join("Windows/app.ini"), b"[app]").expect("write");
    let o = run(
        &home,
        &[
            "New-ContainerImage",
            "-Path",
            s(&app),
            "-ParentImage",
            "nano:1.0.0.0",
            "-Publisher",
            "Demo",
            "-Name",
            "Web",
            "-Version",
            "2.0",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["ParentImage"], BASE);
    let layout = tmp.path().join("layout");
    assert_exit(
        &run(
            &home,
            &[
                "Export-ContainerImage",
                "web:2.0.0.0",
                "-Path",
                s(&layout),
                "-Format",
                "OciDirectory",
            ],
        ),
        0,
    );
    let rootfs = tmp.path().join("rootfs");
    tool(
        "umoci",
        &[
            "raw",
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:2.0.0.0", layout.display()),
            s(&rootfs),
        ],
    );
    let mut expected = files_of(&home.join("images").join(BASE).join("Files"));
    expected.extend(
        files_of(&app)
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    assert_eq!(files_of(&rootfs.join("Files")), expected);
}

#[test]
fn changes_a_windows_layer_cannot_carry_are_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let files = container(&home, "demo");
    fs::write(files.join("Windows/System32/config/SYSTEM"), b"other hive").expect("write");
    fs::write(files.join("bad:name.txt"), b"x").expect("write");
    fs::write(files.join("trailing."), b"x").expect("write");
    fs::write(
        files.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"latin1-\xe9")),
        b"x",
    )
    .expect("write");
    let fifo = files.join("pipe");
    tool("mkfifo", &[s(&fifo)]);
    let o = run(
        &home,
        &[
            "New-ContainerImage",
            "-Container",
            "demo",
            "-Publisher",
            "Demo",
            "-Name",
            "Bad",
            "-Version",
            "1.0",
        ],
    );
    assert_fails(&o, "cannot be carried by a Windows layer");
    let err = stderr(&o);
    for named in [
        "Windows/System32/config/SYSTEM",
        "bad:name.txt",
        "trailing.",
        "pipe",
        "the name is not UTF-8",
    ] {
        assert!(err.contains(named), "{named} not named in: {err}");
    }
    let o = run(&home, &["Get-ContainerImage"]);
    assert_eq!(json_lines(&o).len(), 1, "nothing was installed");
    assert!(
        fs::read_dir(home.join("images/.staging"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "nothing is left in staging"
    );
    // Nothing changed: nothing to commit.
    let files = container(&home, "clean");
    let _ = files;
    let o = run(
        &home,
        &[
            "New-ContainerImage",
            "-Container",
            "clean",
            "-Publisher",
            "Demo",
            "-Name",
            "Same",
            "-Version",
            "1.0",
        ],
    );
    assert_fails(&o, "has no changes");
}

#[test]
fn images_with_children_or_containers_are_not_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let files = container(&home, "demo");
    fs::write(files.join("new.txt"), b"new").expect("write");
    let o = run(&home, &["commit", "demo", "demo-app:v1"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("sha256:"));
    let o = run(&home, &["images", "demo-app"]);
    assert!(stdout(&o).contains("demo-app"), "{}", stdout(&o));

    // The container blocks its image, and the child image blocks it too.
    let o = run(&home, &["Uninstall-ContainerOSImage", BASE]);
    assert_fails(&o, "depend on it");
    let err = stderr(&o);
    assert!(err.contains("the container demo"), "{err}");
    assert!(err.contains("CN=Local_demo-app_1.0.0.0"), "{err}");

    let o = run(&home, &["ps", "-a"]);
    assert_exit(&o, 0);
    assert!(stdout(&o)
        .lines()
        .nth(1)
        .is_some_and(|l| l.starts_with("demo ")));
    assert_exit(&run(&home, &["Remove-Container", "demo"]), 0);
    assert!(!home.join("containers/demo").exists());
    let o = run(&home, &["Get-Container"]);
    assert!(json_lines(&o).is_empty());

    let o = run(&home, &["Uninstall-ContainerOSImage", BASE]);
    assert_fails(&o, "CN=Local_demo-app_1.0.0.0");
    assert_exit(&run(&home, &["rmi", "demo-app:v1"]), 0);
    assert_exit(&run(&home, &["Uninstall-ContainerOSImage", BASE]), 0);
    let o = run(&home, &["Get-ContainerImage"]);
    assert!(json_lines(&o).is_empty());
}

#[test]
fn a_two_layer_archive_imports_as_a_child_and_exports_back_the_same() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let files = container(&home, "demo");
    change(&files);
    assert_exit(&commit_demo(&home), 0);
    let base_archive = tmp.path().join("base.tar");
    let archive = tmp.path().join("demo.tar");
    assert_exit(
        &run(&home, &["save", "-o", s(&base_archive), "nano:1.0.0.0"]),
        0,
    );
    assert_exit(
        &run(&home, &["save", "-o", s(&archive), "demoimage:1.0.0.0"]),
        0,
    );

    // A fresh host: the base first, then the two-layer image reuses it.
    let other = tmp.path().join("other");
    assert_exit(&run(&other, &["load", "-i", s(&base_archive)]), 0);
    let o = run(&other, &["Import-ContainerImage", s(&archive)]);
    assert_exit(&o, 0);
    let top = &json_lines(&o)[0];
    assert_eq!(top["IsOSImage"], false);
    let o = run(&other, &["Get-ContainerImage"]);
    let images = json_lines(&o);
    assert_eq!(images.len(), 2, "the base layer is reused: {images:?}");
    let base = images
        .iter()
        .find(|i| i["IsOSImage"] == true)
        .expect("a base");
    assert_eq!(top["ParentImage"], base["FullName"]);

    // Importing again changes nothing.
    assert_exit(&run(&other, &["Import-ContainerImage", s(&archive)]), 0);
    assert_eq!(json_lines(&run(&other, &["Get-ContainerImage"])).len(), 2);

    // A container of the imported image is the same tree.
    let o = run(&other, &["New-Container", "demoimage:1.0.0.0", "again"]);
    assert_exit(&o, 0);
    assert_eq!(
        files_of(&other.join("containers/again/Files")),
        files_of(&files)
    );

    // rmi of the top image takes the untagged layer below it too, as
    // docker does, once no container uses it.
    assert_exit(&run(&other, &["Remove-Container", "again"]), 0);
    let o = run(&other, &["rmi", "demoimage:1.0.0.0"]);
    assert_exit(&o, 0);
    let deleted = deleted_lines(&o);
    // The base came from its own archive and keeps its tag.
    assert_eq!(deleted, 1, "{}", stdout(&o));
    assert_eq!(json_lines(&run(&other, &["Get-ContainerImage"])).len(), 1);
    assert_exit(&run(&other, &["Import-ContainerImage", s(&archive)]), 0);
    let third = tmp.path().join("third");
    assert_exit(&run(&third, &["load", "-i", s(&archive)]), 0);
    assert_eq!(json_lines(&run(&third, &["Get-ContainerImage"])).len(), 2);
    let o = run(&third, &["rmi", "demoimage:1.0.0.0"]);
    assert_exit(&o, 0);
    let deleted = deleted_lines(&o);
    assert_eq!(deleted, 2, "{}", stdout(&o));
    assert!(json_lines(&run(&third, &["Get-ContainerImage"])).is_empty());

    // Exported from the new host: the same layers.
    let layouts: Vec<PathBuf> = [("a", &home), ("b", &other)]
        .iter()
        .map(|(n, h)| {
            let layout = tmp.path().join(format!("layout-{n}"));
            assert_exit(
                &run(
                    h,
                    &[
                        "Export-ContainerImage",
                        "demoimage:1.0.0.0",
                        "-Path",
                        s(&layout),
                        "-Format",
                        "OciDirectory",
                    ],
                ),
                0,
            );
            layout
        })
        .collect();
    let (a, _) = manifest_and_config(&layouts[0]);
    let (b, _) = manifest_and_config(&layouts[1]);
    assert_eq!(a["layers"], b["layers"]);
}

#[test]
fn a_child_layer_that_fails_leaves_nothing_of_its_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let files = container(&home, "demo");
    fs::write(files.join("new.txt"), b"new").expect("write");
    assert_exit(&run(&home, &["commit", "demo", "demo-app:v1"]), 0);
    let layout = tmp.path().join("layout");
    assert_exit(
        &run(
            &home,
            &[
                "Export-ContainerImage",
                "demo-app:v1",
                "-Path",
                s(&layout),
                "-Format",
                "OciDirectory",
            ],
        ),
        0,
    );
    // The config names a wrong diff_id for the child layer; the manifest and
    // index are rewritten so every digest still matches.
    let script = r#"
import hashlib, json, os, sys
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
def read(d): return open(os.path.join(blobs, d.split(":")[1]), "rb").read()
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(os.path.join(blobs, h), "wb").write(b)
    return "sha256:" + h, len(b)
index = json.load(open(os.path.join(root, "index.json")))
m = json.loads(read(index["manifests"][0]["digest"]))
c = json.loads(read(m["config"]["digest"]))
c["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
m["config"]["digest"], m["config"]["size"] = put(json.dumps(c).encode())
index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(json.dumps(m).encode())
json.dump(index, open(os.path.join(root, "index.json"), "w"))
"#;
    tool("python3", &["-c", script, s(&layout)]);
    let other = tmp.path().join("other");
    let o = run(&other, &["Import-ContainerImage", s(&layout)]);
    assert_fails(&o, "uncompressed digest");
    let o = run(&other, &["Get-ContainerImage"]);
    assert!(
        json_lines(&o).is_empty(),
        "the base layer installed for it is removed again: {}",
        stdout(&o)
    );
}

#[test]
fn a_child_image_is_tested_and_removed_on_its_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let files = container(&home, "demo");
    fs::write(files.join("new.txt"), b"new").expect("write");
    assert_exit(&commit_demo(&home), 0);
    let o = run(&home, &["Test-ContainerImage", "DemoImage"]);
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["IsValid"], true);
    // A changed file of the child is found; the parent's files are not its.
    fs::write(
        home.join("images").join(CHILD).join("Files/new.txt"),
        b"bad",
    )
    .expect("write");
    let o = run(&home, &["Test-ContainerImage", "DemoImage"]);
    let result = &json_lines(&o)[0];
    assert_eq!(result["IsValid"], false);
    assert!(
        result["Problems"].to_string().contains("new.txt"),
        "{result}"
    );
    let o = run(&home, &["Test-ContainerImage", "Nano"]);
    assert_eq!(json_lines(&o)[0]["IsValid"], true);

    // Remove-ContainerImage removes the child; the OS image stays.
    assert_exit(&run(&home, &["Remove-Container", "demo"]), 0);
    assert_exit(&run(&home, &["Remove-ContainerImage", "DemoImage"]), 0);
    let o = run(&home, &["Get-ContainerImage"]);
    let left = json_lines(&o);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["FullName"], BASE);
    assert!(!home.join("images").join(CHILD).exists());
}

#[test]
fn a_container_killed_while_being_made_leaves_nothing_the_next_command_keeps() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let child = crate::store::spawn_paused(
        &home,
        &["New-Container", "nano:1.0.0.0", "demo"],
        "container-copied",
    );
    crate::store::kill_9(child);
    let leftovers = || -> Vec<String> {
        fs::read_dir(home.join("containers"))
            .expect("containers")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let left = leftovers();
    assert!(
        left.len() == 1 && left[0].starts_with(".new-"),
        "the copy in progress is there, unpublished: {left:?}"
    );
    assert!(json_lines(&run(&home, &["Get-Container"])).is_empty());
    // The next command under the lock removes it and makes the container.
    container(&home, "demo");
    assert_eq!(leftovers(), ["demo"]);
}
