//! Static sources and `forward` destinations whose transport ffmpeg cannot carry as MediaMTX
//! does, through the double's loopback bridges: TLS (`rtsps://`, `rtsps+http://`,
//! `rtmps://`, `rtsps+ws://`) under MediaMTX's rule (`sourceFingerprint`/`destFingerprint`
//! pinned, else verified against the system roots) and RTSP tunnelled in WebSocket
//! (`rtsp+ws://`). The upstream is the double's own RTSP/RTSPS/RTMPS servers with a
//! self-signed certificate.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

struct Setup {
    h: mediamtx_double::Handle,
    dir: std::path::PathBuf,
    fingerprint: String,
    _publisher: Proc,
}

impl Setup {
    /// A double serving RTSP, RTSPS and RTMPS with a self-signed certificate, and a
    /// publisher on `a`.
    fn new(tag: &str) -> Setup {
        require_ffmpeg();
        let (h, dir) = start(tag);
        let (key, cert) = self_signed(&dir);
        patch_global(
            &h,
            json!({"rtspEncryption": "optional", "rtspServerKey": key, "rtspServerCert": cert,
                   "rtmpEncryption": "optional", "rtmpServerKey": key, "rtmpServerCert": cert}),
        );
        Setup {
            _publisher: publish(&h, &dir, "a"),
            h,
            dir,
            fingerprint: fingerprint(&cert),
        }
    }

    fn path(&self, name: &str) -> Value {
        path_get(&self.h, name)
    }

    fn items(&self, list: &str) -> Vec<Value> {
        items(&self.h, list)
    }

    /// Adds path `name` pulling `source` (with `extra` settings) and waits until it has H.264.
    fn pulled(&self, name: &str, source: &str, extra: Value, source_type: &str) {
        let mut conf = extra;
        conf["source"] = json!(source);
        add_path(&self.h, name, &conf);
        wait_until(Duration::from_secs(30), "the pulled path available", || {
            self.path(name)["available"] == true
        });
        let p = self.path(name);
        assert_eq!(p["source"], json!({"type": source_type, "id": ""}), "{}", p);
        assert!(p["tracks"].to_string().contains("H264"), "{}", p);
    }

    /// Adds path `name` pulling `source` and waits for `error` in the log; it stays unavailable.
    fn refused(&self, name: &str, source: &str, extra: Value, error: &str) {
        let mut conf = extra;
        conf["source"] = json!(source);
        add_path(&self.h, name, &conf);
        wait_until(Duration::from_secs(20), error, || log_of(&self.dir).contains(error));
        assert_eq!(self.path(name)["available"], false);
    }
}

#[test]
fn rtsp_over_websocket_sources_plain_and_tls() {
    let s = Setup::new("bridge-ws");
    let (rtsp, rtsps) = (s.h.rtsp_port, s.h.rtsps_port);
    s.pulled("b", &format!("rtsp+ws://127.0.0.1:{}/a", rtsp), json!({}), "rtspSource");
    // the puller's connection is the tunnelled one, on the server its scheme names
    assert!(s.items("/v3/rtspconns/list").iter().any(|c| c["tunnel"] == "websocket"));
    let pinned = json!({"sourceFingerprint": s.fingerprint});
    s.pulled("c", &format!("rtsps+ws://127.0.0.1:{}/a", rtsps), pinned, "rtspSource");
    assert!(s
        .items("/v3/rtspsconns/list")
        .iter()
        .any(|c| c["tunnel"] == "websocket"));
    // not pinned: the self-signed certificate is verified against the system roots
    s.refused(
        "d",
        &format!("rtsps+ws://127.0.0.1:{}/a", rtsps),
        json!({}),
        "ERR [path d] [RTSP source] tls: failed to verify certificate: x509: certificate signed by unknown authority",
    );
}

#[test]
fn rtsps_and_rtsps_http_sources_are_verified_or_pinned() {
    let s = Setup::new("bridge-rtsps");
    let port = s.h.rtsps_port;
    let pinned = json!({"sourceFingerprint": s.fingerprint});
    s.pulled(
        "b",
        &format!("rtsps://127.0.0.1:{}/a", port),
        pinned.clone(),
        "rtspSource",
    );
    assert!(s.items("/v3/rtspsconns/list").iter().any(|c| c["tunnel"] == "none"));
    s.pulled("c", &format!("rtsps+http://127.0.0.1:{}/a", port), pinned, "rtspSource");
    assert!(s.items("/v3/rtspsconns/list").iter().any(|c| c["tunnel"] == "http"));
    s.refused(
        "d",
        &format!("rtsps://127.0.0.1:{}/a", port),
        json!({}),
        "ERR [path d] [RTSP source] tls: failed to verify certificate: x509: certificate signed by unknown authority",
    );
    let wrong = "ab".repeat(32);
    s.refused(
        "e",
        &format!("rtsps://127.0.0.1:{}/a", port),
        json!({"sourceFingerprint": wrong}),
        &format!(
            "ERR [path e] [RTSP source] source fingerprint does not match: expected {}, got {}",
            wrong, s.fingerprint
        ),
    );
}

#[test]
fn rtmps_sources_are_verified_or_pinned() {
    let s = Setup::new("bridge-rtmps");
    let port = s.h.rtmps_port;
    let pinned = json!({"sourceFingerprint": s.fingerprint});
    s.pulled("b", &format!("rtmps://127.0.0.1:{}/a", port), pinned, "rtmpSource");
    assert!(!s.items("/v3/rtmpsconns/list").is_empty());
    s.refused(
        "d",
        &format!("rtmps://127.0.0.1:{}/a", port),
        json!({}),
        "ERR [path d] [RTMP source] tls: failed to verify certificate: x509: certificate signed by unknown authority",
    );
}

#[test]
fn tls_forward_destinations_are_verified_or_pinned() {
    let s = Setup::new("bridge-forward");
    let unknown = "tls: failed to verify certificate: x509: certificate signed by unknown authority";
    let dests = [
        (format!("rtsps://127.0.0.1:{}/viaRtsps", s.h.rtsps_port), "viaRtsps"),
        (format!("rtmps://127.0.0.1:{}/viaRtmps", s.h.rtmps_port), "viaRtmps"),
    ];
    let pinned: Vec<Value> = dests
        .iter()
        .map(|(d, _)| json!({"dest": d, "destFingerprint": s.fingerprint}))
        .collect();
    // a path pulling the publisher's stream forwards it to the double's RTSPS/RTMPS servers
    let source = format!("rtsp://127.0.0.1:{}/a", s.h.rtsp_port);
    add_path(&s.h, "fw", &json!({"source": source, "forward": pinned}));
    let forward_list = || s.items("/v3/paths/forward/list?path=fw");
    for (_, name) in &dests {
        wait_until(Duration::from_secs(30), "the forwarded path available", || {
            s.path(name)["available"] == true
        });
    }
    assert!(forward_list()
        .iter()
        .all(|d| d["state"] == "forwarding" && d["lastError"] == ""));

    // not pinned: refused, in error with MediaMTX's text
    let unpinned: Vec<Value> = dests.iter().map(|(d, _)| json!({"dest": d})).collect();
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/fw", s.h.api_url()),
        Some(&json!({"forward": unpinned}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(Duration::from_secs(30), "both destinations refused", || {
        let l = forward_list();
        l.len() == 2 && l.iter().all(|d| d["state"] == "error" && d["lastError"] == unknown)
    });
}
