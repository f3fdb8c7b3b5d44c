//! Downloads and `Save-ContainerImage`: verification, resume, retries,
//! mirrors, against the real test server on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::common::server::TestServer;

/// Sends one raw HTTP/1.1 request and returns the whole answer (headers and body).
fn raw_get(server: &TestServer, path: &str, extra_headers: &str) -> String {
    let mut s = TcpStream::connect(server.addr()).expect("connect to the test server");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        server.addr()
    )
    .expect("send request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn test_server_serves_files_ranges_and_faults() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a.txt"), b"0123456789").expect("write file");
    let server = TestServer::start(dir.path());

    let full = raw_get(&server, "a.txt", "");
    assert!(full.starts_with("HTTP/1.1 200"), "{full}");
    assert!(full.ends_with("\r\n\r\n0123456789"), "{full}");

    let part = raw_get(&server, "a.txt", "Range: bytes=4-\r\n");
    assert!(part.starts_with("HTTP/1.1 206"), "{part}");
    assert!(part.contains("content-range: bytes 4-9/10"), "{part}");
    assert!(part.ends_with("\r\n\r\n456789"), "{part}");

    server.faults().status(503, 1).not_found("missing/");
    assert!(raw_get(&server, "a.txt", "").starts_with("HTTP/1.1 503"));
    assert!(raw_get(&server, "a.txt", "").starts_with("HTTP/1.1 200"));
    assert!(raw_get(&server, "missing/a.txt", "").starts_with("HTTP/1.1 404"));

    server.faults().clear().ignore_range().wrong_bytes();
    let ignored = raw_get(&server, "a.txt", "Range: bytes=4-\r\n");
    assert!(ignored.starts_with("HTTP/1.1 200"), "{ignored}");
    assert!(ignored.ends_with("\r\n\r\n01234\u{fffd}6789"), "{ignored}");

    assert_eq!(server.requests("a.txt"), 5);
    assert_eq!(server.requests("missing/a.txt"), 1);
}

mod engine {
    //! The download engine through its API (what Save and Install call).

    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::Duration;

    use containerimage_provider::download::{
        self, partial_path, DownloadError, Downloader, FailureReason, Obtained, Request, Settings,
    };
    use containerimage_provider::location::Location;
    use containerimage_provider::progress::Reporter;
    use sha2::{Digest, Sha256};

    use crate::common::server::TestServer;

    /// Deterministic bytes that do not repeat in short cycles.
    pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[derive(Default)]
    struct Capture {
        warnings: Mutex<Vec<String>>,
        verbose: Mutex<Vec<String>>,
        progress: Mutex<u64>,
    }

    impl Reporter for Capture {
        fn on_start(&self, _task: &str, _total: Option<u64>) {
            *self.progress.lock().expect("lock") = 0;
        }
        fn on_progress(&self, bytes: u64) {
            *self.progress.lock().expect("lock") += bytes;
        }
        fn warn(&self, m: &str) {
            self.warnings.lock().expect("lock").push(m.to_string());
        }
        fn verbose(&self, m: &str) {
            self.verbose.lock().expect("lock").push(m.to_string());
        }
    }

    impl Capture {
        fn verbose_text(&self) -> String {
            self.verbose.lock().expect("lock").join("\n")
        }
    }

    const SIZE: usize = 3 * 1024 * 1024 + 123;

    /// A served folder with one image file, a destination folder and a fast-retrying downloader.
    struct Setup {
        _served: tempfile::TempDir,
        out: tempfile::TempDir,
        server: TestServer,
        data: Vec<u8>,
        sha256: [u8; 32],
        locations: Vec<Location>,
        downloader: Downloader,
    }

    fn settings() -> Settings {
        Settings {
            retry_base: Duration::from_millis(1),
            read_timeout: Duration::from_millis(700),
            retries: 3,
            ..Settings::default()
        }
    }

    fn setup() -> Setup {
        let served = tempfile::tempdir().expect("temp dir");
        let out = tempfile::tempdir().expect("temp dir");
        let data = test_bytes(SIZE, 7);
        std::fs::write(served.path().join("image.wim"), &data).expect("write image");
        std::fs::create_dir(served.path().join("mirror2")).expect("mkdir");
        std::fs::write(served.path().join("mirror2/image.wim"), &data).expect("write image");
        let server = TestServer::start(served.path());
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        let locations = vec![Location::parse(&server.url("image.wim")).expect("url")];
        Setup {
            _served: served,
            out,
            server,
            data,
            sha256,
            locations,
            downloader: Downloader::new(settings()).expect("client"),
        }
    }

