//! The frame tap (design.md "Frame tap") end to end: the service binary, the MediaMTX double,
//! real FFmpeg. Photos of a streaming and of a recording simulated camera come from the tap,
//! decode, and each shows a newer frame than the one before: the simulated publisher draws
//! its frame number into the picture (mediamtx::paths::frame_counter), read back here. The
//! tap's FFmpeg reader is gone after stop_streaming / stop_recording, and photos then go
//! through the tiers.

mod common;

use camera_service::api::auth::Role;
/// mediamtx::paths::COUNTER_BITS (the module is private to the crate).
const COUNTER_BITS: u32 = 16;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Rig {
    _double: Double,
    svc: Service,
}

/// `extra`: more `[snapshot]` keys, then other tables.
fn rig(extra: &str) -> Rig {
    let double = start_double();
    let rest = with_double(
        &double,
        "health_interval = \"1s\"",
        &format!(
            "[snapshot]\nrtsp_immediate_timeout = \"8s\"\nrtsp_activation_timeout = \"8s\"\n{extra}\n\n{}",
            simulated("camera50", "640x480", 15)
        ),
    );
    let svc = Service::start("", "", &rest);
    Rig { _double: double, svc }
}

/// The frame number drawn by the simulated publisher: blocks of width/16 pixels on the top.
fn counter(w: u32, px: &[u8], channels: usize) -> u64 {
    let b = (w / COUNTER_BITS) as usize;
    (0..COUNTER_BITS as usize)
        .filter(|k| {
            let i = ((b / 2) * w as usize + k * b + b / 2) * channels;
            px[i] > 128
        })
        .map(|k| 1u64 << k)
        .sum()
}

/// Decodes the photo of `v`: (width, height, frame number).
fn photo(r: &Rig, v: &Value) -> (u32, u32, u64) {
    let path = r
        .svc
        .dir
        .path()
        .join("snapshots/camera50")
        .join(v["filename"].as_str().unwrap());
    let (w, h, px) = decode(&path);
    assert!(spread(&px) > 30.0, "a test pattern, not one colour");
    let channels = px.len() / (w as usize * h as usize);
    (w, h, counter(w, &px, channels))
}

/// The service's FFmpeg children reading camera50 for the tap (`… -f h264 pipe:1`).
fn tap_children(r: &Rig) -> Vec<i32> {
    children(r, &["/camera50", "dump_extra", "pipe:1"])
}

/// The service's children whose command line holds all of `words`.
fn children(r: &Rig, words: &[&str]) -> Vec<i32> {
    let me = r.svc.child.id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // ppid is the 4th field, after the parenthesised command name
        let ppid = stat.rsplit(") ").next().and_then(|s| s.split(' ').nth(1)).unwrap_or("");
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if ppid == me && words.iter().all(|w| cmd.contains(w)) {
            out.push(pid);
        }
    }
    out
}

async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        smol::Timer::after(Duration::from_millis(100)).await;
    }
    false
}

/// Photos until the tap delivers (it needs its first whole GOP), then `n` more, each a newer
/// frame than the one before. Returns the tap photos' results.
async fn tap_photos(r: &Rig, c: &mut Client, n: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
        if v["source"] == "frame_tap" {
            break;
        }
        assert!(Instant::now() < end, "no photo from the tap within 20 s: {v}");
        smol::Timer::after(Duration::from_millis(200)).await;
    }
    let mut out: Vec<Value> = Vec::new();
    let mut last: Option<u64> = None;
    for _ in 0..n {
        smol::Timer::after(Duration::from_millis(150)).await;
        let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
        println!("tap photo: {v}");
        assert_eq!(
            (v["tier"].as_str(), v["source"].as_str()),
            (Some("rtsp_immediate"), Some("frame_tap")),
            "{v}"
        );
        check_result_schema("take_snapshot", &v);
        let age = v["frame_age_ms"].as_u64().expect("frame_age_ms");
        assert!(age < 2000, "a fresh frame: {v}");
        let (w, h, frame) = photo(r, &v);
        assert_eq!((w, h), (640, 480));
        if let Some(prev) = last {
            // 150 ms apart at 15 fps: at least one frame later
            assert!(frame > prev, "frame {frame} after frame {prev}: not newer");
        }
        last = Some(frame);
        out.push(v);
    }
    out
}

async fn release_and_check(r: &Rig) {
    assert!(
        wait_for(Duration::from_secs(10), || tap_children(r).is_empty()).await,
        "the tap's FFmpeg reader is gone: {:?}",
        tap_children(r)
    );
    // and the decoder it keeps started for the next photo (the only camera here)
    assert!(
        wait_for(Duration::from_secs(5), || children(r, &["yuv4mpegpipe"]).is_empty()).await,
        "the tap's spare decoder is gone"
    );
}

