//! A real HTTP server on 127.0.0.1 for the tests: serves the files of one
//! folder (with `Range` support) and injects faults on request.
//!
//! ```ignore
//! let server = TestServer::start(dir.path());
//! server.faults().drop_after(4096, 1); // first GET dies after 4 KiB of body
//! let url = server.url("NanoServer.wim");
//! // ... download ...
//! assert_eq!(server.requests("NanoServer.wim"), 2);
//! ```
//!
//! Requests in absolute form (`GET http://other.host/x.wim`) are served by
//! path too, so the server doubles as a plain-HTTP forward proxy in proxy tests.
#![allow(dead_code)]

use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The size of the body chunks the server sends.
const CHUNK: usize = 256 * 1024;

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The URL path without the leading `/`.
    pub path: String,
    /// The `Range` header, if the client sent one.
    pub range: Option<String>,
    /// The status the server answered with.
    pub status: u16,
    /// The request came in absolute form (`GET http://host/...`), as sent to a proxy.
    pub via_proxy: bool,
}

/// Fault switches. Counted faults apply to the first K requests they match.
#[derive(Default)]
struct FaultState {
    /// Abort the connection after this many body bytes, for this many responses.
    drop_after: Option<(u64, u32)>,
    /// Pause this long after this many body bytes, for this many responses.
    stall: Option<(u64, Duration, u32)>,
    /// Answer `Range` requests with a full `200`.
    ignore_range: bool,
    /// Answer `Range` requests with a `206` that starts at 0, for this many requests.
    wrong_content_range: u32,
    /// Answer with this status (and optional `Retry-After` seconds), for this many requests.
    status: Option<(u16, u32, Option<u64>)>,
    /// Paths (without the leading `/`) starting with one of these get `404`.
    not_found_prefixes: Vec<String>,
    /// Flip one byte in the middle of every file served.
    wrong_bytes: bool,
    /// After the file, this many more bytes (`u64::MAX`: without end), and
    /// no `Content-Length`.
    extra_bytes: Option<u64>,
    /// Send the body this many bytes at a time, pausing this long before
    /// each piece, for this many responses.
    trickle: Option<(usize, Duration, u32)>,
}

struct Shared {
    dir: PathBuf,
    faults: Mutex<FaultState>,
    hits: Mutex<Vec<Hit>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Serves the files under `dir` on `127.0.0.1:<free port>` from a
    /// background tokio runtime.
    pub fn start(dir: &Path) -> TestServer {
        TestServer::start_on(dir, "127.0.0.1:0")
    }

    /// Like [`TestServer::start`] on a chosen address (the bench binary uses this).
    pub fn start_on(dir: &Path, addr: &str) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the test server");
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            faults: Mutex::new(FaultState::default()),
            hits: Mutex::new(Vec::new()),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind the test server");
        let addr = listener.local_addr().expect("test server address");
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The fault switches.
    pub fn faults(&self) -> Faults<'_> {
        Faults(&self.shared)
    }

    /// How many requests (any method, any answer) named `path`.
    pub fn requests(&self, path: &str) -> usize {
        let path = path.trim_start_matches('/');
        lock(&self.shared.hits)
            .iter()
            .filter(|h| h.path == path)
            .count()
    }

    /// Every request so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.shared.hits).clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Setters for the fault switches; each returns the handle so calls chain.
#[derive(Clone, Copy)]
pub struct Faults<'a>(&'a Shared);

