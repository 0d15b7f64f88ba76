//! The listeners of the auxiliary servers (playback, metrics, pprof) follow the
//! configuration like MediaMTX's closeResources/createResources: a changed `*Address`
//! moves the server, `*Encryption` with `*ServerKey`/`*ServerCert` serves HTTPS, and a
//! server that cannot start (no certificate) logs the error and does not listen.
//! Needs the ffmpeg and openssl CLIs.

mod common;
use common::*;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn patch_global(h: &mediamtx_double::Handle, body: Value) {
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Two distinct loopback ports that are free now (bound together, then released).
fn free_ports() -> (u16, u16) {
    let (a, b) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// Sends a `Connection: close` GET on `s` and returns (status, body); None when the
/// server does not answer in HTTP.
fn exchange<S: Read + Write>(mut s: S, port: u16, target: &str) -> Option<(u16, String)> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        target, port
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    // a TLS peer may end without close_notify: keep what was read
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn tcp(port: u16) -> Option<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(WAIT)).unwrap();
    Some(s)
}

/// Plain HTTP GET.
fn get(port: u16, target: &str) -> Option<(u16, String)> {
    exchange(tcp(port)?, port, target)
}

/// HTTPS GET, the server's certificate not verified (self-signed).
fn https_get(port: u16, target: &str) -> Option<(u16, String)> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    let tls = b.build().connect("localhost", tcp(port)?).ok()?;
    exchange(tls, port, target)
}

/// A 1 s fragmented MP4 recording of `cam` under `rec` (named like `recordPath`).
fn recording(rec: &Path) {
    let dir = rec.join("cam");
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args([
            "-i",
            "testsrc2=size=64x64:rate=10",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-g",
            "10",
        ])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"])
        .arg(dir.join("2024-01-02_03-04-05-000000.mp4"))
        .status()
        .expect("ffmpeg is required by the mediamtx-double tests");
    assert!(st.success(), "ffmpeg recording");
}

#[test]
fn a_changed_address_moves_metrics_and_pprof() {
    let (h, _dir) = start("aux-move");
    patch_global(&h, json!({"metrics": true, "pprof": true}));
    let (old_metrics, old_pprof) = (h.metrics_port, h.pprof_port);
    wait_until(WAIT, "metrics on the double's port", || {
        get(old_metrics, "/metrics").is_some_and(|(s, _)| s == 200)
    });

    let (metrics, pprof) = free_ports();
    patch_global(
        &h,
        json!({"metricsAddress": format!("127.0.0.1:{}", metrics), "pprofAddress": format!(":{}", pprof)}),
    );
    // applied before the PATCH answers: no wait needed
    let (status, body) = get(metrics, "/metrics").expect("metrics on the new address");
    assert_eq!(status, 200);
    assert!(body.contains("paths 0"), "{}", body);
    assert_eq!(get(pprof, "/debug/pprof/").map(|r| r.0), Some(200));
    assert!(closed(old_metrics) && closed(old_pprof), "the old ports still open");
    // the configuration shows what was set, like MediaMTX
    let g = http("GET", &format!("{}/v3/config/global/get", h.api_url()), None).json();
    assert_eq!(g["metricsAddress"], format!("127.0.0.1:{}", metrics));
    assert_eq!(g["pprofAddress"], format!(":{}", pprof));
}

