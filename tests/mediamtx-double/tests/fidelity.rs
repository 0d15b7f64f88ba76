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
