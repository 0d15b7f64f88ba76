//! Typed configuration: TOML file + `CAMERA_SERVICE_<SECTION>_<KEY>` environment overrides,
//! every key with a default, validation errors that name the key and the rule.
//! The reference for every key is `docs/config.md`; `docs/config.example.toml` is the example.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/camera-service/config.toml";
pub const ENV_PREFIX: &str = "CAMERA_SERVICE_";

/// A duration written as a string in the file (`"30s"`, `"5m"`, `"1h 30m"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); use e.g. \"500ms\", \"30s\", \"5m\", \"1h\""
            ))
        })
    }
}

/// A secret string: never printed by `Debug`, redacted by `check-config`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub security: SecurityConfig,
    pub logging: LoggingConfig,
    pub mediamtx: MediamtxConfig,
    pub camera: CameraConfig,
    pub storage: StorageConfig,
    pub ffmpeg: FfmpegConfig,
    pub recording: RecordingConfig,
    pub snapshot: SnapshotConfig,
    pub external_streams: ExternalStreamsConfig,
    pub discovery: DiscoveryConfig,
    pub mavlink: MavlinkConfig,
}

pub use crate::mavlink::config::MavlinkConfig;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalStreamsConfig {
    /// false = the external stream methods answer -32030 (`feature: external_streams`) and
    /// no external stream (configured or persisted) becomes a camera.
    pub enabled: bool,
    /// Period of the liveness check of every external stream (MediaMTX path, then a
    /// `DESCRIBE` of the source URL when nothing flows).
    pub health_interval: Dur,
    /// Timeout of one liveness `DESCRIBE` of a source URL.
    pub probe_timeout: Dur,
    /// Consecutive failed checks before a connected stream is reported disconnected.
    pub offline_after: u32,
    /// Streams with fixed ids, defined here (not removable through the API).
    pub streams: Vec<StaticExternalStream>,
}

