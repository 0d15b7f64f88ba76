//! Test support: start the real binary (or the library in-process), talk WebSocket JSON-RPC.
#![allow(dead_code)]

use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use camera_service::api::auth::{JwtKey, Role};
use futures_util::StreamExt;
use serde_json::{json, Value};
use smol::net::TcpStream;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every result a test receives is checked against its method's result schema in
/// `docs/openrpc.json` (the document generated from the method table).
pub fn check_result_schema(method: &str, result: &Value) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static VALIDATORS: OnceLock<HashMap<String, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openrpc.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openrpc.json")).unwrap();
        doc["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .map(|m| {
                let schema = json!({
                    "allOf": [m["result"]["schema"].clone()],
                    "components": doc["components"].clone(),
                });
                let v = jsonschema::draft7::new(&schema).unwrap_or_else(|e| panic!("schema of {}: {e}", m["name"]));
                (m["name"].as_str().unwrap().to_string(), v)
            })
            .collect()
    });
    if let Some(v) = validators.get(method) {
        let errors: Vec<String> = v
            .iter_errors(result)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{method}: result does not match docs/openrpc.json: {errors:?}\nresult: {result}"
        );
    }
}

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";

/// JSON-RPC error codes of the contract (api.md §2), written out here rather than taken from
/// the crate so that the tests check the wire values themselves.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
pub const AUTH_FAILED: i64 = -32001;
pub const PERMISSION_DENIED: i64 = -32002;
pub const NOT_FOUND: i64 = -32010;
pub const INVALID_STATE: i64 = -32020;
pub const UNSUPPORTED: i64 = -32030;
pub const RATE_LIMITED: i64 = -32040;
pub const DEPENDENCY_FAILED: i64 = -32050;
pub const INSUFFICIENT_STORAGE: i64 = -32060;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_camera-service")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "cs-{tag}-{}-{}",
            std::process::id(),
            camera_service::api::auth::random_token(6)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config for tests: loopback, ephemeral port, storage in `dir`; `extra` is appended TOML
/// (it may add keys to the sections opened here only by repeating them in full sections).
pub fn test_config(dir: &Path, server_extra: &str, security_extra: &str, rest: &str) -> String {
    format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\n{server_extra}\n\n[security]\njwt_secret = \"{SECRET}\"\napi_keys_file = \"{d}/api-keys.json\"\n{security_extra}\n\n[storage]\nstate_dir = \"{d}\"\nrecordings_dir = \"{d}/recordings\"\nsnapshots_dir = \"{d}/snapshots\"\n\n{rest}\n",
        d = dir.display()
    )
}

pub fn token(role: Role, ttl: Duration) -> String {
    JwtKey::new(SECRET.as_bytes()).mint("tester", role, ttl, camera_service::clock::unix_now())
}

/// The service binary running with a test config.
pub struct Service {
    pub child: Child,
    pub addr: String,
    pub dir: TempDir,
    pub config_path: PathBuf,
    stderr_log: PathBuf,
}

impl Service {
    pub fn start(server_extra: &str, security_extra: &str, rest: &str) -> Service {
        let dir = TempDir::new("svc");
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            test_config(dir.path(), server_extra, security_extra, rest),
        )
        .unwrap();
        Service::spawn(dir, config_path)
    }

    /// Starts the binary again with the same config and state (after a kill).
    pub fn restart(old: &mut Service) -> Service {
        let _ = old.child.kill();
        let _ = old.child.wait();
        let dir = std::mem::replace(&mut old.dir, TempDir(PathBuf::new()));
        Service::spawn(dir, old.config_path.clone())
    }

    pub fn spawn(dir: TempDir, config_path: PathBuf) -> Service {
        let stderr_log = dir
            .path()
            .join(format!("service-{}.log", camera_service::api::auth::random_token(3)));
        let mut child = Command::new(bin())
            .args(["--config", config_path.to_str().unwrap(), "serve"])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("start camera-service");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("camera-service listening on ws://") {
                    let _ = tx.send(rest.split('/').next().unwrap().to_string());
                }
            }
        });
        // In the TCG guest, loading the binary over 9p and the first discovery pass take
        // tens of seconds when the host is busy.
        let limit = Duration::from_secs(if in_vivid_guest() { 120 } else { 30 });
        let addr = match rx.recv_timeout(limit) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "service did not start; log:\n{}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                );
            }
        };
        Service {
            child,
            addr,
            dir,
            config_path,
            stderr_log,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Runs a CLI command against the same config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 GET/HEAD: (status, headers, body).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
    next_id: u64,
    pub notifications: VecDeque<Value>,
}