#[test]
fn playback_serves_https_with_its_key_and_certificate() {
    let (h, dir) = start("aux-tls");
    let rec = dir.join("rec");
    recording(&rec);
    let conf = json!({"recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display())});
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/cam", h.api_url()),
        Some(&conf.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let pb = h.playback_port;
    patch_global(&h, json!({"playback": true}));
    wait_until(WAIT, "plain playback", || {
        get(pb, "/list?path=cam").is_some_and(|(s, _)| s == 200)
    });

    // the default files (server.key/server.crt in the double's directory) are missing:
    // the server cannot start, the error is logged as MediaMTX does and nothing listens
    patch_global(&h, json!({"playbackEncryption": true}));
    wait_until(WAIT, "the start error logged", || {
        log_of(&dir).contains("ERR open server.crt: no such file or directory")
    });
    wait_until(WAIT, "playback closed", || refused(pb));
    patch_global(&h, json!({"playbackServerCert": ""}));
    wait_until(WAIT, "the missing certificate logged", || {
        log_of(&dir).contains("ERR server cert is missing")
    });
    assert!(refused(pb), "playback listening without a certificate");

    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let (key, cert) = self_signed(&tls_dir);
    patch_global(&h, json!({"playbackServerKey": key, "playbackServerCert": cert}));
    let mut list = String::new();
    wait_until(WAIT, "playback over HTTPS", || match https_get(pb, "/list?path=cam") {
        Some((200, body)) => {
            list = body;
            true
        }
        _ => false,
    });
    // urlScheme: https with playbackEncryption
    let items: Value = serde_json::from_str(&list).unwrap();
    let url = items[0]["url"].as_str().unwrap_or_else(|| panic!("no url in {}", list));
    assert!(url.starts_with(&format!("https://127.0.0.1:{}/get?", pb)), "{}", url);
    // the plain server is gone: a plain request gets no HTTP answer
    assert_eq!(get(pb, "/list?path=cam"), None);
    assert!(log_of(&dir).contains(&format!(
        "INF [playback] started with listener on 127.0.0.1:{} (TCP/HTTPS)",
        pb
    )));
}

/// Sends a request on a kept-alive connection and reads its answer: the status.
fn keep_alive_request(s: &mut TcpStream, method: &str, target: &str, body: &str) -> u16 {
    write!(
        s,
        "{} {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        method,
        target,
        body.len(),
        body
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    // byte by byte, so that nothing after the answer is consumed
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "answer cut: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    head[9..12].parse().unwrap()
}

/// The connection was closed by the server (a read ends within 2 s, not by timing out).
fn ended(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    match s.read(&mut [0u8; 1]) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// MediaMTX closes its API and creates it again (core.go closeAPI) when its own settings
/// or those of any server change, not for path changes: a request being answered gets
/// its answer, then the connections close. It moves with `apiAddress`, serves HTTPS with
/// `apiEncryption`, and `api: false` closes it.
#[test]
fn the_api_is_recreated_like_mediamtx() {
    let (h, dir) = start("aux-api");
    let api = h.api_port;
    let mut idle = tcp(api).unwrap();
    assert_eq!(keep_alive_request(&mut idle, "GET", "/v3/info", ""), 200);
    let mut own = tcp(api).unwrap();
    let patch = "/v3/config/global/patch";
    assert_eq!(
        keep_alive_request(&mut own, "PATCH", patch, r#"{"readTimeout":"9s"}"#),
        200
    );
    assert!(ended(&mut own), "the PATCH's connection kept open");
    assert!(ended(&mut idle), "an idle connection kept open");
    let log = log_of(&dir);
    let started = format!("INF [API] started with listener on 127.0.0.1:{} (TCP/HTTP)", api);
    assert!(log.contains("INF [API] closing") && log.contains(&started), "{}", log);

    // a path change is no reason
    let mut kept = tcp(api).unwrap();
    assert_eq!(
        keep_alive_request(&mut kept, "POST", "/v3/config/paths/add/cam", "{}"),
        200
    );
    assert_eq!(keep_alive_request(&mut kept, "GET", "/v3/info", ""), 200);
    // a server's is: the RTMP server's trusted proxies close the API too
    let body = r#"{"rtmpTrustedProxies":["10.0.0.0/8"]}"#;
    assert_eq!(keep_alive_request(&mut kept, "PATCH", patch, body), 200);
    assert!(ended(&mut kept));

    // moved by apiAddress (applied when the PATCH answers)
    let (moved, _) = free_ports();
    patch_global(&h, json!({"apiAddress": format!("127.0.0.1:{}", moved)}));
    assert!(closed(api), "the old port still open");
    let (status, body) = get(moved, "/v3/config/global/get").expect("the API on its new port");
    assert_eq!(status, 200);
    let g: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(g["apiAddress"], format!("127.0.0.1:{}", moved));

    // api: false closes it; the double's restart (initial configuration) opens it again
    let off = http(
        "PATCH",
        &format!("http://127.0.0.1:{}{}", moved, patch),
        Some(r#"{"api":false}"#),
    );
    assert_eq!(off.status, 200);
    assert!(closed(moved), "the API still listening with api: false");
    assert_eq!(
        http("POST", &format!("{}/control/restart", h.control_url()), None).status,
        200
    );
    assert_eq!(get(api, "/v3/info").map(|r| r.0), Some(200));

    // HTTPS with its key and certificate
    let (key, cert) = self_signed(&dir);
    patch_global(
        &h,
        json!({"apiEncryption": true, "apiServerKey": key, "apiServerCert": cert}),
    );
    assert_eq!(https_get(api, "/v3/info").map(|r| r.0), Some(200));
    // plain HTTP on the HTTPS API: net/http's answer
    let mut plain = TcpStream::connect(("127.0.0.1", api)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /v3/info HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
    assert!(
        log_of(&dir).contains(&format!("[API] started with listener on 127.0.0.1:{} (TCP/HTTPS)", api)),
        "{}",
        log_of(&dir)
    );
}
