//! Camera discovery: the manager that owns the registry, follows the monitor thread, runs
//! V4L2 probes on the blocking pool and reports changes and health through hooks (the
//! controller turns them into bus events and health components). docs/cameras.md has the
//! design notes.

pub mod devices;
pub mod identity;
pub mod monitor;
pub mod registry;
pub mod settings;
pub mod simulated;
pub mod v4l2;

use crate::config::{CameraConfig, CameraMonitor};
use crate::error::ServiceError;
use identity::{AssignError, CaptureSettings, Identity, IdentityMap};
use monitor::{MonitorHandle, Node, NodeEvent, Source};
use registry::{Camera, Change, ChangeKind, ForgetError, Offer, Offered, Registry, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use time::OffsetDateTime;

/// The discovery component's health, as the manager sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// The first discovery pass finished.
    pub ready: bool,
    /// Running, but with less than asked for (no event source, unprobed nodes, ERROR cameras).
    pub degraded: bool,
    pub message: String,
}

/// Where the manager sends what happens. Called from the manager task; must not block.
pub struct Hooks {
    pub on_change: Box<dyn Fn(&Change) + Send + Sync>,
    pub on_health: Box<dyn Fn(&HealthReport) + Send + Sync>,
}

/// The last camera event, for `get_system_status`.
#[derive(Clone, Debug, PartialEq)]
pub struct LastEvent {
    pub kind: ChangeKind,
    pub device: String,
    pub at: OffsetDateTime,
}

/// A read-only summary for `get_system_status` and health.
#[derive(Clone, Debug)]
pub struct Summary {
    pub first_pass_done: bool,
    pub discovery_active: bool,
    pub source: Option<Source>,
    pub problems: Vec<String>,
    pub last_event: Option<LastEvent>,
    pub total: usize,
    pub connected: Vec<String>,
}

#[derive(Default)]
struct State {
    first_pass_done: bool,
    discovery_active: bool,
    source: Option<Source>,
    fallback_reason: Option<String>,
    /// Nodes present but not probeable (node number → error), not listed as cameras.
    unprobed: BTreeMap<u32, String>,
    last_event: Option<LastEvent>,
    last_health: Option<HealthReport>,
    /// The id map was corrupt at start (the message names the file and where it went).
    map_problem: Option<String>,
    /// The last write of the id map failed.
    save_error: Option<String>,
    /// Capture nodes that got no id (map or id range full): node → why.
    unassigned: BTreeMap<u32, String>,
}

/// What `forget` removed: the listed camera (if it was listed) and the identity key.
#[derive(Clone, Debug)]
pub struct Forgotten {
    pub camera: Option<Camera>,
    pub identity_key: Option<String>,
}

pub struct CameraManager {
    config: CameraConfig,
    registry: RwLock<Registry>,
    state: Mutex<State>,
    monitor: Mutex<Option<MonitorHandle>>,
    task: Mutex<Option<smol::Task<()>>>,
    /// identity → id, loaded by `start`, saved at `map_path` after each change.
    map: Mutex<IdentityMap>,
    map_path: PathBuf,
    /// Serialises map writes so the newest map is the one that lands.
    save_lock: async_lock::Mutex<()>,
    /// Ids V4L2 cameras never get automatically: simulated, configured external, pinned.
    reserved: BTreeSet<u32>,
}

