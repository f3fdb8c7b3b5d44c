//! Hostile feeds, locations, servers and pipes against the real binary:
//! a remote feed never makes the tool read a local file, nothing is written
//! past a bound, special files are refused without hanging, a planted
//! `.partial` link is never written through, slow servers are cut off, and
//! standard input is read within its bounds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::server::TestServer;
use crate::common::{assert_exit, assert_fails, cmd, run, stderr};

/// A JSON Lines object as Find-ContainerImage writes it.
fn find_object(location: &str, size: Option<u64>, sha256: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "Name": "NanoServer", "Version": "1.0", "Source": "Test",
        "Size": size, "Sha256": sha256, "Location": location,
    })
}

/// An XML feed with one image.
fn xml_feed(size: u64, sha256: &str, location: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n  <Image>\n    \
         <Name>NanoServer</Name>\n    <Version>1.0</Version>\n    <Size>{size}</Size>\n    \
         <Sha256>{sha256}</Sha256>\n    <Location>{location}</Location>\n  </Image>\n\
         </ContainerImageFeed>\n"
    )
}

/// The original provider's JSON index with one image.
fn json_index(sas_token: &str) -> String {
    serde_json::json!([{ "Name": "NanoServer", "Version": "1.0", "SasToken": sas_token }])
        .to_string()
}

fn register(home: &Path, location: &str) {
    let o = run(
        home,
        &[
            "Register-PackageSource",
            "-Name",
            "Feed",
            "-Location",
            location,
        ],
    );
    assert_exit(&o, 0);
}

/// Runs the binary with extra environment variables and piped standard input.
fn run_with(home: &Path, env: &[(&str, &str)], stdin: &[u8], args: &[&str]) -> Output {
    let mut c = cmd(home);
    c.env("CONTAINERIMAGE_RETRY_BASE_MS", "1")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    // The binary may stop reading early (a refused line): a broken pipe is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("the binary runs")
}

/// Every file under `dir` (recursively), with its size.
fn files_in(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in listing.filter_map(Result::ok) {
        let p = e.path();
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => out.extend(files_in(&p)),
            Ok(m) => out.push((p, m.len())),
            Err(_) => {}
        }
    }
    out
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {} failed", path.display());
}

/// Asserts the command finished well within `limit` (a hang guard only).
#[track_caller]
fn assert_finished_within(started: Instant, limit: Duration) {
    let took = started.elapsed();
    assert!(
        took < limit,
        "expected the command to give up long before {limit:?}, it took {took:?}"
    );
}

mod remote_feeds_name_only_http {
    use super::*;

    /// The defect: an index served over HTTP whose SasToken is a file: URL
    /// made Save copy that local file into the save folder.
    #[test]
    fn a_remote_json_index_cannot_make_save_copy_a_local_file() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let secret_dir = tempfile::tempdir().expect("temp dir");
        let secret = secret_dir.path().join("secret.txt");
        std::fs::write(&secret, "root:x:0:0:secret\n").expect("write secret");
        let token = format!("file://{}", secret.display());
        std::fs::write(site.path().join("index.json"), json_index(&token)).expect("write");
        let server = TestServer::start(site.path());
        register(home.path(), &server.url("index.json"));
        let out = tempfile::tempdir().expect("temp dir");

        let o = run(
            home.path(),
            &[
                "Save-ContainerImage",
                "-Name",
                "NanoServer",
                "-Path",
                &out.path().display().to_string(),
            ],
        );
        assert_fails(
            &o,
            "a remote feed may only name http:// and https:// locations",
        );
        let err = stderr(&o);
        assert!(
            err.contains("index.json"),
            "the error names the feed: {err}"
        );
        assert!(
            err.contains("NanoServer 1.0"),
            "the error names the entry: {err}"
        );
        assert!(
            files_in(out.path()).is_empty(),
            "nothing may be saved from a local file: {:?}",
            files_in(out.path())
        );