impl Default for ExternalStreamsConfig {
    fn default() -> Self {
        ExternalStreamsConfig {
            enabled: true,
            health_interval: Dur::secs(2),
            probe_timeout: Dur::secs(2),
            offline_after: 2,
            streams: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticExternalStream {
    pub id: String,
    /// Kept as given (credentials included) for MediaMTX; redacted wherever it is shown
    /// (`check-config` included).
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_stream_type", rename = "type")]
    pub stream_type: String,
}

fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::external::redact_url(url))
}

fn default_stream_type() -> String {
    "generic_rtsp".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Addresses or host names to scan.
    pub hosts: Vec<String>,
    /// CIDR ranges to scan (e.g. "192.168.10.0/24").
    pub cidrs: Vec<String>,
    /// Generic profile: ports probed on every address, with every path of `paths`.
    pub ports: Vec<u16>,
    pub paths: Vec<String>,
    /// Generic profile on by default (`discover_external_streams {generic_enabled}` overrides).
    pub generic: bool,
    /// Skydio profile: `skydio_eo_port` + /subject (EO), `skydio_ir_port` + /infrared (IR).
    pub skydio: bool,
    pub skydio_eo_port: u16,
    pub skydio_ir_port: u16,
    /// Timeout of each RTSP exchange (connect, OPTIONS, each DESCRIBE).
    pub probe_timeout: Dur,
    /// Endpoints probed at the same time.
    pub concurrency: usize,
    /// Hard cap on addresses per scan (hosts + expanded ranges).
    pub max_addresses: usize,
    /// Period of the background scan; 0 = off. `set_discovery_interval` overrides it (persisted).
    pub interval: Dur,
    /// Streams found by a scan become cameras.
    pub auto_add: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            hosts: Vec::new(),
            cidrs: Vec::new(),
            ports: vec![554, 8554],
            paths: vec!["/stream".into(), "/live".into()],
            generic: true,
            skydio: true,
            skydio_eo_port: 5554,
            skydio_ir_port: 6554,
            probe_timeout: Dur::secs(1),
            concurrency: 16,
            max_addresses: 256,
            interval: Dur::secs(0),
            auto_add: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FfmpegConfig {
    /// FFmpeg used for camera publishers (run by MediaMTX), keepalive readers and snapshots.
    pub path: String,
    /// H.264 encoder of V4L2/simulated publishers: libx264, or a hardware one (h264_v4l2m2m, ...).
    pub encoder: String,
    /// Extra encoder options, split on whitespace (default: fast, low-latency x264).
    pub encoder_options: String,
    /// Target bitrate (FFmpeg syntax) or "" for the encoder's default.
    pub bitrate: String,
    /// SIGINT → SIGKILL delay when stopping our FFmpeg children.
    pub stop_timeout: Dur,
    /// A child that reports no progress this long is restarted.
    pub stall_timeout: Dur,
}

impl Default for FfmpegConfig {
    fn default() -> Self {
        FfmpegConfig {
            path: "ffmpeg".into(),
            encoder: "libx264".into(),
            encoder_options: "-preset ultrafast -tune zerolatency".into(),
            bitrate: String::new(),
            stop_timeout: Dur::secs(3),
            stall_timeout: Dur::secs(10),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    Fmp4,
    Mpegts,
}

impl RecordFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordFormat::Fmp4 => "fmp4",
            RecordFormat::Mpegts => "mpegts",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Fmp4 => "mp4",
            RecordFormat::Mpegts => "ts",
        }
    }
    pub fn parse(s: &str) -> Option<RecordFormat> {
        match s {
            "fmp4" => Some(RecordFormat::Fmp4),
            "mpegts" => Some(RecordFormat::Mpegts),
            _ => None,
        }
    }
}

/// `[snapshot]`: the capture tiers of `take_snapshot` (api.md §6, docs/config.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Tiers tried in this order; leave one out to disable it. Names: v4l2_direct,
    /// ffmpeg_direct, rtsp_immediate, rtsp_activation.
    pub tiers: Vec<String>,
    /// Tier 0 budget (open, set format, warm-up frames, one frame).
    pub v4l2_direct_timeout: Dur,
    /// Tier 1 budget (FFmpeg start, device open, warm-up, one frame).
    pub ffmpeg_direct_timeout: Dur,
    /// Tier 2 budget (FFmpeg reading the running MediaMTX stream).
    pub rtsp_immediate_timeout: Dur,
    /// Tier 3 budget (on-demand publisher start plus the read).
    pub rtsp_activation_timeout: Dur,
    /// Frames dropped before the kept one in the device tiers (cold webcams deliver dark
    /// first frames while auto-exposure settles).
    pub warmup_frames: u32,
    /// JPEG quality when the request gives none (1..100).
    pub default_quality: u8,
    /// Size limits applied when the request gives none (0 = none); aspect ratio is kept.
    pub max_width: u32,
    pub max_height: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            tiers: ["v4l2_direct", "ffmpeg_direct", "rtsp_immediate", "rtsp_activation"]
                .map(String::from)
                .to_vec(),
            v4l2_direct_timeout: Dur::secs(3),
            ffmpeg_direct_timeout: Dur::secs(10),
            rtsp_immediate_timeout: Dur::secs(8),
            rtsp_activation_timeout: Dur::secs(20),
            warmup_frames: 3,
            default_quality: 85,
            max_width: 0,
            max_height: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    pub default_format: RecordFormat,
    /// `start_recording` returns once the first segment exists, or rolls back after this.
    pub start_timeout: Dur,
    /// MediaMTX `recordSegmentDuration`: a new file after this much media.
    pub segment_duration: Dur,
    /// MediaMTX `recordPartDuration`: media at risk on power loss.
    pub part_duration: Dur,
    /// Period of `recording.progress` events and of the growth/space checks.
    pub progress_interval: Dur,
    /// Segment files not growing this long → `recording.error` (`source_lost`).
    pub stall_timeout: Dur,
    /// MediaMTX `runOnDemandStartTimeout` / `sourceOnDemandStartTimeout` of camera paths.
    pub on_demand_start_timeout: Dur,
    /// MediaMTX `runOnDemandCloseAfter` / `sourceOnDemandCloseAfter`: reported as `auto_close_after`.
    pub on_demand_close_after: Dur,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            default_format: RecordFormat::Fmp4,
            start_timeout: Dur::secs(5),
            segment_duration: Dur::secs(3600),
            part_duration: Dur::secs(1),
            progress_interval: Dur::secs(5),
            stall_timeout: Dur::secs(15),
            on_demand_start_timeout: Dur::secs(10),
            on_demand_close_after: Dur::secs(10),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// TCP port for WebSocket and HTTP (0 = pick a free port, for tests).
    pub port: u16,
    pub websocket_path: String,
    pub max_connections: usize,
    pub max_message_bytes: usize,
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
            max_message_bytes: 1024 * 1024,
            ping_interval: Dur::secs(30),
            idle_timeout: Dur::secs(90),
            max_inflight_per_connection: 16,
            event_queue_size: 256,
            shutdown_timeout: Dur::secs(5),
            worker_threads: 0,
        }
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// error|warn|info|debug|trace; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig { level: "info".into() }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediamtxConfig {
    pub api_url: String,
    /// Host written into stream URLs; empty = the host the client connected to.
    pub public_host: String,
    pub rtsp_port: u16,
    pub hls_port: u16,
    pub webrtc_port: u16,
    /// HTTP Basic credentials when MediaMTX's API requires them (user with `action: api`).
    pub api_user: String,
    pub api_password: Secret,
    /// Whole-call timeout of one API request.
    pub request_timeout: Dur,
    /// Extra attempts for idempotent calls (exponential backoff with jitter).
    pub retries: u32,
    pub retry_backoff: Dur,
    /// Consecutive failures that open the circuit breaker, and how long it stays open.
    pub breaker_failures: u32,
    pub breaker_reset: Dur,
    /// Period of the `/v3/info` health probe (detects restarts: paths are re-applied).
    pub health_interval: Dur,
}