impl CameraManager {
    /// A manager holding the configured simulated cameras; V4L2 discovery (and the id map
    /// in `state_dir`) starts with `start`. `reserved`: ids of configured external streams.
    pub fn new(config: &CameraConfig, state_dir: &Path, reserved: impl IntoIterator<Item = u32>) -> Arc<CameraManager> {
        let mut registry = Registry::new(config.max_cameras);
        let now = OffsetDateTime::now_utc();
        for sim in &config.simulated {
            match simulated::camera(sim, now) {
                Some(c) => registry.add_simulated(c),
                None => log::warn!("simulated camera {:?} skipped: invalid id or size", sim.id),
            }
        }
        let mut reserved: BTreeSet<u32> = reserved.into_iter().collect();
        reserved.extend(
            config
                .simulated
                .iter()
                .filter_map(|s| crate::ids::parse_camera_id(&s.id)),
        );
        reserved.extend(devices::pinned_ids(&config.devices));
        Arc::new(CameraManager {
            config: config.clone(),
            registry: RwLock::new(registry),
            state: Mutex::new(State::default()),
            monitor: Mutex::new(None),
            task: Mutex::new(None),
            map: Mutex::new(IdentityMap::new()),
            map_path: state_dir.join(identity::MAP_FILE),
            save_lock: async_lock::Mutex::new(()),
            reserved,
        })
    }

    /// Reads the id map (on the blocking pool). A corrupt map was moved aside: logged as an
    /// error and kept as a problem of the `cameras` component.
    async fn load_map(&self) {
        let path = self.map_path.clone();
        let (map, problem) = blocking::unblock(move || identity::load(&path)).await;
        if map.is_empty() {
            log::info!("camera id map {}: no known identity yet", self.map_path.display());
        } else {
            log::info!(
                "camera id map {}: {} known identities",
                self.map_path.display(),
                map.len()
            );
        }
        if let Some(p) = &problem {
            log::error!("{p}");
        }
        *self.map.lock().unwrap() = map;
        self.state.lock().unwrap().map_problem = problem;
    }

    /// Writes the id map durably (blocking pool). Failures are logged and shown in health;
    /// the ids in memory stay valid.
    async fn save_map(&self) {
        let _one_at_a_time = self.save_lock.lock().await;
        let text = self.map.lock().unwrap().to_json();
        let path = self.map_path.clone();
        let result = blocking::unblock(move || identity::write_durably(&path, text.as_bytes())).await;
        let mut st = self.state.lock().unwrap();
        match result {
            Ok(()) => st.save_error = None,
            Err(e) => {
                let why = format!("camera id map {} not saved: {e}", self.map_path.display());
                log::error!("{why}");
                st.save_error = Some(why);
            }
        }
    }

    /// Starts the monitor thread and the manager task; resolves once the first discovery
    /// pass (enumeration + probes) is done, or after `camera.first_pass_timeout` (readiness
    /// then keeps waiting for the pass itself).
    pub async fn start(self: &Arc<Self>, hooks: Hooks) {
        let hooks = Arc::new(hooks);
        self.load_map().await;
        let (first_tx, first_rx) = async_channel::bounded::<()>(1);
        if self.config.monitor == CameraMonitor::Off {
            {
                let mut st = self.state.lock().unwrap();
                st.first_pass_done = true;
            }
            log::info!("V4L2 camera discovery is off (camera.monitor = \"off\")");
            self.report_health(&hooks);
            return;
        }
        let (tx, rx) = async_channel::bounded::<NodeEvent>(256);
        match monitor::start(self.config.monitor, self.config.rescan_interval.get(), tx) {
            Ok(handle) => {
                {
                    let mut st = self.state.lock().unwrap();
                    st.source = Some(handle.source);
                    st.fallback_reason = handle.fallback_reason.clone();
                    st.discovery_active = true;
                }
                match &handle.fallback_reason {
                    Some(why) => log::warn!(
                        "camera monitor: {why}; falling back to a rescan every {}",
                        humantime::format_duration(self.config.rescan_interval.get())
                    ),
                    None => log::info!(
                        "camera monitor: {} + rescan every {}",
                        handle.source.describe(),
                        humantime::format_duration(self.config.rescan_interval.get())
                    ),
                }
                *self.monitor.lock().unwrap() = Some(handle);
            }
            Err(e) => {
                log::error!("camera monitor could not start: {e}; no V4L2 discovery");
                let mut st = self.state.lock().unwrap();
                st.first_pass_done = true;
                st.fallback_reason = Some(format!("monitor thread failed to start: {e}"));
                drop(st);
                self.report_health(&hooks);
                return;
            }
        }
        self.report_health(&hooks);
        let me = self.clone();
        let task = smol::spawn(async move { me.run(rx, first_tx, hooks).await });
        *self.task.lock().unwrap() = Some(task);
        let limit = self.config.first_pass_timeout.get();
        let waited = futures_lite::future::or(async { first_rx.recv().await.is_ok() }, async {
            smol::Timer::after(limit).await;
            false
        })
        .await;
        if !waited {
            log::warn!(
                "first camera discovery pass not done after {}; continuing start-up",
                humantime::format_duration(limit)
            );
        }
    }

