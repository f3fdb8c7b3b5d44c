//! Registry answers that lie (wrong bytes, wrong digests, oversized and
//! endless manifests, a manifest naming a missing blob), a blob redirect to
//! another host (which never sees the credentials), and connections dropped
//! in the middle of an upload and of a download (resumed, the result
//! identical) by a proxy in front of a real registry.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{assert_never_shows, files_of, files_of_image, images, tool, Registry};
use crate::common::{assert_exit, assert_fails, cmd, run, stderr, wimlib};

/// What the lying registry does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    WrongLayerBytes,
    OversizedManifest,
    EndlessManifest,
    WrongDigestHeader,
    MissingBlob,
    RedirectBlobs,
}

struct Fake {
    lie: Lie,
    manifest: Vec<u8>,
    manifest_type: String,
    blobs: HashMap<String, Vec<u8>>,
    layers: Vec<String>,
    other_host: String,
    /// Authorization headers seen: (host, header or "").
    seen: Mutex<Vec<(String, String)>>,
}

const USER: &str = "reader";
const PASSWORD: &str = "Lie-Detector-55";

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

fn record(fake: &Fake, host: &str, headers: &HeaderMap) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    fake.seen
        .lock()
        .expect("lock")
        .push((host.to_string(), auth));
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("WWW-Authenticate", "Basic realm=\"fake\"")],
        "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}",
    )
        .into_response()
}

async fn registry_route(
    State(fake): State<Arc<Fake>>,
    UrlPath(rest): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    record(&fake, "registry", &headers);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic().as_str()) {
        return unauthorized();
    }
    if rest.is_empty() {
        return StatusCode::OK.into_response();
    }
    if rest.starts_with("lie/nano/manifests/") {
        return match fake.lie {
            Lie::OversizedManifest => (
                [("Content-Type", fake.manifest_type.clone())],
                vec![b' '; 5 << 20],
            )
                .into_response(),
            Lie::EndlessManifest => {
                let stream = futures_util::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 64 << 10]))
                });
                (
                    [("Content-Type", fake.manifest_type.clone())],
                    Body::from_stream(stream),
                )
                    .into_response()
            }
            Lie::WrongDigestHeader => (
                [
                    ("Content-Type", fake.manifest_type.clone()),
                    (
                        "Docker-Content-Digest",
                        format!("sha256:{}", "0".repeat(64)),
                    ),
                ],
                fake.manifest.clone(),
            )
                .into_response(),
            _ => (
                [("Content-Type", fake.manifest_type.clone())],
                fake.manifest.clone(),
            )
                .into_response(),
        };
    }
    if let Some(digest) = rest.strip_prefix("lie/nano/blobs/") {
        let Some(bytes) = fake.blobs.get(digest) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let is_layer = fake.layers.iter().any(|l| l == digest);
        if is_layer && fake.lie == Lie::MissingBlob {
            return (StatusCode::NOT_FOUND, "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\"}]}").into_response();
        }
        if is_layer && fake.lie == Lie::RedirectBlobs {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(
                    "Location",
                    format!("http://{}/storage/{digest}", fake.other_host),
                )],
            )
                .into_response();
        }
        let mut bytes = bytes.clone();
        if is_layer && fake.lie == Lie::WrongLayerBytes {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        }
        return bytes.into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

async fn registry_root(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    registry_route(State(fake), UrlPath(String::new()), headers).await
}

