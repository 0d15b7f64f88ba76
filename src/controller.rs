//! The controller: owns the managers and offers one method per API operation. The API tier
//! talks only to it; managers never see API types.

use crate::api::events::{EventBus, Topic};
use crate::config::Config;
use crate::health::{Health, Level};
use crate::metrics::ApiMetrics;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub struct Controller {
    config: Arc<Config>,
    bus: Arc<EventBus>,
    health: Arc<Health>,
    api_metrics: ApiMetrics,
}

impl Controller {
    pub fn new(config: Arc<Config>) -> Arc<Controller> {
        let bus = Arc::new(EventBus::new(config.server.event_queue_size));
        let health = Arc::new(Health::new());
        Arc::new(Controller {
            config,
            bus,
            health,
            api_metrics: ApiMetrics::default(),
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
