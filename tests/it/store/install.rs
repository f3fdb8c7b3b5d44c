//! Offline installs compared with wimlib's own apply, names and versions,
//! listing, removal, Test-ContainerImage and moving the store.

use super::*;

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
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path)
            .expect("image folder")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o755,
            0o755,
            "the image folder is readable by all: {mode:o}"
        );
    }

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
    assert_fails(&o, "Uninstall-ContainerOSImage");

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
    install_os_image(&home, &wim);

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

#[test]
fn a_wim_without_any_version_needs_version() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Plain.wim", None, false);
    let wim_s = wim.to_str().expect("utf-8");

    let o = run(&home, &["Install-ContainerOSImage", wim_s]);
    assert_fails(&o, "-Version");
    assert!(get_images(&home).is_empty());

    let o = run(
        &home,
        &["Install-ContainerOSImage", wim_s, "-Version", "2.0"],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["FullName"], "CN=Microsoft_Plain_2.0.0.0");
}

/// Records a non-OS image depending on `parent`, the way a layer built on an
/// OS image would be stored: a copy of the parent's folder with its own
/// record (docs/STORE.md describes `index.json` and `image.json`).
fn add_dependent_image(store: &Path, parent: &str, full_name: &str) {
    let index_path = store.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).expect("index")).expect("index JSON");
    let images = index["Images"].as_array_mut().expect("Images");
    let mut record = images
        .iter()
        .find(|r| r["FullName"] == parent)
        .expect("parent recorded")
        .clone();
    record["Name"] = "App".into();
    record["Publisher"] = "CN=Demo".into();
    record["Version"] = "1.0.0.0".into();
    record["FullName"] = full_name.into();
    record["IsOSImage"] = false.into();
    record["ParentImage"] = parent.into();
    record["InstallToken"] = "dependent-test".into();
    images.push(record.clone());
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(store.join(parent))
        .arg(store.join(full_name))
        .output()
        .expect("cp runs");
    assert!(o.status.success(), "cp -a failed: {}", stderr(&o));
    fs::write(
        store.join(full_name).join("image.json"),
        serde_json::to_vec_pretty(&record).expect("record"),
    )
    .expect("image.json");
    fs::write(
        &index_path,
        serde_json::to_vec_pretty(&index).expect("index"),
    )
    .expect("index");
}

#[test]
fn images_others_depend_on_cannot_be_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    install_os_image(&home, &wim);
    let base = "CN=Microsoft_Base_1.0.0.0";
    let app = "CN=Demo_App_1.0.0.0";
    add_dependent_image(&store_dir(&home), base, app);

    let o = run(&home, &["Get-ContainerImage", "App"]);
    assert_exit(&o, 0);
    let listed = &json_lines(&o)[0];
    assert_eq!(listed["ParentImage"], base);
    assert_eq!(listed["IsOSImage"], false);

    let o = run(&home, &["Uninstall-ContainerOSImage", base]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(app),
        "the error names the dependant: {}",
        stderr(&o)
    );
    assert!(
        store_dir(&home).join(base).join("Files").is_dir(),
        "nothing was removed"
    );

    let o = run(&home, &["Uninstall-ContainerOSImage", app]);
    assert_fails(&o, "Remove-ContainerImage");

    assert_exit(
        &run(
            &home,
            &["Remove-ContainerImage", "App", "-Publisher", "Demo"],
        ),
        0,
    );
    assert_exit(&run(&home, &["Uninstall-ContainerOSImage", base]), 0);
    assert!(get_images(&home).is_empty());
    assert_store_consistent(&home, &store_dir(&home));
}
