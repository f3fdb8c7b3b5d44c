//! What an administrator meets first, end to end: refused Windows paths,
//! tables that fit the terminal, what downloads say (resume, retries, a
//! silent server, Ctrl-C, 100%), the store lock held only to publish and
//! naming its holder, advice that names what exists, richer "No match",
//! source checks at registration, one image from two sources, and help.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::server::TestServer;
use crate::common::{
    assert_exit, assert_fails, bin_path, cmd, json_lines, require_tool, run, small_wim, stderr,
    stdout, wimlib,
};

/// Deterministic bytes that do not repeat in short cycles.
fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
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

/// One image of a feed: name, version, description, file name, content.
struct Image<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    file: &'a str,
    data: &'a [u8],
}

/// Writes the images and a `feed.xml` listing them (relative locations) into `dir`.
fn write_feed(dir: &Path, images: &[Image<'_>]) {
    write_feed_at(dir, dir, "", images);
}

/// Writes the images into `files` and a `feed.xml` into `dir` whose
/// locations are `base` followed by the file names.
fn write_feed_at(dir: &Path, files: &Path, base: &str, images: &[Image<'_>]) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::create_dir_all(files).expect("mkdir");
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n",
    );
    for i in images {
        fs::write(files.join(i.file), i.data).expect("write image");
        xml.push_str(&format!(
            "  <Image>\n    <Name>{}</Name>\n    <Version>{}</Version>\n    <Description>{}</Description>\n    \
             <Size>{}</Size>\n    <Sha256>{}</Sha256>\n    <Location>{base}{}</Location>\n  </Image>\n",
            i.name,
            i.version,
            i.description,
            i.data.len(),
            hex::encode(Sha256::digest(i.data)),
            i.file
        ));
    }
    xml.push_str("</ContainerImageFeed>\n");
    fs::write(dir.join("feed.xml"), xml).expect("feed.xml");
}

#[track_caller]
fn register(home: &Path, name: &str, location: &str) -> Output {
    let o = run(
        home,
        &[
            "Register-PackageSource",
            "-Name",
            name,
            "-Location",
            location,
            "-Trusted",
        ],
    );
    assert_exit(&o, 0);
    o
}

/// A served feed of one image of `len` bytes, registered as `Web` in `home`.
/// The feed is a local file and only the image is served, so the server's
/// fault switches act on the image download alone.
struct WebFeed {
    _dir: tempfile::TempDir,
    server: TestServer,
    data: Vec<u8>,
}

fn web_feed(home: &Path, len: usize) -> WebFeed {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = test_bytes(len, len as u64);
    let files = dir.path().join("served");
    fs::create_dir_all(&files).expect("mkdir");
    let server = TestServer::start(&files);
    let feed = dir.path().join("feed");
    write_feed_at(
        &feed,
        &files,
        &server.url(""),
        &[Image {
            name: "NanoServer",
            version: "10.0.14300.1010",
            description: "Nano Server",
            file: "nano.wim",
            data: &data,
        }],
    );
    register(home, "Web", feed.to_str().expect("utf-8"));
    WebFeed {
        _dir: dir,
        server,
        data,
    }
}

const SAVED: &str = "NanoServer-10-0-14300-1010.wim";

/// The command line for `sh`, each argument quoted.
fn shell_line(args: &[&str]) -> String {
    std::iter::once(bin_path().display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `containerimage args` on a pseudo-terminal `cols` columns wide
/// (`script`); standard output and error both come back in `stdout`.
fn on_terminal(home: &Path, cols: u16, env: &[(&str, &str)], args: &[&str]) -> Output {
    require_tool("script");
    let line = format!("stty cols {cols} rows 40; {}", shell_line(args));
    let c = cmd(home);
    let mut on_tty = Command::new("script");
    on_tty.args(["-qec", &line, "/dev/null"]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => on_tty.env(k, v),
            None => on_tty.env_remove(k),
        };
    }
    on_tty.env_remove("COLUMNS");
    for (k, v) in env {
        on_tty.env(k, v);
    }
    on_tty
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs")
        .wait_with_output()
        .expect("wait")
}

/// The lines a terminal shows: carriage returns and escape sequences out.
fn screen_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in text.split('\n') {
        // What stays visible is what follows the last carriage return.
        let visible = raw.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
        let mut out = String::new();
        let mut chars = visible.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ ... final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                continue;
            }
            out.push(c);
        }
        lines.push(out);
    }
    lines
}

