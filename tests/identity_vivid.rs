//! Stable camera ids (docs/cameras.md, "Identity"), in the QEMU guest with vivid
//! (docs/vm-harness.md). Two vivid instances are cameras; then vivid is reloaded with the
//! first instance given an extra video-output node, which shifts the second instance's
//! capture node (`/dev/video1` → `/dev/video2`): each camera keeps its id. A restart with the
//! map present keeps the ids; a corrupt map is moved aside and the service starts with a
//! fresh one; `forget_camera` frees an id. Capture settings set for camera1 (another probed
//! mode) reach its MediaMTX path at once and stay with the camera across the reload and the
//! restart; an unsupported mode is refused with -32602 and the allowed list.
//! No qemu → the test fails (it never skips).

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// Both instances capture only: `/dev/video0` (vivid-000) and `/dev/video1` (vivid-001).
const FIRST: &str = "n_devs=2 node_types=0x1,0x1";
/// Instance 0 gets a video-output node too (`0x100`): `/dev/video0` capture, `/dev/video1`
/// output, instance 1's capture node is now `/dev/video2`.
const SHIFTED: &str = "n_devs=2 node_types=0x101,0x1";

#[test]
fn vivid_ids_follow_the_device_not_the_node() {
    if in_vivid_guest() {
        guest();
        return;
    }
    run_in_vivid_guest(
        "vivid_ids_follow_the_device_not_the_node",
        FIRST,
        900,
        &["--timing".into()],
        "VIVID-IDENTITY-PASSED",
    );
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?}: {st:?}");
}

fn modprobe(args: &str) {
    let m = std::env::var("VM_MODPROBE").unwrap_or_else(|_| "modprobe".into());
    let mut a = vec!["vivid"];
    a.extend(args.split_whitespace());
    run(&m, &a);
}

