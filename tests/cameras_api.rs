//! Camera discovery through the real WebSocket API on a host without V4L2 (api.md §4, §10):
//! simulated cameras, status/capabilities shapes, error codes, get_system_status, health.
//! Real V4L2 nodes and hot-plug are covered by tests/cameras_vivid.rs in the QEMU guest.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};

const SIMULATED: &str = r#"
[[camera.simulated]]
id = "camera50"
pattern = "testsrc2"
size = "640x480"
fps = 15

[[camera.simulated]]
id = "camera7"
pattern = "smptebars"
size = "1280x720"
fps = 30
name = "Bench bars"
"#;

fn is_rfc3339_utc(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[test]
fn simulated_cameras_through_the_api() {
    // Readiness needs MediaMTX answering too: run the double.
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nhealth_interval = \"200ms\"\n{SIMULATED}",
        double.api_url()
    );
    let svc = Service::start("", "", &rest);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        assert_eq!(c.error_code("get_camera_list", json!({})).await, AUTH_FAILED);
        c.auth_as(Role::Viewer).await;

        let list = c.result("get_camera_list", json!({})).await;
        let cams = list["cameras"].as_array().unwrap();
        // No V4L2 here: exactly the two simulated cameras, sorted by number.
        assert_eq!(
            cams.iter().map(|c| c["device"].as_str().unwrap()).collect::<Vec<_>>(),
            ["camera7", "camera50"],
            "{list}"
        );
        assert_eq!((list["total"].as_u64(), list["connected"].as_u64()), (Some(2), Some(2)));
        let cam50 = &cams[1];
        assert_eq!(
            cam50,
            &json!({
                "device": "camera50",
                "status": "CONNECTED",
                "name": "Simulated camera (testsrc2)",
                "resolution": "640x480",
                "fps": 15,
                "source_type": "simulated",
                "streams": {
                    "rtsp": "rtsp://127.0.0.1:8554/camera50",
                    "hls": "http://127.0.0.1:8888/camera50/index.m3u8",
                    "webrtc": "http://127.0.0.1:8889/camera50/whep",
                },
            })
        );
        assert_eq!(cams[0]["name"], "Bench bars");

        let st = c.result("get_camera_status", json!({"device": "camera7"})).await;
        assert_eq!(st["status"], "CONNECTED");
        assert_eq!(st["resolution"], "1280x720");
        assert_eq!(st["streams"]["rtsp"], "rtsp://127.0.0.1:8554/camera7");
        assert_eq!(st["capabilities"]["driver"], "lavfi");
        assert_eq!(st["capabilities"]["bus_info"], "simulated:camera7");
        assert!(st["capabilities"]["card"].is_string());
        assert!(st["capabilities"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("video_capture")));
        assert_eq!((&st["recording"], &st["streaming"]), (&json!(false), &json!(false)));
        assert!(is_rfc3339_utc(st["last_seen"].as_str().unwrap()), "{st}");

        let caps = c.result("get_camera_capabilities", json!({"device": "camera50"})).await;
        assert_eq!(
            caps,
            json!({
                "device": "camera50",
                "formats": ["YU12"],
                "resolutions": ["640x480"],
                "frame_rates": [15],
                "fps_options": [15],
                "modes": [{"format": "YU12", "width": 640, "height": 480, "fps": [15]}],
                "validation_status": "confirmed",
            })
        );

        // Unknown id → -32010 with resource/id; malformed or missing → -32602 with param.
        for m in ["get_camera_status", "get_camera_capabilities"] {
            let v = c.call(m, json!({"device": "camera3"})).await;
            assert_eq!(v["error"]["code"], NOT_FOUND, "{v}");
            assert_eq!(v["error"]["message"], "Not found");
            assert_eq!(
                (&v["error"]["data"]["resource"], &v["error"]["data"]["id"]),
                (&json!("camera"), &json!("camera3"))
            );
            for bad in [
                json!({"device": "cam3"}),
                json!({"device": "camera-1"}),
                json!({}),
                json!({"device": 3}),
            ] {
                let v = c.call(m, bad.clone()).await;
                assert_eq!(v["error"]["code"], INVALID_PARAMS, "{m} {bad}: {v}");
                assert_eq!(v["error"]["data"]["param"], "device");
            }
        }
        let v = c.call("get_camera_list", json!({"extra": 1})).await;
        assert_eq!(v["error"]["code"], INVALID_PARAMS);

        let sys = c.result("get_system_status", json!({})).await;
        assert_eq!(sys["status"], "ready", "{sys}");
        assert!(sys["message"].is_string());
        assert_eq!(sys["available_cameras"], json!(["camera7", "camera50"]));
        assert_eq!(sys["discovery_active"], true, "the monitor runs even without V4L2");
        assert_eq!(sys["last_event"], Value::Null, "no V4L2 event happened");
    });

    // Discovery finished its first pass before the service announced itself, and MediaMTX
    // answers the probe: ready.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (s, _, b) = http(&svc.addr, "GET", "/health/detailed", &[]);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["components"]["cameras"]["status"], "healthy", "{v}");
    let (s, _, b) = http(&svc.addr, "GET", "/health/ready", &[]);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let log = svc.log();
    assert!(log.contains("first camera discovery pass done"), "{log}");
}

