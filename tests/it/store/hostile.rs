//! A planted, tampered or damaged store: links where the store keeps its
//! own folders, a lost index, hostile records and journals, and the rollback
//! paths of a reinstall and a removal. Nothing outside the store is read,
//! written or deleted, and nothing installed is lost.

use super::*;
use std::io::Read;
use std::os::unix::fs::symlink;

/// A folder outside the store with a file in it, and a way to check that
/// both are exactly as they were.
struct Outside {
    dir: PathBuf,
}

impl Outside {
    fn new(tmp: &Path, name: &str) -> Outside {
        let dir = tmp.join(name);
        fs::create_dir_all(dir.join("sub")).expect("mkdir outside");
        fs::write(dir.join("precious.txt"), b"outside data").expect("write outside");
        Outside { dir }
    }

    #[track_caller]
    fn assert_untouched(&self, after: &str) {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .expect("the outside folder still exists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["precious.txt", "sub"],
            "outside folder changed {after}"
        );
        assert_eq!(
            fs::read(self.dir.join("precious.txt")).expect("read"),
            b"outside data",
            "outside file changed {after}"
        );
        assert_eq!(
            fs::read_dir(self.dir.join("sub")).expect("sub").count(),
            0,
            "something was written outside {after}"
        );
    }
}

/// Replaces whatever is at `link` with a symbolic link to `target`.
fn plant(target: &Path, link: &Path) {
    match fs::symlink_metadata(link) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(link).expect("clear"),
        Ok(_) => fs::remove_file(link).expect("clear"),
        Err(_) => {}
    }
    symlink(target, link).expect("plant link");
}

fn installed_ids(home: &Path) -> Vec<String> {
    get_images(home)
        .iter()
        .map(|o| o["Id"].as_str().expect("Id").to_string())
        .collect()
}

#[test]
fn links_planted_where_the_store_keeps_its_folders_are_never_followed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    for planted in [".staging", ".trash", ".cache"] {
        let home = tmp.path().join(format!("home{planted}"));
        install_os_image(&home, &wim);
        let outside = Outside::new(tmp.path(), &format!("outside{planted}"));
        let link = store_dir(&home).join(planted);
        plant(&outside.dir, &link);

        // Even the read-only commands clean up; they must not empty the
        // folder the link names.
        let o = run(&home, &["Get-ContainerImage"]);
        assert_exit(&o, 0);
        assert_eq!(json_lines(&o).len(), 1);
        outside.assert_untouched(&format!("after Get with {planted} planted"));
        assert!(
            !fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
            "the planted {planted} link is removed"
        );

        plant(&outside.dir, &link);
        assert_exit(&run(&home, &["Test-ContainerImage"]), 0);
        outside.assert_untouched(&format!("after Test with {planted} planted"));

        plant(&outside.dir, &link);
        let o = run(
            &home,
            &[
                "Install-ContainerOSImage",
                wim.to_str().expect("utf-8"),
                "-Force",
            ],
        );
        assert_exit(&o, 0);
        outside.assert_untouched(&format!("after a reinstall with {planted} planted"));
        plant(&outside.dir, &link);
        let o = run(&home, &["Uninstall-ContainerOSImage", "-Name", "Base"]);
        assert_exit(&o, 0);
        outside.assert_untouched(&format!("after Uninstall with {planted} planted"));
        assert!(get_images(&home).is_empty());
    }
}

#[test]
fn a_planted_store_lock_link_is_not_written_through() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");
    let outside = Outside::new(tmp.path(), "outside");
    symlink(outside.dir.join("precious.txt"), home.join("store.lock")).expect("plant");
    install_os_image(&home, &wim);
    outside.assert_untouched("after an install with store.lock planted");
    assert!(fs::symlink_metadata(home.join("store.lock"))
        .expect("lock file")
        .is_file());
}

