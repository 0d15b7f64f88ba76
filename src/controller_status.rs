//! System status, metrics and health that tell the truth (api.md §8, §10): `get_status`,
//! `get_metrics` (answered from memory: counters, cached MediaMTX figures and the /proc
//! sampler) and the Prometheus `/metrics` exposition.

use crate::camera::registry::Status;
use crate::controller::Controller;
use crate::health::Level;
use crate::metrics::Sampler;
use crate::shutdown::Shutdown;
use prometheus::{CounterVec, Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `get_status` component names → health component names.
const STATUS_COMPONENTS: [(&str, &str); 4] = [
    ("websocket_server", "websocket_server"),
    ("camera_monitor", "cameras"),
    ("mediamtx", "mediamtx"),
    ("storage", "storage"),
];

fn run_state(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Healthy) => "RUNNING",
        Some(Level::Degraded) => "DEGRADED",
        Some(Level::Unhealthy) | None => "ERROR",
    }
}

impl Controller {
    /// Starts the /proc sampler and checks that FFmpeg runs (component `ffmpeg`); resolves
    /// after the check (tens of milliseconds), so status is complete once the service is up.
    pub(crate) async fn start_status(self: &Arc<Self>, shutdown: Shutdown) {
        let _ = self.sampler.set(Sampler::start(Duration::from_secs(2), shutdown));
        let me = self.clone();
        {
            let ffmpeg = me.config().ffmpeg.path.clone();
            let out = blocking::unblock(move || std::process::Command::new(ffmpeg).arg("-version").output()).await;
            let (level, msg) = match out {
                Ok(o) if o.status.success() => {
                    let first = String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    (
                        Level::Healthy,
                        first.split(" Copyright").next().unwrap_or_default().to_string(),
                    )
                }
                Ok(o) => (Level::Unhealthy, format!("ffmpeg -version failed ({})", o.status)),
                Err(e) => (Level::Unhealthy, format!("ffmpeg cannot be run: {e}")),
            };
            if level != Level::Healthy {
                log::error!("{msg}: recording, streaming and snapshots will fail");
            }
            me.set_component("ffmpeg", level, &msg, false, true);
        }
    }

    /// `get_status`.
    pub fn status(&self) -> Value {
        let health = self.health();
        let mut components = Map::new();
        for (api, comp) in STATUS_COMPONENTS {
            components.insert(api.into(), Value::from(run_state(health.get(comp).map(|c| c.level))));
        }
        components.insert(
            "ffmpeg".into(),
            Value::from(run_state(health.get("ffmpeg").map(|c| c.level))),
        );
        json!({
            "status": health.overall().as_upper(),
            "uptime": health.uptime_secs(),
            "version": env!("CARGO_PKG_VERSION"),
            "components": components,
            "details": health.components_json(),
        })
    }

    /// `get_metrics`: memory only, no I/O beyond one statvfs.
    pub fn metrics(&self, connected_clients: usize) -> Value {
        let sys = self.sampler.get().map(|s| s.latest()).unwrap_or_default();
        let disk = self
            .storage
            .space()
            .map(|s| (s.usage_percentage() * 100.0).round() / 100.0)
            .unwrap_or(0.0);
        let cams = self.cameras().list();
        let recordings = self.media.recordings();
        let mut per_camera = Map::new();
        for c in &cams {
            per_camera.insert(
                c.id.clone(),
                json!({"status": c.status.as_str(), "source_type": c.source.as_str(), "recording": recordings.is_recording(&c.id)}),
            );
        }
        let (started, failed) = recordings.totals();
        let streams = self.media.stream_stats();
        let (requests, errors) = self.api_metrics().totals();
        json!({
            "timestamp": crate::clock::now_rfc3339(),
            "system_metrics": {
                "cpu_usage": sys.cpu_percent,
                "memory_usage": sys.memory_percent,
                "rss_bytes": sys.rss_bytes,
                "disk_usage": disk,
                "threads": sys.threads,
                "open_fds": sys.open_fds,
            },
            "camera_metrics": {
                "connected_cameras": cams.iter().filter(|c| c.status == Status::Connected).count(),
                "cameras": per_camera,
            },
            "recording_metrics": {"active_recordings": recordings.active_devices().len(), "total_started": started, "total_failed": failed},
            "stream_metrics": {"active_streams": streams.active_streams, "total_streams": streams.total_streams, "total_viewers": streams.total_viewers},
            "api_metrics": {
                "requests_total": requests,
                "errors_total": errors,
                "p50_ms": self.api_metrics().quantile_ms(0.50),
                "p99_ms": self.api_metrics().quantile_ms(0.99),
                "connected_clients": connected_clients,
            },
        })
    }