#[test]
fn photos_of_a_streaming_and_a_recording_camera_come_from_the_tap() {
    let r = rig("");
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;

        // idle: the tiers, no tap, no tap reader
        let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
        assert_eq!(
            (v["source"] == v["tier"], v["frame_age_ms"].as_u64()),
            (true, Some(0)),
            "{v}"
        );
        assert!(tap_children(&r).is_empty());

        // streaming
        c.result("start_streaming", json!({"device": "camera50"})).await;
        assert!(
            wait_for(Duration::from_secs(10), || tap_children(&r).len() == 1).await,
            "one tap reader"
        );
        // the tap is not a viewer
        let u = c.result("get_stream_url", json!({"device": "camera50"})).await;
        assert_eq!(u["active_consumers"], 0, "{u}");
        tap_photos(&r, &mut c, 5).await;
        let s = c.result("stop_streaming", json!({"device": "camera50"})).await;
        assert_eq!(s["stream_continues"], false, "{s}");
        release_and_check(&r).await;
        // no tap: the tiers deliver (the on-demand publisher may still run, or is started)
        let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
        assert_eq!(v["source"], v["tier"], "not from the tap: {v}");
        assert!(["rtsp_immediate", "rtsp_activation"].contains(&v["tier"].as_str().unwrap()));
        assert_eq!(photo(&r, &v).0, 640);

        // recording
        c.result("start_recording", json!({"device": "camera50"})).await;
        assert!(
            wait_for(Duration::from_secs(10), || tap_children(&r).len() == 1).await,
            "one tap reader"
        );
        tap_photos(&r, &mut c, 5).await;
        c.result("stop_recording", json!({"device": "camera50"})).await;
        release_and_check(&r).await;
        let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
        assert_eq!(v["source"], v["tier"], "not from the tap: {v}");
        assert_eq!(photo(&r, &v).0, 640);
    });
}

#[test]
fn h265_stream_goes_through_the_tap() {
    let r = rig("[ffmpeg]\nencoder = \"libx265\"\nencoder_options = \"-preset ultrafast\"");
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        c.result("start_streaming", json!({"device": "camera50"})).await;
        tap_photos(&r, &mut c, 3).await;
        let st = c.result("get_stream_status", json!({"device": "camera50"})).await;
        assert_eq!(st["codec"], "H265", "{st}");
        c.result("stop_streaming", json!({"device": "camera50"})).await;
        release_and_check(&r).await;
    });
}

fn proc_field(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The tap's cost while nobody asks for photos (design.md "Frame tap"): CPU of its FFmpeg
/// reader and the service's RSS growth over `TAP_COST_SECS` (30) of a streaming 640x480@15
/// simulated camera. Prints figures; run by hand: `cargo test --release --test snapshot_tap
/// -- --ignored --nocapture tap_idle_cost`.
#[test]
#[ignore]
fn tap_idle_cost() {
    let secs: u64 = std::env::var("TAP_COST_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let r = rig("");
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        let svc = r.svc.child.id();
        smol::Timer::after(Duration::from_secs(2)).await;
        let rss0 = proc_field(svc, "VmRSS:");
        c.result("start_streaming", json!({"device": "camera50"})).await;
        assert!(wait_for(Duration::from_secs(10), || tap_children(&r).len() == 1).await);
        let tap = tap_children(&r)[0] as u32;
        // settle: the first GOP, the session set-up
        smol::Timer::after(Duration::from_secs(3)).await;
        let (t0, svc0, tap0) = (Instant::now(), cpu_ticks(svc), cpu_ticks(tap));
        smol::Timer::after(Duration::from_secs(secs)).await;
        let wall = t0.elapsed().as_secs_f64();
        let hz = 100.0; // USER_HZ on Linux
        let tap_cpu = (cpu_ticks(tap) - tap0) as f64 / hz / wall * 100.0;
        let svc_cpu = (cpu_ticks(svc) - svc0) as f64 / hz / wall * 100.0;
        println!(
            "TAPCOST over {wall:.0} s, 640x480@15 H.264: tap ffmpeg CPU {tap_cpu:.2}% of a core, RSS {} KiB (private {} KiB); service CPU {svc_cpu:.2}% of a core, RSS {} KiB before streaming, {} KiB after (+{} KiB)",
            proc_field(tap, "VmRSS:"),
            proc_field(tap, "RssAnon:"),
            rss0,
            proc_field(svc, "VmRSS:"),
            proc_field(svc, "VmRSS:") as i64 - rss0 as i64
        );
        let spare: Vec<i32> = children(&r, &["yuv4mpegpipe"]);
        for pid in spare {
            println!(
                "TAPCOST spare decoder pid {pid}: RSS {} KiB (private {} KiB), CPU {} ticks in all",
                proc_field(pid as u32, "VmRSS:"),
                proc_field(pid as u32, "RssAnon:"),
                cpu_ticks(pid as u32)
            );
        }
        c.result("stop_streaming", json!({"device": "camera50"})).await;
    });
}

/// `[snapshot] frame_tap = false` (boards short of memory): no tap reader while a camera
/// streams; its photos read the stream anew.
#[test]
fn frame_tap_off_starts_no_reader() {
    let r = rig("frame_tap = false");
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        c.result("start_streaming", json!({"device": "camera50"})).await;
        for _ in 0..3 {
            let v = c.result("take_snapshot", json!({"device": "camera50"})).await;
            assert_eq!(v["source"], v["tier"], "not from the tap: {v}");
            assert_eq!(photo(&r, &v).0, 640);
        }
        assert!(tap_children(&r).is_empty(), "no tap reader");
    });
}
