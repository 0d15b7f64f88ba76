//! The free-space floor shared by storage and recording (api.md §5, §7): below
//! `storage.min_free_bytes` a recording is refused with -32060 and a running one is stopped
//! with `recording.error` `disk_full`. The service runs in-process so the test can move the
//! floor instead of filling a disk.

mod common;

use camera_service::api::auth::Role;
use camera_service::config::{Config, Secret};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn floor_refuses_new_recordings_and_stops_running_ones() {
    let dir = TempDir::new("space");
    let double = start_double();
    let text = test_config(
        dir.path(),
        "",
        "",
        &format!(
            "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\n[recording]\nprogress_interval = \"500ms\"\nstart_timeout = \"15s\"\n\
             [[camera.simulated]]\nid = \"camera50\"\nsize = \"320x240\"\nfps = 10\n",
            double.api_url(),
            double.rtsp_port
        ),
    );
    let config = Arc::new(Config::from_toml_str(&text, std::iter::empty()).unwrap());
    smol::block_on(async {
        let svc = camera_service::service::start(config, Secret::new(SECRET))
            .await
            .unwrap();
        let storage = svc.controller().storage().clone();
        let mut c = Client::connect(&format!("ws://{}/ws", svc.addr)).await;
        c.auth_as(Role::Operator).await;
        c.result("subscribe_events", json!({"topics": ["recording_status_update"]}))
            .await;

        storage.set_min_free_bytes(u64::MAX);
        let v = c.call("start_recording", json!({"device": "camera50"})).await;
        assert_eq!(v["error"]["code"], INSUFFICIENT_STORAGE, "{v}");
        assert_eq!(v["error"]["data"]["required_bytes"], u64::MAX);
        assert!(v["error"]["data"]["available_bytes"].as_u64().unwrap() > 0);
        assert!(
            !dir.path().join("recordings/camera50").exists()
                || std::fs::read_dir(dir.path().join("recordings/camera50"))
                    .unwrap()
                    .next()
                    .is_none(),
            "nothing recorded"
        );

        storage.set_min_free_bytes(0);
        let started = c.result("start_recording", json!({"device": "camera50"})).await;
        smol::Timer::after(Duration::from_secs(2)).await;
        storage.set_min_free_bytes(u64::MAX);
        let ev = c
            .wait_notification("recording.error", Duration::from_secs(10))
            .await
            .expect("disk_full error");
        assert_eq!(ev["params"]["reason"], "disk_full", "{ev}");
        assert_eq!(ev["params"]["recording_stopped"], true);
        assert_eq!(ev["params"]["filename"], started["filename"]);
        smol::Timer::after(Duration::from_secs(1)).await;
        assert_eq!(
            c.error_code("stop_recording", json!({"device": "camera50"})).await,
            INVALID_STATE,
            "already stopped"
        );
        let cam = c.result("get_camera_status", json!({"device": "camera50"})).await;
        assert_eq!(cam["recording"], false);
        svc.shutdown().await;
    });
}