#[test]
fn a_missing_empty_or_damaged_index_is_rebuilt_not_emptied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let a = make_wim(tmp.path(), "Alpha-1-0.wim", None, false);
    let b = make_wim(tmp.path(), "Beta-2-0.wim", None, true);
    install_os_image(&home, &a);
    install_os_image(&home, &b);
    let before = installed_ids(&home);
    assert_eq!(before.len(), 2);
    let index = store_dir(&home).join("index.json");
    for (how, damage) in [
        ("deleted", None),
        ("emptied", Some(&b""[..])),
        (
            "truncated",
            Some(&b"{\"Format\": 1, \"Images\": [{\"Na"[..]),
        ),
        ("not JSON", Some(&b"\x00\xff garbage"[..])),
        (
            "an empty list",
            Some(&b"{\"Format\": 1, \"Images\": []}"[..]),
        ),
    ] {
        match damage {
            None => fs::remove_file(&index).expect("delete the index"),
            Some(bytes) => fs::write(&index, bytes).expect("damage the index"),
        }
        let o = run(&home, &["Get-ContainerImage"]);
        assert_exit(&o, 0);
        let mut ids: Vec<String> = json_lines(&o)
            .iter()
            .map(|x| x["Id"].as_str().expect("Id").to_string())
            .collect();
        ids.sort();
        let mut want = before.clone();
        want.sort();
        assert_eq!(ids, want, "index {how}: every image must still be listed");
        assert!(
            stderr(&o).contains("rebuilt") || stderr(&o).contains("listed again"),
            "index {how}: the rebuild is reported:\n{}",
            stderr(&o)
        );
        assert_store_consistent(&home, &store_dir(&home));
    }
}

#[test]
fn hostile_records_in_the_index_are_ignored_never_followed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    install_os_image(&home, &wim);
    let outside = Outside::new(tmp.path(), "outside");
    let index_path = store_dir(&home).join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).expect("read index")).expect("json");
    let good = index["Images"][0].clone();
    let escape = format!(
        "../../{}",
        outside.dir.file_name().expect("name").to_string_lossy()
    );
    let mut hostile = vec![good.clone()];
    for full_name in [
        outside.dir.to_string_lossy().into_owned(),
        escape.clone(),
        "..".to_string(),
        "CN=Microsoft_Base_1.0.0.0/../..".to_string(),
    ] {
        let mut r = good.clone();
        r["FullName"] = full_name.into();
        hostile.push(r);
    }
    let mut forged_name = good.clone();
    forged_name["Name"] = "../x".into();
    hostile.push(forged_name);
    fs::write(
        &index_path,
        serde_json::json!({"Format": 1, "Images": hostile}).to_string(),
    )
    .expect("write hostile index");

    let o = run(&home, &["Get-ContainerImage"]);
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o).len(), 1, "only the real image is listed");
    assert!(stderr(&o).contains("ignoring a record"), "{}", stderr(&o));
    for full_name in [outside.dir.to_string_lossy().into_owned(), escape] {
        let o = run(&home, &["Uninstall-ContainerOSImage", &full_name]);
        assert_exit(&o, 1);
        outside.assert_untouched(&format!("after Uninstall {full_name}"));
    }
    assert_exit(&run(&home, &["Test-ContainerImage"]), 0);
    outside.assert_untouched("after Test");
    assert_eq!(get_images(&home).len(), 1);
}

/// Starts `args` paused at `stage` with `envs`; returns the child and a
/// thread that collects the rest of its standard error.
fn spawn_resumable(
    home: &Path,
    args: &[&str],
    stage: &str,
    resume: &Path,
    envs: &[(&str, &str)],
) -> (Child, std::thread::JoinHandle<String>) {
    let mut c = cmd(home);
    c.args(args)
        .env("CONTAINERIMAGE_TEST_PAUSE_AT", stage)
        .env("CONTAINERIMAGE_TEST_RESUME", resume)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(err);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("stderr line");
        if n == 0 {
            let status = child.wait().expect("wait");
            panic!("the command ended ({status}) without pausing at {stage}:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(&format!("test pause at {stage}")) {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = reader.read_to_string(&mut s);
        seen + &s
    });
    (child, rest)
}

/// Makes the next write of the index fail: a folder where the file goes
/// (a rename cannot replace a folder with a file).
fn block_index(home: &Path) -> PathBuf {
    let index = store_dir(home).join("index.json");
    let aside = store_dir(home).join("index.json.aside");
    fs::rename(&index, &aside).expect("move the index aside");
    fs::create_dir(&index).expect("a folder in the index's place");
    aside
}

