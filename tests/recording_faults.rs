//! Faults during a recording, through the real binary and the MediaMTX double: MediaMTX
//! going away is reported at once, no progress is claimed while nothing is written, and
//! the recording resumes when MediaMTX answers again.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn mediamtx_outage_is_reported_at_once_and_the_recording_resumes() {
    let double = start_double();
    let rest = with_double(
        &double,
        "health_interval = \"2s\"\nretries = 1\nbreaker_failures = 3\nbreaker_reset = \"1s\"",
        &(QUICK_RECORDING.to_string() + &simulated("camera50", "320x240", 10)),
    );
    let svc = Service::start("", "", &rest);
    let folder = svc.dir.path().join("recordings/camera50");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        c.result("subscribe_events", json!({"topics": ["recording_status_update"]}))
            .await;
        let first = c.result("start_recording", json!({"device": "camera50"})).await["filename"]
            .as_str()
            .unwrap()
            .to_string();
        c.wait_notification("recording.start", Duration::from_secs(5))
            .await
            .expect("recording.start");
        smol::Timer::after(Duration::from_secs(3)).await;

        // MediaMTX dies: every connection and child stops, its API refuses connections for
        // 6 s, then it comes back with its initial (RAM) configuration.
        const DOWN_MS: u64 = 6000;
        let control = format!("127.0.0.1:{}", double.control_port);
        let killed_at = Instant::now();
        let restart =
            std::thread::spawn(move || http(&control, "POST", &format!("/control/restart?down_ms={DOWN_MS}"), &[]));
        c.notifications.clear();

        let err = c
            .wait_notification("recording.error", Duration::from_secs(15))
            .await
            .expect("recording.error during the outage");
        let detected = killed_at.elapsed();
        eprintln!("recording.error {detected:?} after the kill");
        assert_eq!(
            (
                err["params"]["reason"].as_str(),
                err["params"]["recording_stopped"].as_bool()
            ),
            (Some("mediamtx_unavailable"), Some(false))
        );
        assert!(
            detected < Duration::from_millis(DOWN_MS),
            "reported while MediaMTX is still down, not only after it came back ({detected:?})"
        );
        assert_eq!(restart.join().unwrap().0, 200);
        let back_at = Instant::now();

        // Until the recording resumes: no progress (nothing is written).
        let resumed = loop {
            let v = timeout(Duration::from_secs(20), c.recv_json())
                .await
                .expect("the recording resumes within 20 s of MediaMTX answering")
                .expect("connection open");
            match v["params"]["topic"].as_str() {
                Some("recording.start") => break v,
                Some("recording.progress") => panic!("progress claimed while MediaMTX was away: {v}"),
                _ => {}
            }
        };
        eprintln!("resumed {:?} after MediaMTX answered again", back_at.elapsed());
        assert_eq!(resumed["params"]["resumed"], true);
        let second = resumed["params"]["filename"].as_str().unwrap().to_string();
        assert!(second > first, "a new segment: {first} -> {second}");
        // (progress queued before the outage was detected is not what we look for)
        c.notifications.clear();
        let p = c
            .wait_notification("recording.progress", Duration::from_secs(10))
            .await
            .expect("progress again after the resume");
        assert_eq!(p["params"]["filename"], second.as_str());

        let stopped = c.result("stop_recording", json!({"device": "camera50"})).await;
        let files: Vec<String> = stopped["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        assert!(files.contains(&first) && files.contains(&second), "{files:?}");
        for f in &files {
            let probe = probe_media(&folder.join(f));
            assert_eq!(probe.codec, "h264", "{f} plays");
            assert!(probe.packets > 0, "{f} holds frames");
        }
    });
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "this test needs root to mount a small tmpfs (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(p: &std::path::Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(p).unwrap();
    s.blocks_available() as u64 * s.fragment_size() as u64
}

