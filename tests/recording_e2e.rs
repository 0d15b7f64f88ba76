//! Streaming and recording end to end: the service binary, the MediaMTX double, real FFmpeg,
//! and every recording checked with ffprobe (api.md §5, mediamtx.md §3).

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Rig {
    double: Double,
    svc: Service,
}

fn rig_with(extra: &str) -> Rig {
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"1s\"\nretries = 1\nbreaker_failures = 3\nbreaker_reset = \"1s\"\n\n\
         [recording]\nstart_timeout = \"15s\"\nprogress_interval = \"1s\"\nsegment_duration = \"1h\"\n{extra}\n\n\
         [[camera.simulated]]\nid = \"camera50\"\nsize = \"640x480\"\nfps = 15\n\n[[camera.simulated]]\nid = \"camera51\"\nsize = \"320x240\"\nfps = 10\n",
        double.api_url(),
        double.rtsp_port
    );
    let svc = Service::start("", "", &rest);
    Rig { double, svc }
}

fn rig() -> Rig {
    rig_with("")
}

fn rec_dir(r: &Rig, cam: &str) -> PathBuf {
    r.svc.dir.path().join("recordings").join(cam)
}

async fn operator(r: &Rig) -> Client {
    let mut c = Client::connect(&r.svc.ws_url()).await;
    c.auth_as(Role::Operator).await;
    c
}

