//! The auxiliary servers of the double (playback, metrics, pprof) and the session routes
//! of servers it cannot run (HLS, WebRTC, MoQ), driven with std sockets, ffmpeg and
//! ffprobe.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A response with a binary body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("invalid JSON {:?}: {}", self.text(), e))
    }
}

/// GET (or another method) with extra header lines; `Connection: close`.
fn get(port: u16, method: &str, target: &str, headers: &str) -> Raw {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect {}: {}", port, e));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{}\r\n",
        method, target, port, headers
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Raw {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

fn refused(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// Turns on the server `key` (playback, metrics, pprof) and waits for its `port` to listen.
fn enable(h: &mediamtx_double::Handle, key: &str, port: u16) {
    patch_global(h, json!({ key: true }));
    wait_until(Duration::from_secs(5), &format!("{} listener", key), || !refused(port));
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn playback_lists_and_serves_recorded_ranges() {
    require_ffmpeg();
    let (h, dir) = start("playback");
    let pb = h.playback_port;
    // off by default: the listener is closed
    assert!(refused(pb), "playback listener open while playback is off");
    enable(&h, "playback", pb);
    let g = http("GET", &format!("{}/v3/config/global/get", h.api_url()), None).json();
    assert_eq!(g["playbackAddress"], format!("127.0.0.1:{}", pb));

    let rec = dir.join("rec");
    let conf = json!({
        "record": true,
        "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display()),
        "recordSegmentDuration": "2s",
        "recordPartDuration": "500ms",
    });
    add_path(&h, "cam", &conf);

    // nothing recorded yet
    let r = get(pb, "GET", "/list?path=cam", "");
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"status": "error", "error": "no recording segments found"}))
    );

    let mut publisher = spawn_cmd(
        &publisher_cmd(&format!("{}/cam", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    wait_until(Duration::from_secs(15), "three segments", || {
        segment_count(&rec.join("cam")) >= 3
    });
    publisher.interrupt_and_wait();
    std::thread::sleep(Duration::from_millis(500));

    // consecutive segments are one span
    let r = get(pb, "GET", "/list?path=cam", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let spans = list.as_array().expect("array");
    assert_eq!(spans.len(), 1, "{}", list);
    let total = spans[0]["duration"].as_f64().unwrap();
    assert!(total >= 3.5, "{}", list);
    let url = spans[0]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{}/get?duration=", pb)),
        "{}",
        url
    );
    assert!(url.contains("&path=cam&start="), "{}", url);
    let start = spans[0]["start"].as_str().unwrap().to_string();

    // the span's own URL serves all of it
    let r = get(pb, "GET", &url[url.find("/get").unwrap()..], "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type").as_deref(), Some("video/mp4"));
    let whole = dir.join("whole.mp4");
    std::fs::write(&whole, &r.body).unwrap();
    let p = ffprobe(&whole);
    assert_eq!(p["streams"][0]["codec_name"], "h264", "{}", p);
    let d: f64 = p["format"]["duration"].as_str().unwrap_or("0").parse().unwrap();
    assert!((total - 1.0..total + 1.0).contains(&d), "whole {} vs list {}", d, total);

    // 2 s from 1.3 s after the start (not at a keyframe: one every second), as fMP4 and MP4
    let (secs, nanos) = mediamtx_double::util::parse_rfc3339(&start).unwrap();
    let at = std::time::UNIX_EPOCH + Duration::new(secs as u64 + 1, nanos) + Duration::from_millis(300);
    let from = mediamtx_double::util::rfc3339_nano(at);
    let q = |fmt: &str| {
        format!(
            "/get?path=cam&start={}&duration=2{}",
            from.replace('+', "%2B").replace(':', "%3A"),
            fmt
        )
    };
    for fmt in ["", "&format=mp4"] {
        let r = get(pb, "GET", &q(fmt), "");
        assert_eq!(r.status, 200, "{}: {}", fmt, r.text());
        let f = dir.join(format!("part{}.mp4", fmt.len()));
        std::fs::write(&f, &r.body).unwrap();
        let p = ffprobe(&f);
        assert_eq!(p["streams"][0]["codec_name"], "h264", "{}", p);
        assert_eq!(p["streams"][0]["width"], 320);
        let d: f64 = p["format"]["duration"].as_str().unwrap_or("0").parse().unwrap();
        assert!((1.8..=2.2).contains(&d), "{}: duration {}", fmt, d);
        // decodable from its first frame: the GOP before `start` is kept
        let dec = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&f)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg");
        let errors = String::from_utf8_lossy(&dec.stderr).to_string();
        assert!(dec.status.success() && errors.is_empty(), "{}: {}", fmt, errors);
    }
    // hostile durations: no overflow, the rest of the recording
    let r = get(pb, "GET", &q("").replace("duration=2", "duration=1e300"), "");
    assert_eq!(r.status, 200, "{} bytes", r.body.len());
    // a start after the recording
    let later = mediamtx_double::util::rfc3339_nano(std::time::SystemTime::now() + Duration::from_secs(3600));
    let r = get(
        pb,
        "GET",
        &format!("/get?path=cam&start={}&duration=2", later.replace('+', "%2B")),
        "",
    );
    assert_eq!(r.status, 404, "{} bytes", r.body.len());

    // parameter errors, in MediaMTX's order and words
    let cases = [
        ("/list?path=..", 400, "invalid path name: can't contain dot path segments (..)"),
        ("/list?path=", 400, "invalid path name: cannot be empty ()"),
        ("/list?path=cam&start=yesterday", 400,
            "invalid start: parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"yesterday\" as \"2006\""),
        ("/get?path=cam&duration=2", 400,
            "invalid start: parsing time \"\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"\" as \"2006\""),
        ("/get?path=cam&start=2026-01-01T00:00:00Z&duration=soon", 400, "invalid duration: time: invalid duration \"soon\""),
        ("/get?path=cam&start=2026-01-01T00:00:00Z&duration=2&format=mkv", 400, "invalid format: mkv"),
        ("/get?path=cam&start=2020-01-01T00:00:00Z&duration=2", 404, "no recording segments found"),
        ("/get?path=cam&start=2020-01-01T00:00:00Z&duration=-5", 404, "no recording segments found"),
    ];
    for (target, code, err) in cases {
        let r = get(pb, "GET", target, "");
        assert_eq!(
            (r.status, r.json()),
            (code, json!({"status": "error", "error": err})),
            "{}",
            target
        );
    }
    // behind a trusted proxy the URLs take its X-Forwarded-Proto
    patch_global(&h, json!({"playbackTrustedProxies": ["127.0.0.0/8"]}));
    let r = get(pb, "GET", "/list?path=cam", "X-Forwarded-Proto: https\r\n");
    let url = r.json()[0]["url"].as_str().unwrap_or("").to_string();
    assert!(url.starts_with("https://"), "{}", url);

    // unknown route; CORS preflight
    assert_eq!(get(pb, "GET", "/nothing", "").status, 404);
    let r = get(
        pb,
        "OPTIONS",
        "/list",
        "Origin: http://example.com\r\nAccess-Control-Request-Method: GET\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Methods").as_deref(),
        Some("OPTIONS, GET")
    );
    assert_eq!(r.header("Access-Control-Allow-Origin").as_deref(), Some("*"));

    // off again: refused
    patch_global(&h, json!({"playback": false}));
    wait_until(Duration::from_secs(5), "playback listener closed", || refused(pb));
}

