//! RTSP tunnelled in HTTP on the RTSP port (gortsplib's GET + POST pair): ffmpeg/ffprobe
//! read through it (ffmpeg cannot publish through it), a raw client checks the HTTP answers;
//! an `rtsp+http://` static source is pulled through the double's own tunnel (`rtsps+http://`:
//! tests/bridged.rs).

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command with a generous hang bound; returns (success, stdout).
fn run_bounded(cmd: &mut Command, what: &str) -> (bool, String) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect(what);
    let mut child = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "{} hangs", what);
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let _ = child.0.stdout.take().unwrap().read_to_string(&mut out);
    (st.success(), out)
}

/// The HTTP head an HTTP request gets on the RTSP port.
fn http_head(port: u16, req: &str) -> (TcpStream, String) {
    let mut s = rtsp::connect(port, Duration::from_secs(10));
    s.write_all(req.as_bytes()).unwrap();
    let head = rtsp::read_head(&mut s);
    (s, head)
}

#[test]
fn ffprobe_and_ffmpeg_read_through_the_http_tunnel() {
    require_ffmpeg();
    let (h, dir) = start("tunnel-read");
    let url = format!("{}/tun", h.rtsp_url());
    let _p = publish(&h, &dir, "tun");
    assert_eq!(probe(&url, "http"), "h264,320,240");

    // a reader that stays: its connection is listed with tunnel http, over TCP
    let md5 = dir.join("r.md5");
    let reader = std::thread::spawn({
        let url = url.clone();
        move || {
            run_bounded(
                Command::new("ffmpeg")
                    .args([
                        "-nostdin",
                        "-hide_banner",
                        "-loglevel",
                        "error",
                        "-rtsp_transport",
                        "http",
                    ])
                    .args(["-i", &url, "-frames:v", "90", "-f", "framemd5", "-y"])
                    .arg(&md5),
                "ffmpeg reader over the HTTP tunnel",
            )
        }
    });
    let tunnelled_readers = || -> Vec<Value> {
        let conns = items(&h, "/v3/rtspconns/list");
        let tunnelled: Vec<&Value> = conns.iter().filter(|c| c["tunnel"] == "http").collect();
        items(&h, "/v3/rtspsessions/list")
            .into_iter()
            .filter(|s| s["state"] == "read" && tunnelled.iter().any(|c| c["session"] == s["id"]))
            .collect()
    };
    wait_until(Duration::from_secs(15), "the tunnelled reader listed", || {
        !tunnelled_readers().is_empty()
    });
    let readers = tunnelled_readers();
    assert_eq!(readers.len(), 1, "{:?}", readers);
    assert_eq!(readers[0]["transport"], "TCP");
    let (ok, _) = reader.join().unwrap();
    assert!(ok, "ffmpeg reader failed");
    let n = count_frames(&dir.join("r.md5"));
    assert!(n >= 90, "{} frames", n);
}

