//! The double's RTSP server like MediaMTX's: the rtspconns/rtspsessions API, RTSP over
//! UDP (unicast) and its timeouts, with real ffmpeg publishers and readers.

mod common;
use common::rtsp::*;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

fn publisher(url: &str, transport: &str) -> String {
    publisher_cmd(url, "320x240").replace("-rtsp_transport tcp", &format!("-rtsp_transport {}", transport))
}

#[test]
fn rtsp_conns_and_sessions_api() {
    require_ffmpeg();
    let spec = load_spec();
    let (h, dir) = start("rtspapi");
    let url = format!("{}/cam?x=1", h.rtsp_url());
    let _p = spawn_cmd(&publisher(&url, "tcp"), &dir.join("pub.log"));
    wait_available(&h, "cam");

    let r = get(&h, "/v3/rtspconns/list");
    check_response(&spec, "/v3/rtspconns/list", "GET", &r);
    let conns = r.json()["items"].as_array().cloned().unwrap();
    assert_eq!(conns.len(), 1, "{:?}", conns);
    assert!(conns[0]["inboundBytes"].as_u64().unwrap() > 0);
    let r = get(&h, "/v3/rtspsessions/list");
    check_response(&spec, "/v3/rtspsessions/list", "GET", &r);
    let sessions = r.json()["items"].as_array().cloned().unwrap();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s["state"], "publish");
    assert_eq!(s["path"], "cam");
    assert_eq!(s["query"], "x=1");
    assert_eq!(s["transport"], "TCP");
    assert_eq!(s["profile"], "AVP");
    assert_eq!(s["conns"], json!([conns[0]["id"]]));
    assert_eq!(conns[0]["session"], s["id"]);
    assert!(s["userAgent"].as_str().unwrap().starts_with("Lavf"), "{}", s);
    // the path's source is this session
    let pj = get(&h, "/v3/paths/get/cam").json();
    assert_eq!(pj["source"]["id"], s["id"], "{}", pj);
    // counters grow
    let sid = s["id"].as_str().unwrap().to_string();
    let cid = conns[0]["id"].as_str().unwrap().to_string();
    let before = s["inboundRTPPackets"].as_u64().unwrap();
    wait_until(Duration::from_secs(5), "inbound RTP packets grow", || {
        get(&h, &format!("/v3/rtspsessions/get/{}", sid)).json()["inboundRTPPackets"]
            .as_u64()
            .unwrap()
            > before
    });
    let r = get(&h, &format!("/v3/rtspsessions/get/{}", sid));
    check_response(&spec, "/v3/rtspsessions/get/{id}", "GET", &r);
    let r = get(&h, &format!("/v3/rtspconns/get/{}", cid));
    check_response(&spec, "/v3/rtspconns/get/{id}", "GET", &r);
    assert_eq!(r.json()["id"], cid.as_str());
    // google/uuid's other spellings of the same id
    for alt in [
        format!("urn:uuid:{}", sid),
        format!("{{{}}}", sid),
        sid.to_uppercase(),
        sid.replace('-', ""),
    ] {
        let r = get(&h, &format!("/v3/rtspsessions/get/{}", alt));
        assert_eq!((r.status, r.json()["id"].clone()), (200, json!(sid)), "{}", alt);
    }
    let r = get(&h, &format!("/v3/rtspsessions/get/{}", sid.replace('-', "x")));
    assert_eq!(r.json()["error"], "invalid UUID format");

    // a reader: its session plays and counts what it was sent
    let rd = read_frames(&format!("{}/cam", h.rtsp_url()), "tcp", 10, &dir.join("r.md5"));
    assert!(rd >= 10);

    // errors, as MediaMTX words them
    let missing = "6f1c2e4a-0b1d-4c8e-9a51-3d2f7e6b9c10";
    let r = get(&h, &format!("/v3/rtspconns/get/{}", missing));
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, json!("connection not found"))
    );
    check_response(&spec, "/v3/rtspconns/get/{id}", "GET", &r);
    let r = get(&h, &format!("/v3/rtspsessions/get/{}", missing));
    assert_eq!((r.status, r.json()["error"].clone()), (404, json!("session not found")));
    let r = get(&h, "/v3/rtspsessions/get/nope");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid UUID length: 4"))
    );
    let r = http(
        "POST",
        &format!("{}/v3/rtspsessions/kick/{}", h.api_url(), missing),
        None,
    );
    assert_eq!(r.status, 404);
    let r = get(&h, "/v3/rtspsessions/list?itemsPerPage=0");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid items per page"))
    );
    // the RTSPS server is off (rtspEncryption: no): its routes do not exist
    let r = get(&h, "/v3/rtspsconns/list");
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"));

    // kicking the publisher's session ends the stream
    let r = http("POST", &format!("{}/v3/rtspsessions/kick/{}", h.api_url(), sid), None);
    assert_eq!(r.status, 200, "{}", r.body);
    check_response(&spec, "/v3/rtspsessions/kick/{id}", "POST", &r);
    wait_until(Duration::from_secs(5), "path gone after kick", || {
        get(&h, "/v3/paths/get/cam").status == 404
    });

    // rtsp: false closes the server and removes the routes
    patch_global(&h, r#"{"rtsp": false}"#);
    assert!(closed(h.rtsp_port), "the RTSP server still listens");
    let r = get(&h, "/v3/rtspsessions/list");
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"));
}

