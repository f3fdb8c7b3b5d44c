//! Signed feeds, end to end: keys made and signatures checked by the real
//! `minisign` tool, folder sources, feed files and feeds served over HTTP
//! on 127.0.0.1, each way a signature can fail, key rotation, re-signing
//! after Save, and a signed folder copied to another host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::server::TestServer;
use crate::common::{
    assert_exit, assert_fails, cmd, json_lines, require_tool, run, stderr, stdout, wimlib,
};

/// Runs `minisign args...`, feeding `input` on standard input.
fn minisign_with_input(args: &[&str], input: &str) -> Output {
    require_tool("minisign");
    let mut child = Command::new("minisign")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("minisign runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("minisign ends")
}

/// Runs `minisign args...` and fails the test with its output if it fails.
#[track_caller]
fn minisign(args: &[&str]) -> Output {
    let o = minisign_with_input(args, "");
    assert!(
        o.status.success(),
        "minisign {args:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A key pair made by `minisign -G -W` (no password): (public, secret).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let public = dir.join(format!("{name}.pub"));
    let secret = dir.join(format!("{name}.key"));
    minisign(&["-G", "-W", "-f", "-p", s(&public), "-s", s(&secret)]);
    (public, secret)
}

/// The key ID minisign wrote in a `.pub` file's comment line.
fn key_id(public: &Path) -> String {
    let text = std::fs::read_to_string(public).expect("read .pub");
    let first = text.lines().next().unwrap_or_default();
    first
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The base64 key line of a `.pub` file.
fn key_line(public: &Path) -> String {
    let text = std::fs::read_to_string(public).expect("read .pub");
    text.lines().nth(1).unwrap_or_default().trim().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A small `.wim` made by wimlib-imagex.
fn make_wim(path: &Path, content: &str) {
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("file.txt"), content).expect("write");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    wimlib(&["capture", s(src.path()), s(path), "Test image"]);
}

/// A folder with one image, its feed.xml written and signed with `secret`
/// by New-ContainerImageFeed.
fn signed_folder(home: &Path, folder: &Path, name: &str, secret: &Path) {
    make_wim(&folder.join(format!("{name}-1-0-0-0.wim")), name);
    let o = run(
        home,
        &[
            "New-ContainerImageFeed",
            s(folder),
            "-SigningKey",
            s(secret),
        ],
    );
    assert_exit(&o, 0);
}

fn ok(home: &Path, args: &[&str]) -> Vec<Value> {
    let o = run(home, args);
    assert_exit(&o, 0);
    json_lines(&o)
}

/// "Source/Name" of every object Find wrote.
fn listed(o: &Output) -> Vec<String> {
    json_lines(o)
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["Source"].as_str().unwrap_or("?"),
                v["Name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Asserts that Find fails for the pinned source `name` with `cause`,
/// still lists what the unpinned source `Plain` offers, and nothing else.
#[track_caller]
fn assert_refused(home: &Path, name: &str, cause: &str) {
    let o = run(home, &["Find-ContainerImage"]);
    assert_fails(&o, &format!("the source '{name}' is pinned to the key ID"));
    let err = stderr(&o);
    assert!(err.contains(cause), "expected {cause:?} in:\n{err}");
    assert!(err.contains("nothing from it is used"), "{err}");
    assert_eq!(
        listed(&o),
        ["Plain/Other"],
        "only the unpinned source answers"
    );
}

#[test]
fn pinning_rotating_and_unpinning_a_key() {
    let home = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (public, secret) = keypair(keys.path(), "publisher");
    let (public2, _) = keypair(keys.path(), "publisher2");

    let v = ok(
        h,
        &[
            "Register-PackageSource",
            "Signed",
            "https://images.test/feed.xml",
            "-PublicKey",
            s(&public),
        ],
    );
    assert_eq!(v[0]["IsPinned"], true);
    assert_eq!(v[0]["PublicKeyId"], key_id(&public).as_str());
    assert_eq!(v[0]["PublicKey"], key_line(&public).as_str());

    let v = ok(h, &["Get-PackageSource", "Signed"]);
    assert_eq!(v[0]["IsPinned"], true);
    assert_eq!(v[0]["PublicKeyId"], key_id(&public).as_str());
    let table = run(h, &["Get-PackageSource", "-OutputFormat", "Table"]);
    assert!(stdout(&table).contains("IsPinned"), "{}", stdout(&table));

    // Rotation: the new key given as its base64 line.
    let v = ok(
        h,
        &[
            "Set-PackageSource",
            "Signed",
            "-PublicKey",
            &key_line(&public2),
        ],
    );
    assert_eq!(v[0]["PublicKeyId"], key_id(&public2).as_str());
    assert_ne!(key_id(&public), key_id(&public2));

    // Unpinning.
    let v = ok(h, &["Set-PackageSource", "Signed", "-NoPublicKey"]);
    assert_eq!(v[0]["IsPinned"], false);
    assert_eq!(v[0]["PublicKeyId"], Value::Null);
    let v = ok(h, &["Get-PackageSource", "Signed"]);
    assert_eq!(v[0]["IsPinned"], false);

    // Usage errors: an empty key, both -PublicKey and -NoPublicKey.
    let o = run(h, &["Set-PackageSource", "Signed", "-PublicKey", ""]);
    assert_exit(&o, 2);
    let o = run(
        h,
        &[
            "Set-PackageSource",
            "Signed",
            "-PublicKey",
            s(&public),
            "-NoPublicKey",
        ],
    );
    assert_exit(&o, 2);
    // A secret key, or text that is no key, is refused and nothing changes.
    let o = run(
        h,
        &["Set-PackageSource", "Signed", "-PublicKey", s(&secret)],
    );
    assert_fails(&o, "not a public key");
    let o = run(
        h,
        &["Set-PackageSource", "Signed", "-PublicKey", "RWnot-a-key"],
    );
    assert_fails(&o, "neither a minisign public key");
    let v = ok(h, &["Get-PackageSource", "Signed"]);
    assert_eq!(v[0]["IsPinned"], false);
}

#[test]
fn a_pinned_folder_is_used_only_while_its_signature_verifies() {
    let home = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let signed = tempfile::tempdir().expect("tempdir");
    let plain = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (public, secret) = keypair(keys.path(), "publisher");
    let (_, foreign_secret) = keypair(keys.path(), "someone-else");
    signed_folder(h, signed.path(), "NanoServer", &secret);
    make_wim(&plain.path().join("Other-2-0-0-0.wim"), "other");

    let feed = signed.path().join("feed.xml");
    let sig = signed.path().join("feed.xml.minisig");
    // What this tool signs, the minisign tool verifies.
    let checked = minisign(&["-V", "-p", s(&public), "-m", s(&feed)]);
    assert!(
        stdout(&checked).contains("file:feed.xml"),
        "{}",
        stdout(&checked)
    );

    ok(
        h,
        &[
            "Register-PackageSource",
            "Signed",
            s(signed.path()),
            "-PublicKey",
            s(&public),
        ],
    );
    ok(h, &["Register-PackageSource", "Plain", s(plain.path())]);

    // Verified: listed, and -Verbose shows the trusted comment.
    let o = run(h, &["Find-ContainerImage", "-Verbose"]);
    assert_exit(&o, 0);
    assert_eq!(listed(&o), ["Signed/NanoServer", "Plain/Other"]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "verifies with the pinned key ID {}",
            key_id(&public)
        )) && err.contains("trusted comment: timestamp:"),
        "{err}"
    );

    let good_feed = std::fs::read(&feed).expect("feed");
    let good_sig = std::fs::read(&sig).expect("signature");

    // Missing.
    std::fs::remove_file(&sig).expect("remove signature");
    assert_refused(h, "Signed", "there is no signature at");

    // Damaged.
    std::fs::write(&sig, "untrusted comment: x\nnot base64 at all\n").expect("write");
    assert_refused(h, "Signed", "is damaged");
    let mut flipped = good_sig.clone();
    let at = flipped.len() - 10;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&sig, &flipped).expect("write");
    assert_refused(h, "Signed", "does not match the feed");

    // Foreign key: minisign signs the same feed with another key.
    minisign(&["-S", "-s", s(&foreign_secret), "-m", s(&feed)]);
    assert_refused(h, "Signed", "not with the pinned key ID");

    // Stale: a valid signature of other bytes (the feed changed after signing).
    std::fs::write(&sig, &good_sig).expect("restore signature");
    let mut changed = good_feed.clone();
    changed.extend_from_slice(b"<!-- changed -->\n");
    std::fs::write(&feed, &changed).expect("change feed");
    assert_refused(h, "Signed", "does not match the feed");

    // A pinned folder without feed.xml cannot be verified.
    std::fs::remove_file(&feed).expect("remove feed");
    assert_refused(h, "Signed", "has no feed.xml");

    // Save and Install take nothing from a refused source either.
    let out = tempfile::tempdir().expect("tempdir");
    let o = run(
        h,
        &["Save-ContainerImage", "NanoServer", "-Path", s(out.path())],
    );
    assert_fails(&o, "the source 'Signed' is pinned");
    assert!(!out.path().join("NanoServer-1-0-0-0.wim").exists());
    let o = run(h, &["Install-ContainerImage", "NanoServer", "-Force"]);
    assert_fails(&o, "the source 'Signed' is pinned");
    assert!(ok(h, &["Get-ContainerImage"]).is_empty());

    // Restored, it installs.
    std::fs::write(&feed, &good_feed).expect("restore feed");
    let v = ok(h, &["Install-ContainerImage", "NanoServer", "-Force"]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["Name"], "NanoServer");
}

#[test]
fn feeds_signed_by_the_minisign_tool_verify_over_http_and_from_a_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let served = tempfile::tempdir().expect("tempdir");
    let plain = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (public, secret) = keypair(keys.path(), "publisher");
    make_wim(&served.path().join("NanoServer-1-0-0-0.wim"), "nano");
    make_wim(&plain.path().join("Other-2-0-0-0.wim"), "other");
    // An unsigned feed, signed by minisign (prehashed, its default).
    ok(h, &["New-ContainerImageFeed", s(served.path())]);
    let feed = served.path().join("feed.xml");
    let sig = served.path().join("feed.xml.minisig");
    minisign(&[
        "-S",
        "-s",
        s(&secret),
        "-m",
        s(&feed),
        "-t",
        "release 2024-06",
    ]);

    let server = TestServer::start(served.path());
    ok(
        h,
        &[
            "Register-PackageSource",
            "Web",
            &server.url("feed.xml"),
            "-PublicKey",
            s(&public),
        ],
    );
    ok(h, &["Register-PackageSource", "Plain", s(plain.path())]);
    let o = run(h, &["Find-ContainerImage", "-Verbose"]);
    assert_exit(&o, 0);
    assert_eq!(listed(&o), ["Web/NanoServer", "Plain/Other"]);
    assert!(
        stderr(&o).contains("trusted comment: release 2024-06"),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.requests("feed.xml.minisig"), 1);

    // Legacy (non-prehashed) signatures are accepted, as minisign -V accepts them.
    minisign(&["-S", "-l", "-s", s(&secret), "-m", s(&feed)]);
    let o = run(h, &["Find-ContainerImage", "-Verbose"]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("(legacy)"), "{}", stderr(&o));

    // A signature the server does not have.
    server.faults().not_found("feed.xml.minisig");
    assert_refused(h, "Web", "there is no signature at");
    server.faults().clear();
    // A signature that trickles past the deadline (the feed arrives in time).
    let good_sig = std::fs::read(&sig).expect("signature");
    let mut padded = good_sig.clone();
    padded.resize(15_000, b'\n');
    std::fs::write(&sig, &padded).expect("write");
    server
        .faults()
        .trickle(1024, std::time::Duration::from_millis(200), 2);
    let o = cmd(h)
        .args(["Find-ContainerImage"])
        .env("CONTAINERIMAGE_FEED_DEADLINE_MS", "1500")
        .output()
        .expect("runs");
    assert_fails(&o, "cannot fetch the signature");
    assert!(
        stderr(&o).contains("did not arrive within 1.5 seconds"),
        "{}",
        stderr(&o)
    );
    assert_eq!(listed(&o), ["Plain/Other"]);
    server.faults().clear();
    std::fs::write(&sig, &good_sig).expect("restore");
    // One too large to be a signature is not read to the end.
    std::fs::write(&sig, vec![b'A'; 1 << 20]).expect("write");
    assert_refused(h, "Web", "too large to be a minisign signature");
    // A stale one: signed before the feed changed.
    minisign(&["-S", "-s", s(&secret), "-m", s(&feed)]);
    let mut changed = std::fs::read(&feed).expect("feed");
    changed.extend_from_slice(b"<!-- changed -->\n");
    std::fs::write(&feed, &changed).expect("write");
    assert_refused(h, "Web", "does not match the feed");

    // A feed file (not a folder) is checked against <file>.minisig.
    minisign(&["-S", "-s", s(&secret), "-m", s(&feed)]);
    let o = run(h, &["Unregister-PackageSource", "Web"]);
    assert_exit(&o, 0);
    ok(
        h,
        &[
            "Register-PackageSource",
            "File",
            s(&feed),
            "-PublicKey",
            &key_line(&public),
        ],
    );
    let o = run(h, &["Find-ContainerImage"]);
    assert_exit(&o, 0);
    assert_eq!(listed(&o), ["Plain/Other", "File/NanoServer"]);
    std::fs::remove_file(&sig).expect("remove");
    assert_refused(h, "File", "there is no signature at");
}

#[test]
fn a_new_key_is_pinned_with_set_package_source() {
    let home = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let folder = tempfile::tempdir().expect("tempdir");
    let plain = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (old_public, old_secret) = keypair(keys.path(), "2023");
    let (new_public, new_secret) = keypair(keys.path(), "2024");
    signed_folder(h, folder.path(), "NanoServer", &old_secret);
    make_wim(&plain.path().join("Other-2-0-0-0.wim"), "other");
    ok(
        h,
        &[
            "Register-PackageSource",
            "Signed",
            s(folder.path()),
            "-PublicKey",
            s(&old_public),
        ],
    );
    ok(h, &["Register-PackageSource", "Plain", s(plain.path())]);
    assert_eq!(
        listed(&run(h, &["Find-ContainerImage"])),
        ["Signed/NanoServer", "Plain/Other"]
    );

    // The publisher rotates: the feed is signed with the new key only.
    let o = run(
        h,
        &[
            "New-ContainerImageFeed",
            s(folder.path()),
            "-SigningKey",
            s(&new_secret),
        ],
    );
    assert_exit(&o, 0);
    assert_refused(
        h,
        "Signed",
        &format!("made with the key ID {}", key_id(&new_public)),
    );

    ok(
        h,
        &["Set-PackageSource", "Signed", "-PublicKey", s(&new_public)],
    );
    let o = run(h, &["Find-ContainerImage"]);
    assert_exit(&o, 0);
    assert_eq!(listed(&o), ["Signed/NanoServer", "Plain/Other"]);
}

#[test]
fn save_re_signs_the_folder_feed_or_warns_that_it_is_stale() {
    let home = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let upstream = tempfile::tempdir().expect("tempdir");
    let mirror = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (public, secret) = keypair(keys.path(), "publisher");
    make_wim(&upstream.path().join("NanoServer-1-0-0-0.wim"), "nano");
    make_wim(&upstream.path().join("Core-2-0-0-0.wim"), "core");
    ok(
        h,
        &["Register-PackageSource", "Upstream", s(upstream.path())],
    );

    // A signed mirror folder holding one image.
    let o = run(
        h,
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            s(mirror.path()),
            "-SigningKey",
            s(&secret),
        ],
    );
    assert_exit(&o, 0);
    let feed = mirror.path().join("feed.xml");
    minisign(&["-V", "-p", s(&public), "-m", s(&feed)]);

    // Saving another image without the key: the signature is now stale.
    let o = run(
        h,
        &["Save-ContainerImage", "Core", "-Path", s(mirror.path())],
    );
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("WARNING:")
            && err.contains("no longer matches")
            && err.contains("-SigningKey")
            && err.contains("minisign -S"),
        "{err}"
    );
    let stale = minisign_with_input(&["-V", "-p", s(&public), "-m", s(&feed)], "");
    assert!(
        !stale.status.success(),
        "minisign must reject the stale signature"
    );

    // Run again with the key: nothing is downloaded, the feed is re-signed.
    let o = run(
        h,
        &[
            "Save-ContainerImage",
            "Core",
            "-Path",
            s(mirror.path()),
            "-SigningKey",
            s(&secret),
        ],
    );
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("already saved"), "{}", stderr(&o));
    minisign(&["-V", "-p", s(&public), "-m", s(&feed)]);
    let text = std::fs::read_to_string(&feed).expect("feed");
    assert!(
        text.contains("NanoServer") && text.contains("Core"),
        "{text}"
    );

    // -SigningKey has no feed to sign with -Destination.
    let o = run(
        h,
        &[
            "Save-ContainerImage",
            "Core",
            "-Destination",
            s(&mirror.path().join("x.wim")),
            "-SigningKey",
            s(&secret),
        ],
    );
    assert_exit(&o, 2);
}