impl Default for MediamtxConfig {
    fn default() -> Self {
        MediamtxConfig {
            api_url: "http://127.0.0.1:9997".into(),
            public_host: String::new(),
            rtsp_port: 8554,
            hls_port: 8888,
            webrtc_port: 8889,
            api_user: String::new(),
            api_password: Secret::default(),
            request_timeout: Dur::secs(3),
            retries: 2,
            retry_backoff: Dur::millis(100),
            breaker_failures: 5,
            breaker_reset: Dur::secs(10),
            health_interval: Dur::secs(5),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// First id given to external RTSP streams (`camera100`, ...).
    pub external_id_base: u32,
    pub max_cameras: usize,
    pub simulated: Vec<SimulatedCamera>,
    /// How V4L2 hot-plug is followed (docs/cameras.md).
    pub monitor: CameraMonitor,
    /// Full re-enumeration period: the only mechanism with `monitor = "rescan"`, a safety net
    /// for missed uevents otherwise.
    pub rescan_interval: Dur,
    /// Start-up waits at most this long for the first discovery pass before reporting ready
    /// to systemd (`/health/ready` keeps waiting for the pass itself).
    pub first_pass_timeout: Dur,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            external_id_base: 100,
            max_cameras: 64,
            simulated: Vec::new(),
            monitor: CameraMonitor::Auto,
            rescan_interval: Dur::secs(5),
            first_pass_timeout: Dur::secs(10),
        }
    }
}

/// `camera.monitor`: `auto` = udev events when udevd runs (`/run/udev/control`), else kernel
/// uevents; `udev` / `kernel` force one netlink group; `rescan` = periodic enumeration only;
/// `off` = no V4L2 discovery (simulated cameras only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraMonitor {
    Auto,
    Udev,
    Kernel,
    Rescan,
    Off,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedCamera {
    pub id: String,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default = "default_size")]
    pub size: String,
    #[serde(default = "default_fps")]
    pub fps: u32,
    #[serde(default)]
    pub name: String,
}