/// `metric{labels} value` lines by metric name and labels.
fn parse_metrics(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {:?}", l));
            let (name, labels) = match key.split_once('{') {
                Some((n, rest)) => (n.to_string(), format!("{{{}", rest)),
                None => (key.to_string(), String::new()),
            };
            (
                name,
                labels,
                value.parse().unwrap_or_else(|_| panic!("bad value {:?}", l)),
            )
        })
        .collect()
}

fn metric_value(m: &[(String, String, f64)], name: &str, labels: &str) -> Option<f64> {
    m.iter().find(|(n, l, _)| n == name && l == labels).map(|x| x.2)
}

#[test]
fn metrics_show_paths_and_growing_byte_counters() {
    require_ffmpeg();
    let (h, dir) = start("metrics");
    let mp = h.metrics_port;
    assert!(refused(mp));
    enable(&h, "metrics", mp);

    // no paths yet: the zero sections, and the empty servers' sections
    let r = get(mp, "GET", "/metrics", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain; charset=utf-8"));
    let text = r.text();
    assert!(
        text.starts_with("# Paths\npaths 0\npaths_inbound_bytes 0\n"),
        "{}",
        text
    );
    let m = parse_metrics(&text);
    for name in ["paths_bytes_received", "hls_muxers", "webrtc_sessions", "moq_sessions"] {
        assert_eq!(metric_value(&m, name, ""), Some(0.0), "{}: {}", name, text);
    }

    let mut publisher = spawn_cmd(
        &publisher_cmd(&format!("{}/cam", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    let ready = "{name=\"cam\",state=\"ready\"}";
    let received = |text: &str| metric_value(&parse_metrics(text), "paths_bytes_received", ready);
    let mut first = 0.0;
    wait_until(Duration::from_secs(15), "cam ready with bytes", || {
        let t = get(mp, "GET", "/metrics", "").text();
        first = received(&t).unwrap_or(0.0);
        first > 0.0
    });
    wait_until(Duration::from_secs(10), "bytes grow", || {
        received(&get(mp, "GET", "/metrics", "").text()).unwrap_or(0.0) > first
    });
    let text = get(mp, "GET", "/metrics?type=paths&path=cam", "").text();
    let m = parse_metrics(&text);
    assert_eq!(metric_value(&m, "paths", ready), Some(1.0), "{}", text);
    assert_eq!(
        metric_value(&m, "paths_readers", "{name=\"cam\",readerType=\"\",state=\"ready\"}"),
        Some(0.0),
        "{}",
        text
    );
    let inbound = metric_value(&m, "paths_inbound_bytes", ready).unwrap();
    assert!(inbound >= first, "{}", text);
    assert!(metric_value(&m, "hls_muxers", "").is_none(), "filtered: {}", text);
    // a filter for another path: nothing at all
    assert_eq!(
        get(mp, "GET", "/metrics?path=other", "").text(),
        "# Paths\n\n# Paths (deprecated)\n\n"
    );
    publisher.interrupt_and_wait();

    // authentication with the `metrics` action
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "mon", "pass": "pw", "ips": [], "permissions": [{"action": "metrics"}]},
            {"user": "any", "pass": "", "ips": [], "permissions": [{"action": "api"}]},
        ]}),
    );
    let r = get(mp, "GET", "/metrics", "");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate").as_deref(),
        Some("Basic realm=\"mediamtx\"")
    );
    assert_eq!(r.json(), json!({"status": "error", "error": "authentication error"}));
    // mon:pw
    let r = get(mp, "GET", "/metrics", "Authorization: Basic bW9uOnB3\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    // metricsAllowOrigins: a listed origin is echoed, others get nothing
    patch_global(&h, json!({"metricsAllowOrigins": ["http://*.example.com"]}));
    let r = get(
        mp,
        "GET",
        "/metrics",
        "Authorization: Basic bW9uOnB3\r\nOrigin: http://app.example.com\r\n",
    );
    assert_eq!(
        r.header("Access-Control-Allow-Origin").as_deref(),
        Some("http://app.example.com")
    );
    let r = get(
        mp,
        "GET",
        "/metrics",
        "Authorization: Basic bW9uOnB3\r\nOrigin: http://evil.org\r\n",
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn pprof_listener_auth_and_index() {
    let (h, _dir) = start("pprof");
    let pp = h.pprof_port;
    assert!(refused(pp));
    enable(&h, "pprof", pp);
    let r = get(pp, "GET", "/debug/pprof/", "");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("goroutine") && r.text().contains("not available"),
        "{}",
        r.text()
    );
    assert_eq!(get(pp, "GET", "/debug/pprof/heap", "").status, 501);
    assert_eq!(get(pp, "GET", "/debug/pprof/nothing", "").status, 404);
    // only 127.0.0.1/::1 by default; with users that lack `pprof`: 401 before routing
    patch_global(
        &h,
        json!({"authInternalUsers": [{"user": "any", "pass": "", "ips": [], "permissions": [{"action": "api"}]}]}),
    );
    let r = get(pp, "GET", "/nothing", "");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate").as_deref(),
        Some("Basic realm=\"mediamtx\"")
    );
    // pprof allowed from 10.0.0.5 only: reached through a trusted proxy (gin's ClientIP)
    patch_global(
        &h,
        json!({"pprofTrustedProxies": ["127.0.0.1"], "authInternalUsers": [
            {"user": "any", "pass": "", "ips": ["10.0.0.5"], "permissions": [{"action": "pprof"}]},
            {"user": "any", "pass": "", "ips": [], "permissions": [{"action": "api"}]},
        ]}),
    );
    let via = |xff: &str| get(pp, "GET", "/debug/pprof/", &format!("X-Forwarded-For: {}\r\n", xff)).status;
    assert_eq!(via("10.0.0.5"), 200);
    assert_eq!(via("10.0.0.5, 127.0.0.1"), 200);
    assert_eq!(via("10.0.0.6"), 401);
    // without trusted proxies the header is ignored
    patch_global(&h, json!({"pprofTrustedProxies": []}));
    assert_eq!(via("10.0.0.5"), 401);

    // turning the server off closes its open connections
    let mut idle = TcpStream::connect(("127.0.0.1", pp)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    patch_global(&h, json!({"pprof": false}));
    let mut b = [0u8; 16];
    assert_eq!(idle.read(&mut b).expect("closed, not timed out"), 0);
}

#[test]
fn session_routes_of_servers_without_sessions() {
    let (h, _dir) = start("sessions");
    let a = h.api_url();
    let id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    for list in ["hlsmuxers", "hlssessions", "webrtcsessions", "moqsessions"] {
        let r = http("GET", &format!("{}/v3/{}/list", a, list), None);
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"itemCount": 0, "pageCount": 0, "items": []})),
            "{}",
            list
        );
    }
    let cases = [
        ("GET", "/v3/hlsmuxers/get/cam".to_string(), 404, "muxer not found"),
        ("GET", format!("/v3/hlssessions/get/{}", id), 404, "session not found"),
        ("POST", format!("/v3/hlssessions/kick/{}", id), 404, "session not found"),
        (
            "GET",
            format!("/v3/webrtcsessions/get/{}", id),
            404,
            "session not found",
        ),
        (
            "POST",
            format!("/v3/webrtcsessions/kick/{}", id),
            404,
            "session not found",
        ),
        ("GET", format!("/v3/moqsessions/get/{}", id), 404, "session not found"),
        ("POST", format!("/v3/moqsessions/kick/{}", id), 404, "session not found"),
        (
            "GET",
            "/v3/webrtcsessions/get/xyz".to_string(),
            400,
            "invalid UUID length: 3",
        ),
        (
            "GET",
            format!("/v3/moqsessions/get/{}", id.replace('-', "x")),
            400,
            "invalid UUID format",
        ),
        (
            "GET",
            "/v3/hlsmuxers/list?itemsPerPage=0".to_string(),
            400,
            "invalid items per page",
        ),
    ];
    for (m, p, code, err) in cases {
        let r = http(m, &format!("{}{}", a, p), None);
        assert_eq!(
            (r.status, r.json()),
            (code, json!({"status": "error", "error": err})),
            "{} {}",
            m,
            p
        );
    }
    // disabled servers: no routes
    patch_global(&h, json!({"hls": false, "webrtc": false, "moq": false}));
    for p in [
        "/v3/hlsmuxers/list",
        "/v3/hlssessions/list",
        "/v3/webrtcsessions/list",
        "/v3/moqsessions/list",
    ] {
        let r = http("GET", &format!("{}{}", a, p), None);
        assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"), "{}", p);
    }
}

