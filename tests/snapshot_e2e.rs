//! Snapshots end to end (api.md §6) against the MediaMTX double: the service binary, real
//! FFmpeg, simulated cameras. Every produced file is decoded (size, format, not flat).
//! Tier 0/1 (the device tiers) run in the QEMU guest: tests/snapshot_vivid.rs.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Rig {
    _double: Double,
    svc: Service,
}

fn rig(snapshot: &str) -> Rig {
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"1s\"\n\n\
         [snapshot]\n{snapshot}\n\n\
         [[camera.simulated]]\nid = \"camera50\"\nsize = \"640x480\"\nfps = 15\n\n\
         [[camera.simulated]]\nid = \"camera51\"\nsize = \"320x240\"\nfps = 10\npattern = \"nosuchlavfisource\"\n",
        double.api_url(),
        double.rtsp_port
    );
    let svc = Service::start("", "", &rest);
    Rig { _double: double, svc }
}

fn snap_path(r: &Rig, cam: &str, name: &str) -> std::path::PathBuf {
    r.svc.dir.path().join("snapshots").join(cam).join(name)
}

fn tiers(err: &Value) -> Vec<(String, String)> {
    err["error"]["data"]["tiers_tried"]
        .as_array()
        .unwrap_or_else(|| panic!("tiers_tried in {err}"))
        .iter()
        .map(|t| {
            (
                t["tier"].as_str().unwrap().to_string(),
                t["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn rtsp_tiers_names_errors_and_events() {
    let r = rig("rtsp_activation_timeout = \"8s\"\nrtsp_immediate_timeout = \"8s\"");
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        c.result(
            "subscribe_events",
            json!({"topics": ["snapshot.taken", "snapshot.error"]}),
        )
        .await;
        // parameter errors
        assert_eq!(
            c.error_code("take_snapshot", json!({"device": "camera99"})).await,
            NOT_FOUND
        );
        for bad in [
            json!({"device": "camera50", "format": "gif"}),
            json!({"device": "camera50", "quality": 0}),
            json!({"device": "camera50", "quality": 101}),
            json!({"device": "camera50", "filename": "../etc/passwd"}),
            json!({"device": "camera50", "filename": "a/b"}),
            json!({"device": "camera50", "filename": "x\u{7}y"}),
            json!({"device": "camera50", "filename": "camera51_x"}),
            json!({"device": "camera50", "max_width": 0}),
        ] {
            let v = c.call("take_snapshot", bad.clone()).await;
            assert_eq!(v["error"]["code"], INVALID_PARAMS, "{bad} → {v}");
        }

        // tier 3: nothing reads camera50 yet, so the path is activated by reading it
        let t = Instant::now();
        let a = c.result("take_snapshot", json!({"device": "camera50"})).await;
        println!("rtsp_activation snapshot: {a} (wall {} ms)", t.elapsed().as_millis());
        assert_eq!(
            (a["status"].as_str(), a["tier"].as_str()),
            (Some("SUCCESS"), Some("rtsp_activation"))
        );
        let name = a["filename"].as_str().unwrap();
        assert!(
            name.starts_with("camera50_")
                && name.ends_with(".jpg")
                && name.len() == "camera50_2026-11-24_10-15-30-123.jpg".len(),
            "{name}"
        );
        let (w, h, px) = decode(&snap_path(&r, "camera50", name));
        assert_eq!(
            (w, h, a["width"].as_u64(), a["height"].as_u64()),
            (640, 480, Some(640), Some(480))
        );
        assert!(spread(&px) > 30.0, "a test pattern, not one colour");
        assert_eq!(
            a["file_size"].as_u64(),
            Some(std::fs::metadata(snap_path(&r, "camera50", name)).unwrap().len())
        );
        let ev = c
            .wait_notification("snapshot.taken", Duration::from_secs(5))
            .await
            .expect("snapshot.taken");
        assert_eq!(ev["method"], "snapshot_taken");
        assert_eq!(
            (ev["params"]["filename"].as_str(), ev["params"]["tier"].as_str()),
            (Some(name), Some("rtsp_activation"))
        );

        // tier 2: the on-demand publisher keeps running a while after the last reader
        let b = c
            .result(
                "take_snapshot",
                json!({"device": "camera50", "format": "png", "max_width": 320}),
            )
            .await;
        println!("rtsp_immediate snapshot: {b}");
        assert_eq!(b["tier"], "rtsp_immediate");
        let (w, h, px) = decode(&snap_path(&r, "camera50", b["filename"].as_str().unwrap()));
        assert_eq!((w, h), (320, 240), "scaled keeping the aspect ratio");
        assert!(spread(&px) > 30.0);
        assert!(b["filename"].as_str().unwrap().ends_with(".png"));

        // client names: the extension is added; an existing name is refused, never overwritten
        let d = c
            .result(
                "take_snapshot",
                json!({"device": "camera50", "filename": "door", "quality": 40}),
            )
            .await;
        assert_eq!(d["filename"], "door.jpg");
        let before = std::fs::read(snap_path(&r, "camera50", "door.jpg")).unwrap();
        let v = c
            .call("take_snapshot", json!({"device": "camera50", "filename": "door"}))
            .await;
        assert_eq!(
            (v["error"]["code"].as_i64(), v["error"]["data"]["param"].as_str()),
            (Some(INVALID_PARAMS), Some("filename")),
            "{v}"
        );
        let v = c
            .call("take_snapshot", json!({"device": "camera50", "filename": "door.jpg"}))
            .await;
        assert_eq!(v["error"]["code"], INVALID_PARAMS, "{v}");
        assert_eq!(
            std::fs::read(snap_path(&r, "camera50", "door.jpg")).unwrap(),
            before,
            "not overwritten"
        );
        let info = c.result("get_snapshot_info", json!({"filename": "door.jpg"})).await;
        assert_eq!(
            (info["width"].as_u64(), info["height"].as_u64(), info["device"].as_str()),
            (Some(640), Some(480), Some("camera50"))
        );
        let list = c.result("list_snapshots", json!({"device": "camera50"})).await;
        assert_eq!(list["total"], 3, "{list}");

        // every tier fails for a camera whose publisher cannot start
        let t = Instant::now();
        let v = c.call("take_snapshot", json!({"device": "camera51"})).await;
        println!("all tiers failed after {} ms: {v}", t.elapsed().as_millis());
        assert_eq!(v["error"]["code"], DEPENDENCY_FAILED, "{v}");
        assert_eq!(v["error"]["data"]["dependency"], "capture");
        let tried = tiers(&v);
        let names: Vec<&str> = tried.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            names,
            ["v4l2_direct", "ffmpeg_direct", "rtsp_immediate", "rtsp_activation"]
        );
        assert_eq!(tried[0].1, "not_applicable");
        assert_eq!(tried[2].1, "stream_not_available");
        assert!(["timeout", "ffmpeg_failed"].contains(&tried[3].1.as_str()), "{tried:?}");
        let ev = c
            .wait_notification("snapshot.error", Duration::from_secs(5))
            .await
            .expect("snapshot.error");
        assert_eq!(
            (ev["params"]["reason"].as_str(), ev["params"]["device"].as_str()),
            (Some("capture_failed"), Some("camera51"))
        );
        assert!(
            !snap_path(&r, "camera51", "x").parent().unwrap().exists()
                || std::fs::read_dir(snap_path(&r, "camera51", "x").parent().unwrap())
                    .unwrap()
                    .next()
                    .is_none(),
            "no file for a failed snapshot"
        );
    });
}

#[test]
fn concurrent_snapshots_of_one_camera_are_serialised_and_all_succeed() {
    let r = rig("tiers = [\"rtsp_activation\"]");
    smol::block_on(async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut c = Client::connect(&r.svc.ws_url()).await;
            c.auth_as(Role::Operator).await;
            clients.push(c);
        }
        let results = futures_util::future::join_all(
            clients
                .iter_mut()
                .map(|c| c.result("take_snapshot", json!({"device": "camera50"}))),
        )
        .await;
        let mut names: Vec<&str> = results.iter().map(|v| v["filename"].as_str().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 3, "three distinct files: {results:?}");
        for v in &results {
            assert_eq!(v["tier"], "rtsp_activation", "forced tier");
            let (w, h, px) = decode(&snap_path(&r, "camera50", v["filename"].as_str().unwrap()));
            assert_eq!((w, h), (640, 480));
            assert!(spread(&px) > 30.0);
        }
    });
}

