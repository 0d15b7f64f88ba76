//! System status, metrics and health that tell the truth (api.md §8, §10): `get_status`,
//! `get_metrics` (answered from memory: counters, cached MediaMTX figures and the /proc
//! sampler; the one statvfs runs on the blocking pool) and the Prometheus `/metrics` text.

use super::Controller;
use crate::camera::registry::{SourceType, Status};
use crate::health::Level;
use crate::metrics::Sampler;
use prometheus::{CounterVec, Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Overall health as `get_status` and `system.*` events report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

impl From<Level> for HealthStatus {
    fn from(l: Level) -> HealthStatus {
        match l {
            Level::Healthy => HealthStatus::Healthy,
            Level::Degraded => HealthStatus::Degraded,
            Level::Unhealthy => HealthStatus::Unhealthy,
        }
    }
}

/// A component's state in `get_status.components`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunState {
    Running,
    Degraded,
    Error,
}

impl From<Option<Level>> for RunState {
    fn from(level: Option<Level>) -> RunState {
        match level {
            Some(Level::Healthy) => RunState::Running,
            Some(Level::Degraded) => RunState::Degraded,
            Some(Level::Unhealthy) | None => RunState::Error,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StatusComponents {
    pub websocket_server: RunState,
    pub camera_monitor: RunState,
    pub mediamtx: RunState,
    pub storage: RunState,
    pub ffmpeg: RunState,
}

/// One health component: its level and why.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ComponentDetail {
    pub status: Level,
    pub message: String,
}

/// `get_status`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StatusReport {
    pub status: HealthStatus,
    pub uptime: u64,
    pub version: &'static str,
    pub components: StatusComponents,
    pub details: BTreeMap<String, ComponentDetail>,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SystemMetrics {
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub rss_bytes: u64,
    pub disk_usage: f64,
    pub threads: u64,
    pub open_fds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraMetric {
    pub status: Status,
    pub source_type: SourceType,
    pub recording: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraMetrics {
    pub connected_cameras: usize,
    pub cameras: BTreeMap<String, CameraMetric>,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RecordingMetrics {
    pub active_recordings: usize,
    pub total_started: u64,
    pub total_failed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamMetrics {
    pub active_streams: usize,
    pub total_streams: usize,
    pub total_viewers: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ApiMetricsView {
    pub requests_total: u64,
    pub errors_total: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub connected_clients: usize,
}

/// `get_metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Metrics {
    pub timestamp: String,
    pub system_metrics: SystemMetrics,
    pub camera_metrics: CameraMetrics,
    pub recording_metrics: RecordingMetrics,
    pub stream_metrics: StreamMetrics,
    pub api_metrics: ApiMetricsView,
}

impl Controller {
    /// Starts the /proc sampler and checks that FFmpeg runs (component `ffmpeg`); resolves
    /// after the check (tens of milliseconds), so status is complete once the service is up.
    pub(super) async fn start_status(self: &Arc<Self>) {
        let _ = self.sampler.set(Sampler::start(Duration::from_secs(2)));
        let ffmpeg = self.config.ffmpeg.path.clone();
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
        self.set_component("ffmpeg", level, &msg, false, true);
    }

    /// `get_status`.
    pub fn status(&self) -> StatusReport {
        let health = self.health();
        let level = |name: &str| RunState::from(health.get(name).map(|c| c.level));
        StatusReport {
            status: health.overall().into(),
            uptime: health.uptime_secs(),
            version: env!("CARGO_PKG_VERSION"),
            components: StatusComponents {
                websocket_server: level("websocket_server"),
                camera_monitor: level("cameras"),
                mediamtx: level("mediamtx"),
                storage: level("storage"),
                ffmpeg: level("ffmpeg"),
            },
            details: health
                .components()
                .into_iter()
                .map(|(n, c)| {
                    (
                        n.to_string(),
                        ComponentDetail {
                            status: c.level,
                            message: c.message,
                        },
                    )
                })
                .collect(),
        }
    }

    /// `get_metrics`: memory only, plus one statvfs on the blocking pool.
    pub async fn metrics(&self, connected_clients: usize) -> Metrics {
        let sys = self.sampler.get().map(|s| s.latest()).unwrap_or_default();
        let storage = self.storage.clone();
        let disk = blocking::unblock(move || storage.space())
            .await
            .map(|s| (s.usage_percentage() * 100.0).round() / 100.0)
            .unwrap_or(0.0);
        let cams = self.cameras().list();
        let recordings = self.media.recordings();
        let (total_started, total_failed) = recordings.totals();
        let streams = self.media.stream_stats();
        let (requests_total, errors_total) = self.api_metrics().totals();
        Metrics {
            timestamp: crate::clock::now_rfc3339(),
            system_metrics: SystemMetrics {
                cpu_usage: sys.cpu_percent,
                memory_usage: sys.memory_percent,
                rss_bytes: sys.rss_bytes,
                disk_usage: disk,
                threads: sys.threads,
                open_fds: sys.open_fds,
            },
            camera_metrics: CameraMetrics {
                connected_cameras: cams.iter().filter(|c| c.status == Status::Connected).count(),
                cameras: cams
                    .iter()
                    .map(|c| {
                        (
                            c.id.clone(),
                            CameraMetric {
                                status: c.status,
                                source_type: c.source,
                                recording: recordings.is_recording(&c.id),
                            },
                        )
                    })
                    .collect(),
            },
            recording_metrics: RecordingMetrics {
                active_recordings: recordings.active_devices().len(),
                total_started,
                total_failed,
            },
            stream_metrics: StreamMetrics {
                active_streams: streams.active_streams,
                total_streams: streams.total_streams,
                total_viewers: streams.total_viewers,
            },
            api_metrics: ApiMetricsView {
                requests_total,
                errors_total,
                p50_ms: self.api_metrics().quantile_ms(0.50),
                p99_ms: self.api_metrics().quantile_ms(0.99),
                connected_clients,
            },
        }
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
        crate::mavlink::register_metrics(&reg);
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
            for (kind, value) in [
                ("total", s.total_space),
                ("available", s.available_space),
                ("recordings", s.recordings_size),
                ("snapshots", s.snapshots_size),
            ] {
                bytes.with_label_values(&[kind]).set(value as i64);
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