#[test]
fn log_settings_level_file_and_structured() {
    let (h, dir) = start("logs");
    patch_global(
        &h,
        json!({"logLevel": "error", "logDestinations": ["file"], "logFile": "mtx.log", "playback": true}),
    );
    let pb = h.playback_port;
    wait_until(Duration::from_secs(5), "playback listener", || !refused(pb));
    assert_eq!(get(pb, "GET", "/list?path=..", "").status, 400);
    let log = std::fs::read_to_string(dir.join("mtx.log")).expect("logFile written");
    let lines: Vec<&str> = log.lines().collect();
    // `YYYY/MM/DD HH:MM:SS ERR [playback] ...`; the INF listener line filtered out
    assert_eq!(lines.len(), 1, "{}", log);
    let l = lines[0].as_bytes();
    assert!(
        l.len() > 20 && l[4] == b'/' && l[7] == b'/' && l[13] == b':' && l[16] == b':',
        "{}",
        log
    );
    assert_eq!(
        &lines[0][20..],
        "ERR [playback] invalid path name: can't contain dot path segments (..)"
    );

    // a change of the log settings restarts the servers (closeLogger): they close under
    // the old logger (error level: not written), then start under the new one, the SRT
    // server and the API last
    patch_global(
        &h,
        json!({"logLevel": "info", "logStructured": true, "playback": false}),
    );
    let srt_started = format!("[SRT] started with listener on :{} (UDP/SRT)", h.srt_port);
    wait_until(Duration::from_secs(5), "the servers' restart logged", || {
        std::fs::read_to_string(dir.join("mtx.log"))
            .unwrap_or_default()
            .contains(&srt_started)
    });
    let log = std::fs::read_to_string(dir.join("mtx.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let messages: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
    let g = http("GET", &format!("{}/v3/config/global/get", h.api_url()), None).json();
    let rtsp_started = format!(
        "[RTSP] started with listeners on :{} (TCP/RTSP), {} (UDP/RTP), {} (UDP/RTCP)",
        h.rtsp_port,
        g["rtpAddress"].as_str().unwrap(),
        g["rtcpAddress"].as_str().unwrap()
    );
    assert_eq!(
        messages,
        [
            rtsp_started,
            format!("[RTMP] started with listener on :{} (TCP/RTMP)", h.rtmp_port),
            srt_started,
            // and the API, closed with any server (closeAPI), last
            format!("[API] started with listener on 127.0.0.1:{} (TCP/HTTP)", h.api_port),
        ],
        "{}",
        log
    );
    assert_eq!(lines[0]["level"], "INF", "{}", log);
    assert!(lines[0]["timestamp"].as_str().unwrap_or("").contains('T'), "{}", log);
    assert!(closed(pb), "playback closed");
}

/// A 1 s fragmented MP4 made by ffmpeg with the recorder's flags (`codec`: its video codec).
fn template_fmp4(dir: &Path, codec: &str) -> Vec<u8> {
    let out = dir.join(format!("template-{}.mp4", codec));
    let st = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:rate=10",
        ])
        .args(["-t", "1", "-c:v", codec, "-g", "10"])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg template {}", codec);
    std::fs::read(&out).unwrap()
}