/// The lines of MediaMTX's RTSP sessions and paths: a session is created by its client,
/// publishes or reads (with its transport and the tracks it set up) and is destroyed with
/// its reason (TEARDOWN, its connection gone, a kick); the path's stream is available and
/// online with its tracks.
#[test]
fn sessions_and_paths_are_logged_like_mediamtx() {
    require_ffmpeg();
    let (h, dir) = start("rtsp-lines");
    let url = format!("{}/cam", h.rtsp_url());
    let mut publisher = spawn_cmd(&publisher(&url, "tcp"), &dir.join("pub.log"));
    wait_available(&h, "cam");
    // a reader over UDP, gone with a TEARDOWN
    let st = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "udp", "-show_streams"])
        .arg(&url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // a reader over TCP, kicked through the API
    let mut reader = spawn_cmd(
        &format!("ffmpeg -nostdin -rtsp_transport tcp -i {} -f null -", url),
        &dir.join("reader.log"),
    );
    let reading = || {
        items(&h, "/v3/rtspsessions/list")
            .into_iter()
            .find(|s| s["state"] == "read")
    };
    wait_until(Duration::from_secs(10), "TCP reader", || reading().is_some());
    let id = reading().unwrap()["id"].as_str().unwrap().to_string();
    let r = http("POST", &format!("{}/v3/rtspsessions/kick/{}", h.api_url(), id), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = reader.interrupt_and_wait();
    // the publisher killed: its connection closes without TEARDOWN
    unsafe { libc::kill(publisher.pid(), libc::SIGKILL) };
    let _ = publisher.0.wait();
    let short = |uuid: &str| uuid.replace('-', "")[..8].to_string();
    let kicked = format!("INF [RTSP] [session {}] destroyed: terminated", short(&id));
    wait_until(Duration::from_secs(10), "the publisher's session destroyed", || {
        log_of(&dir)
            .lines()
            .filter(|l| l.ends_with("destroyed: not in use"))
            .count()
            == 1
    });
    let log = log_of(&dir);
    let has = |scope: &str, end: &str| log.lines().any(|l| l.contains(scope) && l.ends_with(end));
    let sess = "INF [RTSP] [session ";
    assert!(has(sess, "is publishing to path 'cam'"), "{}", log);
    assert!(
        has("INF [path cam] ", "stream is available and online, 1 track (H264)"),
        "{}",
        log
    );
    assert!(
        has(sess, "is reading from path 'cam', with UDP, 1 track (H264)"),
        "{}",
        log
    );
    assert!(
        has(sess, "is reading from path 'cam', with TCP, 1 track (H264)"),
        "{}",
        log
    );
    assert!(log.lines().any(|l| l.ends_with(&kicked)), "{}\n{}", kicked, log);
    // every session was created by a client and destroyed once
    let created = log
        .lines()
        .filter(|l| l.contains(sess) && l.contains("] created by 127.0.0.1:"))
        .count();
    let destroyed = log
        .lines()
        .filter(|l| l.contains(sess) && l.contains("] destroyed: "))
        .count();
    assert_eq!((created, destroyed), (3, 3), "{}", log);
    let torn = log
        .lines()
        .filter(|l| l.contains(sess) && l.contains("] destroyed: torn down by 127.0.0.1:"))
        .count();
    assert_eq!(torn, 1, "{}", log);
}

#[test]
fn udp_publisher_and_reader() {
    require_ffmpeg();
    let (h, dir) = start("rtspudp");
    let url = format!("{}/udp", h.rtsp_url());
    let _p = spawn_cmd(&publisher(&url, "udp"), &dir.join("pub.log"));
    wait_available(&h, "udp");
    let s = items(&h, "/v3/rtspsessions/list");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["transport"], "UDP");
    assert_eq!(s[0]["state"], "publish");
    let sid = s[0]["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(5), "RTP received over UDP", || {
        get(&h, &format!("/v3/rtspsessions/get/{}", sid)).json()["inboundRTPPackets"]
            .as_u64()
            .unwrap()
            > 10
    });

    // a UDP reader decodes frames; its session sends RTP over UDP
    let u = url.clone();
    let out = dir.join("r.md5");
    let t = std::thread::spawn(move || read_frames(&u, "udp", 30, &out));
    wait_until(Duration::from_secs(10), "UDP reader session", || {
        items(&h, "/v3/rtspsessions/list")
            .iter()
            .any(|s| s["state"] == "read" && s["transport"] == "UDP" && s["outboundRTPPackets"].as_u64() > Some(0))
    });
    assert!(t.join().unwrap() >= 30);
    let p = get(&h, "/v3/paths/get/udp").json();
    assert!(p["outboundBytes"].as_u64().unwrap() > 0, "{}", p);

    // the server_port pair of SETUP is rtpAddress/rtcpAddress
    let (_s, r) = announce_and_setup(
        h.rtsp_port,
        "udp2",
        "RTP/AVP;unicast;client_port=40000-40001;mode=record",
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    assert!(
        r.contains(&format!(
            "Transport: RTP/AVP;unicast;client_port=40000-40001;server_port={}-{}",
            h.rtp_port, h.rtcp_port
        )),
        "{}",
        r
    );
    let g = get(&h, "/v3/config/global/get").json();
    assert_eq!(g["rtpAddress"], format!(":{}", h.rtp_port));

    // UDP without client ports is a bad request; UDP refused when only TCP is allowed
    let (_s, r) = announce_and_setup(h.rtsp_port, "udp3", "RTP/AVP;unicast;mode=record");
    assert!(r.starts_with("RTSP/1.0 400"), "{}", r);
    patch_global(&h, r#"{"rtspTransports": ["tcp"]}"#);
    let (_s, r) = announce_and_setup(
        h.rtsp_port,
        "udp4",
        "RTP/AVP;unicast;client_port=40002-40003;mode=record",
    );
    assert!(r.starts_with("RTSP/1.0 461"), "{}", r);
    // a disabled TCP listed first is refused, not skipped (MediaMTX's onSetup)
    patch_global(&h, r#"{"rtspTransports": ["udp"]}"#);
    let (_s, r) = announce_and_setup(
        h.rtsp_port,
        "udp5",
        "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record,RTP/AVP;unicast;client_port=40004-40005;mode=record",
    );
    assert!(r.starts_with("RTSP/1.0 461"), "{}", r);
    let (_s, r) = announce_and_setup(
        h.rtsp_port,
        "udp6",
        "RTP/AVP;unicast;client_port=40004-40005;mode=record,RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
    );
    assert!(r.starts_with("RTSP/1.0 200") && r.contains("server_port="), "{}", r);
}

#[test]
fn udp_publisher_closed_without_packets_and_oversized_packets_dropped() {
    let (h, _dir) = start("rtspudpto");
    patch_global(&h, r#"{"readTimeout": "2s"}"#);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cport = client.local_addr().unwrap().port();
    let mut s = raw_publisher(
        h.rtsp_port,
        "quiet",
        SDP,
        &format!("RTP/AVP;unicast;client_port={}-{};mode=record", cport, cport + 1),
    );

    // a packet within gortsplib's 1472-byte limit counts; a larger one is in error
    let mut pkt = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    pkt.extend_from_slice(&[0x41; 100]);
    client.send_to(&pkt, ("127.0.0.1", h.rtp_port)).unwrap();
    pkt.extend_from_slice(&[0x41; 1400]);
    client.send_to(&pkt, ("127.0.0.1", h.rtp_port)).unwrap();
    wait_until(Duration::from_secs(5), "both packets counted", || {
        let list = items(&h, "/v3/rtspsessions/list");
        list.first().and_then(|x| x["inboundRTPPacketsInError"].as_u64()) == Some(1)
    });
    let list = items(&h, "/v3/rtspsessions/list");
    assert_eq!(list[0]["inboundRTPPackets"], 1, "{}", list[0]);
    assert_eq!(list[0]["inboundRTPPacketsInError"], 1, "{}", list[0]);
    assert_eq!(list[0]["inboundBytes"], 112 + 1473, "{}", list[0]);

    // then silence: the session is closed after readTimeout
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut b = [0u8; 64];
    let n = s.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "connection closed by the server");
    wait_until(Duration::from_secs(5), "session gone", || {
        items(&h, "/v3/rtspsessions/list").is_empty()
    });
}

#[test]
fn rtsps_publish_and_read() {
    require_ffmpeg();
    let spec = load_spec();
    let (h, dir) = start("rtsps");
    let (key, cert) = self_signed(&dir);
    patch_global(
        &h,
        json!({"rtspEncryption": "optional", "rtspServerKey": key, "rtspServerCert": cert}),
    );
    let url = format!("rtsps://127.0.0.1:{}/sec", h.rtsps_port);
    let _p = spawn_cmd(&publisher(&url, "tcp"), &dir.join("pub.log"));
    wait_available(&h, "sec");
    let rd = read_frames(&url, "tcp", 15, &dir.join("r.md5"));
    assert!(rd >= 15);

    // listed by the RTSPS routes only
    let r = get(&h, "/v3/rtspssessions/list");
    check_response(&spec, "/v3/rtspssessions/list", "GET", &r);
    let s = r.json()["items"].as_array().cloned().unwrap();
    assert_eq!(s.len(), 1, "{:?}", s);
    assert_eq!(
        (s[0]["state"].clone(), s[0]["transport"].clone()),
        (json!("publish"), json!("TCP"))
    );
    assert!(s[0]["inboundRTPPackets"].as_u64().unwrap() > 0);
    let c = items(&h, "/v3/rtspsconns/list");
    assert_eq!(c.len(), 1, "{:?}", c);
    assert_eq!(c[0]["session"], s[0]["id"]);
    assert!(items(&h, "/v3/rtspsessions/list").is_empty());

    // strict: the plain RTSP server stops, and so do its routes
    patch_global(&h, r#"{"rtspEncryption": "strict"}"#);
    assert!(closed(h.rtsp_port), "no plain RTSP listener in strict mode");
    let r = get(&h, "/v3/rtspconns/list");
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"));
    assert_eq!(get(&h, "/v3/rtspsconns/list").status, 200);

    // a refused client is logged by the RTSPS server's connection, not the RTSP one's
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "viewer", "pass": "pw", "permissions": [{"action": "read"}]},
            {"user": "any", "ips": ["127.0.0.1"], "permissions": [{"action": "api"}]},
        ]}),
    );
    let bad = format!("rtsps://viewer:wrong@127.0.0.1:{}/sec", h.rtsps_port);
    assert!(probe_stream(&bad, &[]).is_err(), "wrong credentials refused");
    let log = log_of(&dir);
    assert!(log.contains("WAR [RTSPS] [conn 127.0.0.1:"), "{}", log);
    assert!(!log.contains("WAR [RTSP] [conn"), "{}", log);
}