    impl Setup {
        fn request(&self) -> Request<'_> {
            Request {
                label: "Image 1.0".into(),
                locations: &self.locations,
                size: Some(self.data.len() as u64),
                sha256: Some(self.sha256),
                authorization: None,
            }
        }
        fn dest(&self) -> PathBuf {
            self.out.path().join("Image-1-0.wim")
        }
        fn fetch(&self, force: bool) -> (Result<download::Outcome, DownloadError>, Capture) {
            let cap = Capture::default();
            let r = download::fetch(&self.downloader, &self.request(), &self.dest(), force, &cap);
            (r, cap)
        }
        #[track_caller]
        fn assert_saved(&self) {
            let got = std::fs::read(self.dest()).expect("the destination exists");
            assert!(
                got == self.data,
                "the saved file differs from the served one"
            );
            assert!(!partial_path(&self.dest()).exists(), "partial file left");
        }
        fn ranges(&self) -> Vec<(Option<String>, u16)> {
            self.server
                .hits()
                .into_iter()
                .map(|h| (h.range, h.status))
                .collect()
        }
    }

    fn only_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn downloads_and_verifies() {
        let s = setup();
        let (r, cap) = s.fetch(false);
        let outcome = r.expect("download succeeds");
        assert_eq!(
            outcome.obtained,
            Obtained::Downloaded(s.locations[0].clone())
        );
        assert_eq!(outcome.size, SIZE as u64);
        assert_eq!(outcome.sha256, s.sha256);
        assert!(outcome.verified);
        assert_eq!(*cap.progress.lock().expect("lock"), SIZE as u64);
        s.assert_saved();
        assert_eq!(only_files(s.out.path()), vec!["Image-1-0.wim"]);
    }

    #[test]
    fn a_dropped_connection_resumes_with_range_and_206() {
        let s = setup();
        s.server.faults().drop_after(1024 * 1024, 1);
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds after resuming");
        s.assert_saved();
        let ranges = s.ranges();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(ranges[0], (None, 200));
        assert_eq!(ranges[1], (Some("bytes=1048576-".to_string()), 206));
        assert!(cap.verbose_text().contains("resuming at byte 1048576"));
    }

    #[test]
    fn a_server_ignoring_range_cannot_corrupt_the_file() {
        let s = setup();
        s.server.faults().drop_after(1024 * 1024, 1).ignore_range();
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds from zero");
        s.assert_saved();
        let ranges = s.ranges();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(ranges[1], (Some("bytes=1048576-".to_string()), 200));
        assert!(cap.verbose_text().contains("ignored the Range request"));
    }

    #[test]
    fn a_wrong_content_range_starts_over() {
        let s = setup();
        s.server
            .faults()
            .drop_after(1024 * 1024, 1)
            .wrong_content_range(1);
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds");
        s.assert_saved();
        assert!(
            cap.verbose_text()
                .contains("from byte 0 instead of 1048576"),
            "{}",
            cap.verbose_text()
        );
    }

    #[test]
    fn a_leftover_partial_file_from_an_earlier_run_is_resumed() {
        let s = setup();
        std::fs::write(partial_path(&s.dest()), &s.data[..2_000_000]).expect("write partial");
        let (r, _) = s.fetch(false);
        r.expect("download succeeds");
        s.assert_saved();
        assert_eq!(s.ranges(), vec![(Some("bytes=2000000-".to_string()), 206)]);
    }

    #[test]
    fn a_complete_leftover_partial_file_is_verified_without_a_request() {
        let s = setup();
        std::fs::write(partial_path(&s.dest()), &s.data).expect("write partial");
        let (r, _) = s.fetch(false);
        r.expect("download succeeds");
        s.assert_saved();
        assert_eq!(s.server.hits().len(), 0);

        // The same length with other bytes: verified, dropped, downloaded again.
        std::fs::remove_file(s.dest()).expect("remove");
        std::fs::write(partial_path(&s.dest()), test_bytes(SIZE, 3)).expect("write partial");
        let (r, _) = s.fetch(false);
        r.expect("download succeeds");
        s.assert_saved();
        assert_eq!(s.ranges(), vec![(None, 200)]);
    }

    #[test]
    fn a_file_larger_than_the_feed_says_is_refused() {
        let s = setup();
        let req = Request {
            size: Some(SIZE as u64 - 1),
            ..s.request()
        };
        let err = download::fetch(&s.downloader, &req, &s.dest(), false, &Capture::default())
            .expect_err("the size differs");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "size mismatch: expected {} bytes, got {SIZE}",
                SIZE - 1
            )),
            "{text}"
        );
        assert!(
            only_files(s.out.path()).is_empty(),
            "{:?}",
            only_files(s.out.path())
        );
    }

    #[test]
    fn a_stale_partial_file_is_replaced_after_the_mismatch() {
        let s = setup();
        std::fs::write(partial_path(&s.dest()), test_bytes(1000, 99)).expect("write partial");
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds from zero");
        s.assert_saved();
        assert_eq!(
            s.ranges(),
            vec![(Some("bytes=1000-".to_string()), 206), (None, 200)]
        );
        assert!(cap.verbose_text().contains("may be stale"));
    }

    #[test]
    fn service_unavailable_twice_then_success() {
        let s = setup();
        s.server.faults().status(503, 2);
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds on the third request");
        s.assert_saved();
        assert_eq!(s.server.requests("image.wim"), 3);
        assert!(cap
            .verbose_text()
            .contains("503 Service Unavailable; retry 2 of 3"));
    }

    #[test]
    fn too_many_requests_honours_a_short_retry_after() {
        let s = setup();
        s.server.faults().status_retry_after(429, 1, 1);
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds after waiting");
        s.assert_saved();
        assert!(cap
            .verbose_text()
            .contains("429 Too Many Requests; retry 1 of 3 in 1000 ms"));
    }

    #[test]
    fn not_found_on_the_first_mirror_uses_the_second() {
        let mut s = setup();
        s.locations.insert(
            0,
            Location::parse(&s.server.url("gone/image.wim")).expect("url"),
        );
        s.locations[1] = Location::parse(&s.server.url("mirror2/image.wim")).expect("url");
        s.server.faults().not_found("gone/");
        let (r, _) = s.fetch(false);
        let outcome = r.expect("the second mirror works");
        assert_eq!(
            outcome.obtained,
            Obtained::Downloaded(s.locations[1].clone())
        );
        s.assert_saved();
        assert_eq!(s.server.requests("gone/image.wim"), 1, "404 is not retried");
    }

    #[test]
    fn wrong_bytes_fail_with_expected_and_actual_and_leave_nothing() {
        let s = setup();
        s.server.faults().wrong_bytes();
        let (r, _) = s.fetch(false);
        let err = r.expect_err("a corrupted download fails");
        let mut bad = s.data.clone();
        bad[SIZE / 2] ^= 0xFF;
        let actual = hex::encode(Sha256::digest(&bad));
        match &err {
            DownloadError::AllLocationsFailed { failures, .. } => {
                assert_eq!(failures.0.len(), 1);
                assert_eq!(
                    failures.0[0].reason,
                    FailureReason::HashMismatch {
                        expected: hex::encode(s.sha256),
                        actual: actual.clone(),
                    }
                );
            }
            other => panic!("expected AllLocationsFailed, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&hex::encode(s.sha256)) && text.contains(&actual),
            "{text}"
        );
        assert!(text.contains(&s.server.url("image.wim")), "{text}");
        assert!(
            only_files(s.out.path()).is_empty(),
            "{:?}",
            only_files(s.out.path())
        );
    }

    #[test]
    fn a_stall_longer_than_the_read_timeout_is_retried() {
        let s = setup();
        s.server
            .faults()
            .stall(512 * 1024, Duration::from_secs(3), 1);
        let (r, cap) = s.fetch(false);
        r.expect("download succeeds after the timeout");
        s.assert_saved();
        let ranges = s.ranges();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(ranges[1].1, 206);
        assert!(
            cap.verbose_text().contains("timed out"),
            "{}",
            cap.verbose_text()
        );
    }

    #[test]
    fn retries_run_out_and_the_error_lists_every_url() {
        let mut s = setup();
        s.locations
            .push(Location::parse(&s.server.url("missing.wim")).expect("url"));
        s.server.faults().status(500, 100);
        let (r, _) = s.fetch(false);
        let text = r.expect_err("every location fails").to_string();
        assert!(text.contains("could not download Image 1.0"), "{text}");
        assert!(
            text.contains(&format!(
                "{}: gave up after 4 attempts; last error: HTTP 500 Internal Server Error",
                s.server.url("image.wim")
            )),
            "{text}"
        );
        assert!(text.contains(&s.server.url("missing.wim")), "{text}");
        assert_eq!(s.server.requests("image.wim"), 4);
        assert!(only_files(s.out.path()).is_empty());
    }

    #[test]
    fn a_long_retry_after_moves_to_the_next_mirror() {
        let mut s = setup();
        s.locations
            .push(Location::parse(&s.server.url("mirror2/image.wim")).expect("url"));
        s.server.faults().status_retry_after(503, 1, 3600);
        let (r, _) = s.fetch(false);
        let outcome = r.expect("the second mirror works");
        assert_eq!(
            outcome.obtained,
            Obtained::Downloaded(s.locations[1].clone())
        );
        s.assert_saved();
    }

    #[test]
    fn an_existing_verified_file_is_kept_unless_forced() {
        let s = setup();
        std::fs::write(s.dest(), &s.data).expect("write existing");
        let (r, _) = s.fetch(false);
        assert_eq!(r.expect("kept").obtained, Obtained::AlreadyPresent);
        assert_eq!(s.server.requests("image.wim"), 0);

        let (r, _) = s.fetch(true);
        assert!(matches!(
            r.expect("forced").obtained,
            Obtained::Downloaded(_)
        ));
        assert_eq!(s.server.requests("image.wim"), 1);
        s.assert_saved();

        std::fs::write(s.dest(), b"something else").expect("overwrite");
        let (r, _) = s.fetch(false);
        assert!(matches!(
            r.expect("replaced").obtained,
            Obtained::Downloaded(_)
        ));
        s.assert_saved();
    }

    #[test]
    fn local_paths_and_file_urls_are_copied_and_verified() {
        let s = setup();
        let src = s.out.path().join("source.wim");
        std::fs::write(&src, &s.data).expect("write source");
        let file_url = format!("file://{}", src.display());
        for text in [src.display().to_string(), file_url] {
            let locations = vec![Location::parse(&text).expect("location")];
            let req = Request {
                locations: &locations,
                ..s.request()
            };
            let dest = s.out.path().join("copy.wim");
            let _ = std::fs::remove_file(&dest);
            let outcome = download::fetch(&s.downloader, &req, &dest, false, &Capture::default())
                .expect("copy succeeds");
            assert!(matches!(outcome.obtained, Obtained::Downloaded(_)));
            assert!(std::fs::read(&dest).expect("copied") == s.data);
        }
        std::fs::write(&src, test_bytes(SIZE, 8)).expect("change source");
        let locations = vec![Location::Path(src)];
        let req = Request {
            locations: &locations,
            ..s.request()
        };
        let dest = s.out.path().join("bad.wim");
        let err = download::fetch(&s.downloader, &req, &dest, false, &Capture::default())
            .expect_err("a changed file fails verification");
        assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
        assert!(!dest.exists() && !partial_path(&dest).exists());
    }

    #[test]
    fn without_a_hash_it_downloads_with_a_warning() {
        let s = setup();
        let req = Request {
            sha256: None,
            authorization: None,
            size: None,
            ..s.request()
        };
        let cap = Capture::default();
        let outcome =
            download::fetch(&s.downloader, &req, &s.dest(), false, &cap).expect("download");
        assert!(!outcome.verified);
        assert_eq!(outcome.sha256, s.sha256);
        s.assert_saved();
        let warnings = cap.warnings.lock().expect("lock").join("\n");
        assert!(warnings.contains("no SHA-256 for Image 1.0"), "{warnings}");
    }

    #[test]
    fn not_enough_space_is_refused_before_any_request() {
        let s = setup();
        let req = Request {
            size: Some(u64::MAX / 2),
            ..s.request()
        };
        let err = download::fetch(&s.downloader, &req, &s.dest(), false, &Capture::default())
            .expect_err("no disk is that large");
        let text = err.to_string();
        assert!(text.starts_with("not enough free space in"), "{text}");
        assert!(
            text.contains(&format!("{} bytes needed", u64::MAX / 2)),
            "{text}"
        );
        assert_eq!(s.server.hits().len(), 0);
    }

    #[test]
    fn a_proxy_carries_the_request() {
        let s = setup();
        let mut settings = settings();
        settings.proxy = Some(format!("http://{}", s.server.addr()));
        let downloader = Downloader::new(settings).expect("client");
        let locations = vec![Location::parse("http://images.invalid/image.wim").expect("url")];
        let req = Request {
            locations: &locations,
            ..s.request()
        };
        download::fetch(&downloader, &req, &s.dest(), false, &Capture::default())
            .expect("download through the proxy");
        s.assert_saved();
        let hits = s.server.hits();
        assert_eq!(hits.len(), 1);
        assert!(
            hits[0].via_proxy,
            "the request reached the proxy in absolute form"
        );
    }
}

