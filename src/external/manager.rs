//! The external stream manager (api.md §11): add/remove/list external RTSP
//! streams as cameras, their liveness checks, and discovery scans (on demand and periodic).
//!
//! Liveness of an external stream (`camera.connected` / `camera.disconnected`): every
//! `external_streams.health_interval`, its MediaMTX path is read; `available` with growing
//! `inboundBytes` means alive. The paths use `sourceOnDemand: true`, so nothing flows while
//! nobody reads; then the source URL itself is asked with one RTSP `DESCRIBE` (no SETUP/PLAY,
//! no media pulled): 200 with video (or 401: the server is up and guards the path) = alive.
//! `external_streams.offline_after` failed checks in a row turn a connected stream
//! DISCONNECTED; one good check connects it.

use super::scan::{self, ScanReport, ScanSpec};
use super::{redact_url, scrub, AddError, ExternalStore, ExternalStream, Origin, SourceUrl, StreamType};
use crate::camera::registry::{Camera, Change, ChangeKind, SourceType, Status};
use crate::camera::v4l2::DeviceInfo;
use crate::camera::CameraManager;
use crate::config::Config;
use crate::error::ServiceError;
use crate::events::{Event, Events};
use crate::media::service::MediaService;
use crate::mediamtx::client::MtxError;
use crate::mediamtx::paths::Publisher;
use crate::shutdown::Shutdown;
use crate::tasks::Tasks;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A scan result younger than this is returned again unless `force_rescan`.
const SCAN_CACHE: Duration = Duration::from_secs(10);
/// `set_discovery_interval` bounds (seconds; 0 = off).
pub const MIN_SCAN_INTERVAL: i64 = 5;
pub const MAX_SCAN_INTERVAL: i64 = 7 * 86400;

/// The last scan: when, with which profiles (skydio, generic), its result.
type LastScan = Option<(Instant, (bool, bool), DiscoveryResult)>;

#[derive(Default)]
struct Live {
    inbound: Option<u64>,
    failures: u32,
}

/// The external stream manager: external RTSP streams as cameras, their liveness state
/// machine, and discovery scans. Owns its state; its two loops run until shutdown.
pub struct ExternalManager {
    config: Arc<Config>,
    cameras: Arc<CameraManager>,
    media: Arc<MediaService>,
    events: Arc<Events>,
    store: OnceLock<ExternalStore>,
    live: Mutex<HashMap<String, Live>>,
    scan_lock: async_lock::Mutex<()>,
    last_scan: Mutex<LastScan>,
    wake_health: (async_channel::Sender<()>, async_channel::Receiver<()>),
    wake_discovery: (async_channel::Sender<()>, async_channel::Receiver<()>),
}

/// An external stream's camera status (`UNKNOWN` when it is not listed as a camera).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExternalStatus {
    Connected,
    Disconnected,
    Error,
    Unknown,
}

impl From<Option<Status>> for ExternalStatus {
    fn from(s: Option<Status>) -> ExternalStatus {
        match s {
            Some(Status::Connected) => ExternalStatus::Connected,
            Some(Status::Disconnected) => ExternalStatus::Disconnected,
            Some(Status::Error) => ExternalStatus::Error,
            None => ExternalStatus::Unknown,
        }
    }
}

/// One entry of `get_external_streams`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ExternalStreamView {
    pub device: String,
    /// Credentials redacted.
    pub stream_url: String,
    pub stream_name: String,
    pub stream_type: StreamType,
    pub status: ExternalStatus,
    pub source_type: SourceType,
    pub origin: Origin,
    pub added_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ExternalStreams {
    pub external_streams: Vec<ExternalStreamView>,
    pub skydio_streams: Vec<ExternalStreamView>,
    pub generic_streams: Vec<ExternalStreamView>,
    pub total_count: usize,
    pub timestamp: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeStatus {
    Added,
    Removed,
    Updated,
}

/// `add_external_stream`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ExternalAdded {
    pub device: String,
    pub stream_url: String,
    pub stream_name: String,
    pub stream_type: StreamType,
    pub status: ChangeStatus,
    pub timestamp: String,
}

/// `remove_external_stream`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ExternalRemoved {
    pub stream_url: String,
    pub device: String,
    pub status: ChangeStatus,
    pub timestamp: String,
}

