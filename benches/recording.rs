//! `scripts/bench-recording`: start_recording → first segment on disk, and stream start →
//! first frame readable, medians (and spread) over 10 runs, against the MediaMTX double with a
//! simulated camera. Prints figures; asserts nothing about speed.

mod support;

use async_tungstenite::tungstenite::Message;
use camera_service::api::auth::{JwtKey, Role};
use futures_util::StreamExt;
use serde_json::{json, Value};
use smol::net::TcpStream;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnop";
const RUNS: usize = 10;

type Ws = async_tungstenite::WebSocketStream<TcpStream>;

async fn call(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<40} median={:>7.0} ms  min={:>7.0} ms  max={:>7.0} ms  (n={})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cs-bench-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let double = mediamtx_double::start(mediamtx_double::Options::new(dir.join("mtx"))).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\n[security]\njwt_secret = \"{SECRET}\"\napi_keys_file = \"{d}/keys.json\"\n\
             [storage]\nstate_dir = \"{d}\"\nrecordings_dir = \"{d}/rec\"\nsnapshots_dir = \"{d}/snap\"\n\
             [mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\n[recording]\non_demand_close_after = \"1s\"\nstart_timeout = \"20s\"\n\
             [[camera.simulated]]\nid = \"camera50\"\nsize = \"640x480\"\nfps = 15\n",
            double.api_url(),
            double.rtsp_port,
            d = dir.display()
        ),
    )
    .unwrap();
    let (mut child, addr) = support::start_service(&cfg);
    let rtsp = format!("rtsp://127.0.0.1:{}/camera50", double.rtsp_port);
    println!(
        "camera-service (release) + MediaMTX double; simulated camera 640x480@15, libx264 ultrafast; {RUNS} runs each"
    );
    smol::block_on(async {
        let mut ws =
            async_tungstenite::client_async(format!("ws://{addr}/ws"), TcpStream::connect(&addr).await.unwrap())
                .await
                .unwrap()
                .0;
        let token = JwtKey::new(SECRET.as_bytes()).mint(
            "bench",
            Role::Operator,
            Duration::from_secs(3600),
            camera_service::clock::unix_now(),
        );
        let mut id = 0;
        let mut next = || {
            id += 1;
            id
        };
        call(&mut ws, next(), "authenticate", json!({"auth_token": token})).await;
        let (mut first_segment, mut first_frame) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            // cold start each time: the on-demand publisher has closed (close-after 1 s)
            smol::Timer::after(Duration::from_secs(3)).await;
            let t = Instant::now();
            call(&mut ws, next(), "start_recording", json!({"device": "camera50"})).await;
            first_segment.push(t.elapsed());
            call(&mut ws, next(), "stop_recording", json!({"device": "camera50"})).await;
            smol::Timer::after(Duration::from_secs(3)).await;
            let t = Instant::now();
            call(&mut ws, next(), "start_streaming", json!({"device": "camera50"})).await;
            let ok = std::process::Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    &rtsp,
                    "-frames:v",
                    "1",
                    "-f",
                    "null",
                    "-",
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok, "first frame readable");
            first_frame.push(t.elapsed());
        }
        stats("start_recording → first segment on disk", first_segment);
        stats("start_streaming → first frame decoded", first_frame);
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(double);
    let _ = std::fs::remove_dir_all(&dir);
}