    /// Stops the monitor thread and the manager task. Idempotent, bounded.
    pub async fn shutdown(&self) {
        let handle = self.monitor.lock().unwrap().take();
        if let Some(mut h) = handle {
            blocking::unblock(move || h.shutdown()).await;
        }
        let task = self.task.lock().unwrap().take();
        if let Some(t) = task {
            t.cancel().await;
        }
        self.state.lock().unwrap().discovery_active = false;
    }

    async fn run(
        self: Arc<Self>,
        rx: async_channel::Receiver<NodeEvent>,
        first: async_channel::Sender<()>,
        hooks: Arc<Hooks>,
    ) {
        while let Ok(ev) = rx.recv().await {
            match ev {
                NodeEvent::Snapshot { nodes, initial } => {
                    let present: BTreeSet<u32> = nodes.iter().map(|n| n.num).collect();
                    let now = OffsetDateTime::now_utc();
                    let gone = self.registry.read().unwrap().vanished(&present);
                    for num in gone {
                        self.gone(num, now, &hooks).await;
                    }
                    {
                        let mut st = self.state.lock().unwrap();
                        st.unprobed.retain(|n, _| present.contains(n));
                        st.unassigned.retain(|n, _| present.contains(n));
                    }
                    for node in nodes {
                        let probe_it = self.registry.read().unwrap().needs_probe(node.num);
                        if probe_it {
                            self.probe(node, &hooks).await;
                        } else {
                            self.registry.write().unwrap().touch(node.num, now);
                        }
                    }
                    if initial {
                        self.state.lock().unwrap().first_pass_done = true;
                        let (total, connected) = self.registry.read().unwrap().counts();
                        log::info!("first camera discovery pass done: {total} camera(s), {connected} connected");
                        let _ = first.try_send(());
                    }
                }
                NodeEvent::Added(node) | NodeEvent::Changed(node) => self.probe(node, &hooks).await,
                NodeEvent::Removed(node) => {
                    {
                        let mut st = self.state.lock().unwrap();
                        st.unprobed.remove(&node.num);
                        st.unassigned.remove(&node.num);
                    }
                    self.gone(node.num, OffsetDateTime::now_utc(), &hooks).await;
                }
            }
            self.report_health(&hooks);
        }
    }

    /// Node `num` went away. If it carried a camera that has another capture node
    /// (secondary), that node is probed at once and takes over.
    async fn gone(&self, num: u32, now: OffsetDateTime, hooks: &Hooks) {
        let change = self.registry.write().unwrap().absent(num, now);
        let Some(c) = change else { return };
        let cam = c.camera.num;
        self.announce(c, hooks);
        let others = self.registry.read().unwrap().secondaries_of(cam);
        for n in others {
            let node = Node {
                num: n,
                devnode: PathBuf::from(format!("/dev/video{n}")),
            };
            self.probe(node, hooks).await;
        }
    }

