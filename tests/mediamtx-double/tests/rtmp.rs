//! The RTMP server with real clients: ffmpeg publishes H.264 + AAC over RTMP, ffprobe
//! reads it back over RTSP and RTMP, `/v3/rtmpconns/*` show and kick the connections,
//! and MediaMTX's refusals (authentication, unknown path, source not publisher).

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

fn publish_cmd(url: &str) -> String {
    format!(
        "ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=15 \
         -f lavfi -i sine=frequency=440:sample_rate=44100 -c:v libx264 -preset ultrafast -tune zerolatency \
         -g 8 -c:a aac -b:a 64k -f flv {}",
        url
    )
}

/// ffprobe's streams of a URL as (codec_name, width, height); the run is bounded.
fn probe(url: &str) -> Vec<(String, u64, u64)> {
    let mut args = vec!["-v", "error", "-rw_timeout", "10000000", "-of", "json", "-show_streams"];
    if url.starts_with("rtsp://") {
        args.extend(["-rtsp_transport", "tcp"]);
    }
    let out = Command::new("timeout")
        .args(["15", "ffprobe"])
        .args(&args)
        .arg(url)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!({}));
    let mut s: Vec<(String, u64, u64)> = v["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("ffprobe {}: {}", url, String::from_utf8_lossy(&out.stderr)))
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or("").to_string(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    s.sort();
    s
}

fn conns(h: &mediamtx_double::Handle) -> Vec<Value> {
    let r = http("GET", &format!("{}/v3/rtmpconns/list", h.api_url()), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn rtmp_publish_and_read_back() {
    require_ffmpeg();
    let (h, dir) = start("rtmp");
    let mut publisher = publish(&h, &dir, "mypath?token=abc");
    let list = conns(&h);
    assert_eq!(list.len(), 1, "{:?}", list);
    let pubc = &list[0];
    assert_eq!(pubc["state"], "publish");
    assert_eq!(pubc["path"], "mypath");
    assert_eq!(pubc["query"], "token=abc");
    assert!(pubc["bytesReceived"].as_u64().unwrap() > 0);
    let p = path_get(&h, "mypath");
    assert_eq!(p["source"], json!({"type": "rtmpConn", "id": pubc["id"]}));
    let mut tracks: Vec<&str> = p["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    tracks.sort();
    assert_eq!(tracks, ["H264", "MPEG-4 Audio"]);
    assert_eq!(p["readers"], json!([]), "the internal relay is no reader");
    // logged by the connection that publishes, not by the relay's RTSP session
    let log = log_of(&dir);
    let by_conn = format!(
        "INF [RTMP] [conn {}] is publishing to path 'mypath'",
        pubc["remoteAddr"].as_str().unwrap()
    );
    assert!(log.lines().any(|l| l.ends_with(&by_conn)), "{}\n{}", by_conn, log);
    assert!(!log.contains("[RTSP] [session"), "{}", log);

    // read back over RTSP and RTMP
    let want = vec![("aac".to_string(), 0, 0), ("h264".to_string(), 320, 240)];
    assert_eq!(probe(&format!("{}/mypath", h.rtsp_url())), want);
    assert_eq!(probe(&format!("{}/mypath", h.rtmp_url())), want);
    publisher.interrupt_and_wait();
}

#[test]
fn rtmp_publisher_kicked_then_republishing_at_once() {
    require_ffmpeg();
    let (h, dir) = start("rtmp-kick");
    let mut publisher = publish(&h, &dir, "mypath");
    let pubc = conns(&h)[0].clone();
    // kicking the publisher ends the stream at once; publishing again right away works
    let id = pubc["id"].as_str().unwrap();
    let r = http("POST", &format!("{}/v3/rtmpconns/kick/{}", h.api_url(), id), None);
    assert_eq!(r.status, 200);
    wait_until(Duration::from_secs(10), "stream gone", || {
        path_get(&h, "mypath")["available"] != true && conns(&h).is_empty()
    });
    publisher.interrupt_and_wait();
    // MediaMTX cancels a kicked connection: `terminated`
    let closed = format!(
        "INF [RTMP] [conn {}] closed: terminated",
        pubc["remoteAddr"].as_str().unwrap()
    );
    wait_until(Duration::from_secs(5), &closed, || log_of(&dir).contains(&closed));
    let mut again = publish(&h, &dir, "mypath");
    assert_ne!(path_get(&h, "mypath")["source"]["id"], pubc["id"]);
    // so is every connection of a server that closes (here for a changed readTimeout)
    let remote = conns(&h)[0]["remoteAddr"].as_str().unwrap().to_string();
    patch_global(&h, r#"{"readTimeout": "9s"}"#);
    let closed = format!("INF [RTMP] [conn {}] closed: terminated", remote);
    wait_until(Duration::from_secs(5), &closed, || log_of(&dir).contains(&closed));
    again.interrupt_and_wait();
}

/// Starts an RTMP publisher of H.264 + AAC and waits until its path is available.
fn publish(h: &mediamtx_double::Handle, dir: &std::path::Path, path_query: &str) -> Proc {
    let name = path_query.split('?').next().unwrap();
    let log = dir.join(format!(
        "publisher-{}.log",
        COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let p = spawn_cmd(&publish_cmd(&format!("{}/{}", h.rtmp_url(), path_query)), &log);
    wait_until(Duration::from_secs(15), "RTMP publisher available", || {
        path_get(h, name)["available"] == true
    });
    p
}

static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[test]
fn rtmp_reader_listed_hooked_and_kicked() {
    require_ffmpeg();
    let spec = load_spec();
    let (h, dir) = start("rtmp-reader");
    // hooks see the RTMP connection and reader types
    let hook = |var: &str, file: &str| {
        format!(
            "sh -c 'echo ${} ${} >> {}'",
            var,
            var.replace("TYPE", "ID"),
            dir.join(file).display()
        )
    };
    for (url, body) in [
        (
            "config/global/patch",
            json!({"runOnConnect": hook("MTX_CONN_TYPE", "conn.txt")}),
        ),
        (
            "config/pathdefaults/patch",
            json!({"runOnRead": hook("MTX_READER_TYPE", "read.txt"), "maxReaders": 1}),
        ),
    ] {
        let r = http("PATCH", &format!("{}/v3/{}", h.api_url(), url), Some(&body.to_string()));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut publisher = publish(&h, &dir, "mypath");
    let pub_id = path_get(&h, "mypath")["source"]["id"].as_str().unwrap().to_string();
    let mut reader = spawn_cmd(
        &format!(
            "ffmpeg -nostdin -hide_banner -loglevel error -i {}/mypath -c copy -f null -",
            h.rtmp_url()
        ),
        &dir.join("reader.log"),
    );
    let mut rid = String::new();
    wait_until(Duration::from_secs(10), "RTMP reader listed", || {
        let l = conns(&h);
        match l.iter().find(|c| c["state"] == "read") {
            Some(c) => {
                rid = c["id"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    wait_until(Duration::from_secs(10), "reader receives data", || {
        let r = http("GET", &format!("{}/v3/rtmpconns/get/{}", h.api_url(), rid), None);
        r.json()["bytesSent"].as_u64().unwrap_or(0) > 10_000
    });
    assert_eq!(
        path_get(&h, "mypath")["readers"],
        json!([{"type": "rtmpConn", "id": rid}])
    );
    for (tpl, url) in [
        ("/v3/rtmpconns/list", format!("{}/v3/rtmpconns/list", h.api_url())),
        (
            "/v3/rtmpconns/get/{id}",
            format!("{}/v3/rtmpconns/get/{}", h.api_url(), rid),
        ),
    ] {
        check_response(&spec, tpl, "GET", &http("GET", &url, None));
    }
    let read_hook = format!("rtmpConn {}", rid);
    wait_until(Duration::from_secs(10), "runOnRead ran with rtmpConn", || {
        std::fs::read_to_string(dir.join("read.txt")).is_ok_and(|t| t.lines().any(|l| l == read_hook))
    });
    let conns_seen = std::fs::read_to_string(dir.join("conn.txt")).unwrap_or_default();
    assert!(
        conns_seen.lines().any(|l| l == format!("rtmpConn {}", pub_id)),
        "{}",
        conns_seen
    );
    // maxReaders 1: a second reader is refused
    assert_read_refused(&h, &dir, "mypath", "maximum reader count reached");
    let r = http("POST", &format!("{}/v3/rtmpconns/kick/{}", h.api_url(), rid), None);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    wait_until(Duration::from_secs(10), "kicked reader gone", || {
        conns(&h).len() == 1 && path_get(&h, "mypath")["readers"] == json!([])
    });
    assert!(reader.interrupt_and_wait().is_some());
    publisher.interrupt_and_wait();
}

#[test]
fn rtmp_api_errors_and_disabled() {
    let (h, _dir) = start("rtmp-api");
    let api = h.api_url();
    for (m, p, code, err) in [
        ("GET", "get/abc", 400, "invalid UUID length: 3"),
        (
            "GET",
            "get/0f9e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5fx",
            400,
            "invalid UUID format",
        ),
        (
            "GET",
            "get/0f9e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
            404,
            "connection not found",
        ),
        (
            "POST",
            "kick/0f9e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
            404,
            "connection not found",
        ),
    ] {
        let r = http(m, &format!("{}/v3/rtmpconns/{}", api, p), None);
        assert_eq!(
            (r.status, r.json()),
            (code, json!({"status": "error", "error": err})),
            "{} {}",
            m,
            p
        );
    }
    assert_eq!(
        http("GET", &format!("{}/v3/rtmpconns/list", api), None).json(),
        json!({"itemCount": 0, "pageCount": 0, "items": []})
    );
    patch_global(&h, r#"{"rtmp": false}"#);
    let r = http("GET", &format!("{}/v3/rtmpconns/list", api), None);
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"));
    // no listener either, until the server is back
    let addr = format!("127.0.0.1:{}", h.rtmp_port);
    wait_until(Duration::from_secs(5), "RTMP port closed", || {
        std::net::TcpStream::connect(&addr).is_err()
    });
    patch_global(&h, r#"{"rtmp": true}"#);
    wait_until(Duration::from_secs(5), "RTMP port open again", || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
}

/// An RTMP read of `path` fails (bounded), and the double logged `why`.
fn assert_read_refused(h: &mediamtx_double::Handle, dir: &std::path::Path, path: &str, why: &str) {
    let out = Command::new("timeout")
        .args(["15", "ffprobe", "-v", "error", &format!("{}/{}", h.rtmp_url(), path)])
        .output()
        .expect("ffprobe");
    assert!(!out.status.success(), "{} was read", path);
    let log = log_of(dir);
    assert!(log.contains(why), "{}", log);
}

/// Runs an ffmpeg RTMP publisher that is expected to be refused: it must exit with an
/// error (bounded), its stderr is returned.
fn refused_publish(url: &str) -> String {
    let out = Command::new("timeout")
        .args([
            "20",
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
        ])
        .args([
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg");
    assert!(!out.status.success(), "{} was not refused", url);
    assert_ne!(out.status.code(), Some(124), "{} hung", url);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A double with only two paths: `cam` (publisher) and `pulled` (a source elsewhere).
fn start_with_cam_and_pulled(tag: &str) -> (mediamtx_double::Handle, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let mut o = mediamtx_double::Options::new(&dir);
    o.all_others = false;
    o.paths = vec![
        ("cam".into(), json!({})),
        ("pulled".into(), json!({"source": "rtsp://127.0.0.1:9/none"})),
    ];
    (mediamtx_double::start(o).unwrap(), dir)
}

#[test]
fn rtmp_refusals() {
    require_ffmpeg();
    let (h, dir) = start_with_cam_and_pulled("rtmp-refuse");
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "any", "ips": ["127.0.0.1/32"], "permissions": [{"action": "api"}]},
            {"user": "pub", "pass": "secret", "permissions": [{"action": "publish"}, {"action": "read"}]},
        ]}),
    );
    let base = h.rtmp_url();
    let e = refused_publish(&format!("{}/cam?user=pub&pass=wrong", base));
    assert!(e.contains("authentication failed"), "{}", e);
    refused_publish(&format!("{}/nope?user=pub&pass=secret", base));
    refused_publish(&format!("{}/pulled?user=pub&pass=secret", base));
    let log = log_of(&dir);
    assert!(log.contains("path 'nope' is not configured"), "{}", log);
    assert!(
        log.contains("can't publish to path 'pulled' since 'source' is not 'publisher'"),
        "{}",
        log
    );
    // reading with wrong credentials: NetStream.Play.Failed
    let out = Command::new("timeout")
        .args(["15", "ffprobe", "-v", "error", &format!("{}/cam?user=pub&pass=x", base)])
        .output()
        .expect("ffprobe");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the refused connections leave the list once the server has seen them close
    wait_until(Duration::from_secs(10), "no RTMP connection listed", || {
        items(&h, "/v3/rtmpconns/list").is_empty()
    });
}

#[test]
fn rtmps_strict_publish_and_read() {
    require_ffmpeg();
    let (h, dir) = start("rtmps");
    // server.key and server.crt in the double's directory: rtmpServerKey/Cert's defaults
    self_signed(&dir);
    let api = h.api_url();
    patch_global(&h, r#"{"rtmpEncryption": "strict"}"#);
    // strict: the RTMP server is gone, the RTMPS one runs
    assert_eq!(http("GET", &format!("{}/v3/rtmpconns/list", api), None).status, 404);
    refused_publish(&format!("{}/plain", h.rtmp_url()));

    let mut publisher = spawn_cmd(&publish_cmd(&format!("{}/secure", h.rtmps_url())), &dir.join("pub.log"));
    wait_until(Duration::from_secs(15), "RTMPS publisher available", || {
        path_get(&h, "secure")["available"] == true
    });
    let r = http("GET", &format!("{}/v3/rtmpsconns/list", api), None);
    check_response(&load_spec(), "/v3/rtmpsconns/list", "GET", &r);
    let items = r.json()["items"].as_array().cloned().unwrap();
    assert_eq!(items.len(), 1, "{:?}", items);
    assert_eq!(
        (items[0]["state"].as_str(), items[0]["path"].as_str()),
        (Some("publish"), Some("secure"))
    );
    assert_eq!(
        path_get(&h, "secure")["source"],
        json!({"type": "rtmpsConn", "id": items[0]["id"]})
    );
    let want = vec![("aac".to_string(), 0, 0), ("h264".to_string(), 320, 240)];
    assert_eq!(probe(&format!("{}/secure", h.rtmps_url())), want);
    let r = http(
        "POST",
        &format!("{}/v3/rtmpsconns/kick/{}", api, items[0]["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(Duration::from_secs(10), "RTMPS publisher kicked", || {
        path_get(&h, "secure")["available"] != true
    });
    publisher.interrupt_and_wait();
}

#[test]
fn rtmp_reader_starts_on_demand() {
    require_ffmpeg();
    let (h, dir) = start("rtmp-ondemand");
    let body = json!({
        "runOnDemand": publisher_cmd("rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH", "160x120"),
        "runOnDemandStartTimeout": "15s",
        "runOnDemandCloseAfter": "1s",
    });
    add_path(&h, "od", &body);
    assert_eq!(
        probe(&format!("{}/od", h.rtmp_url())),
        vec![("h264".to_string(), 160, 120)]
    );
    // nothing to read elsewhere: refused at once
    assert_read_refused(&h, &dir, "nobody", "no stream is available on path 'nobody'");
    wait_until(Duration::from_secs(10), "on-demand command stopped", || {
        path_get(&h, "od")["available"] != true
    });
}

/// The RTMP handshake of a client: C0 C1, then S0 S1 S2 (version 3), then C2 (S1 echoed).
fn client_handshake(s: &mut std::net::TcpStream) {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    s.write_all(&c0c1).unwrap();
    let mut s012 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s012).unwrap();
    assert_eq!(s012[0], 3);
    s.write_all(&s012[1..1537]).unwrap();
}

/// Reads until the server closes the connection; false if it is still open after `bound`.
fn closed_within(mut s: std::net::TcpStream, bound: Duration) -> bool {
    use std::io::Read;
    let t0 = std::time::Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < bound {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn rtmp_silent_client_closed_after_read_timeout() {
    let (h, dir) = start("rtmp-silent");
    patch_global(&h, r#"{"readTimeout":"1s"}"#);
    let addr = h.rtmp_url().trim_start_matches("rtmp://").to_string();

    // a client that only connects
    let s = std::net::TcpStream::connect(&addr).unwrap();
    let (me, server) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
    // the bound is under the default readTimeout (10s): only the 1s setting closes it
    assert!(closed_within(s, Duration::from_secs(7)), "silent client still open");
    // logged with Go's text for the read deadline
    let want = format!(
        "INF [RTMP] [conn {}] closed: read tcp {}->{}: i/o timeout",
        me, server, me
    );
    wait_until(Duration::from_secs(5), &want, || log_of(&dir).contains(&want));

    // a client that completes the handshake (C0 C1 / S0 S1 S2 / C2), then goes silent
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    client_handshake(&mut s);
    assert!(closed_within(s, Duration::from_secs(7)), "silent client still open");
    wait_until(Duration::from_secs(5), "no RTMP conns", || conns(&h).is_empty());
}

/// AMF0 pieces for a hand-made RTMP client.
fn amf_str(s: &str) -> Vec<u8> {
    let mut v = vec![2];
    v.extend_from_slice(&(s.len() as u16).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

fn amf_num(n: f64) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// A command message (type 20) in one chunk (fmt 0, chunk stream 3; bodies < 128 bytes).
fn command_chunk(stream: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    assert!(body.len() <= 128);
    let mut v = vec![3, 0, 0, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.push(20);
    v.extend_from_slice(&stream.to_le_bytes());
    v.extend_from_slice(&body);
    v
}

/// A raw RTMP reader that plays and never reads, with a small writeQueueSize: what does
/// not fit in the queue (the relay's first burst already) is discarded and counted in
/// `outboundFramesDiscarded` (stream.Reader), and the reader is not closed for it.
/// (On loopback the kernel grows the send buffer to MBs, so a write blocking for
/// writeTimeout is not reached within this test's time.)
#[test]
fn rtmp_stalled_reader_queue_discards() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    require_ffmpeg();
    let (h, dir) = start("rtmp-stall");
    patch_global(&h, r#"{"writeQueueSize":16}"#);
    // 16 Mbit/s (x264 CBR filler, cheap to encode): a reader that stops reading fills the
    // server's socket buffers within seconds, whatever the kernel lets them grow to
    let cbr = publish_cmd(&format!("{}/mypath", h.rtmp_url())).replace(
        "-g 8",
        "-g 8 -b:v 16M -minrate 16M -maxrate 16M -bufsize 2M -x264-params nal-hrd=cbr:filler=1",
    );
    let mut publisher = spawn_cmd(&cbr, &dir.join("publisher-cbr.log"));
    wait_until(Duration::from_secs(15), "RTMP publisher available", || {
        path_get(&h, "mypath")["available"] == true
    });
    let addr = h.rtmp_url().trim_start_matches("rtmp://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    // a small receive buffer: the stall is felt soon
    let small: libc::c_int = 4096;
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    connect_and_create_stream(&mut s, &addr);
    s.write_all(&command_chunk(
        1,
        &[amf_str("play"), amf_num(3.0), vec![5], amf_str("mypath")],
    ))
    .unwrap();
    // from here on nothing is read
    let reader = || conns(&h).into_iter().find(|c| c["state"] == "read");
    wait_until(Duration::from_secs(30), "stalled reader discarding", || {
        reader().is_some_and(|c| c["outboundFramesDiscarded"].as_u64() > Some(0))
    });
    let id = reader().expect("reader still listed")["id"].clone();
    assert_eq!(
        path_get(&h, "mypath")["readers"],
        json!([{"type": "rtmpConn", "id": id}])
    );
    drop(s);
    publisher.interrupt_and_wait();
}

/// An RTMP reader (legacy, as ffmpeg's) gets what rtmp.FromStream takes: one H.264 and
/// one audio track, the others skipped with a warning; a stream with none of its codecs
/// is refused with MediaMTX's error.
#[test]
fn rtmp_readers_get_the_tracks_flv_takes() {
    require_ffmpeg();
    let (h, dir) = start("rtmp-tracks");
    let _publishers = publish_mixed_and_vp8(&h, &dir);
    wait_available(&h, "mixed");
    wait_available(&h, "vp8");

    // H.264 with G.722: the reader gets the video only
    assert_eq!(
        probe(&format!("{}/mixed", h.rtmp_url())),
        [("h264".to_string(), 160, 120)]
    );
    let log = log_of(&dir);
    let reader = |end: &str| {
        log.lines()
            .any(|l| l.contains("[RTMP] [conn 127.0.0.1:") && l.ends_with(end))
    };
    assert!(reader("] skipping track 2 (G722)"), "{}", log);
    assert!(reader("] is reading from path 'mixed', 1 track (H264)"), "{}", log);

    // VP8 alone: nothing FLV takes
    let st = Command::new("timeout")
        .args(["15", "ffprobe", "-v", "error", "-rw_timeout", "10000000"])
        .arg(format!("{}/vp8", h.rtmp_url()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!st.status.success());
    let why = "closed: the stream doesn't contain any supported codec, which are currently AV1, VP9, H265, H264, Opus, FLAC, MPEG-4 Audio (AAC), MPEG-1/2 Audio (MP3), AC-3, G711, LPCM";
    wait_until(Duration::from_secs(5), why, || {
        log_of(&dir)
            .lines()
            .any(|l| l.contains("[RTMP] [conn ") && l.ends_with(why))
    });
    assert!(!log_of(&dir).contains("is reading from path 'vp8'"));
}

/// The handshake, `connect` (app "", tcUrl of `addr`) and `createStream` (stream 1) of a
/// hand-made client.
fn connect_and_create_stream(s: &mut std::net::TcpStream, addr: &str) {
    use std::io::Write;
    client_handshake(s);
    let tc_url = format!("rtmp://{}/", addr);
    let connect = [
        amf_str("connect"),
        amf_num(1.0),
        vec![3],
        (3u16).to_be_bytes().to_vec(),
        b"app".to_vec(),
        amf_str(""),
        (5u16).to_be_bytes().to_vec(),
        b"tcUrl".to_vec(),
        amf_str(&tc_url),
        vec![0, 0, 9],
    ];
    s.write_all(&command_chunk(0, &connect)).unwrap();
    s.write_all(&command_chunk(0, &[amf_str("createStream"), amf_num(2.0), vec![5]]))
        .unwrap();
}

/// A message of `typ` on chunk stream 4, message stream 1, in one chunk (fmt 0).
fn media_chunk(typ: u8, ts: u32, body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= 128);
    let mut v = vec![4];
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.push(typ);
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// A hand-made RTMP client that connected, created its stream and sent `publish` for
/// `path`.
fn raw_publisher(h: &mediamtx_double::Handle, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let addr = h.rtmp_url().trim_start_matches("rtmp://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    connect_and_create_stream(&mut s, &addr);
    let publish = [
        amf_str("publish"),
        amf_num(3.0),
        vec![5],
        amf_str(path),
        amf_str("live"),
    ];
    s.write_all(&command_chunk(1, &publish)).unwrap();
    s
}

/// MediaMTX reads a publisher's tracks first (gortmplib's Reader: 2 s of media by DTS)
/// and only then asks the path to take it, so a path that refuses publishers closes the
/// connection after those 2 s; media that make no track end it with `no tracks found`;
/// a message gortmplib does not take (an AMF3 command) ends it with its error. What is
/// kept meanwhile is bounded (the double's 64 MiB).
#[test]
fn rtmp_publisher_tracks_are_read_before_the_path_refuses() {
    use std::io::Write;
    let (h, dir) = start_with_cam_and_pulled("rtmp-tracks");
    let closed = |why: &str| {
        let want = format!("] closed: {}\n", why);
        wait_until(Duration::from_secs(5), &want.clone(), || log_of(&dir).contains(&want));
    };

    let mut s = raw_publisher(&h, "pulled");
    s.write_all(&media_chunk(8, 0, &[0xaf, 0, 0x12, 0x10])).unwrap();
    for ts in [500, 1000, 1500, 1999] {
        s.write_all(&media_chunk(8, ts, &[0xaf, 1, 0x21])).unwrap();
    }
    assert!(
        !closed_within(s.try_clone().unwrap(), Duration::from_secs(1)),
        "refused before 2 s of media"
    );
    s.write_all(&media_chunk(8, 2000, &[0xaf, 1, 0x21])).unwrap();
    assert!(
        closed_within(s, Duration::from_secs(5)),
        "not refused after 2 s of media"
    );
    closed("can't publish to path 'pulled' since 'source' is not 'publisher'");

    let mut s = raw_publisher(&h, "cam");
    for ts in [0, 1000, 2000] {
        s.write_all(&media_chunk(9, ts, &[0x27, 1, 0, 0, 0, 1])).unwrap();
    }
    assert!(closed_within(s, Duration::from_secs(5)));
    closed("no tracks found");

    // media whose DTS does not advance: the double keeps at most 64 MiB of them
    let mut s = raw_publisher(&h, "cam");
    let mut frame = vec![0xaf, 1];
    frame.resize(128, 0x21);
    let burst: Vec<u8> = (0..1024).flat_map(|_| media_chunk(8, 0, &frame)).collect();
    for _ in 0..(64 << 20) / (128 * 1024) + 1 {
        if s.write_all(&burst).is_err() {
            break;
        }
    }
    assert!(closed_within(s, Duration::from_secs(10)));
    closed("too much data before the tracks were read (the double's bound: 64 MiB)");

    let mut s = raw_publisher(&h, "cam");
    s.write_all(&media_chunk(17, 0, &[0, 2, 0, 1, b'x'])).unwrap();
    assert!(closed_within(s, Duration::from_secs(5)));
    closed("invalid message type: 17");
    assert_eq!(path_get(&h, "cam")["available"], false);
}