    /// `/metrics` in the Prometheus text format (0.0.4).
    pub async fn prometheus_text(&self, connected_clients: usize) -> String {
        let storage = self.storage_info().await.ok();
        let reg = Registry::new();
        let gauge = |name: &str, help: &str, v: i64| {
            let g = IntGauge::new(name, help).expect("valid metric");
            g.set(v);
            reg.register(Box::new(g)).expect("unique");
        };
        let counter = |name: &str, help: &str, v: u64| {
            let c = IntCounter::new(name, help).expect("valid metric");
            c.inc_by(v);
            reg.register(Box::new(c)).expect("unique");
        };
        gauge(
            "camera_service_connected_clients",
            "Open WebSocket clients",
            connected_clients as i64,
        );
        gauge(
            "camera_service_uptime_seconds",
            "Seconds since start",
            self.health().uptime_secs() as i64,
        );
        let cams = self.cameras().list();
        let by_status = IntGaugeVec::new(Opts::new("camera_service_cameras", "Cameras by status"), &["status"])
            .expect("valid metric");
        for s in [Status::Connected, Status::Disconnected, Status::Error] {
            by_status
                .with_label_values(&[s.as_str()])
                .set(cams.iter().filter(|c| c.status == s).count() as i64);
        }
        reg.register(Box::new(by_status)).expect("unique");
        let recordings = self.media.recordings();
        let (started, failed) = recordings.totals();
        gauge(
            "camera_service_active_recordings",
            "Recordings running now",
            recordings.active_devices().len() as i64,
        );
        counter("camera_service_recordings_started_total", "Recordings started", started);
        counter(
            "camera_service_recordings_failed_total",
            "Recordings that failed to start or ended by a failure",
            failed,
        );
        let streams = self.media.stream_stats();
        gauge(
            "camera_service_active_streams",
            "Camera paths with a stream available in MediaMTX",
            streams.active_streams as i64,
        );
        let mtx = &self.media.client().stats;
        counter(
            "camera_service_mediamtx_calls_total",
            "MediaMTX API calls (attempts)",
            mtx.calls.load(Ordering::Relaxed),
        );
        counter(
            "camera_service_mediamtx_failures_total",
            "MediaMTX API calls that failed",
            mtx.failures.load(Ordering::Relaxed),
        );
        counter(
            "camera_service_mediamtx_call_duration_microseconds_total",
            "Total time spent in MediaMTX API calls",
            mtx.latency_us_total.load(Ordering::Relaxed),
        );
        let level = |name: &str| self.health().get(name).map_or(-1, |c| c.level as i64);
        let comp = IntGaugeVec::new(
            Opts::new(
                "camera_service_component_status",
                "Component health: 0 healthy, 1 degraded, 2 unhealthy, -1 unknown",
            ),
            &["component"],
        )
        .expect("valid metric");
        for name in ["websocket_server", "cameras", "mediamtx", "storage", "ffmpeg"] {
            comp.with_label_values(&[name]).set(level(name));
        }
        reg.register(Box::new(comp)).expect("unique");
        if let Some(s) = storage {
            let bytes = IntGaugeVec::new(
                Opts::new(
                    "camera_service_storage_bytes",
                    "Bytes on the storage file system and in our files",
                ),
                &["kind"],
            )
            .expect("valid metric");
            for (kind, key) in [
                ("total", "total_space"),
                ("available", "available_space"),
                ("recordings", "recordings_size"),
                ("snapshots", "snapshots_size"),
            ] {
                bytes
                    .with_label_values(&[kind])
                    .set(s[key].as_u64().unwrap_or(0) as i64);
            }
            reg.register(Box::new(bytes)).expect("unique");
        }
        let shots = IntCounterVec::new(
            Opts::new(
                "camera_service_snapshots_total",
                "Snapshot attempts per tier and result",
            ),
            &["tier", "result"],
        )
        .expect("valid metric");
        let shot_secs = CounterVec::new(
            Opts::new(
                "camera_service_snapshot_seconds_total",
                "Time to capture the snapshots each tier delivered (divide by its successes for the mean)",
            ),
            &["tier"],
        )
        .expect("valid metric");
        for t in self.snapshots().tier_stats() {
            shots.with_label_values(&[t.tier, "success"]).inc_by(t.successes);
            shots.with_label_values(&[t.tier, "failure"]).inc_by(t.failures);
            shot_secs.with_label_values(&[t.tier]).inc_by(t.latency_seconds_sum);
        }
        reg.register(Box::new(shots)).expect("unique");
        reg.register(Box::new(shot_secs)).expect("unique");
        let mut families = self.api_metrics().registry().gather();
        families.extend(reg.gather());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
