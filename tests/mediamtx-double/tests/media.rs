//! Media behaviour of the double with real ffmpeg publishers/readers: relay to several
//! readers, runOnDemand start/close-after, recording, pulled URL sources, the CLI.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One request on a new RTSP connection: the answer's head.
fn rtsp_raw(port: u16, req: &str) -> String {
    rtsp::rtsp_req(&mut rtsp::connect(port, Duration::from_secs(20)), req)
}

/// Timestamps of a file's video packets (a file still written included).
fn video_pts(file: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .collect()
}

/// Duration of a (possibly still written) file from its last video packet.
fn probe_duration(file: &Path) -> f64 {
    video_pts(file).into_iter().fold(0.0, f64::max)
}

fn list_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn publisher_relayed_to_two_readers() {
    require_ffmpeg();
    let spec = load_spec();
    let (h, dir) = start("relay");
    let url = format!("{}/live", h.rtsp_url());

    // no stream yet → 404; unknown tracks
    let r = rtsp_raw(h.rtsp_port, &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url));
    assert!(r.starts_with("RTSP/1.0 404"), "{}", r);

    let _pubp = spawn_cmd(&publisher_cmd(&url, "640x480"), &dir.join("pub.log"));
    wait_available(&h, "live");
    let p = path_get(&h, "live");
    assert_eq!(p["confName"], "all_others");
    assert_eq!(p["source"]["type"], "rtspSession");
    assert_eq!(p["tracks2"][0]["codec"], "H264");
    assert_eq!(p["tracks2"][0]["codecProps"]["width"], 640);
    assert_eq!(p["tracks2"][0]["codecProps"]["height"], 480);
    assert_eq!(p["tracks2"][0]["codecProps"]["profile"], "Baseline");
    let resp = http("GET", &format!("{}/v3/paths/get/live", h.api_url()), None);
    check_response(&spec, "/v3/paths/get/{name}", "GET", &resp);

    // two concurrent readers both decode frames
    let (u1, u2) = (url.clone(), url.clone());
    let (o1, o2) = (dir.join("r1.md5"), dir.join("r2.md5"));
    let t1 = std::thread::spawn(move || read_frames(&u1, "tcp", 45, &o1));
    let t2 = std::thread::spawn(move || read_frames(&u2, "tcp", 45, &o2));
    wait_until(Duration::from_secs(10), "two readers listed", || {
        path_get(&h, "live")["readers"].as_array().map(|a| a.len()) == Some(2)
    });
    let p = path_get(&h, "live");
    assert_eq!(p["readers"][0]["type"], "rtspSession");
    let resp = http("GET", &format!("{}/v3/paths/list", h.api_url()), None);
    check_response(&spec, "/v3/paths/list", "GET", &resp);
    assert!(t1.join().unwrap() >= 45);
    assert!(t2.join().unwrap() >= 45);
    wait_until(Duration::from_secs(5), "readers gone", || {
        path_get(&h, "live")["readers"] == json!([])
    });
    let p1 = path_get(&h, "live");
    std::thread::sleep(Duration::from_millis(700));
    let p2 = path_get(&h, "live");
    assert!(
        p2["inboundBytes"].as_u64() > p1["inboundBytes"].as_u64(),
        "inboundBytes grows"
    );
    assert!(p2["outboundBytes"].as_u64().unwrap() > 0);

    // dropping the publisher makes the stream unavailable; regex path then disappears
    assert_eq!(
        http(
            "POST",
            &format!("{}/control/drop-publisher?path=live", h.control_url()),
            None
        )
        .status,
        200
    );
    wait_until(Duration::from_secs(5), "path gone", || {
        http("GET", &format!("{}/v3/paths/get/live", h.api_url()), None).status == 404
    });

    // UDP-only SETUP → 461 when rtspTransports allows TCP only (checked before the path,
    // as gortsplib does; the change restarts the RTSP server)
    patch_global(&h, r#"{"rtspTransports": ["tcp"]}"#);
    let r = rtsp_raw(
        h.rtsp_port,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n",
            url
        ),
    );
    assert!(r.starts_with("RTSP/1.0 461"), "{}", r);
}

