//! The small things an administrator trips over after the first minutes:
//! no lock file left in saved folders, no empty folders left by a store
//! move, `install-cmdlets.sh` linking `containerimage` itself, Move's
//! `-WhatIf`, `-Verbose` on every cmdlet, FullNames with short versions,
//! a folder given as a `.wim`, and what to do about permission errors.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::common::{
    assert_exit, assert_fails, bin_path, cmd, json_lines, require_tool, run, small_wim, stderr,
    stdout,
};

/// A folder feed of one image per `(name, bytes)`, registered as `Local`.
fn local_feed(home: &Path, dir: &Path, images: &[(&str, &[u8])]) {
    write_local_feed(dir, images);
    let o = run(home, &register_args(dir));
    assert_exit(&o, 0);
}

fn register_args(dir: &Path) -> Vec<&str> {
    vec![
        "Register-PackageSource",
        "-Name",
        "Local",
        "-Location",
        dir.to_str().expect("utf-8"),
        "-Trusted",
    ]
}

/// A folder feed of one image per `(name, bytes)`, version 1.0.
fn write_local_feed(dir: &Path, images: &[(&str, &[u8])]) {
    fs::create_dir_all(dir).expect("mkdir");
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n",
    );
    for (name, data) in images {
        let file = format!("{name}.wim");
        fs::write(dir.join(&file), data).expect("write image");
        xml.push_str(&format!(
            "  <Image>\n    <Name>{name}</Name>\n    <Version>1.0</Version>\n    <Size>{}</Size>\n    \
             <Sha256>{}</Sha256>\n    <Location>{file}</Location>\n  </Image>\n",
            data.len(),
            hex::encode(Sha256::digest(data)),
        ));
    }
    xml.push_str("</ContainerImageFeed>\n");
    fs::write(dir.join("feed.xml"), xml).expect("feed.xml");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn saved_folders_hold_no_lock_file_and_concurrent_saves_keep_both_entries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    local_feed(
        &home,
        &tmp.path().join("feed"),
        &[("Alpha", &[1u8; 70_000]), ("Beta", &[2u8; 90_000])],
    );
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    // An empty lock file that an earlier version left behind goes too.
    fs::write(out.join(".feed.xml.lock"), b"").expect("old lock");
    let out_s = out.to_str().expect("utf-8");
    let saves: Vec<_> = ["Alpha", "Beta"]
        .iter()
        .map(|name| {
            cmd(&home)
                .args(["Save-ContainerImage", name, "-Path", out_s])
                .spawn()
                .expect("spawn")
        })
        .collect();
    for save in saves {
        let o = save.wait_with_output().expect("wait");
        assert_exit(&o, 0);
    }
    assert_eq!(
        names_in(&out),
        ["Alpha-1-0.wim", "Beta-1-0.wim", "feed.xml"],
        "only the images and the feed are left in the folder"
    );
    let feed = fs::read_to_string(out.join("feed.xml")).expect("feed.xml");
    assert_eq!(
        feed.matches("<Image>").count(),
        2,
        "both saves kept:\n{feed}"
    );
}

