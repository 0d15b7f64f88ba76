//! `scripts/bench-rpc`: ping round trip p50/p99 and req/s for 1, 50 and 200 concurrent
//! clients against the real binary, and event fan-out p99 to 500 subscribers (in-process,
//! so events can be injected). Prints figures; asserts nothing about speed.

mod support;

use async_tungstenite::tungstenite::Message;
use camera_service::api::auth::{JwtKey, Role};
use camera_service::api::events::Topic;
use camera_service::config::{Config, Secret};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use smol::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnop";

fn config_text(dir: &std::path::Path) -> String {
    format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\nmax_connections = 1000\nevent_queue_size = 1024\n[security]\njwt_secret = \"{SECRET}\"\napi_keys_file = \"{d}/keys.json\"\nrate_limit_per_second = 100000\nrate_limit_burst = 100000\n[storage]\nstate_dir = \"{d}\"\nrecordings_dir = \"{d}/rec\"\nsnapshots_dir = \"{d}/snap\"\n",
        d = dir.display()
    )
}

type Ws = async_tungstenite::WebSocketStream<TcpStream>;

async fn connect(addr: &str) -> Ws {
    let tcp = TcpStream::connect(addr).await.unwrap();
    async_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .unwrap()
        .0
}

async fn rpc(ws: &mut Ws, text: String) -> Value {
    ws.send(Message::text(text)).await.unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v.get("id").is_some() {
                return v;
            }
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn ping_bench(addr: &str, clients: usize, per_client: usize) {
    let start = Instant::now();
    let addr = addr.to_string();
    let lats: Vec<Duration> = smol::block_on(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let addr = addr.clone();
                smol::spawn(async move {
                    let mut ws = connect(&addr).await;
                    let mut lat = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        let t = Instant::now();
                        let v = rpc(
                            &mut ws,
                            format!("{{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":{i}}}"),
                        )
                        .await;
                        assert_eq!(v["result"], "pong");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await);
        }
        all
    });
    let wall = start.elapsed();
    let mut lats = lats;
    lats.sort();
    println!(
        "ping  clients={clients:<4} requests={:<6} p50={:.3} ms  p99={:.3} ms  throughput={:.0} req/s",
        lats.len(),
        pct(&lats, 0.50),
        pct(&lats, 0.99),
        lats.len() as f64 / wall.as_secs_f64()
    );
}

/// `get_metrics` (admin) round trips: the contract wants < 50 ms, answered from memory.
fn metrics_bench(addr: &str, calls: usize) {
    let addr = addr.to_string();
    let mut lats = smol::block_on(async move {
        let mut ws = connect(&addr).await;
        let token = JwtKey::new(SECRET.as_bytes()).mint(
            "bench",
            Role::Admin,
            Duration::from_secs(3600),
            camera_service::clock::unix_now(),
        );
        rpc(
            &mut ws,
            json!({"jsonrpc":"2.0","method":"authenticate","params":{"auth_token":token},"id":0}).to_string(),
        )
        .await;
        smol::Timer::after(Duration::from_millis(2100)).await; // let the /proc sampler run once
        let mut lats = Vec::with_capacity(calls);
        for i in 0..calls {
            let t = Instant::now();
            let v = rpc(
                &mut ws,
                format!("{{\"jsonrpc\":\"2.0\",\"method\":\"get_metrics\",\"id\":{}}}", i + 1),
            )
            .await;
            assert!(v["result"]["system_metrics"]["rss_bytes"].as_u64().unwrap() > 0);
            lats.push(t.elapsed());
        }
        lats
    });
    lats.sort();
    println!(
        "get_metrics calls={calls} p50={:.3} ms  p99={:.3} ms  max={:.3} ms",
        pct(&lats, 0.50),
        pct(&lats, 0.99),
        lats.last().unwrap().as_secs_f64() * 1000.0
    );
}

fn fanout_bench(subscribers: usize, events: usize) {
    let dir = std::env::temp_dir().join(format!("cs-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Arc::new(Config::from_toml_str(&config_text(&dir), std::iter::empty()).unwrap());
    smol::block_on(async {
        let svc = camera_service::service::start(config, Secret::new(SECRET))
            .await
            .unwrap();
        let addr = svc.addr.to_string();
        let token = JwtKey::new(SECRET.as_bytes()).mint(
            "bench",
            Role::Viewer,
            Duration::from_secs(3600),
            camera_service::clock::unix_now(),
        );
        let mut readers = Vec::new();
        for _ in 0..subscribers {
            let mut ws = connect(&addr).await;
            rpc(
                &mut ws,
                json!({"jsonrpc":"2.0","method":"authenticate","params":{"auth_token":token},"id":1}).to_string(),
            )
            .await;
            rpc(&mut ws, json!({"jsonrpc":"2.0","method":"subscribe_events","params":{"topics":["camera.status_change"]},"id":2}).to_string()).await;
            readers.push(smol::spawn(async move {
                let mut lat = Vec::with_capacity(events);
                while lat.len() < events {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap();
                            let sent: u128 = v["params"]["sent_ns"].as_str().unwrap().parse().unwrap();
                            lat.push(Duration::from_nanos(now_ns().saturating_sub(sent) as u64));
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
                lat
            }));
        }
        let bus = svc.state.bus.clone();
        for i in 0..events {
            let mut p = Map::new();
            p.insert("seq".into(), Value::from(i));
            p.insert("status".into(), Value::from("CONNECTED"));
            p.insert("sent_ns".into(), Value::from(now_ns().to_string()));
            bus.publish(Topic::CameraStatusChange, Some("camera0"), p);
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        let mut all = Vec::new();
        for r in readers {
            all.extend(r.await);
        }
        all.sort();
        println!(
            "fanout subscribers={subscribers} events={events} deliveries={} p50={:.3} ms  p99={:.3} ms  max={:.3} ms",
            all.len(),
            pct(&all, 0.50),
            pct(&all, 0.99),
            all.last().unwrap().as_secs_f64() * 1000.0
        );
        svc.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probing
    }
    let dir = std::env::temp_dir().join(format!("cs-bench-rpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text(&dir)).unwrap();
    let (mut child, addr) = support::start_service(&cfg);
    println!(
        "camera-service (release build) at {addr}; host has {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::env::set_var("SMOL_THREADS", "2");
    ping_bench(&addr, 1, 2000);
    ping_bench(&addr, 50, 200);
    ping_bench(&addr, 200, 50);
    metrics_bench(&addr, 500);
    let _ = child.kill();
    let _ = child.wait();
    fanout_bench(500, 50);
    let _ = std::fs::remove_dir_all(&dir);
}
