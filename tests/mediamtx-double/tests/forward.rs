//! `forward` and `alwaysAvailable` driven with real clients (ffmpeg publishers, ffprobe).

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// ffprobe of an RTSP URL: (codec, width, height) of the first video stream; None if
/// the URL cannot be read.
fn probe(url: &str) -> Option<(String, u64, u64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-rw_timeout", "5000000"])
        .args(["-select_streams", "v:0", "-show_streams", "-of", "json", url])
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let s = v["streams"].get(0)?;
    Some((
        s["codec_name"].as_str()?.to_string(),
        s["width"].as_u64()?,
        s["height"].as_u64()?,
    ))
}

fn forward_list(h: &mediamtx_double::Handle, path: &str) -> Value {
    let r = http(
        "GET",
        &format!("{}/v3/paths/forward/list?path={}", h.api_url(), path),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn forward_pushes_to_another_path() {
    require_ffmpeg();
    let (h, dir) = start("forward-ok");
    let dest = format!("{}/other", h.rtsp_url());
    add_path(&h, "src", &json!({"forward": [{"dest": dest}]}));
    let l = forward_list(&h, "src");
    assert_eq!(l["itemCount"], 1);
    assert_eq!(l["items"][0]["state"], "idle");
    assert_eq!(l["items"][0]["pos"], 1);
    assert_eq!(l["items"][0]["protocol"], "rtsp");
    assert_eq!(
        l["items"][0]["conf"],
        json!({"dest": dest, "destFingerprint": "", "whipBearerToken": ""})
    );

    let _publisher = spawn_cmd(
        &publisher_cmd(&format!("{}/src", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    wait_until(Duration::from_secs(15), "forwarded path readable", || {
        probe(&format!("{}/other", h.rtsp_url())) == Some(("h264".into(), 320, 240))
    });
    let r = http("GET", &format!("{}/v3/paths/forward/list?path=src", h.api_url()), None);
    check_response(&load_spec(), "/v3/paths/forward/list", "GET", &r);
    let l = r.json();
    let item = &l["items"][0];
    assert_eq!(item["state"], "forwarding", "{}", l);
    assert_eq!(item["lastError"], "");
    // the forwarder is no reader of the source path
    let p = http("GET", &format!("{}/v3/paths/get/src", h.api_url()), None).json();
    assert_eq!(p["readers"], json!([]), "{}", p);
    wait_until(Duration::from_secs(10), "outboundBytes counted", || {
        forward_list(&h, "src")["items"][0]["outboundBytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });

    // get by id, and MediaMTX's errors
    let id = item["id"].as_str().unwrap();
    let g = http(
        "GET",
        &format!("{}/v3/paths/forward/get?path=src&id={}", h.api_url(), id),
        None,
    );
    assert_eq!(g.status, 200);
    check_response(&load_spec(), "/v3/paths/forward/get", "GET", &g);
    assert_eq!(g.json()["id"], id);
    let cases = [
        ("/v3/paths/forward/list", 400, "invalid path"),
        ("/v3/paths/forward/list?path=nope", 404, "path not found"),
        ("/v3/paths/forward/get?path=src&id=abc", 400, "invalid UUID length: 3"),
        (
            "/v3/paths/forward/get?path=src&id=0f8fad5b-d9cb-469f-a165-70867728950e",
            404,
            "forward destination not found",
        ),
    ];
    for (url, code, text) in cases {
        let r = http("GET", &format!("{}{}", h.api_url(), url), None);
        assert_eq!((r.status, r.json()["error"].clone()), (code, json!(text)), "{}", url);
    }

    // a forward change keeps the path (and its publisher): the destination is replaced
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/src", h.api_url()),
        Some(&json!({"forward": [{"dest": format!("{}/third", h.rtsp_url())}]}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let l = forward_list(&h, "src");
    assert_ne!(l["items"][0]["id"], id);
    wait_until(Duration::from_secs(15), "new destination readable", || {
        probe(&format!("{}/third", h.rtsp_url())) == Some(("h264".into(), 320, 240))
    });
    let p = http("GET", &format!("{}/v3/paths/get/src", h.api_url()), None).json();
    assert_eq!(p["available"], true);
}

#[test]
fn forward_to_refusing_dest_is_an_error_and_retried() {
    require_ffmpeg();
    let (h, dir) = start("forward-refused");
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    add_path(
        &h,
        "src",
        &json!({"forward": [{"dest": format!("rtmp://127.0.0.1:{}/live", closed_port)}]}),
    );
    let _publisher = spawn_cmd(
        &publisher_cmd(&format!("{}/src", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    let expected = format!("dial tcp 127.0.0.1:{}: connect: connection refused", closed_port);
    wait_until(Duration::from_secs(10), "error state", || {
        let l = forward_list(&h, "src");
        l["items"][0]["state"] == "error" && l["items"][0]["lastError"] == expected.as_str()
    });
    assert_eq!(forward_list(&h, "src")["items"][0]["protocol"], "rtmp");
    // retried after MediaMTX's 5 s pause
    let attempts = || log_of(&dir).matches("[RTMP dest 1] forwarding to").count();
    wait_until(Duration::from_secs(15), "second attempt", || attempts() >= 2);
}

/// ANNOUNCE, a SETUP per track (`trackID=N` controls) and RECORD of `sdp` on one
/// connection: the status codes.
fn rtsp_publish_statuses(h: &mediamtx_double::Handle, path: &str, sdp: &str) -> Vec<u16> {
    let mut s = rtsp::connect(h.rtsp_port, Duration::from_secs(10));
    let url = format!("{}/{}", h.rtsp_url(), path);
    let mut session = String::new();
    let mut codes = Vec::new();
    let mut requests = vec![(
        "ANNOUNCE",
        url.clone(),
        "Content-Type: application/sdp\r\n".to_string(),
        sdp,
    )];
    for i in 0..sdp.matches("m=").count() {
        requests.push((
            "SETUP",
            format!("{}/trackID={}", url, i),
            format!(
                "Transport: RTP/AVP/TCP;unicast;interleaved={}-{};mode=record\r\n",
                2 * i,
                2 * i + 1
            ),
            "",
        ));
    }
    requests.push(("RECORD", url.clone(), String::new(), ""));
    for (cseq, (method, u, extra, body)) in requests.iter().enumerate() {
        let req = format!(
            "{} {} RTSP/1.0\r\nCSeq: {}\r\n{}{}Content-Length: {}\r\n\r\n{}",
            method,
            u,
            cseq + 1,
            extra,
            session,
            body.len(),
            body
        );
        let head = rtsp::rtsp_req(&mut s, &req);
        codes.push(head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0));
        if let Some(id) = rtsp::session_of(&head) {
            session = format!("Session: {}\r\n", id);
        }
    }
    codes
}

#[test]
fn always_available_offline_then_publisher_then_offline() {
    require_ffmpeg();
    let (h, dir) = start("always-available");
    add_path(
        &h,
        "aa",
        &json!({"alwaysAvailable": true, "alwaysAvailableTracks": [{"codec": "H264"}],
            "runOnAvailable": "touch available.txt", "runOnUnavailable": "touch unavailable.txt"}),
    );
    // available from its creation: runOnAvailable without any stream
    wait_until(Duration::from_secs(5), "runOnAvailable", || {
        dir.join("available.txt").exists()
    });
    let url = format!("{}/aa", h.rtsp_url());
    // offline: MediaMTX's offline picture size, available but not online
    assert_eq!(probe(&url), Some(("h264".into(), 1920, 1080)));
    let p = path_get(&h, "aa");
    assert_eq!(
        (p["available"].clone(), p["online"].clone()),
        (json!(true), json!(false)),
        "{}",
        p
    );
    assert_eq!(p["source"], Value::Null);

    // a publisher with other tracks is refused (mediasAreCompatible)
    let opus_only = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\na=control:trackID=0\r\n";
    assert_eq!(rtsp_publish_statuses(&h, "aa", opus_only), vec![200, 200, 400]);
    // the refusal closes the connection with that error (logged once it closed)
    wait_until(Duration::from_secs(5), "the refusal logged", || {
        log_of(&dir).contains("] closed: wants to publish [Opus], but stream expects [H264]")
    });

    // a reader that stays: it logs the size of every frame it decodes
    let reader_log = dir.join("reader.log");
    let mut reader = spawn_cmd(
        &format!(
            "ffmpeg -nostdin -hide_banner -loglevel info -rtsp_transport tcp -i {} -map 0:v -vf showinfo -f null -",
            url
        ),
        &reader_log,
    );
    let sizes = || std::fs::read_to_string(&reader_log).unwrap_or_default();
    wait_until(Duration::from_secs(15), "reader decodes the offline stream", || {
        sizes().contains(" s:1920x1080 ")
    });

    // a publisher replaces the offline stream
    let mut publisher = spawn_cmd(&publisher_cmd(&url, "320x240"), &dir.join("pub.log"));
    wait_until(Duration::from_secs(15), "publisher's stream", || {
        probe(&url) == Some(("h264".into(), 320, 240))
    });
    wait_until(
        Duration::from_secs(15),
        "the same reader gets the publisher's frames",
        || sizes().contains(" s:320x240 "),
    );
    let p = path_get(&h, "aa");
    assert_eq!(
        (p["available"].clone(), p["online"].clone()),
        (json!(true), json!(true)),
        "{}",
        p
    );
    assert_eq!(p["source"]["type"], "rtspSession");

    // publisher gone: offline again
    publisher.interrupt_and_wait();
    wait_until(Duration::from_secs(15), "offline stream again", || {
        probe(&url) == Some(("h264".into(), 1920, 1080))
    });
    let p = path_get(&h, "aa");
    assert_eq!(
        (p["available"].clone(), p["online"].clone()),
        (json!(true), json!(false)),
        "{}",
        p
    );
    wait_until(
        Duration::from_secs(15),
        "the same reader gets the offline frames again",
        || {
            let log = sizes();
            let last_pub = log.rfind(" s:320x240 ").unwrap_or(0);
            log[last_pub..].contains(" s:1920x1080 ")
        },
    );
    assert!(pid_alive(reader.pid()), "the reader stayed connected");
    assert_eq!(path_get(&h, "aa")["readers"].as_array().map(|r| r.len()), Some(1));
    reader.interrupt_and_wait();
    // logged as MediaMTX: available once (setAvailable at the path's creation), never
    // "and online"; the publisher's session is publishing to the path
    let log = log_of(&dir);
    let lines = |t: &str| log.lines().filter(|l| l.ends_with(t)).count();
    assert_eq!(lines("INF [path aa] stream is available, 1 track (H264)"), 1, "{}", log);
    assert_eq!(lines("stream is available and online, 1 track (H264)"), 0, "{}", log);
    assert!(
        log.lines()
            .any(|l| l.contains("INF [RTSP] [session ") && l.ends_with("] is publishing to path 'aa'")),
        "{}",
        log
    );

    // removing the path makes it unavailable
    assert!(
        !dir.join("unavailable.txt").exists(),
        "runOnUnavailable before the path went"
    );
    let r = http("DELETE", &format!("{}/v3/config/paths/delete/aa", h.api_url()), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(Duration::from_secs(5), "runOnUnavailable", || {
        dir.join("unavailable.txt").exists()
    });
}

/// Path `aaf` of `h`, alwaysAvailable with a 1 s file that ffmpeg makes of a 160x120
/// test picture (input 0) and `inputs`, with `encode` options; its RTSP URL.
fn always_available_file_path(
    h: &mediamtx_double::Handle,
    dir: &std::path::Path,
    inputs: &[&str],
    encode: &[&str],
) -> String {
    let file = dir.join("offline.mp4");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15"])
        .args(inputs)
        .args(["-t", "1", "-c:v", "libx264", "-g", "15", "-pix_fmt", "yuv420p"])
        .args(encode)
        .arg(&file)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    add_path(
        h,
        "aaf",
        &json!({"alwaysAvailable": true, "alwaysAvailableFile": file.to_str().unwrap()}),
    );
    format!("{}/aaf", h.rtsp_url())
}

#[test]
fn always_available_file_is_looped() {
    require_ffmpeg();
    let (h, dir) = start("always-available-file");
    let url = always_available_file_path(&h, &dir, &[], &[]);
    assert_eq!(probe(&url), Some(("h264".into(), 160, 120)));
    // the 1 s file played a few times by the same generator (looped, not restarted)
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(probe(&url), Some(("h264".into(), 160, 120)));
    let log = log_of(&dir);
    assert_eq!(log.matches("path aaf: started offline").count(), 1, "{}", log);
}

/// The offline stream of an `alwaysAvailableFile` carries the tracks MediaMTX takes from
/// it (MP3 is dropped), and publishers must bring those tracks and their AAC configuration.
#[test]
fn always_available_file_tracks_are_checked_against_publishers() {
    require_ffmpeg();
    let (h, dir) = start("always-available-file-tracks");
    let sine = ["-f", "lavfi", "-i", "sine=sample_rate=44100"];
    let url = always_available_file_path(
        &h,
        &dir,
        &[sine, sine].concat(),
        &[
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-c:a:0",
            "libmp3lame",
            "-c:a:1",
            "aac",
            "-ac:a:1",
            "2",
        ],
    );
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-rw_timeout", "5000000"])
        .args(["-show_entries", "stream=codec_name,sample_rate", "-of", "csv=p=0", &url])
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "h264\naac,44100\n");

    let media =
        |kind: &str, rest: &str, i: usize| format!("m={} 0 RTP/AVP 96\r\n{}a=control:trackID={}\r\n", kind, rest, i);
    let video = media(
        "video",
        "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n",
        0,
    );
    let aac = |rate: u32, config: &str| {
        media("audio", &format!("a=rtpmap:96 mpeg4-generic/{}/2\r\na=fmtp:96 streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config={}\r\n", rate, config), 1)
    };
    let sdp = |medias: &str| format!("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n{}", medias);
    assert_eq!(rtsp_publish_statuses(&h, "aaf", &sdp(&video)), vec![200, 200, 400]);
    let aac48 = format!("{}{}", video, aac(48000, "1190"));
    assert_eq!(rtsp_publish_statuses(&h, "aaf", &sdp(&aac48)), vec![200, 200, 200, 400]);
    for why in [
        "wants to publish [H264], but stream expects [H264 MPEG-4 Audio]",
        "MPEG-4 audio configuration does not match, is type=2, sampleRate=48000, channelCount=2, but stream expects type=2, sampleRate=44100, channelCount=2",
    ] {
        wait_until(Duration::from_secs(5), why, || log_of(&dir).contains(&format!("] closed: {}", why)));
    }
    let aac44 = format!("{}{}", video, aac(44100, "1210"));
    assert_eq!(rtsp_publish_statuses(&h, "aaf", &sdp(&aac44)), vec![200, 200, 200, 200]);
}

/// mediasAreCompatible also compares the audio configuration of MPEG-4 Audio, G711 and
/// LPCM tracks with the configured ones.
#[test]
fn always_available_publishers_bring_the_configured_audio() {
    require_ffmpeg();
    let (h, dir) = start("always-available-audio");
    add_path(
        &h,
        "aac",
        &json!({"alwaysAvailable": true,
            "alwaysAvailableTracks": [{"codec": "MPEG4Audio", "sampleRate": 48000, "channelCount": 2}]}),
    );
    add_path(
        &h,
        "pcm",
        &json!({"alwaysAvailable": true,
            "alwaysAvailableTracks": [{"codec": "G711", "sampleRate": 8000, "channelCount": 1, "muLaw": true}]}),
    );
    let aac = |config: &str| {
        format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 mpeg4-generic/{}/2\r\na=fmtp:96 streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config={}\r\na=control:trackID=0\r\n",
            if config == "1190" { 48000 } else { 44100 },
            config
        )
    };
    // AAC-LC 44.1 kHz stereo where 48 kHz is configured: refused at RECORD
    assert_eq!(rtsp_publish_statuses(&h, "aac", &aac("1210")), vec![200, 200, 400]);
    let pcma = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=0\r\n";
    assert_eq!(rtsp_publish_statuses(&h, "pcm", pcma), vec![200, 200, 400]);
    for why in [
        "MPEG-4 audio configuration does not match, is type=2, sampleRate=44100, channelCount=2, but stream expects type=2, sampleRate=48000, channelCount=2",
        "G711 configuration does not match, is MULaw=false, sampleRate=8000, channelCount=1, but stream expects MULaw=true, sampleRate=8000, channelCount=1",
    ] {
        wait_until(Duration::from_secs(5), why, || log_of(&dir).contains(&format!("] closed: {}", why)));
    }
    // the configured ones are taken
    assert_eq!(rtsp_publish_statuses(&h, "aac", &aac("1190")), vec![200, 200, 200]);
    let pcmu = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=0\r\n";
    assert_eq!(rtsp_publish_statuses(&h, "pcm", pcmu), vec![200, 200, 200]);
}