#[test]
fn run_on_demand_start_and_close_after() {
    require_ffmpeg();
    let (h, dir) = start("ondemand");
    let envf = dir.join("env.txt");
    let cmd = format!(
        "sh -c 'printenv MTX_PATH RTSP_PORT MTX_QUERY > {}; exec {}'",
        envf.display(),
        publisher_cmd("rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH", "320x240")
    );
    let body = json!({
        "runOnDemand": cmd,
        "runOnDemandStartTimeout": "10s",
        "runOnDemandCloseAfter": "1s",
        "recordDeleteAfter": "0s",
    });
    replace_path(&h, "cam0", &body);
    assert_eq!(path_get(&h, "cam0")["available"], false);
    let status = || http("GET", &format!("{}/control/status", h.control_url()), None).json();
    assert_eq!(status()["children"], json!([]));

    // first reader starts the command, waits for its publisher and gets frames
    let url = format!("{}/cam0?user=x", h.rtsp_url());
    let u = url.clone();
    let out = dir.join("r.md5");
    let t = std::thread::spawn(move || read_frames(&u, "tcp", 30, &out));
    let mut pid = 0;
    wait_until(Duration::from_secs(10), "on-demand child and stream", || {
        let s = status();
        if let Some(c) = s["children"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["kind"] == "OnDemand"))
        {
            pid = c["pid"].as_i64().unwrap() as i32;
        }
        pid != 0 && path_get(&h, "cam0")["available"] == true
    });
    assert!(t.join().unwrap() >= 30);
    let env = std::fs::read_to_string(&envf).unwrap();
    assert_eq!(env, format!("cam0\n{}\nuser=x\n", h.rtsp_port));

    // after the last reader leaves, closeAfter (1 s) later the group gets SIGINT
    let left = Instant::now();
    wait_until(Duration::from_secs(8), "on-demand command stopped", || !pid_alive(pid));
    let waited = left.elapsed();
    assert!(waited >= Duration::from_millis(700), "stopped too early: {:?}", waited);
    wait_until(Duration::from_secs(5), "stream gone", || {
        path_get(&h, "cam0")["available"] == false
    });
    assert_eq!(status()["children"], json!([]));

    // start timeout: a command that never publishes → DESCRIBE fails after the timeout
    let body = json!({"runOnDemand": "sleep 30", "runOnDemandStartTimeout": "1s", "runOnDemandCloseAfter": "1s"});
    replace_path(&h, "slow", &body);
    let t0 = Instant::now();
    let r = rtsp_raw(
        h.rtsp_port,
        &format!("DESCRIBE {}/slow RTSP/1.0\r\nCSeq: 1\r\n\r\n", h.rtsp_url()),
    );
    // path.go: not PathNoStreamAvailableError, so a 400 that closes the connection
    assert!(r.starts_with("RTSP/1.0 400"), "{}", r);
    assert!(t0.elapsed() >= Duration::from_millis(900), "{:?}", t0.elapsed());
    wait_until(Duration::from_secs(5), "the timeout logged", || {
        log_of(&dir).contains("closed: source of path 'slow' has timed out")
    });
    let sleep_pid = status()["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "slow")
        .map(|c| c["pid"].as_i64().unwrap() as i32);
    let sleep_pid = sleep_pid.expect("sleep child running during closeAfter");
    wait_until(Duration::from_secs(5), "sleep interrupted", || !pid_alive(sleep_pid));
}

