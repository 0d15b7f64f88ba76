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
