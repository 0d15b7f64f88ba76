//! Streams and recordings of cameras (api.md §5): the operations the controller exposes,
//! built on the MediaMTX client, the path manager and the recording manager.

use super::recording::{RecSink, RecordingManager, SpaceCheck, Started, Summary};
use super::tap::{Codec, Taps};
use crate::camera::registry::{Camera, SourceType, Status};
use crate::clock;
use crate::config::{Config, RecordFormat};
use crate::error::ServiceError;
use crate::mediamtx::breaker::State as BreakerState;
use crate::mediamtx::client::Client;
use crate::mediamtx::paths::{ffmpeg_input_format, PathManager, Probe, Publisher};
use schemars::JsonSchema;
use serde::Serialize;
use std::sync::Arc;

/// `{rtsp, hls, webrtc}` of one camera as seen from one host.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamUrls {
    pub rtsp: String,
    pub hls: String,
    pub webrtc: String,
}

impl StreamUrls {
    pub fn new(m: &crate::config::MediamtxConfig, host: &str, id: &str) -> StreamUrls {
        let h = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        StreamUrls {
            rtsp: format!("rtsp://{h}:{}/{id}", m.rtsp_port),
            hls: format!("http://{h}:{}/{id}/index.m3u8", m.hls_port),
            webrtc: format!("http://{h}:{}/{id}/whep", m.webrtc_port),
        }
    }
}

/// A stream's state as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Started,
    Stopped,
    Active,
    Inactive,
    NotReady,
}

/// `start_streaming`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamStarted {
    pub device: String,
    pub stream_name: String,
    pub stream_url: String,
    pub status: StreamStatus,
    pub start_time: String,
    /// e.g. `"10s"`: MediaMTX closes the on-demand publisher this long after the last reader.
    pub auto_close_after: String,
}

/// `stop_streaming`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamStopped {
    pub device: String,
    pub stream_name: String,
    pub status: StreamStatus,
    /// Other readers or a recording keep the stream up.
    pub stream_continues: bool,
}

/// `get_stream_url`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamUrlInfo {
    pub device: String,
    pub stream_name: String,
    pub stream_url: String,
    pub available: bool,
    pub active_consumers: usize,
    pub stream_status: StreamStatus,
    pub urls: StreamUrls,
}

/// `get_stream_status`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamStatusInfo {
    pub device: String,
    pub stream_name: String,
    pub status: StreamStatus,
    pub ready: bool,
    pub viewers: usize,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub start_time: Option<String>,
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// One entry of `get_streams`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StreamEntry {
    pub name: String,
    pub source: Option<String>,
    pub ready: bool,
    pub readers: usize,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// MediaMTX's runtime view of our paths, refreshed by the health probe (for metrics that
/// must answer without calling MediaMTX).
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    pub active_streams: usize,
    pub total_streams: usize,
    pub total_viewers: usize,
    /// Paths with a stream available.
    pub available: Vec<String>,
}

pub struct MediaService {
    stats: std::sync::Mutex<StreamStats>,
    config: Arc<Config>,
    client: Arc<Client>,
    paths: Arc<PathManager>,
    recordings: Arc<RecordingManager>,
    taps: Arc<Taps>,
}

/// The publisher for a camera: simulated → lavfi; V4L2 → FFmpeg capture at the camera's
/// current mode, MJPEG input preferred when the camera offers it at that size (less USB
/// bandwidth, and FFmpeg decodes it cheaply); external streams → their URL, pulled by MediaMTX.
pub fn publisher_for(c: &Camera) -> Option<Publisher> {
    let (w, h) = c.resolution;
    let fps = c.fps.max(1);
    match c.source {
        SourceType::Simulated => Some(Publisher::Lavfi {
            pattern: c.pattern.clone().unwrap_or_else(|| "testsrc2".into()),
            width: w,
            height: h,
            fps,
        }),
        SourceType::V4l2 => {
            let at_size = |f: &str| c.modes.iter().any(|m| m.format == f && m.width == w && m.height == h);
            // A format chosen with set_camera_settings first, when offered at this size.
            let fourcc = (c.settings.format.as_deref().filter(|f| at_size(f)))
                .or_else(|| {
                    ["MJPG", "YUYV", "NV12", "YU12", "UYVY", "H264"]
                        .into_iter()
                        .find(|f| at_size(f))
                })
                .or_else(|| c.modes.first().map(|m| m.format.as_str()));
            Some(Publisher::V4l2 {
                device: c.devnode.clone()?,
                input_format: fourcc.and_then(ffmpeg_input_format).map(String::from),
                width: w,
                height: h,
                fps,
                encode: crate::mediamtx::paths::Encode {
                    bitrate: c.settings.bitrate.clone(),
                    gop: c.settings.gop,
                    encoder: c.settings.encoder.clone(),
                },
            })
        }
        SourceType::Rtsp => c.source_url.as_ref().map(|u| Publisher::Url {
            url: u.expose().to_string(),
        }),
    }
}