#[test]
fn recording_segments_and_recordings_api() {
    require_ffmpeg();
    let spec = load_spec();
    let (h, dir) = start("record");
    let a = h.api_url();
    let rec = dir.join("recordings");
    let body = json!({
        "record": true,
        "recordPath": format!("{}/%path/cam1_%Y-%m-%d_%H-%M-%S-%f", rec.display()),
        "recordFormat": "fmp4",
        "recordSegmentDuration": "2s",
        "recordDeleteAfter": "0s",
    });
    replace_path(&h, "cam1", &body);
    let url = format!("{}/cam1", h.rtsp_url());
    let mut pubp = spawn_cmd(&publisher_cmd(&url, "320x240"), &dir.join("pub.log"));
    let segdir = rec.join("cam1");
    wait_until(Duration::from_secs(15), "first segment", || {
        !list_files(&segdir, ".mp4").is_empty()
    });
    // the recorder is not a reader
    assert_eq!(path_get(&h, "cam1")["readers"], json!([]));

    let first = list_files(&segdir, ".mp4")[0].clone();
    let fname = first.file_name().unwrap().to_string_lossy().to_string();
    assert!(fname.starts_with("cam1_") && fname.ends_with(".mp4"), "{}", fname);
    wait_until(Duration::from_secs(5), "playable first fragment", || {
        probe_duration(&first) > 0.0
    });
    let pr = ffprobe(&first);
    assert_eq!(pr["streams"][0]["codec_name"], "h264", "{}", pr);
    assert_eq!(pr["streams"][0]["width"], 320);
    assert_eq!(pr["streams"][0]["height"], 240);
    let d1 = probe_duration(&first);
    wait_until(Duration::from_secs(8), "segment duration grows / next segment", || {
        probe_duration(&first) > d1 || list_files(&segdir, ".mp4").len() >= 2
    });
    wait_until(Duration::from_secs(10), "three segments", || {
        list_files(&segdir, ".mp4").len() >= 3
    });
    let d_closed = probe_duration(&first);
    assert!((1.5..4.0).contains(&d_closed), "first segment duration {}", d_closed);

    // recordings API lists them with the start parsed from the file name
    let r = http("GET", &format!("{}/v3/recordings/get/cam1", a), None);
    check_response(&spec, "/v3/recordings/get/{name}", "GET", &r);
    let segs = r.json()["segments"].as_array().unwrap().clone();
    assert!(segs.len() >= 3, "{:?}", segs);
    let start0 = segs[0]["start"].as_str().unwrap().to_string();
    let stem = fname.trim_start_matches("cam1_").trim_end_matches(".mp4");
    // 2026-11-24_08-08-34-000000 → 2026-11-24T08:08:34
    let expect = format!("{}T{}", &stem[0..10], stem[11..19].replace('-', ":"));
    assert!(start0.starts_with(&expect), "{} vs {}", start0, fname);
    let r = http("GET", &format!("{}/v3/recordings/list", a), None);
    check_response(&spec, "/v3/recordings/list", "GET", &r);
    assert_eq!(r.json()["items"][0]["name"], "cam1");
    let del = format!(
        "{}/v3/recordings/deletesegment?path=cam1&start={}",
        a,
        start0.replace('+', "%2B")
    );
    assert_eq!(http("DELETE", &del, None).status, 200);
    assert!(!first.exists());

    // record:false is hot and closes the current segment before answering
    assert_eq!(
        http(
            "PATCH",
            &format!("{}/v3/config/paths/patch/cam1", a),
            Some(r#"{"record":false}"#)
        )
        .status,
        200
    );
    let st = http("GET", &format!("{}/control/status", h.control_url()), None).json();
    assert!(
        st["children"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] != "Recorder"),
        "{}",
        st
    );
    let files = list_files(&segdir, ".mp4");
    let last = files.last().unwrap().clone();
    let size = std::fs::metadata(&last).unwrap().len();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        size,
        "closed segment still growing"
    );
    assert_eq!(list_files(&segdir, ".mp4").len(), files.len());
    assert!(probe_duration(&last) > 0.0);
    // the publisher was not disconnected by the toggle
    assert_eq!(path_get(&h, "cam1")["available"], true);

    // MPEG-TS, and a new segment on publisher reconnect
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/cam1", a),
        Some(r#"{"record":true,"recordFormat":"mpegts","recordSegmentDuration":"1h"}"#),
    );
    assert_eq!(r.status, 200);
    wait_until(Duration::from_secs(15), "ts segment", || {
        list_files(&segdir, ".ts").len() == 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    pubp.interrupt_and_wait();
    wait_until(Duration::from_secs(5), "unavailable", || {
        path_get(&h, "cam1")["available"] == false
    });
    std::thread::sleep(Duration::from_millis(1100)); // next file name has a later second
    let _pub2 = spawn_cmd(&publisher_cmd(&url, "320x240"), &dir.join("pub2.log"));
    wait_until(Duration::from_secs(15), "second ts segment after reconnect", || {
        list_files(&segdir, ".ts").len() == 2
    });
    let ts = list_files(&segdir, ".ts");
    let pr = ffprobe(&ts[0]);
    assert_eq!(pr["streams"][0]["codec_name"], "h264", "{}", pr);
    assert_eq!(pr["streams"][0]["width"], 320);
}

#[test]
fn url_source_pulled_on_demand() {
    require_ffmpeg();
    let (h, dir) = start("pull");
    let cam_url = format!("{}/camera", h.rtsp_url());
    let _pubp = publish(&h, &dir, "camera");
    let body =
        json!({"source": cam_url, "sourceOnDemand": true, "rtspTransport": "tcp", "sourceOnDemandCloseAfter": "1s"});
    replace_path(&h, "ext", &body);
    let p = path_get(&h, "ext");
    assert_eq!(p["source"], json!({"type": "rtspSource", "id": ""}));
    assert_eq!(
        (p["online"].clone(), p["available"].clone()),
        (json!(true), json!(false))
    );
    let n = read_frames(&format!("{}/ext", h.rtsp_url()), "tcp", 20, &dir.join("r.md5"));
    assert!(n >= 20);
    assert_eq!(path_get(&h, "ext")["tracks2"][0]["codecProps"]["width"], 320);
    // not read anymore → the relay stops after sourceOnDemandCloseAfter
    wait_until(Duration::from_secs(8), "pull stopped", || {
        path_get(&h, "ext")["available"] == false
    });
    assert_eq!(path_get(&h, "ext")["source"]["type"], "rtspSource");
    // publishing to a URL-source path is refused
    let r = rtsp_raw(
        h.rtsp_port,
        &format!(
            "ANNOUNCE {}/ext RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 2\r\n\r\nv=",
            h.rtsp_url()
        ),
    );
    assert!(r.starts_with("RTSP/1.0 400"), "{}", r);
}

#[test]
fn cli_prints_ready_and_cleans_up_children() {
    let dir = temp_dir("cli");
    let (mut child, line) = spawn_binary(&dir);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 7, "{}", line);
    assert_eq!(words[0], "READY");
    for (w, key) in words[4..].iter().zip(["playback=", "metrics=", "pprof="]) {
        assert!(w.starts_with(&format!("{}http://127.0.0.1:", key)), "{}", line);
    }
    let api = words[1].strip_prefix("api=").unwrap().to_string();
    let rtsp = words[2].strip_prefix("rtsp=").unwrap().to_string();
    let control = words[3].strip_prefix("control=").unwrap().to_string();
    assert!(
        api.starts_with("http://127.0.0.1:")
            && rtsp.starts_with("rtsp://127.0.0.1:")
            && control.starts_with("http://127.0.0.1:")
    );
    assert_eq!(http("GET", &format!("{}/v3/info", api), None).status, 200);
    // leave an on-demand child running, then SIGTERM the double
    let body = json!({"runOnDemand": "sleep 60", "runOnDemandStartTimeout": "1s", "runOnDemandCloseAfter": "60s"});
    http(
        "POST",
        &format!("{}/v3/config/paths/add/od", api),
        Some(&body.to_string()),
    );
    let port: u16 = rtsp.rsplit(':').next().unwrap().parse().unwrap();
    let r = rtsp_raw(port, &format!("DESCRIBE {}/od RTSP/1.0\r\nCSeq: 1\r\n\r\n", rtsp));
    assert!(r.starts_with("RTSP/1.0 400"), "{}", r);
    let st = http("GET", &format!("{}/control/status", control), None).json();
    let pid = st["children"][0]["pid"].as_i64().expect("child") as i32;
    assert!(pid_alive(pid));
    unsafe {
        libc::kill(child.pid(), libc::SIGTERM);
    }
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "double did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{:?}", status);
    assert!(!pid_alive(pid), "on-demand child left behind");
}

