//! Install-ContainerImage from feeds: loopback HTTP, trust rules, the
//! terminal question, the committed sample feed and the quickstart.

use super::*;

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
    assert_fails(&o, "already installed");

    let o = run(&home, &["Install-ContainerImage", "NoSuchImage"]);
    assert_fails(&o, "No match was found");
    assert_store_consistent(&home, &store_dir(&home));
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
        "Export-ContainerImage",
        "Uninstall-ContainerOSImage",
        "Import-ContainerImage",
        "Untagged: nanoserversample:10.0.14300.1010",
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

#[test]
fn oneget_verbs_map_onto_the_store_cmdlets() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/sample");
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

    let o = run(
        &home,
        &[
            "Install-Package",
            "-ProviderName",
            "Other",
            "-Name",
            "NanoServerSample",
        ],
    );
    // As Find-Package and Save-Package answer an unknown provider.
    assert_fails(&o, "Unable to find package provider 'Other'");
    let o = run(
        &home,
        &[
            "Install-Package",
            "-ProviderName",
            "ContainerImage",
            "-Name",
            "NanoServerSample",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(
        json_lines(&o)[0]["FullName"],
        "CN=Microsoft_NanoServerSample_10.0.14300.1010"
    );
    let o = run(
        &home,
        &[
            "Get-Package",
            "-ProviderName",
            "ContainerImage",
            "-RequiredVersion",
            "10.0.14300.1010",
        ],
    );
    assert_eq!(json_lines(&o).len(), 1);
    assert_exit(
        &run(
            &home,
            &[
                "Uninstall-Package",
                "-ProviderName",
                "ContainerImage",
                "-Name",
                "NanoServerSample",
            ],
        ),
        0,
    );
    assert!(get_images(&home).is_empty());
}

#[test]
fn an_install_killed_after_downloading_reuses_the_download() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let feed = tmp.path().join("feed");
    fs::create_dir_all(&feed).expect("mkdir");
    let wim = make_wim(&feed, "Cached.wim", Some("3.0.0.0"), false);
    write_feed(&feed, "Cached", "3.0.0.0", &wim);
    let server = crate::common::server::TestServer::start(&feed);
    let url = server.url("feed.xml");
    assert_exit(
        &run(
            &home,
            &[
                "Register-PackageSource",
                "-Name",
                "Web",
                "-Location",
                &url,
                "-Trusted",
            ],
        ),
        0,
    );

    let child = spawn_paused(&home, &["Install-ContainerImage", "Cached"], "downloaded");
    kill_9(child);
    assert!(
        get_images(&home).is_empty(),
        "nothing is listed before it is installed"
    );
    assert_store_consistent(&home, &store_dir(&home));
    assert_eq!(server.requests("Cached.wim"), 1);

    let o = run(&home, &["Install-ContainerImage", "Cached"]);
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["Id"], sha256_hex(&wim));
    assert_eq!(
        server.requests("Cached.wim"),
        1,
        "the verified file in the cache is used, not downloaded again"
    );
    assert_store_consistent(&home, &store_dir(&home));
}