async fn storage_route(
    State(fake): State<Arc<Fake>>,
    UrlPath(digest): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    record(&fake, "storage", &headers);
    match fake.blobs.get(&digest) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A lying registry serving the image exported from `home`, and a second
/// "object storage" host for redirects.
struct FakeRegistry {
    addr: String,
    fake: Arc<Fake>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeRegistry {
    fn start(home: &Path, tmp: &Path, lie: Lie) -> FakeRegistry {
        let layout = tmp.join(format!("layout-{lie:?}"));
        assert_exit(
            &run(
                home,
                &[
                    "Export-ContainerImage",
                    "nano:1.0.0.0",
                    "-Path",
                    layout.to_str().expect("utf-8"),
                    "-Format",
                    "OciDirectory",
                ],
            ),
            0,
        );
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index"))
                .expect("json");
        let manifest_digest = index["manifests"][0]["digest"].as_str().expect("digest");
        let read = |d: &str| {
            fs::read(
                layout
                    .join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:")),
            )
            .expect("blob")
        };
        let manifest = read(manifest_digest);
        let parsed: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest");
        let mut blobs = HashMap::new();
        let layers: Vec<String> = parsed["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_string())
            .collect();
        for d in
            std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().expect("layers"))
        {
            let digest = d["digest"].as_str().expect("digest").to_string();
            blobs.insert(digest.clone(), read(&digest));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let main = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let other = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let fake = Arc::new(Fake {
            lie,
            manifest,
            manifest_type: "application/vnd.oci.image.manifest.v1+json".into(),
            blobs,
            layers,
            other_host: other.local_addr().expect("addr").to_string(),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/v2/", axum::routing::get(registry_root))
            .route("/v2/{*rest}", axum::routing::get(registry_route))
            .with_state(fake.clone());
        let storage = axum::Router::new()
            .route("/storage/{digest}", axum::routing::get(storage_route))
            .with_state(fake.clone());
        let addr = main.local_addr().expect("addr").to_string();
        runtime.spawn(async move {
            let _ = axum::serve(main, app).await;
        });
        runtime.spawn(async move {
            let _ = axum::serve(other, storage).await;
        });
        FakeRegistry {
            addr,
            fake,
            _runtime: runtime,
        }
    }
}

/// Pulls `lie/nano:1` from a fake registry that tells `lie`, logged in.
fn pull_from_liar(
    lie: Lie,
) -> (
    std::process::Output,
    Vec<serde_json::Value>,
    FakeRegistry,
    tempfile::TempDir,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = super::installed_image(tmp.path());
    let fake = FakeRegistry::start(&home, tmp.path(), lie);
    let docker = tmp.path().join("docker");
    fs::create_dir_all(&docker).expect("mkdir");
    fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            fake.addr,
            basic().trim_start_matches("Basic ")
        ),
    )
    .expect("write");
    let home2 = tmp.path().join("home2");
    let o = cmd(&home2)
        .env("DOCKER_CONFIG", &docker)
        .env("CONTAINERIMAGE_RETRIES", "1")
        .env("CONTAINERIMAGE_RETRY_BASE_MS", "1")
        .args([
            "Request-ContainerImage",
            &format!("{}/lie/nano:1", fake.addr),
            "-Verbose",
        ])
        .output()
        .expect("runs");
    let list = images(&home2);
    (o, list, fake, tmp)
}

#[test]
fn a_layer_with_wrong_bytes_is_refused_and_nothing_is_installed() {
    let (o, list, _fake, _tmp) = pull_from_liar(Lie::WrongLayerBytes);
    assert_fails(&o, "SHA-256 mismatch");
    assert!(list.is_empty(), "nothing may be installed: {list:?}");
}

#[test]
fn oversized_and_endless_manifests_are_refused() {
    let (o, list, _fake, _tmp) = pull_from_liar(Lie::OversizedManifest);
    assert_fails(&o, "more than 4194304 bytes");
    assert!(list.is_empty());
    let started = Instant::now();
    let (o, list, _fake, _tmp) = pull_from_liar(Lie::EndlessManifest);
    assert_fails(&o, "more than 4194304 bytes");
    assert!(list.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "an endless body must stop early"
    );
}

#[test]
fn a_manifest_digest_that_lies_and_a_missing_blob_are_refused() {
    let (o, list, _fake, _tmp) = pull_from_liar(Lie::WrongDigestHeader);
    assert_fails(&o, &format!("not sha256:{}", "0".repeat(64)));
    assert!(list.is_empty());
    let (o, list, _fake, _tmp) = pull_from_liar(Lie::MissingBlob);
    assert_fails(&o, "HTTP 404");
    assert!(list.is_empty());
}

#[test]
fn a_blob_redirect_to_another_host_goes_without_the_credentials() {
    let (o, list, fake, _tmp) = pull_from_liar(Lie::RedirectBlobs);
    assert_exit(&o, 0);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_never_shows(&o, PASSWORD);
    let seen = fake.fake.seen.lock().expect("lock").clone();
    let storage: Vec<_> = seen.iter().filter(|(h, _)| h == "storage").collect();
    assert_eq!(
        storage.len(),
        1,
        "the layer came from the other host: {seen:?}"
    );
    assert_eq!(
        storage[0].1, "",
        "no Authorization may reach another host: {seen:?}"
    );
    assert!(
        seen.iter().any(|(h, a)| h == "registry" && a == &basic()),
        "the registry itself got the credentials: {seen:?}"
    );
}

/// A TCP proxy to `upstream` that cuts the connection once, after `after`
/// bytes have gone in one direction (`upload`: client to server).
struct DroppingProxy {
    addr: String,
    dropped: Arc<AtomicBool>,
}

impl DroppingProxy {
    fn start(upstream: &str, upload: bool, after: u64) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let dropped = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_string();
        let flag = dropped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let pump = |mut from: TcpStream, mut to: TcpStream, watched: bool| {
                    let flag = flag.clone();
                    let counted = counted.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 16 << 10];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if watched && !flag.load(Ordering::SeqCst) {
                                let total =
                                    counted.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                                if total > after {
                                    flag.store(true, Ordering::SeqCst);
                                    let _ = from.shutdown(Shutdown::Both);
                                    let _ = to.shutdown(Shutdown::Both);
                                    break;
                                }
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                };
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                pump(client, server, upload);
                pump(s2, c2, !upload);
            }
        });
        DroppingProxy { addr, dropped }
    }
}