#[test]
fn a_lock_file_with_content_is_not_ours_and_stays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    local_feed(&home, &tmp.path().join("feed"), &[("Alpha", &[1u8; 1000])]);
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    fs::write(out.join(".feed.xml.lock"), b"mine").expect("user file");
    let o = run(
        &home,
        &[
            "Save-ContainerImage",
            "Alpha",
            "-Path",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(fs::read(out.join(".feed.xml.lock")).expect("kept"), b"mine");
}

#[test]
fn moving_the_store_leaves_no_empty_folders_it_made() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = small_wim(tmp.path(), "Base");
    let o = run(
        &home,
        &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    let store_at = |p: &Path| {
        let o = run(&home, &["Get-ContainerImage"]);
        assert_exit(&o, 0);
        let path = json_lines(&o)[0]["Path"]
            .as_str()
            .expect("Path")
            .to_string();
        assert!(
            Path::new(&path).starts_with(p),
            "the image is at {path}, not in {}",
            p.display()
        );
    };

    let move_to = |to: &Path| {
        run(
            &home,
            &["Move-ContainerImageRepository", to.to_str().expect("utf-8")],
        )
    };
    let first = tmp.path().join("a/b/c/store");
    let o = move_to(&first);
    assert_exit(&o, 0);
    store_at(&first);

    // A refused move (into the store itself) leaves no folder behind.
    let inside = first.join("p/q/new");
    let o = move_to(&inside);
    assert_fails(&o, "inside the store");
    assert!(
        !first.join("p").exists(),
        "a refused move left {}",
        first.join("p").display()
    );

    // Moving on removes the folders the first move made, now empty.
    let mine = tmp.path().join("mine");
    fs::create_dir_all(&mine).expect("mkdir");
    let second = mine.join("store");
    let o = move_to(&second);
    assert_exit(&o, 0);
    store_at(&second);
    assert!(
        !tmp.path().join("a").exists(),
        "empty folders left after the move: {:?}",
        names_in(&tmp.path().join("a"))
    );

    // A folder the user made is never removed, even when left empty.
    let third = tmp.path().join("x/store");
    let o = move_to(&third);
    assert_exit(&o, 0);
    store_at(&third);
    assert!(mine.is_dir(), "the user's own folder was removed");
    assert!(names_in(&mine).is_empty());
}

#[test]
fn move_what_if_says_what_would_move_and_moves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = small_wim(tmp.path(), "Base");
    assert_exit(
        &run(
            &home,
            &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
        ),
        0,
    );
    let config_before = fs::read(home.join("config.json")).ok();
    let dest = tmp.path().join("new/store");
    let o = run(
        &home,
        &[
            "Move-ContainerImageRepository",
            dest.to_str().expect("utf-8"),
            "-WhatIf",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "What if: Performing the operation \"Move Directory\" on target \"Item: {} Destination: {}\".",
            home.join("images").display(),
            dest.display()
        )
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(
        !tmp.path().join("new").exists(),
        "-WhatIf created the destination"
    );
    assert_eq!(fs::read(home.join("config.json")).ok(), config_before);
    assert!(home.join("images").is_dir());
}

#[test]
fn install_cmdlets_links_containerimage_itself() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-cmdlets.sh");
    let dir = tmp.path().join("bin");
    let o = Command::new("bash")
        .arg(script)
        .arg(&dir)
        .arg(bin_path())
        .output()
        .expect("install-cmdlets.sh runs");
    assert_exit(&o, 0);
    let link = dir.join("containerimage");
    assert_eq!(fs::read_link(&link).expect("a link"), bin_path());
    // What the messages suggest runs from DIR on PATH.
    let o = Command::new("/bin/sh")
        .args(["-c", "containerimage --version"])
        .env("PATH", &dir)
        .output()
        .expect("sh runs");
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("containerimage "), "{}", stdout(&o));

    // Installing into the binary's own folder leaves the binary as it is.
    let own = tmp.path().join("own");
    fs::create_dir_all(&own).expect("mkdir");
    let copy = own.join("containerimage");
    fs::copy(bin_path(), &copy).expect("copy the binary");
    let o = Command::new("bash")
        .arg(script)
        .arg(&own)
        .arg(&copy)
        .output()
        .expect("install-cmdlets.sh runs");
    assert_exit(&o, 0);
    assert!(fs::symlink_metadata(&copy)
        .expect("stat")
        .file_type()
        .is_file());
    assert_eq!(
        fs::read_link(own.join("Get-ContainerImage")).expect("a link"),
        copy
    );
}