fn require_connected(c: &Camera) -> Result<(), ServiceError> {
    if c.status != Status::Connected {
        return Err(ServiceError::InvalidState {
            state: c.status.as_str().to_lowercase(),
            details: format!("{} is {}", c.id, c.status.as_str()),
        });
    }
    Ok(())
}

fn publisher_or_err(c: &Camera) -> Result<Publisher, ServiceError> {
    publisher_for(c).ok_or_else(|| ServiceError::Unsupported {
        feature: "streaming",
        details: format!("{} has no capture node", c.id),
    })
}

impl MediaService {
    pub fn new(config: Arc<Config>, rec_events: RecSink, space: SpaceCheck) -> Arc<MediaService> {
        let client = Arc::new(Client::new(&config.mediamtx));
        let paths = Arc::new(PathManager::new(client.clone(), config.clone()));
        let recordings = RecordingManager::new(config.clone(), paths.clone(), rec_events, space);
        Arc::new(MediaService {
            stats: Default::default(),
            config: config.clone(),
            client,
            paths,
            recordings,
            taps: Arc::new(Taps::new(config.clone())),
        })
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
    pub fn paths(&self) -> &Arc<PathManager> {
        &self.paths
    }
    pub fn recordings(&self) -> &Arc<RecordingManager> {
        &self.recordings
    }
    pub fn taps(&self) -> &Arc<Taps> {
        &self.taps
    }

    /// Readers of `device`'s stream that are ours, not viewers: the recording keepalive and
    /// the frame tap.
    fn own_readers(&self, device: &str) -> usize {
        self.recordings.is_recording(device) as usize + self.taps.readers(device)
    }

    /// Starts or stops `device`'s frame tap: wanted while it streams (`start_streaming`) or
    /// records and is connected. The codec is MediaMTX's when the stream is up, else our
    /// publisher's encoder; an external stream that is not up yet gets its tap on a later
    /// call (the health probe, a photo).
    pub async fn reconcile_tap(&self, device: &str, cam: Option<&Camera>) {
        let connected = cam.is_some_and(|c| c.status == Status::Connected);
        if !connected {
            self.taps.set_streaming(device, false);
        }
        let wanted = self.config.snapshot.frame_tap
            && connected
            && (self.taps.is_streaming(device) || self.recordings.is_recording(device));
        if !wanted {
            if self.taps.is_running(device) {
                let (taps, d) = (self.taps.clone(), device.to_string());
                blocking::unblock(move || taps.stop(&d)).await;
            }
            return;
        }
        if self.taps.is_running(device) {
            return;
        }
        let from_mediamtx = match self.paths.runtime(device).await {
            Ok(Some(rt)) if rt.available => rt.video().map(|(c, _, _)| Codec::from_mediamtx(c)),
            _ => None,
        };
        let codec = match (from_mediamtx, cam.and_then(publisher_for)) {
            (Some(c), _) => c,
            (None, Some(Publisher::Lavfi { .. })) => Some(Codec::from_encoder(&self.config.ffmpeg.encoder)),
            (None, Some(Publisher::V4l2 { encode, .. })) => Some(Codec::from_encoder(
                encode.encoder.as_deref().unwrap_or(&self.config.ffmpeg.encoder),
            )),
            (None, _) => None,
        };
        match codec {
            Some(c) => self.taps.start(device, c),
            None => log::debug!("{device}: no frame tap (stream not up, or not H.264/H.265)"),
        }
    }

    /// Stops `device`'s tap when neither streaming nor a recording wants it any more.
    pub async fn release_tap_if_unwanted(&self, device: &str) {
        if self.taps.is_running(device) && !self.taps.is_streaming(device) && !self.recordings.is_recording(device) {
            let (taps, d) = (self.taps.clone(), device.to_string());
            blocking::unblock(move || taps.stop(&d)).await;
        }
    }

    /// [`Self::reconcile_tap`] for every camera with a tap, a streaming mark or a recording
    /// (after the health probe: recordings that ended by themselves, cameras gone).
    pub async fn reconcile_taps(&self, cameras: &[Camera]) {
        let mut devices = self.taps.devices();
        devices.extend(self.recordings.active_devices());
        devices.sort();
        devices.dedup();
        for d in devices {
            self.reconcile_tap(&d, cameras.iter().find(|c| c.id == d)).await;
        }
    }

    /// Stops every frame tap and waits for their readers (service shutdown).
    pub async fn stop_taps(&self) {
        let taps = self.taps.clone();
        blocking::unblock(move || taps.stop_all()).await;
    }

    /// Fails fast with -32050 while the circuit breaker is open.
    fn check_breaker(&self) -> Result<(), ServiceError> {
        if self.client.breaker_state() == BreakerState::Open {
            return Err(ServiceError::Dependency {
                dependency: "mediamtx",
                details: "MediaMTX is unreachable (circuit open); retrying in the background".into(),
            });
        }
        Ok(())
    }

    /// Makes sure a connected camera's path exists (called on discovery).
    pub async fn ensure_path(&self, c: &Camera) -> Result<(), ServiceError> {
        let p = publisher_or_err(c)?;
        self.paths.ensure(&c.id, p).await.map_err(Into::into)
    }

    /// `urls` = the camera's `{rtsp, hls, webrtc}` as seen by this client.
    pub async fn start_streaming(&self, c: &Camera, urls: &StreamUrls) -> Result<StreamStarted, ServiceError> {
        require_connected(c)?;
        self.check_breaker()?;
        self.ensure_path(c).await?;
        self.taps.set_streaming(&c.id, true);
        self.reconcile_tap(&c.id, Some(c)).await;
        let close_after = self.config.recording.on_demand_close_after.get().as_secs();
        Ok(StreamStarted {
            device: c.id.clone(),
            stream_name: c.id.clone(),
            stream_url: urls.rtsp.clone(),
            status: StreamStatus::Started,
            start_time: clock::now_rfc3339(),
            auto_close_after: format!("{close_after}s"),
        })
    }

    pub async fn stop_streaming(&self, c: &Camera) -> Result<StreamStopped, ServiceError> {
        self.check_breaker()?;
        let recording = self.recordings.is_recording(&c.id);
        let rt = self.paths.runtime(&c.id).await?;
        let viewers = rt
            .as_ref()
            .map_or(0, |p| p.readers.len())
            .saturating_sub(self.own_readers(&c.id));
        self.taps.set_streaming(&c.id, false);
        self.release_tap_if_unwanted(&c.id).await;
        Ok(StreamStopped {
            device: c.id.clone(),
            stream_name: c.id.clone(),
            status: StreamStatus::Stopped,
            stream_continues: recording || viewers > 0,
        })
    }

    pub async fn stream_url(&self, c: &Camera, urls: StreamUrls) -> Result<StreamUrlInfo, ServiceError> {
        self.check_breaker()?;
        let rt = self.paths.runtime(&c.id).await?;
        let own = self.own_readers(&c.id);
        let (available, consumers, status) = match &rt {
            None => (false, 0, StreamStatus::NotReady),
            Some(p) => (
                p.available,
                p.readers.len().saturating_sub(own),
                if p.available {
                    StreamStatus::Active
                } else {
                    StreamStatus::Inactive
                },
            ),
        };
        Ok(StreamUrlInfo {
            device: c.id.clone(),
            stream_name: c.id.clone(),
            stream_url: urls.rtsp.clone(),
            available,
            active_consumers: consumers,
            stream_status: status,
            urls,
        })
    }

    pub async fn stream_status(&self, c: &Camera) -> Result<StreamStatusInfo, ServiceError> {
        self.check_breaker()?;
        let rt = self.paths.runtime(&c.id).await?.ok_or_else(|| ServiceError::NotFound {
            resource: "stream",
            id: c.id.clone(),
        })?;
        let own = self.own_readers(&c.id);
        let (codec, w, h) = rt
            .video()
            .map(|(c, w, h)| (Some(c.to_string()), w, h))
            .unwrap_or((None, None, None));
        Ok(StreamStatusInfo {
            device: c.id.clone(),
            stream_name: c.id.clone(),
            status: if rt.available {
                StreamStatus::Active
            } else {
                StreamStatus::Inactive
            },
            ready: rt.available,
            viewers: rt.readers.len().saturating_sub(own),
            bytes_received: rt.inbound_bytes,
            bytes_sent: rt.outbound_bytes,
            start_time: rt.available_time.clone(),
            codec,
            width: w,
            height: h,
        })
    }

    pub async fn streams(&self, cameras: &[Camera]) -> Result<Vec<StreamEntry>, ServiceError> {
        self.check_breaker()?;
        let names: Vec<String> = cameras.iter().map(|c| c.id.clone()).collect();
        let paths = self
            .client
            .run(move |c| {
                names
                    .iter()
                    .map(|n| c.get_path(n).map(|p| (n.clone(), p)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(paths
            .into_iter()
            .filter_map(|(n, p)| p.map(|p| (n, p)))
            .map(|(n, p)| StreamEntry {
                name: n,
                source: p.source.map(|s| s.kind),
                ready: p.available,
                readers: p.readers.len(),
                bytes_sent: p.outbound_bytes,
                bytes_received: p.inbound_bytes,
            })
            .collect())
    }

    pub async fn start_recording(
        &self,
        c: &Camera,
        duration: Option<u64>,
        format: Option<RecordFormat>,
    ) -> Result<Started, ServiceError> {
        require_connected(c)?;
        self.check_breaker()?;
        let p = publisher_or_err(c)?;
        let started = self
            .recordings
            .start(
                &c.id,
                p,
                duration,
                format.unwrap_or(self.config.recording.default_format),
            )
            .await?;
        self.reconcile_tap(&c.id, Some(c)).await;
        Ok(started)
    }

    pub async fn stop_recording(&self, device: &str) -> Result<Summary, ServiceError> {
        let r = self.recordings.stop(device).await;
        self.release_tap_if_unwanted(device).await;
        r
    }

    pub fn stream_stats(&self) -> StreamStats {
        self.stats.lock().unwrap().clone()
    }

    /// One health probe; re-applied paths after a restart resume recordings; an unreachable
    /// MediaMTX interrupts them (reported at once). `ours` are this service's path names,
    /// for the stream statistics.
    pub async fn probe(&self, ours: Vec<String>) -> Probe {
        let r = self.paths.probe().await;
        if let Probe::Unreachable(_) = &r {
            self.recordings.mediamtx_unavailable();
        }
        if let Probe::Healthy { reapplied, .. } = &r {
            if *reapplied > 0 {
                self.recordings.mediamtx_unavailable();
            }
            if let Ok(paths) = self.client.run(|c| c.list_paths()).await {
                let mine: Vec<_> = paths.into_iter().filter(|p| ours.contains(&p.name)).collect();
                *self.stats.lock().unwrap() = StreamStats {
                    active_streams: mine.iter().filter(|p| p.available).count(),
                    available: mine.iter().filter(|p| p.available).map(|p| p.name.clone()).collect(),
                    total_streams: mine.len(),
                    // the recording keepalive readers and the frame taps are not viewers
                    total_viewers: mine
                        .iter()
                        .map(|p| p.readers.len().saturating_sub(self.own_readers(&p.name)))
                        .sum(),
                };
            }
        }
        r
    }
}