mod cli {
    //! `Save-ContainerImage` through the real binary.

    use std::io::Write;
    use std::path::Path;
    use std::process::{Output, Stdio};

    use sha2::{Digest, Sha256};

    use super::engine::test_bytes;
    use crate::common::server::TestServer;
    use crate::common::{assert_exit, assert_fails, cmd, json_lines, stderr};

    /// A served image and what Find-ContainerImage would print for it.
    struct Served {
        _dir: tempfile::TempDir,
        server: TestServer,
        data: Vec<u8>,
        home: tempfile::TempDir,
        out: tempfile::TempDir,
    }

    fn served() -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = test_bytes(2 * 1024 * 1024 + 17, 11);
        std::fs::write(dir.path().join("nano.wim"), &data).expect("write image");
        let server = TestServer::start(dir.path());
        Served {
            _dir: dir,
            server,
            data,
            home: tempfile::tempdir().expect("temp dir"),
            out: tempfile::tempdir().expect("temp dir"),
        }
    }

    impl Served {
        fn find_object(&self, sha256: &[u8]) -> serde_json::Value {
            serde_json::json!({
                "Name": "NanoServer",
                "Version": "10.0.14300.1010",
                "Source": "Test",
                "Description": "Nano Server",
                "Size": self.data.len(),
                "Sha256": hex::encode(sha256),
                "Location": self.server.url("nano.wim"),
            })
        }

        fn good_object(&self) -> serde_json::Value {
            self.find_object(&Sha256::digest(&self.data))
        }

        /// Runs Save with `objects` piped in as JSON Lines.
        fn save(&self, objects: &[serde_json::Value], args: &[&str]) -> Output {
            let mut c = cmd(self.home.path());
            c.env("CONTAINERIMAGE_RETRY_BASE_MS", "1")
                .arg("Save-ContainerImage")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().expect("the binary starts");
            let mut input = String::new();
            for o in objects {
                input.push_str(&o.to_string());
                input.push('\n');
            }
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
            child.wait_with_output().expect("the binary runs")
        }
    }

    fn read(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap_or_else(|e| panic!("{} should exist: {e}", p.display()))
    }

    #[test]
    fn saves_a_piped_image_to_a_destination_file() {
        let s = served();
        let dest = s.out.path().join("NanoServer.wim");
        let dest_text = dest.display().to_string();
        let o = s.save(&[s.good_object()], &["-Destination", &dest_text]);
        assert_exit(&o, 0);
        assert!(read(&dest) == s.data, "saved bytes differ");
        let objects = json_lines(&o);
        assert_eq!(
            objects,
            vec![serde_json::json!({
                "Name": "NanoServer", "Version": "10.0.14300.1010",
                "Source": "Test", "FullPath": dest_text,
            })]
        );
        let err = stderr(&o);
        assert!(err.contains("Downloaded in 0 hours, 0 minutes, "), "{err}");
        assert!(
            !err.contains("VERBOSE"),
            "no verbose lines without -Verbose: {err}"
        );
    }

    #[test]
    fn an_already_saved_file_is_kept_and_force_downloads_again() {
        let s = served();
        let dest = s.out.path().join("NanoServer.wim");
        let dest_text = dest.display().to_string();
        assert_exit(
            &s.save(&[s.good_object()], &["-Destination", &dest_text]),
            0,
        );
        assert_eq!(s.server.requests("nano.wim"), 1);

        let o = s.save(&[s.good_object()], &["-Destination", &dest_text]);
        assert_exit(&o, 0);
        assert!(stderr(&o).contains("is already saved at"), "{}", stderr(&o));
        assert_eq!(json_lines(&o).len(), 1, "the kept file is still output");
        assert_eq!(s.server.requests("nano.wim"), 1, "nothing downloaded");

        let o = s.save(&[s.good_object()], &["-Destination", &dest_text, "-Force"]);
        assert_exit(&o, 0);
        assert_eq!(s.server.requests("nano.wim"), 2);
        assert!(read(&dest) == s.data);
    }

    #[test]
    fn a_hash_mismatch_fails_with_both_hashes_and_leaves_no_file() {
        let s = served();
        let claimed = [7u8; 32];
        let dest = s.out.path().join("NanoServer.wim");
        let o = s.save(
            &[s.find_object(&claimed)],
            &["-Destination", &dest.display().to_string()],
        );
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(&hex::encode(claimed)), "{err}");
        assert!(err.contains(&hex::encode(Sha256::digest(&s.data))), "{err}");
        assert!(
            err.contains("cannot save NanoServer 10.0.14300.1010"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(s.out.path()).expect("read dir").collect();
        assert!(left.is_empty(), "nothing may be left: {left:?}");
    }

    #[test]
    fn resumes_after_drops_and_retries_server_errors_with_verbose_detail() {
        let s = served();
        s.server.faults().drop_after(700_000, 2).status(503, 1);
        let dest = s.out.path().join("NanoServer.wim");
        let o = s.save(
            &[s.good_object()],
            &["-Destination", &dest.display().to_string(), "-Verbose"],
        );
        assert_exit(&o, 0);
        assert!(read(&dest) == s.data);
        let err = stderr(&o);
        assert!(err.contains("VERBOSE: GET "), "{err}");
        assert!(
            err.contains("503 Service Unavailable; retry 1 of 5"),
            "{err}"
        );
        assert!(err.contains("resuming at byte 700000"), "{err}");
        assert!(err.contains("resuming at byte 1400000"), "{err}");
    }

    #[test]
    fn a_missing_folder_needs_force() {
        let s = served();
        let folder = s.out.path().join("new/images");
        let dest = folder.join("NanoServer.wim");
        let dest_text = dest.display().to_string();
        let o = s.save(&[s.good_object()], &["-Destination", &dest_text]);
        assert_fails(&o, "-Force");
        assert!(!folder.exists());
        assert_eq!(s.server.requests("nano.wim"), 0);

        let o = s.save(&[s.good_object()], &["-Destination", &dest_text, "-Force"]);
        assert_exit(&o, 0);
        assert!(read(&dest) == s.data);
    }

    #[test]
    fn what_if_changes_nothing() {
        let s = served();
        let dest = s.out.path().join("new/NanoServer.wim");
        let o = s.save(
            &[s.good_object()],
            &[
                "-Destination",
                &dest.display().to_string(),
                "-Force",
                "-WhatIf",
            ],
        );
        assert_exit(&o, 0);
        assert!(
            stderr(&o).contains("What if: Performing the operation \"Save\" on target \"NanoServer 10.0.14300.1010 to "),
            "{}",
            stderr(&o)
        );
        assert!(json_lines(&o).is_empty());
        assert!(!s.out.path().join("new").exists());
        assert_eq!(s.server.hits().len(), 0);
    }

    #[test]
    fn destination_takes_one_image_only() {
        let s = served();
        let mut other = s.good_object();
        other["Version"] = "10.0.14300.1011".into();
        let dest = s.out.path().join("x.wim");
        let o = s.save(
            &[s.good_object(), other],
            &["-Destination", &dest.display().to_string()],
        );
        assert_exit(&o, 2);
        assert!(stderr(&o).contains("Use -Path"), "{}", stderr(&o));
    }

    #[test]
    fn the_proxy_parameter_is_used() {
        let s = served();
        let mut object = s.good_object();
        object["Location"] = "http://images.invalid/nano.wim".into();
        let dest = s.out.path().join("NanoServer.wim");
        let proxy = format!("http://{}", s.server.addr());
        let o = s.save(
            &[object],
            &[
                "-Destination",
                &dest.display().to_string(),
                "-Proxy",
                &proxy,
            ],
        );
        assert_exit(&o, 0);
        assert!(read(&dest) == s.data);
        let hits = s.server.hits();
        assert!(hits.len() == 1 && hits[0].via_proxy, "{hits:?}");
    }

    #[test]
    fn the_proxy_environment_variable_is_used() {
        let s = served();
        let mut object = s.good_object();
        object["Location"] = "http://images.invalid/nano.wim".into();
        let dest = s.out.path().join("NanoServer.wim");
        let mut c = cmd(s.home.path());
        c.env("HTTP_PROXY", format!("http://{}", s.server.addr()))
            .args([
                "Save-ContainerImage",
                "-Destination",
                &dest.display().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("start");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{object}\n").as_bytes())
            .expect("write");
        let o = child.wait_with_output().expect("run");
        assert_exit(&o, 0);
        assert!(s.server.hits().iter().all(|h| h.via_proxy));
        assert!(read(&dest) == s.data);
    }
}

mod with_feeds {
    //! Save-ContainerImage -Name against registered sources, and the feed it leaves behind.

    use std::path::Path;
    use std::process::{Output, Stdio};

    use sha2::{Digest, Sha256};

    use super::engine::test_bytes;
    use crate::common::server::TestServer;
    use crate::common::{assert_exit, assert_fails, cmd, json_lines, run, stderr};

    struct Site {
        _dir: tempfile::TempDir,
        server: TestServer,
        old: Vec<u8>,
        new: Vec<u8>,
        home: tempfile::TempDir,
        out: tempfile::TempDir,
    }

    /// A web feed with two versions of NanoServer, registered as the source `Web`.
    fn site() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = test_bytes(300_000, 1);
        let new = test_bytes(400_000, 2);
        std::fs::write(dir.path().join("nano-old.wim"), &old).expect("write");
        std::fs::write(dir.path().join("nano-new.wim"), &new).expect("write");
        let image = |version: &str, data: &[u8], file: &str| {
            format!(
                "  <Image>\n    <Name>NanoServer</Name>\n    <Version>{version}</Version>\n    \
                 <Description>Nano Server</Description>\n    <Size>{}</Size>\n    <Sha256>{}</Sha256>\n    \
                 <Location>{file}</Location>\n  </Image>\n",
                data.len(),
                hex::encode(Sha256::digest(data))
            )
        };
        let feed = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n{}{}</ContainerImageFeed>\n",
            image("10.0.14300.1000", &old, "nano-old.wim"),
            image("10.0.14300.1010", &new, "nano-new.wim"),
        );
        std::fs::write(dir.path().join("feed.xml"), feed).expect("write feed");
        let server = TestServer::start(dir.path());
        let home = tempfile::tempdir().expect("temp dir");
        let o = run(
            home.path(),
            &[
                "Register-PackageSource",
                "-Name",
                "Web",
                "-Location",
                &server.url("feed.xml"),
            ],
        );
        assert_exit(&o, 0);
        Site {
            _dir: dir,
            server,
            old,
            new,
            home,
            out: tempfile::tempdir().expect("temp dir"),
        }
    }

    impl Site {
        fn run(&self, args: &[&str]) -> Output {
            run(self.home.path(), args)
        }
    }

    fn read(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap_or_else(|e| panic!("{} should exist: {e}", p.display()))
    }

    /// Find's objects carry every mirror, so a piped Save still falls back
    /// to the second one when the first answers 404.
    #[test]
    fn find_piped_into_save_keeps_the_mirrors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = test_bytes(200_000, 3);
        std::fs::write(dir.path().join("nano.wim"), &data).expect("write");
        let feed = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n  <Image>\n    \
             <Name>Nano</Name>\n    <Version>1.0</Version>\n    <Size>{}</Size>\n    <Sha256>{}</Sha256>\n    \
             <Location>gone/nano.wim</Location>\n    <Location>nano.wim</Location>\n  </Image>\n</ContainerImageFeed>\n",
            data.len(),
            hex::encode(Sha256::digest(&data))
        );
        std::fs::write(dir.path().join("feed.xml"), feed).expect("write feed");
        let server = TestServer::start(dir.path());
        let home = tempfile::tempdir().expect("temp dir");
        let h = home.path();
        assert_exit(
            &run(
                h,
                &[
                    "Register-PackageSource",
                    "Mirrored",
                    &server.url("feed.xml"),
                ],
            ),
            0,
        );
        let found = run(h, &["Find-ContainerImage", "Nano"]);
        assert_exit(&found, 0);
        let objects = json_lines(&found);
        assert_eq!(
            objects[0]["Locations"],
            serde_json::json!([server.url("gone/nano.wim"), server.url("nano.wim")]),
            "every mirror, in order"
        );
        let out = tempfile::tempdir().expect("temp dir");
        let mut c = cmd(h);
        c.env("CONTAINERIMAGE_RETRY_BASE_MS", "1")
            .args([
                "Save-ContainerImage",
                "-Path",
                &out.path().display().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("the binary starts");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &found.stdout)
            .expect("pipe");
        let saved = child.wait_with_output().expect("the binary runs");
        assert_exit(&saved, 0);
        assert!(
            read(&out.path().join("Nano-1-0.wim")) == data,
            "saved through the second mirror; stderr: {}",
            stderr(&saved)
        );
    }

    #[test]
    fn saves_the_newest_version_into_a_folder_that_works_as_a_source() {
        let s = site();
        let folder = s.out.path().join("offline");
        let folder_text = folder.display().to_string();
        let o = s.run(&[
            "Save-ContainerImage",
            "-Name",
            "nanoserver",
            "-Path",
            &folder_text,
            "-Force",
        ]);
        assert_exit(&o, 0);
        let saved = folder.join("NanoServer-10-0-14300-1010.wim");
        assert!(read(&saved) == s.new, "the newest version is saved");
        assert_eq!(
            json_lines(&o),
            vec![serde_json::json!({
                "Name": "NanoServer", "Version": "10.0.14300.1010", "Source": "Web",
                "FullPath": saved.display().to_string(),
            })]
        );
        let feed = String::from_utf8(read(&folder.join("feed.xml"))).expect("utf-8");
        assert!(
            feed.contains("<Location>NanoServer-10-0-14300-1010.wim</Location>"),
            "relative location in {feed}"
        );

        // The folder, registered as it is, offers the saved image.
        assert_exit(
            &s.run(&[
                "Register-PackageSource",
                "-Name",
                "Offline",
                "-Location",
                &folder_text,
            ]),
            0,
        );
        let found = s.run(&["Find-ContainerImage", "NanoServer", "-Source", "Offline"]);
        assert_exit(&found, 0);
        let objects = json_lines(&found);
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert_eq!(objects[0]["Version"], "10.0.14300.1010");
        assert_eq!(objects[0]["Sha256"], hex::encode(Sha256::digest(&s.new)));
        assert_eq!(objects[0]["Location"], saved.display().to_string());

        // Saving the older version into the same folder adds it to the feed.
        let o = s.run(&[
            "Save-ContainerImage",
            "NanoServer",
            "-RequiredVersion",
            "10.0.14300.1000",
            "-LiteralPath",
            &folder_text,
        ]);
        assert_exit(&o, 0);
        assert!(read(&folder.join("NanoServer-10-0-14300-1000.wim")) == s.old);
        let found = s.run(&[
            "Find-ContainerImage",
            "NanoServer",
            "-Source",
            "Offline",
            "-AllVersions",
        ]);
        assert_eq!(json_lines(&found).len(), 2);
    }

    #[test]
    fn find_piped_into_save() {
        let s = site();
        let folder = s.out.path().display().to_string();
        let find = s.run(&["Find-ContainerImage", "Nano*", "-AllVersions"]);
        assert_exit(&find, 0);
        let mut save = cmd(s.home.path());
        save.args(["Save-ContainerImage", "-Path", &folder])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = save.spawn().expect("start");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &find.stdout)
            .expect("pipe");
        let o = child.wait_with_output().expect("run");
        assert_exit(&o, 0);
        let versions: Vec<String> = json_lines(&o)
            .iter()
            .map(|v| v["Version"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(versions, vec!["10.0.14300.1010", "10.0.14300.1000"]);
        assert!(read(&s.out.path().join("NanoServer-10-0-14300-1010.wim")) == s.new);
        assert!(read(&s.out.path().join("NanoServer-10-0-14300-1000.wim")) == s.old);
        assert_eq!(s.server.requests("nano-new.wim"), 1);
        assert_eq!(s.server.requests("nano-old.wim"), 1);
    }

    #[test]
    fn path_wildcards_must_name_one_existing_folder() {
        let s = site();
        std::fs::create_dir(s.out.path().join("images-a")).expect("mkdir");
        let pattern = s.out.path().join("image*").display().to_string();
        let o = s.run(&["Save-ContainerImage", "NanoServer", "-Path", &pattern]);
        assert_exit(&o, 0);
        assert!(s
            .out
            .path()
            .join("images-a/NanoServer-10-0-14300-1010.wim")
            .exists());

        std::fs::create_dir(s.out.path().join("images-b")).expect("mkdir");
        let o = s.run(&["Save-ContainerImage", "NanoServer", "-Path", &pattern]);
        assert_fails(&o, "matches 2 folders");

        let none = s.out.path().join("nothing*").display().to_string();
        let o = s.run(&[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            &none,
            "-Force",
        ]);
        assert_fails(&o, "does not exist");
    }

    #[test]
    fn save_package_is_the_generic_name() {
        let s = site();
        let folder = s.out.path().display().to_string();
        let o = s.run(&[
            "Save-Package",
            "-ProviderName",
            "ContainerImage",
            "-Name",
            "NanoServer",
            "-Path",
            &folder,
        ]);
        assert_exit(&o, 0);
        assert!(read(&s.out.path().join("NanoServer-10-0-14300-1010.wim")) == s.new);
        let o = s.run(&[
            "Save-Package",
            "-ProviderName",
            "NuGet",
            "-Name",
            "NanoServer",
            "-Path",
            &folder,
        ]);
        assert_fails(&o, "Unable to find package provider 'NuGet'");
    }

    #[test]
    fn an_unknown_name_is_no_match() {
        let s = site();
        let folder = s.out.path().display().to_string();
        let o = s.run(&["Save-ContainerImage", "ServerCore", "-Path", &folder]);
        assert_exit(&o, 1);
        assert!(
            stderr(&o).contains(
                "No match was found for the specified search criteria and image name 'ServerCore'"
            ),
            "{}",
            stderr(&o)
        );
        assert_eq!(s.server.requests("nano-new.wim"), 0);
    }
}

