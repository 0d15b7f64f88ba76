//! maxReaders: readers beyond it are refused at SETUP like MediaMTX's path.addReaderPost
//! (400, `maximum reader count reached` in the log).

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends one request on `s` and returns the response head, which must come.
fn request(s: &mut TcpStream, req: &str) -> String {
    let head = rtsp::rtsp_req(s, req);
    assert!(
        head.ends_with("\r\n\r\n"),
        "closed while waiting for the answer to {:?}: {:?}",
        req,
        head
    );
    head
}

/// DESCRIBE + SETUP (+ PLAY when `play`); returns the connection and the SETUP status line.
fn reader(port: u16, path: &str, play: bool) -> (TcpStream, String) {
    let url = rtsp::url(port, path);
    let mut s = rtsp::connect(port, Duration::from_secs(10));
    let d = request(&mut s, &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url));
    assert!(d.starts_with("RTSP/1.0 200"), "{}", d);
    let setup = request(
        &mut s,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            url
        ),
    );
    let status = setup.lines().next().unwrap().to_string();
    if play && status.contains(" 200 ") {
        let session = rtsp::session_of(&setup).expect("a session");
        let p = request(
            &mut s,
            &format!("PLAY {} RTSP/1.0\r\nCSeq: 3\r\nSession: {}\r\n\r\n", url, session),
        );
        assert!(p.starts_with("RTSP/1.0 200"), "{}", p);
    }
    (s, status)
}