#[test]
fn a_signed_folder_copied_to_an_offline_host_verifies_there() {
    let keys = tempfile::tempdir().expect("tempdir");
    let online_home = tempfile::tempdir().expect("tempdir");
    let upstream = tempfile::tempdir().expect("tempdir");
    let mirror = tempfile::tempdir().expect("tempdir");
    let (public, secret) = keypair(keys.path(), "site");
    make_wim(&upstream.path().join("NanoServer-1-0-0-0.wim"), "nano");
    let server = TestServer::start(upstream.path());
    ok(
        online_home.path(),
        &["New-ContainerImageFeed", s(upstream.path())],
    );
    ok(
        online_home.path(),
        &["Register-PackageSource", "Web", &server.url("feed.xml")],
    );
    let o = run(
        online_home.path(),
        &[
            "Save-ContainerImage",
            "NanoServer",
            "-Path",
            s(mirror.path()),
            "-SigningKey",
            s(&secret),
        ],
    );
    assert_exit(&o, 0);

    // The folder is copied (as to removable media) to a host with its own home.
    let offline_home = tempfile::tempdir().expect("tempdir");
    let media = tempfile::tempdir().expect("tempdir");
    let copied = media.path().join("images");
    let status = Command::new("cp")
        .args(["-a", s(mirror.path()), s(&copied)])
        .status()
        .expect("cp runs");
    assert!(status.success());
    drop(server);
    let h = offline_home.path();
    ok(
        h,
        &[
            "Register-PackageSource",
            "Media",
            s(&copied),
            "-PublicKey",
            s(&public),
        ],
    );
    let v = ok(h, &["Install-ContainerImage", "NanoServer", "-Force"]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["Name"], "NanoServer");

    // Tampering on the way is caught: a changed feed on the media is refused.
    std::fs::write(
        copied.join("feed.xml"),
        std::fs::read_to_string(copied.join("feed.xml"))
            .expect("feed")
            .replace("NanoServer", "NanoServor"),
    )
    .expect("write");
    let o = run(h, &["Find-ContainerImage"]);
    assert_fails(&o, "does not match the feed");
    assert!(json_lines(&o).is_empty());
}

