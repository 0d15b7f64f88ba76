//! `[server]`, `[security]`, `[logging]`: the listener, access control, logs.

use super::{Dur, Secret, Validator};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// TCP port for WebSocket and HTTP (0 = pick a free port, for tests).
    pub port: u16,
    pub websocket_path: String,
    pub max_connections: usize,
    /// Plain-HTTP and not-yet-upgraded connections open at once (a small reserve beyond it
    /// still admits WebSocket upgrades and health probes).
    pub max_http_connections: usize,
    pub max_message_bytes: usize,
    /// Entries of one JSON-RPC batch; a longer batch gets one -32600 `batch_too_large`.
    pub max_batch: usize,
    pub ping_interval: Dur,
    pub idle_timeout: Dur,
    /// Requests of one socket processed at the same time.
    pub max_inflight_per_connection: usize,
    /// Events waiting for one client; the oldest is dropped beyond this.
    pub event_queue_size: usize,
    pub shutdown_timeout: Dur,
    /// Worker threads of the async executor (0 = one per core, at most 4).
    pub worker_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8002,
            websocket_path: "/ws".into(),
            max_connections: 100,
            max_http_connections: 64,
            max_message_bytes: 1024 * 1024,
            max_batch: 100,
            ping_interval: Dur::secs(30),
            idle_timeout: Dur::secs(90),
            max_inflight_per_connection: 16,
            event_queue_size: 256,
            shutdown_timeout: Dur::secs(5),
            worker_threads: 0,
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.check(
            !self.host.trim().is_empty() && self.host.parse::<std::net::IpAddr>().is_ok(),
            "server.host",
            "must be an IP address such as 0.0.0.0 or 127.0.0.1",
        );
        v.check(
            self.websocket_path.starts_with('/')
                && self.websocket_path.len() > 1
                && !self.websocket_path.contains(char::is_whitespace),
            "server.websocket_path",
            "must start with '/' and contain no spaces",
        );
        v.range("server.max_connections", self.max_connections as u64, 1, 100_000);
        v.range(
            "server.max_http_connections",
            self.max_http_connections as u64,
            1,
            100_000,
        );
        v.range("server.max_batch", self.max_batch as u64, 1, 10_000);
        v.range(
            "server.max_message_bytes",
            self.max_message_bytes as u64,
            1024,
            64 * 1024 * 1024,
        );
        v.dur(
            "server.ping_interval",
            self.ping_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "server.idle_timeout",
            self.idle_timeout,
            Duration::from_millis(200),
            Duration::from_secs(86400),
        );
        v.check(
            self.idle_timeout.get() > self.ping_interval.get(),
            "server.idle_timeout",
            "must be longer than server.ping_interval",
        );
        v.range(
            "server.max_inflight_per_connection",
            self.max_inflight_per_connection as u64,
            1,
            1024,
        );
        v.range("server.event_queue_size", self.event_queue_size as u64, 1, 100_000);
        v.dur(
            "server.shutdown_timeout",
            self.shutdown_timeout,
            Duration::from_millis(100),
            Duration::from_secs(120),
        );
        v.range("server.worker_threads", self.worker_threads as u64, 0, 64);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// HS256 secret (>= 32 bytes). Prefer the environment or `jwt_secret_file`.
    pub jwt_secret: Secret,
    /// File holding the secret (mode 0600 or 0640); used when `jwt_secret` is empty.
    pub jwt_secret_file: Option<PathBuf>,
    pub api_keys_file: PathBuf,
    pub allowed_origins: Vec<String>,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub auth_failures_per_minute: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            jwt_secret: Secret::default(),
            jwt_secret_file: None,
            api_keys_file: PathBuf::from("/var/lib/camera-service/api-keys.json"),
            allowed_origins: Vec::new(),
            rate_limit_per_second: 50,
            rate_limit_burst: 100,
            auth_failures_per_minute: 5,
        }
    }
}

impl SecurityConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        if !self.jwt_secret.is_empty() {
            v.check(
                self.jwt_secret.expose().len() >= 32,
                "security.jwt_secret",
                "must be at least 32 bytes long",
            );
        }
        if let Some(p) = &self.jwt_secret_file {
            v.abs_path("security.jwt_secret_file", p);
        }
        v.abs_path("security.api_keys_file", &self.api_keys_file);
        for (i, o) in self.allowed_origins.iter().enumerate() {
            v.check(
                o.starts_with("http://") || o.starts_with("https://") || o == "null",
                &format!("security.allowed_origins[{i}]"),
                "must be an origin like https://gcs.example (scheme://host[:port])",
            );
        }
        v.range(
            "security.rate_limit_per_second",
            self.rate_limit_per_second as u64,
            1,
            100_000,
        );
        v.range("security.rate_limit_burst", self.rate_limit_burst as u64, 1, 1_000_000);
        v.range(
            "security.auth_failures_per_minute",
            self.auth_failures_per_minute as u64,
            1,
            10_000,
        );
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// error|warn|info|debug|trace; `RUST_LOG` overrides it.
    pub level: LogLevel,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig { level: LogLevel::Info }
    }
}

/// `logging.level`, in any letter case in the file (`INFO` = `info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::one_of(d, LogLevel::parse, "off, error, warn, info, debug, trace")
    }
}