        // Find refuses the feed too, naming it, the line and the entry.
        let o = run(home.path(), &["Find-ContainerImage"]);
        assert_fails(&o, "a remote feed may only name http");
        assert!(stderr(&o).contains("(line 1, Location)"), "{}", stderr(&o));
    }

    /// The defect: an XML feed entry (with a hash) naming a local file made
    /// the error reveal that file's size.
    #[test]
    fn a_remote_xml_feed_naming_a_local_file_reveals_nothing_of_it() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let secret_dir = tempfile::tempdir().expect("temp dir");
        let secret = secret_dir.path().join("secret.bin");
        std::fs::write(&secret, vec![7u8; 12_345]).expect("write secret");
        for location in [
            format!("file://{}", secret.display()),
            format!("FILE:{}", secret.display()),
        ] {
            let feed = xml_feed(1, &"ab".repeat(32), &location);
            std::fs::write(site.path().join("feed.xml"), feed).expect("write");
            let server = TestServer::start(site.path());
            let o = run(
                home.path(),
                &[
                    "Save-ContainerImage",
                    "-Name",
                    "NanoServer",
                    "-Source",
                    &server.url("feed.xml"),
                    "-Destination",
                    &secret_dir.path().join("x.wim").display().to_string(),
                ],
            );
            assert_fails(&o, "names a local file, but the feed was read over HTTP");
            let err = stderr(&o);
            assert!(
                !err.contains("12345"),
                "the local file's size leaked: {err}"
            );
            assert!(!secret_dir.path().join("x.wim").exists());
        }
    }

    /// ftp:, data:, javascript: and other schemes are refused at once, in
    /// remote and local feeds alike, and in piped objects; never retried.
    #[test]
    fn other_schemes_are_refused_at_once_never_retried() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let server = TestServer::start(site.path());
        for location in [
            "ftp://127.0.0.1/a.wim",
            "data:text/plain,abc",
            "javascript:alert(1)",
            "gopher://127.0.0.1/a",
        ] {
            std::fs::write(
                site.path().join("feed.xml"),
                xml_feed(3, &"ab".repeat(32), location),
            )
            .expect("write");
            for source in [
                server.url("feed.xml"),
                site.path().join("feed.xml").display().to_string(),
            ] {
                let o = run(home.path(), &["Find-ContainerImage", "-Source", &source]);
                assert_fails(&o, "unsupported scheme");
                assert!(stderr(&o).contains(location), "{}", stderr(&o));
            }
            let out = tempfile::tempdir().expect("temp dir");
            let object = find_object(location, Some(3), None);
            let o = run_with(
                home.path(),
                &[],
                format!("{object}\n").as_bytes(),
                &[
                    "Save-ContainerImage",
                    "-Path",
                    &out.path().display().to_string(),
                    "-Verbose",
                ],
            );
            assert_fails(&o, "unsupported scheme");
            assert!(
                !stderr(&o).contains("retry"),
                "never retried: {}",
                stderr(&o)
            );
        }
    }
}

mod bounded_writes {
    use super::*;

    fn save_to(home: &Path, out: &Path, env: &[(&str, &str)]) -> Output {
        run_with(
            home,
            env,
            b"",
            &[
                "Save-ContainerImage",
                "-Name",
                "NanoServer",
                "-Path",
                &out.display().to_string(),
            ],
        )
    }

    /// The defect: a location that is a device (file:///dev/zero) was
    /// copied without end.
    #[test]
    fn device_and_fifo_locations_are_refused_without_writing_or_hanging() {
        let site = tempfile::tempdir().expect("temp dir");
        let fifo = site.path().join("image.wim");
        mkfifo(&fifo);
        let feed = site.path().join("feed.xml");
        let index = site.path().join("index.json");
        let cases = [
            (
                feed.clone(),
                xml_feed(4096, &"ab".repeat(32), "file:///dev/zero"),
            ),
            (feed.clone(), xml_feed(4096, &"ab".repeat(32), "image.wim")),
            (index.clone(), json_index("/dev/zero")),
            (index.clone(), json_index("image.wim")),
        ];
        for (file, text) in cases {
            std::fs::write(&file, &text).expect("write feed");
            let home = tempfile::tempdir().expect("temp dir");
            register(home.path(), &file.display().to_string());
            let out = tempfile::tempdir().expect("temp dir");
            let started = Instant::now();
            let o = save_to(home.path(), out.path(), &[]);
            assert_finished_within(started, Duration::from_secs(60));
            assert_fails(&o, "not a regular file");
            assert!(
                files_in(out.path()).is_empty(),
                "{text}: nothing may be written: {:?}",
                files_in(out.path())
            );
        }
    }