#[test]
fn forced_rtsp_immediate_fails_fast_when_no_stream_runs() {
    let r = rig("tiers = [\"rtsp_immediate\"]");
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        let t = Instant::now();
        let v = c.call("take_snapshot", json!({"device": "camera50"})).await;
        assert_eq!(v["error"]["code"], DEPENDENCY_FAILED, "{v}");
        assert_eq!(
            tiers(&v),
            vec![("rtsp_immediate".to_string(), "stream_not_available".to_string())]
        );
        assert!(t.elapsed() < Duration::from_secs(3), "no FFmpeg started");
        // once something keeps the stream up, the same tier delivers
        c.result("start_recording", json!({"device": "camera50"})).await;
        let s = c
            .result("take_snapshot", json!({"device": "camera50", "format": "png"}))
            .await;
        assert_eq!(s["tier"], "rtsp_immediate");
        let (w, h, px) = decode(&snap_path(&r, "camera50", s["filename"].as_str().unwrap()));
        assert_eq!((w, h), (640, 480));
        assert!(spread(&px) > 30.0);
        c.result("stop_recording", json!({"device": "camera50"})).await;
    });
}

/// `scripts/bench-snapshot`: median and p95 of `capture_ms` for the stream tiers
/// (`SNAPSHOT_BENCH_N` snapshots each). Ignored in normal runs.
#[test]
#[ignore]
fn bench_rtsp_tiers() {
    let n: usize = std::env::var("SNAPSHOT_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let r = rig("");
    let pct = |v: &mut Vec<u64>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        // rtsp_activation: wait for the on-demand publisher to close between snapshots
        let mut act = Vec::new();
        for _ in 0..n.min(5) {
            let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
            assert_eq!(v["tier"], "rtsp_activation", "{v}");
            act.push(v["capture_ms"].as_u64().unwrap());
            // runOnDemandCloseAfter (10 s by default) + margin
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                smol::Timer::after(Duration::from_millis(500)).await;
                let s = c.result("get_stream_url", json!({"device": "camera50"})).await;
                if s["available"] == false || Instant::now() > deadline {
                    break;
                }
            }
        }
        // rtsp_immediate without a tap: the publisher started by the last photo lingers
        // (runOnDemandCloseAfter) and every photo reads it again
        let mut imm = Vec::new();
        let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
        assert_eq!(v["source"], v["tier"], "not from the tap: {v}");
        for _ in 0..n {
            let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
            assert_eq!(
                (v["tier"].as_str(), v["source"].as_str()),
                (Some("rtsp_immediate"), Some("rtsp_immediate")),
                "{v}"
            );
            imm.push(v["capture_ms"].as_u64().unwrap());
        }
        let (ln, in_) = (act.len(), imm.len());
        println!(
            "BENCH tier=rtsp_immediate n={in_} median_ms={} p95_ms={} (host, 640x480@15 simulated camera, idle: no tap)",
            pct(&mut imm, 0.5),
            pct(&mut imm, 0.95)
        );
        println!(
            "BENCH tier=rtsp_activation n={ln} median_ms={} p95_ms={} (host, on-demand lavfi publisher start included)",
            pct(&mut act, 0.5),
            pct(&mut act, 0.95)
        );
        // the frame tap: streaming, then recording
        for (mode, start, stop) in [
            ("streaming", "start_streaming", "stop_streaming"),
            ("recording", "start_recording", "stop_recording"),
        ] {
            c.result(start, json!({"device": "camera50"})).await;
            let (mut ms, mut age) = tap_series(&mut c, "camera50", n).await;
            c.result(stop, json!({"device": "camera50"})).await;
            println!(
                "BENCH tap={mode} n={} median_ms={} p95_ms={} age_median_ms={} (host, 640x480@15 simulated camera, frame interval 67 ms)",
                ms.len(),
                pct(&mut ms, 0.5),
                pct(&mut ms, 0.95),
                pct(&mut age, 0.5)
            );
        }
    });
}

