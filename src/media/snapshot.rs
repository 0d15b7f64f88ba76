//! Snapshots (api.md §6): one still image from a camera through a chain of capture tiers,
//! fastest first, falling back when a tier fails.
//!
//! | tier | how | when |
//! |---|---|---|
//! | `v4l2_direct` | the node opened with the `v4l` crate, mmap buffers, warm-up frames dropped, one frame kept | V4L2 camera not in use |
//! | `ffmpeg_direct` | FFmpeg reads one frame from the node | V4L2 camera not in use |
//! | `rtsp_immediate` | FFmpeg reads one frame from the MediaMTX stream | the stream is available |
//! | `rtsp_activation` | the path is ensured and read: on-demand publishing starts | always |
//!
//! A V4L2 camera that is in use (recording, a MediaMTX stream available or read, or `EBUSY`
//! from the driver) skips the device tiers; simulated and external cameras start at
//! `rtsp_immediate`. The order, the per-tier timeouts and the warm-up are configuration
//! (`[snapshot]`). Calls for one camera are serialised by a per-camera async lock; different
//! cameras capture in parallel. Every blocking step (ioctls, FFmpeg, encoding, file writes)
//! runs on the blocking pool.

use super::image::{self, Encoded, Frame, ImageFormat};
use super::service::{publisher_for, MediaService};
use crate::camera::registry::{Camera, SourceType, Status};
use crate::config::Config;
use crate::error::ServiceError;
use crate::mediamtx::paths::Publisher;
use crate::storage::files::{self, Kind};
use crate::storage::Storage;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::macros::format_description;
use time::OffsetDateTime;

/// A capture tier, in the contract's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    V4l2Direct,
    FfmpegDirect,
    RtspImmediate,
    RtspActivation,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::V4l2Direct,
        Tier::FfmpegDirect,
        Tier::RtspImmediate,
        Tier::RtspActivation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::V4l2Direct => "v4l2_direct",
            Tier::FfmpegDirect => "ffmpeg_direct",
            Tier::RtspImmediate => "rtsp_immediate",
            Tier::RtspActivation => "rtsp_activation",
        }
    }
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
    fn index(self) -> usize {
        self as usize
    }
    /// Tiers that open the capture device themselves.
    fn uses_device(self) -> bool {
        matches!(self, Tier::V4l2Direct | Tier::FfmpegDirect)
    }
}

/// What the client asked for (validated by the API layer).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub format: ImageFormat,
    pub quality: u8,
    /// Client-chosen bare name (validated here with the storage rules).
    pub filename: Option<String>,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
}

/// A snapshot written to disk.
#[derive(Clone, Debug, PartialEq)]
pub struct Taken {
    pub device: String,
    pub filename: String,
    pub file_size: u64,
    pub width: u32,
    pub height: u32,
    pub tier: Tier,
    pub capture_ms: u64,
    pub timestamp: String,
    pub format: ImageFormat,
    /// The image came from the frame tap (tier `rtsp_immediate`), see media::tap.
    pub tap: bool,
    /// Age of the delivered frame when it was captured: for the tap, since its newest access
    /// unit arrived; 0 for the tiers (they capture a new frame for the request).
    pub frame_age_ms: u64,
}

/// What produced a snapshot (`source` in the result and `snapshot.taken`, api.md §12): the
/// frame tap, or the tier's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    FrameTap,
    V4l2Direct,
    FfmpegDirect,
    RtspImmediate,
    RtspActivation,
}

impl Taken {
    pub fn source(&self) -> Source {
        match (self.tap, self.tier) {
            (true, _) => Source::FrameTap,
            (false, Tier::V4l2Direct) => Source::V4l2Direct,
            (false, Tier::FfmpegDirect) => Source::FfmpegDirect,
            (false, Tier::RtspImmediate) => Source::RtspImmediate,
            (false, Tier::RtspActivation) => Source::RtspActivation,
        }
    }
}