/// A home with an image whose layer is ~3 MB of incompressible bytes.
fn installed_big_image(tmp: &Path) -> std::path::PathBuf {
    let os = tmp.join("os");
    fs::create_dir_all(os.join("Windows/System32")).expect("mkdir");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(os.join("Windows/System32/noise.bin"), noise).expect("write");
    let wim = tmp.join("Nano-1-0.wim");
    let w = wim.to_str().expect("utf-8");
    wimlib(&["capture", os.to_str().expect("utf-8"), w, "OS"]);
    let home = tmp.join("home");
    assert_exit(&run(&home, &["Install-ContainerOSImage", w]), 0);
    home
}

#[test]
fn uploads_and_downloads_cut_in_the_middle_resume_with_identical_results() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_big_image(tmp.path());
    let original = files_of_image(&home);
    let registry = Registry::start("");

    // Upload: 1 MiB chunks, the connection cut after 1.5 MB.
    let proxy = DroppingProxy::start(&registry.addr, true, 1_500_000);
    let dest = format!("{}/cut/nano:1", proxy.addr);
    let o = cmd(&home)
        .env("CONTAINERIMAGE_UPLOAD_CHUNK", (1 << 20).to_string())
        .env("CONTAINERIMAGE_RETRY_BASE_MS", "10")
        .args(["Submit-ContainerImage", "nano:1.0.0.0", &dest, "-Verbose"])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    assert!(
        proxy.dropped.load(Ordering::SeqCst),
        "the proxy cut a connection"
    );
    // docker-registry 2.8 signs the offset into the session URL (`_state`);
    // after a cut PATCH it holds more than that offset and calls the session
    // invalid (404), so the blob starts again, as the protocol says.
    let err = stderr(&o);
    assert!(
        err.contains("resuming the upload of")
            || err.contains("the registry has no record of the upload, starting"),
        "the cut upload must be resumed or restarted:\n{err}"
    );
    // skopeo copies what arrived (verifying every blob digest).
    let copy = tmp.path().join("skopeo-copy");
    tool(
        "skopeo",
        &[
            "copy",
            "--override-os",
            "windows",
            "--src-tls-verify=false",
            &format!("docker://{}/cut/nano:1", registry.addr),
            &format!("oci:{}:1", copy.display()),
        ],
    );

    // Download: the connection cut after 1.5 MB of the answer.
    let proxy = DroppingProxy::start(&registry.addr, false, 1_500_000);
    let home2 = tmp.path().join("home2");
    let o = cmd(&home2)
        .env("CONTAINERIMAGE_RETRY_BASE_MS", "10")
        .args(["pull", &format!("{}/cut/nano:1", proxy.addr), "-Verbose"])
        .output()
        .expect("runs");
    assert_exit(&o, 0);
    assert!(
        proxy.dropped.load(Ordering::SeqCst),
        "the proxy cut a connection"
    );
    assert!(stderr(&o).contains("resuming at byte"), "{}", stderr(&o));
    assert_eq!(files_of_image(&home2), original);
    let _ = files_of;
}