#[test]
fn windows_paths_are_refused_and_nothing_is_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let cwd = tmp.path().join("cwd");
    fs::create_dir_all(&cwd).expect("mkdir");
    let cases: &[&[&str]] = &[
        &[
            "Save-ContainerImage",
            "-Name",
            "NanoServer",
            "-Destination",
            r"c:\container-image\NanoServer.wim",
        ],
        &[
            "Save-ContainerImage",
            "-Name",
            "NanoServer",
            "-Path",
            r"c:\container-image",
            "-Force",
        ],
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            "C:/images",
            "-Force",
        ],
        &["Install-ContainerOSImage", r"\\server\share\NanoServer.wim"],
        &[
            "Expand-WindowsImage",
            "-ImagePath",
            "x.wim",
            "-Index",
            "1",
            "-ApplyPath",
            r"out\dir",
        ],
        &[
            "Register-PackageSource",
            "-Name",
            "Local",
            "-Location",
            r"C:\feeds",
        ],
        &["New-ContainerImageFeed", "-Path", r"\\server\images"],
        &["Move-ContainerImageRepository", r"D:\images"],
    ];
    for args in cases {
        let o = cmd(&home)
            .current_dir(&cwd)
            .args(*args)
            .output()
            .expect("runs");
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains("is a Windows path") && err.contains("Use a path of this system"),
            "{args:?}: {err}"
        );
        let left: Vec<_> = fs::read_dir(&cwd).expect("list").collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
    // A URL keeps its backslash-free form and a plain relative path is fine.
    let feed = tmp.path().join("feed");
    write_feed(&feed, &[]);
    let o = cmd(&home)
        .current_dir(tmp.path())
        .args([
            "Register-PackageSource",
            "-Name",
            "Rel",
            "-Location",
            "feed",
        ])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
}

fn long_feed(dir: &Path) {
    let data = b"not a real image".to_vec();
    write_feed(
        dir,
        &[
            Image {
                name: "NanoServer",
                version: "10.0.14300.1010",
                description: "Container OS Image of Windows Server 2016 Technical Preview 5: Nano Server, the smallest",
                file: "nano.wim",
                data: &data,
            },
            Image {
                name: "WindowsServerCore",
                version: "10.0.14300.1000",
                description: "Container OS Image of Windows Server 2016 Technical Preview 5: Windows Server Core",
                file: "core.wim",
                data: &data,
            },
        ],
    );
}