fn name_ok(name: &str, cam: &str, ext: &str) -> bool {
    // cameraN_YYYY-MM-DD_HH-MM-SS-ffffff.ext
    let Some(rest) = name.strip_prefix(&format!("{cam}_")) else {
        return false;
    };
    let Some(stamp) = rest.strip_suffix(&format!(".{ext}")) else {
        return false;
    };
    stamp.len() == 26
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 13 | 16 | 19 => b == b'-',
            10 => b == b'_',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn five_second_recording_is_h264_at_camera_size() {
    let r = rig();
    smol::block_on(async {
        let mut c = operator(&r).await;
        c.result("subscribe_events", json!({"topics": ["recording_status_update"]}))
            .await;
        // parameter and state errors first
        assert_eq!(
            c.error_code("start_recording", json!({"device": "camera99"})).await,
            NOT_FOUND
        );
        assert_eq!(
            c.error_code("start_recording", json!({"device": "camera50", "format": "avi"}))
                .await,
            INVALID_PARAMS
        );
        assert_eq!(
            c.error_code("start_recording", json!({"device": "camera50", "duration": 0}))
                .await,
            INVALID_PARAMS
        );
        assert_eq!(
            c.error_code("stop_recording", json!({"device": "camera50"})).await,
            INVALID_STATE,
            "stop when idle"
        );

        let t0 = Instant::now();
        let started = c.result("start_recording", json!({"device": "camera50"})).await;
        eprintln!("start_recording answered after {:?}", t0.elapsed());
        // The first segment exists now: media from here on is recorded.
        let recording_since = Instant::now();
        assert_eq!(started["status"], "RECORDING");
        assert_eq!(started["format"], "fmp4");
        assert!(started["duration"].is_null());
        let first = started["filename"].as_str().unwrap().to_string();
        assert!(name_ok(&first, "camera50", "mp4"), "{first}");
        assert!(
            rec_dir(&r, "camera50").join(&first).exists(),
            "the first segment exists when start_recording returns"
        );
        assert_eq!(
            c.error_code("start_recording", json!({"device": "camera50"})).await,
            INVALID_STATE,
            "start twice"
        );
        let ev = c
            .wait_notification("recording.start", Duration::from_secs(5))
            .await
            .expect("recording.start");
        assert_eq!(
            (ev["params"]["device"].as_str(), ev["params"]["filename"].as_str()),
            (Some("camera50"), Some(first.as_str()))
        );
        let prog = c
            .wait_notification("recording.progress", Duration::from_secs(5))
            .await
            .expect("recording.progress");
        assert!(
            prog["params"]["bytes"].as_u64().is_some() && prog["params"]["duration"].as_f64().is_some(),
            "{prog}"
        );

        smol::Timer::after(Duration::from_secs(5).saturating_sub(recording_since.elapsed())).await;
        // the segment being written is protected from deletion (api.md §7)
        let mut admin = Client::connect(&r.svc.ws_url()).await;
        admin.auth_as(Role::Admin).await;
        let v = admin.call("delete_recording", json!({"filename": first})).await;
        assert_eq!(v["error"]["code"], INVALID_STATE, "{v}");
        assert!(rec_dir(&r, "camera50").join(&first).exists());
        let t_stop = Instant::now();
        let stopped = c.result("stop_recording", json!({"device": "camera50"})).await;
        eprintln!(
            "stop_recording took {:?}; {:?} after start returned",
            t_stop.elapsed(),
            recording_since.elapsed()
        );
        assert_eq!(stopped["status"], "STOPPED");
        assert_eq!(stopped["filename"], first.as_str());
        let files: Vec<String> = stopped["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        assert_eq!(files[0], first);
        let mut total_size = 0;
        let mut total_dur = 0.0;
        for f in &files {
            let p = rec_dir(&r, "camera50").join(f);
            total_size += std::fs::metadata(&p).unwrap().len();
            let pr = probe_media(&p);
            assert_eq!(
                (pr.codec.as_str(), pr.width, pr.height),
                ("h264", 640, 480),
                "{f}: {pr:?}"
            );
            total_dur += pr.packet_duration;
        }
        assert_eq!(stopped["file_size"].as_u64().unwrap(), total_size);
        eprintln!("recorded {total_dur:.2} s in {} segment(s)", files.len());
        // MediaMTX creates a segment file with its first part (recordPartDuration, 1 s):
        // when start_recording returns, up to one part before that is already recorded.
        assert!(
            (4.0..=7.0).contains(&total_dur),
            "duration ≈ 5 s (+ up to one part), got {total_dur}"
        );
        let ev = c
            .wait_notification("recording.stop", Duration::from_secs(5))
            .await
            .expect("recording.stop");
        assert_eq!(ev["params"]["auto_stop"], false);
        assert_eq!(
            c.error_code("stop_recording", json!({"device": "camera50"})).await,
            INVALID_STATE
        );
    });
}

#[test]
fn duration_auto_stops_and_mpegts_format() {
    let r = rig();
    smol::block_on(async {
        let mut c = operator(&r).await;
        c.result("subscribe_events", json!({"topics": ["recording.stop"]}))
            .await;
        let started = c
            .result(
                "start_recording",
                json!({"device": "camera51", "duration": 3, "format": "mpegts"}),
            )
            .await;
        assert_eq!(
            (started["duration"].as_u64(), started["format"].as_str()),
            (Some(3), Some("mpegts"))
        );
        let first = started["filename"].as_str().unwrap().to_string();
        assert!(name_ok(&first, "camera51", "ts"), "{first}");
        let ev = c
            .wait_notification("recording.stop", Duration::from_secs(15))
            .await
            .expect("auto-stop emits recording.stop");
        assert_eq!(ev["params"]["auto_stop"], true);
        assert_eq!(ev["params"]["device"], "camera51");
        let pr = probe_media(&rec_dir(&r, "camera51").join(&first));
        assert_eq!((pr.codec.as_str(), pr.width, pr.height), ("h264", 320, 240), "{pr:?}");
        assert!(pr.packet_duration >= 1.5 && pr.packet_duration <= 4.5, "≈3 s: {pr:?}");
        assert_eq!(
            c.error_code("stop_recording", json!({"device": "camera51"})).await,
            INVALID_STATE,
            "already stopped by itself"
        );
    });
}

/// `duration` counts media time (api.md §5): a 5 s recording holds 5.0 ± 0.3 s of media,
/// summed over its segments as ffprobe reads them. Once from a cold camera (the on-demand
/// publisher starts and the first keyframe takes its time), once while its stream is up.
#[test]
fn timed_recording_holds_its_duration_of_media() {
    let r = rig();
    smol::block_on(async {
        let mut c = operator(&r).await;
        c.result("subscribe_events", json!({"topics": ["recording.stop"]}))
            .await;
        for case in ["cold", "stream up"] {
            let t0 = Instant::now();
            c.result("start_recording", json!({"device": "camera50", "duration": 5}))
                .await;
            let ev = c
                .wait_notification("recording.stop", Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("{case}: auto-stop emits recording.stop"));
            let wall = t0.elapsed().as_secs_f64();
            assert_eq!(ev["params"]["auto_stop"], true, "{case}: {ev}");
            let files: Vec<String> = ev["params"]["files"]
                .as_array()
                .unwrap_or_else(|| panic!("{case}: files in {ev}"))
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            assert!(!files.is_empty(), "{case}: {ev}");
            let media: f64 = files
                .iter()
                .map(|f| {
                    let pr = probe_media(&rec_dir(&r, "camera50").join(f));
                    assert_eq!((pr.codec.as_str(), pr.width, pr.height), ("h264", 640, 480), "{pr:?}");
                    pr.packet_duration
                })
                .sum();
            eprintln!("{case}: {media:.3} s of media in {files:?}, {wall:.3} s from the call to the stop");
            assert!(
                (media - 5.0).abs() <= 0.3,
                "{case}: 5 s of media asked, {media:.3} s recorded in {files:?}"
            );
        }
    });
}

#[test]
fn two_cameras_at_once_and_stream_readable_while_recording() {
    let r = rig();
    smol::block_on(async {
        let mut c = operator(&r).await;
        let a = c.result("start_recording", json!({"device": "camera50"})).await;
        let b = c.result("start_recording", json!({"device": "camera51"})).await;
        // the camera reports it: recording at once, streaming after the next MediaMTX probe (1 s)
        let cam = c.result("get_camera_status", json!({"device": "camera50"})).await;
        assert_eq!(cam["recording"], true, "{cam}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.result("get_camera_status", json!({"device": "camera50"})).await["streaming"] != true {
            assert!(Instant::now() < deadline, "streaming never reported");
            smol::Timer::after(Duration::from_millis(200)).await;
        }
        let s = c.result("start_streaming", json!({"device": "camera50"})).await;
        assert_eq!(s["status"], "STARTED");
        assert_eq!(s["auto_close_after"], "10s");
        let url = c.result("get_stream_url", json!({"device": "camera50"})).await;
        assert_eq!(url["stream_status"], "ACTIVE", "{url}");
        assert!(url["urls"]["hls"].as_str().unwrap().ends_with("/camera50/index.m3u8"));
        let st = c.result("get_stream_status", json!({"device": "camera50"})).await;
        assert_eq!(
            (st["codec"].as_str(), st["width"].as_u64(), st["height"].as_u64()),
            (Some("H264"), Some(640), Some(480)),
            "{st}"
        );
        assert!(st["bytes_received"].as_u64().unwrap() > 0);
        // the stream URL (rewritten to the double's RTSP port) is readable by ffprobe
        let rtsp = format!("rtsp://127.0.0.1:{}/camera50", r.double.rtsp_port);
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-show_entries",
                "stream=codec_name,width",
                "-of",
                "csv=p=0",
                &rtsp,
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "h264,640",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let streams = c.result("get_streams", json!({})).await;
        assert!(
            streams
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "camera51" && s["ready"] == true),
            "{streams}"
        );
        // stopping the stream never stops the recording
        let stop = c.result("stop_streaming", json!({"device": "camera50"})).await;
        assert_eq!(stop["stream_continues"], true);
        let f = rec_dir(&r, "camera50").join(a["filename"].as_str().unwrap());
        let size1 = std::fs::metadata(&f).unwrap().len();
        smol::Timer::after(Duration::from_secs(3)).await;
        assert!(
            std::fs::metadata(&f).unwrap().len() > size1,
            "recording continues after stop_streaming"
        );
        for (cam, started) in [("camera50", &a), ("camera51", &b)] {
            let stopped = c.result("stop_recording", json!({"device": cam})).await;
            assert_eq!(stopped["filename"], started["filename"]);
            let pr = probe_media(&rec_dir(&r, cam).join(stopped["files"][0].as_str().unwrap()));
            assert_eq!(pr.codec, "h264");
            assert!(pr.packet_duration > 2.0, "{cam}: {pr:?}");
        }
    });
}

#[test]
fn service_killed_mid_recording_reads_the_recording_back() {
    let mut r = rig();
    let first = smol::block_on(async {
        let mut c = operator(&r).await;
        c.result("start_recording", json!({"device": "camera50"})).await["filename"]
            .as_str()
            .unwrap()
            .to_string()
    });
    r.svc.signal(nix::sys::signal::Signal::SIGKILL);
    r.svc.wait_exit(Duration::from_secs(5)).expect("killed");
    // same config and state dir: start the binary again
    let restarted = Service::restart(&mut r.svc);
    smol::block_on(async {
        let mut c = Client::connect(&restarted.ws_url()).await;
        c.auth_as(Role::Operator).await;
        // the recording is still on: starting again is refused, stopping returns its files
        smol::Timer::after(Duration::from_secs(3)).await;
        assert_eq!(
            c.error_code("start_recording", json!({"device": "camera50"})).await,
            INVALID_STATE
        );
        let stopped = c.result("stop_recording", json!({"device": "camera50"})).await;
        assert_eq!(stopped["filename"], first.as_str(), "{stopped}");
        let pr = probe_media(
            &restarted
                .dir
                .path()
                .join("recordings/camera50")
                .join(stopped["files"].as_array().unwrap().last().unwrap().as_str().unwrap()),
        );
        assert_eq!(pr.codec, "h264");
        assert!(stopped["duration"].as_f64().unwrap() >= 3.0);
    });
}

#[test]
fn mediamtx_restart_mid_recording_resumes_in_a_new_segment() {
    let r = rig();
    smol::block_on(async {
        let mut c = operator(&r).await;
        c.result("subscribe_events", json!({"topics": ["recording_status_update"]}))
            .await;
        let first = c.result("start_recording", json!({"device": "camera50"})).await["filename"]
            .as_str()
            .unwrap()
            .to_string();
        c.wait_notification("recording.start", Duration::from_secs(5))
            .await
            .unwrap();
        // MediaMTX flushes a part every second; the double's FFmpeg recorder only once ~32 KiB
        // are buffered, so give the first segment real media on disk before the restart.
        smol::Timer::after(Duration::from_secs(4)).await;
        // RAM-only config: the double forgets every path, like a restarted MediaMTX
        let (s, _, _) = http(
            &format!("127.0.0.1:{}", r.double.control_port),
            "POST",
            "/control/restart",
            &[],
        );
        assert_eq!(s, 200);
        let t0 = Instant::now();
        let err = c
            .wait_notification("recording.error", Duration::from_secs(10))
            .await
            .expect("recording.error on restart");
        assert_eq!(
            (
                err["params"]["reason"].as_str(),
                err["params"]["recording_stopped"].as_bool()
            ),
            (Some("mediamtx_unavailable"), Some(false))
        );
        let resumed = c
            .wait_notification("recording.start", Duration::from_secs(15))
            .await
            .expect("recording resumes");
        eprintln!("resumed {:?} after the restart", t0.elapsed());
        assert!(t0.elapsed() < Duration::from_secs(10), "resumed within 10 s");
        assert_eq!(resumed["params"]["resumed"], true);
        let second = resumed["params"]["filename"].as_str().unwrap().to_string();
        assert!(second > first, "a new segment: {first} → {second}");
        smol::Timer::after(Duration::from_secs(1)).await;
        let stopped = c.result("stop_recording", json!({"device": "camera50"})).await;
        let files: Vec<&str> = stopped["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(
            files.len() >= 2 && files.contains(&first.as_str()) && files.contains(&second.as_str()),
            "{files:?}"
        );
        for f in files {
            assert_eq!(
                probe_media(&rec_dir(&r, "camera50").join(f)).codec,
                "h264",
                "{f} playable"
            );
        }
    });
}