/// One stream found by a scan.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct DiscoveredStream {
    pub stream_url: String,
    pub stream_type: StreamType,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub codec: Option<String>,
    pub suggested_name: String,
    /// The camera id when the stream is (now) added.
    pub device: Option<String>,
    pub added: bool,
}

/// `discover_external_streams`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct DiscoveryResult {
    pub discovered_streams: Vec<DiscoveredStream>,
    pub skydio_streams: Vec<DiscoveredStream>,
    pub generic_streams: Vec<DiscoveredStream>,
    pub scan_timestamp: String,
    pub total_found: usize,
    /// Seconds.
    pub scan_duration: f64,
    pub addresses_scanned: usize,
    pub endpoints_probed: usize,
    pub errors: Vec<String>,
    /// Present (true) when the result of a scan younger than 10 s was returned again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

/// `set_discovery_interval`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct DiscoveryInterval {
    pub scan_interval: u64,
    pub status: ChangeStatus,
    pub message: String,
    pub timestamp: String,
}

fn camera_of(s: &ExternalStream) -> Option<Camera> {
    Some(Camera {
        num: crate::ids::parse_camera_id(&s.device)?,
        id: s.device.clone(),
        source: SourceType::Rtsp,
        devnode: None,
        identity: None,
        settings: Default::default(),
        pattern: None,
        source_url: Some(SourceUrl::new(s.url.clone())),
        status: Status::Disconnected,
        name: s.name.clone(),
        resolution: (0, 0),
        fps: 0,
        info: DeviceInfo {
            driver: "rtsp".into(),
            card: s.stream_type.as_str().into(),
            bus_info: s.redacted_url(),
            capabilities: vec!["video_capture".into(), "streaming".into()],
        },
        modes: Vec::new(),
        last_seen: OffsetDateTime::now_utc(),
        error: None,
    })
}

fn disabled() -> ServiceError {
    ServiceError::Unsupported {
        feature: "external_streams",
        details: "external streams are disabled (external_streams.enabled = false)".into(),
    }
}

fn stream_view(s: &ExternalStream, status: Option<Status>) -> ExternalStreamView {
    ExternalStreamView {
        device: s.device.clone(),
        stream_url: s.redacted_url(),
        stream_name: s.name.clone(),
        stream_type: s.stream_type,
        status: status.into(),
        source_type: SourceType::Rtsp,
        origin: s.origin,
        added_at: s.added_at.clone(),
    }
}

/// Name given to a stream found by a scan and added automatically.
fn auto_name(f: &scan::Found) -> String {
    let kind = match f.stream_type {
        StreamType::SkydioEo => "Skydio EO",
        StreamType::SkydioIr => "Skydio IR",
        StreamType::GenericRtsp => "RTSP",
    };
    format!("{kind} {}:{}{}", f.host, f.port, f.path)
}

impl ExternalManager {
    pub fn new(
        config: Arc<Config>,
        cameras: Arc<CameraManager>,
        media: Arc<MediaService>,
        events: Arc<Events>,
    ) -> Arc<ExternalManager> {
        Arc::new(ExternalManager {
            config,
            cameras,
            media,
            events,
            store: OnceLock::new(),
            live: Mutex::new(HashMap::new()),
            scan_lock: async_lock::Mutex::new(()),
            last_scan: Mutex::new(None),
            wake_health: async_channel::bounded(1),
            wake_discovery: async_channel::bounded(1),
        })
    }

