//! Snapshots of a real V4L2 camera, in the QEMU guest with vivid (docs/vm-harness.md), in one
//! VM boot:
//! - `ffmpeg_direct` forced (tiers = ["ffmpeg_direct"]);
//! - `EBUSY`: the node is streamed by another holder (this test process, through the `v4l`
//!   crate), so `v4l2_direct` fails with `device_busy`, `ffmpeg_direct` is skipped and the
//!   chain goes on to the stream tiers;
//! - `v4l2_direct` (YUYV: vivid offers no MJPEG, see the printed format list; MJPEG frames
//!   are covered by `media::image` unit tests with real FFmpeg MJPEG frames stripped of DHT),
//!   JPEG and scaled PNG, then `SNAPSHOT_BENCH_N` timed tier-0 snapshots (median/p95);
//! - a recording makes the camera busy: the snapshot falls back to `rtsp_immediate`.
//!
//! Every file is decoded (size, not flat). No qemu → the test fails (it never skips).

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn vivid_snapshots() {
    if in_vivid_guest() {
        guest();
        return;
    }
    let extra: Vec<String> = match std::env::var("SNAPSHOT_BENCH_N") {
        Ok(n) => vec!["--env".into(), format!("SNAPSHOT_BENCH_N={n}")],
        Err(_) => Vec::new(),
    };
    run_in_vivid_guest(
        "vivid_snapshots",
        "n_devs=1 node_types=0x1",
        900,
        &extra,
        "VIVID-SNAPSHOTS-PASSED",
    );
}

struct Svc {
    _double: Double,
    svc: Service,
}

fn service(snapshot: &str) -> Svc {
    let double = start_double();
    // FFmpeg starts slowly under TCG (hundreds of libraries over 9p): generous timeouts.
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"2s\"\n\n\
         [recording]\nstart_timeout = \"120s\"\non_demand_start_timeout = \"60s\"\n\n\
         [ffmpeg]\nstall_timeout = \"60s\"\n\n[camera]\nrescan_interval = \"1h\"\n\n\
         [snapshot]\nv4l2_direct_timeout = \"20s\"\nffmpeg_direct_timeout = \"90s\"\nrtsp_immediate_timeout = \"90s\"\nrtsp_activation_timeout = \"90s\"\n{snapshot}\n",
        double.api_url(),
        double.rtsp_port
    );
    Svc {
        _double: double,
        svc: Service::start("", "", &rest),
    }
}

async fn operator(s: &Svc) -> Client {
    let mut c = Client::connect(&s.svc.ws_url()).await;
    c.auth_as(Role::Operator).await;
    c
}

