//! The snapshot operation (api.md §6) and its events: `snapshot.taken` on success,
//! `snapshot.error` (with `reason`) when a snapshot could not be taken.

use super::Controller;
use crate::error::ServiceError;
use crate::events::{Event, SnapshotTaken};
pub use crate::mavlink::exif::Geotag;
use crate::media::image::ImageFormat;
use crate::media::snapshot::{Request, SnapshotManager, Source, Tier};
use schemars::JsonSchema;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SnapshotStatus {
    Success,
    Error,
}

/// `take_snapshot`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SnapshotResult {
    pub device: String,
    pub filename: String,
    pub status: SnapshotStatus,
    pub timestamp: String,
    pub file_size: u64,
    pub width: u32,
    pub height: u32,
    /// The capture tier that produced the image.
    pub tier: Tier,
    /// `frame_tap`: the newest picture of the camera's running stream, from the frame tap
    /// (`tier` is then `rtsp_immediate`); otherwise the tier's name.
    pub source: Source,
    /// Age of the delivered frame when it was captured, in ms: for the tap, since the newest
    /// picture reached the service; 0 for the tiers, which capture a new frame per request.
    pub frame_age_ms: u64,
    pub capture_ms: u64,
    pub format: ImageFormat,
    /// Where the vehicle was (MAVLink `GLOBAL_POSITION_INT`), also written as EXIF GPS tags
    /// into JPEGs; absent when no position is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Geotag>,
}

impl Controller {
    /// Snapshot tiers and their figures (per-tier counts and latency sums for `/metrics`).
    pub fn snapshots(&self) -> &Arc<SnapshotManager> {
        &self.snapshots
    }

    pub async fn take_snapshot(&self, device: &str, req: Request) -> Result<SnapshotResult, ServiceError> {
        let cam = self.cameras.get(device)?;
        match self.snapshots.take(&cam, req).await {
            Ok(mut t) => {
                let position = self.geotag(&mut t).await;
                let result = SnapshotResult {
                    device: t.device.clone(),
                    filename: t.filename.clone(),
                    status: SnapshotStatus::Success,
                    timestamp: t.timestamp.clone(),
                    file_size: t.file_size,
                    width: t.width,
                    height: t.height,
                    tier: t.tier,
                    source: t.source(),
                    frame_age_ms: t.frame_age_ms,
                    capture_ms: t.capture_ms,
                    format: t.format,
                    position: position.clone(),
                };
                self.events.publish(Event::SnapshotTaken(SnapshotTaken {
                    device: device.into(),
                    taken: t,
                    position,
                }));
                Ok(result)
            }
            Err(e) => {
                let reason = match &e {
                    // a bad request is the caller's business, not an event
                    ServiceError::InvalidParam { .. } => return Err(e),
                    ServiceError::InvalidState { .. } => "device_disconnected",
                    ServiceError::InsufficientStorage { .. } => "insufficient_storage",
                    ServiceError::CaptureFailed { .. } | ServiceError::Dependency { .. } => "capture_failed",
                    _ => "internal_error",
                };
                let tiers_tried = match &e {
                    ServiceError::CaptureFailed { tiers_tried, .. } => tiers_tried.clone(),
                    _ => Vec::new(),
                };
                self.events.publish(Event::SnapshotFailed {
                    device: device.into(),
                    reason,
                    tiers_tried,
                });
                Err(e)
            }
        }
    }
}

impl Controller {
    /// Tags a JPEG with the vehicle position the MAVLink front end follows, if any.
    async fn geotag(&self, t: &mut crate::media::snapshot::Taken) -> Option<Geotag> {
        let p = crate::mavlink::position()?;
        if t.format != ImageFormat::Jpg {
            return Some(Geotag::from(&p));
        }
        let path = self.config.storage.snapshots_dir.join(&t.device).join(&t.filename);
        match blocking::unblock(move || crate::mavlink::exif::tag_file(&path, &p)).await {
            Ok(size) => t.file_size = size,
            Err(e) => log::warn!("{}: cannot write the geotag into {}: {e}", t.device, t.filename),
        }
        Some(Geotag::from(&p))
    }
}
