//! MediaMTX control API v3 client: blocking `ureq` calls made on the blocking pool, with a
//! timeout, retries with exponential backoff and jitter for idempotent calls, and a circuit
//! breaker whose state feeds health and makes callers fail fast.

use super::breaker::{Breaker, State};
use super::types::{ErrorBody, Info, Path, PathConf, PathConfList};
use crate::config::MediamtxConfig;
use base64::Engine;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum MtxError {
    /// Transport error, timeout, 5xx, or the circuit is open.
    Unavailable(String),
    /// 404: the path (configuration) does not exist.
    NotFound(String),
    /// 400: MediaMTX refused the request (its message).
    Rejected(String),
    /// A body we could not read.
    Protocol(String),
}

impl std::fmt::Display for MtxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MtxError::Unavailable(m) => write!(f, "MediaMTX unavailable: {m}"),
            MtxError::NotFound(m) => write!(f, "MediaMTX: not found: {m}"),
            MtxError::Rejected(m) => write!(f, "MediaMTX rejected the request: {m}"),
            MtxError::Protocol(m) => write!(f, "unexpected MediaMTX answer: {m}"),
        }
    }
}

impl From<MtxError> for crate::error::ServiceError {
    fn from(e: MtxError) -> Self {
        if let MtxError::Rejected(m) = &e {
            // MediaMTX refused what we sent: a bug of ours or a value it does not accept.
            // Its own text goes to the client (`data.mediamtx_error`) and to the log.
            let text = redact_credentials(
                m.split_once(": ")
                    .filter(|(h, _)| h.starts_with("HTTP "))
                    .map_or(m.as_str(), |(_, t)| t),
            );
            log::warn!("MediaMTX refused a request: {text}");
            return crate::error::ServiceError::MediamtxRejected { text };
        }
        crate::error::ServiceError::Dependency {
            dependency: "mediamtx",
            details: e.to_string(),
        }
    }
}

/// Hides the user info of every URL in a text (MediaMTX quotes a refused `source`).
fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', ' ', '\'', '"', '?', '#']).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Call counters for metrics and health.
#[derive(Default)]
pub struct CallStats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    pub latency_us_total: AtomicU64,
}

#[derive(Clone, Copy)]
enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    retries: u32,
    backoff: Duration,
    breaker: Mutex<Breaker>,
    pub stats: CallStats,
}

fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    max.mul_f64(u16::from_le_bytes(b) as f64 / u16::MAX as f64)
}

