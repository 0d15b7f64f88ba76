//! `scripts/bench-rpc`: ping round trip p50/p99 and req/s for 1, 50 and 200 concurrent
//! clients against the real binary, and event fan-out p99 to 500 subscribers (in-process,
//! so events can be injected). Each figure is measured against the bare transport too (see
//! `support/bare.rs`) in the same run, and printed with the ratio ours/bare. Prints figures;
//! asserts nothing about speed.

#[path = "support/bare.rs"]
mod bare;
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
        "[server]\nhost = \"127.0.0.1\"\nport = 0\nmax_connections = 1000\nmax_http_connections = 1000\nevent_queue_size = 1024\n[security]\njwt_secret = \"{SECRET}\"\napi_keys_file = \"{d}/keys.json\"\nrate_limit_per_second = 100000\nrate_limit_burst = 100000\n[storage]\nstate_dir = \"{d}\"\nrecordings_dir = \"{d}/rec\"\nsnapshots_dir = \"{d}/snap\"\n",
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

/// Latencies and wall time of one load run.
#[derive(Default)]
struct Run {
    lats: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.lats.extend(other.lats);
        self.wall += other.wall;
    }
    fn p(&mut self, q: f64) -> f64 {
        self.lats.sort();
        pct(&self.lats, q)
    }
    fn rate(&self) -> f64 {
        self.lats.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `clients` connections, each sending `per_client` pings one after the other. The wall time
/// runs from the first request to the last answer (connecting is not timed).
fn ping_run(addr: &str, clients: usize, per_client: usize) -> Run {
    let addr = addr.to_string();
    smol::block_on(async move {
        let ready = Arc::new(async_lock::Barrier::new(clients + 1));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (addr, ready) = (addr.clone(), ready.clone());
                smol::spawn(async move {
                    let mut ws = connect(&addr).await;
                    ready.wait().await;
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
                    (lat, Instant::now(), ws)
                })
            })
            .collect();
        ready.wait().await;
        let start = Instant::now();
        let mut run = Run::default();
        let mut last = start;
        let mut sockets = Vec::new();
        for t in tasks {
            let (lat, end, ws) = t.await;
            run.lats.extend(lat);
            last = last.max(end);
            sockets.push(ws);
        }
        run.wall = last - start;
        for mut ws in sockets {
            let _ = ws.close(None).await;
        }
        run
    })
}

/// Ours and the bare echo under the same load, interleaved in `ROUNDS` rounds so that load
/// from elsewhere on the machine falls on both alike.
fn ping_compare(ours: &str, bare: &str) {
    const ROUNDS: usize = 3;
    println!();
    println!("ping round trip: ours = camera-service, bare = smol + async-tungstenite echo (canned pong)");
    println!(
        "{:>7} {:>8} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>9}",
        "clients",
        "requests",
        "ours p50",
        "p99",
        "req/s",
        "bare p50",
        "p99",
        "req/s",
        "p50 ratio",
        "p99 ratio",
        "req/s ratio"
    );
    for (clients, per_client) in [(1, 1000), (50, 100), (200, 40)] {
        let (mut o, mut b) = (Run::default(), Run::default());
        for _ in 0..ROUNDS {
            o.add(ping_run(ours, clients, per_client));
            b.add(ping_run(bare, clients, per_client));
        }
        let (op50, op99, bp50, bp99) = (o.p(0.50), o.p(0.99), b.p(0.50), b.p(0.99));
        println!(
            "{clients:>7} {:>8} | {op50:>6.3} ms {op99:>6.3} ms {:>8.0} | {bp50:>6.3} ms {bp99:>6.3} ms {:>8.0} | {:>9.2} {:>9.2} {:>11.2}",
            o.lats.len(),
            o.rate(),
            b.rate(),
            op50 / bp50,
            op99 / bp99,
            o.rate() / b.rate(),
        );
    }
    println!("(goal: p99 ratio <= 1.5 at 200 clients)");
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

/// Collects the delivery latency (now − `params.sent_ns`) of `events` notifications.
fn read_events(mut ws: Ws, events: usize) -> smol::Task<Vec<Duration>> {
    smol::spawn(async move {
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
    })
}

fn event_params(seq: usize) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("seq".into(), Value::from(seq));
    p.insert("status".into(), Value::from("CONNECTED"));
    p.insert("sent_ns".into(), Value::from(now_ns().to_string()));
    p
}