#[test]
fn tcp_publisher_closed_after_read_timeout() {
    let (h, dir) = start("rtsprto");
    patch_global(&h, r#"{"readTimeout": "1s"}"#);
    let mut s = tcp_publisher(h.rtsp_port, "silent");
    // nothing more is sent: closed after readTimeout, well before the 60 s idle timeout
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut b = [0u8; 64];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "connection closed by the server");
    // with Go's text for the read deadline
    let (me, server) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
    let want = format!(
        "INF [RTSP] [conn {}] closed: read tcp {}->{}: i/o timeout",
        me, server, me
    );
    wait_until(Duration::from_secs(5), &want, || log_of(&dir).contains(&want));
}

#[test]
fn slow_reader_loses_packets_beyond_write_queue() {
    let (h, _dir) = start("rtspwq");
    patch_global(&h, r#"{"writeQueueSize": 16}"#);
    let mut p = tcp_publisher(h.rtsp_port, "flood");

    // a reader that never reads what it is sent
    let _rd = tcp_reader(h.rtsp_port, "flood");

    // 30 MB of RTP: more than the socket buffers hold, so the 16-packet queue overflows
    let mut rtp = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    rtp.resize(1400, 0x41);
    let frame = interleaved(0, &rtp);
    let burst: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 1000).collect();
    p.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    for _ in 0..22 {
        p.write_all(&burst).unwrap();
    }
    wait_until(Duration::from_secs(10), "packets discarded for the slow reader", || {
        items(&h, "/v3/rtspsessions/list")
            .iter()
            .any(|s| s["state"] == "read" && s["outboundRTPPacketsDiscarded"].as_u64() > Some(0))
    });
}

