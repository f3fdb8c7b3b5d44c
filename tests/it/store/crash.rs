//! Crash safety and concurrency: `kill -9` at each stage of an install,
//! removal and move, disk full, and commands racing for the store.

use super::*;

#[test]
fn kill_9_at_any_stage_of_an_install_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, true);
    let wim_s = wim.to_str().expect("utf-8");
    for (stage, listed_after) in [
        ("staging", false),
        ("applied", false),
        ("staged", false),
        // Published is installed: the folder is complete and carries its
        // record, so the next command lists it.
        ("published", true),
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
    // Moved aside but not recorded as gone: the removal did not happen, and
    // the image is put back whole.
    let images = get_images(&home);
    assert_eq!(
        images.len(),
        1,
        "a half-removed image is put back: {images:?}"
    );
    assert_store_consistent(&home, &store_dir(&home));
    let tested = run(&home, &["Test-ContainerImage"]);
    assert_exit(&tested, 0);
    assert_eq!(json_lines(&tested)[0]["IsValid"], true);
}

#[test]
fn kill_9_during_a_move_leaves_the_store_usable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, false);
    for stage in ["move-started", "move-renamed"] {
        let home = tmp.path().join(format!("home-{stage}"));
        install_os_image(&home, &wim);
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
    // Readers do not wait, and never clean up a live install's staging folder.
    assert!(get_images(&home).is_empty());
    let staging = store_dir(&home).join(".staging");
    assert_eq!(
        fs::read_dir(&staging).expect("staging").count(),
        1,
        "the paused install's staging folder is left alone"
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

#[test]
fn moving_to_another_file_system_copies_and_survives_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(tmp.path(), "Base-1-0.wim", None, true);
    install_os_image(&home, &wim);
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