    /// Runs a store operation that writes the state file on the blocking pool.
    async fn on_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&ExternalStore) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let me = self.clone();
        blocking::unblock(move || me.ext_store().map(f)).await
    }

    fn ext_store(&self) -> Result<&ExternalStore, ServiceError> {
        if !self.config.external_streams.enabled {
            return Err(disabled());
        }
        self.store
            .get()
            .ok_or_else(|| ServiceError::Internal("external streams not started".into()))
    }

    /// Loads configured and persisted external streams as cameras (DISCONNECTED until their
    /// first check), creates their MediaMTX paths, and starts the liveness checks and the
    /// periodic discovery. Must run before `start_media` (which reads recordings back for
    /// every camera).
    pub async fn start(self: &Arc<Self>, tasks: &Tasks, shutdown: Shutdown) {
        let cfg = &self.config.external_streams;
        if !cfg.enabled {
            log::info!("external streams are disabled (external_streams.enabled = false)");
            return;
        }
        let configured: Vec<ExternalStream> = cfg
            .streams
            .iter()
            .map(|s| ExternalStream {
                device: s.id.clone(),
                url: s.url.clone(),
                name: if s.name.trim().is_empty() {
                    s.id.clone()
                } else {
                    s.name.clone()
                },
                stream_type: s.stream_type,
                origin: Origin::Config,
                added_at: crate::clock::now_rfc3339(),
            })
            .collect();
        let mut taken = self.cameras.numbers();
        taken.retain(|n| {
            !configured
                .iter()
                .any(|c| crate::ids::parse_camera_id(&c.device) == Some(*n))
        });
        let (dir, base) = (
            self.config.storage.state_dir.clone(),
            self.config.camera.external_id_base,
        );
        // Reading (and, for a migrated file, rewriting) the store is file-system work.
        let (store, warnings) = blocking::unblock(move || ExternalStore::load(&dir, configured, &taken, base)).await;
        for w in warnings {
            log::warn!("external streams: {w}");
        }
        let streams = store.list();
        let _ = self.store.set(store);
        for s in &streams {
            if camera_of(s).is_some_and(|c| self.cameras.add_external(c)) {
                log::info!(
                    "{}: external stream {} ({})",
                    s.device,
                    s.redacted_url(),
                    s.stream_type.as_str()
                )
            } else {
                log::warn!(
                    "{}: external stream {} not listed: id taken or camera.max_cameras reached",
                    s.device,
                    s.redacted_url()
                );
            }
        }
        let me = self.clone();
        tasks.spawn("external-paths", async move {
            for s in streams {
                me.ensure_external_path(&s).await;
            }
        });
        let me = self.clone();
        let sd = shutdown.clone();
        tasks.spawn("external-health", async move { me.external_health_loop(sd).await });
        let me = self.clone();
        tasks.spawn("external-discovery", async move { me.discovery_loop(shutdown).await });
    }

    async fn ensure_external_path(&self, s: &ExternalStream) {
        let p = Publisher::Url { url: s.url.clone() };
        if let Err(e) = self.media.paths().ensure(&s.device, p).await {
            log::warn!(
                "{}: cannot create its MediaMTX path yet (retried by the MediaMTX health probe): {}",
                s.device,
                scrub(&e.to_string(), &s.url)
            );
        }
    }

    fn announce_external(self: &Arc<Self>, change: &Change, removed: bool) {
        let c = &change.camera;
        let what = match change.kind {
            ChangeKind::Connected => "connected",
            ChangeKind::Disconnected => "disconnected",
            ChangeKind::StatusChange => "changed",
        };
        let url = c.source_url.as_ref().map(SourceUrl::redacted).unwrap_or_default();
        log::info!("{} {what} (external {url}, {})", c.id, c.resolution_text());
        self.events.publish(Event::Camera {
            kind: change.kind,
            camera: c.clone(),
            removed,
        });
        if change.kind == ChangeKind::Connected {
            if let Some(s) = self.store.get().and_then(|st| st.by_device(&c.id)) {
                let me = self.clone();
                smol::spawn(async move { me.ensure_external_path(&s).await }).detach();
            }
        }
    }

    async fn external_health_loop(self: Arc<Self>, shutdown: Shutdown) {
        let every = self.config.external_streams.health_interval.get();
        loop {
            let cams: Vec<Camera> = self
                .cameras
                .list()
                .into_iter()
                .filter(|c| c.source == SourceType::Rtsp)
                .collect();
            let checks = cams.into_iter().map(|c| {
                let me = self.clone();
                async move { me.check_external(c).await }
            });
            futures_util::future::join_all(checks).await;
            let woken = futures_lite::future::or(
                async {
                    shutdown.wait().await;
                    None
                },
                futures_lite::future::or(
                    async {
                        smol::Timer::after(every).await;
                        Some(())
                    },
                    async {
                        let _ = self.wake_health.1.recv().await;
                        Some(())
                    },
                ),
            )
            .await;
            if woken.is_none() {
                return;
            }
        }
    }

    /// One liveness check (module docs).
    async fn check_external(self: &Arc<Self>, cam: Camera) {
        let Some(url) = cam.source_url.as_ref().map(|u| u.expose().to_string()) else {
            return;
        };
        let (mut alive, size) = match self.media.paths().runtime(&cam.id).await {
            Ok(Some(p)) => {
                let prev = self.live.lock().unwrap().get(&cam.id).and_then(|l| l.inbound);
                self.live.lock().unwrap().entry(cam.id.clone()).or_default().inbound = Some(p.inbound_bytes);
                let flowing = p.available && prev.is_none_or_less(p.inbound_bytes);
                let size = p.video().and_then(|(_, w, h)| Some((w?, h?)));
                (flowing, size)
            }
            _ => (false, None),
        };
        if !alive {
            let timeout = self.config.external_streams.probe_timeout.get();
            let u = url.clone();
            alive = match blocking::unblock(move || scan::source_alive(&u, timeout)).await {
                Ok(a) => a,
                Err(e) => {
                    log::debug!("{}: source probe: {}", cam.id, scrub(&e, &url));
                    false
                }
            };
        }
        let report = {
            let mut live = self.live.lock().unwrap();
            let l = live.entry(cam.id.clone()).or_default();
            if alive {
                l.failures = 0;
                true
            } else {
                l.failures = l.failures.saturating_add(1);
                cam.status != Status::Connected || l.failures >= self.config.external_streams.offline_after
            }
        };
        if !report {
            return;
        }
        if let Some(change) = self.cameras.external_status(&cam.id, alive, size) {
            self.announce_external(&change, false);
        }
    }

    // ---- API operations ----

    pub async fn add_external_stream(
        self: &Arc<Self>,
        url: &str,
        name: &str,
        stream_type: StreamType,
    ) -> Result<ExternalAdded, ServiceError> {
        self.ext_store()?;
        super::validate_url(url).map_err(|details| ServiceError::InvalidParam {
            param: "stream_url",
            details,
        })?;
        let s = self.add_external(url, name, stream_type, Origin::Api).await?;
        Ok(ExternalAdded {
            stream_url: s.redacted_url(),
            device: s.device,
            stream_name: s.name,
            stream_type: s.stream_type,
            status: ChangeStatus::Added,
            timestamp: crate::clock::now_rfc3339(),
        })
    }

    async fn add_external(
        self: &Arc<Self>,
        url: &str,
        name: &str,
        stream_type: StreamType,
        origin: Origin,
    ) -> Result<ExternalStream, ServiceError> {
        let taken = self.cameras.numbers();
        let base = self.config.camera.external_id_base;
        let (u, n) = (url.to_string(), name.to_string());
        let s = self
            .on_store(move |st| st.add(&u, &n, stream_type, origin, base, &taken))
            .await?
            .map_err(|e| match e {
                AddError::Duplicate(d) => ServiceError::InvalidState {
                    state: "duplicate".into(),
                    details: format!("this stream URL is already added as {d}"),
                },
                AddError::NoFreeId => ServiceError::InvalidState {
                    state: "full".into(),
                    details: "no free camera id".into(),
                },
                AddError::Persist(e) => ServiceError::Internal(e),
            })?;
        let listed = camera_of(&s).is_some_and(|c| self.cameras.add_external(c));
        if !listed {
            let u = url.to_string();
            let _ = self.on_store(move |st| st.remove(&u)).await;
            return Err(ServiceError::InvalidState {
                state: "full".into(),
                details: format!("camera.max_cameras ({}) reached", self.config.camera.max_cameras),
            });
        }
        log::info!(
            "{}: external stream {} added ({}, {})",
            s.device,
            s.redacted_url(),
            s.stream_type.as_str(),
            origin.as_str()
        );
        self.ensure_external_path(&s).await;
        let _ = self.wake_health.0.try_send(());
        Ok(s)
    }

    pub async fn remove_external_stream(self: &Arc<Self>, url: &str) -> Result<ExternalRemoved, ServiceError> {
        let store = self.ext_store()?;
        super::validate_url(url).map_err(|details| ServiceError::InvalidParam {
            param: "stream_url",
            details,
        })?;
        let s = store.by_url(url).ok_or_else(|| ServiceError::NotFound {
            resource: "stream",
            id: redact_url(url),
        })?;
        if s.origin == Origin::Config {
            return Err(ServiceError::InvalidState {
                state: "configured".into(),
                details: format!(
                    "{} is defined in the config file ([[external_streams.streams]]); remove it there",
                    s.device
                ),
            });
        }
        if self.media.recordings().is_recording(&s.device) {
            if let Err(e) = self.media.stop_recording(&s.device).await {
                log::warn!("{}: stopping its recording before removal: {e}", s.device);
            }
        }
        let u = url.to_string();
        self.on_store(move |st| st.remove(&u))
            .await?
            .map_err(ServiceError::Internal)?;
        match self.media.paths().remove(&s.device).await {
            Ok(()) | Err(MtxError::NotFound(_)) => {}
            Err(e) => log::warn!(
                "{}: MediaMTX path not deleted ({}); it goes with MediaMTX's next restart",
                s.device,
                scrub(&e.to_string(), url)
            ),
        }
        self.live.lock().unwrap().remove(&s.device);
        if let Some(mut cam) = self.cameras.remove_external(&s.device) {
            cam.status = Status::Disconnected;
            let change = Change {
                kind: ChangeKind::Disconnected,
                camera: cam,
            };
            self.announce_external(&change, true);
        }
        log::info!("{}: external stream {} removed", s.device, s.redacted_url());
        Ok(ExternalRemoved {
            stream_url: s.redacted_url(),
            device: s.device,
            status: ChangeStatus::Removed,
            timestamp: crate::clock::now_rfc3339(),
        })
    }

    pub fn external_streams(&self) -> Result<ExternalStreams, ServiceError> {
        let store = self.ext_store()?;
        let list: Vec<(ExternalStream, Option<Status>)> = store
            .list()
            .into_iter()
            .map(|s| {
                let st = self.cameras.get(&s.device).ok().map(|c| c.status);
                (s, st)
            })
            .collect();
        let pick = |skydio: bool| -> Vec<ExternalStreamView> {
            list.iter()
                .filter(|(s, _)| s.stream_type.is_skydio() == skydio)
                .map(|(s, st)| stream_view(s, *st))
                .collect()
        };
        Ok(ExternalStreams {
            external_streams: list.iter().map(|(s, st)| stream_view(s, *st)).collect(),
            skydio_streams: pick(true),
            generic_streams: pick(false),
            total_count: list.len(),
            timestamp: crate::clock::now_rfc3339(),
        })
    }

    pub async fn discover_external_streams(
        self: &Arc<Self>,
        skydio: Option<bool>,
        generic: Option<bool>,
        force: bool,
    ) -> Result<DiscoveryResult, ServiceError> {
        self.ext_store()?;
        let d = &self.config.discovery;
        let flags = (skydio.unwrap_or(d.skydio), generic.unwrap_or(d.generic));
        let _guard = self.scan_lock.lock().await;
        if !force {
            if let Some((at, f, v)) = self.last_scan.lock().unwrap().as_ref() {
                if *f == flags && at.elapsed() < SCAN_CACHE {
                    let mut v = v.clone();
                    v.cached = Some(true);
                    return Ok(v);
                }
            }
        }
        let v = self.run_scan(flags).await;
        *self.last_scan.lock().unwrap() = Some((Instant::now(), flags, v.clone()));
        Ok(v)
    }

    async fn run_scan(self: &Arc<Self>, (skydio, generic): (bool, bool)) -> DiscoveryResult {
        let d = &self.config.discovery;
        let spec = ScanSpec {
            hosts: d.hosts.clone(),
            cidrs: d.cidrs.clone(),
            generic: generic.then(|| (d.ports.clone(), d.paths.clone())),
            skydio: skydio.then_some((d.skydio_eo_port, d.skydio_ir_port)),
            timeout: d.probe_timeout.get(),
            concurrency: d.concurrency,
            max_addresses: d.max_addresses,
        };
        let scan_timestamp = crate::clock::now_rfc3339();
        let report: ScanReport = if d.hosts.is_empty() && d.cidrs.is_empty() {
            ScanReport {
                found: Vec::new(),
                errors: vec!["nothing to scan: discovery.hosts and discovery.cidrs are empty".into()],
                addresses: 0,
                endpoints: 0,
                duration: Duration::ZERO,
            }
        } else {
            blocking::unblock(move || scan::scan(&spec)).await
        };
        log::info!(
            "discovery scan: {} stream(s) on {} address(es), {} endpoint(s) in {:.2}s",
            report.found.len(),
            report.addresses,
            report.endpoints,
            report.duration.as_secs_f64()
        );
        let mut errors = report.errors.clone();
        let mut found = Vec::new();
        for f in &report.found {
            let mut device = self.store.get().and_then(|st| st.by_url(&f.url)).map(|s| s.device);
            if device.is_none() && d.auto_add && self.store.get().is_some() {
                match self
                    .add_external(&f.url, &auto_name(f), f.stream_type, Origin::Discovery)
                    .await
                {
                    Ok(s) => device = Some(s.device),
                    Err(e) => errors.push(format!("{}: not added: {e}", f.url)),
                }
            }
            found.push(DiscoveredStream {
                stream_url: f.url.clone(),
                stream_type: f.stream_type,
                host: f.host.to_string(),
                port: f.port,
                path: f.path.clone(),
                codec: f.codec.clone(),
                suggested_name: auto_name(f),
                added: device.is_some(),
                device,
            });
        }
        let pick = |skydio: bool| -> Vec<DiscoveredStream> {
            found
                .iter()
                .filter(|v| v.stream_type.is_skydio() == skydio)
                .cloned()
                .collect()
        };
        DiscoveryResult {
            skydio_streams: pick(true),
            generic_streams: pick(false),
            scan_timestamp,
            total_found: found.len(),
            discovered_streams: found,
            scan_duration: report.duration.as_secs_f64(),
            addresses_scanned: report.addresses,
            endpoints_probed: report.endpoints,
            errors,
            cached: None,
        }
    }

    /// The background scan period in seconds (0 = off): `set_discovery_interval`'s value,
    /// else `discovery.interval`.
    fn scan_interval(&self) -> u64 {
        self.store
            .get()
            .and_then(ExternalStore::discovery_interval)
            .unwrap_or_else(|| self.config.discovery.interval.get().as_secs())
    }

    pub async fn set_discovery_interval(self: &Arc<Self>, secs: u64) -> Result<DiscoveryInterval, ServiceError> {
        self.on_store(move |st| st.set_discovery_interval(secs))
            .await?
            .map_err(ServiceError::Internal)?;
        let _ = self.wake_discovery.0.try_send(());
        let message = if secs == 0 {
            "periodic discovery is off".to_string()
        } else {
            format!("discovery scans every {secs} s")
        };
        log::info!("{message} (set_discovery_interval)");
        Ok(DiscoveryInterval {
            scan_interval: secs,
            status: ChangeStatus::Updated,
            message,
            timestamp: crate::clock::now_rfc3339(),
        })
    }

    async fn discovery_loop(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            let secs = self.scan_interval();
            let timer = async move {
                if secs == 0 {
                    futures_lite::future::pending::<()>().await;
                }
                smol::Timer::after(Duration::from_secs(secs)).await;
                true
            };
            let woken = futures_lite::future::or(
                async {
                    shutdown.wait().await;
                    None
                },
                futures_lite::future::or(async { Some(timer.await) }, async {
                    let _ = self.wake_discovery.1.recv().await;
                    Some(false)
                }),
            )
            .await;
            match woken {
                None => return,
                Some(false) => continue,
                Some(true) => {
                    let d = &self.config.discovery;
                    let flags = (d.skydio, d.generic);
                    let _guard = self.scan_lock.lock().await;
                    let v = self.run_scan(flags).await;
                    *self.last_scan.lock().unwrap() = Some((Instant::now(), flags, v));
                }
            }
        }
    }
}

/// `None` or strictly below `n`: no previous reading counts as growth.
trait NoneOrLess {
    fn is_none_or_less(&self, n: u64) -> bool;
}

impl NoneOrLess for Option<u64> {
    fn is_none_or_less(&self, n: u64) -> bool {
        self.map_or(true, |p| p < n)
    }
}