fn file(s: &Svc, v: &Value) -> std::path::PathBuf {
    s.svc
        .dir
        .path()
        .join("snapshots/camera0")
        .join(v["filename"].as_str().unwrap())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn guest() {
    let formats = Command::new("v4l2-ctl")
        .args(["-d", "/dev/video0", "--list-formats"])
        .output()
        .unwrap();
    println!("vivid formats:\n{}", String::from_utf8_lossy(&formats.stdout));
    // vivid runs at 5 fps by default; 30 fps like a webcam keeps the warm-up realistic
    let _ = Command::new("v4l2-ctl")
        .args(["-d", "/dev/video0", "--set-parm=30"])
        .output();

    // 1. ffmpeg_direct, forced
    {
        let s = service("tiers = [\"ffmpeg_direct\"]");
        smol::block_on(async {
            let mut c = operator(&s).await;
            let cam = c.result("get_camera_status", json!({"device": "camera0"})).await;
            println!("camera0: {} {} fps", cam["resolution"], cam["fps"]);
            let v = c.result("take_snapshot", json!({"device": "camera0"})).await;
            println!("ffmpeg_direct: {v}");
            assert_eq!(v["tier"], "ffmpeg_direct");
            let (w, h, px) = decode(&file(&s, &v));
            assert_eq!(format!("{w}x{h}"), cam["resolution"].as_str().unwrap());
            assert!(spread(&px) > 20.0, "vivid's colour bars, not one colour");
            let n: usize = std::env::var("SNAPSHOT_BENCH_N")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
                .min(8);
            let mut ms = vec![v["capture_ms"].as_u64().unwrap()];
            for _ in 1..n {
                let v = c.result("take_snapshot", json!({"device": "camera0"})).await;
                ms.push(v["capture_ms"].as_u64().unwrap());
            }
            ms.sort();
            println!(
                "BENCH tier=ffmpeg_direct n={} median_ms={} p95_ms={} min_ms={} max_ms={} (guest under TCG: FFmpeg start dominates)",
                ms.len(),
                percentile(&ms, 0.5),
                percentile(&ms, 0.95),
                ms[0],
                ms[ms.len() - 1]
            );
        });
    }

    // 2. EBUSY from the driver: another holder streams the node
    {
        let s = service("tiers = [\"v4l2_direct\", \"ffmpeg_direct\", \"rtsp_immediate\"]");
        let dev = v4l::Device::new(0).expect("open /dev/video0");
        let mut stream =
            v4l::io::mmap::Stream::with_buffers(&dev, v4l::buffer::Type::VideoCapture, 2).expect("REQBUFS");
        v4l::io::traits::CaptureStream::next(&mut stream).expect("streaming");
        smol::block_on(async {
            let mut c = operator(&s).await;
            let v = c.call("take_snapshot", json!({"device": "camera0"})).await;
            println!("while another process streams: {v}");
            assert_eq!(v["error"]["code"], DEPENDENCY_FAILED, "{v}");
            let tried: Vec<(String, String, bool)> = v["error"]["data"]["tiers_tried"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["tier"].as_str().unwrap().into(),
                        t["reason"].as_str().unwrap().into(),
                        t["attempted"].as_bool().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                tried,
                vec![
                    ("v4l2_direct".into(), "device_busy".into(), true),
                    ("ffmpeg_direct".into(), "device_busy".into(), false),
                    ("rtsp_immediate".into(), "stream_not_available".into(), false),
                ]
            );
        });
        drop(stream);
    }

    // 3. v4l2_direct (default chain), formats, scaling, timing; then the busy fallback
    let s = service("");
    smol::block_on(async {
        let mut c = operator(&s).await;
        let cam = c.result("get_camera_status", json!({"device": "camera0"})).await;
        let res = cam["resolution"].as_str().unwrap().to_string();
        let v = c.result("take_snapshot", json!({"device": "camera0"})).await;
        println!("v4l2_direct jpg: {v}");
        assert_eq!(v["tier"], "v4l2_direct");
        let (w, h, px) = decode(&file(&s, &v));
        assert_eq!(format!("{w}x{h}"), res);
        assert!(spread(&px) > 20.0);
        let v = c
            .result(
                "take_snapshot",
                json!({"device": "camera0", "format": "png", "max_width": 320}),
            )
            .await;
        println!("v4l2_direct png: {v}");
        assert_eq!(v["tier"], "v4l2_direct");
        let (w, h, px) = decode(&file(&s, &v));
        let (fw, fh): (u32, u32) = {
            let (a, b) = res.split_once('x').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        };
        assert_eq!((w, h), (320, (fh * 320 + fw / 2) / fw));
        assert!(spread(&px) > 20.0);

        let n: usize = std::env::var("SNAPSHOT_BENCH_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(5);
        let mut ms = Vec::new();
        for _ in 0..n {
            let v = c.result("take_snapshot", json!({"device": "camera0"})).await;
            assert_eq!(v["tier"], "v4l2_direct");
            ms.push(v["capture_ms"].as_u64().unwrap());
        }
        ms.sort();
        println!(
            "BENCH tier=v4l2_direct n={} median_ms={} p95_ms={} min_ms={} max_ms={} (guest under TCG, {res}, warmup 3 frames)",
            ms.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.95),
            ms[0],
            ms[ms.len() - 1]
        );

        // a recording (or a stream) holds the device through MediaMTX's publisher: straight
        // to the stream, from the frame tap once it holds a GOP
        for (mode, start, stop) in [
            ("recording", "start_recording", "stop_recording"),
            ("streaming", "start_streaming", "stop_streaming"),
        ] {
            c.result(start, json!({"device": "camera0"})).await;
            let v = c.result("take_snapshot", json!({"device": "camera0"})).await;
            println!("while {mode}: {v}");
            assert_eq!(v["tier"], "rtsp_immediate");
            let (w, h, px) = decode(&file(&s, &v));
            assert_eq!(format!("{w}x{h}"), res);
            assert!(spread(&px) > 20.0);
            let end = Instant::now() + Duration::from_secs(180);
            let mut v = v;
            while v["source"] != "frame_tap" {
                assert!(Instant::now() < end, "no photo from the tap while {mode}: {v}");
                smol::Timer::after(Duration::from_millis(500)).await;
                v = c.result("take_snapshot", json!({"device": "camera0"})).await;
            }
            let (w, h, px) = decode(&file(&s, &v));
            assert_eq!(format!("{w}x{h}"), res);
            assert!(spread(&px) > 20.0);
            // Under TCG a photo's decode takes seconds, so the tap can go stale meanwhile: such
            // photos fall back to the tiers and are counted, not timed as tap photos.
            let (mut ms, mut age, mut other) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..n.min(5) {
                smol::Timer::after(Duration::from_millis(100)).await;
                let v = c.result("take_snapshot", json!({"device": "camera0"})).await;
                if v["source"] == "frame_tap" {
                    assert_eq!(v["tier"], "rtsp_immediate", "{v}");
                    ms.push(v["capture_ms"].as_u64().unwrap());
                    age.push(v["frame_age_ms"].as_u64().unwrap());
                } else {
                    println!("while {mode}, not from the tap: {v}");
                    other.push(v["tier"].as_str().unwrap().to_string());
                }
            }
            ms.sort();
            age.sort();
            if ms.is_empty() {
                ms.push(v["capture_ms"].as_u64().unwrap());
                age.push(v["frame_age_ms"].as_u64().unwrap());
            }
            println!(
                "BENCH tap={mode} n={} median_ms={} p95_ms={} age_median_ms={} not_from_tap={other:?} (guest under TCG, vivid {res} @ {} fps)",
                ms.len(),
                percentile(&ms, 0.5),
                percentile(&ms, 0.95),
                percentile(&age, 0.5),
                cam["fps"]
            );
            c.result(stop, json!({"device": "camera0"})).await;
        }
    });
    println!("VIVID-SNAPSHOTS-PASSED");
}