/// Runs a command with and without `-Verbose`: standard output (the
/// objects) is the same, and the verbose run's standard error is returned.
#[track_caller]
fn verbose_lines(home: &Path, args: &[&str], code: i32) -> String {
    let plain = run(home, args);
    assert_exit(&plain, code);
    let mut with = args.to_vec();
    with.push("-Verbose");
    let o = run(home, &with);
    assert_exit(&o, code);
    let err = stderr(&o);
    assert_eq!(stdout(&o), stdout(&plain), "-Verbose changed the objects");
    assert!(
        !stderr(&plain).contains("VERBOSE:"),
        "verbose lines without -Verbose:\n{}",
        stderr(&plain)
    );
    let cmdlet = args[0];
    for wanted in [
        format!(
            "VERBOSE: home folder {} (from CONTAINERIMAGE_HOME)",
            home.display()
        ),
        "VERBOSE: image store ".to_string(),
        format!("VERBOSE: {cmdlet} "),
        " s\n".to_string(),
    ] {
        assert!(
            err.contains(&wanted),
            "{cmdlet} -Verbose lacks {wanted:?}:\n{err}"
        );
    }
    err
}

#[test]
fn verbose_says_where_what_and_how_long_for_every_cmdlet() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let feed = tmp.path().join("feed");
    local_feed(&home, &feed, &[("Alpha", &[1u8; 5000])]);
    let wim = small_wim(tmp.path(), "Base");
    let wim_s = wim.to_str().expect("utf-8");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");

    let err = verbose_lines(&home, &["Find-ContainerImage", "Alpha"], 0);
    assert!(err.contains(&feed.display().to_string()), "{err}");
    verbose_lines(&home, &["Get-PackageSource"], 0);
    verbose_lines(&home, &["Get-ContainerImage"], 0);
    verbose_lines(&home, &["Get-WindowsImage", "-ImagePath", wim_s], 0);
    verbose_lines(
        &home,
        &[
            "Save-ContainerImage",
            "Alpha",
            "-Path",
            out.to_str().expect("utf-8"),
            "-Force",
        ],
        0,
    );
    // Installed first, so both runs are the "already installed" failure.
    assert_exit(&run(&home, &["Install-ContainerOSImage", wim_s]), 0);
    let err = verbose_lines(&home, &["Install-ContainerOSImage", wim_s], 1);
    assert!(
        err.contains("VERBOSE: Install-ContainerOSImage failed in "),
        "{err}"
    );
    verbose_lines(&home, &["Test-ContainerImage"], 0);
    verbose_lines(
        &home,
        &[
            "Uninstall-ContainerOSImage",
            "CN=Microsoft_Base_1.0.0.0",
            "-WhatIf",
        ],
        0,
    );
    let err = verbose_lines(&home, &["Get-Help", "Find-ContainerImage"], 0);
    assert!(err.contains("VERBOSE: Get-Help completed in "), "{err}");
}

#[test]
fn full_names_match_whatever_the_version_is_written_as() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = small_wim(tmp.path(), "Base");
    let o = run(
        &home,
        &[
            "Install-ContainerOSImage",
            wim.to_str().expect("utf-8"),
            "-Name",
            "Base",
            "-Version",
            "1.0",
            "-Publisher",
            "Demo",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["FullName"], "CN=Demo_Base_1.0.0.0");
    // Another version stays unmatched.
    let o = run(
        &home,
        &[
            "Uninstall-ContainerOSImage",
            "-FullName",
            "CN=Demo_Base_1.0.1",
        ],
    );
    assert_fails(&o, "No installed image matches");
    let o = run(
        &home,
        &[
            "Uninstall-ContainerOSImage",
            "-FullName",
            "cn=demo_base_1.0",
        ],
    );
    assert_exit(&o, 0);
    let o = run(&home, &["Get-ContainerImage"]);
    assert_exit(&o, 0);
    assert!(json_lines(&o).is_empty(), "still installed: {}", stdout(&o));
}

#[test]
fn a_folder_given_as_a_wim_is_not_a_file_not_damaged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let folder = tmp.path().join("NanoServer.wim");
    fs::create_dir_all(&folder).expect("mkdir");
    let folder_s = folder.to_str().expect("utf-8");
    for args in [
        vec!["Install-ContainerOSImage", "-WimPath", folder_s],
        vec!["Install-ContainerOSImage", "-WimPath", folder_s, "-WhatIf"],
        vec!["Get-WindowsImage", "-ImagePath", folder_s],
    ] {
        let o = run(&home, &args);
        assert_fails(&o, &format!("{folder_s} is a folder, not a file"));
        assert!(
            stderr(&o).contains("give the path of a .wim file"),
            "{}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("damaged"), "{}", stderr(&o));
    }
}