fn default_pattern() -> String {
    "testsrc2".into()
}
fn default_size() -> String {
    "640x480".into()
}
fn default_fps() -> u32 {
    15
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub state_dir: PathBuf,
    pub recordings_dir: PathBuf,
    pub snapshots_dir: PathBuf,
    /// Free-space floor: below it new recordings/snapshots are refused (-32060) and the
    /// low-space warning is on.
    pub min_free_bytes: u64,
    /// Low-space warning (event + `storage` health DEGRADED) when free space is below this
    /// percentage of the file system.
    pub low_space_warning_percent: u8,
    /// Period of the free-space check.
    pub space_check_interval: Dur,
    /// Period of background retention enforcement.
    pub retention_check_interval: Dur,
    /// Retention policy used until `set_retention_policy` saves one: age|size|manual.
    pub retention_policy: String,
    pub retention_max_age_days: u32,
    pub retention_max_size_gb: f64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            state_dir: PathBuf::from("/var/lib/camera-service"),
            recordings_dir: PathBuf::from("/var/lib/camera-service/recordings"),
            snapshots_dir: PathBuf::from("/var/lib/camera-service/snapshots"),
            min_free_bytes: 256 * 1024 * 1024,
            low_space_warning_percent: 10,
            space_check_interval: Dur::secs(30),
            retention_check_interval: Dur::secs(600),
            retention_policy: "manual".into(),
            retention_max_age_days: 30,
            retention_max_size_gb: 50.0,
        }
    }
}

/// Every problem found, each naming the key (or env var) and the rule it broke.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "config error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const SECTIONS: &[&str] = &[
    "server",
    "security",
    "logging",
    "mediamtx",
    "camera",
    "storage",
    "ffmpeg",
    "recording",
    "snapshot",
    "external_streams",
    "discovery",
    "mavlink",
];

