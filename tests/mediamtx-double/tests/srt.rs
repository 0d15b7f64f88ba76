//! The double's SRT server with real libsrt clients (ffmpeg/ffprobe `srt://`): publish,
//! read back over RTSP and SRT, `/v3/srtconns`, kick, refusals, passphrases.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn path_get(h: &mediamtx_double::Handle, name: &str) -> Value {
    let r = http("GET", &format!("{}/v3/paths/get/{}", h.api_url(), name), None);
    if r.status == 200 {
        r.json()
    } else {
        json!({"available": false, "readers": []})
    }
}

/// ffmpeg publishing H.264 in MPEG-TS to an `srt://` URL.
fn srt_publisher(url: &str, size: &str, log: &Path) -> Proc {
    spawn_cmd(
        &format!(
            "ffmpeg -nostdin -hide_banner -loglevel warning -re -f lavfi -i testsrc2=size={}:rate=15 -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f mpegts {}",
            size, url
        ),
        log,
    )
}

/// ffprobe of the first video stream (bounded by a hang limit).
fn probe(url: &str) -> Result<Value, String> {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-print_format", "json", "-show_streams"])
        .args(["-rtsp_transport", "tcp"])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    if !out.status.success() {
        return Err(format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["streams"][0].clone())
}

fn assert_h264(s: &Value, w: u64, h: u64) {
    assert_eq!(s["codec_name"], "h264", "{}", s);
    assert_eq!(s["width"], w, "{}", s);
    assert_eq!(s["height"], h, "{}", s);
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
    let url = format!("{}?streamid=publish:mystream:q=1", h.srt_url());
    let mut publisher = srt_publisher(&url, "320x240", &dir.join("pub.log"));
    wait_until(Duration::from_secs(15), "stream available", || {
        path_get(&h, "mystream")["available"] == true
    });
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
