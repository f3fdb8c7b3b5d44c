//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub fn bin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerimage"))
}

/// A `containerimage` command with `CONTAINERIMAGE_HOME` pointed at `home`
/// and standard input closed (so nothing waits for a pipe).
pub fn cmd(home: &Path) -> Command {
    let mut c = Command::new(bin_path());
    c.env("CONTAINERIMAGE_HOME", home)
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// Runs `containerimage args...` with `home` and returns its output.
pub fn run(home: &Path, args: &[&str]) -> Output {
    cmd(home)
        .args(args)
        .output()
        .expect("the containerimage binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: exit 1, `message` on standard error, no panic.
#[track_caller]
pub fn assert_fails(o: &Output, message: &str) {
    assert_exit(o, 1);
    let err = stderr(o);
    assert!(
        err.contains(message),
        "stderr should contain {message:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout:\n{}\n--- stderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Parses JSON Lines output.
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Fails the test (never skips it) when a tool it needs is missing.
#[track_caller]
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let package = match tool {
        "wimlib-imagex" => "wimtools",
        "7zz" => "7zip",
        "setpriv" => "util-linux",
        "script" => "bsdutils",
        other => other,
    };
    assert!(
        found,
        "this test needs `{tool}`: install it with `apt-get install -y {package}`"
    );
}

/// Runs `wimlib-imagex args...` and fails the test with its output if it fails.
#[track_caller]
pub fn wimlib(args: &[&str]) -> Output {
    require_tool("wimlib-imagex");
    let o = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("wimlib-imagex runs");
    assert!(
        o.status.success(),
        "wimlib-imagex {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A one-file `.wim` made by wimlib, named `<name>-1-0-0-0.wim` (so it
/// installs as version 1.0.0.0).
pub fn small_wim(tmp: &Path, name: &str) -> PathBuf {
    let tree = tmp.join(format!("{name}.tree"));
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join("file.txt"), name).expect("write");
    let wim = tmp.join(format!("{name}-1-0-0-0.wim"));
    wimlib(&[
        "capture",
        tree.to_str().expect("utf-8"),
        wim.to_str().expect("utf-8"),
        "OS",
    ]);
    wim
}