/// A segment file: the template with `secs` as its mvhd duration (like writeDuration).
fn write_segment(template: &[u8], secs: u32, file: &Path) {
    let mut b = template.to_vec();
    let at = b.windows(4).position(|w| w == b"mvhd").expect("mvhd") + 4;
    let (ts_at, dur_at, v1) = if b[at] == 1 {
        (at + 20, at + 24, true)
    } else {
        (at + 12, at + 16, false)
    };
    let ts = u32::from_be_bytes([b[ts_at], b[ts_at + 1], b[ts_at + 2], b[ts_at + 3]]);
    let d = secs as u64 * ts as u64;
    if v1 {
        b[dur_at..dur_at + 8].copy_from_slice(&d.to_be_bytes());
    } else {
        b[dur_at..dur_at + 4].copy_from_slice(&(d as u32).to_be_bytes());
    }
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, b).unwrap();
}

/// MediaMTX's TestOnList / TestOnListCachedDuration cases (internal/playback) on files
/// named and sized like theirs (durations from the mvhd; local time).
#[test]
fn playback_list_cases_of_mediamtx() {
    require_ffmpeg();
    let (h, dir) = start("pblist");
    let pb = h.playback_port;
    enable(&h, "playback", pb);
    let h264 = template_fmp4(&dir, "libx264");
    let other = template_fmp4(&dir, "mpeg4");
    let local = |y: i64, mo: u32, d: u32, hh: u32, mi: u32, s: u32| {
        let u = mediamtx_double::util::local_to_unix(y, mo, d, hh, mi, s);
        mediamtx_double::util::rfc3339_nano(std::time::UNIX_EPOCH + Duration::new(u as u64, 500_000_000))
    };
    let escape = mediamtx_double::hooks::query_escape;
    let span = |start: &str, d: u32| {
        json!({"start": start, "duration": d, "url": format!(
            "http://127.0.0.1:{}/get?duration={}&path=mypath&start={}", pb, d, escape(start))})
    };
    // (case, segment files (name, template, mvhd seconds), query, status, body)
    type Files<'a> = Vec<(&'a str, &'a Vec<u8>, u32)>;
    // two consecutive segments, then one a year later: two spans
    let three: Files = vec![
        ("2008-11-07_11-22-00-500000", &h264, 62),
        ("2008-11-07_11-23-02-500000", &h264, 4),
        ("2009-11-07_11-23-02-500000", &h264, 4),
    ];
    let three_spans = json!([
        span(&local(2008, 11, 7, 11, 22, 0), 66),
        span(&local(2009, 11, 7, 11, 23, 2), 4)
    ]);
    // path mypath recording under `rec`
    let record_into = |rec: &Path| {
        let conf = json!({"recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display())});
        replace_path(&h, "mypath", &conf);
    };
    let cases: Vec<(&str, Files, String, u16, Value)> = vec![
        ("unfiltered", three.clone(), String::new(), 200, three_spans.clone()),
        (
            "filtered",
            three.clone(),
            format!(
                "&start={}&end={}",
                escape(&local(2008, 11, 7, 11, 22, 1)),
                escape(&local(2009, 11, 7, 11, 23, 4))
            ),
            200,
            json!([
                span(&local(2008, 11, 7, 11, 22, 1), 65),
                span(&local(2009, 11, 7, 11, 23, 2), 2)
            ]),
        ),
        (
            "filtered and gap",
            vec![
                ("2008-11-07_11-22-00-500000", &h264, 62),
                ("2008-11-07_11-24-02-500000", &h264, 4),
            ],
            format!(
                "&start={}&end={}",
                escape(&local(2008, 11, 7, 11, 23, 20)),
                escape(&local(2009, 11, 7, 11, 23, 4))
            ),
            200,
            json!([span(&local(2008, 11, 7, 11, 24, 2), 4)]),
        ),
        (
            "different init",
            vec![
                ("2008-11-07_11-22-00-500000", &h264, 62),
                ("2008-11-07_11-23-02-500000", &other, 1),
            ],
            String::new(),
            200,
            json!([
                span(&local(2008, 11, 7, 11, 22, 0), 62),
                span(&local(2008, 11, 7, 11, 23, 2), 1)
            ]),
        ),
        (
            "start after duration",
            vec![("2008-11-07_11-22-00-500000", &h264, 62)],
            format!("&start={}", escape(&local(2010, 11, 7, 11, 23, 20))),
            404,
            json!({"status": "error", "error": "no recording segments found"}),
        ),
        (
            "start before first",
            three.clone(),
            format!("&start={}", escape(&local(2007, 11, 7, 11, 23, 20))),
            200,
            three_spans.clone(),
        ),
        (
            "cached duration",
            vec![("2008-11-07_11-22-00-500000", &h264, 50)],
            String::new(),
            200,
            json!([span(&local(2008, 11, 7, 11, 22, 0), 50)]),
        ),
    ];
    for (i, (name, files, query, code, want)) in cases.into_iter().enumerate() {
        let rec = dir.join(format!("case{}", i));
        record_into(&rec);
        for (stem, template, secs) in files {
            write_segment(template, secs, &rec.join("mypath").join(format!("{}.mp4", stem)));
        }
        let r = get(pb, "GET", &format!("/list?path=mypath{}", query), "");
        assert_eq!((r.status, r.json()), (code, want), "{}", name);
    }
    // damaged files (empty boxes, a truncated recording) answer without bringing the server down
    let rec = dir.join("damaged");
    record_into(&rec);
    let seg = rec.join("mypath");
    std::fs::create_dir_all(&seg).unwrap();
    let mut empty_boxes = Vec::new();
    for (size, typ) in [(16u32, b"ftyp"), (8, b"moov"), (8, b"moof"), (8, b"mdat")] {
        empty_boxes.extend_from_slice(&size.to_be_bytes());
        empty_boxes.extend_from_slice(typ);
        empty_boxes.resize(empty_boxes.len() + size as usize - 8, 0);
    }
    std::fs::write(seg.join("2011-01-01_00-00-00-000000.mp4"), &empty_boxes).unwrap();
    std::fs::write(seg.join("2011-01-01_00-01-00-000000.mp4"), &h264[..h264.len() - 100]).unwrap();
    for target in [
        "/list?path=mypath",
        "/get?path=mypath&start=2011-01-01T00:00:00Z&duration=100",
    ] {
        let code = get(pb, "GET", target, "").status;
        assert!(code == 200 || code == 404 || code == 500, "{}: {}", target, code);
    }
    assert!(get(pb, "GET", "/list?path=mypath&start=2011-01-01T00:00:59Z", "").status > 0);

    // TestOnListInvalidPath
    assert_eq!(get(pb, "GET", "/list?path=group%2F..%2Fcam1", "").status, 400);
}

/// MediaMTX's TestZeroMetricsFallback without the RTSP sections (the double has none), with
/// the RTMP section of the default configuration, and TestPreflightRequest.
#[test]
fn metrics_zero_fallback_and_preflight_like_mediamtx() {
    let (h, _dir) = start("metrics0");
    let mp = h.metrics_port;
    enable(&h, "metrics", mp);
    let want = "# Paths\npaths 0\npaths_inbound_bytes 0\npaths_outbound_bytes 0\npaths_inbound_frames_in_error 0\n\n\
        # Paths (deprecated)\npaths_bytes_received 0\npaths_bytes_sent 0\npaths_readers 0\n\n\
        # HLS sessions\nhls_sessions 0\nhls_sessions_outbound_bytes 0\n\n\
        # HLS muxers\nhls_muxers 0\nhls_muxers_outbound_bytes 0\nhls_muxers_outbound_frames_discarded 0\n\n\
        # HLS muxers (deprecated)\nhls_muxers_bytes_sent 0\n\n\
        # RTSP connections\nrtsp_conns 0\nrtsp_conns_inbound_bytes 0\nrtsp_conns_outbound_bytes 0\n\n\
        # RTSP connections (deprecated)\nrtsp_conns_bytes_received 0\nrtsp_conns_bytes_sent 0\n\n\
        # RTSP sessions\nrtsp_sessions 0\nrtsp_sessions_inbound_bytes 0\nrtsp_sessions_inbound_rtp_packets 0\n\
        rtsp_sessions_inbound_rtp_packets_lost 0\nrtsp_sessions_inbound_rtp_packets_in_error 0\n\
        rtsp_sessions_inbound_rtp_packets_jitter 0\nrtsp_sessions_inbound_rtcp_packets 0\n\
        rtsp_sessions_inbound_rtcp_packets_in_error 0\nrtsp_sessions_outbound_bytes 0\n\
        rtsp_sessions_outbound_rtp_packets 0\nrtsp_sessions_outbound_rtp_packets_reported_lost 0\n\
        rtsp_sessions_outbound_rtp_packets_discarded 0\nrtsp_sessions_outbound_rtcp_packets 0\n\n\
        # RTSP sessions (deprecated)\nrtsp_sessions_bytes_received 0\nrtsp_sessions_bytes_sent 0\n\
        rtsp_sessions_rtp_packets_received 0\nrtsp_sessions_rtp_packets_sent 0\nrtsp_sessions_rtp_packets_lost 0\n\
        rtsp_sessions_rtp_packets_in_error 0\nrtsp_sessions_rtp_packets_jitter 0\n\
        rtsp_sessions_rtcp_packets_received 0\nrtsp_sessions_rtcp_packets_sent 0\nrtsp_sessions_rtcp_packets_in_error 0\n\n\
        # RTMP connections\nrtmp_conns 0\nrtmp_conns_inbound_bytes 0\nrtmp_conns_outbound_bytes 0\n\
        rtmp_conns_outbound_frames_discarded 0\n\n\
        # RTMP connections (deprecated)\nrtmp_conns_bytes_received 0\nrtmp_conns_bytes_sent 0\n\n\
        # SRT connections\nsrt_conns 0\nsrt_conns_packets_sent 0\nsrt_conns_packets_received 0\n\
        srt_conns_packets_sent_unique 0\nsrt_conns_packets_received_unique 0\nsrt_conns_packets_send_loss 0\n\
        srt_conns_packets_received_loss 0\nsrt_conns_packets_retrans 0\nsrt_conns_packets_received_retrans 0\n\
        srt_conns_packets_sent_ack 0\nsrt_conns_packets_received_ack 0\nsrt_conns_packets_sent_nak 0\n\
        srt_conns_packets_received_nak 0\nsrt_conns_packets_sent_km 0\nsrt_conns_packets_received_km 0\n\
        srt_conns_us_snd_duration 0\nsrt_conns_packets_received_belated 0\nsrt_conns_packets_send_drop 0\n\
        srt_conns_packets_received_drop 0\nsrt_conns_packets_received_undecrypt 0\nsrt_conns_bytes_sent 0\n\
        srt_conns_bytes_received 0\nsrt_conns_bytes_sent_unique 0\nsrt_conns_bytes_received_unique 0\n\
        srt_conns_bytes_received_loss 0\nsrt_conns_bytes_retrans 0\nsrt_conns_bytes_received_retrans 0\n\
        srt_conns_bytes_received_belated 0\nsrt_conns_bytes_send_drop 0\nsrt_conns_bytes_received_drop 0\n\
        srt_conns_bytes_received_undecrypt 0\nsrt_conns_us_packets_send_period 0\nsrt_conns_packets_flow_window 0\n\
        srt_conns_packets_flight_size 0\nsrt_conns_ms_rtt 0\nsrt_conns_mbps_send_rate 0\n\
        srt_conns_mbps_receive_rate 0\nsrt_conns_mbps_link_capacity 0\nsrt_conns_bytes_avail_send_buf 0\n\
        srt_conns_bytes_avail_receive_buf 0\nsrt_conns_mbps_max_bw 0\nsrt_conns_bytes_mss 0\n\
        srt_conns_packets_send_buf 0\nsrt_conns_bytes_send_buf 0\nsrt_conns_ms_send_buf 0\n\
        srt_conns_ms_send_tsb_pd_delay 0\nsrt_conns_packets_receive_buf 0\nsrt_conns_bytes_receive_buf 0\n\
        srt_conns_ms_receive_buf 0\nsrt_conns_ms_receive_tsb_pd_delay 0\nsrt_conns_packets_reorder_tolerance 0\n\
        srt_conns_packets_received_avg_belated_time 0\nsrt_conns_packets_send_loss_rate 0\nsrt_conns_packets_received_loss_rate 0\n\
        srt_conns_outbound_frames_discarded 0\n\n\
        # WebRTC sessions\nwebrtc_sessions 0\nwebrtc_sessions_inbound_bytes 0\n\
        webrtc_sessions_inbound_rtp_packets 0\nwebrtc_sessions_inbound_rtp_packets_lost 0\n\
        webrtc_sessions_inbound_rtp_packets_jitter 0\nwebrtc_sessions_inbound_rtcp_packets 0\n\
        webrtc_sessions_outbound_bytes 0\nwebrtc_sessions_outbound_rtp_packets 0\n\
        webrtc_sessions_outbound_rtcp_packets 0\nwebrtc_sessions_outbound_frames_discarded 0\n\n\
        # WebRTC sessions (deprecated)\nwebrtc_sessions_bytes_received 0\nwebrtc_sessions_bytes_sent 0\n\
        webrtc_sessions_rtp_packets_received 0\nwebrtc_sessions_rtp_packets_sent 0\n\
        webrtc_sessions_rtp_packets_lost 0\nwebrtc_sessions_rtp_packets_jitter 0\n\
        webrtc_sessions_rtcp_packets_received 0\nwebrtc_sessions_rtcp_packets_sent 0\n\n\
        # MoQ sessions\nmoq_sessions 0\nmoq_sessions_inbound_bytes 0\nmoq_sessions_outbound_bytes 0\n\n";
    assert_eq!(get(mp, "GET", "/metrics", "").text(), want);
    // disabled servers drop out; an explicit type shows only its section
    patch_global(&h, json!({"hls": false, "webrtc": false, "moq": false}));
    let r = get(mp, "GET", "/metrics?type=forward_dests", "").text();
    assert_eq!(
        r,
        "# Forward destinations\nforward_dests 0\nforward_dests_outbound_bytes 0\n\n"
    );
    let r = get(mp, "GET", "/metrics?type=hls_muxers", "").text();
    assert_eq!(r, "");

    let r = get(mp, "OPTIONS", "/metrics", "Access-Control-Request-Method: GET\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin").as_deref(), Some("*"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods").as_deref(),
        Some("OPTIONS, GET")
    );
    assert_eq!(
        r.header("Access-Control-Allow-Headers").as_deref(),
        Some("Authorization")
    );
    assert!(r.body.is_empty());
}

/// A request line longer than Go's 1 MiB header limit gets no answer; the server goes on.
#[test]
fn oversized_request_line_is_dropped() {
    let (h, _dir) = start("bigline");
    let pp = h.pprof_port;
    enable(&h, "pprof", pp);
    let mut s = TcpStream::connect(("127.0.0.1", pp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = b"GET /debug/pprof/?".to_vec();
    req.resize(req.len() + (2 << 20), b'a');
    // a complete request otherwise: without the limit it would be answered 200
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(&req); // may fail once the server has closed
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..buf.len().min(200)])
    );
    assert_eq!(get(pp, "GET", "/debug/pprof/", "").status, 200);
}

/// An RTMP and an SRT publisher appear in their metrics sections with MediaMTX's labels;
/// the `type` and connection filters select them.
#[test]
fn metrics_list_rtmp_and_srt_connections() {
    require_ffmpeg();
    let (h, dir) = start("metrics-conns");
    let mp = h.metrics_port;
    enable(&h, "metrics", mp);
    let send = |format: &str, url: String, log: &str| {
        spawn_cmd(
            &format!(
                "ffmpeg -nostdin -hide_banner -loglevel warning -re -f lavfi -i testsrc2=size=320x240:rate=15 -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f {} {}",
                format, url
            ),
            &dir.join(log),
        )
    };
    let _rtmp = send("flv", format!("{}/viartmp", h.rtmp_url()), "rtmp.log");
    let _srt = send("mpegts", format!("{}?streamid=publish:viasrt", h.srt_url()), "srt.log");
    let published = |text: &str, name: &str, path: &str| {
        parse_metrics(text).iter().any(|(n, l, v)| {
            n == name && l.contains(&format!("path=\"{}\"", path)) && l.contains("state=\"publish\"") && *v == 1.0
        })
    };
    wait_until(Duration::from_secs(15), "both publishers in /metrics", || {
        let t = get(mp, "GET", "/metrics", "").text();
        published(&t, "rtmp_conns", "viartmp") && published(&t, "srt_conns", "viasrt")
    });
    let text = get(mp, "GET", "/metrics", "").text();
    let m = parse_metrics(&text);
    // the labels are the API item's: id, path, remoteAddr, state (sorted)
    let rtmp_item = &http("GET", &format!("{}/v3/rtmpconns/list", h.api_url()), None).json()["items"][0];
    let labels = format!(
        "{{id=\"{}\",path=\"viartmp\",remoteAddr=\"{}\",state=\"publish\"}}",
        rtmp_item["id"].as_str().unwrap(),
        rtmp_item["remoteAddr"].as_str().unwrap()
    );
    assert!(
        metric_value(&m, "rtmp_conns_inbound_bytes", &labels).unwrap_or(0.0) > 0.0,
        "{}",
        text
    );
    assert!(
        metric_value(&m, "rtmp_conns_bytes_received", &labels).is_some(),
        "{}",
        text
    );
    let srt_bytes = m
        .iter()
        .find(|(n, l, _)| n == "srt_conns_bytes_received" && l.contains("viasrt"));
    assert!(srt_bytes.is_some_and(|x| x.2 > 0.0), "{}", text);
    assert!(
        text.contains("# RTMP connections\n") && text.contains("# SRT connections\n"),
        "{}",
        text
    );

    // type filters: only that section
    let t = get(mp, "GET", "/metrics?type=srt_conns", "").text();
    assert!(
        t.starts_with("# SRT connections\n") && !t.contains("rtmp_conns"),
        "{}",
        t
    );
    let t = get(mp, "GET", "/metrics?type=rtmp_conns", "").text();
    assert!(
        t.starts_with("# RTMP connections\n") && !t.contains("srt_conns"),
        "{}",
        t
    );
    // a connection filter: that connection only; an unknown id: the header alone
    let id = rtmp_item["id"].as_str().unwrap();
    let t = get(mp, "GET", &format!("/metrics?rtmp_conn={}", id), "").text();
    assert!(
        t.contains(&format!("rtmp_conns{} 1\n", labels)) && !t.contains("paths"),
        "{}",
        t
    );
    let t = get(mp, "GET", "/metrics?rtmp_conn=00000000-0000-0000-0000-000000000000", "").text();
    assert_eq!(t, "# RTMP connections\n\n# RTMP connections (deprecated)\n\n", "{}", t);
}

/// A real ffmpeg RTSP publisher appears in the RTSP connection (labelled by id) and session
/// (id/path/remoteAddr/state) sections; the type and per-id filters select them.
#[test]
fn metrics_list_rtsp_connections_and_sessions() {
    require_ffmpeg();
    let (h, dir) = start("metrics-rtsp");
    let mp = h.metrics_port;
    enable(&h, "metrics", mp);
    let url = format!("{}/viartsp", h.rtsp_url());
    let _p = spawn_cmd(&publisher_cmd(&url, "320x240"), &dir.join("rtsp.log"));
    let list = |what: &str| http("GET", &format!("{}/v3/rtsp{}/list", h.api_url(), what), None).json();
    wait_until(Duration::from_secs(15), "the RTSP session publishing", || {
        list("sessions")["items"][0]["state"] == "publish"
    });
    let session = list("sessions")["items"][0].clone();
    let conn = list("conns")["items"][0].clone();
    let s_labels = format!(
        "{{id=\"{}\",path=\"viartsp\",remoteAddr=\"{}\",state=\"publish\"}}",
        session["id"].as_str().unwrap(),
        session["remoteAddr"].as_str().unwrap()
    );
    let c_labels = format!("{{id=\"{}\"}}", conn["id"].as_str().unwrap());
    wait_until(Duration::from_secs(10), "inbound RTP in /metrics", || {
        let m = parse_metrics(&get(mp, "GET", "/metrics", "").text());
        metric_value(&m, "rtsp_sessions_inbound_rtp_packets", &s_labels).unwrap_or(0.0) > 0.0
    });
    let text = get(mp, "GET", "/metrics", "").text();
    let m = parse_metrics(&text);
    assert_eq!(metric_value(&m, "rtsp_sessions", &s_labels), Some(1.0), "{}", text);
    assert!(metric_value(&m, "rtsp_sessions_bytes_received", &s_labels).unwrap_or(0.0) > 0.0);
    assert_eq!(metric_value(&m, "rtsp_conns", &c_labels), Some(1.0), "{}", text);
    assert!(metric_value(&m, "rtsp_conns_inbound_bytes", &c_labels).unwrap_or(0.0) > 0.0);
    assert!(metric_value(&m, "rtsp_conns_bytes_sent", &c_labels).is_some());
    // RTSPS is off: no section of it
    assert!(!text.contains("rtsps_"), "{}", text);

    let t = get(mp, "GET", "/metrics?type=rtsp_conns", "").text();
    assert!(
        t.starts_with("# RTSP connections\n") && !t.contains("rtsp_sessions"),
        "{}",
        t
    );
    let t = get(mp, "GET", "/metrics?type=rtsp_sessions", "").text();
    assert!(t.starts_with("# RTSP sessions\n") && !t.contains("rtsp_conns"), "{}", t);
    let sid = session["id"].as_str().unwrap();
    let t = get(mp, "GET", &format!("/metrics?rtsp_session={}", sid), "").text();
    assert!(
        t.contains(&format!("rtsp_sessions{} 1\n", s_labels)) && !t.contains("paths"),
        "{}",
        t
    );
    let t = get(mp, "GET", "/metrics?rtsp_conn=00000000-0000-0000-0000-000000000000", "").text();
    assert_eq!(t, "# RTSP connections\n\n# RTSP connections (deprecated)\n\n");
}