fn unblock_index(home: &Path, aside: &Path) {
    let index = store_dir(home).join("index.json");
    fs::remove_dir(&index).expect("remove the folder");
    fs::rename(aside, &index).expect("put the index back");
}

/// Runs `args` paused at `stage`, makes the index unwritable, lets it go on
/// and checks that it fails; then makes the index writable again.
fn fail_when_recording(
    home: &Path,
    args: &[&str],
    stage: &str,
    resume: &Path,
    envs: &[(&str, &str)],
    label: &str,
) {
    let _ = fs::remove_file(resume);
    let (child, rest) = spawn_resumable(home, args, stage, resume, envs);
    let aside = block_index(home);
    fs::write(resume, b"").expect("resume");
    let status = child.wait_with_output().expect("wait").status;
    let err = rest.join().expect("stderr");
    assert_eq!(
        status.code(),
        Some(1),
        "{label}: {args:?} must fail:\n{err}"
    );
    unblock_index(home, &aside);
}

#[test]
fn a_failed_reinstall_or_removal_rolls_back_to_the_old_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old_wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    let new_dir = tmp.path().join("new");
    fs::create_dir_all(&new_dir).expect("mkdir");
    // Another .wim of the same name and version, with other content.
    let os = new_dir.join("tree");
    make_tree(&os, "newer");
    let new_wim = new_dir.join("Base-1-0.wim");
    wimlib(&[
        "capture",
        os.to_str().expect("utf-8"),
        new_wim.to_str().expect("utf-8"),
        "OS",
    ]);
    let resume = tmp.path().join("resume");

    for (label, envs) in [
        ("exchange", &[][..]),
        (
            "two renames",
            &[("CONTAINERIMAGE_TEST_NO_EXCHANGE", "1")][..],
        ),
    ] {
        let home = tmp.path().join(format!("home-{}", label.replace(' ', "-")));
        install_os_image(&home, &old_wim);
        let old_ids = installed_ids(&home);
        let old_tree = describe(&store_dir(&home).join("CN=Microsoft_Base_1.0.0.0/Files"));
        let _ = fs::remove_file(&resume);

        // The index cannot be written once the new image is published.
        let new = new_wim.to_str().expect("utf-8");
        let args = ["Install-ContainerOSImage", new, "-Force"];
        fail_when_recording(&home, &args, "published", &resume, envs, label);
        assert_eq!(
            installed_ids(&home),
            old_ids,
            "{label}: the old image is listed"
        );
        assert_eq!(
            describe(&store_dir(&home).join("CN=Microsoft_Base_1.0.0.0/Files")),
            old_tree,
            "{label}: the old image's files are back where they were"
        );
        assert_store_consistent(&home, &store_dir(&home));

        // The same for a removal.
        let args = ["Uninstall-ContainerOSImage", "-Name", "Base"];
        fail_when_recording(&home, &args, "removing", &resume, envs, label);
        assert_eq!(
            installed_ids(&home),
            old_ids,
            "{label}: the image is still there"
        );
        assert_store_consistent(&home, &store_dir(&home));
    }

    // Killed between moving the old image aside and publishing the new one
    // (file systems that cannot exchange): the old image is put back.
    let home = tmp.path().join("home-killed");
    install_os_image(&home, &old_wim);
    let old_ids = installed_ids(&home);
    let mut c = cmd(&home);
    c.env("CONTAINERIMAGE_TEST_NO_EXCHANGE", "1");
    let (child, _rest) = spawn_resumable(
        &home,
        &[
            "Install-ContainerOSImage",
            new_wim.to_str().expect("utf-8"),
            "-Force",
        ],
        "moved-aside",
        &tmp.path().join("never"),
        &[("CONTAINERIMAGE_TEST_NO_EXCHANGE", "1")],
    );
    kill_9(child);
    let o = run(&home, &["Get-ContainerImage"]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("putting back"), "{}", stderr(&o));
    assert_eq!(installed_ids(&home), old_ids);
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn a_planted_move_journal_deletes_nothing_outside() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    install_os_image(&home, &wim);
    let outside = Outside::new(tmp.path(), "outside");
    let victim = Outside::new(tmp.path(), "victim.moving");
    for journal in [
        serde_json::json!({"From": outside.dir, "To": store_dir(&home)}),
        serde_json::json!({"From": outside.dir, "To": store_dir(&home), "Token": "x"}),
        serde_json::json!({"From": store_dir(&home), "To": tmp.path().join("victim")}),
    ] {
        fs::write(home.join("store-move.json"), journal.to_string()).expect("plant journal");
        let o = run(&home, &["Get-ContainerImage"]);
        assert_exit(&o, 0);
        assert_eq!(json_lines(&o).len(), 1, "the store stays where it is");
        outside.assert_untouched(&format!("after journal {journal}"));
        victim.assert_untouched(&format!("after journal {journal}"));
        assert!(!home.join("store-move.json").exists());
    }
}