pub async fn timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Client::connect_with(url, &[]).await.expect("WebSocket connect")
    }

    pub async fn connect_with(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, async_tungstenite::tungstenite::Error> {
        use async_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request()?;
        for (k, v) in headers {
            req.headers_mut().insert(
                async_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let host = url.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let tcp = TcpStream::connect(host).await?;
        let (ws, _) = async_tungstenite::client_async(req, tcp).await?;
        Ok(Client {
            ws,
            next_id: 1,
            notifications: VecDeque::new(),
        })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// Next text frame as JSON (30 s limit: recordings wait for FFmpeg on a loaded 2-core
    /// machine; 150 s in the TCG guest, whose recording start timeout is 120 s); `None` when
    /// the socket closed.
    pub async fn recv_json(&mut self) -> Option<Value> {
        let limit = Duration::from_secs(if in_vivid_guest() { 150 } else { 30 });
        loop {
            match timeout(limit, self.ws.next())
                .await
                .unwrap_or_else(|| panic!("no frame within {limit:?}"))
            {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends a request and returns the whole response object, queueing notifications.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({"jsonrpc": "2.0", "method": method, "id": id});
        if !params.is_null() {
            req["params"] = params;
        }
        self.send_text(&req.to_string()).await;
        loop {
            let v = self
                .recv_json()
                .await
                .expect("connection closed while waiting for a response");
            if v.get("id") == Some(&json!(id)) {
                if let Some(result) = v.get("result") {
                    check_result_schema(method, result);
                }
                return v;
            }
            self.notifications.push_back(v);
        }
    }

    pub async fn result(&mut self, method: &str, params: Value) -> Value {
        let v = self.call(method, params).await;
        assert!(v.get("error").is_none(), "{method} failed: {v}");
        v["result"].clone()
    }

    pub async fn error_code(&mut self, method: &str, params: Value) -> i64 {
        let v = self.call(method, params).await;
        v["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{method}: expected an error, got {v}"))
    }

    pub async fn authenticate(&mut self, token: &str) -> Value {
        self.call("authenticate", json!({"auth_token": token})).await
    }

    pub async fn auth_as(&mut self, role: Role) {
        let v = self.authenticate(&token(role, Duration::from_secs(3600))).await;
        assert_eq!(v["result"]["authenticated"], true, "{v}");
    }

    /// Waits for a notification whose `params.topic` is `topic`.
    pub async fn wait_notification(&mut self, topic: &str, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(pos) = self.notifications.iter().position(|n| n["params"]["topic"] == topic) {
                return self.notifications.remove(pos);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match timeout(left, self.ws.next()).await? {
                Some(Ok(Message::Text(t))) => self.notifications.push_back(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// True inside the QEMU guest started by `scripts/vm-run` (docs/vm-harness.md).
pub fn in_vivid_guest() -> bool {
    std::env::var_os("VM_GUEST").is_some()
}

/// Host side of a guest test: boots one QEMU/vivid VM with `vm-run`, re-runs this test binary
/// there with `--exact test`, and fails unless the guest printed `marker` (so a filtered-out
/// guest part cannot pass). `extra` are more vm-run options (e.g. `--env`). Never skips:
/// without qemu it fails and says how to install it.
pub fn run_in_vivid_guest(test: &str, vivid_args: &str, timeout_secs: u32, extra: &[String], marker: &str) {
    let qemu_ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        qemu_ok,
        "qemu-system-x86_64 is missing: this test needs the QEMU/vivid harness (scripts/setup --test installs it; \
         docs/vm-harness.md). It never skips."
    );
    let started = Instant::now();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/vm-run"))
        .args(["--timeout", &timeout_secs.to_string(), "--vivid-args", vivid_args])
        .args(extra)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .output()
        .expect("run scripts/vm-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("{test}: VM wall time {:.1} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "guest part failed: {:?}", out.status);
    assert!(
        stdout.contains(marker),
        "the guest did not run the checks (no {marker})"
    );
}

/// The MediaMTX double, in-process, with a working directory that lives as long as it does.
pub struct Double {
    pub handle: mediamtx_double::Handle,
    _dir: TempDir,
}

impl std::ops::Deref for Double {
    type Target = mediamtx_double::Handle;
    fn deref(&self) -> &mediamtx_double::Handle {
        &self.handle
    }
}

pub fn start_double() -> Double {
    let dir = TempDir::new("mtx");
    let handle = mediamtx_double::start(mediamtx_double::Options::new(dir.path())).expect("start the MediaMTX double");
    Double { handle, _dir: dir }
}

/// Configuration of a service driven by the MediaMTX double: its `[mediamtx]` section
/// (`mediamtx` = more keys of that section), then `rest`.
pub fn with_double(d: &mediamtx_double::Handle, mediamtx: &str, rest: &str) -> String {
    format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\n{mediamtx}\n\n{rest}",
        d.api_url(),
        d.rtsp_port
    )
}

/// `[recording]` for tests: progress every second, one segment per recording.
pub const QUICK_RECORDING: &str =
    "[recording]\nstart_timeout = \"15s\"\nprogress_interval = \"1s\"\nsegment_duration = \"1h\"\n\n";

/// One `[[camera.simulated]]` entry.
pub fn simulated(id: &str, size: &str, fps: u32) -> String {
    format!("[[camera.simulated]]\nid = \"{id}\"\nsize = \"{size}\"\nfps = {fps}\n\n")
}

/// Whether the double's `/v3/paths/get/<name>` says the stream is available.
pub fn path_available(d: &mediamtx_double::Handle, name: &str) -> bool {
    let (status, _, body) = http(
        &format!("127.0.0.1:{}", d.api_port),
        "GET",
        &format!("/v3/paths/get/{name}"),
        &[],
    );
    status == 200 && serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["available"] == true)
}

/// Polls `f` every 100 ms until it holds or `limit` passed.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// An FFmpeg child publishing a lavfi test pattern (H.264, one keyframe a second at 15 fps)
/// into an RTSP server, as a camera or a drone would; killed when dropped.
pub struct RtspPublisher(pub Child);

impl RtspPublisher {
    pub fn start(rtsp_port: u16, path: &str, size: &str) -> RtspPublisher {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=15"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "15",
            ])
            .args(["-f", "rtsp", "-rtsp_transport", "tcp"])
            .arg(format!("rtsp://127.0.0.1:{rtsp_port}/{path}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg is installed (scripts/setup)");
        RtspPublisher(child)
    }
}

impl Drop for RtspPublisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Decodes a JPEG or PNG file: (width, height, RGB/grey samples).
pub fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
        let px = d.decode().expect("a decodable JPEG");
        let i = d.info().unwrap();
        (i.width as u32, i.height as u32, px)
    } else {
        assert!(bytes.starts_with(b"\x89PNG"), "neither JPEG nor PNG");
        let mut r = png::Decoder::new(&bytes[..]).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let f = r.next_frame(&mut buf).expect("a decodable PNG");
        buf.truncate(f.buffer_size());
        (f.width, f.height, buf)
    }
}

/// Standard deviation of the samples: a test pattern is far from flat.
pub fn spread(px: &[u8]) -> f64 {
    camera_service::media::image::stats(px).1
}

/// What ffprobe reports about the first video stream of a media file.
#[derive(Clone, PartialEq)]
pub struct MediaProbe {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    /// `r_frame_rate` as ffprobe reports it (`15/1`).
    pub frame_rate: String,
    /// The container's duration (`format=duration`), when it states one.
    pub duration: Option<f64>,
    /// Video packets in the file.
    pub packets: usize,
    /// Media duration from the packets themselves (first to last timestamp plus one frame):
    /// container-level durations are estimates for MPEG-TS.
    pub packet_duration: f64,
    /// Presentation time of every video packet, in file order.
    pub pts: Vec<f64>,
}

impl std::fmt::Debug for MediaProbe {
    /// Everything but the packet times (a line per file, not a page).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaProbe")
            .field("codec", &self.codec)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("frame_rate", &self.frame_rate)
            .field("duration", &self.duration)
            .field("packets", &self.packets)
            .field("packet_duration", &self.packet_duration)
            .finish()
    }
}

/// Probes `path` with ffprobe (one run); panics with ffprobe's message, the file size and
/// the folder listing when it cannot be read.
pub fn probe_media(path: &Path) -> MediaProbe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("stream=codec_name,width,height,r_frame_rate:format=duration:packet=pts_time")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/setup)");
    if !out.status.success() {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let folder: Vec<_> = path
            .parent()
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name(), e.metadata().map(|m| m.len()).unwrap_or(0)))
            .collect();
        panic!(
            "ffprobe {} ({bytes} bytes; folder {folder:?}): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let s = &v["streams"][0];
    let times: Vec<f64> = v["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
        .collect();
    let (lo, hi) = times
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), t| (a.min(*t), b.max(*t)));
    let frame = if times.len() > 1 {
        (hi - lo) / (times.len() - 1) as f64
    } else {
        0.0
    };
    let probe = MediaProbe {
        codec: s["codec_name"].as_str().unwrap_or_default().into(),
        width: s["width"].as_u64().unwrap_or(0),
        height: s["height"].as_u64().unwrap_or(0),
        frame_rate: s["r_frame_rate"].as_str().unwrap_or_default().into(),
        duration: v["format"]["duration"].as_str().and_then(|d| d.parse().ok()),
        packets: times.len(),
        packet_duration: if times.is_empty() { 0.0 } else { hi - lo + frame },
        pts: times,
    };
    eprintln!("ffprobe {}: {probe:?}", path.display());
    probe
}