#[test]
fn max_readers_refuses_extra_readers() {
    require_ffmpeg();
    let (h, dir) = start("max-readers");
    add_path(&h, "cam", &json!({"maxReaders": 1}));
    let _pubp = publish(&h, &dir, "cam");
    let path = || path_get(&h, "cam");

    // a reader counts from its first SETUP (MediaMTX's addReader), before any PLAY
    let (set_up_only, status) = reader(h.rtsp_port, "cam", false);
    assert_eq!(status, "RTSP/1.0 200 OK");
    let (_second, status) = reader(h.rtsp_port, "cam", false);
    assert_eq!(status, "RTSP/1.0 400 Bad Request");
    drop(set_up_only);

    // the set-up reader's departure frees its place (its connection closes asynchronously)
    let mut first = None;
    wait_until(
        Duration::from_secs(5),
        "room again after the set-up reader left",
        || {
            let (s, status) = reader(h.rtsp_port, "cam", true);
            first = (status == "RTSP/1.0 200 OK").then_some(s);
            first.is_some()
        },
    );
    wait_until(Duration::from_secs(5), "one reader", || {
        path()["readers"].as_array().map(|a| a.len()) == Some(1)
    });
    let (_second, status) = reader(h.rtsp_port, "cam", false);
    assert_eq!(status, "RTSP/1.0 400 Bad Request");
    // the refusal closes the connection with path.addReaderPost's error
    wait_until(Duration::from_secs(5), "the refusal logged", || {
        log_of(&dir).contains("] closed: maximum reader count reached")
    });

    // once the first reader has gone there is room again
    drop(first);
    wait_until(Duration::from_secs(5), "no reader", || path()["readers"] == json!([]));
    let (_third, status) = reader(h.rtsp_port, "cam", false);
    assert_eq!(status, "RTSP/1.0 200 OK");
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// recordMaxPartSize: a part above it fails the recorder (formatFMP4Part.write), which
/// starts again after its 2 s pause; nothing of the too large part is written.
#[test]
fn record_max_part_size_fails_the_recorder() {
    require_ffmpeg();
    let (h, dir) = start("max-part-size");
    let body = json!({
        "record": true,
        "recordPath": "rec/%path/%Y-%m-%d_%H-%M-%S-%f",
        "recordMaxPartSize": "1KB",
    });
    add_path(&h, "cam", &body);
    let _pubp = spawn_cmd(
        &publisher_cmd(&format!("{}/cam", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    let log = || log_of(&dir);
    wait_until(Duration::from_secs(20), "two recorder failures", || {
        log().matches("reached maximum part size").count() >= 2
    });
    for f in files_under(&dir.join("rec")) {
        let len = std::fs::metadata(&f).unwrap().len();
        assert!(
            len < 2048,
            "{} holds {} bytes: a part above 1KB was written",
            f.display(),
            len
        );
    }
    // a limit above the parts: the recording goes on
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/cam", h.api_url()),
        Some(r#"{"recordMaxPartSize":"50M"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(Duration::from_secs(15), "a segment with media", || {
        files_under(&dir.join("rec"))
            .iter()
            .any(|f| std::fs::metadata(f).map(|m| m.len() > 4096).unwrap_or(false))
    });
}

/// pathConfCanBeUpdated: record*, forward and rpiCamera tuning changes are taken by a
/// live path; any other change closes it (the publisher is dropped).
#[test]
fn config_changes_recreate_paths_like_mediamtx() {
    require_ffmpeg();
    let (h, dir) = start("recreate");
    let a = h.api_url();
    let r = http("POST", &format!("{}/v3/config/paths/add/cam", a), Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let path = || http("GET", &format!("{}/v3/paths/get/cam", a), None).json();
    let patch = |b: &str| {
        let r = http("PATCH", &format!("{}/v3/config/paths/patch/cam", a), Some(b));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    // (change, path recreated)
    let cases: &[(&str, bool)] = &[
        (r#"{"recordDeleteAfter":"2d"}"#, false),
        (r#"{"recordSegmentDuration":"30m"}"#, false),
        (r#"{"rpiCameraBrightness":0.5}"#, false),
        (r#"{"maxReaders":5}"#, true),
        (r#"{"overridePublisher":false}"#, true),
        (r#"{"runOnReadRestart":true}"#, true),
    ];
    for (body, recreated) in cases {
        let pubp = publish(&h, &dir, "cam");
        let before = path()["availableTime"].clone();
        patch(body);
        std::thread::sleep(Duration::from_millis(500));
        let p = path();
        if *recreated {
            assert_eq!(p["available"], false, "{}: publisher kept", body);
        } else {
            assert_eq!(p["availableTime"], before, "{}: path recreated", body);
        }
        drop(pubp);
        wait_until(Duration::from_secs(5), "publisher gone", || {
            path()["available"] == false
        });
    }
}

/// inboundBytes counts received RTP packets (no RTCP, no interleaved header);
/// outboundBytes what is sent to each RTSP reader (RTP and RTCP, no header).
#[test]
fn byte_counters_like_mediamtx() {
    let (h, _dir) = start("byte-counters");
    let port = h.rtsp_port;
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==\r\na=control:trackID=0\r\n";
    let mut pb = rtsp::raw_publisher(port, "cam", sdp, "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
    let (mut rd, status) = reader(port, "cam", true);
    assert_eq!(status, "RTSP/1.0 200 OK");
    let path = || path_get(&h, "cam");
    wait_until(Duration::from_secs(5), "reader listed", || {
        path()["readers"].as_array().map(|a| a.len()) == Some(1)
    });
    // three RTP packets of 100 bytes, one RTCP packet of 28 bytes (the publisher's sender
    // report: not relayed, MediaMTX sends readers its own), then an IDR packet of 100
    // bytes, which the stream's first sender report (28 bytes) follows
    let packet = |seq: u16, nal: u8| {
        let mut pkt = vec![0x80, 96];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        pkt.extend_from_slice(&[nal; 88]);
        pkt
    };
    let mut sr = vec![0x80, 200, 0, 6];
    sr.extend_from_slice(&[0; 24]);
    let sent = [
        (0u8, packet(0, 0x41)),
        (0, packet(1, 0x41)),
        (0, packet(2, 0x41)),
        (1, sr),
        (0, packet(3, 0x65)),
    ];
    for (ch, p) in &sent {
        pb.write_all(&rtsp::interleaved(*ch, p)).unwrap();
    }
    // the reader receives the four RTP packets and the stream's report (4-byte header each)
    let mut got = vec![0u8; 4 * (100 + 4) + 28 + 4];
    rd.read_exact(&mut got).unwrap();
    assert_eq!(&got[got.len() - 32..got.len() - 26], &[b'$', 1, 0, 28, 0x80, 200]);
    wait_until(Duration::from_secs(5), "counters", || {
        let p = path();
        p["inboundBytes"] == 400 && p["outboundBytes"] == 428
    });
    let p = path();
    assert_eq!(p["bytesReceived"], 400);
    assert_eq!(p["bytesSent"], 428);
    assert_eq!(p["inboundFramesInError"], 0);
}