    /// Probes a node on the blocking pool (capabilities, then identity facts), resolves its
    /// id through the config rules and the id map, and applies the result.
    async fn probe(&self, node: Node, hooks: &Hooks) {
        let path = node.devnode.clone();
        let num = node.num;
        let result = blocking::unblock(move || {
            let p = v4l2::probe(&path)?;
            let facts = identity::read_facts(num, &p.info);
            Ok((p, facts))
        })
        .await;
        let now = OffsetDateTime::now_utc();
        let change = match result {
            Ok((p, facts)) => {
                self.state.lock().unwrap().unprobed.remove(&num);
                let identity = identity::derive(&facts);
                self.offer(node, p, identity, now, hooks).await
            }
            Err(v4l2::ProbeError::NotCapture(info)) => {
                log::debug!(
                    "{} is not a camera ({} {}: {})",
                    node.devnode.display(),
                    info.driver,
                    info.card,
                    info.capabilities.join(",")
                );
                self.state.lock().unwrap().unprobed.remove(&num);
                self.registry.write().unwrap().not_camera(num, now)
            }
            Err(v4l2::ProbeError::Io(e)) if node_gone(&e) => {
                // Gone between the event and the probe; its remove event follows.
                self.registry.write().unwrap().absent(num, now)
            }
            Err(e) => {
                let why = e.to_string();
                log::warn!("cannot probe {}: {why}", node.devnode.display());
                self.state.lock().unwrap().unprobed.insert(num, why.clone());
                self.registry.write().unwrap().failed(num, why, now)
            }
        };
        if let Some(c) = change {
            self.announce(c, hooks);
        }
    }

    /// A probed capture node: config rule, id, registry.
    async fn offer(
        &self,
        node: Node,
        p: v4l2::Probe,
        identity: Identity,
        now: OffsetDateTime,
        hooks: &Hooks,
    ) -> Option<Change> {
        let num = node.num;
        let rule = devices::find(&self.config.devices, &identity, &node.devnode).cloned();
        if rule.as_ref().is_some_and(|r| !r.enabled) {
            log::info!(
                "{} ({}) is disabled in the config ([[camera.devices]]); not a camera",
                node.devnode.display(),
                identity.key
            );
            let mut reg = self.registry.write().unwrap();
            let change = reg.absent(num, now);
            reg.ignore(num);
            return change;
        }
        let pinned = rule.as_ref().and_then(|r| r.pinned());
        let cam = match self.resolve_id(&identity, pinned, &p.info.card).await {
            Ok(n) => {
                self.state.lock().unwrap().unassigned.remove(&num);
                n
            }
            Err(why) => {
                log::warn!("{} ({}) gets no camera id: {why}", node.devnode.display(), identity.key);
                self.state.lock().unwrap().unassigned.insert(num, why);
                return None;
            }
        };
        // The node carried another camera before (its device went and another took the
        // number): that camera is gone.
        let before = self.registry.read().unwrap().camera_at(num);
        if before.is_some_and(|b| b != cam) {
            let change = self.registry.write().unwrap().absent(num, now);
            if let Some(c) = change {
                self.announce(c, hooks);
            }
        }
        let settings = self.map.lock().unwrap().settings_of(&identity.key);
        let offer = self.registry.write().unwrap().present(
            Offered {
                node: num,
                num: cam,
                devnode: node.devnode.clone(),
                probe: p,
                identity: Some(Box::new(identity)),
                name: rule.and_then(|r| r.name),
                settings,
            },
            now,
        );
        match offer {
            Offer::Changed(c) => Some(*c),
            Offer::Unchanged => None,
            Offer::Shadowed => {
                log::warn!(
                    "{} resolved to camera{cam}, a simulated or external camera; node ignored",
                    node.devnode.display()
                );
                None
            }
            Offer::Secondary(primary) => {
                log::info!(
                    "{} is another capture node of camera{cam} (on /dev/video{primary}); not a camera of its own",
                    node.devnode.display()
                );
                None
            }
            Offer::Full => {
                log::warn!(
                    "{} ignored: camera.max_cameras ({}) reached",
                    node.devnode.display(),
                    self.config.max_cameras
                );
                None
            }
        }
    }

