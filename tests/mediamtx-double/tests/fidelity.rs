//! Behaviours made faithful to MediaMTX v1.20.1 (and the Go libraries it is built on),
//! each driven with a raw client so that the bytes on the wire are checked.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `req` on a new connection to `port` and reads until the server closes.
fn raw_exchange(port: u16, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Go's net/http: a request head over DefaultMaxHeaderBytes (1 MiB) + 4096 bytes gets
/// `431 Request Header Fields Too Large` (written by conn.serve, HTTP/1.1, plain text,
/// `Connection: close`, no Content-Length) and the connection is closed; a head under
/// it, with any number of headers, is served.
#[test]
fn http_head_over_go_limit_is_answered_431() {
    let (h, _dir) = start("fid-431");
    let big = |n: usize| {
        format!(
            "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(n)
        )
    };

    let over = raw_exchange(h.api_port, big((1 << 20) + 8192).as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&over),
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\n\r\n431 Request Header Fields Too Large"
    );
    // many short header lines add up the same way
    let many = format!("GET /v3/paths/list HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(140_000));
    let over = raw_exchange(h.api_port, many.as_bytes());
    assert!(over.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));

    let under = raw_exchange(h.api_port, big((1 << 20) - 16384).as_bytes());
    assert!(
        under.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&under[..100.min(under.len())])
    );
    let headers = format!(
        "GET /v3/paths/list HTTP/1.1\r\n{}Connection: close\r\n\r\n",
        "X-A: b\r\n".repeat(1000)
    );
    let under = raw_exchange(h.api_port, headers.as_bytes());
    assert!(under.starts_with(b"HTTP/1.1 200 OK\r\n"));
}