/// Runs the binary as an unprivileged user: as root through `setpriv`
/// (the user `nobody`), otherwise as the user running the tests.
fn run_unprivileged(home: &Path, args: &[&str]) -> Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| stdout(&o).trim() == "0");
    let mut c = if root {
        require_tool("setpriv");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(bin_path());
        c
    } else {
        Command::new(bin_path())
    };
    c.args(args)
        .env("CONTAINERIMAGE_HOME", home)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs")
}

#[test]
fn permission_errors_say_to_run_as_root_or_choose_another_home() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Readable and searchable by everyone, writable by the owner only.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let locked = tmp.path().join("locked");
    fs::create_dir_all(&locked).expect("mkdir");
    let wim = small_wim(tmp.path(), "Base");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).expect("chmod");

    let what_to_do = "what to do: run the command as root (sudo), or set CONTAINERIMAGE_HOME to a folder you can write";
    // A home that cannot be created, and one that holds nothing writable.
    for home in [locked.join("home"), locked.clone()] {
        let o = run_unprivileged(
            &home,
            &["Install-ContainerOSImage", wim.to_str().expect("utf-8")],
        );
        assert_fails(&o, "Permission denied");
        assert!(stderr(&o).contains(what_to_do), "{}", stderr(&o));
        let o = run_unprivileged(
            &home,
            &[
                "Register-PackageSource",
                "-Name",
                "x",
                "-Location",
                tmp.path().to_str().expect("utf-8"),
            ],
        );
        assert_fails(&o, "Permission denied");
        assert!(stderr(&o).contains(what_to_do), "{}", stderr(&o));
    }
    // Outside the home, the advice is about the path given.
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).expect("chmod");
    let feed = tmp.path().join("feed");
    write_local_feed(&feed, &[("Alpha", &[1u8; 100])]);
    assert_exit(&run_unprivileged(&home, &register_args(&feed)), 0);
    let out = locked.join("Alpha.wim");
    let o = run_unprivileged(
        &home,
        &[
            "Save-ContainerImage",
            "Alpha",
            "-Destination",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_fails(&o, "Permission denied");
    let err = stderr(&o);
    assert!(
        err.contains("what to do: run the command as root (sudo), or give a path you can write"),
        "{err}"
    );
    assert!(!err.contains("CONTAINERIMAGE_HOME"), "{err}");
}

#[test]
fn piped_objects_are_installed_with_each_feed_read_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let served = tmp.path().join("served");
    fs::create_dir_all(&served).expect("mkdir");
    let names = ["Alpha", "Beta", "Gamma"];
    let images: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|n| (*n, fs::read(small_wim(tmp.path(), n)).expect("read wim")))
        .collect();
    let images: Vec<(&str, &[u8])> = images.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    write_local_feed(&served, &images);
    let server = crate::common::server::TestServer::start(&served);
    let o = run(
        &home,
        &[
            "Register-PackageSource",
            "-Name",
            "Web",
            "-Location",
            &server.url("feed.xml"),
            "-Trusted",
        ],
    );
    assert_exit(&o, 0);
    let found = run(&home, &["Find-ContainerImage"]);
    assert_exit(&found, 0);
    assert_eq!(json_lines(&found).len(), 3);
    let before = server.requests("/feed.xml");

    let mut install = cmd(&home)
        .arg("Install-ContainerImage")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut input = install.stdin.take().expect("stdin");
        input.write_all(&found.stdout).expect("pipe");
    }
    let o = install.wait_with_output().expect("wait");
    assert_exit(&o, 0);
    let installed: Vec<String> = json_lines(&o)
        .iter()
        .map(|v| v["Name"].as_str().expect("Name").to_string())
        .collect();
    assert_eq!(installed, names);
    assert_eq!(
        server.requests("/feed.xml") - before,
        1,
        "three piped objects from one source read its feed once"
    );
}
