//! Files others put in our directories, through the real binary (issue: hardening).
//! A FIFO named like a recording must not block a thread: every file request on it is an
//! immediate "not found", the blocking pool stays small, and other clients are served.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const NOT_FOUND: i64 = -32010;

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