/// An upload endpoint that keeps half of one PATCH, answers 503, and then
/// says how much it holds: the client resumes from there.
#[derive(Default)]
struct Uploads {
    data: Vec<u8>,
    patches: u32,
    /// Which PATCH is cut (the second when 0).
    cut_patch: u32,
    blobs: HashMap<String, Vec<u8>>,
    manifest: Option<(String, Vec<u8>)>,
    /// What the tag names: the index.
    tagged: Option<(String, Vec<u8>)>,
}

async fn upload_route(
    State(state): State<Arc<Mutex<Uploads>>>,
    method: axum::http::Method,
    UrlPath(rest): UrlPath<String>,
    query: axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = state.lock().expect("lock");
    let range = |n: usize| format!("0-{}", n.saturating_sub(1));
    match (method.as_str(), rest.as_str()) {
        ("GET", "") => StatusCode::OK.into_response(),
        ("HEAD", r) if r.starts_with("up/nano/blobs/") => StatusCode::NOT_FOUND.into_response(),
        ("POST", "up/nano/blobs/uploads/") => {
            s.data.clear();
            (
                StatusCode::ACCEPTED,
                [(
                    "Location",
                    "/v2/up/nano/blobs/uploads/session?x=1".to_string(),
                )],
            )
                .into_response()
        }
        ("PATCH", "up/nano/blobs/uploads/session") => {
            s.patches += 1;
            if s.patches == s.cut_patch.max(1) + u32::from(s.cut_patch == 0) {
                // Half of this chunk arrives, then the registry fails.
                let half = body.len() / 2;
                s.data.extend_from_slice(&body[..half]);
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            s.data.extend_from_slice(&body);
            let n = s.data.len();
            (
                StatusCode::ACCEPTED,
                [
                    (
                        "Location",
                        "/v2/up/nano/blobs/uploads/session?x=2".to_string(),
                    ),
                    ("Range", range(n)),
                ],
            )
                .into_response()
        }
        ("GET", "up/nano/blobs/uploads/session") => {
            let n = s.data.len();
            (
                StatusCode::NO_CONTENT,
                [
                    (
                        "Location",
                        "/v2/up/nano/blobs/uploads/session?x=3".to_string(),
                    ),
                    ("Range", range(n)),
                ],
            )
                .into_response()
        }
        ("PUT", "up/nano/blobs/uploads/session") => {
            let digest = query.get("digest").cloned().unwrap_or_default();
            let actual = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&s.data))
            );
            if actual != digest {
                return (
                    StatusCode::BAD_REQUEST,
                    "{\"errors\":[{\"code\":\"DIGEST_INVALID\",\"message\":\"digest mismatch\"}]}",
                )
                    .into_response();
            }
            let data = std::mem::take(&mut s.data);
            s.blobs.insert(digest.clone(), data);
            (StatusCode::CREATED, [("Docker-Content-Digest", digest)]).into_response()
        }
        ("PUT", r) if r.starts_with("up/nano/manifests/") => {
            let digest = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
            );
            let media = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            // The manifest by digest, then the index under the tag.
            if r.ends_with("/1") {
                s.tagged = Some((media, body.to_vec()));
            } else {
                s.manifest = Some((media, body.to_vec()));
            }
            (StatusCode::CREATED, [("Docker-Content-Digest", digest)]).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Pushes to the fake upload endpoint, which cuts PATCH number `cut` (0:
/// the second); `chunk` turns streaming off and sends chunks of that size.
/// Returns the command's output and what the endpoint received.
fn push_to_cutting_endpoint(
    chunk: Option<u64>,
    cut: u32,
) -> (std::process::Output, Arc<Mutex<Uploads>>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_big_image(tmp.path());
    let state = Arc::new(Mutex::new(Uploads {
        cut_patch: cut,
        ..Uploads::default()
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let app = axum::Router::new()
        .route("/v2/", axum::routing::any(|| async { StatusCode::OK }))
        .route("/v2/{*rest}", axum::routing::any(upload_route))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state.clone());
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut command = cmd(&home);
    if let Some(chunk) = chunk {
        command.env("CONTAINERIMAGE_UPLOAD_CHUNK", chunk.to_string());
    }
    let o = command
        .env("CONTAINERIMAGE_RETRY_BASE_MS", "1")
        .args([
            "Submit-ContainerImage",
            "nano:1.0.0.0",
            &format!("{addr}/up/nano:1"),
            "-OutputFormat",
            "Json",
        ])
        .output()
        .expect("runs");
    drop(runtime);
    (o, state)
}

/// What arrived is the image: the manifest names blobs whose bytes match,
/// the tag an index of it, and the pushed digest is the index's.
fn assert_whole_image_arrived(o: &std::process::Output, state: &Mutex<Uploads>) {
    let s = state.lock().expect("lock");
    let (media, manifest) = s.manifest.clone().expect("a manifest was put");
    assert_eq!(media, "application/vnd.oci.image.manifest.v1+json");
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().expect("layers")) {
        let digest = d["digest"].as_str().expect("digest");
        let blob = s
            .blobs
            .get(digest)
            .unwrap_or_else(|| panic!("{digest} was uploaded"));
        assert_eq!(blob.len() as u64, d["size"].as_u64().expect("size"));
    }
    // The tag names an index whose one entry is the manifest, with the
    // platform; the pushed digest is the index's.
    let (media, index) = s.tagged.clone().expect("an index was put under the tag");
    assert_eq!(media, "application/vnd.oci.image.index.v1+json");
    let i: serde_json::Value = serde_json::from_slice(&index).expect("json");
    let sha = |b: &[u8]| {
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
        )
    };
    assert_eq!(
        i["manifests"][0]["digest"].as_str(),
        Some(sha(&manifest).as_str())
    );
    assert_eq!(i["manifests"][0]["platform"]["os"], "windows");
    assert_eq!(i["manifests"][0]["platform"]["os.version"], "1.0.0.0");
    let pushed = crate::common::json_lines(o);
    assert_eq!(pushed[0]["Digest"].as_str(), Some(sha(&index).as_str()));
}

#[test]
fn an_upload_resumes_from_the_offset_the_registry_reports() {
    let (o, state) = push_to_cutting_endpoint(Some(1 << 20), 0);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("the registry answered 503"), "{err}");
    assert!(
        err.contains(&format!("at byte {}", (1 << 20) + (1 << 19))),
        "resumed after what the registry held:\n{err}"
    );
    assert_whole_image_arrived(&o, &state);
}

#[test]
fn a_streamed_layer_cut_by_the_registry_goes_on_from_what_it_holds() {
    // The first PATCH is the layer streamed while it is made.
    let (o, state) = push_to_cutting_endpoint(None, 1);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("the registry answered 503"), "{err}");
    let resumed_at: u64 = err
        .split("at byte ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a resume is reported:\n{err}"));
    assert!(resumed_at > 0, "{err}");
    assert_whole_image_arrived(&o, &state);
}
