//! Static sources other than RTSP, pulled from real senders: RTMP and SRT from the double's
//! own servers, MPEG-TS over UDP from an ffmpeg sender, HLS from a tiny HTTP server, RTP
//! described by `rtpSDP`; each path is read back over RTSP with ffprobe, and its
//! `source.type` checked in /v3/paths/get.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn path_get(h: &mediamtx_double::Handle, name: &str) -> Value {
    let r = http("GET", &format!("{}/v3/paths/get/{}", h.api_url(), name), None);
    if r.status == 200 {
        r.json()
    } else {
        json!({"available": false})
    }
}

fn add_path(h: &mediamtx_double::Handle, name: &str, conf: Value) {
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/{}", h.api_url(), name),
        Some(&conf.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// ffmpeg sending H.264 (320x240) in `format` to `url`, in real time.
fn sender(format: &str, url: &str, log: &Path) -> Proc {
    spawn_cmd(
        &format!(
            "ffmpeg -nostdin -hide_banner -loglevel warning -re -f lavfi -i testsrc2=size=320x240:rate=15 -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f {} {}",
            format, url
        ),
        log,
    )
}

/// ffprobe of the first stream of an RTSP URL (bounded by a hang limit).
fn probe(url: &str) -> Result<Value, String> {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-print_format", "json", "-show_streams"])
        .args(["-rtsp_transport", "tcp", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    if !out.status.success() {
        return Err(format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["streams"][0].clone())
}

/// Waits for path `b` to be available, then checks its source type and its media.
fn assert_pulled(h: &mediamtx_double::Handle, dir: &Path, source_type: &str) {
    wait_until(Duration::from_secs(15), "path b available", || {
        path_get(h, "b")["available"] == true
    });
    let p = path_get(h, "b");
    assert_eq!(p["source"], json!({"type": source_type, "id": ""}), "{}", p);
    let s = probe(&format!("{}/b", h.rtsp_url())).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("logs/b-source.log")).unwrap_or_default();
        panic!("ffprobe: {}\nsource log: {}", e, log)
    });
    assert_eq!(s["codec_name"], "h264", "{}", s);
    assert_eq!(s["width"], 320, "{}", s);
    assert_eq!(s["height"], 240, "{}", s);
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn rtmp_source_from_the_double_rtmp_server() {
    require_ffmpeg();
    let (h, dir) = start("src-rtmp");
    let _pub = sender("flv", &format!("{}/a", h.rtmp_url()), &dir.join("pub.log"));
    wait_until(Duration::from_secs(15), "path a available", || {
        path_get(&h, "a")["available"] == true
    });
    // on demand: pulled only once a reader asks for b
    add_path(
        &h,
        "b",
        json!({"source": format!("{}/a", h.rtmp_url()), "sourceOnDemand": true}),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(path_get(&h, "b")["available"], false);
    assert_eq!(path_get(&h, "a")["readers"], json!([]));
    let s = probe(&format!("{}/b", h.rtsp_url())).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("logs/b-source.log")).unwrap_or_default();
        panic!("ffprobe: {}\nsource log: {}", e, log)
    });
    assert_eq!(
        (&s["codec_name"], &s["width"], &s["height"]),
        (&json!("h264"), &json!(320), &json!(240)),
        "{}",
        s
    );
    let b = path_get(&h, "b");
    assert_eq!(b["source"], json!({"type": "rtmpSource", "id": ""}), "{}", b);
    // the puller reads path a like any RTMP reader (until sourceOnDemandCloseAfter)
    let a = path_get(&h, "a");
    assert!(
        a["readers"].as_array().unwrap().iter().any(|r| r["type"] == "rtmpConn"),
        "{}",
        a
    );
}

#[test]
fn srt_source_from_the_double_srt_server() {
    require_ffmpeg();
    let (h, dir) = start("src-srt");
    let _pub = sender(
        "mpegts",
        &format!("{}?streamid=publish:a", h.srt_url()),
        &dir.join("pub.log"),
    );
    wait_until(Duration::from_secs(15), "path a available", || {
        path_get(&h, "a")["available"] == true
    });
    add_path(&h, "b", json!({"source": format!("{}?streamid=read:a", h.srt_url())}));
    assert_pulled(&h, &dir, "srtSource");
}

#[test]
fn udp_mpegts_source_listens_on_its_address() {
    require_ffmpeg();
    let (h, dir) = start("src-udp");
    let port = free_udp_port();
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(r#"{"readTimeout": "2s"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    add_path(&h, "b", json!({"source": format!("udp://127.0.0.1:{}", port)}));
    let mut send = sender(
        "mpegts",
        &format!("udp://127.0.0.1:{}?pkt_size=1316", port),
        &dir.join("send.log"),
    );
    assert_pulled(&h, &dir, "mpegtsSource");
    // readTimeout: a silent source ends (and is retried later)
    send.interrupt_and_wait();
    wait_until(Duration::from_secs(10), "path b unavailable", || {
        path_get(&h, "b")["available"] == false
    });
}

#[test]
fn unix_mpegts_source_listens_on_its_socket() {
    require_ffmpeg();
    let (h, dir) = start("src-unix");
    let sock = dir.join("in.sock");
    add_path(&h, "b", json!({"source": format!("unix+mpegts://{}", sock.display())}));
    wait_until(Duration::from_secs(10), "the source's socket", || sock.exists());
    let _send = sender("mpegts", &format!("unix:{}", sock.display()), &dir.join("send.log"));
    assert_pulled(&h, &dir, "mpegtsSource");
}

#[test]
fn rtp_source_described_by_rtp_sdp() {
    require_ffmpeg();
    let (h, dir) = start("src-rtp");
    let port = free_udp_port();
    // the SDP's own address and port do not matter: the URL's do
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n";
    add_path(
        &h,
        "b",
        json!({"source": format!("udp+rtp://127.0.0.1:{}", port), "rtpSDP": sdp}),
    );
    let _send = sender(
        "rtp",
        &format!("rtp://127.0.0.1:{}?pkt_size=1200", port),
        &dir.join("send.log"),
    );
    assert_pulled(&h, &dir, "rtpSource");
}

/// Serves the files of `dir` over HTTP/1.0 (one request per connection) until the test ends.
fn file_server(dir: PathBuf) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut line = String::new();
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = BufReader::new(&c).read_line(&mut line);
            let name = line
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let resp = match std::fs::read(dir.join(name.replace("..", ""))) {
                Ok(body) => {
                    let mut r = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                Err(_) => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = c.write_all(&resp);
        }
    });
    port
}

