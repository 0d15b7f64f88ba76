//! Real V4L2 discovery and hot-plug, in the QEMU guest with vivid (docs/vm-harness.md).
//!
//! On the host this test boots one VM (`scripts/vm-run`) and re-runs itself inside it
//! (`VM_GUEST=1`), where it starts the real service binary and checks through the
//! WebSocket API that:
//! - exactly the video-capture nodes become cameras (vivid also creates VBI, radio, SDR,
//!   touch, video-output and metadata nodes), judged independently by `v4l2-ctl -D`;
//! - each camera's modes equal what `v4l2-ctl --list-formats-ext` reports for its node;
//! - `rmmod vivid` → `camera.disconnected` for every camera and status DISCONNECTED;
//!   `modprobe vivid` → `camera.connected` and CONNECTED again; the latency from the
//!   command returning to the event arriving is printed.
//!
//! No qemu → the test fails (it never skips).

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// Device 0: every node type vivid has (video capture, raw+sliced VBI capture, radio
/// receiver, SDR, video output, metadata capture and output, touch); device 1: capture only.
const VIVID_ARGS: &str = "n_devs=2 node_types=0xe013d,0x1";

#[test]
fn vivid_discovery_and_hotplug() {
    if in_vivid_guest() {
        guest();
        return;
    }
    run_in_vivid_guest(
        "vivid_discovery_and_hotplug",
        VIVID_ARGS,
        600,
        &["--timing".into()],
        "VIVID-CHECKS-PASSED",
    );
}

