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
        "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        "X-A: b\r\n".repeat(1000)
    );
    let under = raw_exchange(h.api_port, headers.as_bytes());
    assert!(under.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

/// Go's net/http reads MediaMTX's API requests: what it refuses is answered by
/// conn.serve before any handler (a plain `400 Bad Request`, or a statusError with its
/// text, 501 for a transfer coding, 505 for a protocol, 417 for an expectation), a
/// chunked body is decoded, `Expect: 100-continue` is answered when the handler reads
/// the body, the config handlers read at most 10 MiB, and HTTP/1.0 is answered in kind.
#[test]
fn http_requests_are_read_like_go_net_http() {
    let (h, _dir) = start("fid-http");
    let answer = |req: &str| String::from_utf8_lossy(&raw_exchange(h.api_port, req.as_bytes())).into_owned();
    let plain = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{}",
            status, body
        )
    };
    let status_error = |status: &str| plain(status, status);
    let bad = plain("400 Bad Request", "400 Bad Request");
    for (req, want) in [
        (
            "GET /v3/paths/list HTTP/1.1\r\n\r\n",
            status_error("400 Bad Request: missing required Host header"),
        ),
        (
            "GET /v3/paths/list HTTP/1.1\r\nHost: a b\r\n\r\n",
            status_error("400 Bad Request: malformed Host header"),
        ),
        (
            "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nX y: z\r\n\r\n",
            status_error("400 Bad Request: invalid header name"),
        ),
        (
            "GET /v3/paths/list HTTP/2.0\r\nHost: x\r\n\r\n",
            status_error("505 HTTP Version Not Supported: unsupported protocol version"),
        ),
        // a name with a space in the URL splits the request line
        ("GET /v3/config/paths/get/a b HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        ("GET v3/paths/list HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        ("GET /v3/paths/get/%zz HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        (
            "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nX-A: b\x01\r\n\r\n",
            bad.clone(),
        ),
        ("GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", bad.clone()),
        (
            "POST /v3/config/paths/add/a HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
            bad.clone(),
        ),
        (
            "POST /v3/config/paths/add/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            plain("501 Not Implemented", "Unsupported transfer encoding"),
        ),
        (
            "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nExpect: later\r\n\r\n",
            "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".into(),
        ),
    ] {
        assert_eq!(answer(req), want, "{:?}", req);
    }

    // a chunked body is decoded (extensions and a trailer included)
    let a = answer(
        "POST /v3/config/paths/add/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n5;x=y\r\n{\"rec\r\n13\r\nord\": true, \"a\": 1}\r\n0\r\nT: v\r\n\r\n",
    );
    assert!(a.contains("json: unknown field \\\"a\\\""), "{}", a);
    let a = answer(
        "POST /v3/config/paths/add/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n10\r\n{\"record\": true}\r\n0\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a);
    assert_eq!(get(&h, "/v3/config/paths/get/chunked").json()["record"], true);
    // a chunk size that is not hex reaches the handler as its read error
    let a = answer("POST /v3/config/paths/add/c2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert!(a.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{}", a);
    assert!(a.contains("Connection: close\r\n"), "{}", a);
    assert!(a.contains(r#""error":"invalid byte in chunk length""#), "{}", a);

    // 100-continue once the handler reads the body; a handler that does not read it
    // gets no 100 and the connection ends after the answer
    let a = answer(
        "PATCH /v3/config/global/patch HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(
        a.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{}",
        a
    );
    let a = answer("GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}");
    assert!(
        a.starts_with("HTTP/1.1 200 OK\r\n") && a.contains("Connection: close\r\n"),
        "{}",
        a
    );

    // customLimitReader: a config body of 10 MiB or more is refused
    let big = format!("{{\"record\": true{}}}", " ".repeat(10 * 1024 * 1024));
    let a = answer(&format!(
        "POST /v3/config/paths/add/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
        big.len(),
        big
    ));
    assert!(
        a.contains(r#""error":"size exceeds maximum allowed""#),
        "{}",
        &a[..a.len().min(300)]
    );
    assert_eq!(get(&h, "/v3/config/paths/get/big").status, 404);

    // HTTP/1.0: answered as 1.0, the connection kept only on request
    let a = answer("GET /v3/paths/list HTTP/1.0\r\n\r\n");
    assert!(
        a.starts_with("HTTP/1.0 200 OK\r\n") && !a.contains("Connection:"),
        "{}",
        a
    );
    let a = answer("GET /v3/paths/list HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /v3/paths/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        a.starts_with("HTTP/1.0 200 OK\r\n") && a.contains("Connection: keep-alive\r\n"),
        "{}",
        a
    );
    assert_eq!(a.matches(" 200 OK\r\n").count(), 2, "{}", a);
}

/// Go's head limit counts what its 4 KiB buffer pulled from the socket for that
/// request: bytes of a pipelined request read ahead with the one before do not count,
/// so its head may pass 1 MiB + 4 KiB by that much.
#[test]
fn http_head_limit_counts_socket_reads() {
    let (h, _dir) = start("fid-431-ahead");
    let first = "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\n\r\n";
    let second = format!(
        "GET /v3/paths/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat((1 << 20) + 4096 + 1000)
    );
    let mut s = TcpStream::connect(("127.0.0.1", h.api_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // the first request comes with 3000 bytes of the second, read at once
    s.write_all(format!("{}{}", first, &second[..3000]).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&second.as_bytes()[3000..]).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        out.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{}",
        &out[..out.len().min(400)]
    );
}

/// Reads one RTSP answer head from `s`: (status, head).
fn rtsp_answer(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed without an answer: {:?}", String::from_utf8_lossy(&buf));
        buf.push(b[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    (status, head)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

/// MediaMTX v1.20.1 maps `rtspAuthMethods: [digest]` to gortsplib's VerifyMethodDigestMD5
/// only (conf.RTSPAuthMethod; SHA-256 cannot be selected), so its WWW-Authenticate offers
/// Digest with `algorithm="MD5"` only and auth.Verify refuses an `algorithm=SHA-256`
/// answer even when computed right ("no supported authentication methods found").
#[test]
fn rtsp_digest_is_md5_only() {
    let (h, _dir) = start("fid-digest");
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(
            r#"{"rtspAuthMethods":["basic","digest"],"authInternalUsers":[{"user":"u","pass":"p","permissions":[{"action":"read"}]}]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let url = format!("rtsp://127.0.0.1:{}/cam", h.rtsp_port);
    // (algorithm, hash function) -> the status of an answer computed with it
    let try_digest = |algorithm: &str| -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", h.rtsp_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url).as_bytes())
            .unwrap();
        let (status, head) = rtsp_answer(&mut s);
        assert_eq!(status, 401, "{}", head);
        let chal: Vec<&str> = head
            .lines()
            .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .collect();
        assert_eq!(chal.len(), 2, "{}", head);
        assert_eq!(chal[0], r#"Basic realm="ipcam""#);
        assert!(chal[1].ends_with(r#"", algorithm="MD5""#), "{}", head);
        let nonce = chal[1]
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let hash = |x: String| -> String {
            use sha2::Digest;
            match algorithm {
                "SHA-256" => hex(&sha2::Sha256::digest(x.as_bytes())),
                _ => hex(&md5::Md5::digest(x.as_bytes())),
            }
        };
        let response = hash(format!(
            "{}:{}:{}",
            hash("u:ipcam:p".to_string()),
            nonce,
            hash(format!("DESCRIBE:{}", url))
        ));
        let authz = format!(
            r#"Digest username="u", realm="ipcam", nonce="{}", uri="{}", response="{}", algorithm="{}""#,
            nonce, url, response, algorithm
        );
        s.write_all(
            format!(
                "DESCRIBE {} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {}\r\n\r\n",
                url, authz
            )
            .as_bytes(),
        )
        .unwrap();
        rtsp_answer(&mut s).0
    };
    // MD5 passes authentication (then 404: no stream), SHA-256 is refused
    assert_eq!(try_digest("MD5"), 404);
    assert_eq!(try_digest("SHA-256"), 401);
}

/// MediaMTX's MPEG-TS recorder cuts a segment at the first video random-access point whose
/// DTS is `recordSegmentDuration` past the segment's first DTS, and passes lastDTS -
/// startDTS (the next segment's first DTS) as `MTX_SEGMENT_DURATION`. A 15 fps publisher
/// with a keyframe every 15 frames gives segments of exactly one second of DTS, where the
/// wall clock would give something like `1.0123`.
#[test]
fn mpegts_segment_duration_is_its_dts_span() {
    require_ffmpeg();
    let (h, dir) = start("fid-tsdur");
    let body = serde_json::json!({
        "record": true,
        "recordFormat": "mpegts",
        "recordPath": "rec/%path/%Y-%m-%d_%H-%M-%S-%f",
        "recordSegmentDuration": "1s",
        "runOnRecordSegmentComplete": "sh -c 'echo $MTX_SEGMENT_DURATION >> segdone.txt'",
    });
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/cam", h.api_url()),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let _pubp = spawn_cmd(
        &publisher_cmd(&format!("{}/cam", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    let done = || std::fs::read_to_string(dir.join("segdone.txt")).unwrap_or_default();
    wait_until(Duration::from_secs(60), "three completed segments", || {
        done().lines().count() >= 3
    });
    let durations: Vec<String> = done().lines().map(String::from).collect();
    assert_eq!(&durations[..3], ["1", "1", "1"], "{:?}", durations);
}

/// MediaMTX's pathManager keeps a live path that a configuration change moves to another
/// configuration with the same values (here: its own configuration deleted, so it falls
/// to `all_others`), and a regexp path is closed only after one of its events
/// (path.shouldClose after a request or timer): the unused path stays listed until a
/// request for it, then goes.
#[test]
fn path_moved_to_regexp_conf_stays_until_its_next_request() {
    let (h, _dir) = start("fid-keep");
    let api = h.api_url();
    let r = http("POST", &format!("{}/v3/config/paths/add/cam", api), Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let get = || http("GET", &format!("{}/v3/paths/get/cam", api), None);
    assert_eq!(get().json()["confName"], "cam");
    let r = http("DELETE", &format!("{}/v3/config/paths/delete/cam", api), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get().json()["confName"], "all_others");
    // no event: nothing closes it (the double's housekeeping runs every 100 ms)
    std::thread::sleep(Duration::from_millis(1500));
    let r = get();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["confName"], "all_others");
    // a request that leaves it unused: it goes
    let mut s = TcpStream::connect(("127.0.0.1", h.rtsp_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("DESCRIBE {}/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n", h.rtsp_url()).as_bytes())
        .unwrap();
    assert_eq!(rtsp_answer(&mut s).0, 404);
    wait_until(Duration::from_secs(10), "path closed after the request", || {
        get().status == 404
    });
}