#[test]
fn hls_source_from_http_server() {
    require_ffmpeg();
    let (h, dir) = start("src-hls");
    let hls = dir.join("hls");
    std::fs::create_dir_all(&hls).unwrap();
    let ok = Command::new("timeout")
        .args(["20", "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-t", "12"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "15"])
        .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "0"])
        .args(["-hls_playlist_type", "vod"])
        .arg(hls.join("index.m3u8"))
        .status()
        .expect("run ffmpeg");
    assert!(ok.success(), "ffmpeg -f hls failed");
    let port = file_server(hls);
    add_path(
        &h,
        "b",
        json!({"source": format!("http://127.0.0.1:{}/index.m3u8", port)}),
    );
    assert_pulled(&h, &dir, "hlsSource");
}

#[test]
fn source_types_of_static_sources_in_the_api() {
    let (h, _dir) = start("src-types");
    let sdp = "v=0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    for (name, source, typ) in [
        ("t1", "rtsp://127.0.0.1:1/x", "rtspSource"),
        ("t2", "rtmp://127.0.0.1:1/x", "rtmpSource"),
        ("t3", "http://127.0.0.1:1/x.m3u8", "hlsSource"),
        ("t4", "udp+mpegts://127.0.0.1:1", "mpegtsSource"),
        ("t5", "srt://127.0.0.1:1?streamid=read:x", "srtSource"),
        ("t6", "udp+rtp://127.0.0.1:1", "rtpSource"),
    ] {
        // on demand: nothing is pulled until a reader comes
        let mut conf = json!({"source": source, "sourceOnDemand": true});
        if typ == "rtpSource" {
            conf["rtpSDP"] = json!(sdp);
        }
        add_path(&h, name, conf);
        let p = path_get(&h, name);
        assert_eq!(p["source"]["type"], typ, "{}: {}", source, p);
        assert_eq!(p["available"], false, "{}", p);
    }
}
