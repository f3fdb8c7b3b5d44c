//! Feeds, sources and Find-ContainerImage, end to end: the real binary
//! against feeds served by a real HTTP server on 127.0.0.1, feed files,
//! folders of `.wim` files made by wimlib-imagex, and the JSON index.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::server::TestServer;
use crate::common::{assert_exit, assert_fails, json_lines, run, stderr, stdout, wimlib};

const SHA_A: &str = "3f1c000000000000000000000000000000000000000000000000000000000a9e";

/// Answers every request with a `302` to the same path under `target`, the
/// way the original provider's feeds sat behind forwarding links.
struct RedirectServer {
    addr: SocketAddr,
}

impl RedirectServer {
    fn start(target: String) -> RedirectServer {
        use axum::extract::State;
        use axum::http::{header, StatusCode, Uri};
        use axum::response::{IntoResponse, Response};

        async fn redirect(State(target): State<String>, uri: Uri) -> Response {
            let to = format!("{}{}", target.trim_end_matches('/'), uri.path());
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(redirect).with_state(target);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        RedirectServer { addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

/// A feed manifest with one `<Image>` per (name, version, location).
fn feed_xml(images: &[(&str, &str, &str)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n",
    );
    for (name, version, location) in images {
        out.push_str(&format!(
            "  <Image>\n    <Name>{name}</Name>\n    <Version>{version}</Version>\n    \
             <Description>{name} {version}</Description>\n    <Size>42</Size>\n    \
             <Sha256>{SHA_A}</Sha256>\n    <Location>{location}</Location>\n  </Image>\n"
        ));
    }
    out.push_str("</ContainerImageFeed>\n");
    out
}

fn gallery() -> String {
    feed_xml(&[
        (
            "NanoServer",
            "10.0.14300.1010",
            "NanoServer-10-0-14300-1010.wim",
        ),
        (
            "NanoServer",
            "10.0.14300.999",
            "NanoServer-10-0-14300-999.wim",
        ),
        ("NanoServer", "10.0.14393.0", "NanoServer-10-0-14393-0.wim"),
        (
            "WindowsServerCore",
            "10.0.14300.1000",
            "https://mirror.test/core.wim",
        ),
        ("WindowsServerCore", "1.0", "core-1.wim"),
    ])
}

fn ok_json(home: &Path, args: &[&str]) -> Vec<Value> {
    let o = run(home, args);
    assert_exit(&o, 0);
    json_lines(&o)
}

fn register(home: &Path, name: &str, location: &str) {
    let o = run(
        home,
        &[
            "Register-PackageSource",
            "-Name",
            name,
            "-Location",
            location,
        ],
    );
    assert_exit(&o, 0);
}

/// "Name Version" of every object, in output order.
fn found(o: &Output) -> Vec<String> {
    json_lines(o)
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["Name"].as_str().unwrap_or("?"),
                v["Version"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

#[test]
fn provider_and_source_cmdlets_persist_the_configuration() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    // A fresh home: no sources, and Find says how to register one.
    assert!(ok_json(h, &["Get-PackageSource"]).is_empty());
    let o = run(h, &["Find-ContainerImage"]);
    assert_fails(&o, "Register-PackageSource -Name");

    for name in ["ContainerImage", "containerprovider", "ContainerImage"] {
        let p = ok_json(h, &["Install-PackageProvider", "-Name", name]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["Name"], "ContainerImage");
        for field in ["Version", "Source", "Summary"] {
            assert!(p[0][field].is_string(), "{field} in {:?}", p[0]);
        }
    }
    assert!(h.join("config.json").is_file());
    assert!(h.join("images").is_dir(), "the store folder is created");
    let o = run(h, &["Install-PackageProvider", "NuGet"]);
    assert_fails(&o, "'NuGet'");

    let p = ok_json(h, &["Get-PackageProvider"]);
    assert_eq!(p[0]["Name"], "ContainerImage");
    assert!(p[0]["DynamicOptions"].is_array(), "{:?}", p[0]);

    // Register: a relative path is stored absolute; a duplicate needs -Force.
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("feeds")).expect("mkdir");
    let o = crate::common::cmd(h)
        .current_dir(work.path())
        .args(["Register-PackageSource", "Local", "feeds"])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    let s = json_lines(&o);
    let expected_location = work.path().join("feeds").display().to_string();
    assert_eq!(s[0]["Name"], "Local");
    assert_eq!(s[0]["Location"], expected_location.as_str());
    assert_eq!(s[0]["IsTrusted"], false);
    assert_eq!(s[0]["ProviderName"], "ContainerImage");

    let o = run(
        h,
        &[
            "Register-PackageSource",
            "-Name",
            "local",
            "-Location",
            "https://x.test/feed.xml",
        ],
    );
    assert_fails(&o, "-Force");
    let s = ok_json(
        h,
        &[
            "Register-PackageSource",
            "local",
            "https://x.test/feed.xml",
            "-Trusted",
            "-Force",
        ],
    );
    assert_eq!(s[0]["Location"], "https://x.test/feed.xml");
    assert_eq!(s[0]["IsTrusted"], true);
    register(h, "Other", "https://other.test/feed.xml");

    // Set: rename, relocate, untrust with -Trusted:false.
    let s = ok_json(
        h,
        &[
            "Set-PackageSource",
            "local",
            "-NewName",
            "Gallery",
            "-Trusted:false",
        ],
    );
    assert_eq!(
        (s[0]["Name"].as_str(), s[0]["IsTrusted"].as_bool()),
        (Some("Gallery"), Some(false))
    );
    let s = ok_json(
        h,
        &[
            "Set-PackageSource",
            "Gallery",
            "-NewLocation",
            "https://new.test/f.xml",
            "-Trusted",
        ],
    );
    assert_eq!(s[0]["Location"], "https://new.test/f.xml");
    assert_eq!(s[0]["IsTrusted"], true);
    let o = run(h, &["Set-PackageSource", "Gallery", "-NewName", "Other"]);
    assert_exit(&o, 1);

    // Get with patterns; Unregister.
    let names = |v: Vec<Value>| -> Vec<String> {
        v.iter()
            .map(|s| s["Name"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    assert_eq!(
        names(ok_json(h, &["Get-PackageSource"])),
        ["Gallery", "Other"]
    );
    assert_eq!(
        names(ok_json(h, &["Get-PackageSource", "gal*"])),
        ["Gallery"]
    );
    assert!(ok_json(h, &["Get-PackageSource", "z*"]).is_empty());
    let o = run(h, &["Get-PackageSource", "Nope"]);
    assert_fails(&o, "Unable to find package source 'Nope'");
    let o = run(h, &["Unregister-PackageSource", "gallery"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).is_empty());
    assert_exit(&run(h, &["Unregister-PackageSource", "gallery"]), 1);
    assert_eq!(names(ok_json(h, &["Get-PackageSource"])), ["Other"]);
    let config = std::fs::read_to_string(h.join("config.json")).expect("config");
    assert!(
        config.contains("https://other.test/feed.xml") && !config.contains("new.test"),
        "{config}"
    );
    let o = run(h, &["Register-PackageSource", "a*", "https://x.test/"]);
    assert_fails(&o, "should not have wildcards");
}

#[test]
fn find_over_http_follows_onegets_rules() {
    let home = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(site.path().join("feeds")).expect("mkdir");
    std::fs::write(site.path().join("feeds/feed.xml"), gallery()).expect("write feed");
    let server = TestServer::start(site.path());
    let forward = RedirectServer::start(server.url(""));
    let h = home.path();
    // Through a redirect: relative locations resolve against the final URL.
    register(h, "Gallery", &forward.url("feeds/feed.xml"));

    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "NanoServer 10.0.14393.0",
                "WindowsServerCore 10.0.14300.1000",
            ],
        ),
        (&["nanoserver"], &["NanoServer 10.0.14393.0"]),
        (&["*core"], &["WindowsServerCore 10.0.14300.1000"]),
        (
            &["Nano?erver", "-AllVersions"],
            &[
                "NanoServer 10.0.14393.0",
                "NanoServer 10.0.14300.1010",
                "NanoServer 10.0.14300.999",
            ],
        ),
        (
            &["-Name", "NanoServer,WindowsServerCore"],
            &[
                "NanoServer 10.0.14393.0",
                "WindowsServerCore 10.0.14300.1000",
            ],
        ),
        (
            &[
                "NanoServer",
                "-MinimumVersion",
                "10.0.14300.999",
                "-MaximumVersion",
                "10.0.14300.1010",
            ],
            &["NanoServer 10.0.14300.1010"],
        ),
        (
            &["NanoServer", "-MaximumVersion", "10.0.14300.999"],
            &["NanoServer 10.0.14300.999"],
        ),
        (
            &["NanoServer", "-MinimumVersion", "10.0.14393"],
            &["NanoServer 10.0.14393.0"],
        ),
        (
            &["NanoServer", "-RequiredVersion", "10.0.14300.1010"],
            &["NanoServer 10.0.14300.1010"],
        ),
        (
            &["WindowsServerCore", "-Version", "1"],
            &["WindowsServerCore 1.0"],
        ),
        (
            &["*", "-Source", "gallery"],
            &[
                "NanoServer 10.0.14393.0",
                "WindowsServerCore 10.0.14300.1000",
            ],
        ),
        (&["zzz*"], &[]),
    ];
    for (args, expected) in cases {
        let mut argv = vec!["Find-ContainerImage"];
        argv.extend_from_slice(args);
        let o = run(h, &argv);
        assert_exit(&o, 0);
        assert_eq!(found(&o), *expected, "Find-ContainerImage {args:?}");
    }

    // Every field in JSON; locations resolved against the feed's final URL.
    let v = ok_json(
        h,
        &[
            "Find-ContainerImage",
            "NanoServer",
            "-Version",
            "10.0.14300.1010",
        ],
    );
    assert_eq!(v[0]["Source"], "Gallery");
    assert_eq!(v[0]["Description"], "NanoServer 10.0.14300.1010");
    assert_eq!(v[0]["Size"], 42);
    assert_eq!(v[0]["Sha256"], SHA_A);
    assert_eq!(v[0]["Publisher"], Value::Null);
    assert_eq!(
        v[0]["Location"],
        server.url("feeds/NanoServer-10-0-14300-1010.wim").as_str()
    );
    let v = ok_json(h, &["Find-ContainerImage", "WindowsServerCore"]);
    assert_eq!(v[0]["Location"], "https://mirror.test/core.wim");

    // The table shows Name, Version, Source, Description.
    let o = run(
        h,
        &[
            "Find-ContainerImage",
            "NanoServer",
            "-OutputFormat",
            "Table",
        ],
    );
    assert_exit(&o, 0);
    let table = stdout(&o);
    let header: Vec<&str> = table
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["Name", "Version", "Source", "Description"],
        "{table}"
    );
    assert!(table.contains("NanoServer 10.0.14393.0"), "{table}");

    // Find-Package maps onto Find.
    let o = run(
        h,
        &[
            "Find-Package",
            "-ProviderName",
            "ContainerImage",
            "-Name",
            "NanoServer",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(found(&o), ["NanoServer 10.0.14393.0"]);
    let o = run(
        h,
        &[
            "Find-Package",
            "-ProviderName",
            "NuGet",
            "-Name",
            "NanoServer",
        ],
    );
    assert_fails(&o, "Unable to find package provider 'NuGet'");
}

#[test]
fn invalid_version_combinations_are_usage_errors_in_onegets_words() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    register(h, "Gallery", "https://unused.test/feed.xml");
    let cases: &[(&[&str], &str)] = &[
        (
            &["NanoServer", "-AllVersions", "-RequiredVersion", "1.0"],
            "You cannot use the parameter AllVersions with RequiredVersion, MinimumVersion or MaximumVersion in the same command.",
        ),
        (&["NanoServer", "-AllVersions", "-MinimumVersion", "1.0"], "You cannot use the parameter AllVersions"),
        (
            &["NanoServer", "-RequiredVersion", "1.0", "-MinimumVersion", "0.5"],
            "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command.",
        ),
        (&["NanoServer", "-Version", "1.0", "-MaximumVersion", "2.0"], "RequiredVersion and either MinimumVersion or MaximumVersion"),
        (
            &["NanoServer", "-MinimumVersion", "2.0", "-MaximumVersion", "1.5"],
            "The specified MinimumVersion '2.0' is greater than the specified MaximumVersion '1.5'.",
        ),
        (&["NanoServer", "-MinimumVersion", "ten"], "Cannot bind parameter 'MinimumVersion'"),
    ];
    for (args, message) in cases {
        let mut argv = vec!["Find-ContainerImage"];
        argv.extend_from_slice(args);
        let o = run(h, &argv);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn nothing_found_is_exit_1_with_onegets_message_and_other_names_still_answer() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = dir.path().join("gallery.xml");
    std::fs::write(&feed, gallery()).expect("write");
    let h = home.path();
    register(h, "File", feed.to_str().expect("utf-8 path"));

    let o = run(h, &["Find-ContainerImage", "Missing"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(
            "No match was found for the specified search criteria and image name 'Missing'. \
             Try Get-PackageSource to see all available registered package sources."
        ),
        "{}",
        stderr(&o)
    );
    let o = run(h, &["Find-ContainerImage", "NanoServer,Missing"]);
    assert_exit(&o, 1);
    assert_eq!(found(&o), ["NanoServer 10.0.14393.0"]);
    assert!(
        stderr(&o).contains("image name 'Missing'"),
        "{}",
        stderr(&o)
    );
    let o = run(
        h,
        &[
            "Find-ContainerImage",
            "NanoServer",
            "-RequiredVersion",
            "9.9",
        ],
    );
    assert_fails(&o, "image name 'NanoServer'");
    // A wildcard that matches nothing is not an error (OneGet says so only with -Verbose).
    let o = run(h, &["Find-ContainerImage", "Missing*", "-Verbose"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("Missing*"), "{}", stderr(&o));
    // -Source also takes a location that is not registered.
    let other = tempfile::tempdir().expect("tempdir");
    let unregistered = run(
        other.path(),
        &[
            "Find-ContainerImage",
            "-Source",
            feed.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&unregistered, 0);
    assert_eq!(
        found(&unregistered),
        [
            "NanoServer 10.0.14393.0",
            "WindowsServerCore 10.0.14300.1000"
        ]
    );
    let o = run(h, &["Find-ContainerImage", "-Source", "NoSuchSource"]);
    assert_fails(&o, "Unable to find package source 'NoSuchSource'");
}

#[test]
fn an_unreachable_source_is_a_warning_while_another_answers() {
    let home = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("feed.xml"), gallery()).expect("write");
    let server = TestServer::start(site.path());
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let h = home.path();
    register(h, "Down", &format!("http://{closed}/feed.xml"));
    register(h, "Missing", &server.url("nothing-here.xml"));
    register(h, "Up", &server.url("feed.xml"));

    let o = run(h, &["Find-ContainerImage", "NanoServer"]);
    assert_exit(&o, 0);
    assert_eq!(found(&o), ["NanoServer 10.0.14393.0"]);
    assert_eq!(json_lines(&o)[0]["Source"], "Up");
    let err = stderr(&o);
    assert!(err.contains("WARNING:") && err.contains("'Down'"), "{err}");
    assert!(err.contains("'Missing'") && err.contains("404"), "{err}");

    // Only unreachable sources: the warning, then that nothing could be searched.
    let o = run(h, &["Find-ContainerImage", "NanoServer", "-Source", "Down"]);
    assert_fails(&o, "WARNING:");
    assert!(
        stderr(&o).contains("no source could be read, so nothing was searched ('Down': "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn results_from_several_sources_are_merged_each_with_its_source() {
    let home = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("a.xml"), gallery()).expect("write");
    std::fs::write(
        site.path().join("b.xml"),
        feed_xml(&[("NanoServer", "11.0", "n.wim"), ("Other", "1.0", "o.wim")]),
    )
    .expect("write");
    let server = TestServer::start(site.path());
    let h = home.path();
    register(h, "A", &server.url("a.xml"));
    // The second source is a file:// URL.
    let file_url = format!("file://{}", site.path().join("b.xml").display());
    register(h, "B", &file_url);

    let o = run(h, &["Find-ContainerImage", "NanoServer"]);
    assert_exit(&o, 0);
    let v = json_lines(&o);
    let got: Vec<String> = v
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["Source"].as_str().unwrap_or("?"),
                e["Version"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(got, ["A 10.0.14393.0", "B 11.0"]);
    assert_eq!(
        v[1]["Location"],
        site.path().join("n.wim").display().to_string().as_str()
    );
    let o = run(h, &["Find-ContainerImage", "-Source", "B"]);
    assert_eq!(found(&o), ["NanoServer 11.0", "Other 1.0"]);
}

#[test]
fn broken_feeds_name_the_feed_the_line_and_the_field() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let good = gallery();
    let cases: Vec<(&str, String, &[&str])> = vec![
        // Line 13 holds the second image's <Version>, line 8 the first <Sha256>.
        (
            "bad-version.xml",
            good.replacen("10.0.14300.999", "10.0.x", 1),
            &["line 13", "Version", "'10.0.x' is not a version"],
        ),
        (
            "bad-hash.xml",
            good.replacen(SHA_A, "12345", 1),
            &["line 8", "Sha256", "64 hexadecimal digits"],
        ),
        (
            "no-size.xml",
            good.replacen("    <Size>42</Size>\n", "", 1),
            &["line 3", "Size"],
        ),
        (
            "bad-xml.xml",
            good.replacen("</Name>", "</Nam>", 1),
            &["line 4"],
        ),
    ];
    for (file, text, fragments) in &cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write");
        let name = file.trim_end_matches(".xml");
        register(h, name, path.to_str().expect("utf-8"));
        let o = run(h, &["Find-ContainerImage", "-Source", name]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&path.display().to_string()),
            "{file}: the feed is named: {err}"
        );
        for f in *fragments {
            assert!(err.contains(f), "{file}: expected {f:?} in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn the_original_providers_json_index_is_a_feed() {
    let home = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        site.path().join("index.json"),
        r#"[
  {"Name": "NanoServer", "Version": "10.0.14300.1010", "Description": "Container OS Image of Windows Server 2016 TP5: Nano Server",
   "SasToken": "https://blobs.test/NanoServer.wim?sv=2015&sig=x"},
  {"Name": "NanoServer", "Version": "10.0.14300.1000", "Description": "older", "SasToken": "old/NanoServer.wim"}
]"#,
    )
    .expect("write");
    let server = TestServer::start(site.path());
    let h = home.path();
    register(h, "Legacy", &server.url("index.json"));
    let v = ok_json(h, &["Find-ContainerImage", "-AllVersions"]);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["Version"], "10.0.14300.1010");
    assert_eq!(
        v[0]["Location"],
        "https://blobs.test/NanoServer.wim?sv=2015&sig=x"
    );
    assert_eq!(v[0]["Size"], Value::Null);
    assert_eq!(v[0]["Sha256"], Value::Null);
    assert_eq!(v[1]["Location"], server.url("old/NanoServer.wim").as_str());

    std::fs::write(
        site.path().join("index.json"),
        "[\n {\"Name\": \"A\",\n  \"Version\": \"x\", \"SasToken\": \"a\"}\n]",
    )
    .expect("write");
    let o = run(h, &["Find-ContainerImage"]);
    assert_fails(&o, "line 2");
    assert!(stderr(&o).contains("Version"), "{}", stderr(&o));
}

/// Makes a small `.wim` with wimlib-imagex from a folder holding `content`.
fn make_wim(path: &Path, content: &str) {
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("file.txt"), content).expect("write");
    std::fs::create_dir(src.path().join("Windows")).expect("mkdir");
    std::fs::write(src.path().join("Windows/readme.txt"), "readme").expect("write");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    wimlib(&[
        "capture",
        src.path().to_str().expect("utf-8"),
        path.to_str().expect("utf-8"),
        "Test image",
        "A test image",
    ]);
}

#[test]
fn a_folder_of_wims_is_a_source() {
    let home = tempfile::tempdir().expect("tempdir");
    let folder = tempfile::tempdir().expect("tempdir");
    let nano = folder.path().join("NanoServer-10-0-14300-1010.wim");
    let core = folder
        .path()
        .join("sub/WindowsServerCore-10.0.14300.1000.wim");
    make_wim(&nano, "nano");
    make_wim(&core, "core");
    // Two levels down is not looked at; a file without a version is skipped with a warning.
    make_wim(&folder.path().join("sub/deeper/Deep-1-0.wim"), "deep");
    make_wim(&folder.path().join("NoVersion.wim"), "x");
    let h = home.path();
    register(h, "Folder", folder.path().to_str().expect("utf-8"));

    let o = run(h, &["Find-ContainerImage"]);
    assert_exit(&o, 0);
    assert_eq!(
        found(&o),
        [
            "NanoServer 10.0.14300.1010",
            "WindowsServerCore 10.0.14300.1000"
        ]
    );
    assert!(
        stderr(&o).contains("NoVersion.wim") && stderr(&o).contains("-Version"),
        "{}",
        stderr(&o)
    );
    let v = json_lines(&o);
    assert_eq!(v[0]["Sha256"], sha256_hex(&nano).as_str());
    assert_eq!(v[0]["Size"], std::fs::metadata(&nano).expect("meta").len());
    assert_eq!(v[0]["Location"], nano.display().to_string().as_str());
    assert_eq!(v[1]["Location"], core.display().to_string().as_str());

    // Hashes are remembered between searches, and a changed file is hashed again.
    assert!(h.join("cache/wim-hashes.json").is_file());
    std::fs::remove_file(&nano).expect("remove");
    make_wim(&nano, "nano, rebuilt with other content");
    let o = run(h, &["Find-ContainerImage", "NanoServer"]);
    assert_exit(&o, 0);
    let v = json_lines(&o);
    assert_eq!(v[0]["Sha256"], sha256_hex(&nano).as_str());
    assert_eq!(v[0]["Size"], std::fs::metadata(&nano).expect("meta").len());
}

#[test]
fn new_container_image_feed_writes_a_feed_that_finds_the_same_images() {
    let home = tempfile::tempdir().expect("tempdir");
    let folder = tempfile::tempdir().expect("tempdir");
    let nano = folder.path().join("NanoServer-10-0-14300-1010.wim");
    let core = folder.path().join("core/WindowsServerCore-1-0.wim");
    make_wim(&nano, "nano");
    make_wim(&core, "core");
    let h = home.path();
    let dir = folder.path().to_str().expect("utf-8");

    let v = ok_json(h, &["New-ContainerImageFeed", "-Path", dir]);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["Name"], "NanoServer");
    assert_eq!(v[0]["Sha256"], sha256_hex(&nano).as_str());
    assert_eq!(v[0]["Location"], "NanoServer-10-0-14300-1010.wim");
    assert_eq!(v[1]["Location"], "core/WindowsServerCore-1-0.wim");
    let manifest =
        std::fs::read_to_string(folder.path().join("feed.xml")).expect("feed.xml written");
    assert!(
        manifest.contains("<Location>NanoServer-10-0-14300-1010.wim</Location>"),
        "{manifest}"
    );
    assert!(
        manifest.contains("<Location>core/WindowsServerCore-1-0.wim</Location>"),
        "{manifest}"
    );
    assert!(manifest.contains(&format!(
        "<Size>{}</Size>",
        std::fs::metadata(&nano).expect("m").len()
    )));

    // The folder, now with feed.xml, is a source; so is the manifest over HTTP.
    register(h, "Folder", dir);
    let server = TestServer::start(folder.path());
    register(h, "Web", &server.url("feed.xml"));
    let o = run(h, &["Find-ContainerImage", "NanoServer"]);
    assert_exit(&o, 0);
    let v = json_lines(&o);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["Location"], nano.display().to_string().as_str());
    assert_eq!(
        v[1]["Location"],
        server.url("NanoServer-10-0-14300-1010.wim").as_str()
    );
    assert_eq!(v[0]["Sha256"], v[1]["Sha256"]);

    // With -BaseUri the locations are absolute URLs.
    ok_json(
        h,
        &[
            "New-ContainerImageFeed",
            dir,
            "-BaseUri",
            "https://images.test/base",
        ],
    );
    let manifest = std::fs::read_to_string(folder.path().join("feed.xml")).expect("feed.xml");
    assert!(
        manifest.contains(
            "<Location>https://images.test/base/core/WindowsServerCore-1-0.wim</Location>"
        ),
        "{manifest}"
    );

    // A .wim without a version is reported (exit 1); the others are still written.
    make_wim(&folder.path().join("Unversioned.wim"), "u");
    let o = run(h, &["New-ContainerImageFeed", dir]);
    assert_fails(&o, "Unversioned.wim");
    assert_eq!(json_lines(&o).len(), 2);
    let o = run(
        h,
        &[
            "New-ContainerImageFeed",
            "-Path",
            folder.path().join("nope").to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 1);
    let o = run(h, &["New-ContainerImageFeed", dir, "-BaseUri", "ftp://x"]);
    assert_exit(&o, 2);
}

/// Sets image 1's WINDOWS/VERSION and ARCH in a `.wim`'s XML, as Windows images carry them.
fn set_windows_version(wim: &Path, [major, minor, build, sp_build]: [u32; 4]) {
    let props = [
        format!("WINDOWS/VERSION/MAJOR={major}"),
        format!("WINDOWS/VERSION/MINOR={minor}"),
        format!("WINDOWS/VERSION/BUILD={build}"),
        format!("WINDOWS/VERSION/SPBUILD={sp_build}"),
        "WINDOWS/ARCH=9".to_string(),
    ];
    let mut args = vec!["info", wim.to_str().expect("utf-8"), "1"];
    for p in &props {
        args.push("--image-property");
        args.push(p);
    }
    wimlib(&args);
}

#[test]
fn the_wims_xml_version_wins_over_the_file_name() {
    let home = tempfile::tempdir().expect("tempdir");
    let folder = tempfile::tempdir().expect("tempdir");
    // The suffix says 10.0.14300.1010, the XML says 10.0.14393.5.
    let suffixed = folder.path().join("NanoServer-10-0-14300-1010.wim");
    make_wim(&suffixed, "nano");
    set_windows_version(&suffixed, [10, 0, 14393, 5]);
    // No suffix at all: the XML alone gives the version.
    let plain = folder.path().join("WindowsServerCore.wim");
    make_wim(&plain, "core");
    set_windows_version(&plain, [10, 0, 14300, 1000]);
    let h = home.path();
    register(h, "Folder", folder.path().to_str().expect("utf-8"));

    let o = run(h, &["Find-ContainerImage"]);
    assert_exit(&o, 0);
    assert_eq!(
        found(&o),
        [
            "NanoServer 10.0.14393.5",
            "WindowsServerCore 10.0.14300.1000"
        ]
    );
    let v = json_lines(&o);
    assert_eq!(v[0]["Description"], "A test image");
    assert_eq!(v[0]["Architecture"], "x64");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // New-ContainerImageFeed reads the same values.
    let v = ok_json(
        h,
        &[
            "New-ContainerImageFeed",
            folder.path().to_str().expect("utf-8"),
        ],
    );
    assert_eq!(v[0]["Version"], "10.0.14393.5");
    let manifest = std::fs::read_to_string(folder.path().join("feed.xml")).expect("feed.xml");
    assert!(
        manifest.contains("<Version>10.0.14300.1000</Version>"),
        "{manifest}"
    );
    assert!(
        manifest.contains("<Architecture>x64</Architecture>"),
        "{manifest}"
    );
}

#[test]
fn feeds_are_fetched_through_the_proxy_from_the_environment() {
    let home = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("feed.xml"), gallery()).expect("write");
    let proxy = TestServer::start(site.path());
    let h = home.path();
    // A host that does not resolve: only the proxy can answer.
    register(h, "Remote", "http://feeds.invalid/feed.xml");

    let o = crate::common::cmd(h)
        .env("HTTP_PROXY", format!("http://{}", proxy.addr()))
        .args(["Find-ContainerImage", "NanoServer"])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    let v = json_lines(&o);
    assert_eq!(
        v[0]["Location"],
        "http://feeds.invalid/NanoServer-10-0-14393-0.wim"
    );
    let hits = proxy.hits();
    assert!(hits.len() == 1 && hits[0].via_proxy, "{hits:?}");

    // A server error is a warning naming the status, like an unreachable source.
    proxy.faults().status(503, 1);
    let o = crate::common::cmd(h)
        .env("HTTP_PROXY", format!("http://{}", proxy.addr()))
        .args(["Find-ContainerImage", "NanoServer"])
        .output()
        .expect("runs");
    assert_fails(&o, "WARNING:");
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
}
