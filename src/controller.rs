//! The controller: owns the managers and offers one method per API operation. The API tier
//! talks only to it; managers never see API types.

use crate::api::events::{EventBus, Topic};
use crate::camera::registry::ChangeKind;
use crate::camera::{CameraManager, Hooks};
use crate::config::Config;
use crate::error::ServiceError;
use crate::health::{Health, Level};
use crate::metrics::ApiMetrics;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub struct Controller {
    config: Arc<Config>,
    bus: Arc<EventBus>,
    health: Arc<Health>,
    api_metrics: ApiMetrics,
    cameras: Arc<CameraManager>,
    /// /proc sampler for `get_metrics`, started with the service (`controller_status.rs`).
    pub(crate) sampler: std::sync::OnceLock<crate::metrics::Sampler>,
    /// Streams and recordings (MediaMTX); operations in `controller_media.rs`.
    pub(crate) media: Arc<crate::media::service::MediaService>,
    /// Recordings and snapshots on disk, retention; operations in `storage/ops.rs`.
    pub(crate) storage: Arc<crate::storage::Storage>,
    /// Segment files being written (filled by the recording work; never deleted).
    pub(crate) active_segments: Arc<crate::storage::ActiveSegments>,
    /// Snapshot tiers, per-camera locks and per-tier figures; operations in `controller_snapshot.rs`.
    pub(crate) snapshots: Arc<crate::media::snapshot::SnapshotManager>,
    /// External RTSP streams and discovery; operations in `controller_external.rs`.
    pub(crate) external: crate::controller_external::External,
}