/// Why one tier did not deliver (one entry of `data.tiers_tried`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Attempt {
    pub tier: Tier,
    /// Stable token: `device_busy`, `stream_not_available`, `timeout`, `capture_failed`,
    /// `unsupported_format`, `ffmpeg_failed`, `mediamtx_unavailable`, `not_applicable`.
    pub reason: &'static str,
    pub details: String,
    /// False when the tier was skipped without being run (busy device, no device node).
    pub attempted: bool,
    pub elapsed_ms: u64,
}

struct TierFail {
    reason: &'static str,
    details: String,
}

fn fail(reason: &'static str, details: impl Into<String>) -> TierFail {
    TierFail {
        reason,
        details: details.into(),
    }
}

#[derive(Default)]
struct TierCounters {
    successes: AtomicU64,
    failures: AtomicU64,
    latency_us_sum: AtomicU64,
}

/// Per-tier figures for `/metrics` ("snapshot latency by tier"), read with
/// [`SnapshotManager::tier_stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct TierStats {
    pub tier: &'static str,
    /// Snapshots this tier delivered.
    pub successes: u64,
    /// Times this tier was run and failed (skipped tiers are not counted).
    pub failures: u64,
    /// Sum of `capture_ms` (request start to file written, as microseconds → seconds) of the
    /// snapshots this tier delivered: with `successes` it forms a Prometheus summary.
    pub latency_seconds_sum: f64,
}

/// Totals over all tiers, for `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotTotals {
    pub requests: u64,
    pub succeeded: u64,
    /// Requests that reached the tier chain and got -32050 (all tiers failed).
    pub failed: u64,
}

pub struct SnapshotManager {
    config: Arc<Config>,
    media: Arc<MediaService>,
    storage: Arc<Storage>,
    locks: Mutex<HashMap<String, Arc<async_lock::Mutex<()>>>>,
    tiers: [TierCounters; 4],
    requests: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// Default file name `cameraN_YYYY-MM-DD_HH-MM-SS-mmm.<ext>` (UTC).
pub fn default_name(device: &str, t: OffsetDateTime, format: ImageFormat) -> String {
    let stamp = t
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]_[hour]-[minute]-[second]-[subsecond digits:3]"
        ))
        .unwrap_or_default();
    format!("{device}_{stamp}.{}", format.extension())
}

/// The client's name with the extension added when missing (api.md §6), checked with the
/// storage rules (§7). A name carrying another camera's `cameraN_` prefix is refused: the
/// file methods would look for it in that camera's folder.
pub fn client_name(device: &str, name: &str, format: ImageFormat) -> Result<String, ServiceError> {
    files::validate_name(name)?;
    let full = match files::file_format(Kind::Snapshot, name) {
        Some(f) if f == format.as_str() => name.to_string(),
        Some(f) => {
            return Err(ServiceError::InvalidParam {
                param: "filename",
                details: format!("the filename's extension says {f} but format is {}", format.as_str()),
            })
        }
        None => format!("{name}.{}", format.extension()),
    };
    files::validate_name(&full)?;
    if let Some(cam) = files::camera_of(&full) {
        if cam != device {
            return Err(ServiceError::InvalidParam {
                param: "filename",
                details: format!("a filename starting with {cam}_ must be a snapshot of {cam}"),
            });
        }
    }
    Ok(full)
}

fn exists_err() -> ServiceError {
    ServiceError::InvalidParam {
        param: "filename",
        details: "a snapshot with this filename already exists (snapshots are never overwritten)".into(),
    }
}