/// `scripts/bench-snapshot`: cold photos — no stream up, so every snapshot starts the
/// camera's on-demand publisher (tier `rtsp_activation`) — next to the source's keyframe
/// interval, which bounds what a cold photo must wait. `SNAPSHOT_BENCH_N` snapshots (at most
/// 10); MediaMTX closes the publisher 1 s after the photo's reader leaves. Ignored in normal
/// runs.
#[test]
#[ignore]
fn bench_cold() {
    let n: usize = std::env::var("SNAPSHOT_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
        .min(10);
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"1s\"\n\n\
         [recording]\non_demand_close_after = \"1s\"\n\n\
         [[camera.simulated]]\nid = \"camera50\"\nsize = \"640x480\"\nfps = 15\n",
        double.api_url(),
        double.rtsp_port
    );
    let svc = Service::start("", "", &rest);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        let mut cold = Vec::new();
        for _ in 0..n {
            // cold: the publisher of the previous photo has gone
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let s = c.result("get_stream_url", json!({"device": "camera50"})).await;
                if s["available"] == false {
                    break;
                }
                assert!(Instant::now() < deadline, "the on-demand publisher never closed: {s}");
                smol::Timer::after(Duration::from_millis(200)).await;
            }
            let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
            assert_eq!(v["tier"], "rtsp_activation", "{v}");
            let (w, h, px) = decode(
                &svc.dir
                    .path()
                    .join("snapshots/camera50")
                    .join(v["filename"].as_str().unwrap()),
            );
            assert_eq!((w, h), (640, 480));
            assert!(spread(&px) > 30.0, "a test pattern, not a flat frame");
            cold.push(v["capture_ms"].as_u64().unwrap());
        }
        // The source's keyframe interval, measured on its stream: ffprobe reads 5 s of it; the
        // longest gap between keyframes is the steady one.
        let url = format!("rtsp://127.0.0.1:{}/camera50", double.rtsp_port);
        let out = blocking::unblock(move || {
            std::process::Command::new("ffprobe")
                .args(["-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0"])
                .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
                .args(["-read_intervals", "%+5", &url])
                .output()
                .expect("ffprobe is installed (scripts/setup)")
        })
        .await;
        let keys: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('K'))
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        assert!(keys.len() >= 3, "keyframes of the source: {keys:?} {out:?}");
        let gop_ms = keys.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max) * 1000.0;
        cold.sort();
        let pct = |p: f64| cold[((cold.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "BENCH cold tier=rtsp_activation n={} p50_ms={} p95_ms={} keyframe_interval_ms={gop_ms:.0} (host, 640x480@15 simulated camera, no stream up)",
            cold.len(),
            pct(0.5),
            pct(0.95)
        );
    });
}