#[test]
fn multicast_reader() {
    require_ffmpeg();
    let (h, dir) = start("rtspmc");
    let (rtp, rtcp) = (free_udp_port(), free_udp_port());
    patch_global(
        &h,
        json!({"multicastIPRange": "239.255.77.0/24", "multicastRTPPort": rtp, "multicastRTCPPort": rtcp}),
    );
    let url = format!("{}/mc", h.rtsp_url());
    let _p = publish(&h, &dir, "mc");

    // the group: the range's second address (gortsplib), ports as configured
    let mut s = connect(h.rtsp_port, Duration::from_secs(20));
    let r = rtsp_req(
        &mut s,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;multicast\r\n\r\n",
            url
        ),
    );
    let want = format!(
        "Transport: RTP/AVP;multicast;destination=239.255.77.1;port={}-{};ttl=127",
        rtp, rtcp
    );
    assert!(r.starts_with("RTSP/1.0 200") && r.contains(&want), "{}", r);
    drop(s);

    // ffmpeg joins the group and decodes frames
    let n = read_frames(&url, "udp_multicast", 15, &dir.join("r.md5"));
    assert!(n >= 15, "{} frames over multicast", n);

    // publishers cannot use multicast
    let (_s, r) = announce_and_setup(h.rtsp_port, "mcpub", "RTP/AVP;multicast;mode=record");
    assert!(r.starts_with("RTSP/1.0 461"), "{}", r);

    // a playing multicast reader is dropped with the publisher
    let mut s = setup_and_play(h.rtsp_port, "mc", "RTP/AVP;multicast");
    let r = http(
        "POST",
        &format!("{}/control/drop-publisher?path=mc", h.control_url()),
        None,
    );
    assert_eq!(r.status, 200);
    let mut b = [0u8; 64];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "reader closed");
}

