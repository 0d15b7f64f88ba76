//! The controller's snapshot operation (api.md §6) and its events: `snapshot.taken` on
//! success, `snapshot.error` (with `reason`) when a snapshot could not be taken.

use crate::api::events::Topic;
use crate::controller::Controller;
use crate::error::ServiceError;
use crate::media::snapshot::{Request, SnapshotManager};
use serde_json::{Map, Value};
use std::sync::Arc;

impl Controller {
    /// Snapshot tiers and their figures: `snapshots().tier_stats()` gives per-tier success and
    /// failure counts and latency sums for `/metrics`.
    pub fn snapshots(&self) -> &Arc<SnapshotManager> {
        &self.snapshots
    }

    pub async fn take_snapshot(&self, device: &str, req: Request) -> Result<Value, ServiceError> {
        let cam = self.cameras().get(device)?;
        match self.snapshots.take(&cam, req).await {
            Ok(t) => {
                let mut p = Map::new();
                p.insert("filename".into(), Value::from(t.filename.clone()));
                p.insert("file_size".into(), Value::from(t.file_size));
                p.insert("tier".into(), Value::from(t.tier.as_str()));
                p.insert("width".into(), Value::from(t.width));
                p.insert("height".into(), Value::from(t.height));
                p.insert("capture_ms".into(), Value::from(t.capture_ms));
                p.insert("status".into(), Value::from("SUCCESS"));
                p.insert("timestamp".into(), Value::from(t.timestamp.clone()));
                self.bus().publish(Topic::SnapshotTaken, Some(device), p);
                Ok(t.to_json())
            }
            Err(e) => {
                let reason = match &e {
                    // a bad request is the caller's business, not an event
                    ServiceError::InvalidParam { .. } => return Err(e),
                    ServiceError::InvalidState { .. } => "device_disconnected",
                    ServiceError::InsufficientStorage { .. } => "insufficient_storage",
                    ServiceError::DependencyWithData { .. } | ServiceError::Dependency { .. } => "capture_failed",
                    _ => "internal_error",
                };
                let mut p = Map::new();
                p.insert("status".into(), Value::from("ERROR"));
                p.insert("reason".into(), Value::from(reason));
                if let ServiceError::DependencyWithData { data, .. } = &e {
                    if let Some(t) = data.get("tiers_tried") {
                        p.insert("tiers_tried".into(), t.clone());
                    }
                }
                self.bus().publish(Topic::SnapshotError, Some(device), p);
                Err(e)
            }
        }
    }
}