/// Starts the double's binary on free ports; returns it and its READY line.
fn spawn_binary(dir: &Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mediamtx-double"))
        .args(["--api-port", "0", "--rtsp-port", "0", "--control-port", "0", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Proc(child), line)
}

/// Starts the double's binary; returns (child, api url, rtsp url, control url).
fn start_binary(dir: &Path) -> (Proc, String, String, String) {
    let (child, line) = spawn_binary(dir);
    let w: Vec<String> = line.split_whitespace().map(|s| s.to_string()).collect();
    assert_eq!(w.len(), 7, "{}", line);
    let get = |i: usize, p: &str| w[i].strip_prefix(p).unwrap().to_string();
    (child, get(1, "api="), get(2, "rtsp="), get(3, "control="))
}

/// Like MediaMTX (parts of recordPartDuration written as they complete), a SIGKILL of
/// the double loses at most about one part of a recording — even with a GOP far longer
/// than a part.
#[test]
fn sigkill_mid_recording_loses_at_most_a_part() {
    sigkill_case("fmp4", ".mp4");
}

#[test]
fn sigkill_mid_mpegts_recording_loses_at_most_a_part() {
    sigkill_case("mpegts", ".ts");
}

fn sigkill_case(format: &str, ext: &str) {
    require_ffmpeg();
    let dir = temp_dir(&format!("sigkill-{}", format));
    let (mut dbl, api, rtsp, control) = start_binary(&dir);
    let rec = dir.join("rec");
    let body = json!({
        "record": true,
        "recordFormat": format,
        "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display()),
    });
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/cam1", api),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // keyframes every 10 s: only the part duration makes data reach the disk
    let cmd = publisher_cmd(&format!("{}/cam1", rtsp), "320x240").replace("-g 15", "-g 150");
    let _pubp = spawn_cmd(&cmd, &dir.join("pub.log"));
    let segdir = rec.join("cam1");
    wait_until(Duration::from_secs(15), "first segment", || {
        !list_files(&segdir, ext).is_empty()
    });
    let st = http("GET", &format!("{}/control/status", control), None).json();
    let recorder = st["paths"][0]["recorderPid"].as_i64().expect("recorder pid") as i32;
    let segs = http("GET", &format!("{}/v3/recordings/get/cam1", api), None).json()["segments"].clone();
    let start = segs[0]["start"].as_str().unwrap().to_string();
    let (s, ns) = mediamtx_double::util::parse_rfc3339(&start).unwrap();
    let start = std::time::UNIX_EPOCH + Duration::new(s as u64, ns);
    // kill 5.5 s into the segment: mid-part, mid-GOP
    let kill_at = start + Duration::from_millis(5500);
    if let Ok(d) = kill_at.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(d);
    }
    let killed = std::time::SystemTime::now();
    unsafe {
        libc::kill(dbl.pid(), libc::SIGKILL);
    }
    let _ = dbl.0.wait();
    // the orphaned recorder ffmpeg loses its input and its pipe; it must not write on
    wait_until(Duration::from_secs(10), "recorder gone", || !pid_alive(recorder));
    let files = list_files(&segdir, ext);
    assert_eq!(files.len(), 1, "{:?}", files);
    let recorded = probe_span(&files[0]) + 1.0 / 15.0;
    let elapsed = killed.duration_since(start).unwrap().as_secs_f64();
    let lost = elapsed - recorded;
    eprintln!(
        "{}: SIGKILL after {:.2} s of recording: {:.2} s in the file, {:.2} s lost",
        format, elapsed, recorded, lost
    );
    assert!(recorded > 3.0, "only {:.2} s of {:.2} s recorded", recorded, elapsed);
    assert!(lost < 1.6, "{:.2} s lost (part duration 1 s)", lost);
}