impl Faults<'_> {
    fn with(self, f: impl FnOnce(&mut FaultState)) -> Self {
        f(&mut lock(&self.0.faults));
        self
    }

    /// The first `times` responses with a body close the connection after
    /// `bytes` bytes of it.
    pub fn drop_after(self, bytes: u64, times: u32) -> Self {
        self.with(|f| f.drop_after = Some((bytes, times)))
    }

    /// The first `times` responses with a body pause for `pause` after
    /// `bytes` bytes of it (longer than the client's read timeout).
    pub fn stall(self, bytes: u64, pause: Duration, times: u32) -> Self {
        self.with(|f| f.stall = Some((bytes, pause, times)))
    }

    /// `Range` headers are ignored: the whole file comes back with `200`.
    pub fn ignore_range(self) -> Self {
        self.with(|f| f.ignore_range = true)
    }

    /// The first `times` `Range` requests get a `206` whose `Content-Range`
    /// starts at 0 instead of where the client asked (with the whole file).
    pub fn wrong_content_range(self, times: u32) -> Self {
        self.with(|f| f.wrong_content_range = times)
    }

    /// The first `times` requests are answered with `code` and no file.
    pub fn status(self, code: u16, times: u32) -> Self {
        self.with(|f| f.status = Some((code, times, None)))
    }

    /// Like [`Faults::status`] with a `Retry-After: <seconds>` header.
    pub fn status_retry_after(self, code: u16, times: u32, seconds: u64) -> Self {
        self.with(|f| f.status = Some((code, times, Some(seconds))))
    }

    /// Paths starting with `prefix` (no leading `/`) are answered `404`.
    pub fn not_found(self, prefix: &str) -> Self {
        let p = prefix.trim_start_matches('/').to_string();
        self.with(|f| f.not_found_prefixes.push(p))
    }

    /// Every file is served with one byte in its middle changed (same length).
    pub fn wrong_bytes(self) -> Self {
        self.with(|f| f.wrong_bytes = true)
    }

    /// Every body goes on after the file with zero bytes, without end and
    /// without a `Content-Length`.
    pub fn endless_body(self) -> Self {
        self.with(|f| f.extra_bytes = Some(u64::MAX))
    }

    /// Every body carries `extra` zero bytes after the file, and no
    /// `Content-Length` (so only the client can stop it).
    pub fn extra_bytes(self, extra: u64) -> Self {
        self.with(|f| f.extra_bytes = Some(extra))
    }

    /// The first `times` responses send their body `bytes` at a time,
    /// pausing `every` before each piece (a slow but never silent server).
    pub fn trickle(self, bytes: usize, every: Duration, times: u32) -> Self {
        self.with(|f| f.trickle = Some((bytes.max(1), every, times)))
    }

    /// Turns every fault off.
    pub fn clear(self) -> Self {
        self.with(|f| *f = FaultState::default())
    }
}

/// What the fault switches decided for one body.
#[derive(Clone, Copy, Default)]
struct BodyFaults {
    drop_after: Option<u64>,
    stall: Option<(u64, Duration)>,
    flip_at: Option<u64>,
    extra_bytes: Option<u64>,
    trickle: Option<(usize, Duration)>,
}

