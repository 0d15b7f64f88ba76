//! The double's SRT server with real libsrt clients (ffmpeg/ffprobe `srt://`): publish,
//! read back over RTSP and SRT, `/v3/srtconns`, kick, refusals, passphrases.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// ffmpeg publishing H.264 (`size`) in MPEG-TS to the double's SRT URL with `query`;
/// returns once `path` is available.
fn srt_publish(h: &mediamtx_double::Handle, dir: &Path, query: &str, size: &str, path: &str) -> Proc {
    let url = format!("{}?{}", h.srt_url(), query);
    let p = spawn_cmd(&sender_cmd("mpegts", &url, size), &dir.join("pub.log"));
    wait_available(h, path);
    p
}

/// ffprobe of the first video stream (bounded by a hang limit).
fn probe(url: &str) -> Result<Value, String> {
    // MPEG-TS is probed for 5 s by default; a second is plenty here
    probe_stream(url, &["-analyzeduration", "1000000"])
}

/// An ffmpeg SRT reader kept open (copying to nowhere) while the test looks at the API.
fn srt_reader(url: &str, log: &Path) -> Proc {
    spawn_cmd(
        &format!(
            "ffmpeg -nostdin -hide_banner -loglevel warning -i {} -c copy -f null -",
            url
        ),
        log,
    )
}

