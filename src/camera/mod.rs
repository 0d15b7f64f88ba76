//! Camera discovery: the manager that owns the registry, follows the monitor thread, runs
//! V4L2 probes on the blocking pool and reports changes and health through hooks (the
//! controller turns them into bus events and health components). docs/cameras.md has the
//! design notes.

pub mod monitor;
pub mod registry;
pub mod simulated;
pub mod v4l2;

use crate::config::{CameraConfig, CameraMonitor};
use crate::error::ServiceError;
use monitor::{MonitorHandle, Node, NodeEvent, Source};
use registry::{Camera, Change, ChangeKind, Offer, Registry, Status};
use std::collections::{BTreeMap, BTreeSet};
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
}

pub struct CameraManager {
    config: CameraConfig,
    registry: RwLock<Registry>,
    state: Mutex<State>,
    monitor: Mutex<Option<MonitorHandle>>,
    task: Mutex<Option<smol::Task<()>>>,
}

impl CameraManager {
    /// A manager holding the configured simulated cameras; V4L2 discovery starts with `start`.
    pub fn new(config: &CameraConfig) -> Arc<CameraManager> {
        let mut registry = Registry::new(config.max_cameras);
        let now = OffsetDateTime::now_utc();
        for sim in &config.simulated {
            match simulated::camera(sim, now) {
                Some(c) => registry.add_simulated(c),
                None => log::warn!("simulated camera {:?} skipped: invalid id or size", sim.id),
            }
        }
        Arc::new(CameraManager {
            config: config.clone(),
            registry: RwLock::new(registry),
            state: Mutex::new(State::default()),
            monitor: Mutex::new(None),
            task: Mutex::new(None),
        })
    }

    /// Starts the monitor thread and the manager task; resolves once the first discovery
    /// pass (enumeration + probes) is done, or after `camera.first_pass_timeout` (readiness
    /// then keeps waiting for the pass itself).
    pub async fn start(self: &Arc<Self>, hooks: Hooks) {
        let hooks = Arc::new(hooks);
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
                        self.gone(num, now, &hooks);
                    }
                    self.state.lock().unwrap().unprobed.retain(|n, _| present.contains(n));
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
                    self.state.lock().unwrap().unprobed.remove(&node.num);
                    self.gone(node.num, OffsetDateTime::now_utc(), &hooks);
                }
            }
            self.report_health(&hooks);
        }
    }

    fn gone(&self, num: u32, now: OffsetDateTime, hooks: &Hooks) {
        let change = self.registry.write().unwrap().absent(num, now);
        if let Some(c) = change {
            self.announce(c, hooks);
        }
    }

    /// Probes a node on the blocking pool and applies the result.
    async fn probe(&self, node: Node, hooks: &Hooks) {
        let path = node.devnode.clone();
        let result = blocking::unblock(move || v4l2::probe(&path)).await;
        let now = OffsetDateTime::now_utc();
        let num = node.num;
        let change = match result {
            Ok(p) => {
                self.state.lock().unwrap().unprobed.remove(&num);
                let offer = self
                    .registry
                    .write()
                    .unwrap()
                    .present(num, node.devnode.clone(), p, now);
                match offer {
                    Offer::Changed(c) => Some(*c),
                    Offer::Unchanged => None,
                    Offer::Shadowed => {
                        log::warn!(
                            "{} is a capture node but camera{num} is a simulated camera in the config; node ignored",
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
}
