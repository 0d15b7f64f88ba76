//! The camera registry: `cameraN` ↔ source, and the status state machine
//!
//! ```text
//!   (new node, capture) ──► CONNECTED ──(node gone)──► DISCONNECTED ──(node back)──► CONNECTED
//!                              │  ▲                                                  (camera.connected)
//!              (probe failed)  ▼  │ (probe ok: camera.status_change)
//!                              ERROR ──(node gone)──► DISCONNECTED
//! ```
//!
//! A V4L2 camera's number comes from its identity (`identity.rs`), not from its node: the
//! registry keeps which node each present camera is on now (`nodes`), so a camera that
//! comes back on another node is the same entry. A second capture node of a camera that is
//! already connected through another node (same identity) is a *secondary* node: not a
//! camera of its own, used again if the primary node goes away.
//!
//! Pure data: no I/O, no clock of its own (`now` is passed in), so every transition is unit
//! tested. Disconnected cameras stay listed until the process ends or an admin forgets them.

use super::identity::{CaptureSettings, Identity};
use super::v4l2::{DeviceInfo, Mode, Probe};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Connected,
    Disconnected,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "CONNECTED",
            Status::Disconnected => "DISCONNECTED",
            Status::Error => "ERROR",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    V4l2,
    Simulated,
    /// An external RTSP/RTSPS stream pulled by MediaMTX (src/external.rs).
    Rtsp,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::V4l2 => "v4l2",
            SourceType::Simulated => "simulated",
            SourceType::Rtsp => "rtsp",
        }
    }
}

/// Everything known about one camera (a snapshot is handed out by value).
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    pub num: u32,
    pub id: String,
    pub source: SourceType,
    /// `/dev/videoN` for V4L2 cameras: the node it is on now, or was on last.
    pub devnode: Option<PathBuf>,
    /// What the V4L2 device says about itself (the key of its id).
    pub identity: Option<Box<Identity>>,
    /// Capture settings saved for the identity (`set_camera_settings`); `resolution` and
    /// `fps` below already follow them when the camera offers that mode. Boxed: events
    /// carry cameras by value.
    pub settings: Box<CaptureSettings>,
    /// lavfi source name for simulated cameras.
    pub pattern: Option<String>,
    /// Source URL of external streams (its `Debug` is redacted).
    pub source_url: Option<crate::external::SourceUrl>,
    pub status: Status,
    pub name: String,
    pub resolution: (u32, u32),
    pub fps: u32,
    pub info: DeviceInfo,
    pub modes: Vec<Mode>,
    /// When the camera was last confirmed present (probe, event or rescan), or when it
    /// disappeared.
    pub last_seen: OffsetDateTime,
    /// Why the camera is in ERROR.
    pub error: Option<String>,
}

impl Camera {
    pub fn resolution_text(&self) -> String {
        format!("{}x{}", self.resolution.0, self.resolution.1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Connected,
    Disconnected,
    StatusChange,
}

/// A transition to announce (`camera.connected`, `camera.disconnected`, `camera.status_change`).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    pub camera: Camera,
}

/// Result of offering a node to the registry.
#[derive(Debug, PartialEq)]
pub enum Offer {
    Changed(Box<Change>),
    Unchanged,
    /// The id belongs to a simulated or external camera.
    Shadowed,
    /// `camera.max_cameras` reached.
    Full,
    /// The camera is already present through another node (the node number given).
    Secondary(u32),
}

/// A probed capture node with the camera number its identity resolved to.
#[derive(Clone, Debug)]
pub struct Offered {
    pub node: u32,
    pub num: u32,
    pub devnode: PathBuf,
    pub probe: Probe,
    pub identity: Option<Box<Identity>>,
    /// Display name from the config (`[[camera.devices]] name`); else the card name.
    pub name: Option<String>,
    /// Saved capture settings of the identity.
    pub settings: CaptureSettings,
}

/// Why `forget` refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ForgetError {
    NotFound,
    /// Only V4L2 cameras are remembered by identity.
    NotV4l2(SourceType),
    /// Only a DISCONNECTED camera can be forgotten.
    Present(Status),
}

