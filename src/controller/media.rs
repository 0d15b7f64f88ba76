//! Streaming and recording operations (api.md §5) with typed results, and the wiring of the
//! media side: recording events, the MediaMTX health probe, recording checks, hot-plug.

use super::Controller;
use crate::camera::registry::{Camera, ChangeKind, Status};
use crate::config::{Config, RecordFormat};
use crate::error::ServiceError;
use crate::events::{Event, Events};
use crate::health::{Level, Monitor};
use crate::media::recording::{EndReason, RecEvent, RecSink, SpaceCheck};
use crate::media::service::{publisher_for, MediaService, StreamUrls};
use crate::mediamtx::breaker::State as BreakerState;
use crate::mediamtx::paths::Probe;
use crate::storage::{ActiveRecordings, Storage};
use schemars::JsonSchema;
use serde::Serialize;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};

pub use crate::media::service::{
    StreamEntry, StreamStarted, StreamStatus, StreamStatusInfo, StreamStopped, StreamUrlInfo,
};

pub(super) fn new_media(config: &Arc<Config>, events: &Arc<Events>, storage: &Arc<Storage>) -> Arc<MediaService> {
    let ev = events.clone();
    let sink: RecSink = Arc::new(move |e: RecEvent| ev.publish(Event::Recording(e)));
    // The floor (`storage.min_free_bytes`) is shared with the storage module.
    let st = storage.clone();
    let space: SpaceCheck = Arc::new(move || st.check_free_space());
    MediaService::new(config.clone(), sink, space)
}

/// "Is this file being written?" for deletion and retention: asked of the recording manager,
/// which knows the segments of every running recording, plus paths pinned through
/// `Controller::pin_being_written` (a test seam: black-box tests pin a file without running a
/// recording).
pub(super) struct WrittenNow {
    pub(super) pinned: std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>,
    media: OnceLock<Weak<MediaService>>,
}

impl WrittenNow {
    pub(super) fn new() -> WrittenNow {
        WrittenNow {
            pinned: Default::default(),
            media: OnceLock::new(),
        }
    }
    pub(super) fn attach(&self, media: &Arc<MediaService>) {
        let _ = self.media.set(Arc::downgrade(media));
    }
}

impl ActiveRecordings for WrittenNow {
    fn is_active(&self, path: &Path) -> bool {
        self.pinned.lock().unwrap().contains(path)
            || self
                .media
                .get()
                .and_then(Weak::upgrade)
                .is_some_and(|m| m.recordings().is_being_written(path))
    }
}

/// A recording's state as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordingStatus {
    Recording,
    Stopped,
    Error,
}

/// `start_recording`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RecordingStarted {
    pub device: String,
    /// First segment's file name.
    pub filename: String,
    pub status: RecordingStatus,
    pub start_time: String,
    /// Requested length in seconds of media; `null` = until stopped.
    pub duration: Option<u64>,
    pub format: RecordFormat,
}

/// `stop_recording`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RecordingStopped {
    pub device: String,
    pub filename: String,
    /// Every segment of the recording, oldest first.
    pub files: Vec<String>,
    pub status: RecordingStatus,
    pub start_time: String,
    pub end_time: String,
    /// Seconds.
    pub duration: f64,
    pub file_size: u64,
    pub format: RecordFormat,
}

impl Controller {
    pub fn media(&self) -> &Arc<MediaService> {
        &self.media
    }

    fn urls(&self, device: &str, client_host: &str) -> StreamUrls {
        StreamUrls::new(&self.config.mediamtx, &self.hosts.for_client(client_host), device)
    }

