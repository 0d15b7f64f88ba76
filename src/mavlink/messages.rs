//! The camera messages, built from the service's own figures (no I/O here).

use super::Position;
use crate::camera::registry::Camera;
use crate::storage::StorageInfo;
use mavlink::common::*;

/// Copies `s` into a NUL-padded MAVLink char array (cut at a char boundary).
pub(crate) fn text<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

pub(crate) fn mib(bytes: u64) -> f32 {
    (bytes as f64 / (1024.0 * 1024.0)) as f32
}

pub(crate) fn heartbeat() -> MavMessage {
    MavMessage::HEARTBEAT(HEARTBEAT_DATA {
        custom_mode: 0,
        mavtype: MavType::MAV_TYPE_CAMERA,
        autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
        base_mode: MavModeFlag::empty(),
        system_status: MavState::MAV_STATE_ACTIVE,
        mavlink_version: 3,
    })
}

fn vendor_model(cam: &Camera) -> (String, String) {
    let i = &cam.info;
    let vendor = match i.driver.as_str() {
        "" => "camera-service".to_string(),
        "rtsp" if i.card.starts_with("skydio") => "Skydio".into(),
        d => d.to_string(),
    };
    let model = if i.card.is_empty() {
        cam.name.clone()
    } else {
        i.card.clone()
    };
    (vendor, model)
}

fn is_thermal(cam: &Camera) -> bool {
    cam.info.driver == "rtsp" && cam.info.card == "skydio_ir"
}

pub(crate) fn information(time_boot_ms: u32, cam: &Camera) -> MavMessage {
    let (vendor, model) = vendor_model(cam);
    let flags = CameraCapFlags::CAMERA_CAP_FLAGS_CAPTURE_VIDEO
        | CameraCapFlags::CAMERA_CAP_FLAGS_CAPTURE_IMAGE
        | CameraCapFlags::CAMERA_CAP_FLAGS_CAN_CAPTURE_IMAGE_IN_VIDEO_MODE
        | CameraCapFlags::CAMERA_CAP_FLAGS_CAN_CAPTURE_VIDEO_IN_IMAGE_MODE
        | CameraCapFlags::CAMERA_CAP_FLAGS_HAS_VIDEO_STREAM;
    MavMessage::CAMERA_INFORMATION(CAMERA_INFORMATION_DATA {
        time_boot_ms,
        firmware_version: 0,
        focal_length: f32::NAN,
        sensor_size_h: f32::NAN,
        sensor_size_v: f32::NAN,
        flags,
        resolution_h: cam.resolution.0.min(u16::MAX as u32) as u16,
        resolution_v: cam.resolution.1.min(u16::MAX as u32) as u16,
        cam_definition_version: 0,
        vendor_name: text(&vendor),
        model_name: text(&model),
        lens_id: 0,
        cam_definition_uri: [0; 140],
        gimbal_device_id: 0,
        camera_device_id: 0,
    })
}

fn stream_flags(cam: &Camera) -> VideoStreamStatusFlags {
    let mut f = VideoStreamStatusFlags::VIDEO_STREAM_STATUS_FLAGS_RUNNING;
    if is_thermal(cam) {
        f |= VideoStreamStatusFlags::VIDEO_STREAM_STATUS_FLAGS_THERMAL;
    }
    f
}

/// One stream per camera: its MediaMTX path over RTSP, H.264 (what the service publishes).
pub(crate) fn stream_information(cam: &Camera, uri: &str) -> MavMessage {
    MavMessage::VIDEO_STREAM_INFORMATION(VIDEO_STREAM_INFORMATION_DATA {
        framerate: cam.fps as f32,
        bitrate: 0,
        flags: stream_flags(cam),
        resolution_h: cam.resolution.0.min(u16::MAX as u32) as u16,
        resolution_v: cam.resolution.1.min(u16::MAX as u32) as u16,
        rotation: 0,
        hfov: 0,
        stream_id: 1,
        count: 1,
        mavtype: VideoStreamType::VIDEO_STREAM_TYPE_RTSP,
        name: text(&cam.id),
        uri: text(uri),
        encoding: VideoStreamEncoding::VIDEO_STREAM_ENCODING_H264,
        camera_device_id: 0,
    })
}