    /// The defect: a FIFO as a source's feed file hung Find.
    #[test]
    fn a_fifo_feed_file_is_refused_without_hanging() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let fifo = site.path().join("fifo.xml");
        mkfifo(&fifo);
        let folder = site.path().join("folder");
        std::fs::create_dir(&folder).expect("mkdir");
        mkfifo(&folder.join("feed.xml"));
        for source in [fifo, folder] {
            let started = Instant::now();
            let o = run(
                home.path(),
                &[
                    "Find-ContainerImage",
                    "-Source",
                    &source.display().to_string(),
                ],
            );
            assert_finished_within(started, Duration::from_secs(60));
            assert_fails(&o, "is a FIFO, not a regular file");
        }
    }

    /// The defect: a `.partial` that is a symbolic link was written
    /// through, and the final name became the link.
    #[test]
    fn a_planted_partial_link_is_replaced_and_its_target_untouched() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(site.path().join("nano.wim"), &data).expect("write image");
        let sha = hex::encode(Sha256::digest(&data));
        std::fs::write(
            site.path().join("feed.xml"),
            xml_feed(data.len() as u64, &sha, "nano.wim"),
        )
        .expect("write feed");
        let server = TestServer::start(site.path());
        register(home.path(), &server.url("feed.xml"));

        let outside_dir = tempfile::tempdir().expect("temp dir");
        let outside = outside_dir.path().join("precious.txt");
        std::fs::write(&outside, b"precious, not to be touched").expect("write");
        let out = tempfile::tempdir().expect("temp dir");
        let partial = out.path().join("NanoServer-1-0.wim.partial");
        std::os::unix::fs::symlink(&outside, &partial).expect("plant the link");

        let o = save_to(home.path(), out.path(), &[]);
        assert_exit(&o, 0);
        assert_eq!(
            std::fs::read(&outside).expect("read outside"),
            b"precious, not to be touched",
            "the link's target must be untouched"
        );
        let saved = out.path().join("NanoServer-1-0.wim");
        let meta = std::fs::symlink_metadata(&saved).expect("saved");
        assert!(meta.is_file(), "the saved image must be a file, not a link");
        assert_eq!(std::fs::read(&saved).expect("read"), data);
        assert!(!partial.exists() && std::fs::symlink_metadata(&partial).is_err());
    }

    /// The defect: a body without Content-Length for an entry without a
    /// size or hash (the JSON index) was written without end.
    #[test]
    fn an_endless_body_stops_at_the_limit_for_unsized_images() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        std::fs::write(site.path().join("nano.wim"), vec![1u8; 1000]).expect("write");
        // The image from a server of its own, so only its body is endless.
        let server = TestServer::start(site.path());
        server.faults().endless_body();
        let feeds = tempfile::tempdir().expect("temp dir");
        let index = json_index(&server.url("nano.wim"));
        std::fs::write(feeds.path().join("index.json"), index).expect("write");
        let feed_server = TestServer::start(feeds.path());
        register(home.path(), &feed_server.url("index.json"));
        let out = tempfile::tempdir().expect("temp dir");
        let limit = 3 * 1024 * 1024;
        let started = Instant::now();
        let o = save_to(
            home.path(),
            out.path(),
            &[("CONTAINERIMAGE_MAX_UNSIZED_BYTES", &limit.to_string())],
        );
        assert_finished_within(started, Duration::from_secs(120));
        assert_fails(&o, &format!("more than {limit} bytes arrived"));
        for (file, len) in files_in(out.path()) {
            assert!(
                len <= limit,
                "{} holds {len} bytes, over the limit",
                file.display()
            );
        }
        assert_eq!(server.requests("nano.wim"), 1, "a bound is not retried");
    }

    /// A body longer than the feed's Size (and no Content-Length to tell)
    /// is cut at the Size: nothing past it is written.
    #[test]
    fn a_body_longer_than_the_declared_size_is_refused_at_the_size() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let data = vec![5u8; 200_000];
        std::fs::write(site.path().join("nano.wim"), &data).expect("write");
        let sha = hex::encode(Sha256::digest(&data));
        let server = TestServer::start(site.path());
        server.faults().extra_bytes(10 * 1024 * 1024);
        // The feed from a server of its own, so only the image's body is long.
        let feeds = tempfile::tempdir().expect("temp dir");
        let feed = xml_feed(data.len() as u64, &sha, &server.url("nano.wim"));
        std::fs::write(feeds.path().join("feed.xml"), feed).expect("write");
        let feed_server = TestServer::start(feeds.path());
        register(home.path(), &feed_server.url("feed.xml"));
        let out = tempfile::tempdir().expect("temp dir");
        let o = save_to(home.path(), out.path(), &[]);
        assert_fails(&o, "size mismatch: expected 200000 bytes");
        for (file, len) in files_in(out.path()) {
            assert!(
                len <= 200_000,
                "{} holds {len} bytes, past the Size",
                file.display()
            );
        }
    }
}