#[test]
fn tunnel_http_answers_like_gortsplib() {
    let (h, dir) = start("tunnel-raw");
    let port = h.rtsp_port;
    // every TCP connection is a ServerConn of its own, closed with gortsplib's reason
    let closed = |s: &TcpStream, why: &str| {
        let line = format!("INF [RTSP] [conn {}] closed: {}", s.local_addr().unwrap(), why);
        wait_until(Duration::from_secs(8), &line.clone(), || log_of(&dir).contains(&line));
    };
    // a plain HTTP request: 400, closed
    let (mut s, head) = http_head(port, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(s.read(&mut [0u8; 1]).unwrap_or(0), 0);
    closed(&s, "invalid HTTP request");
    // what http.ReadRequest refuses closes the connection without answer, with Go's text
    for (req, why) in [
        ("GET /tun HTTP/9\r\n\r\n", r#"malformed HTTP version "HTTP/9""#),
        ("GET tun HTTP/1.0\r\n\r\n", r#"parse "tun": invalid URI for request"#),
        (
            "GET /tun HTTP/1.0\r\nx-sessioncookie abc\r\n\r\n",
            r#"malformed MIME header: missing colon: "x-sessioncookie abc""#,
        ),
        (
            "POST /tun HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            r#"unsupported transfer encoding: "gzip""#,
        ),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        assert_eq!(s.read(&mut [0u8; 1]).unwrap_or(0), 0, "{}", req);
        closed(&s, why);
    }

    // GET + POST with one cookie: an OPTIONS in base64, split mid-group, answered on GET
    let ok = "HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\n\
        Content-Type: application/x-rtsp-tunnelled\r\nPragma: no-cache\r\n\r\n";
    let (mut get, head) = http_head(
        port,
        "GET /tun HTTP/1.0\r\nAccept: application/x-rtsp-tunnelled\r\nx-sessioncookie: abc\r\n\r\n",
    );
    assert_eq!(head, ok);
    let (mut post, head) = http_head(
        port,
        "POST /tun HTTP/1.0\r\nContent-Type: application/x-rtsp-tunnelled\r\nx-sessioncookie: abc\r\n\r\n",
    );
    assert_eq!(head, ok);
    let b64 = openssl::base64::encode_block(b"OPTIONS rtsp://127.0.0.1/tun RTSP/1.0\r\nCSeq: 7\r\n\r\n");
    let (a, b) = b64.split_at(5);
    post.write_all(a.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    post.write_all(b.as_bytes()).unwrap();
    let got = rtsp::read_head(&mut get);
    assert!(
        got.starts_with("RTSP/1.0 200 OK\r\n") && got.contains("CSeq: 7\r\n"),
        "{}",
        got
    );
    let c = items(&h, "/v3/rtspconns/list");
    assert!(c.iter().any(|c| c["tunnel"] == "http"), "{:?}", c);
    closed(&get, "upgraded to HTTP conn");
    closed(&post, "upgraded to HTTP conn");

    // invalid base64 ends the tunnel: the GET channel is closed
    post.write_all(b"!!!!").unwrap();
    let mut rest = Vec::new();
    let _ = get.read_to_end(&mut rest);
    assert!(rest.is_empty());

    // a POST without its GET: 200, then closed
    let (mut p2, head) = http_head(
        port,
        "POST /tun HTTP/1.1\r\nContent-Type: application/x-rtsp-tunnelled\r\nx-sessioncookie: none\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", head);
    assert_eq!(p2.read(&mut [0u8; 1]).unwrap_or(0), 0);
    closed(&p2, "did not found a corresponding HTTP GET request");

    // a GET without its POST is closed after 5 s
    let t0 = std::time::Instant::now();
    let (mut g2, _) = http_head(
        port,
        "GET /tun HTTP/1.0\r\nAccept: application/x-rtsp-tunnelled\r\nx-sessioncookie: lone\r\n\r\n",
    );
    assert_eq!(g2.read(&mut [0u8; 1]).unwrap_or(0), 0);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(4900) && waited < Duration::from_secs(9),
        "{:?}",
        waited
    );
    closed(&g2, "did not found a corresponding HTTP POST request");
}

/// ffprobe of a path over `transport` (tcp, or http for the tunnel): "codec,width,height".
fn probe(url: &str, transport: &str) -> String {
    let (ok, out) = run_bounded(
        Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", transport, "-i", url])
            .args([
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,width,height",
            ])
            .args(["-of", "csv=p=0"]),
        "ffprobe",
    );
    assert!(ok, "ffprobe of {} over {} failed: {}", url, transport, out);
    out.trim().to_string()
}

#[test]
fn rtsp_http_source_is_pulled_through_the_tunnel() {
    require_ffmpeg();
    let (h, dir) = start("tunnel-source");
    let _p = spawn_cmd(
        &publisher_cmd(&format!("{}/a", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    add_path(
        &h,
        "b",
        &json!({ "source": format!("rtsp+http://127.0.0.1:{}/a", h.rtsp_port) }),
    );
    wait_until(Duration::from_secs(20), "the pulled path available", || {
        path_get(&h, "b")["available"] == true
    });
    let p = path_get(&h, "b");
    assert_eq!(p["source"], json!({"type": "rtspSource", "id": ""}), "{}", p);
    assert_eq!(probe(&format!("{}/b", h.rtsp_url()), "tcp"), "h264,320,240");
    // the puller's connection is the tunnelled one
    let c = items(&h, "/v3/rtspconns/list");
    assert!(c.iter().any(|c| c["tunnel"] == "http"), "{:?}", c);
}