pub(crate) fn stream_status(cam: &Camera) -> MavMessage {
    MavMessage::VIDEO_STREAM_STATUS(VIDEO_STREAM_STATUS_DATA {
        framerate: cam.fps as f32,
        bitrate: 0,
        flags: stream_flags(cam),
        resolution_h: cam.resolution.0.min(u16::MAX as u32) as u16,
        resolution_v: cam.resolution.1.min(u16::MAX as u32) as u16,
        rotation: 0,
        hfov: 0,
        stream_id: 1,
        camera_device_id: 0,
    })
}

pub(crate) fn settings(time_boot_ms: u32, mode: CameraMode) -> MavMessage {
    MavMessage::CAMERA_SETTINGS(CAMERA_SETTINGS_DATA {
        time_boot_ms,
        mode_id: mode,
        zoomLevel: f32::NAN,
        focusLevel: f32::NAN,
        camera_device_id: 0,
    })
}

/// STORAGE_INFORMATION from the storage figures (MiB); NOT_SUPPORTED when unreadable.
pub(crate) fn storage(time_boot_ms: u32, info: Option<&StorageInfo>) -> MavMessage {
    let (total, used, available, status) = match info {
        Some(i) => (
            mib(i.total_space),
            mib(i.used_space),
            mib(i.available_space),
            StorageStatus::STORAGE_STATUS_READY,
        ),
        None => (0.0, 0.0, 0.0, StorageStatus::STORAGE_STATUS_NOT_SUPPORTED),
    };
    MavMessage::STORAGE_INFORMATION(STORAGE_INFORMATION_DATA {
        time_boot_ms,
        total_capacity: total,
        used_capacity: used,
        available_capacity: available,
        read_speed: f32::NAN,
        write_speed: f32::NAN,
        storage_id: 1,
        storage_count: 1,
        status,
        mavtype: StorageType::STORAGE_TYPE_OTHER,
        name: text("camera-service"),
        storage_usage: StorageUsageFlag::STORAGE_USAGE_FLAG_SET
            | StorageUsageFlag::STORAGE_USAGE_FLAG_PHOTO
            | StorageUsageFlag::STORAGE_USAGE_FLAG_VIDEO,
    })
}

pub(crate) fn image_captured(
    time_boot_ms: u32,
    index: i32,
    ok: bool,
    file_url: &str,
    position: Option<&Position>,
) -> MavMessage {
    let time_utc = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let p = position.copied();
    MavMessage::CAMERA_IMAGE_CAPTURED(CAMERA_IMAGE_CAPTURED_DATA {
        time_utc,
        time_boot_ms,
        lat: p.map_or(0, |p| p.lat),
        lon: p.map_or(0, |p| p.lon),
        alt: p.map_or(0, |p| p.alt_mm),
        relative_alt: p.map_or(0, |p| p.relative_alt_mm),
        q: p.map_or([f32::NAN; 4], |p| if p.q == [0.0; 4] { [f32::NAN; 4] } else { p.q }),
        image_index: index,
        camera_id: 0,
        capture_result: ok as i8,
        file_url: text(file_url),
    })
}

/// Roll, pitch, yaw (rad) → quaternion w, x, y, z.
pub(crate) fn quaternion(roll: f32, pitch: f32, yaw: f32) -> [f32; 4] {
    let (sr, cr) = (roll / 2.0).sin_cos();
    let (sp, cp) = (pitch / 2.0).sin_cos();
    let (sy, cy) = (yaw / 2.0).sin_cos();
    [
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_nul_padded_and_cut_at_char_boundaries() {
        let t: [u8; 4] = text("ab");
        assert_eq!(t, *b"ab\0\0");
        let t: [u8; 3] = text("aé€");
        assert_eq!(&t, "aé".as_bytes());
    }

    #[test]
    fn level_attitude_is_the_identity_quaternion() {
        assert_eq!(quaternion(0.0, 0.0, 0.0), [1.0, 0.0, 0.0, 0.0]);
        let q = quaternion(0.0, 0.0, std::f32::consts::PI);
        assert!(q[0].abs() < 1e-6 && (q[3] - 1.0).abs() < 1e-6);
    }
}