mod memory {
    use super::*;

    /// The defect: a feed just under the 256 MiB limit took five times its
    /// size in memory, most of it in one entry per tiny `<Image>`. A feed
    /// now lists at most 100,000 images; one more is an error naming the
    /// feed and the line, and the images up to the cap are fine.
    #[test]
    fn a_feed_over_the_image_cap_is_refused_naming_the_line() {
        let site = tempfile::tempdir().expect("temp dir");
        let sha = "ab".repeat(32);
        let feed_with = |images: usize| {
            let mut text = String::from(
                "<?xml version=\"1.0\"?>\n<ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n",
            );
            for i in 0..images {
                text.push_str(&format!(
                    "<Image><Name>N{i}</Name><Version>1.0</Version><Size>1</Size>\
                     <Sha256>{sha}</Sha256><Location>n{i}.wim</Location></Image>\n"
                ));
            }
            text.push_str("</ContainerImageFeed>\n");
            text
        };
        let home = tempfile::tempdir().expect("temp dir");
        let feed = site.path().join("feed.xml");
        std::fs::write(&feed, feed_with(100_000)).expect("write");
        register(home.path(), &feed.display().to_string());
        let o = run(home.path(), &["Find-ContainerImage", "N99999"]);
        assert_exit(&o, 0);

        std::fs::write(&feed, feed_with(100_001)).expect("write");
        let o = run(home.path(), &["Find-ContainerImage", "N1"]);
        assert_fails(&o, "lists more than 100000 images (line 100003)");
        assert!(stderr(&o).contains("feed.xml"), "{}", stderr(&o));
    }
}

mod slow_servers {
    use super::*;

    /// The defect: a feed sent one byte every two seconds kept Find running
    /// for minutes; the document now has a total deadline.
    #[test]
    fn a_trickled_feed_is_cut_off_at_the_deadline() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            site.path().join("feed.xml"),
            xml_feed(1, &"ab".repeat(32), "a.wim"),
        )
        .expect("write");
        let server = TestServer::start(site.path());
        server.faults().trickle(1, Duration::from_millis(300), 10);
        register(home.path(), &server.url("feed.xml"));
        let started = Instant::now();
        let o = run_with(
            home.path(),
            &[("CONTAINERIMAGE_FEED_DEADLINE_MS", "1500")],
            b"",
            &["Find-ContainerImage"],
        );
        assert_finished_within(started, Duration::from_secs(30));
        assert_fails(&o, "did not arrive within 1.5 seconds");
    }

    /// A download far below the minimum rate is a stall: retried, and
    /// resumed after what arrived.
    #[test]
    fn a_crawling_download_is_a_stall_that_resumes() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        let data: Vec<u8> = (0..400_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(site.path().join("nano.wim"), &data).expect("write image");
        let server = TestServer::start(site.path());
        server.faults().trickle(2048, Duration::from_millis(50), 1);
        let sha = hex::encode(Sha256::digest(&data));
        let object = find_object(&server.url("nano.wim"), Some(data.len() as u64), Some(sha));
        let dest = site.path().join("out.wim");
        let o = run_with(
            home.path(),
            &[
                ("CONTAINERIMAGE_MIN_RATE", "1000000"),
                ("CONTAINERIMAGE_RATE_WINDOW_MS", "600"),
            ],
            format!("{object}\n").as_bytes(),
            &[
                "Save-ContainerImage",
                "-Destination",
                &dest.display().to_string(),
                "-Verbose",
            ],
        );
        assert_exit(&o, 0);
        assert!(
            stderr(&o).contains("the transfer stalled"),
            "{}",
            stderr(&o)
        );
        assert_eq!(std::fs::read(&dest).expect("saved"), data);
        let hits = server.hits();
        assert_eq!(hits.len(), 2, "one stalled request, one resumed: {hits:?}");
        let resumed_at = hits[1].range.clone().unwrap_or_default();
        assert!(
            resumed_at.starts_with("bytes=") && resumed_at != "bytes=0-",
            "the second request resumes after what arrived: {resumed_at:?}"
        );
    }
}