/// Unloads vivid. The module is busy while an on-demand publisher (FFmpeg started by the
/// MediaMTX double) still holds a node: that reader closes a few seconds after its last
/// viewer, so retry for a while before failing.
fn rmmod() {
    let r = std::env::var("VM_RMMOD").unwrap_or_else(|_| "rmmod".into());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let st = Command::new(&r).arg("vivid").status().unwrap();
        if st.success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{r} vivid still failing after 30 s: {st:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// device → (device_node, identity key, status) of every camera.
async fn cameras(c: &mut Client) -> BTreeMap<String, (String, String, String)> {
    let list = c.result("get_camera_list", json!({})).await;
    list["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cam| {
            (
                cam["device"].as_str().unwrap().to_string(),
                (
                    cam["device_node"].as_str().unwrap_or("-").to_string(),
                    cam["identity"]["key"].as_str().unwrap_or("-").to_string(),
                    cam["status"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// Waits for `n` notifications of `topic`; device → params.
async fn events(c: &mut Client, topic: &str, n: usize) -> BTreeMap<String, Value> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let ev = c
            .wait_notification(topic, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no {topic} within 30 s; got {got:?}"));
        let p = ev["params"].clone();
        got.insert(p["device"].as_str().unwrap().to_string(), p);
    }
    got
}

fn key(bus: &str) -> String {
    format!("v4l2:vivid:platform:{bus}:vivid")
}

/// Records `device` until its first segment has some video (FFmpeg starts slowly under
/// TCG), stops, and returns the segment's name and ffprobe view.
async fn record_a_little(c: &mut Client, dir: &std::path::Path, device: &str) -> (String, MediaProbe) {
    let started = c.result("start_recording", json!({"device": device})).await;
    let file = started["filename"].as_str().unwrap().to_string();
    let path = dir.join("recordings").join(device).join(&file);
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < 20_000 && std::time::Instant::now() < deadline {
        smol::Timer::after(Duration::from_millis(500)).await;
    }
    smol::Timer::after(Duration::from_secs(2)).await;
    c.result("stop_recording", json!({"device": device})).await;
    let media = probe_media(&path);
    (file, media)
}

/// The publisher command of `path` in the MediaMTX double.
fn run_on_demand(double: &Double, path: &str) -> String {
    let addr = double.api_url().trim_start_matches("http://").to_string();
    let (code, _, body) = http(&addr, "GET", &format!("/v3/config/paths/get/{path}"), &[]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let conf: Value = serde_json::from_slice(&body).unwrap();
    conf["runOnDemand"].as_str().unwrap_or_default().to_string()
}

fn guest() {
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"2s\"\n\n\
         [recording]\nstart_timeout = \"120s\"\nprogress_interval = \"1s\"\non_demand_start_timeout = \"60s\"\n\n\
         [ffmpeg]\nstall_timeout = \"60s\"\n\n[camera]\nmonitor = \"kernel\"\nrescan_interval = \"1h\"\n",
        double.api_url(),
        double.rtsp_port
    );
    let mut svc = Service::start("", "", &rest);
    let mut chosen = (String::new(), 0u64);
    let mut recorded: Vec<String> = Vec::new();
    let map_path = svc.dir.path().join("camera-ids.json");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        smol::block_on(async {
            let mut c = Client::connect(&svc.ws_url()).await;
            c.auth_as(Role::Admin).await;
            c.result("subscribe_events", json!({"topics": ["camera_status_update"]}))
                .await;
            let first = cameras(&mut c).await;
            println!("first enumeration ({FIRST}): {first:?}");
            let expect = |n0: &str, n1: &str, status: &str| {
                BTreeMap::from([
                    ("camera0".to_string(), (n0.into(), key("vivid-000"), status.to_string())),
                    ("camera1".to_string(), (n1.into(), key("vivid-001"), status.to_string())),
                ])
            };
            assert_eq!(first, expect("/dev/video0", "/dev/video1", "CONNECTED"));
            let st = c.result("get_camera_status", json!({"device": "camera1"})).await;
            assert_eq!(st["identity"]["kind"], "bus", "{st}");
            assert_eq!(st["identity"]["bus_info"], "platform:vivid-001", "{st}");

            // Capture settings: another probed mode for camera1.
            let caps = c.result("get_camera_capabilities", json!({"device": "camera1"})).await;
            let before = c.result("get_camera_settings", json!({"device": "camera1"})).await;
            println!("camera1 settings before: {before}");
            let mode = caps["modes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| {
                    m["format"] == "YUYV"
                        && format!("{}x{}", m["width"], m["height"]) != before["resolution"].as_str().unwrap()
                })
                .expect("another YUYV size")
                .clone();
            let res = format!("{}x{}", mode["width"], mode["height"]);
            let fps = mode["fps"][0].as_u64().unwrap();
            let set = c
                .result(
                    "set_camera_settings",
                    json!({"device": "camera1", "format": "YUYV", "resolution": res, "fps": fps, "gop": 10}),
                )
                .await;
            println!("set_camera_settings camera1 -> {set}");
            assert_eq!(
                (set["resolution"].as_str(), set["fps"].as_u64()),
                (Some(res.as_str()), Some(fps))
            );
            assert_eq!(set["applied"], true, "{set}");
            let ev = c
                .wait_notification("camera.status_change", Duration::from_secs(10))
                .await
                .expect("camera.status_change");
            assert_eq!(ev["params"]["device"], "camera1");
            assert_eq!(ev["params"]["resolution"], res.as_str(), "{ev}");
            let cmd = run_on_demand(&double, "camera1");
            println!("camera1 publisher: {cmd}");
            let want = format!("-input_format yuyv422 -video_size {res} -framerate {fps} -i /dev/video1");
            assert!(cmd.contains(&want) && cmd.contains("-g 10 "), "{cmd}");
            // Unsupported modes: -32602 naming the parameter and listing what is allowed.
            for (bad, param) in [
                (json!({"device": "camera1", "resolution": "123x45"}), "resolution"),
                (json!({"device": "camera1", "fps": 999}), "fps"),
                (json!({"device": "camera1", "format": "NOPE"}), "format"),
            ] {
                let e = c.call("set_camera_settings", bad).await;
                println!("unsupported {param}: {}", e["error"]);
                assert_eq!(e["error"]["code"], -32602, "{e}");
                assert_eq!(e["error"]["data"]["param"], param, "{e}");
                assert!(e["error"].to_string().contains("allowed: "), "{e}");
            }
            chosen = (res, fps);
            // The next recording captures at that size and rate.
            let (first_file, media) = record_a_little(&mut c, svc.dir.path(), "camera1").await;
            println!("camera1 recording {first_file}: {media:?}");
            assert_eq!(format!("{}x{}", media.width, media.height), chosen.0, "{media:?}");
            assert_eq!(media.frame_rate, format!("{}/1", chosen.1), "{media:?}");
            recorded.push(first_file);

            // Settings changed during a recording: it goes on in a new segment at the new
            // mode; then back to the chosen mode.
            let dir = svc.dir.path().join("recordings/camera1");
            let started = c.result("start_recording", json!({"device": "camera1"})).await;
            let seg1 = dir.join(started["filename"].as_str().unwrap());
            let deadline = std::time::Instant::now() + Duration::from_secs(150);
            while std::fs::metadata(&seg1).map(|m| m.len()).unwrap_or(0) < 20_000
                && std::time::Instant::now() < deadline
            {
                smol::Timer::after(Duration::from_millis(500)).await;
            }
            let before: std::collections::BTreeSet<_> =
                std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
            let set = c
                .result(
                    "set_camera_settings",
                    json!({"device": "camera1", "resolution": "640x360", "fps": 30}),
                )
                .await;
            assert_eq!(set["applied"], true, "{set}");
            let deadline = std::time::Instant::now() + Duration::from_secs(150);
            let new_seg = loop {
                let fresh = std::fs::read_dir(&dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| !before.contains(p) && std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) >= 20_000);
                if let Some(p) = fresh {
                    break p;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no new segment after the settings change"
                );
                smol::Timer::after(Duration::from_millis(500)).await;
            };
            smol::Timer::after(Duration::from_secs(2)).await;
            let st = c.result("get_camera_status", json!({"device": "camera1"})).await;
            assert_eq!(st["recording"], true, "the recording goes on: {st}");
            c.result("stop_recording", json!({"device": "camera1"})).await;
            let media = probe_media(&new_seg);
            println!(
                "segment after the settings change during the recording {}: {media:?}",
                new_seg.display()
            );
            assert_eq!((media.width, media.height), (640, 360), "{media:?}");
            c.result(
                "set_camera_settings",
                json!({"device": "camera1", "resolution": chosen.0, "fps": chosen.1}),
            )
            .await;

            // Re-enumerate with shifted nodes.
            rmmod();
            events(&mut c, "camera.disconnected", 2).await;
            assert_eq!(cameras(&mut c).await, expect("-", "-", "DISCONNECTED"));
            modprobe(SHIFTED);
            let ev = events(&mut c, "camera.connected", 2).await;
            let nodes: Vec<String> = std::fs::read_dir("/dev")
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("video"))
                .collect();
            println!("after reload ({SHIFTED}): nodes {nodes:?}");
            for (dev, p) in &ev {
                println!(
                    "  camera.connected {dev}: device_node {} identity {}",
                    p["device_node"], p["identity"]["key"]
                );
            }
            assert_eq!(ev["camera1"]["device_node"], "/dev/video2", "{ev:?}");
            assert_eq!(ev["camera1"]["identity"]["key"], key("vivid-001").as_str());
            assert_eq!(ev["camera0"]["device_node"], "/dev/video0", "{ev:?}");
            let after = cameras(&mut c).await;
            println!("after reload: {after:?}");
            assert_eq!(after, expect("/dev/video0", "/dev/video2", "CONNECTED"));
            // Settings belong to the identity: camera1 on its new node keeps them.
            let s = c.result("get_camera_settings", json!({"device": "camera1"})).await;
            assert_eq!(
                (s["resolution"].as_str(), s["fps"].as_u64()),
                (Some(chosen.0.as_str()), Some(chosen.1)),
                "{s}"
            );
            smol::Timer::after(Duration::from_millis(500)).await;
            let cmd = run_on_demand(&double, "camera1");
            println!("camera1 publisher after reload: {cmd}");
            assert!(
                cmd.contains(&format!(
                    "-video_size {} -framerate {} -i /dev/video2",
                    chosen.0, chosen.1
                )),
                "{cmd}"
            );
            // Recordings listed under camera1 continue: a new one from /dev/video2 joins the
            // one recorded from /dev/video1.
            let (second, media) = record_a_little(&mut c, svc.dir.path(), "camera1").await;
            println!("camera1 recording after reload {second}: {media:?}");
            recorded.push(second);
            let list = c.result("list_recordings", json!({"device": "camera1"})).await;
            let names: Vec<&str> = list["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["filename"].as_str())
                .collect();
            println!("list_recordings camera1: {names:?}");
            for r in &recorded {
                assert!(names.contains(&r.as_str()), "{r} not listed under camera1: {list}");
            }
            // The output node is not a camera; a connected camera cannot be forgotten.
            assert_eq!(
                c.error_code("forget_camera", json!({"device": "camera1"})).await,
                -32020
            );
        })
    }));
    if let Err(p) = outcome {
        eprintln!("---- service log ----\n{}", svc.log());
        std::panic::resume_unwind(p);
    }

    // The map on disk: private, both identities.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&map_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", map_path.display());
    let map: Value = serde_json::from_str(&std::fs::read_to_string(&map_path).unwrap()).unwrap();
    println!("id map: {map}");
    assert_eq!(map["cameras"].as_array().unwrap().len(), 2, "{map}");

    // Restart with the map present: same ids although camera1 is first seen on video2.
    let mut svc = Service::restart(&mut svc);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        smol::block_on(async {
            let mut c = Client::connect(&svc.ws_url()).await;
            c.auth_as(Role::Admin).await;
            let now = cameras(&mut c).await;
            println!("after restart: {now:?}");
            assert_eq!(now["camera1"].0, "/dev/video2");
            assert_eq!(now["camera1"].1, key("vivid-001"));
            assert_eq!(now["camera0"].1, key("vivid-000"));
            let s = c.result("get_camera_settings", json!({"device": "camera1"})).await;
            println!("camera1 settings after restart: {s}");
            assert_eq!(
                (
                    s["resolution"].as_str(),
                    s["fps"].as_u64(),
                    s["saved"]["gop"].as_u64(),
                    s["persisted"].as_bool()
                ),
                (Some(chosen.0.as_str()), Some(chosen.1), Some(10), Some(true)),
                "{s}"
            );

            // forget_camera: unplug, forget camera0, plug back → its identity is new again and
            // gets the lowest free id, while camera1 keeps its own.
            c.result("subscribe_events", json!({"topics": ["camera_status_update"]}))
                .await;
            rmmod();
            events(&mut c, "camera.disconnected", 2).await;
            let configured = |d: &Double| {
                let addr = d.api_url().trim_start_matches("http://").to_string();
                http(&addr, "GET", "/v3/config/paths/get/camera0", &[]).0
            };
            assert_eq!(configured(&double), 200, "camera0 had a MediaMTX path");
            let f = c.result("forget_camera", json!({"device": "camera0"})).await;
            assert_eq!(f["identity_key"], key("vivid-000").as_str(), "{f}");
            assert_eq!(configured(&double), 404, "the forgotten camera's path is removed");
            assert_eq!(cameras(&mut c).await.len(), 1);
            modprobe(FIRST);
            events(&mut c, "camera.connected", 2).await;
            let now = cameras(&mut c).await;
            println!("after forget camera0 + reload ({FIRST}): {now:?}");
            assert_eq!(now["camera1"].0, "/dev/video1");
            assert_eq!(now["camera1"].1, key("vivid-001"));
        })
    }));
    if let Err(p) = outcome {
        eprintln!("---- service log ----\n{}", svc.log());
        std::panic::resume_unwind(p);
    }

    // Corrupt map: moved aside, logged with the path, fresh ids.
    std::fs::write(&map_path, b"{\"version\":1,\"cameras\":[{\"id\":\"camera0\"").unwrap();
    let mut svc = Service::restart(&mut svc);
    let log = svc.log();
    let line = log
        .lines()
        .find(|l| l.contains("is corrupt"))
        .unwrap_or_else(|| panic!("no corrupt-map error in the log:\n{log}"));
    println!("corrupt map: {line}");
    assert!(line.contains(&map_path.display().to_string()) && line.contains("moved aside to"));
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Viewer).await;
        let now = cameras(&mut c).await;
        println!("after corrupt map: {now:?}");
        assert_eq!(now.len(), 2, "{now:?}");
        let sys = c.result("get_system_status", json!({})).await;
        assert_eq!(sys["status"], "partial", "{sys}");
    });
    let fresh: Value = serde_json::from_str(&std::fs::read_to_string(&map_path).unwrap()).unwrap();
    assert_eq!(
        fresh["cameras"].as_array().unwrap().len(),
        2,
        "a fresh map is written: {fresh}"
    );

    // [[camera.devices]]: pin vivid-001's node to camera5 with a name, disable video0.
    let mut cfg = std::fs::read_to_string(&svc.config_path).unwrap();
    cfg.push_str(
        "\n[[camera.devices]]\nnode = \"/dev/video1\"\nid = \"camera5\"\nname = \"Rear\"\n\n\
         [[camera.devices]]\nnode = \"/dev/video0\"\nenabled = false\n",
    );
    std::fs::write(&svc.config_path, cfg).unwrap();
    let svc = Service::restart(&mut svc);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Viewer).await;
        let list = c.result("get_camera_list", json!({})).await;
        println!("with [[camera.devices]]: {list}");
        let cams = list["cameras"].as_array().unwrap();
        assert_eq!(cams.len(), 1, "/dev/video0 is disabled: {list}");
        assert_eq!(
            (&cams[0]["device"], &cams[0]["name"], &cams[0]["device_node"]),
            (&json!("camera5"), &json!("Rear"), &json!("/dev/video1")),
            "{list}"
        );
        assert_eq!(cams[0]["identity"]["key"], key("vivid-001").as_str());
    });
    let map: Value = serde_json::from_str(&std::fs::read_to_string(&map_path).unwrap()).unwrap();
    println!("id map with the pin: {map}");
    let ids: Vec<(&str, &str)> = map["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["key"].as_str().unwrap()))
        .collect();
    assert!(ids.contains(&("camera5", key("vivid-001").as_str())), "{ids:?}");
    assert!(
        !ids.iter().any(|(id, _)| *id == "camera1"),
        "the pin moved vivid-001: {ids:?}"
    );
    println!("VIVID-IDENTITY-PASSED");
}