#[test]
fn tables_fit_the_terminal_and_json_and_lists_are_never_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let feed = tmp.path().join("feed");
    long_feed(&feed);
    register(&home, "Local", feed.to_str().expect("utf-8"));

    // On a terminal 60 columns wide.
    let o = on_terminal(&home, 60, &[], &["Find-ContainerImage"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let lines = screen_lines(&text);
    assert!(
        lines.iter().any(|l| l.starts_with("Name")),
        "a table was shown:\n{text}"
    );
    for l in &lines {
        assert!(
            unicode_columns(l) <= 60,
            "a line is wider than the terminal ({}): {l:?}",
            unicode_columns(l)
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("NanoServer") && l.ends_with("...")),
        "the description is cut with ...:\n{text}"
    );

    // COLUMNS is honoured when standard output is not a terminal.
    let o = cmd(&home)
        .env("COLUMNS", "50")
        .args(["Find-ContainerImage", "-OutputFormat", "Table"])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    for l in stdout(&o).lines() {
        assert!(l.chars().count() <= 50, "wider than COLUMNS=50: {l:?}");
    }
    assert!(stdout(&o).contains("..."), "{}", stdout(&o));

    // Lists and JSON keep everything.
    let full =
        "Container OS Image of Windows Server 2016 Technical Preview 5: Nano Server, the smallest";
    let o = cmd(&home)
        .env("COLUMNS", "50")
        .args(["Find-ContainerImage", "NanoServer", "-OutputFormat", "List"])
        .output()
        .expect("runs");
    assert!(stdout(&o).contains(full), "{}", stdout(&o));
    let o = cmd(&home)
        .env("COLUMNS", "50")
        .args(["Find-ContainerImage", "NanoServer"])
        .output()
        .expect("runs");
    assert_eq!(json_lines(&o)[0]["Description"], full);
}

fn unicode_columns(s: &str) -> usize {
    s.chars().count()
}

#[test]
fn numbers_are_right_aligned_in_tables() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree");
    fs::create_dir_all(&tree).expect("mkdir");
    fs::write(tree.join("a.txt"), "x".repeat(5000)).expect("write");
    let wim = tmp.path().join("two.wim");
    let wim_s = wim.to_str().expect("utf-8");
    wimlib(&["capture", tree.to_str().expect("utf-8"), wim_s, "First"]);
    fs::write(tree.join("b.txt"), "y".repeat(70000)).expect("write");
    wimlib(&["append", tree.to_str().expect("utf-8"), wim_s, "Second"]);
    let o = cmd(tmp.path())
        .env("COLUMNS", "120")
        .args([
            "Get-WindowsImage",
            "-ImagePath",
            wim_s,
            "-OutputFormat",
            "Table",
        ])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let header = lines[0];
    let size_end = header.find("ImageSize").expect("ImageSize column") + "ImageSize".len();
    assert!(header.starts_with("ImageIndex"), "{text}");
    for row in &lines[2..] {
        // Right-aligned: the index ends under the end of its header, and
        // so does the size.
        assert_eq!(
            row.find(|c: char| c.is_ascii_digit()),
            Some("ImageIndex".len() - 1),
            "{text}"
        );
        assert_eq!(
            row.len(),
            size_end,
            "the size ends where its header ends:\n{text}"
        );
    }
}

/// A small `.wim` made by wimlib, served in a feed `Web` registered in `home`.
fn web_wim_feed(home: &Path, tmp: &Path, name: &str) -> (TestServer, PathBuf) {
    let tree = tmp.join(format!("{name}.tree"));
    fs::create_dir_all(tree.join("Windows")).expect("mkdir");
    fs::write(tree.join("Windows/notepad.exe"), name.repeat(1000)).expect("write");
    let served = tmp.join(format!("{name}.served"));
    fs::create_dir_all(&served).expect("mkdir");
    let wim = served.join(format!("{name}.wim"));
    wimlib(&[
        "capture",
        tree.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "OS",
    ]);
    let data = fs::read(&wim).expect("read wim");
    let server = TestServer::start(&served);
    let feed = tmp.join(format!("{name}.feed"));
    write_feed_at(
        &feed,
        &served,
        &server.url(""),
        &[Image {
            name,
            version: "1.0.0.0",
            description: "test",
            file: &format!("{name}.wim"),
            data: &data,
        }],
    );
    register(home, "Web", feed.to_str().expect("utf-8"));
    (server, wim)
}

#[test]
fn install_says_how_long_the_download_took() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let (_server, _wim) = web_wim_feed(&home, tmp.path(), "Base");
    let o = run(&home, &["Install-ContainerImage", "Base"]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with("Downloaded in "))
        .unwrap_or_else(|| panic!("no 'Downloaded in' line:\n{err}"));
    assert!(
        line.starts_with("Downloaded in 0 hours, 0 minutes, ")
            && (line.ends_with(" seconds.")
                || line == "Downloaded in 0 hours, 0 minutes, 1 second."),
        "{line}"
    );
    assert!(!line.contains(" 1 seconds"), "{line}");
    assert_eq!(json_lines(&o)[0]["Name"], "Base");
}

/// Save into `out` with fast retries and the given read timeout.
fn save_cmd(home: &Path, out: &Path, read_timeout_ms: u64) -> Command {
    let mut c = cmd(home);
    c.args(["Save-ContainerImage", "NanoServer", "-Path"])
        .arg(out)
        .env("CONTAINERIMAGE_RETRY_BASE_MS", "10")
        .env(
            "CONTAINERIMAGE_READ_TIMEOUT_MS",
            read_timeout_ms.to_string(),
        );
    c
}

