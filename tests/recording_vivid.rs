//! Recording a real V4L2 camera, in the QEMU guest with vivid (docs/vm-harness.md):
//! vivid → FFmpeg capture started by the MediaMTX double on demand → segment files, then the
//! camera is unplugged during the recording: `recording.error`
//! (`device_disconnected`) arrives, the recording is stopped, and every segment written so
//! far is playable H.264 at the camera's size. The unplug → event latency is printed.
//! The unplug is a driver unbind (`/sys/bus/platform/drivers/vivid/unbind`): like a USB
//! camera pulled out, it removes the nodes while FFmpeg still holds the device open (`rmmod`
//! would refuse a module in use).
//! No qemu → the test fails (it never skips).

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn vivid_recording_and_unplug() {
    if in_vivid_guest() {
        guest();
        return;
    }
    run_in_vivid_guest(
        "vivid_recording_and_unplug",
        "n_devs=1 node_types=0x1",
        720,
        &[],
        "VIVID-RECORDING-PASSED",
    );
}

fn guest() {
    let double = start_double();
    // FFmpeg starts slowly under TCG (hundreds of libraries over 9p): generous timeouts.
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"2s\"\n\n\
         [recording]\nstart_timeout = \"120s\"\nprogress_interval = \"1s\"\non_demand_start_timeout = \"60s\"\n\n\
         [ffmpeg]\nstall_timeout = \"60s\"\n\n[camera]\nrescan_interval = \"1h\"\n",
        double.api_url(),
        double.rtsp_port
    );
    let svc = Service::start("", "", &rest);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        let cam = c.result("get_camera_status", json!({"device": "camera0"})).await;
        println!("camera0: {cam}");
        assert_eq!(cam["source_type"], "v4l2");
        let (w, h): (u64, u64) = {
            let r = cam["resolution"].as_str().unwrap();
            let (a, b) = r.split_once('x').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        };
        c.result(
            "subscribe_events",
            json!({"topics": ["recording_status_update", "camera_status_update"]}),
        )
        .await;
        let t = Instant::now();
        let started = c.result("start_recording", json!({"device": "camera0"})).await;
        println!(
            "start_recording of a V4L2 camera took {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let first = started["filename"].as_str().unwrap().to_string();
        let dir = svc.dir.path().join("recordings/camera0");
        // let it record a few seconds of frames
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(dir.join(&first)).map(|m| m.len()).unwrap_or(0) < 20_000 && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(500)).await;
        }
        smol::Timer::after(Duration::from_secs(3)).await;

        std::fs::write("/sys/bus/platform/drivers/vivid/unbind", "vivid.0").expect("unbind vivid.0 (unplug)");
        let unplugged = Instant::now();
        let err = c
            .wait_notification("recording.error", Duration::from_secs(10))
            .await
            .expect("recording.error after unplug");
        let latency = unplugged.elapsed();
        println!(
            "unplug → recording.error: {:.0} ms after the unbind returned",
            latency.as_secs_f64() * 1000.0
        );
        assert_eq!(
            (
                err["params"]["reason"].as_str(),
                err["params"]["recording_stopped"].as_bool()
            ),
            (Some("device_disconnected"), Some(true)),
            "{err}"
        );
        assert!(latency < Duration::from_secs(5), "bounded: {latency:?}");
        let status = c.result("get_camera_status", json!({"device": "camera0"})).await;
        assert_eq!(status["status"], "DISCONNECTED");
        // the recording is over, and what was written plays
        smol::Timer::after(Duration::from_secs(2)).await;
        assert_eq!(
            c.error_code("stop_recording", json!({"device": "camera0"})).await,
            INVALID_STATE
        );
        let mut segs: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        segs.sort();
        assert!(!segs.is_empty());
        for s in &segs {
            let v = probe_media(s);
            println!("{}: {v:?}", s.display());
            assert_eq!(v.codec, "h264");
            assert_eq!((v.width, v.height), (w, h));
        }
        let dur: f64 = probe_media(&dir.join(&first)).duration.unwrap();
        assert!(dur > 1.0, "several seconds recorded: {dur}");
    });
    drop(double);
    println!("VIVID-RECORDING-PASSED");
}