/// `record` off and on again closes the segment and starts a new one (with its own name).
#[test]
fn record_off_and_on_starts_a_new_segment() {
    require_ffmpeg();
    let (h, dir) = start("recoffon");
    let a = h.api_url();
    let rec = dir.join("rec");
    let body = json!({
        "record": true,
        "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display()),
    });
    add_path(&h, "cam1", &body);
    let _pubp = spawn_cmd(
        &publisher_cmd(&format!("{}/cam1", h.rtsp_url()), "320x240"),
        &dir.join("pub.log"),
    );
    let segdir = rec.join("cam1");
    wait_until(Duration::from_secs(15), "first segment", || {
        list_files(&segdir, ".mp4")
            .first()
            .map(|f| probe_duration(f) > 0.5)
            .unwrap_or(false)
    });
    let patch = |on: bool| {
        let r = http(
            "PATCH",
            &format!("{}/v3/config/paths/patch/cam1", a),
            Some(&json!({ "record": on }).to_string()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    patch(false);
    let first = list_files(&segdir, ".mp4");
    assert_eq!(first.len(), 1);
    let len = std::fs::metadata(&first[0]).unwrap().len();
    // a closed segment carries its overall duration in the mvhd, like MediaMTX writes it
    let media = probe_duration(&first[0]);
    let mvhd = mvhd_duration(&first[0]);
    assert!((mvhd - media).abs() < 0.2, "mvhd {} s, media {} s", mvhd, media);
    patch(true);
    wait_until(Duration::from_secs(15), "second segment", || {
        list_files(&segdir, ".mp4").len() == 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::metadata(&first[0]).unwrap().len(),
        len,
        "closed segment rewritten"
    );
    let files = list_files(&segdir, ".mp4");
    assert!(probe_duration(&files[1]) > 0.0);
    // %f holds real microseconds
    let n = |p: &std::path::PathBuf| p.file_stem().unwrap().to_string_lossy().to_string();
    assert_ne!(n(&files[0]), n(&files[1]));
    // the recorder says what it records, and that it stopped, as MediaMTX's
    let log = log_of(&dir);
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" INF [path cam1] [recorder] ").map(|(_, t)| t))
        .collect();
    assert_eq!(
        lines,
        [
            "recording 1 track (H264)",
            "recording stopped",
            "recording 1 track (H264)"
        ],
        "{}",
        log
    );
}

/// The recorder takes the tracks its format supports (formatFMP4/formatMPEGTS) and skips
/// the others with a warning; with none it records nothing and says so.
#[test]
fn recorder_skips_tracks_its_format_does_not_take() {
    require_ffmpeg();
    let (h, dir) = start("recskip");
    let rec = dir.join("rec");
    let body = json!({
        "record": true,
        "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display()),
    });
    add_path(&h, "mixed", &body);
    add_path(&h, "vp8", &body);
    // H.264 with G.722 audio: fMP4 takes the video only; VP8 alone: nothing fMP4 takes
    let _publishers = publish_mixed_and_vp8(&h, &dir);
    wait_until(Duration::from_secs(15), "a segment of the mixed stream", || {
        list_files(&rec.join("mixed"), ".mp4")
            .first()
            .map(|f| probe_duration(f) > 0.5)
            .unwrap_or(false)
    });
    wait_available(&h, "vp8");
    std::thread::sleep(Duration::from_millis(500));
    let file = list_files(&rec.join("mixed"), ".mp4").remove(0);
    let streams = ffprobe(&file)["streams"].as_array().cloned().unwrap_or_default();
    let codecs: Vec<&str> = streams.iter().filter_map(|s| s["codec_name"].as_str()).collect();
    assert_eq!(codecs, ["h264"], "{:?}", streams);
    assert!(list_files(&rec.join("vp8"), ".mp4").is_empty());
    let log = log_of(&dir);
    for line in [
        "WAR [path mixed] [recorder] skipping track 2 (G722)",
        "INF [path mixed] [recorder] recording 1 track (H264)",
        "WAR [path vp8] [recorder] no supported tracks found, skipping recording",
    ] {
        assert_eq!(
            log.lines().filter(|l| l.ends_with(line)).count(),
            1,
            "{}\n{}",
            line,
            log
        );
    }
    assert!(!log.contains("[path vp8] [recorder] recording"), "{}", log);
}

/// The mvhd duration of an MP4 file, in seconds.
fn mvhd_duration(file: &Path) -> f64 {
    let b = std::fs::read(file).unwrap();
    let i = b.windows(4).position(|w| w == b"mvhd").expect("mvhd");
    let body = i + 4;
    let be = |at: usize, n: usize| b[at..at + n].iter().fold(0u64, |a, x| (a << 8) | *x as u64);
    let (ts, d) = if b[body] == 1 {
        (be(body + 20, 4), be(body + 24, 8))
    } else {
        (be(body + 12, 4), be(body + 16, 4))
    };
    d as f64 / ts as f64
}

/// First to last video timestamp of a file.
fn probe_span(file: &Path) -> f64 {
    let t = video_pts(file);
    let (lo, hi) = t.iter().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    if t.is_empty() {
        0.0
    } else {
        hi - lo
    }
}

/// A recorder that cannot write fails with Go's error, logged by the path's recorder,
/// and starts again after its pause (recorderInstance.run, Recorder.run).
#[test]
fn recorder_errors_are_logged_with_go_texts_and_retried() {
    require_ffmpeg();
    let (h, dir) = start("recerr");
    // a file where the recorder wants a directory
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    for (name, format) in [("fm", "fmp4"), ("ts", "mpegts")] {
        let body = json!({
            "record": true,
            "recordFormat": format,
            "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", blocker.display()),
        });
        add_path(&h, name, &body);
    }
    let _fm = spawn_cmd(
        &publisher_cmd(&format!("{}/fm", h.rtsp_url()), "320x240"),
        &dir.join("fm.log"),
    );
    let _ts = spawn_cmd(
        &publisher_cmd(&format!("{}/ts", h.rtsp_url()), "320x240"),
        &dir.join("ts.log"),
    );
    for name in ["fm", "ts"] {
        let line = format!(
            "ERR [path {}] [recorder] mkdir {}: not a directory",
            name,
            blocker.display()
        );
        // logged again by the restarted recorder
        wait_until(Duration::from_secs(20), &line, || {
            log_of(&dir).lines().filter(|l| l.ends_with(&line)).count() >= 2
        });
    }
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory");
}