    /// Hot-plug: a connected camera gets its path; an unplugged one ends its recording
    /// (`recording.error` with `device_disconnected` goes out before MediaMTX is told).
    /// Both are short one-off tasks.
    pub(super) fn on_camera_change(self: &Arc<Self>, camera: &Camera, kind: ChangeKind) {
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
                smol::spawn(async move {
                    me.media.recordings().fail(&cam.id, EndReason::DeviceDisconnected).await;
                    me.media.reconcile_tap(&cam.id, Some(&cam)).await;
                })
                .detach();
            }
            ChangeKind::Disconnected | ChangeKind::StatusChange if camera.status != Status::Connected => {
                smol::spawn(async move { me.media.reconcile_tap(&cam.id, Some(&cam)).await }).detach();
            }
            _ => {}
        }
    }

    /// Reads recordings back and creates paths (one task), and starts the MediaMTX health
    /// monitor and the recording checks. Does not wait for MediaMTX.
    pub(super) async fn start_media(self: &Arc<Self>) {
        self.set_component("mediamtx", Level::Unhealthy, "not probed yet", true, false);
        let cams: Vec<Camera> = self.cameras.list();
        let publishers = cams
            .iter()
            .filter_map(|c| publisher_for(c).map(|p| (c.id.clone(), p)))
            .collect();
        let me = self.clone();
        self.tasks.spawn("recordings-restore", async move {
            me.media.recordings().restore(publishers).await;
            for c in cams.iter().filter(|c| c.status == Status::Connected) {
                if let Err(e) = me.media.ensure_path(c).await {
                    log::warn!("{}: cannot create its MediaMTX path yet: {e}", c.id);
                }
            }
        });

        let monitor = Monitor::new("mediamtx", self.config.mediamtx.health_interval.get());
        let (probe_me, report_me) = (self.clone(), Arc::downgrade(self));
        self.tasks.spawn(
            "mediamtx-health",
            monitor.run(
                self.shutdown.clone(),
                move || {
                    let me = probe_me.clone();
                    async move {
                        let cams = me.cameras.list();
                        let ours = cams.iter().map(|c| c.id.clone()).collect();
                        let probe = me.media.probe(ours).await;
                        me.media.reconcile_taps(&cams).await;
                        match probe {
                            Probe::Healthy { version, .. } => match me.media.client().breaker_state() {
                                BreakerState::Closed => (Level::Healthy, format!("MediaMTX {version} answering")),
                                _ => (Level::Degraded, format!("MediaMTX {version} answering after failures")),
                            },
                            Probe::Unreachable(e) => (Level::Unhealthy, format!("MediaMTX unreachable: {}", short(&e))),
                        }
                    }
                },
                move |level, msg| {
                    if let Some(me) = report_me.upgrade() {
                        me.set_component("mediamtx", level, msg, true, level != Level::Unhealthy);
                    }
                },
            ),
        );

        let me = self.clone();
        let shutdown = self.shutdown.clone();
        self.tasks.spawn("recording-checks", async move {
            let every = me.config.recording.progress_interval.get();
            loop {
                if super::stop_or_sleep(&shutdown, every).await {
                    return;
                }
                me.media.recordings().tick().await;
            }
        });
    }

    pub async fn start_streaming(&self, device: &str, client_host: &str) -> Result<StreamStarted, ServiceError> {
        let cam = self.cameras.get(device)?;
        let r = self
            .media
            .start_streaming(&cam, &self.urls(device, client_host))
            .await?;
        self.events.publish(Event::StreamStarted { device: device.into() });
        Ok(r)
    }

    pub async fn stop_streaming(&self, device: &str) -> Result<StreamStopped, ServiceError> {
        let cam = self.cameras.get(device)?;
        let r = self.media.stop_streaming(&cam).await?;
        self.events.publish(Event::StreamStopped {
            device: device.into(),
            stream_continues: r.stream_continues,
        });
        Ok(r)
    }

    pub async fn stream_url(&self, device: &str, client_host: &str) -> Result<StreamUrlInfo, ServiceError> {
        let cam = self.cameras.get(device)?;
        self.media.stream_url(&cam, self.urls(device, client_host)).await
    }

    pub async fn stream_status(&self, device: &str) -> Result<StreamStatusInfo, ServiceError> {
        let cam = self.cameras.get(device)?;
        self.media.stream_status(&cam).await
    }

    pub async fn streams(&self) -> Result<Vec<StreamEntry>, ServiceError> {
        self.media.streams(&self.cameras.list()).await
    }

    pub async fn start_recording(
        &self,
        device: &str,
        duration: Option<u64>,
        format: Option<RecordFormat>,
    ) -> Result<RecordingStarted, ServiceError> {
        let cam = self.cameras.get(device)?;
        let s = self.media.start_recording(&cam, duration, format).await?;
        Ok(RecordingStarted {
            device: s.device,
            filename: s.filename,
            status: RecordingStatus::Recording,
            start_time: s.start_time,
            duration: s.duration,
            format: s.format,
        })
    }

    pub async fn stop_recording(&self, device: &str) -> Result<RecordingStopped, ServiceError> {
        self.cameras.get(device)?;
        let s = self.media.stop_recording(device).await?;
        Ok(RecordingStopped {
            device: s.device,
            filename: s.filename,
            files: s.files,
            status: RecordingStatus::Stopped,
            start_time: s.start_time,
            end_time: s.end_time,
            duration: s.duration,
            file_size: s.file_size,
            format: s.format,
        })
    }
}

/// Error texts of transport failures can be long; health shows the gist.
fn short(e: &str) -> String {
    e.chars().take(160).collect()
}