/// The RTSP tiers' FFmpeg arguments (video track only, probing cut to the first packets) hold
/// for what real cameras send: H.264 and H.265, with and without an audio track (AAC, Opus).
/// Each variant is published into the double by an FFmpeg child and added as an external
/// stream; its photos go through `rtsp_activation` (pulled on demand) and `rtsp_immediate`,
/// and every image is decoded.
#[test]
fn rtsp_tiers_read_h264_and_h265_with_and_without_audio() {
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"1s\"\n\n[camera]\nmonitor = \"off\"\n\n\
         [external_streams]\nhealth_interval = \"1s\"\nprobe_timeout = \"2s\"\n",
        double.api_url(),
        double.rtsp_port
    );
    let svc = Service::start("", "", &rest);
    let variants: [(&str, &[&str], &[&str]); 4] = [
        (
            "h264",
            &["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"],
            &[],
        ),
        (
            "h264+aac",
            &["-c:v", "libx264", "-preset", "ultrafast", "-bf", "2"],
            &["-c:a", "aac"],
        ),
        ("h265", &["-c:v", "libx265", "-preset", "ultrafast"], &[]),
        (
            "h265+opus",
            &["-c:v", "libx265", "-preset", "ultrafast"],
            &["-c:a", "libopus"],
        ),
    ];
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        for (i, (name, video, audio)) in variants.into_iter().enumerate() {
            let path = format!("src{i}");
            let mut cmd = std::process::Command::new("ffmpeg");
            cmd.args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
                .arg("testsrc2=size=640x360:rate=15");
            if !audio.is_empty() {
                cmd.args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
            }
            let mut publisher = cmd
                .args(video)
                .args(["-pix_fmt", "yuv420p", "-g", "15"])
                .args(audio)
                .args(["-f", "rtsp", "-rtsp_transport", "tcp"])
                .arg(format!("rtsp://127.0.0.1:{}/{path}", double.rtsp_port))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("ffmpeg is installed (scripts/setup)");
            let url = format!("rtsp://127.0.0.1:{}/{path}", double.rtsp_port);
            let added = c
                .result("add_external_stream", json!({"stream_url": url, "stream_name": name}))
                .await;
            let dev = added["device"].as_str().unwrap().to_string();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let st = c.result("get_camera_status", json!({"device": dev})).await;
                if st["status"] == "CONNECTED" {
                    break;
                }
                assert!(Instant::now() < deadline, "{name}: {dev} never connected: {st}");
                smol::Timer::after(Duration::from_millis(200)).await;
            }
            for tier in ["rtsp_activation", "rtsp_immediate"] {
                let v = c.result("take_snapshot", json!({"device": dev})).await;
                assert_eq!(v["tier"], tier, "{name}: {v}");
                let (w, h, px) = decode(&snap_path_of(&svc, &dev, v["filename"].as_str().unwrap()));
                assert_eq!((w, h), (640, 360), "{name}");
                assert!(spread(&px) > 30.0, "{name}: a test pattern, not a flat frame");
                eprintln!("{name}: {tier} in {} ms", v["capture_ms"]);
            }
            c.result("remove_external_stream", json!({"stream_url": url})).await;
            let _ = publisher.kill();
            let _ = publisher.wait();
        }
    });
}

fn snap_path_of(svc: &Service, cam: &str, name: &str) -> std::path::PathBuf {
    svc.dir.path().join("snapshots").join(cam).join(name)
}

/// Waits (≤ 60 s) for the first photo from the frame tap, then takes `n` tap photos 100 ms
/// apart: their `capture_ms` and `frame_age_ms`.
async fn tap_series(c: &mut Client, device: &str, n: usize) -> (Vec<u64>, Vec<u64>) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = c.result("take_snapshot", json!({"device": device})).await;
        if v["source"] == "frame_tap" {
            break;
        }
        assert!(Instant::now() < end, "no photo from the tap: {v}");
        smol::Timer::after(Duration::from_millis(200)).await;
    }
    let (mut ms, mut age) = (Vec::new(), Vec::new());
    for _ in 0..n {
        smol::Timer::after(Duration::from_millis(100)).await;
        let v = c.result("take_snapshot", json!({"device": device})).await;
        assert_eq!(
            (v["tier"].as_str(), v["source"].as_str()),
            (Some("rtsp_immediate"), Some("frame_tap")),
            "{v}"
        );
        ms.push(v["capture_ms"].as_u64().unwrap());
        age.push(v["frame_age_ms"].as_u64().unwrap());
    }
    (ms, age)
}
