//! Camera operations (api.md §4, §10) and their typed results; discovery wiring.

use super::Controller;
use crate::camera::identity::{CaptureSettings, Identity};
use crate::camera::registry::{Camera, ChangeKind, SourceType, Status};
use crate::camera::{Hooks, Summary};
use crate::config::MediamtxConfig;
use crate::error::ServiceError;
use crate::events::Event;
use crate::health::Level;
pub use crate::media::service::StreamUrls;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// api.md `Camera`; also the params of `camera_status_update`. `identity` and
/// `device_node` are this service's extensions (V4L2 cameras only).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraView {
    pub device: String,
    pub status: Status,
    pub name: String,
    /// `WIDTHxHEIGHT`.
    pub resolution: String,
    pub fps: u32,
    pub source_type: SourceType,
    pub streams: StreamUrls,
    /// What the V4L2 device says about itself; its `key` decides the camera id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The V4L2 node the camera is on now; `null` while DISCONNECTED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_node: Option<Option<String>>,
}

impl CameraView {
    pub fn new(c: &Camera, m: &MediamtxConfig, host: &str) -> CameraView {
        let v4l2 = c.source == SourceType::V4l2;
        CameraView {
            device: c.id.clone(),
            status: c.status,
            name: c.name.clone(),
            resolution: c.resolution_text(),
            fps: c.fps,
            source_type: c.source,
            streams: StreamUrls::new(m, host, &c.id),
            identity: c.identity.as_deref().cloned(),
            device_node: v4l2.then(|| {
                c.devnode
                    .as_ref()
                    .filter(|_| c.status != Status::Disconnected)
                    .map(|d| d.display().to_string())
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraList {
    pub cameras: Vec<CameraView>,
    pub total: usize,
    pub connected: usize,
}

/// What the device says about itself (`VIDIOC_QUERYCAP`; external streams: rtsp/type/URL).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct DeviceCapabilities {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    pub capabilities: Vec<String>,
}

/// `get_camera_status`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraStatusView {
    #[serde(flatten)]
    pub camera: CameraView,
    pub capabilities: DeviceCapabilities,
    pub recording: bool,
    pub streaming: bool,
    /// RFC 3339 UTC.
    pub last_seen: String,
    /// Why the camera is in ERROR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ModeView {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub fps: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValidationStatus {
    Confirmed,
    Disconnected,
}

/// `get_camera_capabilities`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Capabilities {
    pub device: String,
    pub formats: Vec<String>,
    pub resolutions: Vec<String>,
    pub frame_rates: Vec<u32>,
    pub fps_options: Vec<u32>,
    pub modes: Vec<ModeView>,
    pub validation_status: ValidationStatus,
}

impl Capabilities {
    pub fn new(c: &Camera) -> Capabilities {
        let mut formats: Vec<String> = Vec::new();
        let mut resolutions: Vec<String> = Vec::new();
        let mut rates = BTreeSet::new();
        for m in &c.modes {
            if !formats.contains(&m.format) {
                formats.push(m.format.clone());
            }
            let r = format!("{}x{}", m.width, m.height);
            if !resolutions.contains(&r) {
                resolutions.push(r);
            }
            rates.extend(m.fps.iter().copied());
        }
        let rates: Vec<u32> = rates.into_iter().rev().collect();
        Capabilities {
            device: c.id.clone(),
            formats,
            resolutions,
            frame_rates: rates.clone(),
            fps_options: rates,
            modes: c
                .modes
                .iter()
                .map(|m| ModeView {
                    format: m.format.clone(),
                    width: m.width,
                    height: m.height,
                    fps: m.fps.clone(),
                })
                .collect(),
            validation_status: if c.status == Status::Connected {
                ValidationStatus::Confirmed
            } else {
                ValidationStatus::Disconnected
            },
        }
    }
}

/// `get_camera_settings` / `set_camera_settings`: the effective capture and encoding
/// settings of a V4L2 camera, and what is saved for its identity.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraSettingsView {
    pub device: String,
    /// Pixel format (FourCC) chosen with `set_camera_settings`; `null` = chosen
    /// automatically at the resolution (MJPG, YUYV, NV12, ... first offered).
    pub format: Option<String>,
    /// `WIDTHxHEIGHT` captured now.
    pub resolution: String,
    pub fps: u32,
    /// `-b:v` of the publisher; `null` = the encoder's default.
    pub bitrate: Option<String>,
    /// Key-frame interval in frames.
    pub gop: u32,
    /// FFmpeg encoder of the publisher.
    pub encoder: String,
    /// What is saved for this camera's identity (only what was set).
    pub saved: CaptureSettings,
    /// Whether any setting is saved for the identity (the contract's field; `saved` says which).
    pub persisted: bool,
    /// `set_camera_settings`: whether the new publisher reached MediaMTX now (else it is
    /// applied when the camera's path is next created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
}

/// `forget_camera`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CameraForgotten {
    pub device: String,
    pub forgotten: bool,
    /// The identity that held the id (`null` if the map had none).
    pub identity_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryStatus {
    Starting,
    Partial,
    Ready,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, JsonSchema)]
