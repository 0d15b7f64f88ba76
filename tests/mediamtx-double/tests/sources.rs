//! Static sources other than RTSP, pulled from real senders: RTMP and SRT from the double's
//! own servers, MPEG-TS over UDP from an ffmpeg sender, HLS from a tiny HTTP server, RTP
//! described by `rtpSDP`; each path is read back over RTSP with ffprobe, and its
//! `source.type` checked in /v3/paths/get. Also: an RTSP source silent for `readTimeout`
//! ends.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// ffmpeg sending H.264 (320x240) in `format` to `url`, in real time.
fn sender(format: &str, url: &str, log: &Path) -> Proc {
    spawn_cmd(&sender_cmd(format, url, "320x240"), log)
}

/// ffprobe of path `b` over RTSP; on failure, the source's log tells why.
fn probe_b(h: &mediamtx_double::Handle, dir: &Path) -> Value {
    probe_stream(&format!("{}/b", h.rtsp_url()), &[]).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("logs/b-source.log")).unwrap_or_default();
        panic!("ffprobe: {}\nsource log: {}", e, log)
    })
}

/// Waits for path `b` to be available, then checks its source type and its media.
fn assert_pulled(h: &mediamtx_double::Handle, dir: &Path, source_type: &str) {
    wait_until(Duration::from_secs(15), "path b available", || {
        path_get(h, "b")["available"] == true
    });
    let p = path_get(h, "b");
    assert_eq!(p["source"], json!({"type": source_type, "id": ""}), "{}", p);
    assert_h264(&probe_b(h, dir), 320, 240);
}

#[test]
fn rtmp_source_from_the_double_rtmp_server() {
    require_ffmpeg();
    let (h, dir) = start("src-rtmp");
    let _pub = sender("flv", &format!("{}/a", h.rtmp_url()), &dir.join("pub.log"));
    wait_available(&h, "a");
    // on demand: pulled only once a reader asks for b
    add_path(
        &h,
        "b",
        &json!({"source": format!("{}/a", h.rtmp_url()), "sourceOnDemand": true}),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(path_get(&h, "b")["available"], false);
    assert_eq!(path_get(&h, "a")["readers"], json!([]));
    assert_h264(&probe_b(&h, &dir), 320, 240);
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
    wait_available(&h, "a");
    add_path(&h, "b", &json!({"source": format!("{}?streamid=read:a", h.srt_url())}));
    assert_pulled(&h, &dir, "srtSource");
}

#[test]
fn udp_mpegts_source_listens_on_its_address() {
    require_ffmpeg();
    let (h, dir) = start("src-udp");
    let port = free_udp_port();
    patch_global(&h, r#"{"readTimeout": "2s"}"#);
    add_path(&h, "b", &json!({"source": format!("udp://127.0.0.1:{}", port)}));
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
    add_path(&h, "b", &json!({"source": format!("unix+mpegts://{}", sock.display())}));
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
        &json!({"source": format!("udp+rtp://127.0.0.1:{}", port), "rtpSDP": sdp}),
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
        &json!({"source": format!("http://127.0.0.1:{}/index.m3u8", port)}),
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
        add_path(&h, name, &conf);
        let p = path_get(&h, name);
        assert_eq!(p["source"]["type"], typ, "{}: {}", source, p);
        assert_eq!(p["available"], false, "{}", p);
    }
}

#[test]
fn rtsp_source_silent_for_read_timeout_ends() {
    require_ffmpeg();
    // the upstream: another double that keeps a silent publisher for a minute
    let (up, up_dir) = start("src-silent-up");
    patch_global(&up, json!({"readTimeout": "60s"}));
    let publisher = publish(&up, &up_dir, "cam");
    let (h, dir) = start("src-silent");
    patch_global(&h, json!({"readTimeout": "2s"}));
    add_path(&h, "b", &json!({"source": format!("{}/cam", up.rtsp_url())}));
    wait_available(&h, "b");
    // the publisher stops sending but keeps its connection, like a source behind a lost
    // network: the source's ffmpeg must give up by itself after readTimeout (not only lose
    // its relay into the double) and be started again after MediaMTX's 5 s pause
    unsafe {
        libc::kill(publisher.pid(), libc::SIGSTOP);
    }
    wait_until(Duration::from_secs(8), "the silent source ended", || {
        path_get(&h, "b")["available"] == false
    });
    wait_until(Duration::from_secs(15), "the source retried", || {
        log_of(&dir).matches("path b: started source pid").count() >= 2
    });
    assert_eq!(
        path_get(&up, "cam")["available"],
        true,
        "the upstream kept its publisher"
    );
    unsafe {
        libc::kill(publisher.pid(), libc::SIGCONT);
    }
    wait_available(&h, "b");
}
