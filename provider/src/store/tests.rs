use super::*;
use crate::progress::Silent;
use std::fs;

fn v(s: &str) -> Version {
    s.parse().expect("version")
}

fn os_image(name: &str, version: &str) -> NewImage {
    NewImage {
        name: name.into(),
        publisher: None,
        version: v(version),
        id: "AB".repeat(32),
        is_os_image: true,
        parent_image: None,
        tags: None,
        created: None,
        diff_id: None,
    }
}

/// A stand-in for applying a `.wim`: a small tree with a hard link and an
/// absolute symbolic link into the tree, as apply produces.
fn fake_apply(dir: &Path) -> Result<(), BoxError> {
    let files = dir.join(FILES_DIR);
    fs::create_dir_all(files.join("Windows/System32/config"))?;
    fs::write(files.join("Windows/System32/kernel32.dll"), b"kernel")?;
    fs::write(files.join("License.txt"), b"license")?;
    fs::hard_link(files.join("License.txt"), files.join("Windows/License.txt"))?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        files.join("Windows/System32/kernel32.dll"),
        files.join("kernel"),
    )?;
    fs::write(dir.join(WIM_XML_FILE), b"<WIM></WIM>")?;
    Ok(())
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::at(dir.path().join("home"));
    let store = Store::open(&home, &Silent).expect("open");
    (dir, store)
}