pub enum CameraTopic {
    #[serde(rename = "camera.connected")]
    Connected,
    #[serde(rename = "camera.disconnected")]
    Disconnected,
    #[serde(rename = "camera.status_change")]
    StatusChange,
}

impl From<ChangeKind> for CameraTopic {
    fn from(k: ChangeKind) -> CameraTopic {
        match k {
            ChangeKind::Connected => CameraTopic::Connected,
            ChangeKind::Disconnected => CameraTopic::Disconnected,
            ChangeKind::StatusChange => CameraTopic::StatusChange,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LastCameraEvent {
    pub topic: CameraTopic,
    pub device: String,
    pub timestamp: String,
}

/// `get_system_status`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SystemStatus {
    pub status: DiscoveryStatus,
    pub message: String,
    pub available_cameras: Vec<String>,
    pub discovery_active: bool,
    pub last_event: Option<LastCameraEvent>,
}

impl SystemStatus {
    pub fn new(s: &Summary) -> SystemStatus {
        let (status, message) = if !s.first_pass_done {
            (
                DiscoveryStatus::Starting,
                "camera discovery is running its first pass".to_string(),
            )
        } else if !s.problems.is_empty() {
            (
                DiscoveryStatus::Partial,
                format!("{} camera(s) available; {}", s.connected.len(), s.problems.join("; ")),
            )
        } else {
            (
                DiscoveryStatus::Ready,
                format!("{} camera(s) available of {} known", s.connected.len(), s.total),
            )
        };
        SystemStatus {
            status,
            message,
            available_cameras: s.connected.clone(),
            discovery_active: s.discovery_active,
            last_event: s.last_event.as_ref().map(|e| LastCameraEvent {
                topic: e.kind.into(),
                device: e.device.clone(),
                timestamp: crate::clock::rfc3339(e.at),
            }),
        }
    }
}

/// `get_server_info`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ServerInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub build_date: &'static str,
    pub git_commit: &'static str,
    pub architecture: &'static str,
    pub rust_version: &'static str,
    pub capabilities: Vec<&'static str>,
    pub supported_formats: Vec<&'static str>,
    pub max_cameras: usize,
}

impl Controller {
    /// Starts camera discovery, wiring its changes to `camera.*` events and the `cameras`
    /// health component (which gates readiness until the first pass is done). Resolves after
    /// the first pass (bounded by `camera.first_pass_timeout`).
    pub(super) async fn start_cameras(self: &Arc<Self>) {
        self.set_component("cameras", Level::Healthy, "discovering cameras", true, false);
        let on_change = {
            let me = Arc::downgrade(self);
            Box::new(move |c: &crate::camera::registry::Change| {
                let Some(me) = me.upgrade() else { return };
                me.events.publish(Event::Camera {
                    kind: c.kind,
                    camera: c.camera.clone(),
                    removed: false,
                });
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

    pub fn camera_view(&self, c: &Camera, host: &str) -> CameraView {
        CameraView::new(c, &self.config.mediamtx, host)
    }

    pub fn camera_list(&self, client_host: &str) -> CameraList {
        let host = self.hosts.for_client(client_host);
        let cams = self.cameras.list();
        CameraList {
            connected: cams.iter().filter(|c| c.status == Status::Connected).count(),
            total: cams.len(),
            cameras: cams.iter().map(|c| self.camera_view(c, &host)).collect(),
        }
    }

    pub fn camera_status(&self, device: &str, client_host: &str) -> Result<CameraStatusView, ServiceError> {
        let c = self.cameras.get(device)?;
        Ok(CameraStatusView {
            camera: self.camera_view(&c, &self.hosts.for_client(client_host)),
            capabilities: DeviceCapabilities {
                driver: c.info.driver.clone(),
                card: c.info.card.clone(),
                bus_info: c.info.bus_info.clone(),
                capabilities: c.info.capabilities.clone(),
            },
            // Recording: our recording state; streaming: MediaMTX has the stream flowing (as
            // of the last health probe, so this call never waits on MediaMTX).
            recording: self.media.recordings().is_recording(device),
            streaming: self.media.stream_stats().available.iter().any(|n| n == device),
            last_seen: crate::clock::rfc3339(c.last_seen),
            error: c.error.clone(),
        })
    }

    pub fn camera_capabilities(&self, device: &str) -> Result<Capabilities, ServiceError> {
        Ok(Capabilities::new(&self.cameras.get(device)?))
    }

    fn settings_view(&self, c: &Camera, applied: Option<bool>) -> CameraSettingsView {
        let f = &self.config.ffmpeg;
        let bitrate = c
            .settings
            .bitrate
            .clone()
            .or_else(|| (!f.bitrate.is_empty()).then(|| f.bitrate.clone()));
        CameraSettingsView {
            device: c.id.clone(),
            format: c.settings.format.clone(),
            resolution: c.resolution_text(),
            fps: c.fps,
            bitrate,
            gop: c.settings.gop.unwrap_or(c.fps.max(1)),
            encoder: c.settings.encoder.clone().unwrap_or_else(|| f.encoder.clone()),
            saved: (*c.settings).clone(),
            persisted: *c.settings != CaptureSettings::default(),
            applied,
        }
    }

    /// `get_camera_settings`: V4L2 cameras only (-32030 otherwise).
    pub fn camera_settings(&self, device: &str) -> Result<CameraSettingsView, ServiceError> {
        let c = self.cameras.get(device)?;
        if c.source != SourceType::V4l2 {
            return Err(ServiceError::Unsupported {
                feature: "camera_settings",
                details: format!(
                    "{device} is a {} camera; capture settings belong to V4L2 cameras",
                    c.source.as_str()
                ),
            });
        }
        Ok(self.settings_view(&c, None))
    }

    /// `set_camera_settings`: checked against the probed modes (-32602 naming the parameter
    /// and listing what is allowed), saved with the camera's identity, announced as
    /// `camera.status_change`, and applied to the MediaMTX path now (the publisher restarts
    /// at the new mode; an active recording continues in a new segment). Snapshot tiers
    /// follow the camera's mode at once.
    pub async fn set_camera_settings(
        &self,
        device: &str,
        req: CaptureSettings,
    ) -> Result<CameraSettingsView, ServiceError> {
        let change = self.cameras.set_settings(device, &req).await?;
        let cam = change.camera.clone();
        self.events.publish(Event::Camera {
            kind: change.kind,
            camera: change.camera,
            removed: false,
        });
        let applied = if cam.status == Status::Connected {
            match self.media.ensure_path(&cam).await {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("{device}: new capture settings saved, MediaMTX path not updated yet: {e}");
                    false
                }
            }
        } else {
            false
        };
        Ok(self.settings_view(&cam, Some(applied)))
    }

    /// `forget_camera` (admin): a DISCONNECTED V4L2 camera loses its id and settings; the
    /// next device with its identity gets a new id. Announced as `camera.disconnected` with
    /// `removed: true` when the camera was listed.
    pub async fn forget_camera(&self, device: &str) -> Result<CameraForgotten, ServiceError> {
        let f = self.cameras.forget(device).await?;
        // Its MediaMTX path goes too: the id may be given to another camera later, which
        // gets a path of its own then.
        if let Err(e) = self.media.paths().remove(device).await {
            if !matches!(e, crate::mediamtx::client::MtxError::NotFound(_)) {
                log::warn!("{device}: forgotten; its MediaMTX path could not be removed: {e}");
            }
        }
        if let Some(c) = &f.camera {
            self.events.publish(Event::Camera {
                kind: ChangeKind::Disconnected,
                camera: c.clone(),
                removed: true,
            });
        }
        Ok(CameraForgotten {
            device: device.to_string(),
            forgotten: true,
            identity_key: f.identity_key,
        })
    }

    pub fn system_status(&self) -> SystemStatus {
        SystemStatus::new(&self.cameras.summary())
    }

    pub fn server_info(&self) -> ServerInfo {
        ServerInfo {
            name: "camera-service",
            version: env!("CARGO_PKG_VERSION"),
            build_date: env!("CS_BUILD_DATE"),
            git_commit: env!("CS_GIT_COMMIT"),
            architecture: std::env::consts::ARCH,
            rust_version: env!("CS_RUSTC_VERSION"),
            capabilities: vec!["snapshots", "recordings", "streaming", "events", "external_streams"],
            supported_formats: vec!["fmp4", "mpegts", "jpg", "png"],
            max_cameras: self.config.camera.max_cameras,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::CameraManager;
    use crate::config::Config;
    use serde_json::json;

    #[test]
    fn views_have_the_contract_shapes() {
        let c = Config::from_toml_str(
            "[[camera.simulated]]\nid = \"camera50\"\npattern = \"testsrc2\"\nsize = \"640x480\"\nfps = 15\n\n[camera]\nmonitor = \"off\"\n",
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        let mgr = CameraManager::new(&c.camera, &std::env::temp_dir().join("cs-views-test"), []);
        let cam = mgr.get("camera50").unwrap();
        let v = serde_json::to_value(CameraView::new(&cam, &c.mediamtx, "10.0.0.5")).unwrap();
        assert_eq!(v["status"], "CONNECTED");
        assert_eq!(v["source_type"], "simulated");
        assert_eq!(v["streams"]["rtsp"], "rtsp://10.0.0.5:8554/camera50");
        assert_eq!(v["streams"]["hls"], "http://10.0.0.5:8888/camera50/index.m3u8");
        assert_eq!(v["streams"]["webrtc"], "http://10.0.0.5:8889/camera50/whep");
        assert_eq!(
            StreamUrls::new(&c.mediamtx, "::1", "camera1").rtsp,
            "rtsp://[::1]:8554/camera1"
        );
        let caps = serde_json::to_value(Capabilities::new(&cam)).unwrap();
        assert_eq!(caps["formats"], json!(["YU12"]));
        assert_eq!(caps["frame_rates"], json!([15]));
        assert_eq!(caps["validation_status"], "confirmed");
        let sys = serde_json::to_value(SystemStatus::new(&mgr.summary())).unwrap();
        assert_eq!(sys["status"], "starting");
        assert_eq!(sys["last_event"], serde_json::Value::Null);
        smol::block_on(mgr.start(Hooks {
            on_change: Box::new(|_| {}),
            on_health: Box::new(|_| {}),
        }));
        let sys = serde_json::to_value(SystemStatus::new(&mgr.summary())).unwrap();
        assert_eq!(sys["status"], "ready", "{sys}");
        assert_eq!(sys["available_cameras"], json!(["camera50"]));
        assert_eq!(sys["discovery_active"], false);
    }
}
