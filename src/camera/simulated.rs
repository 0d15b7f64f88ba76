//! Simulated cameras from `[[camera.simulated]]`: an ffmpeg lavfi test source
//! (`testsrc2`, `smptebars`, ...) at the configured size and rate. They are always
//! CONNECTED; their capabilities are what that pipeline produces: one mode, planar
//! YUV 4:2:0 (V4L2 fourcc `YU12`, ffmpeg `yuv420p`) at the configured size and rate.

use super::registry::{Camera, SourceType, Status};
use super::v4l2::{DeviceInfo, Mode};
use crate::config::{parse_size, SimulatedCamera};
use time::OffsetDateTime;

/// The pixel format a lavfi source is converted to before encoding.
pub const SIMULATED_FORMAT: &str = "YU12";

/// The registry entry for a configured simulated camera (the config is validated, so the
/// id and size parse; `None` otherwise).
pub fn camera(cfg: &SimulatedCamera, now: OffsetDateTime) -> Option<Camera> {
    let num = crate::ids::parse_camera_id(&cfg.id)?;
    let (width, height) = parse_size(&cfg.size)?;
    let name = if cfg.name.trim().is_empty() {
        format!("Simulated camera ({})", cfg.pattern)
    } else {
        cfg.name.clone()
    };
    Some(Camera {
        num,
        id: cfg.id.clone(),
        source: SourceType::Simulated,
        devnode: None,
        identity: None,
        settings: Default::default(),
        pattern: Some(cfg.pattern.clone()),
        source_url: None,
        status: Status::Connected,
        name,
        resolution: (width, height),
        fps: cfg.fps,
        info: DeviceInfo {
            driver: "lavfi".into(),
            card: format!("ffmpeg lavfi {}", cfg.pattern),
            bus_info: format!("simulated:{}", cfg.id),
            capabilities: vec!["video_capture".into(), "streaming".into()],
        },
        modes: vec![Mode {
            format: SIMULATED_FORMAT.into(),
            width,
            height,
            fps: vec![cfg.fps],
        }],
        last_seen: now,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config() {
        let cfg = SimulatedCamera {
            id: "camera50".into(),
            pattern: "testsrc2".into(),
            size: "640x480".into(),
            fps: 15,
            name: String::new(),
        };
        let c = camera(&cfg, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            (c.num, c.status, c.source),
            (50, Status::Connected, SourceType::Simulated)
        );
        assert_eq!((c.resolution_text(), c.fps), ("640x480".into(), 15));
        assert_eq!(c.name, "Simulated camera (testsrc2)");
        assert_eq!(c.modes[0].format, "YU12");
        let bad = SimulatedCamera {
            size: "nope".into(),
            ..cfg
        };
        assert!(camera(&bad, OffsetDateTime::UNIX_EPOCH).is_none());
    }
}