/// `v4l2-ctl -D`: is the node a video-capture node (Device Caps bit 0, not touch)?
fn v4l2ctl_is_capture(dev: &str) -> bool {
    let out = Command::new("v4l2-ctl").args(["-d", dev, "-D"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let caps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Device Caps"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| u32::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("no Device Caps for {dev}: {text}"));
    caps & 0x1 != 0 && caps & 0x1000_0000 == 0
}

/// `v4l2-ctl --list-formats-ext` → {(format, width, height, fps)}.
fn v4l2ctl_modes(dev: &str) -> BTreeSet<(String, u32, u32, u32)> {
    let out = Command::new("v4l2-ctl")
        .args(["-d", dev, "--list-formats-ext"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut modes = BTreeSet::new();
    let (mut fmt, mut size) = (String::new(), (0, 0));
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            fmt = l.split('\'').nth(1).unwrap().trim_end().to_string();
        } else if let Some(s) = l.strip_prefix("Size: Discrete ") {
            let (w, h) = s.split_once('x').unwrap();
            size = (w.parse().unwrap(), h.parse().unwrap());
        } else if l.starts_with("Size:") {
            panic!("{dev}: non-discrete size in vivid output, extend the parser: {l}");
        } else if l.starts_with("Interval: Discrete") {
            let fps: f64 = l
                .split('(')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            modes.insert((fmt.clone(), size.0, size.1, fps.round() as u32));
        }
    }
    modes
}

fn api_modes(caps: &Value) -> BTreeSet<(String, u32, u32, u32)> {
    let mut out = BTreeSet::new();
    for m in caps["modes"].as_array().unwrap() {
        for f in m["fps"].as_array().unwrap() {
            out.insert((
                m["format"].as_str().unwrap().to_string(),
                m["width"].as_u64().unwrap() as u32,
                m["height"].as_u64().unwrap() as u32,
                f.as_u64().unwrap() as u32,
            ));
        }
    }
    out
}

fn video_nodes() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| {
            n.strip_prefix("video")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|n| format!("/dev/{n}"))
        .collect();
    v.sort();
    v
}

/// Runs `cmd args` on a thread while `client` waits for `topic` from every device in
/// `devices`; returns per-device latency in ms from the command returning (negative: the
/// event arrived before the command returned).
async fn hotplug(
    c: &mut Client,
    cmd: &str,
    args: &[&str],
    topic: &str,
    devices: &BTreeSet<String>,
) -> BTreeMap<String, f64> {
    let mut argv = vec![cmd.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let runner = std::thread::spawn(move || {
        let st = Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
        assert!(st.success(), "{argv:?} failed: {st:?}");
        Instant::now()
    });
    let mut got: BTreeMap<String, Instant> = BTreeMap::new();
    while got.len() < devices.len() {
        let n = c
            .wait_notification(topic, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("no {topic} within 20 s; got {got:?}"));
        let at = Instant::now();
        assert_eq!(n["method"], "camera_status_update", "{n}");
        let dev = n["params"]["device"].as_str().unwrap().to_string();
        assert!(devices.contains(&dev), "{topic} for unexpected {dev}: {n}");
        let expect = if topic == "camera.connected" {
            "CONNECTED"
        } else {
            "DISCONNECTED"
        };
        assert_eq!(n["params"]["status"], expect, "{n}");
        for k in ["name", "resolution", "fps", "streams"] {
            assert!(!n["params"][k].is_null(), "{k} missing in {n}");
        }
        assert_eq!(n["params"]["source_type"], "v4l2");
        got.entry(dev).or_insert(at);
    }
    let returned = runner.join().unwrap();
    got.into_iter()
        .map(|(d, at)| {
            let ms = if at >= returned {
                at.duration_since(returned).as_secs_f64() * 1000.0
            } else {
                -(returned.duration_since(at).as_secs_f64() * 1000.0)
            };
            (d, ms)
        })
        .collect()
}

fn guest() {
    let nodes = video_nodes();
    // Camera ids come from the identity map (first seen, first numbered), not from node
    // numbers: the checks compare nodes, reported as `device_node`.
    let capture: BTreeSet<String> = nodes.iter().filter(|n| v4l2ctl_is_capture(n)).cloned().collect();
    println!("video nodes: {nodes:?}; capture nodes per v4l2-ctl: {capture:?}");
    assert_eq!(capture.len(), 2, "vivid with {VIVID_ARGS} has two capture nodes");
    assert!(nodes.len() >= 5, "output and metadata nodes exist too: {nodes:?}");
    let others: Vec<_> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| {
            ["vbi", "radio", "swradio", "v4l-touch"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    println!("non-video V4L2 nodes: {others:?}");

    let t = Instant::now();
    let svc = Service::start("", "", "[camera]\nmonitor = \"auto\"\nrescan_interval = \"1h\"\n");
    println!(
        "service up (first discovery pass done) in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let log_on_panic = std::panic::AssertUnwindSafe(&svc);
    let result = std::panic::catch_unwind(|| smol::block_on(checks(&log_on_panic, &capture)));
    if let Err(panic) = result {
        eprintln!("---- service log ----\n{}", svc.log());
        std::panic::resume_unwind(panic);
    }
    let log = svc.log();
    assert!(
        log.contains("camera monitor: kernel uevents"),
        "no udevd in the guest: the kernel-uevent source must be used\n{log}"
    );
    println!("VIVID-CHECKS-PASSED");
}

async fn checks(svc: &Service, capture_nodes: &BTreeSet<String>) {
    let mut c = Client::connect(&svc.ws_url()).await;
    c.auth_as(Role::Viewer).await;
    let sub = c
        .result("subscribe_events", json!({"topics": ["camera_status_update"]}))
        .await;
    assert_eq!(sub["subscribed"], true);

    let sys = c.result("get_system_status", json!({})).await;
    assert_eq!(
        (&sys["status"], &sys["discovery_active"]),
        (&json!("ready"), &json!(true)),
        "{sys}"
    );

    let list = c.result("get_camera_list", json!({})).await;
    let node_of: BTreeMap<String, String> = list["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["device"].as_str().unwrap().to_string(),
                c["device_node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let nodes: BTreeSet<String> = node_of.values().cloned().collect();
    assert_eq!(&nodes, capture_nodes, "only capture nodes are cameras: {list}");
    let capture: &BTreeSet<String> = &node_of.keys().cloned().collect();
    assert_eq!(
        capture,
        &["camera0", "camera1"].into_iter().map(String::from).collect(),
        "a fresh id map numbers the cameras from camera0: {list}"
    );
    for cam in list["cameras"].as_array().unwrap() {
        assert_eq!(
            (&cam["status"], &cam["source_type"]),
            (&json!("CONNECTED"), &json!("v4l2")),
            "{cam}"
        );
    }

    for id in capture {
        let dev = node_of[id].clone();
        let st = c.result("get_camera_status", json!({"device": id})).await;
        assert_eq!(st["device_node"], dev.as_str(), "{st}");
        assert_eq!(st["identity"]["kind"], "bus", "vivid is not USB: {st}");
        assert_eq!(st["capabilities"]["driver"], "vivid", "{st}");
        assert!(st["capabilities"]["bus_info"]
            .as_str()
            .unwrap()
            .starts_with("platform:vivid-"));
        let cap_list = st["capabilities"]["capabilities"].as_array().unwrap();
        assert!(cap_list.contains(&json!("video_capture")), "{st}");
        assert!(cap_list.contains(&json!("streaming")), "{st}");

        let caps = c.result("get_camera_capabilities", json!({"device": id})).await;
        let ours = api_modes(&caps);
        let theirs = v4l2ctl_modes(&dev);
        assert!(!theirs.is_empty(), "v4l2-ctl listed no modes for {dev}");
        let missing: Vec<_> = theirs.difference(&ours).collect();
        let extra: Vec<_> = ours.difference(&theirs).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{id} modes differ from v4l2-ctl: missing {missing:?}, extra {extra:?}"
        );
        let formats = caps["formats"].as_array().unwrap();
        println!(
            "{id} ({dev}): {} formats, {} resolutions, frame rates {}, {} (format, size, fps) combinations match v4l2-ctl",
            formats.len(),
            caps["resolutions"].as_array().unwrap().len(),
            caps["frame_rates"],
            ours.len()
        );
        assert_eq!(caps["validation_status"], "confirmed");
        assert_eq!(caps["fps_options"], caps["frame_rates"]);
    }

    // Unplug: every camera disconnects and stays listed.
    let rmmod = std::env::var("VM_RMMOD").unwrap_or_else(|_| "rmmod".into());
    let lat = hotplug(&mut c, &rmmod, &["vivid"], "camera.disconnected", capture).await;
    println!("rmmod vivid -> camera.disconnected latency (ms after rmmod returned): {lat:?}");
    let list = c.result("get_camera_list", json!({})).await;
    assert_eq!(
        (list["total"].as_u64(), list["connected"].as_u64()),
        (Some(2), Some(0)),
        "{list}"
    );
    for id in capture {
        let st = c.result("get_camera_status", json!({"device": id})).await;
        assert_eq!(st["status"], "DISCONNECTED", "{st}");
        let caps = c.result("get_camera_capabilities", json!({"device": id})).await;
        assert_eq!(caps["validation_status"], "disconnected");
    }
    let sys = c.result("get_system_status", json!({})).await;
    assert_eq!(sys["available_cameras"], json!([]), "{sys}");
    assert_eq!(sys["last_event"]["topic"], "camera.disconnected", "{sys}");

    // Plug back in: connected again.
    let modprobe = std::env::var("VM_MODPROBE").unwrap_or_else(|_| "modprobe".into());
    let mut args = vec!["vivid"];
    args.extend(VIVID_ARGS.split_whitespace());
    let lat = hotplug(&mut c, &modprobe, &args, "camera.connected", capture).await;
    println!("modprobe vivid -> camera.connected latency (ms after modprobe returned): {lat:?}");
    let list = c.result("get_camera_list", json!({})).await;
    assert_eq!(
        (list["total"].as_u64(), list["connected"].as_u64()),
        (Some(2), Some(2)),
        "{list}"
    );
    let sys = c.result("get_system_status", json!({})).await;
    assert_eq!(sys["status"], "ready", "{sys}");
}
