//! Helpers shared by the double's own tests: HTTP client, API shortcuts, ffmpeg children,
//! temp dirs, and a small OpenAPI 3 schema validator for the responses; raw RTSP in `rtsp`.
#![allow(dead_code, clippy::collapsible_match)]

pub mod rtsp;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mtxd-{}-{}-{}",
        tag,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn start(tag: &str) -> (mediamtx_double::Handle, PathBuf) {
    let dir = temp_dir(tag);
    let h = mediamtx_double::start(mediamtx_double::Options::new(&dir)).expect("start double");
    (h, dir)
}

pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("invalid JSON body {:?}: {}", self.body, e))
    }
}

/// One HTTP/1.1 request with `Connection: close`. Err on connection failure / timeout.
pub fn try_http(method: &str, url: &str, body: Option<&str>, timeout: Duration) -> std::io::Result<Resp> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        method,
        if path.is_empty() { "/" } else { path },
        host,
        body.len(),
        body
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no HTTP response: {:?}", text),
        )
    })?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if k.eq_ignore_ascii_case("content-type") {
                Some(v.trim().to_string())
            } else {
                None
            }
        })
        .unwrap_or_default();
    Ok(Resp {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// A raw HTTP/1.1 request on `s` with extra `headers` (each ending in CRLF), answered
/// until the server closes: (status, head, body).
pub fn raw_http(mut s: TcpStream, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{} {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}Content-Length: {}\r\n\r\n{}",
        method,
        path,
        headers,
        body.len(),
        body
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// Reads an HTTP request (by a test's own server): its head, then its body by
/// Content-Length, which is returned (short if the client stopped sending).
pub fn read_request_body(rd: &mut impl std::io::BufRead) -> Vec<u8> {
    let mut len = 0;
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = Vec::new();
    let _ = rd.take(len as u64).read_to_end(&mut body);
    body
}

pub fn http(method: &str, url: &str, body: Option<&str>) -> Resp {
    try_http(method, url, body, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{} {}: {}", method, url, e))
}

/// GET of an API path (`/v3/...`) of the double.
pub fn get(h: &mediamtx_double::Handle, path: &str) -> Resp {
    http("GET", &format!("{}{}", h.api_url(), path), None)
}

/// The `items` of an API list.
pub fn items(h: &mediamtx_double::Handle, path: &str) -> Vec<Value> {
    get(h, path).json()["items"].as_array().cloned().unwrap_or_default()
}

/// `/v3/paths/get/{name}`; a path that does not exist (yet) reads as not available.
pub fn path_get(h: &mediamtx_double::Handle, name: &str) -> Value {
    let r = get(h, &format!("/v3/paths/get/{}", name));
    if r.status == 200 {
        r.json()
    } else {
        serde_json::json!({"available": false})
    }
}

/// Waits (generously) until path `name` has a ready stream.
pub fn wait_available(h: &mediamtx_double::Handle, name: &str) {
    wait_until(Duration::from_secs(15), &format!("path {} available", name), || {
        path_get(h, name)["available"] == true
    });
}

/// PATCHes the global configuration (JSON text or a `Value`); it must be accepted.
pub fn patch_global(h: &mediamtx_double::Handle, body: impl std::fmt::Display) {
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Adds path `name` with configuration `conf`; it must be accepted.
pub fn add_path(h: &mediamtx_double::Handle, name: &str, conf: &Value) {
    post_path_conf(h, "add", name, conf);
}

/// Replaces (or adds) path `name`'s configuration by `conf`; it must be accepted.
pub fn replace_path(h: &mediamtx_double::Handle, name: &str, conf: &Value) {
    post_path_conf(h, "replace", name, conf);
}

fn post_path_conf(h: &mediamtx_double::Handle, op: &str, name: &str, conf: &Value) {
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/{}/{}", h.api_url(), op, name),
        Some(&conf.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed RSA certificate made with the openssl CLI: (key, cert) paths.
pub fn self_signed(dir: &std::path::Path) -> (String, String) {
    self_signed_key(dir, &["-newkey", "rsa:2048"])
}

/// A self-signed certificate with the key `newkey` (openssl req's options) as
/// `server.key` and `server.crt` in `dir`: (key, cert) paths.
pub fn self_signed_key(dir: &std::path::Path, newkey: &[&str]) -> (String, String) {
    let (key, cert) = (dir.join("server.key"), dir.join("server.crt"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "1"])
        .args(newkey)
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl CLI is required by this test");
    assert!(st.success(), "openssl req failed");
    (key.display().to_string(), cert.display().to_string())
}

/// The SHA-256 fingerprint of a certificate file in lowercase hex (MediaMTX's
/// `sourceFingerprint`/`destFingerprint` form), read with the openssl CLI.
pub fn fingerprint(cert: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", cert])
        .output()
        .expect("the openssl CLI is required by this test");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split('=')
        .nth(1)
        .unwrap_or("")
        .trim()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(hex.len(), 64, "openssl x509 -fingerprint: {}", text);
    hex
}

/// The double's log file (`mediamtx-double.log` in its directory), empty while absent.
pub fn log_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("mediamtx-double.log")).unwrap_or_default()
}

/// Frames in an ffmpeg `framemd5` file (one line each, comments aside).
pub fn count_frames(md5: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(md5).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// ffprobe's JSON of a file's streams and format (`{}` when unreadable).
pub fn ffprobe(file: &std::path::Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(file)
        .output()
        .expect("ffprobe");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::json!({}))
}

pub fn wait_until<F: FnMut() -> bool>(timeout: Duration, what: &str, mut f: F) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {:?} waiting for: {}", timeout, what);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn require_ffmpeg() {
    for bin in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(bin)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(ok, Ok(s) if s.success()),
            "{} is required by the mediamtx-double tests (apt-get install ffmpeg)",
            bin
        );
    }
}

/// A child killed (SIGINT then SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
    pub fn interrupt_and_wait(&mut self) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.pid(), libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        self.0.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The ffmpeg command sending H.264 test video (`size`, 15 fps, in real time) in `format`
/// (with its options) to `url`.
pub fn sender_cmd(format: &str, url: &str, size: &str) -> String {
    format!(
        "ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc2=size={}:rate=15 -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f {} {}",
        size, format, url
    )
}

/// The ffmpeg command publishing test video to an RTSP URL (over TCP).
pub fn publisher_cmd(url: &str, size: &str) -> String {
    sender_cmd("rtsp -rtsp_transport tcp", url, size)
}

/// RTSP publishers of two streams MediaMTX's muxers take only in part, started (not
/// awaited): `mixed` (H.264 160x120 with G.722 audio) and `vp8` (VP8 alone).
pub fn publish_mixed_and_vp8(h: &mediamtx_double::Handle, dir: &std::path::Path) -> (Proc, Proc) {
    let rtsp = |codecs: &str, path: &str| {
        format!(
            "ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=160x120:rate=15 {} -f rtsp -rtsp_transport tcp {}/{}",
            codecs,
            h.rtsp_url(),
            path
        )
    };
    let mixed = "-f lavfi -i sine=r=16000 -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -c:a g722";
    (
        spawn_cmd(&rtsp(mixed, "mixed"), &dir.join("mixed.log")),
        spawn_cmd(&rtsp("-c:v libvpx -deadline realtime", "vp8"), &dir.join("vp8.log")),
    )
}

pub fn spawn_cmd(cmd: &str, log: &std::path::Path) -> Proc {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let f = std::fs::File::create(log).unwrap();
    let child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(f))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {}", cmd, e));
    Proc(child)
}

/// An ffmpeg RTSP publisher (320x240) of path `name`, logging to `dir/pub-<name>.log`;
/// returns once the path is available.
pub fn publish(h: &mediamtx_double::Handle, dir: &std::path::Path, name: &str) -> Proc {
    let url = format!("{}/{}", h.rtsp_url(), name);
    let p = spawn_cmd(
        &publisher_cmd(&url, "320x240"),
        &dir.join(format!("pub-{}.log", name.replace('/', "_"))),
    );
    wait_available(h, name);
    p
}

/// ffprobe of the first stream of a URL (RTSP over TCP), with `extra` input options;
/// bounded by a hang limit.
pub fn probe_stream(url: &str, extra: &[&str]) -> Result<Value, String> {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-print_format", "json", "-show_streams"])
        .args(extra)
        .args(["-rtsp_transport", "tcp", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    if !out.status.success() {
        return Err(format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["streams"][0].clone())
}

/// An ffprobe stream is H.264 of `w`x`h`.
pub fn assert_h264(s: &Value, w: u64, h: u64) {
    assert_eq!(s["codec_name"], "h264", "{}", s);
    assert_eq!(s["width"], w, "{}", s);
    assert_eq!(s["height"], h, "{}", s);
}

/// ffmpeg reads `frames` frames over `transport`; returns the decoded frame count.
/// Killed after a generous hang bound.
pub fn read_frames(url: &str, transport: &str, frames: u32, out: &Path) -> usize {
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
        .args(["-rtsp_transport", transport, "-i", url])
        .args(["-frames:v", &frames.to_string(), "-f", "framemd5", "-y"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ffmpeg reader");
    let mut child = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "ffmpeg reader of {} over {} hangs",
            url,
            transport
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        st.success(),
        "ffmpeg reader of {} over {} failed: {:?}",
        url,
        transport,
        st
    );
    count_frames(out)
}

pub fn pid_alive(pid: i32) -> bool {
    // a zombie still "exists"; check /proc state
    match std::fs::read_to_string(format!("/proc/{}/stat", pid)) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

// ------------------------------------------------------------------ OpenAPI validation

pub fn load_spec() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/openapi.yaml");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "openapi.yaml not found at {} ({}): the conformance test needs it",
            p.display(),
            e
        )
    });
    serde_yaml::from_str::<Value>(&text).expect("parse openapi.yaml")
}

fn resolve<'a>(spec: &'a Value, r: &str) -> &'a Value {
    let name = r.rsplit('/').next().unwrap();
    spec.pointer(&format!("/components/schemas/{}", name))
        .unwrap_or_else(|| panic!("unresolved $ref {}", r))
}