impl Config {
    /// Reads `path` (a missing file at the default path means "all defaults"), applies
    /// environment overrides from `env`, validates.
    pub fn load(
        path: &Path,
        explicit: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => {
                return Err(ConfigErrors(vec![format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )]))
            }
        };
        Config::from_toml_str(&text, env)
    }

    pub fn from_toml_str(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigErrors> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigErrors(vec![format!("TOML syntax: {e}")]))?;
        let mut errors = Vec::new();
        apply_env_overrides(&mut table, env, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigErrors(vec![describe_error(&e)]))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut v = Validator::default();
        let s = &self.server;
        v.check(
            !s.host.trim().is_empty() && s.host.parse::<std::net::IpAddr>().is_ok(),
            "server.host",
            "must be an IP address such as 0.0.0.0 or 127.0.0.1",
        );
        v.check(
            s.websocket_path.starts_with('/')
                && s.websocket_path.len() > 1
                && !s.websocket_path.contains(char::is_whitespace),
            "server.websocket_path",
            "must start with '/' and contain no spaces",
        );
        v.range("server.max_connections", s.max_connections as u64, 1, 100_000);
        v.range(
            "server.max_message_bytes",
            s.max_message_bytes as u64,
            1024,
            64 * 1024 * 1024,
        );
        v.dur(
            "server.ping_interval",
            s.ping_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "server.idle_timeout",
            s.idle_timeout,
            Duration::from_millis(200),
            Duration::from_secs(86400),
        );
        v.check(
            s.idle_timeout.get() > s.ping_interval.get(),
            "server.idle_timeout",
            "must be longer than server.ping_interval",
        );
        v.range(
            "server.max_inflight_per_connection",
            s.max_inflight_per_connection as u64,
            1,
            1024,
        );
        v.range("server.event_queue_size", s.event_queue_size as u64, 1, 100_000);
        v.dur(
            "server.shutdown_timeout",
            s.shutdown_timeout,
            Duration::from_millis(100),
            Duration::from_secs(120),
        );
        v.range("server.worker_threads", s.worker_threads as u64, 0, 64);

        let sec = &self.security;
        if !sec.jwt_secret.is_empty() {
            v.check(
                sec.jwt_secret.expose().len() >= 32,
                "security.jwt_secret",
                "must be at least 32 bytes long",
            );
        }
        if let Some(p) = &sec.jwt_secret_file {
            v.abs_path("security.jwt_secret_file", p);
        }
        v.abs_path("security.api_keys_file", &sec.api_keys_file);
        for (i, o) in sec.allowed_origins.iter().enumerate() {
            v.check(
                o.starts_with("http://") || o.starts_with("https://") || o == "null",
                &format!("security.allowed_origins[{i}]"),
                "must be an origin like https://gcs.example (scheme://host[:port])",
            );
        }
        v.range(
            "security.rate_limit_per_second",
            sec.rate_limit_per_second as u64,
            1,
            100_000,
        );
        v.range("security.rate_limit_burst", sec.rate_limit_burst as u64, 1, 1_000_000);
        v.range(
            "security.auth_failures_per_minute",
            sec.auth_failures_per_minute as u64,
            1,
            10_000,
        );

        v.check(
            matches!(
                self.logging.level.to_ascii_lowercase().as_str(),
                "off" | "error" | "warn" | "info" | "debug" | "trace"
            ),
            "logging.level",
            "must be one of off, error, warn, info, debug, trace",
        );

        let m = &self.mediamtx;
        v.check(
            m.api_url.starts_with("http://")
                && m.api_url.len() > "http://".len()
                && !m.api_url.contains(char::is_whitespace),
            "mediamtx.api_url",
            "must be an http:// URL such as http://127.0.0.1:9997",
        );
        v.check(
            !m.public_host.contains(['/', ' ', '@']),
            "mediamtx.public_host",
            "must be a bare host name or address (no scheme, path or credentials)",
        );
        v.port("mediamtx.rtsp_port", m.rtsp_port);
        v.port("mediamtx.hls_port", m.hls_port);
        v.port("mediamtx.webrtc_port", m.webrtc_port);
        v.check(!m.api_user.contains(':'), "mediamtx.api_user", "must not contain ':'");
        v.dur(
            "mediamtx.request_timeout",
            m.request_timeout,
            Duration::from_millis(100),
            Duration::from_secs(120),
        );
        v.range("mediamtx.retries", m.retries as u64, 0, 10);
        v.dur(
            "mediamtx.retry_backoff",
            m.retry_backoff,
            Duration::from_millis(1),
            Duration::from_secs(30),
        );
        v.range("mediamtx.breaker_failures", m.breaker_failures as u64, 1, 1000);
        v.dur(
            "mediamtx.breaker_reset",
            m.breaker_reset,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "mediamtx.health_interval",
            m.health_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );

        let c = &self.camera;
        v.range("camera.external_id_base", c.external_id_base as u64, 1, 1_000_000);
        v.range("camera.max_cameras", c.max_cameras as u64, 1, 4096);
        v.dur(
            "camera.rescan_interval",
            c.rescan_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "camera.first_pass_timeout",
            c.first_pass_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        );
        let mut seen = std::collections::HashSet::new();
        for (i, cam) in c.simulated.iter().enumerate() {
            let key = format!("camera.simulated[{i}]");
            v.check(
                crate::ids::parse_camera_id(&cam.id).is_some(),
                &format!("{key}.id"),
                "must look like cameraN (e.g. camera50)",
            );
            v.check(seen.insert(cam.id.clone()), &format!("{key}.id"), "must be unique");
            v.check(
                parse_size(&cam.size).is_some(),
                &format!("{key}.size"),
                "must be WIDTHxHEIGHT with even sizes from 16x16 to 7680x4320",
            );
            v.range(&format!("{key}.fps"), cam.fps as u64, 1, 120);
            v.check(
                !cam.pattern.is_empty() && cam.pattern.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'),
                &format!("{key}.pattern"),
                "must be an ffmpeg lavfi source name such as testsrc2, smptebars, mandelbrot",
            );
        }

        let f = &self.ffmpeg;
        v.check(
            !f.path.trim().is_empty() && !f.path.contains(char::is_whitespace),
            "ffmpeg.path",
            "must be a program name or path without spaces",
        );
        v.check(
            !f.encoder.is_empty() && f.encoder.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "ffmpeg.encoder",
            "must be an FFmpeg encoder name such as libx264 or h264_v4l2m2m",
        );
        v.check(
            !f.encoder_options.contains(['"', '\'', '$', '`']),
            "ffmpeg.encoder_options",
            "must not contain quotes, '$' or backquotes",
        );
        v.check(
            f.bitrate.is_empty() || f.bitrate.trim_end_matches(['k', 'K', 'M']).parse::<u32>().is_ok(),
            "ffmpeg.bitrate",
            "must be empty or like 2M / 800k",
        );
        v.dur(
            "ffmpeg.stop_timeout",
            f.stop_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        v.dur(
            "ffmpeg.stall_timeout",
            f.stall_timeout,
            Duration::from_secs(1),
            Duration::from_secs(600),
        );

        let r = &self.recording;
        v.dur(
            "recording.start_timeout",
            r.start_timeout,
            Duration::from_millis(500),
            Duration::from_secs(120),
        );
        v.dur(
            "recording.segment_duration",
            r.segment_duration,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        );
        v.dur(
            "recording.part_duration",
            r.part_duration,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        v.dur(
            "recording.progress_interval",
            r.progress_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "recording.stall_timeout",
            r.stall_timeout,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        v.dur(
            "recording.on_demand_start_timeout",
            r.on_demand_start_timeout,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        v.dur(
            "recording.on_demand_close_after",
            r.on_demand_close_after,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );

        self.validate_external(&mut v);

        let sn = &self.snapshot;
        const TIERS: [&str; 4] = ["v4l2_direct", "ffmpeg_direct", "rtsp_immediate", "rtsp_activation"];
        v.check(!sn.tiers.is_empty(), "snapshot.tiers", "must name at least one tier");
        for (i, t) in sn.tiers.iter().enumerate() {
            v.check(
                TIERS.contains(&t.as_str()),
                &format!("snapshot.tiers[{i}]"),
                "must be one of v4l2_direct, ffmpeg_direct, rtsp_immediate, rtsp_activation",
            );
            v.check(
                !sn.tiers[..i].contains(t),
                &format!("snapshot.tiers[{i}]"),
                "must not repeat a tier",
            );
        }
        for (key, d) in [
            ("snapshot.v4l2_direct_timeout", sn.v4l2_direct_timeout),
            ("snapshot.ffmpeg_direct_timeout", sn.ffmpeg_direct_timeout),
            ("snapshot.rtsp_immediate_timeout", sn.rtsp_immediate_timeout),
            ("snapshot.rtsp_activation_timeout", sn.rtsp_activation_timeout),
        ] {
            v.dur(key, d, Duration::from_millis(100), Duration::from_secs(300));
        }
        v.range("snapshot.warmup_frames", sn.warmup_frames as u64, 0, 100);
        v.range("snapshot.default_quality", sn.default_quality as u64, 1, 100);
        v.range("snapshot.max_width", sn.max_width as u64, 0, 16384);
        v.range("snapshot.max_height", sn.max_height as u64, 0, 16384);

        let st = &self.storage;
        v.abs_path("storage.state_dir", &st.state_dir);
        v.abs_path("storage.recordings_dir", &st.recordings_dir);
        v.abs_path("storage.snapshots_dir", &st.snapshots_dir);
        v.check(
            st.recordings_dir != st.snapshots_dir,
            "storage.snapshots_dir",
            "must differ from storage.recordings_dir",
        );
        v.range(
            "storage.low_space_warning_percent",
            st.low_space_warning_percent as u64,
            0,
            100,
        );
        v.dur(
            "storage.space_check_interval",
            st.space_check_interval,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        );
        v.dur(
            "storage.retention_check_interval",
            st.retention_check_interval,
            Duration::from_millis(100),
            Duration::from_secs(7 * 86400),
        );
        v.check(
            matches!(st.retention_policy.as_str(), "age" | "size" | "manual"),
            "storage.retention_policy",
            "must be one of age, size, manual",
        );
        v.range(
            "storage.retention_max_age_days",
            st.retention_max_age_days as u64,
            1,
            3650,
        );
        v.check(
            st.retention_max_size_gb.is_finite() && st.retention_max_size_gb > 0.0,
            "storage.retention_max_size_gb",
            "must be a number greater than 0",
        );
        v.0.extend(self.mavlink.validate());
        v.finish()
    }

    fn validate_external(&self, v: &mut Validator) {
        let e = &self.external_streams;
        v.dur(
            "external_streams.health_interval",
            e.health_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "external_streams.probe_timeout",
            e.probe_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        v.range("external_streams.offline_after", e.offline_after as u64, 1, 100);
        let mut ids: std::collections::HashSet<&str> = self.camera.simulated.iter().map(|s| s.id.as_str()).collect();
        let mut urls = std::collections::HashSet::new();
        for (i, s) in e.streams.iter().enumerate() {
            let key = format!("external_streams.streams[{i}]");
            v.check(
                crate::ids::parse_camera_id(&s.id).is_some(),
                &format!("{key}.id"),
                "must look like cameraN (e.g. camera120)",
            );
            v.check(
                ids.insert(s.id.as_str()),
                &format!("{key}.id"),
                "must be unique among external streams and simulated cameras",
            );
            if let Err(why) = crate::external::validate_url(&s.url) {
                v.check(false, &format!("{key}.url"), &why);
            }
            v.check(urls.insert(s.url.as_str()), &format!("{key}.url"), "must be unique");
            v.check(
                crate::external::StreamType::parse(&s.stream_type).is_some(),
                &format!("{key}.type"),
                "must be one of generic_rtsp, skydio_eo, skydio_ir",
            );
        }

        let d = &self.discovery;
        for (i, h) in d.hosts.iter().enumerate() {
            v.check(
                !h.is_empty() && !h.contains(|c: char| c.is_whitespace() || c == '/' || c == '@'),
                &format!("discovery.hosts[{i}]"),
                "must be an IP address or host name",
            );
        }
        for (i, c) in d.cidrs.iter().enumerate() {
            if let Err(why) = crate::external::scan::parse_cidr(c) {
                v.check(false, &format!("discovery.cidrs[{i}]"), &why);
            }
        }
        for (i, p) in d.ports.iter().enumerate() {
            v.port(&format!("discovery.ports[{i}]"), *p);
        }
        for (i, p) in d.paths.iter().enumerate() {
            v.check(
                p.starts_with('/') && p.len() < 256 && !p.contains(|c: char| c.is_whitespace() || c.is_control()),
                &format!("discovery.paths[{i}]"),
                "must start with '/' and contain no spaces",
            );
        }
        v.port("discovery.skydio_eo_port", d.skydio_eo_port);
        v.port("discovery.skydio_ir_port", d.skydio_ir_port);
        v.dur(
            "discovery.probe_timeout",
            d.probe_timeout,
            Duration::from_millis(50),
            Duration::from_secs(30),
        );
        v.range("discovery.concurrency", d.concurrency as u64, 1, 256);
        v.range("discovery.max_addresses", d.max_addresses as u64, 1, 65_536);
        v.check(
            d.interval.get().is_zero()
                || (d.interval.get() >= Duration::from_secs(5) && d.interval.get() <= Duration::from_secs(7 * 86400)),
            "discovery.interval",
            "must be 0s (off) or between 5s and 7days",
        );
    }

    /// The effective configuration as TOML with secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    ((16..=7680).contains(&w) && (16..=4320).contains(&h) && w % 2 == 0 && h % 2 == 0).then_some((w, h))
}

#[derive(Default)]
struct Validator(Vec<String>);

impl Validator {
    fn check(&mut self, ok: bool, key: &str, rule: &str) {
        if !ok {
            self.0.push(format!("{key}: {rule}"));
        }
    }
    fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        self.check(
            (min..=max).contains(&value),
            key,
            &format!("must be between {min} and {max} (got {value})"),
        );
    }
    fn port(&mut self, key: &str, port: u16) {
        self.check(port != 0, key, "must be a TCP port between 1 and 65535");
    }
    fn dur(&mut self, key: &str, d: Dur, min: Duration, max: Duration) {
        self.check(
            d.get() >= min && d.get() <= max,
            key,
            &format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        );
    }
    fn abs_path(&mut self, key: &str, p: &Path) {
        let text = p.to_string_lossy();
        self.check(
            p.is_absolute() && !text.contains('\0') && !p.components().any(|c| c == std::path::Component::ParentDir),
            key,
            "must be an absolute path without '..'",
        );
    }
    fn finish(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

/// `CAMERA_SERVICE_SERVER_PORT=9000` → `server.port = 9000`. The value is read as a TOML
/// value when it parses as one (numbers, booleans, arrays), else as a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    errors: &mut Vec<String>,
) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| lower.starts_with(&format!("{s}_"))) else {
            errors.push(format!("{name}: unknown section; environment overrides look like {ENV_PREFIX}<SECTION>_<KEY> with SECTION one of {}", SECTIONS.join(", ")));
            continue;
        };
        let key = &lower[section.len() + 1..];
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"));
        let value = parsed.unwrap_or(toml::Value::String(value));
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key.to_string(), value);
            }
            _ => errors.push(format!("{section}: must be a table")),
        }
    }
}