fn conns(h: &mediamtx_double::Handle) -> Vec<Value> {
    let r = http("GET", &format!("{}/v3/srtconns/list", h.api_url()), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn srt_publish_read_list_and_kick() {
    require_ffmpeg();
    let spec = load_spec();
    let (h, dir) = start("srt");
    let t0 = std::time::Instant::now();
    let mut publisher = srt_publish(&h, &dir, "streamid=publish:mystream:q=1", "320x240", "mystream");
    let p = path_get(&h, "mystream");
    assert_eq!(p["source"]["type"], "srtConn", "{}", p);
    assert_eq!(p["tracks2"][0]["codec"], "H264");
    let list = conns(&h);
    assert_eq!(list.len(), 1, "{:?}", list);
    let pub_id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(p["source"]["id"], pub_id.as_str());
    assert_eq!(list[0]["state"], "publish");
    assert_eq!(list[0]["path"], "mystream");
    assert_eq!(list[0]["query"], "q=1");
    assert!(list[0]["remoteAddr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(list[0]["bytesReceived"].as_u64().unwrap() > 0);
    assert!(list[0]["packetsSentACK"].as_u64().unwrap() > 0);
    assert!(list[0]["msRTT"].as_f64().unwrap() > 0.0, "RTT from ACKACK: {}", list[0]);
    eprintln!("published after {:?}", t0.elapsed());

    // read back over RTSP and over SRT; the relays are no readers of the path
    assert_h264(&probe(&format!("{}/mystream", h.rtsp_url())).unwrap(), 320, 240);
    eprintln!("rtsp probe after {:?}", t0.elapsed());
    assert_h264(
        &probe(&format!("{}?streamid=read:mystream", h.srt_url())).unwrap(),
        320,
        240,
    );
    eprintln!("srt probe after {:?}", t0.elapsed());
    let _reader = srt_reader(
        &format!("{}?streamid=read:mystream", h.srt_url()),
        &dir.join("reader.log"),
    );
    wait_until(Duration::from_secs(10), "SRT reader listed", || {
        path_get(&h, "mystream")["readers"].as_array().map(|a| a.len()) == Some(1)
    });
    let p = path_get(&h, "mystream");
    assert_eq!(p["readers"][0]["type"], "srtConn", "{}", p);
    let reader_id = p["readers"][0]["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(10), "bytes sent to the SRT reader", || {
        let r = http("GET", &format!("{}/v3/srtconns/get/{}", h.api_url(), reader_id), None);
        r.status == 200 && r.json()["state"] == "read" && r.json()["bytesSent"].as_u64() > Some(0)
    });
    let resp = http("GET", &format!("{}/v3/srtconns/list", h.api_url()), None);
    check_response(&spec, "/v3/srtconns/list", "GET", &resp);
    let resp = http("GET", &format!("{}/v3/srtconns/get/{}", h.api_url(), reader_id), None);
    check_response(&spec, "/v3/srtconns/get/{id}", "GET", &resp);

    // MediaMTX's errors
    let r = http("GET", &format!("{}/v3/srtconns/get/nope", h.api_url()), None);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid UUID length: 4"))
    );
    let r = http(
        "POST",
        &format!("{}/v3/srtconns/kick/00000000-0000-0000-0000-000000000000", h.api_url()),
        None,
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, json!("connection not found"))
    );

    // kicking the publisher ends its ffmpeg and the stream
    let r = http("POST", &format!("{}/v3/srtconns/kick/{}", h.api_url(), pub_id), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(Duration::from_secs(10), "publisher gone", || {
        matches!(publisher.0.try_wait(), Ok(Some(_)))
    });
    wait_until(Duration::from_secs(10), "stream and connections gone", || {
        path_get(&h, "mystream")["available"] == false && conns(&h).is_empty()
    });
    eprintln!("done after {:?}", t0.elapsed());
}

fn start_with(tag: &str, paths: Vec<(String, Value)>) -> (mediamtx_double::Handle, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let mut o = mediamtx_double::Options::new(&dir);
    o.all_others = false;
    o.paths = paths;
    (mediamtx_double::start(o).expect("start double"), dir)
}

/// Runs an SRT client that must be refused: ffmpeg fails, and the double logged `why`.
fn assert_refused(h: &mediamtx_double::Handle, dir: &Path, sid_and_opts: &str, publish: bool, why: &str) {
    let url = format!("{}?connect_timeout=8000&streamid={}", h.srt_url(), sid_and_opts);
    let mut cmd = Command::new("timeout");
    cmd.args(["20", "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]);
    if publish {
        cmd.args(["-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-t",
                "3",
                "-f",
                "mpegts",
                &url,
            ]);
    } else {
        cmd.args(["-i", &url, "-t", "1", "-f", "null", "-"]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run ffmpeg");
    assert!(!out.status.success(), "{} was not refused", sid_and_opts);
    wait_until(Duration::from_secs(5), why, || log_of(dir).contains(why));
}

#[test]
fn srt_refusals_like_mediamtx() {
    require_ffmpeg();
    let (h, dir) = start_with(
        "srt-refuse",
        vec![("cam".to_string(), json!({"publishUser": "u", "publishPass": "p"}))],
    );
    let refusals = [
        (
            "bogus",
            true,
            "invalid stream ID 'bogus': stream ID must be 'action:pathname[:query]'",
        ),
        (
            "#!::r=cam,m=play",
            true,
            "invalid stream ID '#!::r=cam,m=play': unsupported mode 'play'",
        ),
        ("publish:other", true, "path 'other' is not configured"),
        (
            "publish:cam:u:wrong",
            true,
            "failed to authenticate: authentication failed",
        ),
        ("read:cam", false, "no stream is available on path 'cam'"),
    ];
    for (sid, publish, why) in refusals {
        assert_refused(&h, &dir, sid, publish, why);
    }
    // the right credentials (the `#!::` form) publish
    let _p = srt_publish(&h, &dir, "streamid=#!::r=cam,m=publish,u=u,s=p", "160x120", "cam");
}

#[test]
fn srt_passphrases() {
    require_ffmpeg();
    let (h, dir) = start_with(
        "srt-crypt",
        vec![(
            "secret".to_string(),
            json!({"srtPublishPassphrase": "publish-pass-1", "srtReadPassphrase": "read-pass-12"}),
        )],
    );
    assert_refused(&h, &dir, "publish:secret", true, "passphrase not provided by client");
    assert_refused(
        &h,
        &dir,
        "publish:secret&passphrase=wrong-pass-1",
        true,
        "invalid passphrase",
    );
    let _p = srt_publish(
        &h,
        &dir,
        "streamid=publish:secret&passphrase=publish-pass-1",
        "320x240",
        "secret",
    );
    let c = conns(&h);
    assert_eq!(c[0]["packetsReceivedUndecrypt"], 0, "{:?}", c);
    assert_h264(&probe(&format!("{}/secret", h.rtsp_url())).unwrap(), 320, 240);
    assert_h264(
        &probe(&format!("{}?streamid=read:secret&passphrase=read-pass-12", h.srt_url())).unwrap(),
        320,
        240,
    );
    assert_refused(
        &h,
        &dir,
        "read:secret&passphrase=publish-pass-1",
        false,
        "invalid passphrase",
    );
}

/// An SRT reader starts `runOnDemand`, is the path's only reader (its relay is hidden) and
/// takes the one `maxReaders` slot; `runOnRead` gets `MTX_READER_TYPE=srtConn`.
#[test]
fn srt_reader_on_demand_and_max_readers() {
    require_ffmpeg();
    let dir0 = temp_dir("srt-od-env");
    let envf = dir0.join("read-env.txt");
    let (h, dir) = start_with(
        "srt-od",
        vec![(
            "od".to_string(),
            json!({
                "runOnDemand": publisher_cmd("rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH", "320x240"),
                "runOnDemandStartTimeout": "10s",
                "maxReaders": 1,
                "runOnRead": format!("sh -c 'echo $MTX_READER_TYPE > {}; exec sleep 30'", envf.display()),
            }),
        )],
    );
    let url = format!("{}?connect_timeout=10000&streamid=read:od", h.srt_url());
    let _reader = srt_reader(&url, &dir.join("reader.log"));
    wait_until(Duration::from_secs(15), "SRT reader listed", || {
        path_get(&h, "od")["readers"].as_array().map(|a| a.len()) == Some(1)
    });
    let p = path_get(&h, "od");
    assert_eq!(p["readers"][0]["type"], "srtConn", "{}", p);
    assert_eq!(p["source"]["type"], "rtspSession", "{}", p);
    let id = p["readers"][0]["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(10), "media sent to the SRT reader", || {
        let r = http("GET", &format!("{}/v3/srtconns/get/{}", h.api_url(), id), None);
        r.status == 200 && r.json()["packetsSent"].as_u64() > Some(10)
    });
    wait_until(Duration::from_secs(10), "runOnRead ran", || {
        std::fs::read_to_string(&envf).unwrap_or_default().trim() == "srtConn"
    });
    assert_refused(&h, &dir, "read:od", false, "maximum reader count reached");
    assert_eq!(path_get(&h, "od")["readers"].as_array().map(|a| a.len()), Some(1));
}

/// A handshake control packet to the listener (socket 0), built by hand.
fn handshake(version: u32, ext: u16, hs_type: u32, cookie: u32, sid: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for w in [version, u32::from(ext), 1000, 1500, 8192, hs_type, 0x1234, cookie] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(&[0; 16]);
    if !sid.is_empty() {
        // SID extension: words with their bytes reversed
        let mut padded = sid.to_vec();
        padded.resize(sid.len().div_ceil(4) * 4, 0);
        v.extend_from_slice(&[0, 5]);
        v.extend_from_slice(&((padded.len() / 4) as u16).to_be_bytes());
        for w in padded.chunks(4) {
            v.extend(w.iter().rev());
        }
    }
    v
}

/// Raw UDP: garbage is ignored, a wrong cookie is not answered, a bad stream id gets a
/// rejection with handshake type 1002 (REJ_PEER), like gosrt's Reject(REJ_PEER).
#[test]
fn srt_raw_handshake_rejection_code_and_srt_off() {
    let (h, _dir) = start("srt-raw");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(("127.0.0.1", h.srt_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1500];
    for junk in [&b""[..], &[0xff; 3][..], &[0x80; 64][..], &[0u8; 1400][..]] {
        s.send(junk).unwrap();
    }
    // induction: version 4, UDT datagram type 2 in the extension field
    let ind = handshake(4, 2, 1, 0, b"");
    s.send(&ind).unwrap();
    let n = s.recv(&mut buf).expect("induction answered");
    let word = |b: &[u8], i: usize| u32::from_be_bytes([b[16 + i * 4], b[17 + i * 4], b[18 + i * 4], b[19 + i * 4]]);
    assert!(n >= 64 && buf[0] & 0x80 != 0, "{:?}", &buf[..n]);
    assert_eq!(word(&buf, 0), 5, "version 5");
    assert_eq!(word(&buf, 1) & 0xffff, 0x4A17, "SRT magic");
    let cookie = word(&buf, 7);
    // conclusion with a wrong cookie: no answer
    s.send(&handshake(5, 5, 0xFFFF_FFFF, cookie ^ 1, b"publish:x")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert!(s.recv(&mut buf).is_err(), "a wrong cookie is not answered");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send(&handshake(5, 5, 0xFFFF_FFFF, cookie, b"bogus")).unwrap();
    let n = s.recv(&mut buf).expect("conclusion answered");
    assert!(n >= 64, "{:?}", &buf[..n]);
    assert_eq!(word(&buf, 5), 1002, "rejected with REJ_PEER");
    // still serving
    s.send(&ind).unwrap();
    assert!(s.recv(&mut buf).is_ok());

    // `srt: false`: no SRT server, no /v3/srtconns
    assert_eq!(
        http("GET", &format!("{}/v3/srtconns/list", h.api_url()), None).status,
        200
    );
    patch_global(&h, r#"{"srt":false}"#);
    let r = http("GET", &format!("{}/v3/srtconns/list", h.api_url()), None);
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"));
    s.send(&ind).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert!(s.recv(&mut buf).is_err(), "no handshake while srt is off");
}

#[test]
fn srt_silent_publisher_closed_after_read_timeout() {
    require_ffmpeg();
    let (h, dir) = start("srt-silent");
    patch_global(&h, r#"{"readTimeout":"1s"}"#);
    let mut publisher = srt_publish(&h, &dir, "streamid=publish:mystream", "320x240", "mystream");
    // the publisher freezes: nothing more reaches the double, not even keepalives
    unsafe { libc::kill(publisher.pid(), libc::SIGSTOP) };
    // under the double's former fixed 5s and MediaMTX's default 10s: only readTimeout ends it
    wait_until(Duration::from_secs(4), "silent SRT publisher closed", || {
        conns(&h).is_empty()
    });
    unsafe { libc::kill(publisher.pid(), libc::SIGCONT) };
    publisher.interrupt_and_wait();
}

/// A raw SRT reader that sends nothing after its handshake (no ACK, no keepalive) is
/// gone after `readTimeout` (gosrt's PeerIdleTimeout), not before; MediaMTX's queue does
/// not discard for it (gosrt's Write never blocks), so `outboundFramesDiscarded` stays 0.
#[test]
fn srt_silent_reader_closed_after_read_timeout() {
    require_ffmpeg();
    let (h, dir) = start("srt-stall");
    patch_global(&h, r#"{"readTimeout":"3s"}"#);
    let mut publisher = srt_publish(&h, &dir, "streamid=publish:mystream", "320x240", "mystream");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(("127.0.0.1", h.srt_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1500];
    s.send(&handshake(4, 2, 1, 0, b"")).unwrap();
    let n = s.recv(&mut buf).expect("induction answered");
    assert!(n >= 64);
    let cookie = u32::from_be_bytes([buf[44], buf[45], buf[46], buf[47]]);
    s.send(&handshake(5, 5, 0xFFFF_FFFF, cookie, b"read:mystream")).unwrap();
    let t0 = std::time::Instant::now();
    let reader = || conns(&h).into_iter().find(|c| c["state"] == "read");
    wait_until(Duration::from_secs(3), "silent reader listed", || reader().is_some());
    let mut last = Value::Null;
    // under MediaMTX's default readTimeout (10s): only the 3s setting ends it
    wait_until(Duration::from_secs(8), "silent SRT reader closed", || match reader() {
        Some(c) => {
            last = c;
            false
        }
        None => true,
    });
    assert!(t0.elapsed() >= Duration::from_secs(2), "closed before readTimeout");
    assert!(last["packetsSent"].as_u64() > Some(0), "{}", last);
    assert_eq!(last["outboundFramesDiscarded"], 0, "{}", last);
    assert_eq!(path_get(&h, "mystream")["readers"], json!([]));
    publisher.interrupt_and_wait();
}

/// An SRT reader gets what mpegts.FromStream takes: the other tracks are skipped with a
/// warning, a stream with none of its codecs is refused with MediaMTX's error.
#[test]
fn srt_readers_get_the_tracks_mpegts_takes() {
    require_ffmpeg();
    let (h, dir) = start("srt-tracks");
    let _publishers = publish_mixed_and_vp8(&h, &dir);
    wait_available(&h, "mixed");
    wait_available(&h, "vp8");

    // H.264 with G.722: the reader gets the video only
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-print_format", "json", "-show_streams"])
        .args(["-analyzeduration", "1000000"])
        .arg(format!("{}?streamid=read:mixed", h.srt_url()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let streams = serde_json::from_slice::<Value>(&out.stdout).unwrap()["streams"].clone();
    assert_eq!(streams.as_array().map(|s| s.len()), Some(1), "{}", streams);
    assert_h264(&streams[0], 160, 120);
    let log = log_of(&dir);
    let reader = |end: &str| {
        log.lines()
            .any(|l| l.contains("[SRT] [conn 127.0.0.1:") && l.ends_with(end))
    };
    assert!(reader("] skipping track 2 (G722)"), "{}", log);
    assert!(reader("] is reading from path 'mixed', 1 track (H264)"), "{}", log);

    // VP8 alone: nothing MPEG-TS takes
    let why = "closed: the stream doesn't contain any supported codec, which are currently H265, H264, MPEG-4 Video, MPEG-1/2 Video, Opus, MPEG-4 Audio, MPEG-1/2 Audio, AC-3";
    assert_refused(&h, &dir, "read:vp8", false, why);
    assert!(!log_of(&dir).contains("is reading from path 'vp8'"));
}