#[test]
fn a_resumed_download_says_so_and_its_rate_counts_this_run_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let feed = web_feed(&home, 9 << 20);
    // An earlier run left 8 MiB.
    fs::write(out.join(format!("{SAVED}.partial")), &feed.data[..8 << 20]).expect("partial");
    // This run's last MiB comes slowly: 64 KiB every 50 ms (about 1.2 MiB/s).
    feed.server
        .faults()
        .trickle(64 << 10, Duration::from_millis(50), 1);
    let o = on_terminal(
        &home,
        120,
        &[("CONTAINERIMAGE_RETRY_BASE_MS", "10")],
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            out.to_str().expect("utf-8"),
        ],
    );
    let text = stdout(&o);
    assert_exit(&o, 0);
    assert!(
        text.contains("NanoServer 10.0.14300.1010: resuming at 8.0 MiB"),
        "{text}"
    );
    assert!(text.contains("100%"), "the bar ends at 100%:\n{text}");
    assert!(
        text.contains("Downloaded in 0 hours, 0 minutes, "),
        "{text}"
    );
    // Every rate shown is this run's: far below what counting the 8 MiB
    // kept from the earlier run would show.
    let rates: Vec<f64> = text
        .match_indices(" MiB/s")
        .filter_map(|(at, _)| text[..at].rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!text.contains("GiB/s"), "{text}");
    assert!(
        text.contains("KiB/s") || !rates.is_empty(),
        "the bar shows a rate:\n{text}"
    );
    for r in &rates {
        assert!(
            *r < 4.0,
            "a rate of {r} MiB/s counts earlier bytes:\n{text}"
        );
    }
    assert_eq!(
        fs::read(out.join(SAVED)).expect("saved"),
        feed.data,
        "the resumed file is whole"
    );
}

#[test]
fn a_small_download_shows_100_percent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let _feed = web_feed(&home, 10_000);
    let o = on_terminal(
        &home,
        120,
        &[],
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let text = stdout(&o);
    let lines = screen_lines(&text);
    assert!(
        lines.iter().any(|l| l.contains("] 100% ")),
        "the bar is left at 100%:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "Downloaded in 0 hours, 0 minutes, 0 seconds."),
        "on a line of its own:\n{text}"
    );
}

#[test]
fn retries_say_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let feed = web_feed(&home, 100_000);
    feed.server.faults().status(503, 2);
    let o = save_cmd(&home, &out, 5000).output().expect("runs");
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("NanoServer 10.0.14300.1010: HTTP 503 Service Unavailable; retrying in")
            && err.contains("(retry 1 of 5)")
            && err.contains("(retry 2 of 5)"),
        "{err}"
    );
}

#[test]
fn a_silent_server_is_reported_while_waiting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let feed = web_feed(&home, 3 << 20);
    feed.server
        .faults()
        .stall(1 << 20, Duration::from_secs(5), 1);
    let started = Instant::now();
    let o = save_cmd(&home, &out, 3000).output().expect("runs");
    assert_exit(&o, 0);
    let err = stderr(&o);
    let host = feed.server.addr().to_string();
    assert!(
        err.contains(&format!(
            "NanoServer 10.0.14300.1010: nothing received from {host} for 1 s; still waiting"
        )) && err.contains(&format!("nothing received from {host} for 2 s")),
        "the silence is reported while it lasts:\n{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(fs::read(out.join(SAVED)).expect("saved"), feed.data);
}

#[test]
fn a_final_failure_says_the_partial_file_is_kept_and_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let feed = web_feed(&home, 3 << 20);
    let partial = out.join(format!("{SAVED}.partial"));
    fs::write(&partial, &feed.data[..1 << 20]).expect("partial");
    feed.server.faults().status(500, 100);
    let o = save_cmd(&home, &out, 3000)
        .env("CONTAINERIMAGE_RETRIES", "1")
        .output()
        .expect("runs");
    assert_fails(&o, "every location failed");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "NanoServer 10.0.14300.1010: the partial download (1.0 MiB) is kept in {}; running the same command again resumes it",
            partial.display()
        )),
        "{err}"
    );
    assert_eq!(fs::metadata(&partial).expect("kept").len(), 1 << 20);

    // And it does.
    feed.server.faults().clear();
    let o = save_cmd(&home, &out, 3000).output().expect("runs");
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("resuming at 1.0 MiB"), "{}", stderr(&o));
    assert_eq!(fs::read(out.join(SAVED)).expect("saved"), feed.data);
}

