//! The controller's streaming and recording operations (api.md §5) and the wiring of the
//! media side: MediaMTX health probe, recording checks, camera hot-plug reactions.

use crate::api::events::{EventBus, Topic};
use crate::camera::registry::{Camera, ChangeKind, Status};
use crate::config::{Config, RecordFormat};
use crate::controller::Controller;
use crate::error::ServiceError;
use crate::health::Level;
use crate::media::recording::{EndReason, RecEvent, RecSink, SpaceCheck};
use crate::media::service::{publisher_for, MediaService};
use crate::mediamtx::breaker::State as BreakerState;
use crate::mediamtx::paths::Probe;
use crate::shutdown::Shutdown;
use crate::storage::{ActiveRecordings, ActiveSegments, Storage};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub(crate) fn new_media(config: &Arc<Config>, bus: &Arc<EventBus>, storage: &Arc<Storage>) -> Arc<MediaService> {
    let b = bus.clone();
    let sink: RecSink = Arc::new(move |e: RecEvent| {
        let (topic, device, params) = recording_event_params(&e);
        b.publish(topic, Some(&device), params);
    });
    // The floor (`storage.min_free_bytes`) is shared with the storage module.
    let st = storage.clone();
    let space: SpaceCheck = Arc::new(move || st.check_free_space());
    MediaService::new(config.clone(), sink, space)
}

/// "Is this file being written?" for deletion and retention: the newest segment of every
/// running recording, plus files marked by hand (tests, future writers).
pub(crate) struct WrittenNow {
    marked: Arc<ActiveSegments>,
    media: OnceLock<Weak<MediaService>>,
}

impl WrittenNow {
    pub(crate) fn new(marked: Arc<ActiveSegments>) -> WrittenNow {
        WrittenNow {
            marked,
            media: OnceLock::new(),
        }
    }
    pub(crate) fn attach(&self, media: &Arc<MediaService>) {
        let _ = self.media.set(Arc::downgrade(media));
    }
}

impl ActiveRecordings for WrittenNow {
    fn is_active(&self, path: &Path) -> bool {
        self.marked.is_active(path)
            || self
                .media
                .get()
                .and_then(Weak::upgrade)
                .is_some_and(|m| m.recordings().is_being_written(path))
    }
}

/// `recording_status_update` params for a recording event.
fn recording_event_params(e: &RecEvent) -> (Topic, String, Map<String, Value>) {
    let (topic, device, v) = match e {
        RecEvent::Started {
            device,
            filename,
            format,
            resumed,
        } => (
            Topic::RecordingStart,
            device,
            json!({"status": "RECORDING", "filename": filename, "format": format.as_str(), "duration": 0, "resumed": resumed}),
        ),
        RecEvent::Stopped { device, summary, auto } => (
            Topic::RecordingStop,
            device,
            json!({"status": "STOPPED", "filename": summary.filename, "files": summary.files, "duration": summary.duration,
                   "file_size": summary.file_size, "format": summary.format.as_str(), "auto_stop": auto}),
        ),
        RecEvent::Progress {
            device,
            filename,
            duration,
            bytes,
        } => (
            Topic::RecordingProgress,
            device,
            json!({"status": "RECORDING", "filename": filename, "duration": duration, "bytes": bytes}),
        ),
        RecEvent::Error {
            device,
            filename,
            duration,
            reason,
            stopped,
        } => (
            Topic::RecordingError,
            device,
            json!({"status": "ERROR", "filename": filename, "duration": duration, "reason": reason.as_str(), "recording_stopped": stopped}),
        ),
    };
    (topic, device.clone(), v.as_object().cloned().unwrap_or_default())
}

impl Controller {
    pub fn media(&self) -> &Arc<MediaService> {
        &self.media
    }

    fn camera(&self, device: &str) -> Result<Camera, ServiceError> {
        self.cameras().get(device)
    }

    fn urls(&self, device: &str, client_host: &str) -> Value {
        crate::camera::stream_urls(&self.config().mediamtx, &self.url_host(client_host), device)
    }

    /// Hot-plug: a connected camera gets its path; an unplugged one ends its recording
    /// (`recording.error` with `device_disconnected` goes out before MediaMTX is told).
    pub(crate) fn on_camera_change(self: &Arc<Self>, camera: &Camera, kind: ChangeKind) {
        let me = self.clone();
        let cam = camera.clone();
        match kind {
            ChangeKind::Connected => {
                smol::spawn(async move {
                    if let Err(e) = me.media.ensure_path(&cam).await {
                        log::warn!("{}: cannot create its MediaMTX path yet: {e}", cam.id);
                    }
                })
                .detach();
            }
            ChangeKind::Disconnected | ChangeKind::StatusChange
                if camera.status != Status::Connected && me.media.recordings().is_recording(&cam.id) =>
            {
                smol::spawn(async move { me.media.recordings().fail(&cam.id, EndReason::DeviceDisconnected).await })
                    .detach();
            }
            _ => {}
        }
    }