/// Writes `bytes` as `<root>/<device>/<name>` without ever replacing a file: written to a
/// hidden temporary first, then hard-linked to its name (`EEXIST` if taken), so a listing
/// never shows a half-written image. Returns false when the name is taken.
fn write_new(root: &Path, device: &str, name: &str, bytes: &[u8]) -> Result<bool, ServiceError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: &str, e: std::io::Error| ServiceError::Internal(format!("snapshot {what}: {e}"));
    let dir = root.join(device);
    std::fs::create_dir_all(&dir).map_err(|e| io("cannot create the camera folder", e))?;
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| io("cannot stat the camera folder", e))?;
    if !meta.is_dir() {
        return Err(ServiceError::Internal(
            "snapshot camera folder is not a real directory (symlink?)".into(),
        ));
    }
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        match std::fs::hard_link(&tmp, dir.join(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| match e.raw_os_error() {
        // A full disk (or quota) is the floor case: -32060, not an internal error.
        Some(nix::libc::ENOSPC | nix::libc::EDQUOT) => ServiceError::InsufficientStorage {
            available_bytes: nix::sys::statvfs::statvfs(&dir).map_or(0, |s| s.blocks_available() * s.fragment_size()),
            required_bytes: bytes.len() as u64,
        },
        _ => io("cannot write the file", e),
    })
}

/// What MediaMTX says about the camera's stream before the chain starts.
#[derive(Clone, Debug, Default)]
struct StreamState {
    available: bool,
    readers: usize,
    /// MediaMTX could not be asked.
    unknown: Option<String>,
}