/// A real ENOSPC with the floor set to 0: the disk fills up during a recording. It must look
/// like the floor case: `recording.error disk_full`, the recording stopped, no empty segment
/// left or listed, snapshots refused with -32060; what was recorded before still plays.
#[test]
fn a_full_disk_stops_the_recording_like_the_floor() {
    let double = start_double();
    let rest = with_double(
        &double,
        "health_interval = \"2s\"",
        &(QUICK_RECORDING.to_string() + &simulated("camera50", "640x480", 15)),
    );
    // Recordings and snapshots each on a small tmpfs of their own; the floor is off.
    let media = TempDir::new("full-disk");
    let recordings = media.path().join("recordings");
    let snapshots = media.path().join("snapshots");
    let _rec_fs = Mount::tmpfs(&recordings, "24m");
    let _snap_fs = Mount::tmpfs(&snapshots, "4m");
    let dir = TempDir::new("svc");
    let config_path = dir.path().join("config.toml");
    let text = test_config(dir.path(), "", "", &rest)
        .replace(
            &format!("recordings_dir = \"{}/recordings\"", dir.path().display()),
            &format!("recordings_dir = \"{}\"", recordings.display()),
        )
        .replace(
            &format!("snapshots_dir = \"{}/snapshots\"", dir.path().display()),
            &format!("min_free_bytes = 0\nsnapshots_dir = \"{}\"", snapshots.display()),
        );
    assert!(text.contains("min_free_bytes = 0"), "{text}");
    std::fs::write(&config_path, text).unwrap();
    let svc = Service::spawn(dir, config_path);
    smol::block_on(async {
        let mut admin = Client::connect(&svc.ws_url()).await;
        admin.auth_as(Role::Admin).await;
        // The floor is off: only the disk itself says no.
        let info = admin.result("get_storage_info", json!({})).await;
        assert!(
            info["available_space"].as_u64().unwrap() <= 24 << 20,
            "recordings on the tmpfs: {info}"
        );
        admin
            .result("subscribe_events", json!({"topics": ["recording_status_update"]}))
            .await;
        let first = admin.result("start_recording", json!({"device": "camera50"})).await["filename"]
            .as_str()
            .unwrap()
            .to_string();
        smol::Timer::after(Duration::from_secs(3)).await;
        // Fill the disk: leave about 200 KiB.
        let filler = recordings.join("filler.bin");
        let fill = free_bytes(&recordings).saturating_sub(200 << 10);
        std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
        let err = admin
            .wait_notification("recording.error", Duration::from_secs(20))
            .await
            .expect("recording.error when the disk is full");
        assert_eq!(
            (
                err["params"]["reason"].as_str(),
                err["params"]["recording_stopped"].as_bool()
            ),
            (Some("disk_full"), Some(true)),
            "{err}"
        );
        assert_eq!(
            admin.error_code("stop_recording", json!({"device": "camera50"})).await,
            INVALID_STATE,
            "the recording is stopped"
        );
        assert_eq!(
            admin.error_code("start_recording", json!({"device": "camera50"})).await,
            INSUFFICIENT_STORAGE
        );
        // Snapshots: their file system is full too (a real ENOSPC on write).
        let fill = free_bytes(&snapshots).saturating_sub(8 << 10);
        std::fs::write(snapshots.join("filler.bin"), vec![0u8; fill as usize]).unwrap();
        assert_eq!(
            admin.error_code("take_snapshot", json!({"device": "camera50"})).await,
            INSUFFICIENT_STORAGE
        );
        // Everything listed plays; the first segment (recorded before) is kept.
        smol::Timer::after(Duration::from_secs(2)).await;
        let listed = admin.result("list_recordings", json!({"device": "camera50"})).await;
        let files: Vec<String> = listed["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap().to_string())
            .collect();
        assert!(files.contains(&first), "{files:?}");
        for f in &files {
            let probe = probe_media(&recordings.join("camera50").join(f));
            assert!(probe.packets > 0, "{f} is listed but holds no media");
        }
        // Other clients are served normally.
        let mut viewer = Client::connect(&svc.ws_url()).await;
        viewer.auth_as(Role::Viewer).await;
        viewer.result("get_camera_list", json!({})).await;
    });
}