/// toml renders the key path as a trailing "in `server.port`" line; put it first, as
/// every other config error does: `server.port: invalid value: integer `70000`, expected u16`.
fn describe_error(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let mut lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
    {
        Some(path) => {
            let path = path.to_string();
            lines.pop();
            format!("{path}: {}", lines.join(" "))
        }
        None => lines.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::from_toml_str(text, env.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.port, 8002);
        assert_eq!(c.server.ping_interval.get(), Duration::from_secs(30));
        assert_eq!(c.camera.external_id_base, 100);
    }

    #[test]
    fn env_overrides_file_and_types_values() {
        let c = load(
            "[server]\nport = 9000\n",
            &[
                ("CAMERA_SERVICE_SERVER_PORT", "9100"),
                ("CAMERA_SERVICE_SECURITY_ALLOWED_ORIGINS", "[\"https://gcs.local\"]"),
                ("CAMERA_SERVICE_MEDIAMTX_PUBLIC_HOST", "10.0.0.5"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.port, 9100);
        assert_eq!(c.security.allowed_origins, vec!["https://gcs.local"]);
        assert_eq!(c.mediamtx.public_host, "10.0.0.5");
    }

    #[test]
    fn unknown_keys_and_sections_are_named() {
        let e = load("[server]\nprot = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
        let e = load("[serverx]\n", &[]).unwrap_err().to_string();
        assert!(e.contains("serverx"), "{e}");
        let e = load("", &[("CAMERA_SERVICE_NOPE_X", "1")]).unwrap_err().to_string();
        assert!(e.contains("CAMERA_SERVICE_NOPE_X"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_rule() {
        let e = load("[server]\nmax_connections = 0\nping_interval = \"soon\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ping_interval") || e.contains("soon"), "{e}");
        let e = load("[server]\nmax_connections = 0\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains("server.max_connections: must be between 1 and 100000"),
            "{e}"
        );
        let e = load(
            "[storage]\nrecordings_dir = \"rel/dir\"\n[security]\njwt_secret = \"short\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("storage.recordings_dir: must be an absolute path"), "{e}");
        assert!(e.contains("security.jwt_secret: must be at least 32 bytes"), "{e}");
        let e = load("[server]\nport = 70000\n", &[]).unwrap_err().to_string();
        assert!(e.contains("server.port: invalid value"), "{e}");
        let e = load("[[camera.simulated]]\nid = \"cam5\"\nsize = \"641x480\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("camera.simulated[0].id") && e.contains("camera.simulated[0].size"),
            "{e}"
        );
    }

    #[test]
    fn snapshot_section_is_validated_by_key() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.snapshot.tiers.len(), 4);
        assert_eq!(c.snapshot.default_quality, 85);
        let c = load("[snapshot]\ntiers = [\"rtsp_activation\"]\nwarmup_frames = 0\n", &[]).unwrap();
        assert_eq!(c.snapshot.tiers, vec!["rtsp_activation"]);
        let e = load(
            "[snapshot]\ntiers = [\"v4l2_direct\", \"tier9\", \"v4l2_direct\"]\ndefault_quality = 0\nv4l2_direct_timeout = \"1ms\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        for key in [
            "snapshot.tiers[1]",
            "snapshot.tiers[2]: must not repeat",
            "snapshot.default_quality",
            "snapshot.v4l2_direct_timeout",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = load("[snapshot]\ntiers = []\n", &[]).unwrap_err().to_string();
        assert!(e.contains("snapshot.tiers: must name at least one tier"), "{e}");
        let c = load("", &[("CAMERA_SERVICE_SNAPSHOT_WARMUP_FRAMES", "7")]).unwrap();
        assert_eq!(c.snapshot.warmup_frames, 7);
    }

    #[test]
    fn secrets_are_redacted() {
        let c = load(
            "[security]\njwt_secret = \"0123456789abcdef0123456789abcdef-secret\"\n",
            &[],
        )
        .unwrap();
        let out = c.to_redacted_toml();
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(out.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }
}