impl Client {
    pub fn new(cfg: &MediamtxConfig) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.request_timeout.get()))
            .http_status_as_error(false)
            .max_idle_connections_per_host(4)
            .build()
            .into();
        let auth = (!cfg.api_user.is_empty()).then(|| {
            let raw = format!("{}:{}", cfg.api_user, cfg.api_password.expose());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
        });
        Client {
            agent,
            base: cfg.api_url.trim_end_matches('/').to_string(),
            auth,
            retries: cfg.retries,
            backoff: cfg.retry_backoff.get(),
            breaker: Mutex::new(Breaker::new(cfg.breaker_failures, cfg.breaker_reset.get())),
            stats: CallStats::default(),
        }
    }

    pub fn breaker_state(&self) -> State {
        self.breaker.lock().unwrap().state(Instant::now())
    }

    /// Runs blocking client work on the blocking pool.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Client) -> Result<T, MtxError> + Send + 'static,
    ) -> Result<T, MtxError> {
        let c = self.clone();
        blocking::unblock(move || f(&c)).await
    }

    fn send_once(&self, verb: Verb, url: &str, body: Option<&serde_json::Value>) -> Result<(u16, String), String> {
        macro_rules! with_auth {
            ($req:expr) => {{
                let r = $req;
                match &self.auth {
                    Some(a) => r.header("Authorization", a.as_str()),
                    None => r,
                }
            }};
        }
        let resp = match (verb, body) {
            (Verb::Get, _) => with_auth!(self.agent.get(url)).call(),
            (Verb::Delete, _) => with_auth!(self.agent.delete(url)).call(),
            (Verb::Post, Some(b)) => with_auth!(self.agent.post(url)).send_json(b),
            (Verb::Post, None) => with_auth!(self.agent.post(url)).send_empty(),
            (Verb::Patch, Some(b)) => with_auth!(self.agent.patch(url)).send_json(b),
            (Verb::Patch, None) => with_auth!(self.agent.patch(url)).send_empty(),
        };
        let mut resp = resp.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(8 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    /// One logical call: breaker check, attempts with backoff for idempotent calls.
    fn request(
        &self,
        verb: Verb,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotent: bool,
    ) -> Result<(u16, String), MtxError> {
        if !self.breaker.lock().unwrap().allow(Instant::now()) {
            return Err(MtxError::Unavailable("circuit open after repeated failures".into()));
        }
        let url = format!("{}{}", self.base, path);
        let attempts = if idempotent { 1 + self.retries } else { 1 };
        let mut last = String::new();
        for attempt in 0..attempts {
            let started = Instant::now();
            let result = self.send_once(verb, &url, body);
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            self.stats
                .latency_us_total
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            match result {
                Ok((status, text)) if status < 500 => {
                    self.breaker.lock().unwrap().success();
                    return Ok((status, text));
                }
                Ok((status, text)) => last = format!("HTTP {status}: {}", error_text(&text)),
                Err(e) => last = e,
            }
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            if attempt + 1 < attempts {
                let base = self.backoff * 2u32.pow(attempt);
                std::thread::sleep(base + jitter(base / 2));
            }
        }
        self.breaker.lock().unwrap().failure(Instant::now());
        log::debug!("MediaMTX {path} failed: {last}");
        Err(MtxError::Unavailable(last))
    }

    fn expect_ok(&self, (status, text): (u16, String)) -> Result<String, MtxError> {
        match status {
            200..=299 => Ok(text),
            404 => Err(MtxError::NotFound(error_text(&text))),
            _ => Err(MtxError::Rejected(format!("HTTP {status}: {}", error_text(&text)))),
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, MtxError> {
        let text = self.expect_ok(self.request(Verb::Get, path, None, true)?)?;
        serde_json::from_str(&text).map_err(|e| MtxError::Protocol(format!("{path}: {e}")))
    }

    pub fn info(&self) -> Result<Info, MtxError> {
        self.get_json("/v3/info")
    }

    /// Create-or-update (MediaMTX `replace` is an upsert; unsent fields revert to defaults).
    pub fn replace_path(&self, name: &str, conf: &PathConf) -> Result<(), MtxError> {
        let body = serde_json::to_value(conf).expect("PathConf serialises");
        self.expect_ok(self.request(
            Verb::Post,
            &format!("/v3/config/paths/replace/{}", encode(name)),
            Some(&body),
            true,
        )?)
        .map(drop)
    }

    /// Merges the given fields into an existing path; `NotFound` when absent.
    pub fn patch_path(&self, name: &str, conf: &PathConf) -> Result<(), MtxError> {
        let body = serde_json::to_value(conf).expect("PathConf serialises");
        self.expect_ok(self.request(
            Verb::Patch,
            &format!("/v3/config/paths/patch/{}", encode(name)),
            Some(&body),
            true,
        )?)
        .map(drop)
    }

    /// Deletes a path configuration; absent already counts as done.
    pub fn delete_path(&self, name: &str) -> Result<(), MtxError> {
        match self.expect_ok(self.request(
            Verb::Delete,
            &format!("/v3/config/paths/delete/{}", encode(name)),
            None,
            true,
        )?) {
            Ok(_) | Err(MtxError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn get_path_conf(&self, name: &str) -> Result<Option<PathConf>, MtxError> {
        match self.get_json(&format!("/v3/config/paths/get/{}", encode(name))) {
            Ok(c) => Ok(Some(c)),
            Err(MtxError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every configured path (all pages).
    pub fn list_path_confs(&self) -> Result<Vec<PathConf>, MtxError> {
        let mut out = Vec::new();
        let mut page = 0;
        loop {
            let l: PathConfList = self.get_json(&format!("/v3/config/paths/list?itemsPerPage=100&page={page}"))?;
            out.extend(l.items);
            page += 1;
            if page >= l.page_count {
                return Ok(out);
            }
        }
    }

    /// Runtime state of every path (all pages).
    pub fn list_paths(&self) -> Result<Vec<Path>, MtxError> {
        let mut out = Vec::new();
        let mut page = 0;
        loop {
            let l: super::types::PathList = self.get_json(&format!("/v3/paths/list?itemsPerPage=100&page={page}"))?;
            out.extend(l.items);
            page += 1;
            if page >= l.page_count {
                return Ok(out);
            }
        }
    }

    /// Runtime state of a path; `None` when MediaMTX has no such path.
    pub fn get_path(&self, name: &str) -> Result<Option<Path>, MtxError> {
        match self.get_json(&format!("/v3/paths/get/{}", encode(name))) {
            Ok(p) => Ok(Some(p)),
            Err(MtxError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn error_text(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .map(|b| b.error)
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| body.trim().chars().take(200).collect())
}

/// Path names are `cameraN` (validated upstream); percent-encode anything else defensively.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server answering each connection from `answers` in turn.
    /// Reads one whole request (head, then `Content-Length` bytes of body): answering
    /// before the client has written its body makes it see a reset under load.
    fn read_request(s: &mut std::net::TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            data.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if n == 0 || data.len() >= end + 4 + length {
                    return text;
                }
            } else if n == 0 {
                return text;
            }
        }
    }

    fn server(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut s, _) = l.accept().unwrap();
                let request = read_request(&mut s);
                seen.push(request.lines().next().unwrap_or("").to_string());
                let _ = write!(s, "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
            seen
        });
        (addr, h)
    }

    fn cfg(url: &str) -> MediamtxConfig {
        MediamtxConfig {
            api_url: url.into(),
            retries: 2,
            retry_backoff: crate::config::Dur::millis(10),
            breaker_failures: 2,
            ..Default::default()
        }
    }

    #[test]
    fn retries_5xx_then_succeeds_and_maps_errors() {
        let (url, h) = server(vec![
            (500, r#"{"status":"error","error":"boom"}"#),
            (200, r#"{"version":"v1.20.1","started":"2026-11-24T10:00:00Z"}"#),
            (404, r#"{"status":"error","error":"path not found"}"#),
            (400, r#"{"status":"error","error":"json: unknown field \"x\""}"#),
        ]);
        let c = Client::new(&cfg(&url));
        assert_eq!(c.info().unwrap().version, "v1.20.1");
        assert_eq!(
            c.patch_path("camera1", &PathConf::default()),
            Err(MtxError::NotFound("path not found".into()))
        );
        assert!(
            matches!(c.replace_path("camera1", &PathConf::default()), Err(MtxError::Rejected(m)) if m.contains("unknown field"))
        );
        assert_eq!(
            redact_credentials("'rtsp://u:p@h:x/a' is not a valid URL; rtsp://h/b"),
            "'rtsp://***@h:x/a' is not a valid URL; rtsp://h/b"
        );
        let seen = h.join().unwrap();
        assert_eq!(seen[0], "GET /v3/info HTTP/1.1");
        assert_eq!(seen[2], "PATCH /v3/config/paths/patch/camera1 HTTP/1.1");
        assert_eq!(c.breaker_state(), State::Closed);
    }

    #[test]
    fn unreachable_opens_the_circuit_and_fails_fast() {
        // A port nothing listens on.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Client::new(&cfg(&format!("http://127.0.0.1:{port}")));
        assert!(matches!(c.info(), Err(MtxError::Unavailable(_))));
        assert_eq!(c.stats.calls.load(Ordering::Relaxed), 3, "1 try + 2 retries");
        assert!(matches!(c.info(), Err(MtxError::Unavailable(_))));
        assert_eq!(c.breaker_state(), State::Open);
        let before = c.stats.calls.load(Ordering::Relaxed);
        assert!(matches!(c.info(), Err(MtxError::Unavailable(m)) if m.contains("circuit open")));
        assert_eq!(
            c.stats.calls.load(Ordering::Relaxed),
            before,
            "no network call while open"
        );
    }
}