/// Validates `v` against `schema`. Besides types, it rejects properties the schema does not
/// define and, since MediaMTX always emits every field, non-deprecated properties that are
/// missing (plus any `required` list).
pub fn validate(spec: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
        return validate(spec, resolve(spec, r), v, at, errs);
    }
    let nullable = schema.get("nullable").and_then(|n| n.as_bool()).unwrap_or(false);
    if v.is_null() {
        if !nullable {
            errs.push(format!("{}: null but schema is not nullable", at));
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(|a| a.as_array()) {
        for s in all {
            validate(spec, s, v, at, errs);
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(|a| a.as_array()) {
        let ok = one.iter().any(|s| {
            let mut e = Vec::new();
            validate(spec, s, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errs.push(format!("{}: {} matches none of oneOf", at, v));
        }
    }
    if let Some(en) = schema.get("enum").and_then(|e| e.as_array()) {
        let ok = en
            .iter()
            .any(|x| x == v || (x.is_boolean() && v.is_string() && x.as_bool() == Some(v == "yes")));
        if !ok {
            errs.push(format!("{}: {} not in enum {:?}", at, v, en));
        }
    }
    let ty = schema.get("type").and_then(|t| t.as_str());
    let fmt = schema.get("format").and_then(|t| t.as_str()).unwrap_or("");
    match ty {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{}: expected object, got {}", at, v));
                return;
            };
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (k, val) in obj {
                    match props.get(k) {
                        Some(ps) => validate(spec, ps, val, &format!("{}.{}", at, k), errs),
                        None => errs.push(format!("{}: field '{}' is not defined by the spec", at, k)),
                    }
                }
                for (k, ps) in props {
                    let deprecated = ps.get("deprecated").and_then(|d| d.as_bool()).unwrap_or(false);
                    if !deprecated && !obj.contains_key(k) {
                        errs.push(format!("{}: field '{}' missing", at, k));
                    }
                }
            }
            if let Some(req) = schema.get("required").and_then(|r| r.as_array()) {
                for k in req.iter().filter_map(|k| k.as_str()) {
                    if !obj.contains_key(k) {
                        errs.push(format!("{}: required field '{}' missing", at, k));
                    }
                }
            }
        }
        Some("array") => {
            let Some(a) = v.as_array() else {
                errs.push(format!("{}: expected array, got {}", at, v));
                return;
            };
            if let Some(items) = schema.get("items") {
                for (i, it) in a.iter().enumerate() {
                    validate(spec, items, it, &format!("{}[{}]", at, i), errs);
                }
            }
        }
        Some("string") => {
            if !v.is_string() {
                errs.push(format!("{}: expected string, got {}", at, v));
            }
        }
        Some("boolean") => {
            if !v.is_boolean() {
                errs.push(format!("{}: expected boolean, got {}", at, v));
            }
        }
        Some("integer") => {
            let ok = if fmt == "uint64" {
                v.is_u64()
            } else {
                v.is_i64() || v.is_u64()
            };
            if !ok {
                errs.push(format!("{}: expected integer ({}), got {}", at, fmt, v));
            }
        }
        Some("number") => {
            if !v.is_number() {
                errs.push(format!("{}: expected number, got {}", at, v));
            }
        }
        Some(other) => errs.push(format!("{}: unsupported schema type {}", at, other)),
        None => {}
    }
}

/// Checks a response against the spec for (template path, method, status).
pub fn check_response(spec: &Value, template: &str, method: &str, resp: &Resp) {
    let op = spec
        .get("paths")
        .and_then(|p| p.get(template))
        .and_then(|p| p.get(method.to_ascii_lowercase()))
        .unwrap_or_else(|| panic!("spec has no {} {}", method, template));
    let code = resp.status.to_string();
    let r = op.get("responses").and_then(|r| r.get(&code)).unwrap_or_else(|| {
        panic!(
            "{} {}: status {} not documented (body {})",
            method, template, code, resp.body
        )
    });
    let schema = r
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| panic!("{} {} {}: no JSON schema", method, template, code));
    assert!(
        resp.content_type.starts_with("application/json"),
        "{} {} {}: content-type {}",
        method,
        template,
        code,
        resp.content_type
    );
    let v = resp.json();
    let mut errs = Vec::new();
    validate(
        spec,
        schema,
        &v,
        &format!("{} {} {}", method, template, code),
        &mut errs,
    );
    assert!(
        errs.is_empty(),
        "schema violations:\n{}\nbody: {}",
        errs.join("\n"),
        resp.body
    );
}

/// A loopback TCP port that is free now (bound, then released).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Nothing listens on a loopback TCP port (the connection is refused).
pub fn refused(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// Whether a listener just closed refuses connections within 2 s: a child forked by
/// another thread holds a copy of every descriptor until its exec, so a closed listener
/// can still take a connection for that moment.
pub fn closed(port: u16) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !refused(port) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
