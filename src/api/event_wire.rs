//! Domain events → JSON-RPC notifications (api.md §9): the topic, the device it concerns and
//! its params. Runs once per publish; the bus then shares the text with every subscriber.

use super::events::{EventBus, Topic};
use crate::camera::registry::ChangeKind;
use crate::config::MediamtxConfig;
use crate::controller::cameras::CameraView;
use crate::controller::status::HealthStatus;
use crate::controller::Hosts;
use crate::events::{Event, HealthSnapshot, Lifecycle};
use crate::media::recording::RecEvent;
use crate::media::snapshot::Attempt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Makes `bus` receive every domain event of `events`.
pub fn attach(events: &crate::events::Events, bus: Arc<EventBus>, mediamtx: MediamtxConfig, hosts: Hosts) {
    let host = hosts.for_events();
    events.listen(move |e| {
        let (topic, device, params) = encode(e, &mediamtx, &host);
        bus.publish(topic, device, params);
    });
}

fn object(v: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn health_params(h: &HealthSnapshot) -> Map<String, Value> {
    let components: Map<String, Value> = h
        .components
        .iter()
        .map(|(n, c)| (n.to_string(), json!({"status": c.level, "message": c.message})))
        .collect();
    let mut p = Map::new();
    p.insert("status".into(), json!(HealthStatus::from(h.overall)));
    p.insert("components".into(), Value::Object(components));
    p
}

fn tiers(t: &[Attempt]) -> Value {
    serde_json::to_value(t).unwrap_or_default()
}

/// The notification of one event: topic, device (for the subscription filter) and params.
pub fn encode<'a>(e: &'a Event, mediamtx: &MediamtxConfig, host: &str) -> (Topic, Option<&'a str>, Map<String, Value>) {
    match e {
        Event::Camera { kind, camera, removed } => {
            let topic = match kind {
                ChangeKind::Connected => Topic::CameraConnected,
                ChangeKind::Disconnected => Topic::CameraDisconnected,
                ChangeKind::StatusChange => Topic::CameraStatusChange,
            };
            let mut p = object(CameraView::new(camera, mediamtx, host));
            if *removed {
                p.insert("removed".into(), Value::Bool(true));
            }
            (topic, Some(&camera.id), p)
        }
        Event::Recording(r) => match r {
            RecEvent::Started {
                device,
                filename,
                format,
                resumed,
            } => (
                Topic::RecordingStart,
                Some(device),
                object(
                    json!({"status": "RECORDING", "filename": filename, "format": format, "duration": 0, "resumed": resumed}),
                ),
            ),
            RecEvent::Stopped { device, summary, auto } => (
                Topic::RecordingStop,
                Some(device),
                object(
                    json!({"status": "STOPPED", "filename": summary.filename, "files": summary.files, "duration": summary.duration,
                       "file_size": summary.file_size, "format": summary.format, "auto_stop": auto}),
                ),
            ),
            RecEvent::Progress {
                device,
                filename,
                duration,
                bytes,
            } => (
                Topic::RecordingProgress,
                Some(device),
                object(json!({"status": "RECORDING", "filename": filename, "duration": duration, "bytes": bytes})),
            ),
            RecEvent::Error {
                device,
                filename,
                duration,
                reason,
                stopped,
            } => (
                Topic::RecordingError,
                Some(device),
                object(
                    json!({"status": "ERROR", "filename": filename, "duration": duration, "reason": reason.as_str(), "recording_stopped": stopped}),
                ),
            ),
        },
        Event::SnapshotTaken(s) => {
            let t = &s.taken;
            (Topic::SnapshotTaken, Some(&s.device), {
                let mut p = object(json!({
                    "filename": t.filename, "file_size": t.file_size, "tier": t.tier, "source": t.source(),
                    "frame_age_ms": t.frame_age_ms, "width": t.width, "height": t.height,
                    "capture_ms": t.capture_ms, "status": "SUCCESS", "timestamp": t.timestamp,
                }));
                if let Some(pos) = &s.position {
                    p.insert("position".into(), json!(pos));
                }
                p
            })
        }
        Event::SnapshotFailed {
            device,
            reason,
            tiers_tried,
        } => {
            let mut p = object(json!({"status": "ERROR", "reason": reason}));
            if !tiers_tried.is_empty() {
                p.insert("tiers_tried".into(), tiers(tiers_tried));
            }
            (Topic::SnapshotError, Some(device), p)
        }
        Event::StreamStarted { device } => (Topic::StreamStart, Some(device), object(json!({"status": "STARTED"}))),
        Event::StreamStopped {
            device,
            stream_continues,
        } => (
            Topic::StreamStop,
            Some(device),
            object(json!({"status": "STOPPED", "stream_continues": stream_continues})),
        ),
        Event::Health(h) => (Topic::SystemHealth, None, health_params(h)),
        Event::Lifecycle { kind, health, message } => {
            let mut p = health_params(health);
            p.insert("message".into(), Value::from(message.clone()));
            p.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
            let topic = match kind {
                Lifecycle::Startup => Topic::SystemStartup,
                Lifecycle::Shutdown => Topic::SystemShutdown,
            };
            (topic, None, p)
        }
        Event::StorageLowSpace {
            space,
            threshold_percent,
            min_free_bytes,
            message,
        } => (
            Topic::StorageLowSpace,
            None,
            object(json!({
                "status": "DEGRADED",
                "available_space": space.available,
                "total_space": space.total,
                "usage_percentage": space.usage_percentage(),
                "threshold_percent": threshold_percent,
                "min_free_bytes": min_free_bytes,
                "message": message,
            })),
        ),
    }
}
