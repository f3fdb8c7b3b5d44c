//! Registries: Request-ContainerImage, Submit-ContainerImage, login and
//! search against Debian's `docker-registry` started on 127.0.0.1 (no auth,
//! htpasswd Basic auth, token auth), with `skopeo` and `umoci` as the
//! independent clients, and against small servers that lie.

mod auth;
mod faults;
mod roundtrip;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{assert_exit, json_lines, require_tool, run, stderr, wimlib};

/// A `docker-registry` serving a temporary folder on 127.0.0.1.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; `auth` is the YAML of its `auth:` section (indented
    /// by two spaces), or empty for none.
    pub fn start(auth: &str) -> Registry {
        require_tool("docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-secret\n{}",
            dir.path().join("data").display(),
            if auth.is_empty() {
                String::new()
            } else {
                format!("auth:\n{auth}")
            }
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write config");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry starts (apt-get install -y docker-registry)");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("docker-registry did not say where it listens within 20 s");
            }
        };
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a tool and fails the test with its output if it fails.
#[track_caller]
pub fn tool(name: &str, args: &[&str]) -> std::process::Output {
    require_tool(name);
    let o = Command::new(name).args(args).output().expect("tool runs");
    assert!(
        o.status.success(),
        "{name} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A home with one image installed from a wimlib-made `.wim`
/// (`nano:1.0.0.0`); returns the home.
pub fn installed_image(tmp: &Path) -> PathBuf {
    let os = tmp.join("os");
    fs::create_dir_all(os.join("Windows/System32/config")).expect("mkdir");
    fs::write(
        os.join("Windows/System32/kernel32.dll"),
        "kernel ".repeat(60_000),
    )
    .expect("write");
    fs::write(os.join("Windows/System32/config/SYSTEM"), b"hive").expect("write");
    fs::write(os.join("Windows/empty.txt"), b"").expect("write");
    let wim = tmp.join("Nano-1-0.wim");
    let w = wim.to_str().expect("utf-8");
    wimlib(&["capture", os.to_str().expect("utf-8"), w, "OS"]);
    let home = tmp.join("home");
    assert_exit(&run(&home, &["Install-ContainerOSImage", w]), 0);
    home
}

/// The images of a home, as Get-ContainerImage writes them.
pub fn images(home: &Path) -> Vec<serde_json::Value> {
    let o = run(home, &["Get-ContainerImage", "-OutputFormat", "Json"]);
    assert_exit(&o, 0);
    json_lines(&o)
}

/// The regular files under `root` with their contents.
pub fn files_of(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("inside").display().to_string();
            if m.is_dir() {
                walk(root, &p, out);
            } else if m.is_file() {
                out.push((rel, fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The `Files/` of the one image of `home`.
pub fn files_of_image(home: &Path) -> Vec<(String, Vec<u8>)> {
    let list = images(home);
    assert_eq!(list.len(), 1, "one image expected: {list:?}");
    let path = list[0]["Path"].as_str().expect("Path");
    files_of(&Path::new(path).join("Files"))
}

/// Asserts that no line of `o`'s streams holds `secret`.
#[track_caller]
pub fn assert_never_shows(o: &std::process::Output, secret: &str) {
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
    assert!(
        !all.contains(secret),
        "the secret appears in the output:\n{all}"
    );
}