async fn collect(readers: Vec<smol::Task<Vec<Duration>>>) -> Run {
    let mut run = Run::default();
    for r in readers {
        run.lats.extend(r.await);
    }
    run
}

/// Our event path (bus → per-client queue → writer), in-process so events can be injected.
async fn fanout_ours(dir: &std::path::Path, subscribers: usize, events: usize) -> Run {
    let config = Arc::new(Config::from_toml_str(&config_text(dir), std::iter::empty()).unwrap());
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
        rpc(
            &mut ws,
            json!({"jsonrpc":"2.0","method":"subscribe_events","params":{"topics":["camera.status_change"]},"id":2})
                .to_string(),
        )
        .await;
        readers.push(read_events(ws, events));
    }
    let bus = svc.state.bus.clone();
    for i in 0..events {
        bus.publish(Topic::CameraStatusChange, Some("camera0"), event_params(i));
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    let run = collect(readers).await;
    svc.shutdown().await;
    run
}

/// The same notifications written by the bare hub, one socket after the other.
async fn fanout_bare(subscribers: usize, events: usize) -> Run {
    let hub = bare::Hub::start().await;
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        readers.push(read_events(connect(&hub.addr).await, events));
    }
    while hub.connected() < subscribers {
        smol::Timer::after(Duration::from_millis(5)).await;
    }
    for i in 0..events {
        let mut p = event_params(i);
        p.insert("topic".into(), Value::from("camera.status_change"));
        hub.broadcast(json!({"jsonrpc": "2.0", "method": "camera_status_update", "params": p}).to_string())
            .await;
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    collect(readers).await
}

fn fanout_compare(subscribers: usize, events: usize) {
    let dir = std::env::temp_dir().join(format!("cs-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut o, mut b) = smol::block_on(async {
        (
            fanout_ours(&dir, subscribers, events).await,
            fanout_bare(subscribers, events).await,
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("event fan-out: one notification every 20 ms to {subscribers} subscribers, {events} events, latency from publish to read");
    println!(
        "{:>5} {:>10} | {:>9} {:>9} {:>9}",
        "", "deliveries", "p50", "p99", "max"
    );
    let row = |name: &str, r: &mut Run| {
        let (p50, p99) = (r.p(0.50), r.p(0.99));
        let max = r.lats.last().unwrap().as_secs_f64() * 1000.0;
        println!(
            "{name:>5} {:>10} | {p50:>6.3} ms {p99:>6.3} ms {max:>6.3} ms",
            r.lats.len()
        );
        (p50, p99, max)
    };
    let ours = row("ours", &mut o);
    let bare = row("bare", &mut b);
    println!(
        "{:>5} {:>10} | {:>9.2} {:>9.2} {:>9.2}",
        "ratio",
        "",
        ours.0 / bare.0,
        ours.1 / bare.1,
        ours.2 / bare.2
    );
    println!("(goal: ours p99 < 5 ms)");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` probing
    }
    // Same executor size as the service's default (`server.worker_threads = 0`).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    if args.iter().any(|a| a == "--bare-echo") {
        std::env::set_var("SMOL_THREADS", threads.to_string());
        bare::serve_echo();
        return;
    }
    let dir = std::env::temp_dir().join(format!("cs-bench-rpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text(&dir)).unwrap();
    let (mut child, addr) = support::start_service(&cfg);
    let (mut bare_child, bare_addr) = start_bare_echo();
    println!(
        "camera-service (release build) at {addr}, bare echo at {bare_addr}; host has {} CPUs, servers run {threads} executor threads",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::env::set_var("SMOL_THREADS", "2");
    ping_compare(&addr, &bare_addr);
    let _ = bare_child.kill();
    let _ = bare_child.wait();
    println!();
    metrics_bench(&addr, 500);
    let _ = child.kill();
    let _ = child.wait();
    fanout_compare(500, 100);
    let _ = std::fs::remove_dir_all(&dir);
}

/// This benchmark's own binary, re-run as the bare echo server (a process of its own, like
/// the service).
fn start_bare_echo() -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--bare-echo")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the bare echo server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().trim_start_matches("bare echo listening on ").to_string();
    (child, addr)
}