mod pipeline_input {
    use super::*;

    /// DESIGN §1: a cmdlet that reads pipeline input and gets none does
    /// nothing and succeeds (a Find that found nothing, piped into Save).
    #[test]
    fn an_empty_pipe_into_save_does_nothing_and_succeeds() {
        let home = tempfile::tempdir().expect("temp dir");
        let site = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            site.path().join("feed.xml"),
            xml_feed(1, &"ab".repeat(32), "a.wim"),
        )
        .expect("write");
        register(
            home.path(),
            &site.path().join("feed.xml").display().to_string(),
        );
        let found = run(home.path(), &["Find-ContainerImage", "zz*"]);
        assert_exit(&found, 0);
        assert!(found.stdout.is_empty());
        let out = site.path().join("not-created");
        let o = run_with(
            home.path(),
            &[],
            &found.stdout,
            &["Save-ContainerImage", "-Path", &out.display().to_string()],
        );
        assert_exit(&o, 0);
        assert!(!out.exists(), "nothing is done for an empty pipe");
    }

    /// The defect: a 700 MB line on standard input took 700 MB of memory;
    /// a line is now capped and refused by its number.
    #[test]
    fn a_line_over_the_cap_is_refused_naming_its_number() {
        let home = tempfile::tempdir().expect("temp dir");
        let out = tempfile::tempdir().expect("temp dir");
        let mut input = b"\n{\"Name\": \"A\", \"Version\": \"1.0\", \"Description\": \"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
        input.extend(b"\"}\n");
        let o = run_with(
            home.path(),
            &[],
            &input,
            &[
                "Save-ContainerImage",
                "-Path",
                &out.path().display().to_string(),
            ],
        );
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains("line 2 of standard input is longer than 1048576 bytes"),
            "{err}"
        );
    }

    /// The one name rule applies to piped objects: a name that could not be
    /// read back (`we*ird"`, leading or trailing spaces, `.hidden`) is
    /// refused before anything is downloaded or written into the folder.
    #[test]
    fn piped_names_follow_the_one_name_rule() {
        let home = tempfile::tempdir().expect("temp dir");
        let out = tempfile::tempdir().expect("temp dir");
        for name in ["we*ird\"", " spaced ", ".hidden", "dot.", "a/b"] {
            let object = serde_json::json!({
                "Name": name, "Version": "1.0", "Location": "http://127.0.0.1:9/a.wim",
                "Size": 1, "Sha256": "ab".repeat(32),
            });
            let o = run_with(
                home.path(),
                &[],
                format!("{object}\n").as_bytes(),
                &[
                    "Save-ContainerImage",
                    "-Path",
                    &out.path().display().to_string(),
                ],
            );
            assert_exit(&o, 1);
            let err = stderr(&o);
            assert!(
                err.contains("cannot be used as an image name"),
                "{name:?}: {err}"
            );
            assert!(
                !err.contains("attempts"),
                "{name:?}: nothing is downloaded: {err}"
            );
        }
        assert_eq!(
            std::fs::read_dir(out.path()).expect("read").count(),
            0,
            "nothing is written into the folder"
        );
    }
}
