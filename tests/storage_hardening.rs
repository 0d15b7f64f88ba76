//! Files others put in our directories, through the real binary (issue: hardening).
//! A FIFO named like a recording must not block a thread: every file request on it is an
//! immediate "not found", the blocking pool stays small, and other clients are served.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn threads_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_fifo_named_like_a_recording_blocks_nobody() {
    let svc = Service::start("", "rate_limit_per_second = 100000\nrate_limit_burst = 1000000", "");
    let folder = svc.dir.path().join("recordings/camera0");
    std::fs::create_dir_all(&folder).unwrap();
    let fifo = folder.join("camera0_2026-01-01_00-00-00.mp4");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::write(folder.join("camera0_real.mp4"), vec![0u8; 4096]).unwrap();
    let name = fifo.file_name().unwrap().to_str().unwrap().to_string();

    smol::block_on(async {
        let mut attacker = Client::connect(&svc.ws_url()).await;
        attacker.auth_as(Role::Viewer).await;
        // 600 requests on the FIFO, sent without waiting for answers.
        const N: u64 = 600;
        for id in 0..N {
            let req = json!({"jsonrpc": "2.0", "method": "get_recording_info", "params": {"filename": name}, "id": 10_000 + id});
            attacker.send_text(&req.to_string()).await;
        }
        // Meanwhile another client authenticates and lists files promptly.
        let t0 = Instant::now();
        let mut other = Client::connect(&svc.ws_url()).await;
        other.auth_as(Role::Viewer).await;
        let list = other.result("list_recordings", json!({})).await;
        let other_took = t0.elapsed();
        let names: Vec<&str> = list["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["camera0_real.mp4"], "the FIFO is not listed");
        assert!(
            other_took < Duration::from_secs(10),
            "another client waited {other_took:?} behind the FIFO requests"
        );

        let mut answered = 0;
        while answered < N {
            let v = timeout(Duration::from_secs(30), attacker.recv_json())
                .await
                .expect("every FIFO request is answered")
                .expect("connection open");
            if v["id"].as_u64().is_some_and(|id| id >= 10_000) {
                assert_eq!(v["error"]["code"], NOT_FOUND, "{v}");
                answered += 1;
            }
        }
        let threads = threads_of(svc.child.id());
        assert!(threads < 64, "the blocking pool grew to {threads} threads");
        // The download route refuses it too.
        let (status, _, _) = http(
            &svc.addr,
            "GET",
            &format!("/files/recordings/{name}"),
            &[(
                "Authorization",
                &format!("Bearer {}", token(Role::Viewer, Duration::from_secs(60))),
            )],
        );
        assert_eq!(status, 404);
    });
}

/// The service knows its own segments: a file left in the camera folder by a board whose
/// clock ran ahead (present before the start), and a symlink and a FIFO with later names
/// dropped in during the recording, are never taken for the segment being written.
#[test]
fn foreign_files_in_a_camera_folder_are_never_the_live_segment() {
    let double = start_double();
    let rest = with_double(
        &double,
        "health_interval = \"1s\"",
        &(QUICK_RECORDING.to_string() + &simulated("camera50", "320x240", 10)),
    );
    let svc = Service::start("", "", &rest);
    let folder = svc.dir.path().join("recordings/camera50");
    std::fs::create_dir_all(&folder).unwrap();
    let ahead = "camera50_2099-01-01_00-00-00-000000.mp4";
    std::fs::write(folder.join(ahead), vec![1u8; 5000]).unwrap();

    smol::block_on(async {
        let mut admin = Client::connect(&svc.ws_url()).await;
        admin.auth_as(Role::Admin).await;
        admin
            .result("subscribe_events", json!({"topics": ["recording.progress"]}))
            .await;
        let started = admin.result("start_recording", json!({"device": "camera50"})).await;
        let live = started["filename"].as_str().unwrap().to_string();
        assert_ne!(live, ahead);
        let link = "camera50_2098-01-01_00-00-00-000000.mp4";
        let fifo = "camera50_2097-01-01_00-00-00-000000.mp4";
        std::os::unix::fs::symlink(folder.join(ahead), folder.join(link)).unwrap();
        nix::unistd::mkfifo(&folder.join(fifo), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();

        // Progress names the real segment, for several ticks.
        for _ in 0..3 {
            let p = admin
                .wait_notification("recording.progress", Duration::from_secs(10))
                .await
                .expect("recording.progress");
            assert_eq!(p["params"]["filename"], live.as_str(), "{p}");
        }
        let info = admin.result("get_recording_info", json!({"filename": live})).await;
        assert_eq!(info["active"], true, "the live segment is active");
        let info = admin.result("get_recording_info", json!({"filename": ahead})).await;
        assert_eq!(info["active"], false, "a file from before the start is not");
        assert_eq!(
            admin.error_code("delete_recording", json!({"filename": live})).await,
            INVALID_STATE,
            "the segment being written cannot be deleted"
        );
        let listed = admin.result("list_recordings", json!({"device": "camera50"})).await;
        let names: Vec<&str> = listed["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap())
            .collect();
        assert!(names.contains(&live.as_str()) && names.contains(&ahead));
        assert!(!names.contains(&link) && !names.contains(&fifo), "{names:?}");

        let stopped = admin.result("stop_recording", json!({"device": "camera50"})).await;
        assert_eq!(stopped["files"], json!([live]), "only our segment: {stopped}");
        let size = std::fs::metadata(folder.join(&live)).unwrap().len();
        assert_eq!(stopped["file_size"], size);
        let probe = probe_media(&folder.join(&live));
        assert_eq!(probe.codec, "h264");
        assert!(probe.packets > 0);
        // The foreign file is an ordinary file: an admin may delete it.
        let del = admin.result("delete_recording", json!({"filename": ahead})).await;
        assert_eq!(del["deleted"], true);
        assert!(folder.join(&live).exists(), "no data lost");
    });
}
