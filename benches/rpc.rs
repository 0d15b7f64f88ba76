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
use std::io::Write;
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

/// The fan-out's subscribers run in a process of their own (this binary, `--fanout-readers`),
/// as remote clients would: in-process, their 500 reader tasks shared the server's executor
/// queues and reactor, so a reader waiting behind server work (and the server waiting behind
/// readers) was counted as server latency. The machine's cores are still shared.
struct Readers {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Readers {
    /// Connects `subscribers` clients to `addr` (authenticated and subscribed to
    /// `camera.status_change` when `token` is given); returns once all are ready.
    fn start(addr: &str, subscribers: usize, events: usize, token: Option<&str>) -> Readers {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--fanout-readers", addr, &subscribers.to_string(), &events.to_string()])
            .args(token)
            .env("SMOL_THREADS", "2")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the fan-out readers");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(ready.as_deref(), Some("ready"), "fan-out readers failed to connect");
        Readers { child, lines }
    }

    /// Waits for the readers to end and takes their latencies.
    fn finish(mut self) -> Run {
        let mut run = Run::default();
        for line in self.lines.by_ref() {
            let ns: u64 = line.unwrap().parse().expect("a latency in ns");
            run.lats.push(Duration::from_nanos(ns));
        }
        assert!(self.child.wait().unwrap().success(), "fan-out readers failed");
        run
    }
}

/// `"sent_ns":"<digits>"` cut out of a notification. The readers skip a full JSON parse:
/// the 500 parses per event were client work on the cores the server uses too.
fn sent_ns(text: &str) -> Option<u128> {
    const KEY: &str = "\"sent_ns\":\"";
    let rest = &text[text.find(KEY)? + KEY.len()..];
    rest[..rest.find('"')?].parse().ok()
}

/// The `--fanout-readers` process: prints `ready` once every client is connected (and
/// subscribed), then the latency (now − `params.sent_ns`, in ns) of every notification read,
/// one a line. A reader silent for 10 s (an event lost) ends the run with an error.
fn fanout_readers(args: &[String]) {
    let [addr, subscribers, events, token @ ..] = args else {
        panic!("usage: --fanout-readers ADDR SUBSCRIBERS EVENTS [TOKEN]");
    };
    let (subscribers, events): (usize, usize) = (subscribers.parse().unwrap(), events.parse().unwrap());
    let token = token.first();
    let lats = smol::block_on(async {
        let mut sockets = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let mut ws = connect_small(addr).await;
            if let Some(token) = token {
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
            }
            sockets.push(ws);
        }
        let readers: Vec<_> = sockets
            .into_iter()
            .map(|ws| smol::spawn(read_events(ws, events)))
            .collect();
        println!("ready");
        let mut lats = Vec::with_capacity(subscribers * events);
        for r in readers {
            lats.extend(r.await);
        }
        lats
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for ns in &lats {
        writeln!(out, "{ns}").unwrap();
    }
    assert_eq!(lats.len(), subscribers * events, "some notifications did not arrive");
}

/// A client with the service's 4 KiB read buffer: tungstenite zero-fills the free part of
/// its read buffer before every read, and the default 128 KiB cost each reader two such
/// memsets per notification (the read and the one that finds the socket empty).
async fn connect_small(addr: &str) -> Ws {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let config = async_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024);
    async_tungstenite::client_async_with_config(format!("ws://{addr}/ws"), tcp, Some(config))
        .await
        .unwrap()
        .0
}

/// The delivery latencies (ns) of `events` notifications on one connection.
async fn read_events(mut ws: Ws, events: usize) -> Vec<u64> {
    let mut lat = Vec::with_capacity(events);
    while lat.len() < events {
        let next = futures_lite::future::or(ws.next(), async {
            smol::Timer::after(Duration::from_secs(10)).await;
            None
        });
        match next.await {
            Some(Ok(Message::Text(t))) => {
                let sent = sent_ns(t.as_str()).expect("a notification with sent_ns");
                lat.push(now_ns().saturating_sub(sent) as u64);
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    lat
}

fn event_params(seq: usize) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("seq".into(), Value::from(seq));
    p.insert("status".into(), Value::from("CONNECTED"));
    p.insert("sent_ns".into(), Value::from(now_ns().to_string()));
    p
}

/// Our event path (bus → per-client queue → writer), in-process so events can be injected.
async fn fanout_ours(dir: &std::path::Path, subscribers: usize, events: usize) -> (Run, Run) {
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
    let readers = smol::unblock(move || Readers::start(&addr, subscribers, events, Some(&token))).await;
    let bus = svc.state.bus.clone();
    let mut publish = Run::default();
    for i in 0..events {
        let t = Instant::now();
        bus.publish(Topic::CameraStatusChange, Some("camera0"), event_params(i));
        publish.lats.push(t.elapsed());
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    let run = smol::unblock(move || readers.finish()).await;
    svc.shutdown().await;
    (run, publish)
}

/// The same notifications written by the bare hub, one socket after the other.
async fn fanout_bare(subscribers: usize, events: usize) -> (Run, Run) {
    let hub = bare::Hub::start().await;
    let addr = hub.addr.clone();
    let readers = smol::unblock(move || Readers::start(&addr, subscribers, events, None)).await;
    while hub.connected() < subscribers {
        smol::Timer::after(Duration::from_millis(5)).await;
    }
    let mut publish = Run::default();
    for i in 0..events {
        let t = Instant::now();
        let mut p = event_params(i);
        p.insert("topic".into(), Value::from("camera.status_change"));
        hub.broadcast(json!({"jsonrpc": "2.0", "method": "camera_status_update", "params": p}).to_string())
            .await;
        publish.lats.push(t.elapsed());
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    (smol::unblock(move || readers.finish()).await, publish)
}

fn fanout_compare(subscribers: usize, events: usize) {
    let dir = std::env::temp_dir().join(format!("cs-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ((mut o, mut o_pub), (mut b, mut b_pub)) = smol::block_on(async {
        (
            fanout_ours(&dir, subscribers, events).await,
            fanout_bare(subscribers, events).await,
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("event fan-out: one notification every 20 ms to {subscribers} subscribers, {events} events, latency from publish to read");
    println!(
        "(readers: a process of their own; \"publish\" = the publishing call, i.e. the server's writes to all sockets)"
    );
    println!(
        "{:>5} {:>10} | {:>9} {:>9} {:>9} | {:>11} {:>9}",
        "", "deliveries", "p50", "p99", "max", "publish p50", "p99"
    );
    let row = |name: &str, r: &mut Run, publish: &mut Run| {
        let (p50, p99) = (r.p(0.50), r.p(0.99));
        let max = r.lats.last().unwrap().as_secs_f64() * 1000.0;
        println!(
            "{name:>5} {:>10} | {p50:>6.3} ms {p99:>6.3} ms {max:>6.3} ms | {:>8.3} ms {:>6.3} ms",
            r.lats.len(),
            publish.p(0.50),
            publish.p(0.99)
        );
        (p50, p99, max)
    };
    let ours = row("ours", &mut o, &mut o_pub);
    let bare = row("bare", &mut b, &mut b_pub);
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
    if args.get(1).is_some_and(|a| a == "--fanout-readers") {
        fanout_readers(&args[2..]);
        return;
    }
    if args.iter().any(|a| a == "--fanout-only") {
        std::env::set_var("SMOL_THREADS", "2");
        fanout_compare(500, 100);
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