    /// The camera number of an identity: pinned by the config, else remembered, else the
    /// next free one (saved before it is used).
    async fn resolve_id(&self, identity: &Identity, pinned: Option<u32>, name: &str) -> Result<u32, String> {
        let stamp = crate::clock::now_rfc3339();
        let (num, changed) = {
            let mut map = self.map.lock().unwrap();
            match pinned {
                Some(n) => {
                    let (changed, displaced) = map.pin(identity, n, name, &stamp);
                    if let Some(k) = displaced {
                        log::warn!(
                            "camera{n} is pinned in the config to {}; forgetting {k}, which had it",
                            identity.key
                        );
                    }
                    (n, changed)
                }
                None => {
                    let reg = self.registry.read().unwrap();
                    let reserved = |n: u32| self.reserved.contains(&n) || reg.is_other_source(n);
                    match map.assign(identity, name, &stamp, self.config.external_id_base, reserved) {
                        Ok(r) => r,
                        Err(AssignError::Full) => {
                            return Err(format!(
                                "the camera id map holds {} identities (the limit); forget_camera frees one",
                                map.len()
                            ))
                        }
                        Err(AssignError::NoFreeId) => {
                            return Err(format!(
                                "no free id below camera.external_id_base ({})",
                                self.config.external_id_base
                            ))
                        }
                    }
                }
            }
        };
        if changed {
            log::info!("camera{num} is {} ({name})", identity.key);
            self.save_map().await;
        }
        Ok(num)
    }

    /// `set_camera_settings`: checks `req` against the camera's modes, merges it onto the
    /// saved settings, saves them with the identity and applies them to the camera's mode.
    /// The change to announce (the caller publishes it and re-applies the publisher).
    pub async fn set_settings(&self, id: &str, req: &CaptureSettings) -> Result<Change, ServiceError> {
        let cam = self.get(id)?;
        if cam.source != registry::SourceType::V4l2 || cam.identity.is_none() {
            return Err(ServiceError::Unsupported {
                feature: "camera_settings",
                details: format!(
                    "{id} is a {} camera; capture settings belong to V4L2 cameras",
                    cam.source.as_str()
                ),
            });
        }
        let base = (cam.settings.format.clone(), cam.resolution, cam.fps);
        let new = settings::apply(&cam.modes, &base, &cam.settings, req).map_err(|e| ServiceError::InvalidParam {
            param: e.param,
            details: e.message,
        })?;
        if !self.map.lock().unwrap().set_settings(cam.num, new.clone()) {
            return Err(ServiceError::Internal(format!(
                "{id} has no entry in the camera id map"
            )));
        }
        self.save_map().await;
        let change = self
            .registry
            .write()
            .unwrap()
            .set_settings(cam.num, new)
            .ok_or_else(|| ServiceError::NotFound {
                resource: "camera",
                id: id.to_string(),
            })?;
        log::info!(
            "{id} capture settings: {}",
            serde_json::to_string(&change.camera.settings).unwrap_or_default()
        );
        self.state.lock().unwrap().last_event = Some(LastEvent {
            kind: change.kind,
            device: id.to_string(),
            at: OffsetDateTime::now_utc(),
        });
        Ok(change)
    }

    /// `forget_camera`: drops a DISCONNECTED V4L2 camera and its identity (id and settings),
    /// so its id may go to another identity. An id only the map knows (not seen since start)
    /// is forgotten too.
    pub async fn forget(&self, id: &str) -> Result<Forgotten, ServiceError> {
        let not_found = || ServiceError::NotFound {
            resource: "camera",
            id: id.to_string(),
        };
        let num = crate::ids::parse_camera_id(id).ok_or_else(not_found)?;
        let removed = self.registry.write().unwrap().forget(num);
        let camera = match removed {
            Ok(c) => Some(c),
            Err(ForgetError::NotFound) => None,
            Err(ForgetError::NotV4l2(src)) => {
                return Err(ServiceError::InvalidState {
                    state: src.as_str().into(),
                    details: format!(
                        "{id} is a {} camera; only V4L2 cameras are remembered by identity",
                        src.as_str()
                    ),
                })
            }
            Err(ForgetError::Present(st)) => {
                return Err(ServiceError::InvalidState {
                    state: st.as_str().to_lowercase(),
                    details: format!("{id} is {}; only a DISCONNECTED camera can be forgotten", st.as_str()),
                })
            }
        };
        let entry = self.map.lock().unwrap().forget(num);
        if camera.is_none() && entry.is_none() {
            return Err(not_found());
        }
        let identity_key = entry.map(|e| e.key);
        log::info!("{id} forgotten ({})", identity_key.as_deref().unwrap_or("no identity"));
        self.save_map().await;
        Ok(Forgotten { camera, identity_key })
    }