fn take_count(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

async fn serve(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let uri = req.uri();
    let via_proxy = uri.scheme().is_some();
    let path = percent_decode(uri.path().trim_start_matches('/'));
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = answer(&shared, &path, range.as_deref());
    lock(&shared.hits).push(Hit {
        path,
        range,
        status: response.status().as_u16(),
        via_proxy,
    });
    response
}

fn answer(shared: &Shared, path: &str, range: Option<&str>) -> Response {
    let mut faults = lock(&shared.faults);
    if faults
        .not_found_prefixes
        .iter()
        .any(|p| path.starts_with(p.as_str()))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some((code, times, retry_after)) = faults.status.as_mut() {
        if take_count(times) {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = status.into_response();
            if let Some(s) = retry_after {
                if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            return r;
        }
    }
    if path.split('/').any(|s| s == "..") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let file_path = shared.dir.join(path);
    let len = match std::fs::metadata(&file_path) {
        Ok(m) if m.is_file() => m.len(),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };

    let requested_start = if faults.ignore_range {
        None
    } else {
        range.and_then(parse_range_start)
    };
    let (status, start, content_range) = match requested_start {
        None => (StatusCode::OK, 0, None),
        Some(s) if s >= len => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        Some(s) => {
            let s = if take_count(&mut faults.wrong_content_range) {
                0
            } else {
                s
            };
            (
                StatusCode::PARTIAL_CONTENT,
                s,
                Some(format!("bytes {s}-{}/{len}", len - 1)),
            )
        }
    };

    let mut body_faults = BodyFaults::default();
    if let Some((bytes, times)) = faults.drop_after.as_mut() {
        if take_count(times) {
            body_faults.drop_after = Some(*bytes);
        }
    }
    if let Some((bytes, pause, times)) = faults.stall.as_mut() {
        if take_count(times) {
            body_faults.stall = Some((*bytes, *pause));
        }
    }
    if faults.wrong_bytes {
        body_faults.flip_at = Some(len / 2);
    }
    body_faults.extra_bytes = faults.extra_bytes;
    if let Some((bytes, every, times)) = faults.trickle.as_mut() {
        if take_count(times) {
            body_faults.trickle = Some((*bytes, *every));
        }
    }
    drop(faults);

    let body = match file_body(file_path, start, len, body_faults) {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if body_faults.extra_bytes.is_none() {
        if let Ok(v) = HeaderValue::from_str(&(len - start).to_string()) {
            headers.insert(header::CONTENT_LENGTH, v);
        }
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::CONTENT_RANGE, cr);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// `bytes=N-` or `bytes=N-M` → N (the end is ignored: the rest of the file is sent).
fn parse_range_start(v: &str) -> Option<u64> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (start, _end) = spec.split_once('-')?;
    start.trim().parse().ok()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(hex)) = (bytes[i], hex) {
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct BodyState {
    file: std::fs::File,
    /// Next file offset to send.
    pos: u64,
    len: u64,
    /// Body bytes sent so far.
    sent: u64,
    faults: BodyFaults,
}

fn file_body(path: PathBuf, start: u64, len: u64, faults: BodyFaults) -> std::io::Result<Body> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let state = BodyState {
        file,
        pos: start,
        len,
        sent: 0,
        faults,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if let Some((_, every)) = st.faults.trickle {
            tokio::time::sleep(every).await;
        }
        if st.pos >= st.len {
            let extra = st.faults.extra_bytes.filter(|n| *n > 0)?;
            let mut want = extra.min(CHUNK as u64);
            if let Some((bytes, _)) = st.faults.trickle {
                want = want.min(bytes as u64);
            }
            st.faults.extra_bytes = Some(if extra == u64::MAX {
                extra
            } else {
                extra - want
            });
            st.sent += want;
            return Some((Ok(Bytes::from(vec![0u8; want as usize])), st));
        }
        if let Some(limit) = st.faults.drop_after {
            if st.sent >= limit {
                // Give the bytes already sent time to leave before the abort discards them.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected drop");
                st.pos = st.len;
                return Some((Err(err), st));
            }
        }
        if let Some((at, pause)) = st.faults.stall {
            if st.sent >= at {
                st.faults.stall = None;
                tokio::time::sleep(pause).await;
            }
        }
        // Never cross a fault threshold inside one chunk.
        let mut want = (st.len - st.pos).min(CHUNK as u64);
        if let Some((bytes, _)) = st.faults.trickle {
            want = want.min(bytes as u64);
        }
        for limit in [st.faults.drop_after, st.faults.stall.map(|s| s.0)]
            .into_iter()
            .flatten()
        {
            if limit > st.sent {
                want = want.min(limit - st.sent);
            }
        }
        let mut buf = vec![0u8; want as usize];
        if let Err(e) = st.file.read_exact(&mut buf) {
            st.pos = st.len;
            return Some((Err(e), st));
        }
        if let Some(flip) = st.faults.flip_at {
            if flip >= st.pos && flip < st.pos + want {
                let i = (flip - st.pos) as usize;
                if let Some(b) = buf.get_mut(i) {
                    *b ^= 0xFF;
                }
            }
        }
        st.pos += want;
        st.sent += want;
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), st))
    });
    Ok(Body::from_stream(stream))
}