impl SnapshotManager {
    pub fn new(config: Arc<Config>, media: Arc<MediaService>, storage: Arc<Storage>) -> SnapshotManager {
        SnapshotManager {
            config,
            media,
            storage,
            locks: Mutex::new(HashMap::new()),
            tiers: Default::default(),
            requests: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Per-tier snapshot counters and latency sums (for `/metrics`), in contract tier order.
    pub fn tier_stats(&self) -> Vec<TierStats> {
        Tier::ALL
            .iter()
            .map(|t| {
                let c = &self.tiers[t.index()];
                TierStats {
                    tier: t.as_str(),
                    successes: c.successes.load(Relaxed),
                    failures: c.failures.load(Relaxed),
                    latency_seconds_sum: c.latency_us_sum.load(Relaxed) as f64 / 1e6,
                }
            })
            .collect()
    }

    pub fn totals(&self) -> SnapshotTotals {
        SnapshotTotals {
            requests: self.requests.load(Relaxed),
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
        }
    }

    fn lock(&self, device: &str) -> Arc<async_lock::Mutex<()>> {
        self.locks
            .lock()
            .unwrap()
            .entry(device.to_string())
            .or_default()
            .clone()
    }

    /// The configured tier order.
    pub fn tier_order(&self) -> Vec<Tier> {
        self.config.snapshot.tiers.to_vec()
    }

    fn timeout(&self, t: Tier) -> Duration {
        let s = &self.config.snapshot;
        match t {
            Tier::V4l2Direct => s.v4l2_direct_timeout.get(),
            Tier::FfmpegDirect => s.ffmpeg_direct_timeout.get(),
            Tier::RtspImmediate => s.rtsp_immediate_timeout.get(),
            Tier::RtspActivation => s.rtsp_activation_timeout.get(),
        }
    }

    /// Takes one snapshot (api.md §6). Errors: camera not connected → InvalidState; name
    /// taken or invalid → InvalidParam; free space below the floor → InsufficientStorage;
    /// every tier failed → CaptureFailed with `tiers_tried`.
    pub async fn take(&self, cam: &Camera, req: Request) -> Result<Taken, ServiceError> {
        if cam.status != Status::Connected {
            return Err(ServiceError::InvalidState {
                state: cam.status.as_str().to_lowercase(),
                details: format!("{} is {}", cam.id, cam.status.as_str()),
            });
        }
        let root = self.storage.root(Kind::Snapshot).to_path_buf();
        let wanted = match &req.filename {
            Some(n) => Some(client_name(&cam.id, n, req.format)?),
            None => None,
        };
        {
            let (st, root, name) = (self.storage.clone(), root.clone(), wanted.clone());
            blocking::unblock(move || {
                if let Some(n) = &name {
                    // same resolution as get_snapshot_info: own folder or, for names without a
                    // camera prefix, every camera folder
                    if files::open_file(Kind::Snapshot, &root, n).is_ok() {
                        return Err(exists_err());
                    }
                }
                st.check_free_space()
            })
            .await?;
        }

        let lock = self.lock(&cam.id);
        let _guard = lock.lock().await;
        self.requests.fetch_add(1, Relaxed);
        let started = Instant::now();
        let mut tried: Vec<Attempt> = Vec::new();
        let order = self.tier_order();
        let state = if order.iter().any(|t| *t != Tier::RtspActivation) {
            self.stream_state(&cam.id).await
        } else {
            StreamState::default()
        };
        let is_v4l2 = cam.source == SourceType::V4l2 && cam.devnode.is_some();
        let recording = self.media.recordings().is_recording(&cam.id);
        // Device in use by our own FFmpeg (publisher, keepalive): straight to the stream.
        let mut busy: Option<String> = if recording {
            Some("the camera is recording".into())
        } else if state.available || state.readers > 0 {
            Some("the camera's stream is running (its publisher holds the device)".into())
        } else {
            None
        };

        for tier in order {
            let t0 = Instant::now();
            let skip = |reason: &'static str, details: String| Attempt {
                tier,
                reason,
                details,
                attempted: false,
                elapsed_ms: 0,
            };
            if tier.uses_device() {
                if !is_v4l2 {
                    tried.push(skip("not_applicable", format!("{} has no capture device", cam.id)));
                    continue;
                }
                if let Some(why) = &busy {
                    tried.push(skip("device_busy", why.clone()));
                    continue;
                }
            }
            if tier == Tier::RtspImmediate && !state.available {
                let details = match &state.unknown {
                    Some(e) => format!("MediaMTX could not be asked: {e}"),
                    None => "the stream is not running".into(),
                };
                let reason = if state.unknown.is_some() {
                    "mediamtx_unavailable"
                } else {
                    "stream_not_available"
                };
                tried.push(skip(reason, details));
                continue;
            }
            // The frame tap first: the newest picture of a stream that is up, without a new
            // session (media::tap); when it has nothing, the tier runs as before.
            let tapped = match tier {
                Tier::RtspImmediate => self.tap_picture(cam).await,
                _ => None,
            };
            let (tap, frame_age_ms) = (
                tapped.is_some(),
                tapped.as_ref().map_or(0, |t| t.age.as_millis() as u64),
            );
            let result = match tapped {
                Some(t) => Ok(t.frame),
                None => self.run_tier(tier, cam).await,
            };
            let result = match result {
                Ok(frame) => self.render(frame, &req).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(enc) => {
                    let name = wanted.clone();
                    match self.store(&root, &cam.id, name, req.format, enc.bytes).await {
                        Ok((filename, file_size, t)) => {
                            let capture_ms = started.elapsed().as_millis() as u64;
                            let c = &self.tiers[tier.index()];
                            c.successes.fetch_add(1, Relaxed);
                            c.latency_us_sum
                                .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
                            self.succeeded.fetch_add(1, Relaxed);
                            for a in &tried {
                                log::debug!(
                                    "{}: snapshot tier {} skipped/failed: {} ({})",
                                    cam.id,
                                    a.tier.as_str(),
                                    a.reason,
                                    a.details
                                );
                            }
                            log::info!(
                                "{}: snapshot {filename} by {}{} in {capture_ms} ms ({}x{}, {file_size} bytes)",
                                cam.id,
                                tier.as_str(),
                                if tap { " (frame tap)" } else { "" },
                                enc.width,
                                enc.height
                            );
                            return Ok(Taken {
                                device: cam.id.clone(),
                                filename,
                                file_size,
                                width: enc.width,
                                height: enc.height,
                                tier,
                                capture_ms,
                                timestamp: crate::clock::rfc3339(t),
                                format: req.format,
                                tap,
                                frame_age_ms,
                            });
                        }
                        // a file-system problem or a name taken meanwhile: no other tier helps
                        Err(e) => {
                            self.failed.fetch_add(1, Relaxed);
                            return Err(e);
                        }
                    }
                }
                Err(f) => {
                    self.tiers[tier.index()].failures.fetch_add(1, Relaxed);
                    log::info!(
                        "{}: snapshot tier {} failed: {} ({})",
                        cam.id,
                        tier.as_str(),
                        f.reason,
                        f.details
                    );
                    if tier == Tier::V4l2Direct && f.reason == "device_busy" {
                        busy = Some("the driver reported the device busy (EBUSY)".into());
                    }
                    tried.push(Attempt {
                        tier,
                        reason: f.reason,
                        details: f.details,
                        attempted: true,
                        elapsed_ms: t0.elapsed().as_millis() as u64,
                    });
                }
            }
        }
        self.failed.fetch_add(1, Relaxed);
        let summary: Vec<String> = tried
            .iter()
            .map(|a| format!("{}: {}", a.tier.as_str(), a.reason))
            .collect();
        Err(ServiceError::CaptureFailed {
            details: format!("every snapshot tier failed ({})", summary.join(", ")),
            tiers_tried: tried,
        })
    }

    async fn stream_state(&self, device: &str) -> StreamState {
        if self.media.client().breaker_state() == crate::mediamtx::breaker::State::Open {
            return StreamState {
                unknown: Some("circuit open".into()),
                ..Default::default()
            };
        }
        match self.media.paths().runtime(device).await {
            Ok(Some(p)) => StreamState {
                available: p.available,
                readers: p.readers.len(),
                unknown: None,
            },
            Ok(None) => StreamState::default(),
            Err(e) => StreamState {
                unknown: Some(e.to_string()),
                ..Default::default()
            },
        }
    }

    /// A picture from the camera's frame tap, if one runs and has a fresh GOP. A tap that is
    /// wanted but not running yet (an external stream that was not up) is started for the
    /// next photo.
    async fn tap_picture(&self, cam: &Camera) -> Option<super::tap::Tapped> {
        let taps = self.media.taps().clone();
        if !taps.is_running(&cam.id) {
            self.media.reconcile_tap(&cam.id, Some(cam)).await;
            return None;
        }
        let (id, timeout) = (cam.id.clone(), self.timeout(Tier::RtspImmediate));
        match blocking::unblock(move || taps.grab(&id, timeout)).await {
            Ok(t) => Some(t),
            Err(e) => {
                log::debug!("{}: frame tap has no picture: {e}", cam.id);
                None
            }
        }
    }

    async fn run_tier(&self, tier: Tier, cam: &Camera) -> Result<Frame, TierFail> {
        let timeout = self.timeout(tier);
        let cfg = self.config.clone();
        match tier {
            Tier::V4l2Direct => {
                let Some(Publisher::V4l2 {
                    device,
                    width,
                    height,
                    fps,
                    ..
                }) = publisher_for(cam)
                else {
                    return Err(fail("not_applicable", "no capture device"));
                };
                let warmup = cfg.snapshot.warmup_frames;
                let id = cam.id.clone();
                blocking::unblock(move || v4l2_capture(&device, (width, height), fps, warmup, timeout))
                    .await
                    .map_err(|f| TierFail {
                        details: f
                            .details
                            .replace(&*cam.devnode.as_deref().unwrap_or(Path::new("")).to_string_lossy(), &id),
                        ..f
                    })
            }
            Tier::FfmpegDirect => {
                let Some(Publisher::V4l2 {
                    device,
                    input_format,
                    width,
                    height,
                    fps,
                    ..
                }) = publisher_for(cam)
                else {
                    return Err(fail("not_applicable", "no capture device"));
                };
                let mut args: Vec<String> = vec!["-f".into(), "v4l2".into()];
                if let Some(f) = input_format {
                    args.extend(["-input_format".into(), f]);
                }
                args.extend([
                    "-video_size".into(),
                    format!("{width}x{height}"),
                    "-framerate".into(),
                    fps.to_string(),
                    "-i".into(),
                    device.to_string_lossy().into_owned(),
                ]);
                let warmup = cfg.snapshot.warmup_frames;
                if warmup > 0 {
                    args.extend(["-vf".into(), format!("select=gte(n\\,{warmup})")]);
                }
                let dev_text = device.to_string_lossy().into_owned();
                let id = cam.id.clone();
                blocking::unblock(move || ffmpeg_capture(&cfg.ffmpeg.path, args, timeout))
                    .await
                    .map_err(|f| TierFail {
                        details: f.details.replace(&dev_text, &id),
                        ..f
                    })
            }
            Tier::RtspImmediate | Tier::RtspActivation => {
                let port = cfg.mediamtx.rtsp_port;
                if tier == Tier::RtspActivation {
                    if let Err(e) = self.media.ensure_path(cam).await {
                        return Err(fail("mediamtx_unavailable", e.to_string()));
                    }
                }
                let url = format!("rtsp://127.0.0.1:{port}/{}", cam.id);
                let args = [
                    "-rtsp_transport",
                    "tcp",
                    // Only the video track is set up, and probing ends with the first packets:
                    // MediaMTX's SDP carries the parameter sets, and FFmpeg's default probing
                    // (20 frames for a frame rate, up to 5 s) was a second of every photo.
                    "-allowed_media_types",
                    "video",
                    "-probesize",
                    "32768",
                    "-analyzeduration",
                    "0",
                    // No frame threads: each would hold the first picture back by a frame.
                    "-flags",
                    "low_delay",
                    // Decode keyframes only: the HEVC decoder would otherwise put out the
                    // frames before the first keyframe, grey with missing references.
                    "-skip_frame",
                    "nokey",
                    "-i",
                    &url,
                ]
                .map(String::from)
                .to_vec();
                blocking::unblock(move || ffmpeg_capture(&cfg.ffmpeg.path, args, timeout)).await
            }
        }
    }

    async fn render(&self, frame: Frame, req: &Request) -> Result<Encoded, TierFail> {
        let (format, quality) = (req.format, req.quality);
        let (mw, mh) = (req.max_width, req.max_height);
        blocking::unblock(move || image::render(frame, format, quality, mw, mh))
            .await
            .map_err(|e| fail("capture_failed", e.0))
    }

    /// Writes the file under its final name; a default name taken in the same millisecond
    /// is retried with the next timestamp.
    async fn store(
        &self,
        root: &Path,
        device: &str,
        wanted: Option<String>,
        format: ImageFormat,
        bytes: Vec<u8>,
    ) -> Result<(String, u64, OffsetDateTime), ServiceError> {
        let (root, device) = (root.to_path_buf(), device.to_string());
        blocking::unblock(move || {
            let size = bytes.len() as u64;
            for _ in 0..50 {
                let now = OffsetDateTime::now_utc();
                let name = wanted.clone().unwrap_or_else(|| default_name(&device, now, format));
                if write_new(&root, &device, &name, &bytes)? {
                    return Ok((name, size, now));
                }
                if wanted.is_some() {
                    return Err(exists_err());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(ServiceError::Internal("no free snapshot file name".into()))
        })
        .await
    }
}

// ---------------------------------------------------------------- tier 0: V4L2 mmap

fn io_fail(what: &str, e: std::io::Error) -> TierFail {
    if e.raw_os_error() == Some(nix::libc::EBUSY) {
        return fail("device_busy", format!("{what}: device busy (EBUSY)"));
    }
    if e.kind() == std::io::ErrorKind::TimedOut {
        return fail("timeout", format!("{what}: no frame in time"));
    }
    fail("capture_failed", format!("{what}: {e}"))
}

/// Format choice: MJPEG when offered (the camera compresses; a JPEG snapshot needs no
/// encoding), else the first raw format we convert.
fn choose_format(available: &[String]) -> Option<String> {
    if available.iter().any(|f| f == "MJPG" || f == "JPEG") {
        return available.iter().find(|f| *f == "MJPG" || *f == "JPEG").cloned();
    }
    image::RAW_FORMATS
        .iter()
        .find(|r| available.iter().any(|f| f == *r))
        .map(|s| s.to_string())
}

/// Opens the node, sets size/format/rate, streams with mmap buffers, drops `warmup` frames
/// and returns the next one. Blocking.
fn v4l2_capture(
    devnode: &Path,
    (width, height): (u32, u32),
    fps: u32,
    warmup: u32,
    timeout: Duration,
) -> Result<Frame, TierFail> {
    use v4l::buffer::Type;
    use v4l::io::traits::CaptureStream;
    use v4l::video::Capture;
    let deadline = Instant::now() + timeout;
    let dev = v4l::Device::with_path(devnode).map_err(|e| io_fail("open", e))?;
    let formats: Vec<String> = dev
        .enum_formats()
        .map_err(|e| io_fail("VIDIOC_ENUM_FMT", e))?
        .iter()
        .map(|f| crate::camera::v4l2::fourcc_text(&f.fourcc.repr))
        .collect();
    let fourcc = choose_format(&formats).ok_or_else(|| {
        fail(
            "unsupported_format",
            format!("no usable pixel format among {formats:?}"),
        )
    })?;
    let mut fmt = dev.format().map_err(|e| io_fail("VIDIOC_G_FMT", e))?;
    fmt.width = width;
    fmt.height = height;
    fmt.fourcc = v4l::FourCC::new(fourcc.as_bytes().try_into().unwrap_or(b"YUYV"));
    let fmt = dev.set_format(&fmt).map_err(|e| io_fail("VIDIOC_S_FMT", e))?;
    let got = crate::camera::v4l2::fourcc_text(&fmt.fourcc.repr);
    if got != fourcc {
        return Err(fail(
            "unsupported_format",
            format!("driver chose {got} instead of {fourcc}"),
        ));
    }
    if fps > 0 {
        // best effort: the camera's own rate keeps the warm-up short
        let _ = dev.set_params(&v4l::video::capture::Parameters::with_fps(fps));
    }
    let mut stream =
        v4l::io::mmap::Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(|e| io_fail("VIDIOC_REQBUFS", e))?;
    for i in 0..=warmup {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail("timeout", format!("no frame within {} ms", timeout.as_millis())));
        }
        stream.set_timeout(left.max(Duration::from_millis(1)));
        let (buf, meta) = stream.next().map_err(|e| io_fail("VIDIOC_DQBUF", e))?;
        if i < warmup {
            continue;
        }
        let used = (meta.bytesused as usize).min(buf.len());
        let data = if used > 0 { &buf[..used] } else { buf };
        if fourcc == "MJPG" || fourcc == "JPEG" {
            return Ok(Frame::Jpeg(data.to_vec()));
        }
        let rgb = image::raw_to_rgb(&fourcc, fmt.width, fmt.height, fmt.stride, data)
            .map_err(|e| fail("capture_failed", e.0))?;
        return Ok(Frame::Rgb(rgb));
    }
    Err(fail("capture_failed", "no frame"))
}

// ---------------------------------------------------------------- tiers 1-3: FFmpeg

/// Runs FFmpeg with `input` args and reads one frame as PPM on stdout; bounded by
/// `timeout` (then SIGINT, SIGKILL). Blocking.
fn ffmpeg_capture(program: &str, input: Vec<String>, timeout: Duration) -> Result<Frame, TierFail> {
    let mut cmd = Command::new(program);
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(&input)
        .args([
            "-frames:v",
            "1",
            "-an",
            "-f",
            "image2pipe",
            "-c:v",
            "ppm",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| fail("ffmpeg_failed", format!("cannot start ffmpeg: {e}")))?;
    let run = super::ffmpeg::run_bounded(child, None, timeout, |mut out| {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    })
    .map_err(|e| fail("ffmpeg_failed", format!("wait: {e}")))?;
    let last = run.last_error_line();
    if run.timed_out {
        return Err(fail(
            "timeout",
            format!("no frame within {} ms {last}", timeout.as_millis())
                .trim()
                .to_string(),
        ));
    }
    let (status, data, stderr) = (run.status, run.output, run.stderr);
    if !status.success() || data.is_empty() {
        let reason = if stderr.contains("Device or resource busy") {
            "device_busy"
        } else {
            "ffmpeg_failed"
        };
        return Err(fail(reason, format!("ffmpeg exited with {status}: {last}")));
    }
    image::parse_ppm(&data)
        .map(Frame::Rgb)
        .map_err(|e| fail("capture_failed", e.0))
}

/// Directory of a camera's snapshots (for tests and tools).
pub fn camera_dir(root: &Path, device: &str) -> PathBuf {
    root.join(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_515_330_123_456_789).unwrap();
        assert_eq!(
            default_name("camera3", t, ImageFormat::Jpg),
            "camera3_2026-11-24_10-15-30-123.jpg"
        );
        assert_eq!(client_name("camera3", "door", ImageFormat::Png).unwrap(), "door.png");
        assert_eq!(
            client_name("camera3", "door.jpg", ImageFormat::Jpg).unwrap(),
            "door.jpg"
        );
        assert_eq!(
            client_name("camera3", "camera3_x", ImageFormat::Jpg).unwrap(),
            "camera3_x.jpg"
        );
        for bad in ["../x", "a/b", ".hidden", "x\u{1}", "door.png"] {
            assert!(
                matches!(
                    client_name("camera3", bad, ImageFormat::Jpg),
                    Err(ServiceError::InvalidParam { param: "filename", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(client_name("camera3", "camera4_x", ImageFormat::Jpg).is_err());
        assert!(
            client_name("camera3", &"a".repeat(253), ImageFormat::Jpg).is_err(),
            "255 bytes with .jpg"
        );
    }

    #[test]
    fn write_new_never_replaces() {
        let dir = std::env::temp_dir().join(format!("snap-write-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(write_new(&dir, "camera1", "a.jpg", b"one").unwrap());
        assert!(!write_new(&dir, "camera1", "a.jpg", b"two").unwrap());
        assert_eq!(std::fs::read(dir.join("camera1/a.jpg")).unwrap(), b"one");
        let left: Vec<_> = std::fs::read_dir(dir.join("camera1")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn format_choice_prefers_mjpeg_then_raw() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_format(&v(&["YUYV", "MJPG"])).as_deref(), Some("MJPG"));
        assert_eq!(choose_format(&v(&["H264", "NV12", "YUYV"])).as_deref(), Some("YUYV"));
        assert_eq!(choose_format(&v(&["H264"])), None);
    }

    #[test]
    fn ffmpeg_capture_reads_one_frame_and_times_out() {
        let input = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=5"]
            .map(String::from)
            .to_vec();
        let Frame::Rgb(rgb) = ffmpeg_capture("ffmpeg", input, Duration::from_secs(20)).ok().unwrap() else {
            panic!("rgb")
        };
        assert_eq!((rgb.width, rgb.height), (320, 240));
        assert!(image::stats(&rgb.data).1 > 30.0);
        // an input that never delivers: the timeout ends it
        let input = [
            "-re",
            "-f",
            "lavfi",
            "-i",
            "nullsrc=size=320x240:rate=5",
            "-vf",
            "select=gte(n\\,100000)",
        ]
        .map(String::from)
        .to_vec();
        let t = Instant::now();
        let e = ffmpeg_capture("ffmpeg", input, Duration::from_millis(1500))
            .err()
            .unwrap();
        assert_eq!(e.reason, "timeout");
        assert!(t.elapsed() < Duration::from_secs(5));
        let e = ffmpeg_capture("no-such-ffmpeg", vec![], Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(e.reason, "ffmpeg_failed");
    }
}