    /// Reads recordings back, creates paths, and starts the MediaMTX probe and the
    /// recording checks. Does not wait for MediaMTX.
    pub async fn start_media(self: &Arc<Self>, shutdown: Shutdown) {
        self.set_component("mediamtx", Level::Unhealthy, "not probed yet", true, false);
        let cams: Vec<Camera> = self.cameras().list();
        let publishers = cams
            .iter()
            .filter_map(|c| publisher_for(c).map(|p| (c.id.clone(), p)))
            .collect();
        let me = self.clone();
        smol::spawn(async move {
            me.media.recordings().restore(publishers).await;
            for c in cams.iter().filter(|c| c.status == Status::Connected) {
                if let Err(e) = me.media.ensure_path(c).await {
                    log::warn!("{}: cannot create its MediaMTX path yet: {e}", c.id);
                }
            }
        })
        .detach();

        let me = self.clone();
        let sd = shutdown.clone();
        smol::spawn(async move {
            let every = me.config().mediamtx.health_interval.get();
            loop {
                let ours = me.cameras().list().into_iter().map(|c| c.id).collect();
                let (level, msg) = match me.media.probe(ours).await {
                    Probe::Healthy { version, .. } => match me.media.client().breaker_state() {
                        BreakerState::Closed => (Level::Healthy, format!("MediaMTX {version} answering")),
                        _ => (Level::Degraded, format!("MediaMTX {version} answering after failures")),
                    },
                    Probe::Unreachable(e) => (Level::Unhealthy, format!("MediaMTX unreachable: {}", short(&e))),
                };
                me.set_component("mediamtx", level, &msg, true, level != Level::Unhealthy);
                if stop_or_sleep(&sd, every).await {
                    return;
                }
            }
        })
        .detach();

        let me = self.clone();
        smol::spawn(async move {
            let every = me.config().recording.progress_interval.get();
            loop {
                if stop_or_sleep(&shutdown, every).await {
                    return;
                }
                me.media.recordings().tick().await;
            }
        })
        .detach();
    }

    pub async fn start_streaming(&self, device: &str, client_host: &str) -> Result<Value, ServiceError> {
        let cam = self.camera(device)?;
        let r = self
            .media
            .start_streaming(&cam, &self.urls(device, client_host))
            .await?;
        self.bus().publish(
            Topic::StreamStart,
            Some(device),
            json!({"status": "STARTED"}).as_object().cloned().unwrap_or_default(),
        );
        Ok(r)
    }

    pub async fn stop_streaming(&self, device: &str) -> Result<Value, ServiceError> {
        let cam = self.camera(device)?;
        let r = self.media.stop_streaming(&cam).await?;
        self.bus().publish(
            Topic::StreamStop,
            Some(device),
            json!({"status": "STOPPED", "stream_continues": r["stream_continues"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        Ok(r)
    }

    pub async fn stream_url(&self, device: &str, client_host: &str) -> Result<Value, ServiceError> {
        let cam = self.camera(device)?;
        self.media.stream_url(&cam, &self.urls(device, client_host)).await
    }

    pub async fn stream_status(&self, device: &str) -> Result<Value, ServiceError> {
        let cam = self.camera(device)?;
        self.media.stream_status(&cam).await
    }

    pub async fn streams(&self) -> Result<Value, ServiceError> {
        self.media.streams(&self.cameras().list()).await
    }

    pub async fn start_recording(
        &self,
        device: &str,
        duration: Option<u64>,
        format: Option<RecordFormat>,
    ) -> Result<Value, ServiceError> {
        let cam = self.camera(device)?;
        let s = self.media.start_recording(&cam, duration, format).await?;
        Ok(
            json!({"device": s.device, "filename": s.filename, "status": "RECORDING", "start_time": s.start_time, "duration": s.duration, "format": s.format.as_str()}),
        )
    }

    pub async fn stop_recording(&self, device: &str) -> Result<Value, ServiceError> {
        self.camera(device)?;
        let s = self.media.stop_recording(device).await?;
        Ok(json!({
            "device": s.device, "filename": s.filename, "files": s.files, "status": "STOPPED", "start_time": s.start_time,
            "end_time": s.end_time, "duration": s.duration, "file_size": s.file_size, "format": s.format.as_str(),
        }))
    }
}

/// Error texts of transport failures can be long; health shows the gist.
fn short(e: &str) -> String {
    e.chars().take(160).collect()
}

/// Sleeps `d`; true when shutdown came first.
async fn stop_or_sleep(shutdown: &Shutdown, d: Duration) -> bool {
    futures_lite::future::or(
        async {
            shutdown.wait().await;
            true
        },
        async {
            smol::Timer::after(d).await;
            false
        },
    )
    .await
}
