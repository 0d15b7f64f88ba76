//! The controller: the typed core every front end drives. It owns the managers; each
//! operation takes typed parameters and returns a typed result (`Serialize` + `JsonSchema`),
//! and what happens is published as typed domain events (`crate::events`). Front ends
//! (JSON-RPC in `api/`, MAVLink) only translate.
//!
//! Operations by concern: `cameras.rs`, `media.rs` (streams and recordings), `snapshots.rs`,
//! `files.rs` (files, storage, retention), `status.rs` (status, metrics); external streams
//! are their own manager (`crate::external::manager`).

pub mod cameras;
pub mod files;
pub mod media;
pub mod snapshots;
pub mod status;

use crate::camera::CameraManager;
use crate::config::Config;
use crate::events::{Event, Events, HealthSnapshot, Lifecycle};
use crate::external::manager::ExternalManager;
use crate::health::{Health, Level};
use crate::media::service::MediaService;
use crate::media::snapshot::SnapshotManager;
use crate::metrics::ApiMetrics;
use crate::shutdown::Shutdown;
use crate::storage::Storage;
use crate::tasks::Tasks;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Host names for stream URLs, read once (no file read per event).
#[derive(Clone, Debug)]
pub struct Hosts {
    /// `mediamtx.public_host`, trimmed; empty = not set.
    public: String,
    /// This machine's host name.
    local: String,
}

impl Hosts {
    pub fn new(public_host: &str) -> Hosts {
        let local = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Hosts {
            public: public_host.trim().to_string(),
            local,
        }
    }

    /// For one client: the public host, else the host it connected to, else ours.
    pub fn for_client(&self, client_host: &str) -> String {
        if !self.public.is_empty() {
            self.public.clone()
        } else if !client_host.is_empty() {
            client_host.to_string()
        } else {
            self.local.clone()
        }
    }

    /// For events (every client at once): the public host, else ours.
    pub fn for_events(&self) -> String {
        self.for_client("")
    }
}

pub struct Controller {
    config: Arc<Config>,
    events: Arc<Events>,
    health: Arc<Health>,
    hosts: Hosts,
    api_metrics: ApiMetrics,
    cameras: Arc<CameraManager>,
    media: Arc<MediaService>,
    storage: Arc<Storage>,
    snapshots: Arc<SnapshotManager>,
    external: Arc<ExternalManager>,
    written_now: Arc<media::WrittenNow>,
    /// /proc sampler for `get_metrics`, started with the service.
    sampler: OnceLock<crate::metrics::Sampler>,
    shutdown: Shutdown,
    tasks: Tasks,
    /// Bounds the file-system jobs on the blocking pool (`files.rs`).
    file_workers: async_lock::Semaphore,
}

/// File-system jobs (listing, info, delete, space) running at once on the blocking pool.
const FILE_WORKERS: usize = 4;

impl Controller {
    pub fn new(config: Arc<Config>, shutdown: Shutdown) -> Arc<Controller> {
        let events = Arc::new(Events::new());
        let health = Arc::new(Health::new());
        let cameras = CameraManager::new(
            &config.camera,
            &config.storage.state_dir,
            (config.external_streams.streams.iter()).filter_map(|s| crate::ids::parse_camera_id(&s.id)),
        );
        let written_now = Arc::new(media::WrittenNow::new());
        let storage = Arc::new(Storage::new(
            &config.storage,
            written_now.clone() as Arc<dyn crate::storage::ActiveRecordings>,
        ));
        let media = media::new_media(&config, &events, &storage);
        written_now.attach(&media);
        let snapshots = Arc::new(SnapshotManager::new(config.clone(), media.clone(), storage.clone()));
        let hosts = Hosts::new(&config.mediamtx.public_host);
        let external = ExternalManager::new(config.clone(), cameras.clone(), media.clone(), events.clone());
        Arc::new(Controller {
            config,
            events,
            health,
            hosts,
            api_metrics: ApiMetrics::default(),
            cameras,
            media,
            storage,
            snapshots,
            external,
            written_now,
            sampler: OnceLock::new(),
            shutdown,
            tasks: Tasks::new(),
            file_workers: async_lock::Semaphore::new(FILE_WORKERS),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }
    pub fn api_metrics(&self) -> &ApiMetrics {
        &self.api_metrics
    }
    pub fn cameras(&self) -> &Arc<CameraManager> {
        &self.cameras
    }
    pub fn external(&self) -> &Arc<ExternalManager> {
        &self.external
    }
    /// For front ends outside the core (MAVLink): their loops join the core's on shutdown.
    pub(crate) fn spawn_task(&self, name: &'static str, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(name, f);
    }
    pub(crate) fn shutdown_signal(&self) -> &Shutdown {
        &self.shutdown
    }
    /// Test seam: treat `path` as a segment being written (`pinned = true`) or not.
    #[doc(hidden)]
    pub fn pin_being_written(&self, path: std::path::PathBuf, pinned: bool) {
        let mut set = self.written_now.pinned.lock().unwrap();
        if pinned {
            set.insert(path);
        } else {
            set.remove(&path);
        }
    }

    /// Starts every component in dependency order; resolves once the first camera discovery
    /// pass is done and the status checks ran. Each long-lived loop is kept in `tasks`.
    pub async fn start(self: &Arc<Self>) {
        // Free-space checks and retention.
        self.start_storage();
        // Readiness (and sd_notify READY) waits for the first discovery pass.
        self.start_cameras().await;
        // External streams are cameras too: listed before recordings are read back.
        self.external.start(&self.tasks, self.shutdown.clone()).await;
        self.start_media().await;
        self.start_status().await;
        self.publish_lifecycle(Lifecycle::Startup, "service started");
    }

    /// Announces the stop, stops discovery and recordings, then joins every long-lived task
    /// in reverse start order, bounded by `limit`. Idempotent.
    pub async fn shutdown(&self, limit: Duration) {
        self.shutdown.trigger();
        self.cameras.shutdown().await;
        self.media.recordings().shutdown().await;
        self.media.stop_taps().await;
        self.tasks.join(limit).await;
        if let Some(s) = self.sampler.get() {
            // Wakes at once; the join is immediate.
            s.stop();
        }
    }

    /// Publishes `system.health` when a component change moved the overall status.
    pub fn set_component(&self, name: &'static str, level: Level, message: &str, gates_readiness: bool, ready: bool) {
        if self.health.set(name, level, message, gates_readiness, ready) {
            self.events.publish(Event::Health(self.health_snapshot()));
        }
    }

    pub fn health_snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            overall: self.health.overall(),
            components: self.health.components(),
        }
    }

    pub fn publish_lifecycle(&self, kind: Lifecycle, message: &str) {
        self.events.publish(Event::Lifecycle {
            kind,
            health: self.health_snapshot(),
            message: message.into(),
        });
    }
}

/// Sleeps `d`; true when shutdown came first.
pub(crate) async fn stop_or_sleep(shutdown: &Shutdown, d: Duration) -> bool {
    futures_lite::future::or(
        async {
            shutdown.wait().await;
            true
        },
        async {
            smol::Timer::after(d).await;
            false
        },
    )
    .await
}