pub struct Registry {
    cameras: BTreeMap<u32, Camera>,
    /// Nodes of present V4L2 cameras: node number → camera number.
    nodes: BTreeMap<u32, u32>,
    /// Present nodes that are not cameras (metadata, radio, VBI, disabled in the config, ...):
    /// not probed again until they disappear.
    ignored: BTreeSet<u32>,
    /// Capture nodes of a camera present through another node: node → camera number.
    secondary: BTreeMap<u32, u32>,
    max_cameras: usize,
}

impl Registry {
    pub fn new(max_cameras: usize) -> Registry {
        Registry {
            cameras: BTreeMap::new(),
            nodes: BTreeMap::new(),
            ignored: BTreeSet::new(),
            secondary: BTreeMap::new(),
            max_cameras,
        }
    }

    /// Adds a configured simulated camera (always CONNECTED).
    pub fn add_simulated(&mut self, camera: Camera) {
        self.cameras.insert(camera.num, camera);
    }

    pub fn list(&self) -> Vec<Camera> {
        self.cameras.values().cloned().collect()
    }

    pub fn get(&self, num: u32) -> Option<&Camera> {
        self.cameras.get(&num)
    }

    /// (total, connected)
    pub fn counts(&self) -> (usize, usize) {
        let connected = self.cameras.values().filter(|c| c.status == Status::Connected).count();
        (self.cameras.len(), connected)
    }

    /// The number of a listed camera that is not V4L2 (simulated, external).
    pub fn is_other_source(&self, num: u32) -> bool {
        self.cameras.get(&num).is_some_and(|c| c.source != SourceType::V4l2)
    }

    /// The camera present on node `node`.
    pub fn camera_at(&self, node: u32) -> Option<u32> {
        self.nodes.get(&node).copied()
    }