/// Waits until `path` holds at least `bytes`, or fails after 20 s.
fn wait_for_size(path: &Path, bytes: u64, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(20);
    while fs::metadata(path).map(|m| m.len()).unwrap_or(0) < bytes {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the command ended ({status}) before {} had {bytes} bytes",
                path.display()
            );
        }
        assert!(
            Instant::now() < until,
            "{} never reached {bytes} bytes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_says_the_partial_file_is_kept_and_the_same_command_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let feed = web_feed(&home, 3 << 20);
    feed.server
        .faults()
        .stall(1 << 20, Duration::from_secs(30), 1);
    let mut child = save_cmd(&home, &out, 60_000)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let partial = out.join(format!("{SAVED}.partial"));
    wait_for_size(&partial, 1 << 20, &mut child);
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("sh runs");
    assert!(status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains(&format!(
            "Interrupted. The partial download (1.0 MiB) is kept in {}; running the same command again resumes it.",
            partial.display()
        )),
        "{err}"
    );
    feed.server.faults().clear();
    let o = save_cmd(&home, &out, 5000).output().expect("runs");
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("resuming at 1.0 MiB"), "{}", stderr(&o));
    assert_eq!(fs::read(out.join(SAVED)).expect("saved"), feed.data);
}

/// Reads standard error lines until one contains `wanted`; returns them all.
fn read_until(child: &mut Child, wanted: &str) -> String {
    let err = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    for line in BufReader::new(err).lines() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(wanted) {
            return seen;
        }
    }
    panic!("{wanted:?} never came:\n{seen}");
}