mod concurrency {
    use std::time::Duration;

    use containerimage_provider::download::{self, partial_path, Downloader, Request, Settings};
    use containerimage_provider::location::Location;
    use containerimage_provider::progress::Silent;
    use sha2::{Digest, Sha256};

    use super::engine::test_bytes;
    use crate::common::server::TestServer;

    #[test]
    fn two_downloads_of_one_file_take_turns() {
        let served = tempfile::tempdir().expect("temp dir");
        let out = tempfile::tempdir().expect("temp dir");
        let data = test_bytes(1_500_000, 5);
        std::fs::write(served.path().join("a.wim"), &data).expect("write");
        let server = TestServer::start(served.path());
        // Slow the first transfer down so the second one has to wait for it.
        server
            .faults()
            .stall(100_000, Duration::from_millis(300), 1);
        let locations = vec![Location::parse(&server.url("a.wim")).expect("url")];
        let request = Request {
            label: "A 1.0".into(),
            locations: &locations,
            size: Some(data.len() as u64),
            sha256: Some(Sha256::digest(&data).into()),
            authorization: None,
        };
        let dest = out.path().join("A-1-0.wim");
        let downloader = Downloader::new(Settings {
            retry_base: Duration::from_millis(1),
            ..Settings::default()
        })
        .expect("client");
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| download::fetch(&downloader, &request, &dest, false, &Silent))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic").expect("both succeed"))
                .collect()
        });
        let present = outcomes
            .iter()
            .filter(|o| o.obtained == download::Obtained::AlreadyPresent)
            .count();
        assert_eq!(present, 1, "one downloads, the other finds it done");
        assert_eq!(server.requests("a.wim"), 1);
        assert!(std::fs::read(&dest).expect("saved") == data);
        assert!(!partial_path(&dest).exists());
    }
}
