//! The API's client IP behind trusted proxies (`apiTrustedProxies`, gin's ClientIP) and
//! the recorder of audio-only streams in both record formats.

mod common;
use common::*;
use serde_json::json;
use std::net::TcpStream;
use std::time::Duration;

/// A GET of the API from 127.0.0.1 with extra header lines: (status, head).
fn api_get(h: &mediamtx_double::Handle, headers: &str) -> (u16, String) {
    let s = TcpStream::connect(("127.0.0.1", h.api_port)).unwrap();
    let (code, head, _) = raw_http(s, "GET", "/v3/config/global/get", headers, "");
    (code, head)
}

#[test]
fn api_client_ip_comes_through_trusted_proxies() {
    let (h, dir) = start("api-proxies");
    // the api action for anyone from 10.1.2.3 only, and for an admin with a password
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "any", "pass": "", "ips": ["10.1.2.3/32"], "permissions": [{"action": "api"}]},
            {"user": "admin", "pass": "pw", "ips": [], "permissions": [{"action": "api"}]},
        ]}),
    );
    let admin = "Authorization: Basic YWRtaW46cHc=\r\n";
    let xff = "X-Forwarded-For: 10.1.2.3\r\n";
    let (code, head) = api_get(&h, "");
    assert_eq!(code, 401, "{}", head);
    assert!(head.contains("WWW-Authenticate: Basic realm=\"mediamtx\""), "{}", head);
    // 127.0.0.1 is no trusted proxy: the header is ignored
    assert_eq!(api_get(&h, xff).0, 401);
    let patch = |body: serde_json::Value| {
        let s = TcpStream::connect(("127.0.0.1", h.api_port)).unwrap();
        let (code, _, body) = raw_http(s, "PATCH", "/v3/config/global/patch", admin, &body.to_string());
        assert_eq!(code, 200, "{}", body);
    };
    patch(json!({"apiTrustedProxies": ["127.0.0.1/32"]}));
    assert_eq!(api_get(&h, xff).0, 200);
    assert_eq!(api_get(&h, "X-Real-IP: 10.1.2.3\r\n").0, 200);
    assert_eq!(api_get(&h, "X-Forwarded-For: 10.1.2.4\r\n").0, 401);
    // a failure is logged with the client IP and the peer's port (httpp.RemoteAddr)
    let (code, _) = api_get(
        &h,
        "X-Forwarded-For: 10.9.8.7\r\nAuthorization: Basic YWRtaW46d3Jvbmc=\r\n",
    );
    assert_eq!(code, 401);
    wait_until(Duration::from_secs(20), "the refusal in the log", || {
        log_of(&dir).contains("WAR [API] [conn 10.9.8.7:")
    });
    // without trusted proxies the header is ignored again
    patch(json!({"apiTrustedProxies": []}));
    assert_eq!(api_get(&h, xff).0, 401);
}

/// The API's CORS like httpp's handlerOrigin with `apiAllowOrigins` and the API's
/// middlewarePreflightRequests (TestPreflightRequest); no credentials header.
#[test]
fn api_cors_follows_api_allow_origins() {
    let (h, _dir) = start("api-cors");
    let req = |method: &str, headers: &str| {
        let s = TcpStream::connect(("127.0.0.1", h.api_port)).unwrap();
        raw_http(s, method, "/v3/info", headers, "")
    };
    let (code, head, body) = req("OPTIONS", "Access-Control-Request-Method: GET\r\n");
    assert_eq!((code, body.as_str()), (204, ""), "{}", head);
    for line in [
        "Access-Control-Allow-Origin: *",
        "Access-Control-Allow-Methods: OPTIONS, GET, POST, PATCH, DELETE",
        "Access-Control-Allow-Headers: Authorization, Content-Type",
    ] {
        assert!(head.contains(line), "{} missing: {}", line, head);
    }
    assert!(!head.contains("Access-Control-Allow-Credentials"), "{}", head);
    patch_global(&h, json!({"apiAllowOrigins": ["http://a.example"]}));
    let (code, head, _) = req("GET", "Origin: http://a.example\r\n");
    assert_eq!(code, 200);
    assert!(
        head.contains("Access-Control-Allow-Origin: http://a.example\r\n"),
        "{}",
        head
    );
    let (code, head, _) = req("GET", "Origin: http://b.example\r\n");
    assert_eq!(code, 200);
    assert!(!head.contains("Access-Control-Allow-Origin"), "{}", head);
}

/// The segment files with extension `ext` in `dir`, sorted by name (= by start).
fn segments(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p: &std::path::PathBuf| p.to_string_lossy().ends_with(ext));
    v.sort();
    v
}

/// The time a file's packets cover: from the first one's timestamp to the end of the
/// last one (ffprobe's format duration of an MPEG-TS file is an estimate).
fn packet_span(file: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let packets: Vec<(f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',').map(|v| v.trim().parse::<f64>().ok());
            Some((f.next()??, f.next().flatten().unwrap_or(0.0)))
        })
        .collect();
    match (packets.first(), packets.last()) {
        (Some(first), Some(last)) => last.0 + last.1 - first.0,
        _ => 0.0,
    }
}

/// An audio-only publisher (AAC over RTSP) recorded with 1 s segments: MediaMTX starts
/// the first segment at the first audio frame and cuts by duration, every audio frame
/// being a random-access point (format_mpegts_track.go / format_fmp4_track.go with
/// hasVideo false). A segment spans from 1 s to `max_span`: MediaMTX cuts at the first
/// frame past the duration (MPEG-TS here too: one PES per frame), the double's fMP4 at the
/// first part (200 ms) past it.
fn audio_only_is_recorded(format: &str, ext: &str, max_span: f64) {
    require_ffmpeg();
    let (h, dir) = start(&format!("rec-audio-{}", format));
    add_path(
        &h,
        "aud",
        &json!({
            "record": true,
            "recordFormat": format,
            "recordPath": "rec/%path/%Y-%m-%d_%H-%M-%S-%f",
            "recordSegmentDuration": "1s",
            "recordPartDuration": "200ms",
        }),
    );
    let _publisher = spawn_cmd(
        &format!(
            "ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i sine=frequency=1000:sample_rate=48000 -c:a aac -f rtsp -rtsp_transport tcp {}/aud",
            h.rtsp_url()
        ),
        &dir.join("pub.log"),
    );
    let segdir = dir.join("rec/aud");
    // the third segment exists: the first two are complete
    wait_until(Duration::from_secs(60), "three audio segments", || {
        segments(&segdir, ext).len() >= 3
    });
    for seg in &segments(&segdir, ext)[..2] {
        let p = ffprobe(seg);
        assert_eq!(
            p["streams"].as_array().map(|s| s.len()),
            Some(1),
            "{}: {}",
            seg.display(),
            p
        );
        assert_eq!(p["streams"][0]["codec_name"], "aac", "{}: {}", seg.display(), p);
        let d = packet_span(seg);
        assert!((0.99..max_span).contains(&d), "{}: {} s of audio", seg.display(), d);
    }
}

#[test]
fn audio_only_stream_is_recorded_in_mpegts() {
    audio_only_is_recorded("mpegts", ".ts", 1.1);
}

#[test]
fn audio_only_stream_is_recorded_in_fmp4() {
    audio_only_is_recorded("fmp4", ".mp4", 1.3);
}