#[test]
fn hostile_input_is_refused_without_harm() {
    let (h, _dir) = start("rtsphostile");
    // an endless header line closes the connection
    let mut s = connect(h.rtsp_port, Duration::from_secs(10));
    let long = format!("OPTIONS rtsp://x/a RTSP/1.0\r\nX: {}\r\n\r\n", "a".repeat(100_000));
    let _ = s.write_all(long.as_bytes());
    let mut b = [0u8; 64];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed");

    // out-of-range ports and channels are bad requests
    for t in [
        "RTP/AVP;unicast;client_port=4294967295;mode=record",
        "RTP/AVP;unicast;client_port=70000-70001;mode=record",
        "RTP/AVP/TCP;unicast;interleaved=255-256;mode=record",
        "RTP/AVP/TCP;unicast;interleaved=4294967295;mode=record",
    ] {
        let (_s, r) = announce_and_setup(h.rtsp_port, "bad", t);
        assert!(r.starts_with("RTSP/1.0 400"), "{}: {}", t, r);
    }

    // ids with multi-byte characters are invalid UUIDs
    // 45 bytes with a character across byte 9 (the end of an "urn:uuid:" prefix)
    let id = format!("urn:uuid\u{e9}{}", "a".repeat(35));
    let r = get(&h, &format!("/v3/rtspsessions/get/{}", id.replace('\u{e9}', "%C3%A9")));
    assert_eq!(r.status, 400, "{}", r.body);
    // the server still answers
    let (_s, r) = announce_and_setup(h.rtsp_port, "ok", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
}

/// NAL units of an Annex-B H.264 file.
fn annexb_nalus(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let e = starts.get(k + 1).map(|n| n - 3).unwrap_or(data.len());
        let mut nalu = data[s..e].to_vec();
        while nalu.last() == Some(&0) {
            nalu.pop();
        }
        if !nalu.is_empty() {
            out.push(nalu);
        }
    }
    out
}