    fn announce(&self, change: Change, hooks: &Hooks) {
        log::info!(
            "{} {} ({}, {})",
            change.camera.id,
            match change.kind {
                ChangeKind::Connected => "connected",
                ChangeKind::Disconnected => "disconnected",
                ChangeKind::StatusChange => "changed",
            },
            change.camera.status.as_str(),
            change
                .camera
                .devnode
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string())
        );
        self.state.lock().unwrap().last_event = Some(LastEvent {
            kind: change.kind,
            device: change.camera.id.clone(),
            at: OffsetDateTime::now_utc(),
        });
        (hooks.on_change)(&change);
    }

    fn report_health(&self, hooks: &Hooks) {
        let report = self.health();
        let changed = {
            let mut st = self.state.lock().unwrap();
            let changed = st.last_health.as_ref() != Some(&report);
            st.last_health = Some(report.clone());
            changed
        };
        if changed {
            (hooks.on_health)(&report);
        }
    }

    /// The `cameras` health component now.
    pub fn health(&self) -> HealthReport {
        let s = self.summary();
        let source = match (self.config.monitor, s.source) {
            (CameraMonitor::Off, _) => "V4L2 discovery off".to_string(),
            (_, Some(src)) => format!(
                "{} + rescan every {}",
                src.describe(),
                humantime::format_duration(self.config.rescan_interval.get())
            ),
            (_, None) => "no V4L2 discovery".to_string(),
        };
        let mut message = if s.first_pass_done {
            format!("{} camera(s), {} connected; {source}", s.total, s.connected.len())
        } else {
            format!("discovering cameras; {source}")
        };
        if !s.problems.is_empty() {
            message.push_str("; ");
            message.push_str(&s.problems.join("; "));
        }
        HealthReport {
            ready: s.first_pass_done,
            degraded: !s.problems.is_empty(),
            message,
        }
    }

    pub fn summary(&self) -> Summary {
        let (cams, (total, _)) = {
            let r = self.registry.read().unwrap();
            (r.list(), r.counts())
        };
        let st = self.state.lock().unwrap();
        let mut problems = Vec::new();
        if let Some(why) = &st.fallback_reason {
            problems.push(why.clone());
        }
        problems.extend(st.map_problem.iter().chain(st.save_error.iter()).cloned());
        if !st.unassigned.is_empty() {
            problems.push(format!(
                "{} capture node(s) got no camera id ({})",
                st.unassigned.len(),
                st.unassigned
                    .iter()
                    .map(|(n, e)| format!("video{n}: {e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !st.unprobed.is_empty() {
            problems.push(format!(
                "{} video node(s) could not be probed ({})",
                st.unprobed.len(),
                st.unprobed
                    .iter()
                    .map(|(n, e)| format!("video{n}: {e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let errors: Vec<&str> = cams
            .iter()
            .filter(|c| c.status == Status::Error)
            .map(|c| c.id.as_str())
            .collect();
        if !errors.is_empty() {
            problems.push(format!("camera(s) in ERROR: {}", errors.join(", ")));
        }
        Summary {
            first_pass_done: st.first_pass_done,
            discovery_active: st.discovery_active,
            source: st.source,
            problems,
            last_event: st.last_event.clone(),
            total,
            connected: cams
                .iter()
                .filter(|c| c.status == Status::Connected)
                .map(|c| c.id.clone())
                .collect(),
        }
    }

    pub fn list(&self) -> Vec<Camera> {
        self.registry.read().unwrap().list()
    }

    /// The camera `id` (already validated as `cameraN`), or NotFound.
    pub fn get(&self, id: &str) -> Result<Camera, ServiceError> {
        crate::ids::parse_camera_id(id)
            .and_then(|n| self.registry.read().unwrap().get(n).cloned())
            .ok_or_else(|| ServiceError::NotFound {
                resource: "camera",
                id: id.to_string(),
            })
    }
}

impl CameraManager {
    /// Adds an external stream camera (see `Registry::add_external`).
    pub fn add_external(&self, camera: Camera) -> bool {
        self.registry.write().unwrap().add_external(camera)
    }

    pub fn remove_external(&self, id: &str) -> Option<Camera> {
        let num = crate::ids::parse_camera_id(id)?;
        self.registry.write().unwrap().remove_external(num)
    }

    /// Applies a liveness result of an external stream; the change to announce, if any
    /// (the caller announces it: external streams are not followed by the manager task).
    pub fn external_status(&self, id: &str, alive: bool, size: Option<(u32, u32)>) -> Option<Change> {
        let num = crate::ids::parse_camera_id(id)?;
        let now = OffsetDateTime::now_utc();
        let change = self.registry.write().unwrap().external_status(num, alive, size, now)?;
        self.state.lock().unwrap().last_event = Some(LastEvent {
            kind: change.kind,
            device: change.camera.id.clone(),
            at: now,
        });
        Some(change)
    }

    /// Numbers of every listed camera.
    pub fn numbers(&self) -> BTreeSet<u32> {
        self.registry.read().unwrap().list().iter().map(|c| c.num).collect()
    }
}

/// The node vanished between its event and the probe.
fn node_gone(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|c| {
        [Errno::ENOENT, Errno::ENODEV, Errno::ENXIO]
            .iter()
            .any(|x| *x as i32 == c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::time::Duration;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text, Vec::<(String, String)>::new()).unwrap()
    }

    #[test]
    fn config_keys_have_defaults_and_named_errors() {
        let c = config("");
        assert_eq!(c.camera.monitor, CameraMonitor::Auto);
        assert_eq!(c.camera.rescan_interval.get(), Duration::from_secs(5));
        let c = config("[camera]\nmonitor = \"kernel\"\nrescan_interval = \"500ms\"\n");
        assert_eq!(c.camera.monitor, CameraMonitor::Kernel);
        let e = Config::from_toml_str("[camera]\nmonitor = \"inotify\"\n", Vec::<(String, String)>::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("camera.monitor"), "{e}");
        let e = Config::from_toml_str("[camera]\nrescan_interval = \"1ms\"\n", Vec::<(String, String)>::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("camera.rescan_interval: must be between"), "{e}");
    }

    #[test]
    fn device_rules_are_read_and_checked_with_the_config() {
        let c = config(
            "[[camera.devices]]\nserial = \"SN1\"\nid = \"camera3\"\nname = \"Front\"\n\n[[camera.devices]]\nnode = \"/dev/video4\"\nenabled = false\n",
        );
        assert_eq!(c.camera.devices.len(), 2);
        assert_eq!(devices::pinned_ids(&c.camera.devices), [3].into_iter().collect());
        assert!(!c.camera.devices[1].enabled);
        let e = Config::from_toml_str(
            "[[camera.simulated]]\nid = \"camera3\"\n\n[[camera.devices]]\nserial = \"SN1\"\nid = \"camera3\"\n\n[[camera.devices]]\nport_path = \"x\"\nnode = \"/dev/video1\"\n",
            Vec::<(String, String)>::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("camera.devices[0].id: must not be the id of a simulated camera"),
            "{e}"
        );
        assert!(e.contains("camera.devices[1]: must set exactly one of"), "{e}");
        let e = Config::from_toml_str("[[camera.devices]]\nusb = \"x\"\n", Vec::<(String, String)>::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("usb"), "unknown keys are refused: {e}");
    }
}
