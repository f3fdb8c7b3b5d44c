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
