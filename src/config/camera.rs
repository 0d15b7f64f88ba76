//! `[camera]`: V4L2 discovery and the simulated cameras.

use super::{Dur, Validator};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// First id given to external RTSP streams (`camera100`, ...).
    pub external_id_base: u32,
    pub max_cameras: usize,
    pub simulated: Vec<SimulatedCamera>,
    /// How V4L2 hot-plug is followed (docs/cameras.md).
    pub monitor: CameraMonitor,
    /// Full re-enumeration period: the only mechanism with `monitor = "rescan"`, a safety net
    /// for missed uevents otherwise.
    pub rescan_interval: Dur,
    /// Start-up waits at most this long for the first discovery pass before reporting ready
    /// to systemd (`/health/ready` keeps waiting for the pass itself).
    pub first_pass_timeout: Dur,
    /// `[[camera.devices]]`: match a V4L2 device; pin its id, name or disable it.
    pub devices: Vec<crate::camera::devices::DeviceRule>,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            external_id_base: 100,
            max_cameras: 64,
            simulated: Vec::new(),
            monitor: CameraMonitor::Auto,
            rescan_interval: Dur::secs(5),
            first_pass_timeout: Dur::secs(10),
            devices: Vec::new(),
        }
    }
}

/// `camera.monitor`: `auto` = udev events when udevd runs (`/run/udev/control`), else kernel
/// uevents; `udev` / `kernel` force one netlink group; `rescan` = periodic enumeration only;
/// `off` = no V4L2 discovery (simulated cameras only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraMonitor {
    Auto,
    Udev,
    Kernel,
    Rescan,
    Off,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedCamera {
    pub id: String,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default = "default_size")]
    pub size: String,
    #[serde(default = "default_fps")]
    pub fps: u32,
    #[serde(default)]
    pub name: String,
}

fn default_pattern() -> String {
    "testsrc2".into()
}
fn default_size() -> String {
    "640x480".into()
}
fn default_fps() -> u32 {
    15
}

impl CameraConfig {
    /// `[[camera.devices]]` rules; pinned ids must not collide with simulated cameras or
    /// the configured external streams (`external_ids`).
    pub(super) fn validate_devices(&self, v: &mut Validator, external_ids: impl Iterator<Item = String>) {
        let taken = self
            .simulated
            .iter()
            .map(|s| s.id.clone())
            .chain(external_ids)
            .collect();
        for (key, rule) in crate::camera::devices::validate(&self.devices, &taken, self.external_id_base) {
            v.check(false, &key, &rule);
        }
    }

    pub(super) fn validate(&self, v: &mut Validator) {
        v.range("camera.external_id_base", self.external_id_base as u64, 1, 1_000_000);
        v.range("camera.max_cameras", self.max_cameras as u64, 1, 4096);
        v.dur(
            "camera.rescan_interval",
            self.rescan_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "camera.first_pass_timeout",
            self.first_pass_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        );
        let mut seen = std::collections::HashSet::new();
        for (i, cam) in self.simulated.iter().enumerate() {
            let key = format!("camera.simulated[{i}]");
            v.check(
                crate::ids::parse_camera_id(&cam.id).is_some(),
                &format!("{key}.id"),
                "must look like cameraN (e.g. camera50)",
            );
            v.check(seen.insert(cam.id.clone()), &format!("{key}.id"), "must be unique");
            v.check(
                parse_size(&cam.size).is_some(),
                &format!("{key}.size"),
                "must be WIDTHxHEIGHT with even sizes from 16x16 to 7680x4320",
            );
            v.range(&format!("{key}.fps"), cam.fps as u64, 1, 120);
            v.check(
                !cam.pattern.is_empty() && cam.pattern.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'),
                &format!("{key}.pattern"),
                "must be an ffmpeg lavfi source name such as testsrc2, smptebars, mandelbrot",
            );
        }
    }
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    ((16..=7680).contains(&w) && (16..=4320).contains(&h) && w % 2 == 0 && h % 2 == 0).then_some((w, h))
}