#[test]
fn oversized_h264_nal_units_are_split_into_fu_a() {
    require_ffmpeg();
    let (h, dir) = start("rtspsplit");
    // all-intra 640x480 at high quality: every IDR NAL unit is far over 1440 bytes
    let file = dir.join("in.h264");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args([
            "-i",
            "testsrc2=size=640x480:rate=25",
            "-frames:v",
            "5",
            "-c:v",
            "libx264",
        ])
        .args([
            "-preset",
            "ultrafast",
            "-x264-params",
            "keyint=1",
            "-crf",
            "12",
            "-f",
            "h264",
            "-y",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let nalus = annexb_nalus(&std::fs::read(&file).unwrap());
    let sps = nalus.iter().find(|n| n[0] & 0x1F == 7).unwrap().clone();
    let pps = nalus.iter().find(|n| n[0] & 0x1F == 8).unwrap().clone();
    let idrs: Vec<Vec<u8>> = nalus.iter().filter(|n| n[0] & 0x1F == 5).cloned().collect();
    assert!(
        idrs.iter().all(|n| n.len() > 4000),
        "IDR sizes {:?}",
        idrs.iter().map(|n| n.len()).collect::<Vec<_>>()
    );

    let mut p = tcp_publisher(h.rtsp_port, "big");
    let url = url(h.rtsp_port, "big");

    // both readers are in before the first packet
    let mut rd = tcp_reader(h.rtsp_port, "big");
    let out = dir.join("out.gray");
    let mut ff = Proc(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-rtsp_transport",
                "tcp",
            ])
            .args([
                "-i",
                &url,
                "-frames:v",
                "10",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-y",
            ])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(10), "two readers", || {
        get(&h, "/v3/paths/get/big").json()["readers"]
            .as_array()
            .map(|a| a.len())
            == Some(2)
    });

    // each NAL unit in one RTP packet (single NAL unit mode), the IDR's marked
    let (mut seq, mut ts) = (1000u16, 0u32);
    let mut send = |p: &mut TcpStream, ts: u32, nalu: &[u8], marker: bool| {
        let mut rtp = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&ts.to_be_bytes());
        rtp.extend_from_slice(&[0, 0, 0, 1]);
        rtp.extend_from_slice(nalu);
        p.write_all(&interleaved(0, &rtp)).unwrap();
        seq = seq.wrapping_add(1);
    };
    let mut sent_aus = 0;
    for i in 0..250 {
        if ff.0.try_wait().unwrap().is_some() {
            break;
        }
        send(&mut p, ts, &sps, false);
        send(&mut p, ts, &pps, false);
        send(&mut p, ts, &idrs[i % idrs.len()], true);
        ts = ts.wrapping_add(3600);
        sent_aus += 1;
        std::thread::sleep(Duration::from_millis(40));
    }
    let st = loop {
        if let Some(st) = ff.0.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut errs = String::new();
    ff.0.stderr.take().unwrap().read_to_string(&mut errs).unwrap();
    assert!(st.success() && errs.is_empty(), "ffmpeg reader: {:?} {}", st, errs);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 10 * 640 * 480);

    // the raw reader: packets of at most 1452 bytes, numbered without gaps, each access
    // unit re-encoded as gortsplib's encoder does: SPS and PPS aggregated in one STAP-A,
    // then the IDR NAL unit in FU-A fragments (rebuilt here)
    let stap = [
        &[24u8][..],
        &(sps.len() as u16).to_be_bytes(),
        &sps,
        &(pps.len() as u16).to_be_bytes(),
        &pps,
    ]
    .concat();
    let mut staps = 0;
    let mut next_seq: Option<u16> = None;
    let mut rebuilt: Vec<Vec<u8>> = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for _ in 0..sent_aus * 10 {
        let mut hdr = [0u8; 4];
        if rd.read_exact(&mut hdr).is_err() {
            break;
        }
        let mut pkt = vec![0u8; u16::from_be_bytes([hdr[2], hdr[3]]) as usize];
        rd.read_exact(&mut pkt).unwrap();
        if hdr[1] != 0 {
            continue; // RTCP
        }
        assert!(pkt.len() <= 1452, "RTP packet of {} bytes", pkt.len());
        let s = u16::from_be_bytes([pkt[2], pkt[3]]);
        if let Some(n) = next_seq {
            assert_eq!(s, n, "sequence numbers continue");
        }
        next_seq = Some(s.wrapping_add(1));
        let payload = &pkt[12..];
        if rebuilt.is_empty() && cur.is_none() && payload[0] & 0x1F == 24 {
            assert_eq!(payload, &stap[..], "the parameter sets in one STAP-A");
            staps += 1;
        }
        if payload[0] & 0x1F == 28 {
            if payload[1] & 0x80 != 0 {
                cur = Some(vec![(payload[0] & 0xE0) | (payload[1] & 0x1F)]);
            }
            if let Some(c) = cur.as_mut() {
                c.extend_from_slice(&payload[2..]);
            }
            if payload[1] & 0x40 != 0 {
                assert_eq!(pkt[1] & 0x80, 0x80, "the IDR's last fragment is marked");
                rebuilt.extend(cur.take());
                if rebuilt.len() >= 3 {
                    break;
                }
            }
        }
    }
    assert!(rebuilt.len() >= 3, "{} IDR NAL units rebuilt", rebuilt.len());
    for n in &rebuilt {
        assert!(idrs.contains(n), "a rebuilt IDR NAL unit is one sent");
    }
    assert_eq!(staps, 1, "a STAP-A before the first rebuilt IDR");
    assert!(log_of(&dir).contains(&format!(
        "INF [path big] RTP packets are too big ({} > 1440), remuxing them into smaller ones",
        idrs[0].len()
    )));
}