    /// Secondary nodes of camera `num` (to probe again when its primary node goes away).
    pub fn secondaries_of(&self, num: u32) -> Vec<u32> {
        self.secondary
            .iter()
            .filter(|(_, c)| **c == num)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Whether a node seen by a rescan needs a probe: unknown, or its camera not CONNECTED.
    pub fn needs_probe(&self, node: u32) -> bool {
        if self.ignored.contains(&node) {
            return false;
        }
        let cam = self.nodes.get(&node).or_else(|| self.secondary.get(&node));
        match cam.and_then(|n| self.cameras.get(n)) {
            None => true,
            Some(c) => c.status != Status::Connected,
        }
    }

    /// Marks the CONNECTED V4L2 camera on `node` as still there (rescan).
    pub fn touch(&mut self, node: u32, now: OffsetDateTime) {
        let Some(num) = self.nodes.get(&node) else { return };
        if let Some(c) = self.cameras.get_mut(num) {
            if c.status == Status::Connected {
                c.last_seen = now;
            }
        }
    }

    /// Nodes the registry believes present that a full enumeration did not find.
    pub fn vanished(&self, present: &BTreeSet<u32>) -> Vec<u32> {
        let mut out: Vec<u32> = self.nodes.keys().filter(|n| !present.contains(n)).copied().collect();
        out.extend(self.ignored.iter().filter(|n| !present.contains(n)));
        out.extend(self.secondary.keys().filter(|n| !present.contains(n)));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A node that must not become a camera (disabled in the config).
    pub fn ignore(&mut self, node: u32) {
        self.ignored.insert(node);
    }

    /// A capture node was probed successfully and its identity resolved to `o.num`.
    pub fn present(&mut self, o: Offered, now: OffsetDateTime) -> Offer {
        let Offered {
            node,
            num,
            devnode,
            probe,
            identity,
            name,
            settings,
        } = o;
        self.ignored.remove(&node);
        self.secondary.remove(&node);
        if self.is_other_source(num) {
            return Offer::Shadowed;
        }
        // Present through another node that is still there: this one is secondary.
        if let Some(other) = self
            .nodes
            .iter()
            .find(|(n, c)| **c == num && **n != node)
            .map(|(n, _)| *n)
        {
            if self.cameras.get(&num).is_some_and(|c| c.status != Status::Disconnected) {
                self.secondary.insert(node, num);
                return Offer::Secondary(other);
            }
            self.nodes.remove(&other);
        }
        let probed = (
            probe
                .current
                .or_else(|| probe.modes.first().map(|m| (m.width, m.height)))
                .unwrap_or((0, 0)),
            probe
                .current_fps
                .or_else(|| probe.modes.iter().flat_map(|m| m.fps.iter().copied()).max())
                .unwrap_or(0),
        );
        // Saved settings decide the mode when the camera still offers it.
        let (resolution, fps) = super::settings::mode_of(&probe.modes, &settings).map_or(probed, |(_, s, f)| (s, f));
        let fresh = Camera {
            num,
            id: crate::ids::camera_id(num),
            source: SourceType::V4l2,
            devnode: Some(devnode),
            identity,
            settings: Box::new(settings),
            pattern: None,
            source_url: None,
            status: Status::Connected,
            name: match name.filter(|n| !n.trim().is_empty()) {
                Some(n) => n,
                None if probe.info.card.is_empty() => format!("Video device {node}"),
                None => probe.info.card.clone(),
            },
            resolution,
            fps,
            info: probe.info,
            modes: probe.modes,
            last_seen: now,
            error: None,
        };
        match self.cameras.get_mut(&num) {
            None => {
                if self.cameras.len() >= self.max_cameras {
                    return Offer::Full;
                }
                self.cameras.insert(num, fresh.clone());
                self.nodes.insert(node, num);
                Offer::Changed(Box::new(Change {
                    kind: ChangeKind::Connected,
                    camera: fresh,
                }))
            }
            Some(old) => {
                let kind = match old.status {
                    Status::Disconnected => Some(ChangeKind::Connected),
                    Status::Error => Some(ChangeKind::StatusChange),
                    Status::Connected => {
                        let same = old.info == fresh.info
                            && old.modes == fresh.modes
                            && old.resolution == fresh.resolution
                            && old.fps == fresh.fps
                            && old.devnode == fresh.devnode
                            && old.identity == fresh.identity
                            && old.settings == fresh.settings
                            && old.name == fresh.name;
                        (!same).then_some(ChangeKind::StatusChange)
                    }
                };
                *old = fresh.clone();
                self.nodes.insert(node, num);
                match kind {
                    Some(kind) => Offer::Changed(Box::new(Change { kind, camera: fresh })),
                    None => Offer::Unchanged,
                }
            }
        }
    }

    /// New capture settings (already checked against the camera's modes): the camera's
    /// mode follows them; the change to announce (`camera.status_change`).
    pub fn set_settings(&mut self, num: u32, settings: CaptureSettings) -> Option<Change> {
        let c = self.cameras.get_mut(&num)?;
        if let Some((_, size, fps)) = super::settings::mode_of(&c.modes, &settings) {
            c.resolution = size;
            c.fps = fps;
        }
        *c.settings = settings;
        Some(Change {
            kind: ChangeKind::StatusChange,
            camera: c.clone(),
        })
    }

    /// Drops a DISCONNECTED V4L2 camera (`forget_camera`).
    pub fn forget(&mut self, num: u32) -> Result<Camera, ForgetError> {
        let c = self.cameras.get(&num).ok_or(ForgetError::NotFound)?;
        if c.source != SourceType::V4l2 {
            return Err(ForgetError::NotV4l2(c.source));
        }
        if c.status != Status::Disconnected {
            return Err(ForgetError::Present(c.status));
        }
        self.nodes.retain(|_, c| *c != num);
        self.secondary.retain(|_, c| *c != num);
        self.cameras.remove(&num).ok_or(ForgetError::NotFound)
    }

    /// Adds an external stream camera; false when the id is taken or the registry is full.
    pub fn add_external(&mut self, camera: Camera) -> bool {
        if self.cameras.contains_key(&camera.num) || self.cameras.len() >= self.max_cameras {
            return false;
        }
        self.cameras.insert(camera.num, camera);
        true
    }

    /// Forgets an external stream camera.
    pub fn remove_external(&mut self, num: u32) -> Option<Camera> {
        if self.cameras.get(&num)?.source != SourceType::Rtsp {
            return None;
        }
        self.cameras.remove(&num)
    }

    /// Liveness of an external stream (and its size, once MediaMTX knows it). A change of
    /// CONNECTED/DISCONNECTED is announced; a new size while connected is a status change.
    pub fn external_status(
        &mut self,
        num: u32,
        alive: bool,
        size: Option<(u32, u32)>,
        now: OffsetDateTime,
    ) -> Option<Change> {
        let c = self.cameras.get_mut(&num)?;
        if c.source != SourceType::Rtsp {
            return None;
        }
        if alive {
            c.last_seen = now;
        }
        let sized = size.is_some_and(|s| s != c.resolution && s.0 > 0 && s.1 > 0);
        if sized {
            c.resolution = size.unwrap_or_default();
        }
        let kind = match (c.status, alive) {
            (Status::Connected, false) => {
                c.last_seen = now;
                Some(ChangeKind::Disconnected)
            }
            (Status::Connected, true) => sized.then_some(ChangeKind::StatusChange),
            (_, true) => Some(ChangeKind::Connected),
            (_, false) => None,
        };
        c.status = if alive { Status::Connected } else { Status::Disconnected };
        kind.map(|kind| Change {
            kind,
            camera: c.clone(),
        })
    }

    /// A present node is not a capture node. If it was a camera before (the number was
    /// reused by another device), that camera is gone.
    pub fn not_camera(&mut self, node: u32, now: OffsetDateTime) -> Option<Change> {
        let change = self.absent(node, now);
        self.ignored.insert(node);
        change
    }

    /// The node exists but could not be probed. Only a known camera changes (to ERROR);
    /// unknown nodes are retried by the next event or rescan.
    pub fn failed(&mut self, node: u32, why: String, now: OffsetDateTime) -> Option<Change> {
        let num = *self.nodes.get(&node)?;
        let c = self.cameras.get_mut(&num)?;
        if c.status == Status::Error && c.error.as_deref() == Some(why.as_str()) {
            return None;
        }
        c.status = Status::Error;
        c.error = Some(why);
        c.last_seen = now;
        Some(Change {
            kind: ChangeKind::StatusChange,
            camera: c.clone(),
        })
    }

    /// `/dev/video<node>` disappeared.
    pub fn absent(&mut self, node: u32, now: OffsetDateTime) -> Option<Change> {
        self.ignored.remove(&node);
        self.secondary.remove(&node);
        let num = self.nodes.remove(&node)?;
        let c = self.cameras.get_mut(&num)?;
        if c.source != SourceType::V4l2 || c.status == Status::Disconnected {
            return None;
        }
        c.status = Status::Disconnected;
        c.error = None;
        c.last_seen = now;
        Some(Change {
            kind: ChangeKind::Disconnected,
            camera: c.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(card: &str, fps: u32) -> Probe {
        Probe {
            info: DeviceInfo {
                driver: "vivid".into(),
                card: card.into(),
                bus_info: "platform:vivid-000".into(),
                capabilities: vec!["video_capture".into(), "streaming".into()],
            },
            modes: vec![Mode {
                format: "YUYV".into(),
                width: 640,
                height: 360,
                fps: vec![fps, 5],
            }],
            current: Some((640, 360)),
            current_fps: None,
        }
    }

    /// Node N is camera N (identity ignored).
    trait Present2 {
        fn present2(&mut self, n: u32, dev: &str, p: Probe, now: OffsetDateTime) -> Offer;
    }
    impl Present2 for Registry {
        fn present2(&mut self, n: u32, dev: &str, p: Probe, now: OffsetDateTime) -> Offer {
            self.present(offered(n, n, dev, p), now)
        }
    }

    fn offered(node: u32, num: u32, dev: &str, probe: Probe) -> Offered {
        Offered {
            node,
            num,
            devnode: dev.into(),
            probe,
            identity: None,
            name: None,
            settings: CaptureSettings::default(),
        }
    }

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    fn kind(o: Offer) -> Option<ChangeKind> {
        match o {
            Offer::Changed(c) => Some(c.kind),
            _ => None,
        }
    }

    #[test]
    fn connect_disconnect_reconnect() {
        let mut r = Registry::new(8);
        let o = r.present2(0, "/dev/video0", probe("vivid", 30), t(0));
        let Offer::Changed(c) = o else { panic!("{o:?}") };
        assert_eq!(c.kind, ChangeKind::Connected);
        assert_eq!(c.camera.id, "camera0");
        assert_eq!((c.camera.resolution_text(), c.camera.fps), ("640x360".into(), 30));
        // Same probe again: nothing to announce.
        assert_eq!(r.present2(0, "/dev/video0", probe("vivid", 30), t(1)), Offer::Unchanged);
        // Capabilities changed while connected: status_change.
        assert_eq!(
            kind(r.present2(0, "/dev/video0", probe("vivid", 60), t(2))),
            Some(ChangeKind::StatusChange)
        );
        // Gone: disconnected once, stays listed.
        let c = r.absent(0, t(3)).unwrap();
        assert_eq!(
            (c.kind, c.camera.status),
            (ChangeKind::Disconnected, Status::Disconnected)
        );
        assert_eq!(c.camera.last_seen, t(3));
        assert!(r.absent(0, t(4)).is_none());
        assert_eq!(r.counts(), (1, 0));
        assert!(r.needs_probe(0));
        // Back: connected again.
        assert_eq!(
            kind(r.present2(0, "/dev/video0", probe("vivid", 60), t(5))),
            Some(ChangeKind::Connected)
        );
        assert_eq!(r.counts(), (1, 1));
        assert!(!r.needs_probe(0));
    }

    #[test]
    fn errors_and_recovery() {
        let mut r = Registry::new(8);
        // Unknown node that cannot be probed: nothing listed.
        assert!(r.failed(3, "EACCES".into(), t(0)).is_none());
        assert_eq!(r.counts(), (0, 0));
        r.present2(3, "/dev/video3", probe("cam", 30), t(0));
        let c = r.failed(3, "EBUSY".into(), t(1)).unwrap();
        assert_eq!((c.kind, c.camera.status), (ChangeKind::StatusChange, Status::Error));
        assert!(
            r.failed(3, "EBUSY".into(), t(2)).is_none(),
            "same error is not repeated"
        );
        assert!(r.needs_probe(3));
        assert_eq!(
            kind(r.present2(3, "/dev/video3", probe("cam", 30), t(3))),
            Some(ChangeKind::StatusChange)
        );
        r.failed(3, "EBUSY".into(), t(4));
        assert_eq!(r.absent(3, t(5)).unwrap().kind, ChangeKind::Disconnected);
    }

    #[test]
    fn non_capture_nodes_and_rescan_diff() {
        let mut r = Registry::new(8);
        r.present2(0, "/dev/video0", probe("cap", 30), t(0));
        assert!(r.not_camera(1, t(0)).is_none());
        assert!(!r.needs_probe(1), "known non-camera nodes are not probed again");
        assert_eq!(r.counts(), (1, 1));
        let present: BTreeSet<u32> = [0].into_iter().collect();
        assert_eq!(r.vanished(&present), vec![1]);
        assert!(r.absent(1, t(1)).is_none());
        assert!(r.needs_probe(1), "a node number that reappears is probed again");
        assert_eq!(r.vanished(&BTreeSet::new()), vec![0]);
        // A camera number reused by a non-capture node: the camera is gone.
        assert_eq!(r.not_camera(0, t(2)).unwrap().kind, ChangeKind::Disconnected);
        assert!(r.vanished(&present).is_empty());
    }

    #[test]
    fn external_cameras_follow_liveness() {
        let mut r = Registry::new(3);
        let mut cam = match r.present2(100, "/dev/video100", probe("x", 30), t(0)) {
            Offer::Changed(c) => c.camera,
            o => panic!("{o:?}"),
        };
        r = Registry::new(3);
        cam.source = SourceType::Rtsp;
        cam.devnode = None;
        cam.status = Status::Disconnected;
        cam.resolution = (0, 0);
        assert!(r.add_external(cam.clone()));
        assert!(!r.add_external(cam.clone()), "id taken");
        assert!(r.external_status(100, false, None, t(1)).is_none());
        let c = r.external_status(100, true, None, t(2)).unwrap();
        assert_eq!((c.kind, c.camera.status), (ChangeKind::Connected, Status::Connected));
        assert!(r.external_status(100, true, None, t(3)).is_none());
        let c = r.external_status(100, true, Some((640, 480)), t(4)).unwrap();
        assert_eq!(
            (c.kind, c.camera.resolution_text()),
            (ChangeKind::StatusChange, "640x480".into())
        );
        assert_eq!(
            r.external_status(100, false, None, t(5)).unwrap().kind,
            ChangeKind::Disconnected
        );
        assert!(
            r.absent(100, t(6)).is_none(),
            "V4L2 events never touch external cameras"
        );
        assert!(r.needs_probe(100), "node 100 is a node, not camera100");
        assert_eq!(r.remove_external(100).unwrap().id, "camera100");
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn simulated_ids_shadow_nodes_and_limit_applies() {
        let mut r = Registry::new(2);
        let mut sim = match r.present2(50, "/dev/video50", probe("x", 30), t(0)) {
            Offer::Changed(c) => c.camera,
            o => panic!("{o:?}"),
        };
        r = Registry::new(2);
        sim.source = SourceType::Simulated;
        sim.devnode = None;
        r.add_simulated(sim);
        assert_eq!(r.present2(50, "/dev/video50", probe("x", 30), t(0)), Offer::Shadowed);
        assert!(r.absent(50, t(1)).is_none(), "simulated cameras never disconnect");
        assert!(r.needs_probe(50), "node 50 is a node, not camera50");
        r.present2(0, "/dev/video0", probe("a", 30), t(0));
        assert_eq!(r.present2(1, "/dev/video1", probe("b", 30), t(0)), Offer::Full);
        assert_eq!(
            r.list().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["camera0", "camera50"]
        );
    }

    #[test]
    fn a_camera_keeps_its_number_on_another_node() {
        let mut r = Registry::new(8);
        // Identity → camera1, first on /dev/video3.
        let o = r.present(offered(3, 1, "/dev/video3", probe("cam", 30)), t(0));
        assert_eq!(kind(o), Some(ChangeKind::Connected));
        assert_eq!(r.camera_at(3), Some(1));
        // A second capture node of the same device: secondary, not a camera.
        assert_eq!(
            r.present(offered(4, 1, "/dev/video4", probe("cam", 30)), t(0)),
            Offer::Secondary(3)
        );
        assert!(!r.needs_probe(4));
        assert_eq!(r.counts(), (1, 1));
        // Unplugged: gone from node 3; the secondary is probed again.
        assert_eq!(r.absent(3, t(1)).unwrap().kind, ChangeKind::Disconnected);
        assert_eq!(r.secondaries_of(1), vec![4]);
        assert!(r.needs_probe(4));
        r.absent(4, t(1));
        // Back on node 0: same camera, new node.
        let Offer::Changed(c) = r.present(offered(0, 1, "/dev/video0", probe("cam", 30)), t(2)) else {
            panic!()
        };
        assert_eq!((c.kind, c.camera.id.as_str()), (ChangeKind::Connected, "camera1"));
        assert_eq!(c.camera.devnode, Some(PathBuf::from("/dev/video0")));
        assert_eq!(r.camera_at(0), Some(1));
        assert_eq!(r.camera_at(3), None);
        assert!(r.absent(3, t(3)).is_none(), "the old node is not the camera any more");
        // Forget: only when disconnected.
        assert_eq!(r.forget(1), Err(ForgetError::Present(Status::Connected)));
        r.absent(0, t(4));
        assert_eq!(r.forget(1).unwrap().id, "camera1");
        assert_eq!(r.forget(1), Err(ForgetError::NotFound));
        assert_eq!(r.counts(), (0, 0));
    }
}