#[test]
fn the_store_is_not_locked_while_install_downloads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let (server, _wim) = web_wim_feed(&home, tmp.path(), "Slow");
    server.faults().stall(0, Duration::from_secs(60), 1);
    let mut install = cmd(&home)
        .args(["Install-ContainerImage", "Slow"])
        .env("CONTAINERIMAGE_READ_TIMEOUT_MS", "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The download has started: its partial file is in the store's cache.
    let until = Instant::now() + Duration::from_secs(20);
    let cache = home.join("images/.cache");
    while !cache.join("Slow-1-0-0-0.wim.partial").exists() {
        assert!(Instant::now() < until, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = small_wim(tmp.path(), "Other");
    let started = Instant::now();
    let o = run(
        &home,
        &["Install-ContainerOSImage", other.to_str().expect("utf-8")],
    );
    assert_exit(&o, 0);
    assert!(
        !stderr(&o).contains("waiting"),
        "an unrelated install waited for a download:\n{}",
        stderr(&o)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    install.kill().expect("kill");
    install.wait().expect("reap");
}

#[test]
fn concurrent_installs_of_one_image_stay_correct() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let (_server, wim) = web_wim_feed(&home, tmp.path(), "Twice");
    let spawn = || {
        cmd(&home)
            .args(["Install-ContainerImage", "Twice"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let outputs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    assert!(succeeded >= 1, "one install succeeds");
    for o in &outputs {
        if !o.status.success() {
            assert_fails(o, "already installed");
        }
    }
    let o = run(&home, &["Get-ContainerImage"]);
    let images = json_lines(&o);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(
        images[0]["Id"],
        hex::encode(Sha256::digest(fs::read(&wim).expect("wim")))
    );
    let o = run(&home, &["Test-ContainerImage"]);
    assert_eq!(json_lines(&o)[0]["IsValid"], true);
}

#[test]
fn a_command_waiting_for_the_lock_names_its_holder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let first = small_wim(tmp.path(), "First");
    let second = small_wim(tmp.path(), "Second");
    let mut holder = cmd(&home)
        .args(["Install-ContainerOSImage", first.to_str().expect("utf-8")])
        .env("CONTAINERIMAGE_TEST_PAUSE_AT", "applied")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    read_until(&mut holder, "test pause at applied");
    let mut waiter = cmd(&home)
        .args(["Install-ContainerOSImage", second.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let said = read_until(&mut waiter, "waiting");
    assert!(
        said.contains(&format!(
            "WARNING: process {} (Install-ContainerOSImage) is changing the image store; waiting for it to finish",
            holder.id()
        )),
        "{said}"
    );
    holder.kill().expect("kill");
    holder.wait().expect("reap");
    let status = waiter
        .wait()
        .expect("the waiter goes on once the lock is free");
    assert!(status.success());
}

#[test]
fn advice_names_what_exists() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = run(home.path(), &["Remove-ContainerOSImage", "-FullName", "x"]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("Did you mean: Uninstall-ContainerOSImage"),
        "{}",
        stderr(&o)
    );
    let o = run(home.path(), &["Get-Help", "Find-ContainerImag"]);
    assert!(
        stderr(&o).contains("Did you mean: Find-ContainerImage"),
        "{}",
        stderr(&o)
    );
    let o = run(
        home.path(),
        &["Find-Package", "-ProviderName", "NuGet", "-Name", "x"],
    );
    assert_fails(&o, "Unable to find package provider 'NuGet'");
    assert!(!stderr(&o).contains("ListAvailable"), "{}", stderr(&o));
    for cmdlet in ["Uninstall-ContainerOSImage", "Remove-ContainerImage"] {
        let o = run(home.path(), &["Get-Help", cmdlet, "-Parameter", "Force"]);
        assert_exit(&o, 0);
        let text = stdout(&o);
        assert!(
            !text.contains("Do not ask") && text.contains("nothing asks before removing"),
            "{text}"
        );
    }
}

#[test]
fn no_match_says_what_exists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let feed = tmp.path().join("feed");
    let data = b"x".to_vec();
    write_feed(
        &feed,
        &[
            Image {
                name: "NanoServer",
                version: "10.0.14300.1010",
                description: "",
                file: "a.wim",
                data: &data,
            },
            Image {
                name: "NanoServer",
                version: "10.0.14393.0",
                description: "",
                file: "b.wim",
                data: &data,
            },
        ],
    );
    register(&home, "Local", feed.to_str().expect("utf-8"));
    let o = run(
        &home,
        &[
            "Find-ContainerImage",
            "NanoServer",
            "-RequiredVersion",
            "9.9",
        ],
    );
    assert_fails(
        &o,
        "No match was found for the specified search criteria and image name 'NanoServer'.",
    );
    assert!(
        stderr(&o).contains("Versions of 'NanoServer' available: 10.0.14393.0, 10.0.14300.1010."),
        "{}",
        stderr(&o)
    );
    let o = run(
        &home,
        &[
            "Save-ContainerImage",
            "NanoSrever",
            "-Path",
            tmp.path().to_str().expect("utf-8"),
        ],
    );
    assert_fails(&o, "Did you mean: NanoServer?");

    // A source that cannot be read is not "No match".
    let gone = tmp.path().join("gone");
    let o = run(
        &home,
        &[
            "Set-PackageSource",
            "-Name",
            "Local",
            "-NewLocation",
            gone.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let o = run(&home, &["Find-ContainerImage", "NanoServer"]);
    assert_fails(
        &o,
        "no source could be read, so nothing was searched ('Local': ",
    );
    assert!(!stderr(&o).contains("No match"), "{}", stderr(&o));
}

#[test]
fn registering_checks_the_location_and_still_registers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    // A missing folder.
    let missing = tmp.path().join("missing");
    let o = register(&home, "Missing", missing.to_str().expect("utf-8"));
    assert!(
        stderr(&o).contains("WARNING: the source 'Missing' is registered, but")
            && stderr(&o).contains("cannot be read now"),
        "{}",
        stderr(&o)
    );
    // A dead port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let o = register(&home, "Dead", &format!("http://127.0.0.1:{port}/feed.xml"));
    assert!(
        stderr(&o).contains("WARNING: the source 'Dead' is registered, but the feed at"),
        "{}",
        stderr(&o)
    );
    // A web page instead of the feed.
    let site = tmp.path().join("site");
    fs::create_dir_all(site.join("images")).expect("mkdir");
    fs::write(
        site.join("images/index.html"),
        "<!DOCTYPE html><html><body>Images</body></html>",
    )
    .expect("write");
    let server = TestServer::start(&site);
    let page = server.url("images/index.html");
    let o = register(&home, "Page", &page);
    assert!(
        stderr(&o).contains("answers with a web page, not a feed")
            && stderr(&o).contains(&format!("{page}/feed.xml")),
        "{}",
        stderr(&o)
    );
    // A good feed: no warning.
    let feed = tmp.path().join("feed");
    write_feed(&feed, &[]);
    let o = register(&home, "Good", feed.to_str().expect("utf-8"));
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    let o = run(&home, &["Get-PackageSource"]);
    assert_eq!(json_lines(&o).len(), 4, "every source is registered");
}

#[test]
fn one_image_from_two_sources_is_saved_once_and_sources_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let data = test_bytes(50_000, 7);
    for name in ["A", "B"] {
        let feed = tmp.path().join(name);
        write_feed(
            &feed,
            &[Image {
                name: "NanoServer",
                version: "10.0.14300.1010",
                description: "",
                file: "nano.wim",
                data: &data,
            }],
        );
        register(&home, name, feed.to_str().expect("utf-8"));
    }
    let o = run(&home, &["Find-ContainerImage", "NanoServer"]);
    let sources: Vec<_> = json_lines(&o).iter().map(|v| v["Source"].clone()).collect();
    assert_eq!(sources, ["A", "B"]);

    let out = tmp.path().join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let o = run(
        &home,
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 0);
    let saved = json_lines(&o);
    assert_eq!(saved.len(), 1, "saved once: {saved:?}");
    assert_eq!(saved[0]["Source"], "A");
    let feed = fs::read_to_string(out.join("feed.xml")).expect("feed.xml");
    assert_eq!(feed.matches("<Image>").count(), 1, "{feed}");

    let o = run(
        &home,
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Destination",
            out.join("one.wim").to_str().expect("utf-8"),
        ],
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o)
            .contains("NanoServer 10.0.14300.1010 from 'A', NanoServer 10.0.14300.1010 from 'B'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_flags_views_and_wrapped_syntax() {
    let home = tempfile::tempdir().expect("tempdir");
    let question = stdout(&run(home.path(), &["Save-ContainerImage", "-?"]));
    for flag in ["-h", "--help", "-Help"] {
        let o = run(home.path(), &["Save-ContainerImage", flag]);
        assert_exit(&o, 0);
        assert_eq!(stdout(&o), question, "{flag}");
    }
    let o = run(
        home.path(),
        &["Get-Help", "Save-ContainerImage", "-Examples"],
    );
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(
        text.contains("EXAMPLE 1") && !text.contains("PARAMETERS") && !text.contains("SYNTAX"),
        "{text}"
    );
    let o = run(home.path(), &["Get-Help", "Save-ContainerImage", "-Full"]);
    let text = stdout(&o);
    assert!(
        text.contains("Required?") && text.contains("Position?") && text.contains("EXAMPLE 1"),
        "{text}"
    );
    let o = run(
        home.path(),
        &[
            "Get-Help",
            "Save-ContainerImage",
            "-Parameter",
            "Destination",
        ],
    );
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(text.starts_with("    -Destination <String>"), "{text}");
    assert!(!text.contains("-LiteralPath"), "{text}");
    let o = run(
        home.path(),
        &["Get-Help", "Save-ContainerImage", "-Parameter", "Nope"],
    );
    assert_exit(&o, 2);

    // Syntax lines wrap between parameters, never inside one.
    let o = cmd(home.path())
        .env("COLUMNS", "60")
        .args(["Get-Help", "Save-ContainerImage"])
        .output()
        .expect("runs");
    let text = stdout(&o);
    let syntax: Vec<&str> = text
        .split("SYNTAX\n")
        .nth(1)
        .and_then(|rest| rest.split("DESCRIPTION").next())
        .expect("a SYNTAX section")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(syntax.len() > 3, "{text}");
    for line in &syntax {
        assert!(line.chars().count() <= 60, "too wide: {line:?}");
        let body = line.trim_start();
        assert!(
            body.starts_with("Save-ContainerImage")
                || body.starts_with('[')
                || body.starts_with('-'),
            "a line starts inside a parameter: {line:?}"
        );
        let opened = body.matches('[').count() + body.matches('<').count();
        let closed = body.matches(']').count() + body.matches('>').count();
        assert_eq!(opened, closed, "a parameter is split: {line:?}");
    }
}