#[test]
fn names_that_could_not_be_read_back_or_would_collide_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    let w = wim.to_str().expect("utf-8");
    for (args, message) in [
        (vec!["-Publisher", "CN="], "nothing follows CN="),
        (vec!["-Publisher", "A_B"], "'_'"),
        (vec!["-Name", " Base"], "starts or ends with a space"),
        (vec!["-Name", "Base "], "starts or ends with a space"),
        (vec!["-Name", ".hidden"], "starts or ends with a dot"),
        (vec!["-Name", "dot."], "starts or ends with a dot"),
        (vec!["-Name", "we*ird\""], "names may not hold"),
    ] {
        let mut full = vec!["Install-ContainerOSImage", w, "-Version", "1.0"];
        full.extend(&args);
        assert_fails(&run(&home, &full), message);
    }
    assert!(get_images(&home).is_empty());
    // Publisher A + Name B_C is fine and cannot be confused with A_B + C.
    let o = run(
        &home,
        &[
            "Install-ContainerOSImage",
            w,
            "-Publisher",
            "A",
            "-Name",
            "B_C",
            "-Version",
            "1.0",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["FullName"], "CN=A_B_C_1.0.0.0");
}

#[test]
fn root_is_decided_by_the_effective_user_not_by_home_or_user() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("unused");
    let feed = tmp.path().join("feed");
    fs::create_dir_all(&feed).expect("mkdir");
    let fake_home = tmp.path().join("custom-home");
    fs::create_dir_all(&fake_home).expect("mkdir");
    // As root (in a user namespace) with a custom HOME and USER: the home
    // folder is /var/lib/containerimage (a private tmpfs here).
    let script = r#"mount -t tmpfs tmpfs /var/lib || exit 3
        unset CONTAINERIMAGE_HOME
        HOME="$2" USER=someone "$1" Register-PackageSource Local "$3" >/dev/null || exit 4
        test -f /var/lib/containerimage/config.json || exit 5
        test ! -e "$2/.local" || exit 6"#;
    let o = run_in_mount_namespace(
        &home,
        script,
        &[&crate::common::bin_path(), &fake_home, &feed],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "root must use /var/lib/containerimage whatever HOME says:\n{}",
        stderr(&o)
    );
}

#[test]
fn devices_and_fifos_are_refused_as_wim_files_never_waited_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let folder = tmp.path().join("feed");
    fs::create_dir_all(&folder).expect("mkdir");
    let fifo = folder.join("Nano-1-0.wim");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    make_wim(&folder, "Good-2-0.wim", None, false);
    for path in [
        fifo.as_path(),
        Path::new("/dev/zero"),
        Path::new("/dev/null"),
    ] {
        let started = std::time::Instant::now();
        let o = run(
            &home,
            &[
                "Install-ContainerOSImage",
                path.to_str().expect("utf-8"),
                "-Version",
                "1.0",
                "-Name",
                "X",
            ],
        );
        assert_fails(&o, "not a regular file");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{path:?} was waited on"
        );
    }
    // A folder source holding a FIFO named like a .wim: Find answers.
    assert_exit(
        &run(
            &home,
            &[
                "Register-PackageSource",
                "Local",
                folder.to_str().expect("utf-8"),
            ],
        ),
        0,
    );
    let mut child = cmd(&home)
        .args(["Find-ContainerImage"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("poll").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("Find-ContainerImage hangs on a FIFO in a folder source");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    assert_exit(&o, 0);
    let names: Vec<_> = json_lines(&o).iter().map(|x| x["Name"].clone()).collect();
    assert_eq!(names, ["Good"], "the FIFO is skipped, the real .wim listed");
}