#[test]
fn encrypted_keys_take_their_password_from_the_environment_or_the_terminal() {
    let home = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let folder = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let public = keys.path().join("enc.pub");
    let secret = keys.path().join("enc.key");
    // minisign reads the new password twice from standard input.
    let o = minisign_with_input(
        &["-G", "-f", "-p", s(&public), "-s", s(&secret)],
        "correct horse\ncorrect horse\n",
    );
    assert!(
        o.status.success(),
        "minisign -G: {:?}\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    make_wim(&folder.path().join("NanoServer-1-0-0-0.wim"), "nano");
    let feed = folder.path().join("feed.xml");
    let new_feed = [
        "New-ContainerImageFeed",
        s(folder.path()),
        "-SigningKey",
        s(&secret),
    ];

    // From the environment variable the help names.
    let help = run(h, &["Get-Help", "New-ContainerImageFeed"]);
    assert!(
        stdout(&help).contains("CONTAINERIMAGE_SIGNING_KEY_PASSWORD"),
        "{}",
        stdout(&help)
    );
    let o = cmd(h)
        .args(new_feed)
        .env("CONTAINERIMAGE_SIGNING_KEY_PASSWORD", "correct horse")
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    minisign(&["-V", "-p", s(&public), "-m", s(&feed)]);

    let o = cmd(h)
        .args(new_feed)
        .env("CONTAINERIMAGE_SIGNING_KEY_PASSWORD", "wrong")
        .output()
        .expect("runs");
    assert_fails(&o, "Wrong password");

    // Without the variable and without a terminal: says what to set.
    require_tool("setsid");
    let c = cmd(h);
    let mut detached = Command::new("setsid");
    detached.arg("-w").arg(c.get_program()).args(new_feed);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => detached.env(k, v),
            None => detached.env_remove(k),
        };
    }
    let o = detached
        .env_remove("CONTAINERIMAGE_SIGNING_KEY_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("setsid runs");
    assert_fails(&o, "CONTAINERIMAGE_SIGNING_KEY_PASSWORD");

    // On a terminal the password is asked for.
    std::fs::remove_file(folder.path().join("feed.xml.minisig")).expect("remove");
    require_tool("script");
    let line = std::iter::once(crate::common::bin_path().display().to_string())
        .chain(new_feed.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut on_tty = Command::new("script");
    on_tty.args(["-qec", &line, "/dev/null"]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => on_tty.env(k, v),
            None => on_tty.env_remove(k),
        };
    }
    let mut child = on_tty
        .env_remove("CONTAINERIMAGE_SIGNING_KEY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"correct horse\n")
            .expect("type the password");
    }
    let o = child.wait_with_output().expect("wait");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("Password for the secret key"),
        "{}",
        stdout(&o)
    );
    minisign(&["-V", "-p", s(&public), "-m", s(&feed)]);
}