/// TEARDOWN ends the session, not the connection (gortsplib): the same connection can
/// publish or read again with a new session.
#[test]
fn teardown_ends_the_session_and_keeps_the_connection() {
    let (h, dir) = start("rtsp-teardown");
    let port = h.rtsp_port;
    let sessions = || items(&h, "/v3/rtspsessions/list");
    let tcp = "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record";
    let (mut pubc, id) = raw_publisher_session(port, "cam", SDP, tcp);
    wait_available(&h, "cam");
    let first = sessions()[0]["id"].as_str().unwrap().to_string();
    // without its session, TEARDOWN is not routed to it (501, nothing ends)
    let teardown = |cseq: u32, id: &str| {
        let session = if id.is_empty() {
            String::new()
        } else {
            format!("Session: {}\r\n", id)
        };
        format!(
            "TEARDOWN {} RTSP/1.0\r\nCSeq: {}\r\n{}\r\n",
            url(port, "cam"),
            cseq,
            session
        )
    };
    assert!(rtsp_req(&mut pubc, &teardown(3, "")).starts_with("RTSP/1.0 501"));
    assert_eq!(sessions().len(), 1);
    let r = rtsp_req(&mut pubc, &teardown(4, &id));
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    wait_until(Duration::from_secs(5), "stream gone", || {
        path_get(&h, "cam")["available"] == false
    });
    assert!(sessions().is_empty());
    let conns = items(&h, "/v3/rtspconns/list");
    assert_eq!(conns.len(), 1, "{:?}", conns);
    assert_eq!(conns[0]["session"], serde_json::Value::Null, "{:?}", conns);

    // the same connection publishes again, as a new session
    let u = url(port, "cam");
    let r = rtsp_req(
        &mut pubc,
        &format!(
            "ANNOUNCE {} RTSP/1.0\r\nCSeq: 5\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            u,
            SDP.len(),
            SDP
        ),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    let r = rtsp_req(
        &mut pubc,
        &format!("SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n", u),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    let session = session_of(&r).unwrap();
    let r = rtsp_req(
        &mut pubc,
        &format!("RECORD {} RTSP/1.0\r\nCSeq: 7\r\nSession: {}\r\n\r\n", u, session),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    wait_available(&h, "cam");
    let second = sessions()[0]["id"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    // a reader tears down and plays again on its connection
    let (mut rd, id) = setup_and_play_session(port, "cam", "RTP/AVP/TCP;unicast;interleaved=0-1");
    let r = rtsp_req(&mut rd, &teardown(3, &id));
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    wait_until(Duration::from_secs(5), "reader gone", || {
        path_get(&h, "cam")["readers"].as_array().map(|r| r.len()) == Some(0)
    });
    let r = rtsp_req(
        &mut rd,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            u
        ),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    let session = session_of(&r).unwrap();
    let r = rtsp_req(
        &mut rd,
        &format!("PLAY {} RTSP/1.0\r\nCSeq: 5\r\nSession: {}\r\n\r\n", u, session),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    assert_eq!(path_get(&h, "cam")["readers"].as_array().map(|r| r.len()), Some(1));
    let log = log_of(&dir);
    let torn = log
        .lines()
        .filter(|l| l.contains("] destroyed: torn down by 127.0.0.1:"))
        .count();
    assert_eq!(torn, 2, "{}", log);
}

/// What gortsplib's reader refuses closes the connection without an answer, with its
/// parser's text; bytes that start no request are skipped. The double parsed requests
/// by lines, leniently (a 200 KiB body, `RTSP/2.0`, a header without colon passed).
#[test]
fn malformed_requests_close_the_connection_with_gortsplib_texts() {
    let (h, dir) = start("rtsp-malformed");
    let port = h.rtsp_port;
    let u = url(port, "x");
    let many_headers: String = (0..256).map(|i| format!("X-H{}: v\r\n", i)).collect();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            format!("OPTIONS {} RTSP/2.0\r\n\r\n", u).into(),
            "expected 'RTSP/1.0', got [82 84 83 80 47 50 46 48]",
        ),
        (
            b"OPTIONS ftp://h/x RTSP/1.0\r\n\r\n".to_vec(),
            "invalid URL (ftp://h/x)",
        ),
        (
            b"OPTIONS rtsp://h/%zz RTSP/1.0\r\n\r\n".to_vec(),
            "invalid URL (rtsp://h/%zz)",
        ),
        (
            format!("OP{} * RTSP/1.0\r\n\r\n", "T".repeat(70)).into(),
            "buffer length exceeds 64",
        ),
        (
            format!("OPTIONS {} RTSP/1.0\r\n", "x".repeat(2100)).into(),
            "buffer length exceeds 2048",
        ),
        (b"OPTIONS * RTSP/1.0\rX".to_vec(), "expected '\n', got 'X'"),
        (
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 200000\r\n\r\n".to_vec(),
            "Content-Length exceeds 131072 (it's 200000)",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: +5\r\n\r\n".to_vec(),
            "invalid Content-Length",
        ),
        (
            format!("OPTIONS * RTSP/1.0\r\n{}\r\n", many_headers).into(),
            "headers count exceeds 255",
        ),
        (
            format!("OPTIONS * RTSP/1.0\r\nCSeq{}", " ".repeat(600)).into(),
            "value is missing",
        ),
        (
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_vec(),
            "received unexpected response",
        ),
        (b"$\x00\x00\x02ab".to_vec(), "received unexpected interleaved frame"),
    ];
    for (bytes, why) in cases {
        let mut s = connect(port, Duration::from_secs(10));
        s.write_all(&bytes).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            answer.is_empty(),
            "{}: answered {}",
            why,
            String::from_utf8_lossy(&answer)
        );
        let want = format!("INF [RTSP] [conn {}] closed: {}", s.local_addr().unwrap(), why);
        wait_until(Duration::from_secs(5), &want.clone(), || log_of(&dir).contains(&want));
    }
    // line ends and other bytes before a request are skipped; values keep what follows
    // their leading spaces
    let mut s = connect(port, Duration::from_secs(10));
    let r = rtsp_req(&mut s, "\r\n\r\nxyzOPTIONS * RTSP/1.0\r\nCSeq:    7\r\n\r\n");
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    assert!(r.contains("CSeq: 7\r\n"), "{}", r);
}

/// gortsplib ends a connection on any request error, after the answer: the double
/// did not, so a client reusing a connection after a refusal worked only here.
#[test]
fn connections_are_logged_and_closed_by_request_errors() {
    let (h, dir) = start("rtsp-conn-lines");
    let port = h.rtsp_port;
    let line = |s: &TcpStream, what: &str| format!("INF [RTSP] [conn {}] {}", s.local_addr().unwrap(), what);
    let logged = |want: String| {
        wait_until(Duration::from_secs(5), &want.clone(), || log_of(&dir).contains(&want));
    };
    let ended = |s: &mut TcpStream| {
        let mut b = [0u8; 64];
        assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed by the server");
    };
    let options = |n: u32| format!("OPTIONS {} RTSP/1.0\r\nCSeq: {}\r\n\r\n", url(port, "x"), n);

    // opened, then closed by the client
    let mut s = connect(port, Duration::from_secs(10));
    assert!(rtsp_req(&mut s, &options(1)).starts_with("RTSP/1.0 200"));
    logged(line(&s, "opened"));
    let eof = line(&s, "closed: EOF");
    drop(s);
    logged(eof);

    // 501 and PLAY without a session leave the connection open; a DESCRIBE without a
    // stream is a 404 that closes it
    let mut s = connect(port, Duration::from_secs(10));
    // (an unknown method gortsplib reads: it starts like a known one)
    let r = rtsp_req(
        &mut s,
        &format!("REDIRECT {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url(port, "x")),
    );
    assert!(r.starts_with("RTSP/1.0 501"), "{}", r);
    let r = rtsp_req(&mut s, &format!("PLAY {} RTSP/1.0\r\nCSeq: 2\r\n\r\n", url(port, "x")));
    assert!(r.starts_with("RTSP/1.0 501"), "{}", r);
    let r = rtsp_req(
        &mut s,
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 3\r\n\r\n", url(port, "none")),
    );
    assert!(r.starts_with("RTSP/1.0 404"), "{}", r);
    ended(&mut s);
    logged(line(&s, "closed: no stream is available on path 'none'"));

    // a reader's SETUP in record mode
    let mut s = connect(port, Duration::from_secs(10));
    let r = rtsp_req(
        &mut s,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n",
            url(port, "none")
        ),
    );
    assert!(r.starts_with("RTSP/1.0 400"), "{}", r);
    ended(&mut s);
    logged(line(&s, "closed: transport header contains a invalid mode (record)"));

    // a second publisher where it may not take over, and PLAY on a publishing session
    add_path(&h, "cam", &json!({"overridePublisher": false}));
    let _first = tcp_publisher(port, "cam");
    wait_available(&h, "cam");
    let mut s = connect(port, Duration::from_secs(10));
    let announce = format!(
        "ANNOUNCE {} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
        url(port, "cam"),
        SDP.len(),
        SDP
    );
    assert!(rtsp_req(&mut s, &announce).starts_with("RTSP/1.0 400"));
    ended(&mut s);
    logged(line(&s, "closed: someone is already publishing to path 'cam'"));
    let (mut s, r) = announce_and_setup(port, "other", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
    let session = session_of(&r).unwrap();
    let play = format!(
        "PLAY {} RTSP/1.0\r\nCSeq: 3\r\nSession: {}\r\n\r\n",
        url(port, "other"),
        session
    );
    assert!(rtsp_req(&mut s, &play).starts_with("RTSP/1.0 400"));
    ended(&mut s);
    logged(line(
        &s,
        "closed: must be in state [prePlay play], while is in state preRecord",
    ));

    // session IDs: one this connection does not have, another than its own
    let mut s = connect(port, Duration::from_secs(10));
    let get = |id: &str| {
        format!(
            "GET_PARAMETER {} RTSP/1.0\r\nCSeq: 1\r\nSession: {}\r\n\r\n",
            url(port, "x"),
            id
        )
    };
    assert!(rtsp_req(&mut s, &get("0badc0de")).starts_with("RTSP/1.0 454"));
    ended(&mut s);
    logged(line(&s, "closed: session not found"));
    let (mut s, r) = announce_and_setup(port, "third", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
    assert_ne!(session_of(&r).as_deref(), Some("0badc0de"));
    assert!(rtsp_req(&mut s, &get("0badc0de")).starts_with("RTSP/1.0 400"));
    ended(&mut s);
    logged(line(&s, "closed: connection is linked to another session"));

    // a kicked session's connection is terminated
    let mut rd = tcp_reader(port, "cam");
    let reader = items(&h, "/v3/rtspsessions/list")
        .into_iter()
        .find(|s| s["state"] == "read")
        .unwrap();
    let kick = format!(
        "{}/v3/rtspsessions/kick/{}",
        h.api_url(),
        reader["id"].as_str().unwrap()
    );
    assert_eq!(http("POST", &kick, None).status, 200);
    ended(&mut rd);
    logged(line(&rd, "closed: terminated"));

    // so is a connection of a server that closes (a changed readTimeout restarts it)
    let mut s = connect(port, Duration::from_secs(10));
    assert!(rtsp_req(&mut s, &options(1)).starts_with("RTSP/1.0 200"));
    patch_global(&h, r#"{"readTimeout": "9s"}"#);
    ended(&mut s);
    logged(line(&s, "closed: terminated"));
}