#[test]
fn public_host_ports_and_discovery_off() {
    let rest = format!(
        "[mediamtx]\npublic_host = \"cams.example\"\nrtsp_port = 9554\nhls_port = 9888\nwebrtc_port = 9889\n\n[camera]\nmonitor = \"off\"\n{SIMULATED}"
    );
    let svc = Service::start("", "", &rest);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Viewer).await;
        let st = c.result("get_camera_status", json!({"device": "camera50"})).await;
        assert_eq!(
            st["streams"],
            json!({
                "rtsp": "rtsp://cams.example:9554/camera50",
                "hls": "http://cams.example:9888/camera50/index.m3u8",
                "webrtc": "http://cams.example:9889/camera50/whep",
            })
        );
        let sys = c.result("get_system_status", json!({})).await;
        assert_eq!(
            (&sys["status"], &sys["discovery_active"]),
            (&json!("ready"), &json!(false)),
            "{sys}"
        );
    });
}

/// The result check of `tests/common` can fail: a result off its schema is caught.
#[test]
#[should_panic(expected = "does not match docs/openrpc.json")]
fn a_result_off_its_schema_is_caught() {
    common::check_result_schema("get_camera_list", &serde_json::json!({"cameras": 1, "total": 0}));
}

/// The camera id map (docs/cameras.md, "Identity"): `forget_camera` is admin-only and
/// refuses what is not a disconnected V4L2 camera; a corrupt map is moved aside at start-up,
/// the error names the file, and the service starts with a fresh map.
#[test]
fn forget_camera_rules_and_corrupt_map_recovery() {
    let rest = format!("[camera]\nmonitor = \"off\"\n{SIMULATED}");
    let mut svc = Service::start("", "", &rest);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        assert_eq!(
            c.error_code("forget_camera", json!({"device": "camera7"})).await,
            -32002
        );
        c.auth_as(Role::Admin).await;
        let e = c.call("forget_camera", json!({"device": "camera7"})).await;
        assert_eq!(e["error"]["code"], -32020, "simulated cameras have no identity: {e}");
        assert_eq!(e["error"]["data"]["state"], "simulated", "{e}");
        assert_eq!(
            c.error_code("forget_camera", json!({"device": "camera3"})).await,
            -32010
        );
        assert_eq!(c.error_code("forget_camera", json!({"device": "cam3"})).await, -32602);
        // Capture settings belong to V4L2 cameras; encoder needs admin; something to set.
        assert_eq!(
            c.error_code("get_camera_settings", json!({"device": "camera7"})).await,
            -32030
        );
        let e = c
            .call("set_camera_settings", json!({"device": "camera7", "fps": 15}))
            .await;
        assert_eq!(e["error"]["code"], -32030, "{e}");
        assert_eq!(
            c.error_code("set_camera_settings", json!({"device": "camera7"})).await,
            -32602
        );
        c.auth_as(Role::Operator).await;
        let e = c
            .call(
                "set_camera_settings",
                json!({"device": "camera7", "encoder": "libx264"}),
            )
            .await;
        assert_eq!(
            (e["error"]["code"].as_i64(), &e["error"]["data"]["param"]),
            (Some(-32002), &json!("encoder")),
            "{e}"
        );
    });

    let map = svc.dir.path().join("camera-ids.json");
    std::fs::write(&map, "{\"version\": 1, \"cameras\": [ trailing garbage").unwrap();
    let svc = Service::restart(&mut svc);
    let log = svc.log();
    let expect = format!("camera id map {} is corrupt", map.display());
    assert!(log.contains(&expect) && log.contains("moved aside to"), "{log}");
    assert!(!map.exists(), "the bad file is moved aside");
    let aside: Vec<String> = std::fs::read_dir(svc.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("camera-ids.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Viewer).await;
        let sys = c.result("get_system_status", json!({})).await;
        assert_eq!(sys["status"], "partial", "{sys}");
        assert!(sys["message"].as_str().unwrap().contains(&expect), "{sys}");
        let list = c.result("get_camera_list", json!({})).await;
        assert_eq!(list["total"], 2, "the service runs on: {list}");
    });
}