#[test]
fn names_are_normalised_and_checked() {
    assert_eq!(normalize_publisher(None), "CN=Microsoft");
    assert_eq!(normalize_publisher(Some("Demo")), "CN=Demo");
    assert_eq!(normalize_publisher(Some("cn=Demo")), "CN=Demo");
    assert_eq!(
        full_name("CN=Microsoft", "NanoServer", &v("10.0.14300.1010")),
        "CN=Microsoft_NanoServer_10.0.14300.1010"
    );
    assert_eq!(full_name("CN=Demo", "X", &v("1.0")), "CN=Demo_X_1.0.0.0");
    for bad in ["", "..", "a/b", "a\\b", ".hidden", "a\0b"] {
        assert!(crate::names::check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn install_records_lists_and_verifies_an_image() {
    let (_dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let rec = lock
        .install(
            os_image("NanoServer", "10.0.14300.1010"),
            false,
            fake_apply,
            &Silent,
        )
        .expect("install");
    drop(lock);
    assert_eq!(rec.full_name, "CN=Microsoft_NanoServer_10.0.14300.1010");
    assert_eq!(rec.size, 6 + 7, "the hard-linked license counts once");
    assert!(!rec.utility_vm);

    let listed = store.images(&Silent).expect("images");
    assert_eq!(listed, vec![rec.clone()]);
    let path = store.image_path(&rec.full_name);
    assert!(path.join("Files/Windows/System32/kernel32.dll").is_file());
    assert!(path.join(WIM_XML_FILE).is_file());
    #[cfg(unix)]
    assert_eq!(
        fs::read_link(path.join("Files/kernel")).expect("link"),
        PathBuf::from("Windows/System32/kernel32.dll")
    );
    assert_eq!(store.verify(&rec).expect("verify"), Vec::<String>::new());
    let staging: Vec<_> = fs::read_dir(store.root().join(STAGING_DIR))
        .expect("staging")
        .collect();
    assert!(staging.is_empty(), "staging must be empty after an install");

    fs::write(path.join("Files/License.txt"), b"tampered").expect("tamper");
    fs::remove_file(path.join("Files/Windows/System32/kernel32.dll")).expect("rm");
    fs::write(path.join("Files/extra.txt"), b"x").expect("add");
    let problems = store.verify(&rec).expect("verify");
    assert_eq!(
        problems,
        vec![
            "changed: Files/License.txt",
            "changed: Files/Windows/License.txt",
            "missing: Files/Windows/System32/kernel32.dll",
            "extra: Files/extra.txt",
        ]
    );
}

#[test]
fn reinstall_needs_force_and_replaces() {
    let (_dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let first = lock
        .install(os_image("Nano", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    let err = lock
        .install(os_image("Nano", "1.0.0.0"), false, fake_apply, &Silent)
        .expect_err("second install must fail");
    assert!(
        err.to_string()
            .contains("CN=Microsoft_Nano_1.0.0.0 is already installed; use -Force"),
        "{err}"
    );
    let second = lock
        .install(os_image("Nano", "1.0"), true, fake_apply, &Silent)
        .expect("forced install");
    assert_ne!(first.install_token, second.install_token);
    assert_eq!(lock.images(), std::slice::from_ref(&second));
    for leftovers in [TRASH_DIR, STAGING_DIR] {
        let n = fs::read_dir(store.root().join(leftovers)).map_or(0, |d| d.count());
        assert_eq!(n, 0, "{leftovers} must be empty after a reinstall");
    }
}

#[test]
fn a_failed_fill_leaves_nothing() {
    let (_dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let err = lock
        .install(
            os_image("Broken", "1.0"),
            false,
            |dir| {
                fs::create_dir_all(dir.join(FILES_DIR))?;
                fs::write(dir.join("Files/half"), b"x")?;
                Err("disk full".into())
            },
            &Silent,
        )
        .expect_err("must fail");
    assert!(format!("{err}").contains("cannot install CN=Microsoft_Broken_1.0.0.0"));
    assert!(lock.images().is_empty());
    assert!(!store.image_path("CN=Microsoft_Broken_1.0.0.0").exists());
    assert_eq!(
        fs::read_dir(store.root().join(STAGING_DIR))
            .expect("staging")
            .count(),
        0
    );
}

#[test]
fn leftovers_of_interrupted_commands_are_cleaned() {
    let (_dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let kept = lock
        .install(os_image("Kept", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    let gone = lock
        .install(os_image("Gone", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    drop(lock);
    let root = store.root().to_path_buf();
    // A half-applied staging folder.
    fs::create_dir_all(root.join(".staging/install-xyz/Files")).expect("mkdir");
    // A copy of an image under another name: its record names another
    // folder, so it is not listed, and not deleted either.
    let copied = root.join("CN=Microsoft_Orphan_1.0.0.0");
    relocate::copy_tree_for_test(&store.image_path(&kept.full_name), &copied).expect("copy");
    // A recorded image whose folder is gone.
    fs::remove_dir_all(store.image_path(&gone.full_name)).expect("rm");
    // Something that is not ours.
    fs::create_dir_all(root.join("not-an-image")).expect("mkdir");

    assert_eq!(store.images(&Silent).expect("images"), vec![kept.clone()]);
    assert!(
        copied.join("Files").exists(),
        "nothing but leftovers is deleted"
    );
    assert!(!root.join(".staging/install-xyz").exists());
    assert!(root.join("not-an-image").exists());
    let dir = Dir::open(&root).expect("open");
    match Index::load(&dir, &Silent).expect("index") {
        Loaded::Good(index) => assert_eq!(index.images, vec![kept]),
        _ => panic!("the index must be readable"),
    }
}

#[test]
fn a_lost_index_is_rebuilt_from_the_image_folders() {
    let (_dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let a = lock
        .install(os_image("A", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    let b = lock
        .install(os_image("B", "2.0"), false, fake_apply, &Silent)
        .expect("install");
    drop(lock);
    let index = store.root().join(index::INDEX_FILE);
    for damage in [None, Some(&b""[..]), Some(&b"{\"Images\": [tru"[..])] {
        match damage {
            None => fs::remove_file(&index).expect("rm index"),
            Some(bytes) => fs::write(&index, bytes).expect("damage index"),
        }
        assert_eq!(
            store.images(&Silent).expect("images"),
            vec![a.clone(), b.clone()],
            "after {damage:?}"
        );
        assert!(store.image_path(&a.full_name).join("Files").is_dir());
    }
}

#[test]
fn dependants_block_removal() {
    let (_dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let base = lock
        .install(os_image("Base", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    let child = NewImage {
        name: "App".into(),
        publisher: Some("Demo".into()),
        is_os_image: false,
        parent_image: Some(base.full_name.clone()),
        ..os_image("App", "2.0")
    };
    let child = lock
        .install(child, false, fake_apply, &Silent)
        .expect("child");
    assert_eq!(child.full_name, "CN=Demo_App_2.0.0.0");
    let err = lock.remove(&base.full_name, &Silent).expect_err("blocked");
    assert!(
        err.to_string().contains("CN=Demo_App_2.0.0.0 depend on it"),
        "{err}"
    );
    lock.remove(&child.full_name, &Silent)
        .expect("remove child");
    lock.remove(&base.full_name, &Silent).expect("remove base");
    assert!(lock.images().is_empty());
    assert!(!store.image_path(&base.full_name).exists());
}

#[test]
fn relocate_moves_everything_and_updates_the_configuration() {
    let (dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    let rec = lock
        .install(os_image("Nano", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    let dest = dir.path().join("elsewhere/store");
    let moved = lock.relocate(&dest, &Silent).expect("move");
    assert_eq!(moved, fs::canonicalize(&dest).expect("dest"));
    let home = store.home().clone();
    let reopened = Store::open(&home, &Silent).expect("reopen");
    assert_eq!(reopened.root(), moved);
    assert_eq!(reopened.images(&Silent).expect("images"), vec![rec.clone()]);
    assert!(reopened.verify(&rec).expect("verify").is_empty());
    assert!(!store.root().exists());

    let err = reopened
        .lock(&Silent)
        .expect("lock")
        .relocate(&dest, &Silent)
        .expect_err("destination exists");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn an_interrupted_move_is_finished_or_rolled_back() {
    let (dir, store) = setup();
    let mut lock = store.lock(&Silent).expect("lock");
    lock.install(os_image("Nano", "1.0"), false, fake_apply, &Silent)
        .expect("install");
    drop(lock);
    let home = store.home().clone();
    let from = store.root().to_path_buf();

    // Copy never finished: rolled back, the partial copy removed.
    let to = dir.path().join("new");
    fs::create_dir_all(dir.path().join("new.moving/junk")).expect("mkdir");
    // The marker a move writes into the store before anything moves; the
    // copy carries it.
    fs::write(from.join(".store-move"), "t1").expect("marker");
    fs::write(dir.path().join("new.moving/.store-move"), "t1").expect("marker");
    let journal = serde_json::json!({"From": from, "To": to, "Token": "t1"});
    fs::write(home.root().join(MOVE_JOURNAL), journal.to_string()).expect("journal");
    let s = Store::open(&home, &Silent).expect("open");
    assert_eq!(s.root(), from);
    assert!(!dir.path().join("new.moving").exists());
    assert!(!home.root().join(MOVE_JOURNAL).exists());

    // Renamed but configuration not written yet: finished.
    fs::write(from.join(".store-move"), "t1").expect("marker");
    fs::rename(&from, &to).expect("rename");
    fs::write(home.root().join(MOVE_JOURNAL), journal.to_string()).expect("journal");
    let s = Store::open(&home, &Silent).expect("open");
    assert_eq!(s.root(), to);
    assert_eq!(s.images(&Silent).expect("images").len(), 1);
    assert!(
        !to.join(".store-move").exists(),
        "the marker goes when the move ends"
    );

    // A planted journal naming folders this move never marked deletes nothing.
    let outside = dir.path().join("outside");
    fs::create_dir_all(outside.join("data")).expect("mkdir");
    fs::create_dir_all(dir.path().join("victim.moving/data")).expect("mkdir");
    for (from, to) in [(&outside, &to), (&to, &dir.path().join("victim"))] {
        let planted = serde_json::json!({"From": from, "To": to, "Token": "forged"});
        fs::write(home.root().join(MOVE_JOURNAL), planted.to_string()).expect("journal");
        let s = Store::open(&home, &Silent).expect("open");
        assert_eq!(s.images(&Silent).expect("images").len(), 1);
        assert!(
            outside.join("data").is_dir(),
            "an outside folder was deleted"
        );
        assert!(
            dir.path().join("victim.moving/data").is_dir(),
            "an outside folder was deleted"
        );
        assert!(!home.root().join(MOVE_JOURNAL).exists());
    }
}

#[test]
fn concurrent_installs_are_serialised() {
    let (_dir, store) = setup();
    let home = store.home().clone();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let home = home.clone();
            std::thread::spawn(move || {
                let store = Store::open(&home, &Silent).expect("open");
                let mut lock = store.lock(&Silent).expect("lock");
                lock.install(
                    os_image(&format!("Image{i}"), "1.0"),
                    false,
                    fake_apply,
                    &Silent,
                )
                .map(|r| r.full_name)
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("install");
    }
    let mut names: Vec<_> = store
        .images(&Silent)
        .expect("images")
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["Image0", "Image1", "Image2", "Image3"]);
}

#[test]
fn filters_match_name_patterns_publishers_and_versions() {
    let record = ImageRecord {
        name: "NanoServer".into(),
        publisher: "CN=Microsoft".into(),
        version: "10.0.14300.1010".into(),
        full_name: "CN=Microsoft_NanoServer_10.0.14300.1010".into(),
        id: String::new(),
        is_os_image: true,
        parent_image: None,
        size: 0,
        created: String::new(),
        utility_vm: false,
        install_token: String::new(),
        diff_id: None,
    };
    let f = |name: Option<&str>, publisher: Option<&str>, version: Option<&str>| ImageFilter {
        name: name.map(str::to_string),
        publisher: publisher.map(str::to_string),
        version: version.map(v),
    };
    assert!(f(None, None, None).matches(&record));
    assert!(f(Some("nano*"), Some("Microsoft"), Some("10.0.14300.1010")).matches(&record));
    assert!(f(None, Some("cn=microsoft"), None).matches(&record));
    assert!(!f(Some("Core*"), None, None).matches(&record));
    assert!(!f(None, Some("Demo"), None).matches(&record));
    assert!(!f(None, None, Some("10.0.14300")).matches(&record));
}