impl Controller {
    pub fn new(config: Arc<Config>) -> Arc<Controller> {
        let bus = Arc::new(EventBus::new(config.server.event_queue_size));
        let health = Arc::new(Health::new());
        let cameras = CameraManager::new(&config.camera);
        let active_segments = Arc::new(crate::storage::ActiveSegments::default());
        let written_now = Arc::new(crate::controller_media::WrittenNow::new(active_segments.clone()));
        let storage = Arc::new(crate::storage::Storage::new(&config.storage, written_now.clone()));
        let media = crate::controller_media::new_media(&config, &bus, &storage);
        written_now.attach(&media);
        let snapshots = Arc::new(crate::media::snapshot::SnapshotManager::new(
            config.clone(),
            media.clone(),
            storage.clone(),
        ));
        Arc::new(Controller {
            config,
            bus,
            health,
            api_metrics: ApiMetrics::default(),
            cameras,
            sampler: std::sync::OnceLock::new(),
            media,
            storage,
            active_segments,
            snapshots,
            external: crate::controller_external::External::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn bus(&self) -> &Arc<EventBus> {
        &self.bus
    }
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }
    pub fn api_metrics(&self) -> &ApiMetrics {
        &self.api_metrics
    }
    pub fn cameras(&self) -> &Arc<CameraManager> {
        &self.cameras
    }

    /// Starts camera discovery, wiring its changes to `camera.*` events and the `cameras`
    /// health component (which gates readiness until the first pass is done). Resolves after
    /// the first pass (bounded by `camera.first_pass_timeout`).
    pub async fn start_cameras(self: &Arc<Self>) {
        self.set_component("cameras", Level::Healthy, "discovering cameras", true, false);
        let on_change = {
            let me = Arc::downgrade(self);
            Box::new(move |c: &crate::camera::registry::Change| {
                let Some(me) = me.upgrade() else { return };
                let topic = match c.kind {
                    ChangeKind::Connected => Topic::CameraConnected,
                    ChangeKind::Disconnected => Topic::CameraDisconnected,
                    ChangeKind::StatusChange => Topic::CameraStatusChange,
                };
                let params = crate::camera::camera_json(&c.camera, &me.config.mediamtx, &me.event_host());
                me.bus.publish(topic, Some(&c.camera.id), params);
                me.on_camera_change(&c.camera, c.kind);
            })
        };
        let on_health = {
            let me = Arc::downgrade(self);
            Box::new(move |h: &crate::camera::HealthReport| {
                let Some(me) = me.upgrade() else { return };
                let level = if h.degraded { Level::Degraded } else { Level::Healthy };
                me.set_component("cameras", level, &h.message, true, h.ready);
            })
        };
        self.cameras.start(Hooks { on_change, on_health }).await;
    }

    /// Host for stream URLs: `mediamtx.public_host`, else the host the client connected to,
    /// else this machine's host name.
    pub(crate) fn url_host(&self, client_host: &str) -> String {
        let public = self.config.mediamtx.public_host.trim();
        if !public.is_empty() {
            public.to_string()
        } else if !client_host.is_empty() {
            client_host.to_string()
        } else {
            self.event_host()
        }
    }

    /// Events go to every client at once: `mediamtx.public_host`, else the host name.
    pub(crate) fn event_host(&self) -> String {
        let public = self.config.mediamtx.public_host.trim();
        if !public.is_empty() {
            return public.to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }

    pub fn camera_list(&self, client_host: &str) -> Value {
        let host = self.url_host(client_host);
        let cams = self.cameras.list();
        let connected = cams
            .iter()
            .filter(|c| c.status == crate::camera::registry::Status::Connected)
            .count();
        let list: Vec<Value> = cams
            .iter()
            .map(|c| Value::Object(crate::camera::camera_json(c, &self.config.mediamtx, &host)))
            .collect();
        json!({"cameras": list, "total": cams.len(), "connected": connected})
    }

    pub fn camera_status(&self, device: &str, client_host: &str) -> Result<Value, ServiceError> {
        let cam = self.cameras.get(device)?;
        let mut v = crate::camera::status_json(&cam, &self.config.mediamtx, &self.url_host(client_host));
        // Recording: our recording state; streaming: MediaMTX has the stream flowing (as of
        // the last health probe, so this call never waits on MediaMTX).
        v["recording"] = Value::from(self.media.recordings().is_recording(device));
        v["streaming"] = Value::from(self.media.stream_stats().available.iter().any(|n| n == device));
        Ok(v)
    }

    pub fn camera_capabilities(&self, device: &str) -> Result<Value, ServiceError> {
        Ok(crate::camera::capabilities_json(&self.cameras.get(device)?))
    }

    pub fn system_status(&self) -> Value {
        crate::camera::system_status_json(&self.cameras.summary())
    }

    /// Publishes `system.health` when a component change moved the overall status.
    pub fn set_component(&self, name: &'static str, level: Level, message: &str, gates_readiness: bool, ready: bool) {
        if self.health.set(name, level, message, gates_readiness, ready) {
            self.publish_health();
        }
    }

    pub fn publish_health(&self) {
        let mut p = Map::new();
        p.insert("status".into(), Value::from(self.health.overall().as_upper()));
        p.insert("components".into(), self.health.components_json());
        self.bus.publish(Topic::SystemHealth, None, p);
    }

    pub fn publish_system(&self, topic: Topic, message: &str) {
        let mut p = Map::new();
        p.insert("status".into(), Value::from(self.health.overall().as_upper()));
        p.insert("components".into(), self.health.components_json());
        p.insert("message".into(), Value::from(message));
        p.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
        self.bus.publish(topic, None, p);
    }

    pub fn server_info(&self) -> Value {
        json!({
            "name": "camera-service",
            "version": env!("CARGO_PKG_VERSION"),
            "build_date": env!("CS_BUILD_DATE"),
            "git_commit": env!("CS_GIT_COMMIT"),
            "architecture": std::env::consts::ARCH,
            "rust_version": env!("CS_RUSTC_VERSION"),
            "capabilities": ["snapshots", "recordings", "streaming", "events", "external_streams"],
            "supported_formats": ["fmp4", "mpegts", "jpg", "png"],
            "max_cameras": self.config.camera.max_cameras,
        })
    }
}
