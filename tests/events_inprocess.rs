//! Event delivery under load, with the service running in-process so the test can publish
//! events straight into the bus while clients use the real WebSocket.

mod common;

use async_tungstenite::tungstenite::Message;
use camera_service::api::auth::Role;
use camera_service::api::events::Topic;
use camera_service::config::{Config, Secret};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path, queue: usize) -> Arc<Config> {
    let text = test_config(dir, &format!("event_queue_size = {queue}"), "", "");
    Arc::new(Config::from_toml_str(&text, std::iter::empty()).unwrap())
}

#[test]
fn slow_client_neither_delays_others_nor_grows_without_bound() {
    let dir = TempDir::new("slow");
    smol::block_on(async {
        let svc = camera_service::service::start(config(dir.path(), 64), Secret::new(SECRET))
            .await
            .unwrap();
        let url = format!("ws://{}/ws", svc.addr);
        let mut slow = Client::connect(&url).await;
        slow.auth_as(Role::Viewer).await;
        slow.result("subscribe_events", json!({"topics": ["camera.status_change"]}))
            .await;
        let mut fast = Client::connect(&url).await;
        fast.auth_as(Role::Viewer).await;
        fast.result("subscribe_events", json!({"topics": ["camera.status_change"]}))
            .await;
        // `slow` never reads again. Publish 3000 events of ~8 KiB (24 MB in all, well beyond
        // what loopback socket buffers hold) and check `fast` gets each within a bounded time.
        let bus = svc.state.bus.clone();
        let pad = "x".repeat(8000);
        let total = 3000u64;
        let reader = smol::spawn(async move {
            let mut got = 0u64;
            let mut worst = Duration::ZERO;
            while got < total {
                match timeout(Duration::from_secs(10), fast.ws.next())
                    .await
                    .expect("fast client starved")
                {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        let sent_ns: u128 = v["params"]["sent_ns"].as_str().unwrap().parse().unwrap();
                        let now_ns = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_nanos();
                        worst = worst.max(Duration::from_nanos((now_ns.saturating_sub(sent_ns)) as u64));
                        got += 1;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("fast client lost: {other:?}"),
                }
            }
            (got, worst, fast)
        });
        for i in 0..total {
            let mut p = Map::new();
            p.insert("seq".into(), Value::from(i));
            p.insert("pad".into(), Value::from(pad.as_str()));
            p.insert(
                "sent_ns".into(),
                Value::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                        .to_string(),
                ),
            );
            bus.publish(Topic::CameraStatusChange, Some("camera1"), p);
            // ~2000 events/s: a brisk but realistic rate that a reading client keeps up with.
            if i % 10 == 9 {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
        }
        let (got, worst, mut fast) = reader.await;
        assert_eq!(got, total, "the reading client got every event");
        eprintln!("fast client: {got} events, worst delivery latency {worst:?}");
        assert!(
            worst < Duration::from_secs(2),
            "a slow client must not hold up others: worst {worst:?}"
        );
        // The slow client's queue is bounded: the overflow was dropped and counted.
        let stats = fast.result("get_subscription_stats", json!({})).await;
        assert_eq!(stats["dropped_events"], 0, "the reading client lost nothing: {stats}");
        let dropped = stats["global_stats"]["dropped_events"].as_u64().unwrap();
        // Socket buffers (a few MB on loopback) absorb some events; the queue holds 64; the
        // rest must have been dropped rather than buffered.
        assert!(
            dropped >= total - 64 - 1500,
            "slow client's overflow dropped and counted: {dropped} ({stats})"
        );
        drop(slow);
        svc.shutdown().await;
    });
}

#[test]
fn device_filter_and_notification_shape() {
    let dir = TempDir::new("filter");
    smol::block_on(async {
        let svc = camera_service::service::start(config(dir.path(), 16), Secret::new(SECRET))
            .await
            .unwrap();
        let url = format!("ws://{}/ws", svc.addr);
        let mut c = Client::connect(&url).await;
        c.auth_as(Role::Viewer).await;
        let r = c
            .result(
                "subscribe_events",
                json!({"topics": ["camera_status_update"], "filters": {"device": "camera2"}}),
            )
            .await;
        assert_eq!(r["filters"]["device"], "camera2");
        let bad = c
            .call(
                "subscribe_events",
                json!({"topics": ["camera.connected"], "filters": {"device": "cam2"}}),
            )
            .await;
        assert_eq!(bad["error"]["code"], INVALID_PARAMS);
        let bus = svc.state.bus.clone();
        let t0 = Instant::now();
        bus.publish(Topic::CameraConnected, Some("camera1"), Map::new());
        let mut p = Map::new();
        p.insert("status".into(), Value::from("CONNECTED"));
        bus.publish(Topic::CameraConnected, Some("camera2"), p);
        let n = c
            .wait_notification("camera.connected", Duration::from_secs(2))
            .await
            .expect("event for camera2");
        eprintln!("delivery took {:?}", t0.elapsed());
        assert_eq!(n["method"], "camera_status_update");
        assert_eq!(n["params"]["device"], "camera2");
        assert!(n.get("id").is_none(), "notifications carry no id");
        assert!(
            c.notifications.iter().all(|n| n["params"]["device"] != "camera1"),
            "filtered out"
        );
        svc.shutdown().await;
    });
}
