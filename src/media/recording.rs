//! Recording through MediaMTX (mediamtx.md §3). The truth of "is recording" is MediaMTX's
//! `record` flag on the path plus segment files that keep growing. A keepalive reader holds
//! on-demand publishers up while a recording runs (the recorder itself is not a reader).
//! State survives a service restart: a small state file plus MediaMTX's path config.

use super::ffmpeg::{EventSink, Spec, Supervised};
use crate::clock;
use crate::config::{Config, RecordFormat};
use crate::error::ServiceError;
use crate::mediamtx::paths::{record_path_template, PathManager, Publisher, RecordSettings};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Why a recording ended by itself (api.md §9 `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    DeviceDisconnected,
    SourceLost,
    DiskFull,
    FfmpegFailed,
    MediamtxUnavailable,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::DeviceDisconnected => "device_disconnected",
            EndReason::SourceLost => "source_lost",
            EndReason::DiskFull => "disk_full",
            EndReason::FfmpegFailed => "ffmpeg_failed",
            EndReason::MediamtxUnavailable => "mediamtx_unavailable",
        }
    }
}

/// What the manager reports; the controller turns these into `recording.*` events.
#[derive(Clone, Debug, PartialEq)]
pub enum RecEvent {
    Started {
        device: String,
        filename: String,
        format: RecordFormat,
        resumed: bool,
    },
    Stopped {
        device: String,
        summary: Summary,
        auto: bool,
    },
    Progress {
        device: String,
        filename: String,
        duration: f64,
        bytes: u64,
    },
    Error {
        device: String,
        filename: String,
        duration: f64,
        reason: EndReason,
        stopped: bool,
    },
}

pub type RecSink = Arc<dyn Fn(RecEvent) + Send + Sync>;
/// `Err` when free space is below the floor (shared with storage).
pub type SpaceCheck = Arc<dyn Fn() -> Result<(), ServiceError> + Send + Sync>;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub device: String,
    pub filename: String,
    pub files: Vec<String>,
    pub start_time: String,
    pub end_time: String,
    pub duration: f64,
    pub file_size: u64,
    pub format: RecordFormat,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Started {
    pub device: String,
    pub filename: String,
    pub start_time: String,
    pub duration: Option<u64>,
    pub format: RecordFormat,
}

/// What is persisted per active recording.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Persisted {
    start_unix_ms: i64,
    first_file: String,
    format: RecordFormat,
    duration: Option<u64>,
    /// Wall-clock time of the first frame of the first segment (Unix ms): a timed recording
    /// stops `duration` seconds of media after it. Absent in state files of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_start_unix_ms: Option<i64>,
}

struct Active {
    persisted: Persisted,
    keepalive: Option<Supervised>,
    last_bytes: u64,
    last_growth: Instant,
    /// Set while MediaMTX is down/restarting; cleared when a new segment appears.
    interrupted: bool,
    /// Set when MediaMTX went away: the segment being written then. That segment may still
    /// grow as it is closed (its last part, its header); the recording has resumed only when
    /// a newer segment grows.
    closing: Option<String>,
    /// Set by `fail`: the recording is over for clients (its error event is out) while the
    /// stop completes; `stop_recording` answers not_recording.
    ending: bool,
    stall_reported: bool,
    /// Newest segment of ours (at start, then by every `tick`).
    current: String,
    /// Our segments, oldest first: the first one (appeared at start), then every file that
    /// appeared after the start and was seen growing. Nothing else is ever adopted.
    own: Vec<String>,
    /// Files present when the recording started: never ours.
    before: HashSet<String>,
    /// Files that appeared since the start but were not seen growing yet: name → size.
    candidates: HashMap<String, u64>,
}

/// New files watched for growth at once, per recording (files others drop in our folder
/// must not grow the map without bound).
const MAX_CANDIDATES: usize = 64;

impl Active {
    fn new(persisted: Persisted, keepalive: Option<Supervised>, interrupted: bool, before: HashSet<String>) -> Active {
        let first = persisted.first_file.clone();
        Active {
            persisted,
            keepalive,
            last_bytes: 0,
            last_growth: Instant::now(),
            interrupted,
            closing: None,
            ending: false,
            stall_reported: false,
            current: first.clone(),
            own: vec![first],
            before,
            candidates: HashMap::new(),
        }
    }

    /// Takes in a listing of the camera folder: a file that was not there at the start
    /// becomes ours once it is seen growing (`at_stop`: once it was written during the
    /// recording, so a last short segment is not missed). Returns our files with sizes.
    fn observe(&mut self, listing: &[Segment], at_stop: bool) -> Vec<(String, u64)> {
        for f in listing {
            if self.before.contains(&f.name) || self.own.contains(&f.name) {
                continue;
            }
            let grew = match self.candidates.get(&f.name) {
                Some(prev) => f.size > *prev,
                None => {
                    if self.candidates.len() < MAX_CANDIDATES {
                        self.candidates.insert(f.name.clone(), f.size);
                    }
                    false
                }
            };
            let written_during = at_stop && f.size > 0 && f.modified_ms >= self.persisted.start_unix_ms;
            if grew || written_during {
                self.candidates.remove(&f.name);
                self.own.push(f.name.clone());
            }
        }
        // Segment names carry their start time: among ours, name order is time order.
        self.own.sort();
        if let Some(last) = self.own.last() {
            self.current.clone_from(last);
        }
        listing
            .iter()
            .filter(|f| self.own.contains(&f.name))
            .map(|f| (f.name.clone(), f.size))
            .collect()
    }
}

pub struct RecordingManager {
    config: Arc<Config>,
    paths: Arc<PathManager>,
    active: Mutex<HashMap<String, Active>>,
    events: RecSink,
    space: SpaceCheck,
    state_file: PathBuf,
    /// Serialises state-file writes so they land in the order the state changed.
    persist_lock: async_lock::Mutex<()>,
    /// Auto-stop timers of timed recordings, by device: dropped (cancelled) when the
    /// recording stops or the service shuts down; never detached while they wait.
    timers: Mutex<HashMap<String, smol::Task<()>>>,
    total_started: std::sync::atomic::AtomicU64,
    total_failed: std::sync::atomic::AtomicU64,
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(clock::rfc3339)
        .unwrap_or_default()
}

/// Wall-clock time (Unix ms) of the first frame of segment `name` of `camera`, from its name
/// (`cameraN_YYYY-MM-DD_HH-MM-SS-ffffff.ext`, see `record_path_template`). MediaMTX writes
/// the name in its local zone without an offset; the zone is recovered from `seen_ms`, a
/// moment close to the segment's start (seconds, not minutes): zone offsets are whole
/// quarter hours, so the difference rounded to 15 minutes is the offset.
fn first_frame_unix_ms(name: &str, camera: &str, seen_ms: i64) -> Option<i64> {
    let stem = name.strip_prefix(camera)?.strip_prefix('_')?;
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    let (date, clock) = stem.split_once('_')?;
    let fields = |s: &str| -> Option<Vec<u32>> {
        s.split('-')
            .map(|f| f.bytes().all(|b| b.is_ascii_digit()).then(|| f.parse().ok()).flatten())
            .collect()
    };
    let (d, c) = (fields(date)?, fields(clock)?);
    let (&[y, mo, da], &[h, mi, se, us]) = (&d[..], &c[..]) else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(da).ok()?).ok()?;
    let t = time::Time::from_hms_micro(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(se).ok()?,
        us,
    )
    .ok()?;
    let as_utc = unix_ms(time::PrimitiveDateTime::new(date, t).assume_utc());
    const QUARTER_HOUR_MS: i64 = 15 * 60 * 1000;
    let offset = ((as_utc - seen_ms) as f64 / QUARTER_HOUR_MS as f64).round() as i64 * QUARTER_HOUR_MS;
    Some(as_utc - offset)
}

/// A regular file in a camera's recordings folder named like one of its segments.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub name: String,
    pub size: u64,
    /// Modification time, Unix milliseconds.
    pub modified_ms: i64,
}

/// Segment-like files of `camera` in its folder, sorted by name. Regular files only:
/// symlinks, FIFOs and directories are never segments.
pub fn segments(dir: &Path, camera: &str, format: RecordFormat) -> Vec<Segment> {
    let prefix = format!("{camera}_");
    let ext = format!(".{}", format.extension());
    let mut out: Vec<Segment> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !(name.starts_with(&prefix) && name.ends_with(&ext)) {
                return None;
            }
            // DirEntry::metadata does not follow symlinks.
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            Some(Segment {
                name,
                size: meta.len(),
                modified_ms,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Removes those of `files` (in `dir`) that hold no media; returns their names.
fn remove_unplayable(dir: &Path, files: &[String]) -> Vec<String> {
    let mut removed = Vec::new();
    for name in files {
        let path = dir.join(name);
        let Ok(mut f) = std::fs::File::open(&path) else {
            continue;
        };
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let info = if name.ends_with(".ts") {
            crate::storage::media_info::probe_ts(&mut f, size)
        } else {
            crate::storage::media_info::probe_mp4(&mut f, size)
        };
        if (size == 0 || info.duration.map_or(true, |d| d <= 0.0)) && std::fs::remove_file(&path).is_ok() {
            removed.push(name.clone());
        }
    }
    removed
}

impl RecordingManager {
    pub fn new(
        config: Arc<Config>,
        paths: Arc<PathManager>,
        events: RecSink,
        space: SpaceCheck,
    ) -> Arc<RecordingManager> {
        let state_file = config.storage.state_dir.join("recordings.json");
        Arc::new(RecordingManager {
            config,
            paths,
            active: Mutex::new(HashMap::new()),
            events,
            space,
            state_file,
            persist_lock: async_lock::Mutex::new(()),
            timers: Mutex::new(HashMap::new()),
            total_started: Default::default(),
            total_failed: Default::default(),
        })
    }

    fn camera_dir(&self, device: &str) -> PathBuf {
        self.config.storage.recordings_dir.join(device)
    }

    pub fn is_recording(&self, device: &str) -> bool {
        self.active.lock().unwrap().contains_key(device)
    }

    pub fn active_devices(&self) -> Vec<String> {
        self.active.lock().unwrap().keys().cloned().collect()
    }

    /// Whether `path` is a segment being written now: the newest segment of a running
    /// recording, or a file newer than it that appeared after the start and is not adopted
    /// yet (a segment that began since the last tick). Files that were there before the
    /// start are never "being written", whatever their names. Answered from memory: storage
    /// asks once per file it lists or considers deleting.
    pub fn is_being_written(&self, path: &Path) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
            return false;
        };
        let active = self.active.lock().unwrap();
        active.iter().any(|(dev, a)| {
            dir == self.camera_dir(dev)
                && name.starts_with(&format!("{dev}_"))
                && name.ends_with(&format!(".{}", a.persisted.format.extension()))
                && (name == a.current || (name > a.current.as_str() && !a.before.contains(name)))
        })
    }

    pub fn totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.total_started.load(Relaxed), self.total_failed.load(Relaxed))
    }

    /// Writes the state file durably, on the blocking pool. The map is read under the
    /// write lock, so the last write always holds the newest state.
    async fn persist(&self) {
        let _order = self.persist_lock.lock().await;
        let map: BTreeMap<String, Persisted> = self
            .active
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.persisted.clone()))
            .collect();
        let path = self.state_file.clone();
        let written = blocking::unblock(move || -> std::io::Result<()> {
            let data = serde_json::to_vec_pretty(&map)?;
            crate::state_file::write(&path, &data, crate::state_file::Mode::Default)
        })
        .await;
        if let Err(e) = written {
            log::error!("cannot persist recording state: {e}");
        }
    }

    fn keepalive(&self, device: &str) -> Supervised {
        let url = format!("rtsp://127.0.0.1:{}/{device}", self.config.mediamtx.rtsp_port);
        let args = [
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &url,
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ]
        .map(String::from)
        .to_vec();
        let mut spec = Spec::new(format!("keepalive:{device}"), &self.config.ffmpeg.path, args);
        spec.stall_timeout = Some(self.config.ffmpeg.stall_timeout.get());
        spec.stop_timeout = self.config.ffmpeg.stop_timeout.get();
        spec.backoff_min = Duration::from_millis(300);
        spec.backoff_max = Duration::from_secs(5);
        let sink: EventSink = Arc::new(|name: &str, ev| log::debug!("{name}: {ev:?}"));
        Supervised::start(spec, sink)
    }

    /// Starts recording; returns once the first segment file exists (api.md §5).
    pub async fn start(
        self: &Arc<Self>,
        device: &str,
        publisher: Publisher,
        duration: Option<u64>,
        format: RecordFormat,
    ) -> Result<Started, ServiceError> {
        let lock = self.paths.lock(device);
        let _guard = lock.lock().await;
        if self.is_recording(device) {
            return Err(ServiceError::InvalidState {
                state: "recording".into(),
                details: format!("{device} is already recording"),
            });
        }
        (self.space)()?;
        let dir = self.camera_dir(device);
        let d = dir.clone();
        blocking::unblock(move || std::fs::create_dir_all(&d))
            .await
            .map_err(|e| ServiceError::Dependency {
                dependency: "storage",
                details: format!("cannot create the recordings folder: {e}"),
            })?;
        let before: std::collections::HashSet<String> = {
            let d = dir.clone();
            let dev = device.to_string();
            blocking::unblock(move || segments(&d, &dev, format).into_iter().map(|f| f.name).collect()).await
        };
        let started_at = OffsetDateTime::now_utc();
        self.paths.ensure(device, publisher).await?;
        let settings = RecordSettings {
            path_template: record_path_template(&self.config, device),
            format,
        };
        self.paths.set_record(device, Some(settings)).await?;
        let mut keepalive = Some(self.keepalive(device));
        // Confirm: a new segment file appears within the start timeout.
        let deadline = Instant::now() + self.config.recording.start_timeout.get();
        let first = loop {
            let d = dir.clone();
            let dev = device.to_string();
            let now: Vec<Segment> = blocking::unblock(move || segments(&d, &dev, format)).await;
            if let Some(f) = now.into_iter().find(|f| !before.contains(&f.name)) {
                break Some(f.name);
            }
            if Instant::now() >= deadline {
                break None;
            }
            smol::Timer::after(Duration::from_millis(100)).await;
        };
        let Some(first) = first else {
            log::warn!(
                "{device}: no segment within {:?}; rolling back",
                self.config.recording.start_timeout.get()
            );
            let _ = self.paths.set_record(device, None).await;
            if let Some(mut k) = keepalive.take() {
                blocking::unblock(move || k.stop()).await;
            }
            self.total_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ServiceError::Dependency {
                dependency: "mediamtx",
                details: "the stream did not become available and no segment was written in time".into(),
            });
        };
        // Media time starts with the first segment's first frame, which comes after the
        // publisher start and a keyframe (up to a second or two after the call). A name that
        // says otherwise (not ours, a clock jump) falls back to the call time.
        let found_ms = unix_ms(OffsetDateTime::now_utc());
        let media_start_ms = first_frame_unix_ms(&first, device, found_ms)
            .filter(|t| (unix_ms(started_at) - 1000..=found_ms).contains(t))
            .unwrap_or(unix_ms(started_at));
        let persisted = Persisted {
            start_unix_ms: unix_ms(started_at),
            first_file: first.clone(),
            format,
            duration,
            media_start_unix_ms: Some(media_start_ms),
        };
        self.active.lock().unwrap().insert(
            device.to_string(),
            Active::new(persisted, keepalive.take(), false, before),
        );
        self.persist().await;
        self.total_started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(secs) = duration {
            let end_ms = media_start_ms + secs as i64 * 1000;
            let after = Duration::from_millis((end_ms - unix_ms(OffsetDateTime::now_utc())).max(0) as u64);
            self.arm_auto_stop(device, after, unix_ms(started_at));
        }
        log::info!(
            "{device}: recording started ({}), first segment {first}",
            format.as_str()
        );
        (self.events)(RecEvent::Started {
            device: device.into(),
            filename: first.clone(),
            format,
            resumed: false,
        });
        Ok(Started {
            device: device.into(),
            filename: first,
            start_time: clock::rfc3339(started_at),
            duration,
            format,
        })
    }

    fn arm_auto_stop(self: &Arc<Self>, device: &str, after: Duration, start_ms: i64) {
        let me = Arc::downgrade(self);
        let dev = device.to_string();
        let task = smol::spawn(async move {
            smol::Timer::after(after).await;
            let Some(me) = me.upgrade() else { return };
            // Fired: from here on the stop must finish even though stopping drops the timer.
            if let Some(own) = me.timers.lock().unwrap().remove(&dev) {
                own.detach();
            }
            // Only if it is still the same recording.
            let same = me
                .active
                .lock()
                .unwrap()
                .get(&dev)
                .is_some_and(|a| a.persisted.start_unix_ms == start_ms);
            if same {
                match me.stop_inner(&dev).await {
                    Ok(summary) => (me.events)(RecEvent::Stopped {
                        device: dev.clone(),
                        summary,
                        auto: true,
                    }),
                    Err(e) => log::warn!("{dev}: auto-stop failed: {e}"),
                }
            }
        });
        self.timers.lock().unwrap().insert(device.to_string(), task);
    }

    /// Stops a recording; returns after the last segment is closed.
    pub async fn stop(self: &Arc<Self>, device: &str) -> Result<Summary, ServiceError> {
        if self.active.lock().unwrap().get(device).is_some_and(|a| a.ending) {
            return Err(ServiceError::InvalidState {
                state: "not_recording".into(),
                details: format!("{device} is not recording (it ended on an error)"),
            });
        }
        let summary = self.stop_inner(device).await?;
        (self.events)(RecEvent::Stopped {
            device: device.into(),
            summary: summary.clone(),
            auto: false,
        });
        Ok(summary)
    }

    async fn stop_inner(self: &Arc<Self>, device: &str) -> Result<Summary, ServiceError> {
        let lock = self.paths.lock(device);
        let _guard = lock.lock().await;
        let Some(mut active) = self.active.lock().unwrap().remove(device) else {
            return Err(ServiceError::InvalidState {
                state: "not_recording".into(),
                details: format!("{device} is not recording"),
            });
        };
        // A manual stop cancels the auto-stop timer (a fired timer removed itself first).
        drop(self.timers.lock().unwrap().remove(device));
        self.persist().await;
        let patch = self.paths.set_record(device, None).await;
        if let Err(e) = &patch {
            log::warn!("{device}: could not clear the record flag: {e}");
        }
        if let Some(mut k) = active.keepalive.take() {
            blocking::unblock(move || k.stop()).await;
        }
        let ended = OffsetDateTime::now_utc();
        let files = self.wait_closed(device, &mut active).await;
        log::info!("{device}: recording stopped, {} segment(s)", files.len());
        Ok(self.summary(device, &active.persisted, files, ended))
    }

    /// Waits (bounded) until our newest segment stops growing, then lists our segments.
    async fn wait_closed(&self, device: &str, active: &mut Active) -> Vec<(String, u64)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last: Option<Vec<(String, u64)>> = None;
        loop {
            let (d, dev, fmt) = (self.camera_dir(device), device.to_string(), active.persisted.format);
            let listing: Vec<Segment> = blocking::unblock(move || segments(&d, &dev, fmt)).await;
            let ours = active.observe(&listing, false);
            if last.as_ref() == Some(&ours) || Instant::now() >= deadline {
                return active.observe(&listing, true);
            }
            last = Some(ours);
            smol::Timer::after(Duration::from_millis(400)).await;
        }
    }

    fn summary(&self, device: &str, p: &Persisted, files: Vec<(String, u64)>, ended: OffsetDateTime) -> Summary {
        let duration = ((unix_ms(ended) - p.start_unix_ms).max(0) as f64) / 1000.0;
        Summary {
            device: device.into(),
            filename: p.first_file.clone(),
            file_size: files.iter().map(|(_, s)| s).sum(),
            files: files.into_iter().map(|(n, _)| n).collect(),
            start_time: rfc3339_ms(p.start_unix_ms),
            end_time: clock::rfc3339(ended),
            duration,
            format: p.format,
        }
    }

    /// Ends a recording because of a failure: the error event goes out first (fast), then
    /// the record flag is cleared; segments already written stay as they are.
    pub async fn fail(self: &Arc<Self>, device: &str, reason: EndReason) {
        // Marked before the event goes out: a client reacting to it sees a stopped recording.
        let info = self
            .active
            .lock()
            .unwrap()
            .get_mut(device)
            .filter(|a| !a.ending)
            .map(|a| {
                a.ending = true;
                (a.persisted.first_file.clone(), a.persisted.start_unix_ms)
            });
        let Some((first, start_ms)) = info else { return };
        let duration = ((unix_ms(OffsetDateTime::now_utc()) - start_ms).max(0) as f64) / 1000.0;
        (self.events)(RecEvent::Error {
            device: device.into(),
            filename: first,
            duration,
            reason,
            stopped: true,
        });
        self.total_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.stop_inner(device).await {
            Ok(summary) if reason == EndReason::DiskFull => {
                // A full disk leaves empty or header-only segments behind: they do not play,
                // so they are removed rather than listed.
                let dir = self.camera_dir(device);
                let removed = blocking::unblock(move || remove_unplayable(&dir, &summary.files)).await;
                if !removed.is_empty() {
                    log::warn!(
                        "{device}: removed {} segment(s) without media: {removed:?}",
                        removed.len()
                    );
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("{device}: stopping after {}: {e}", reason.as_str()),
        }
    }

    /// Periodic check: progress events, stalled files (source lost), free space.
    pub async fn tick(self: &Arc<Self>) {
        let devices = self.active_devices();
        if devices.is_empty() {
            return;
        }
        if let Err(e) = (self.space)() {
            log::error!("free space below the floor ({e}); stopping recordings");
            for d in &devices {
                self.fail(d, EndReason::DiskFull).await;
            }
            return;
        }
        for device in devices {
            let fmt_start = self
                .active
                .lock()
                .unwrap()
                .get(&device)
                .map(|a| (a.persisted.format, a.persisted.start_unix_ms));
            let Some((fmt, start_ms)) = fmt_start else {
                continue;
            };
            let d = self.camera_dir(&device);
            let dev = device.clone();
            let listing: Vec<Segment> = blocking::unblock(move || segments(&d, &dev, fmt)).await;
            let duration = ((unix_ms(OffsetDateTime::now_utc()) - start_ms).max(0) as f64) / 1000.0;
            let mut resumed = None;
            let mut stalled = false;
            let (bytes, current, interrupted) = {
                let mut active = self.active.lock().unwrap();
                let Some(a) = active.get_mut(&device) else { continue };
                let files = a.observe(&listing, false);
                let bytes: u64 = files.iter().map(|(_, s)| s).sum();
                let current = a.current.clone();
                if bytes > a.last_bytes {
                    a.last_bytes = bytes;
                    a.last_growth = Instant::now();
                    a.stall_reported = false;
                    if a.interrupted && a.closing.as_ref() != Some(&current) {
                        a.interrupted = false;
                        a.closing = None;
                        resumed = Some(current.clone());
                    }
                } else if !a.stall_reported && a.last_growth.elapsed() > self.config.recording.stall_timeout.get() {
                    a.stall_reported = true;
                    stalled = true;
                }
                (bytes, current, a.interrupted)
            };
            if let Some(file) = resumed {
                log::info!("{device}: recording resumed in {file}");
                (self.events)(RecEvent::Started {
                    device: device.clone(),
                    filename: file,
                    format: fmt,
                    resumed: true,
                });
            }
            if stalled {
                log::warn!("{device}: recording files stopped growing; restarting the keepalive reader");
                (self.events)(RecEvent::Error {
                    device: device.clone(),
                    filename: current.clone(),
                    duration,
                    reason: EndReason::SourceLost,
                    stopped: false,
                });
                let old = self
                    .active
                    .lock()
                    .unwrap()
                    .get_mut(&device)
                    .and_then(|a| a.keepalive.take());
                if let Some(mut k) = old {
                    blocking::unblock(move || k.stop()).await;
                }
                let fresh = self.keepalive(&device);
                if let Some(a) = self.active.lock().unwrap().get_mut(&device) {
                    a.keepalive = Some(fresh);
                    a.interrupted = true;
                }
            } else if !interrupted {
                (self.events)(RecEvent::Progress {
                    device,
                    filename: current,
                    duration,
                    bytes,
                });
            }
        }
    }

    /// MediaMTX stopped answering, or restarted and the paths were re-applied: recordings
    /// are interrupted and continue in a new segment once it answers. Reported as
    /// `recording.error` (mediamtx_unavailable, not stopped) at once — once per outage —
    /// and `recording.start` (resumed) when the new segment grows. No progress is reported
    /// while interrupted.
    pub fn mediamtx_unavailable(&self) {
        let mut events = Vec::new();
        {
            let mut active = self.active.lock().unwrap();
            for (dev, a) in active.iter_mut() {
                if !a.interrupted {
                    a.interrupted = true;
                    a.closing = Some(a.current.clone());
                    let duration =
                        ((unix_ms(OffsetDateTime::now_utc()) - a.persisted.start_unix_ms).max(0) as f64) / 1000.0;
                    events.push(RecEvent::Error {
                        device: dev.clone(),
                        filename: a.persisted.first_file.clone(),
                        duration,
                        reason: EndReason::MediamtxUnavailable,
                        stopped: false,
                    });
                }
            }
        }
        for e in events {
            (self.events)(e);
        }
    }

    /// After a service restart: recordings that MediaMTX still has `record: true` for (and
    /// that our state file knows) carry on; a keepalive is started again.
    pub async fn restore(self: &Arc<Self>, publishers: Vec<(String, Publisher)>) {
        let path = self.state_file.clone();
        let saved: BTreeMap<String, Persisted> = blocking::unblock(move || std::fs::read(path))
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (device, publisher) in publishers {
            let Some(p) = saved.get(&device).cloned() else {
                self.paths.adopt_record(&device, publisher, None);
                continue;
            };
            let settings = RecordSettings {
                path_template: record_path_template(&self.config, &device),
                format: p.format,
            };
            self.paths
                .adopt_record(&device, publisher.clone(), Some(settings.clone()));
            let conf = self.paths.read_back(&device).await;
            let recording_in_mediamtx = matches!(&conf, Ok(Some(c)) if c.record == Some(true));
            if !recording_in_mediamtx {
                // MediaMTX lost it too (or never had it): re-apply and carry on.
                // If MediaMTX is unreachable now, the health probe re-applies the path (with
                // its record flag) once it answers.
                if let Err(e) = self
                    .paths
                    .ensure(&device, publisher)
                    .await
                    .and(self.paths.set_record(&device, Some(settings)).await)
                {
                    log::warn!("{device}: cannot resume the recording yet: {e}");
                }
            }
            let remaining = p.duration.map(|d| {
                let end = p.media_start_unix_ms.unwrap_or(p.start_unix_ms) + d as i64 * 1000;
                Duration::from_millis((end - unix_ms(OffsetDateTime::now_utc())).max(0) as u64)
            });
            let start_ms = p.start_unix_ms;
            // Ours: the first segment and what was written since the start, by name order
            // from it; everything else in the folder is someone else's.
            let (d, dev, fmt) = (self.camera_dir(&device), device.clone(), p.format);
            let listing: Vec<Segment> = blocking::unblock(move || segments(&d, &dev, fmt)).await;
            let (mine, others): (Vec<Segment>, Vec<Segment>) = listing
                .into_iter()
                .partition(|f| f.name >= p.first_file && f.modified_ms >= start_ms - 2000);
            let mut a = Active::new(
                p,
                Some(self.keepalive(&device)),
                !recording_in_mediamtx,
                others.into_iter().map(|f| f.name).collect(),
            );
            a.observe(&mine, true);
            self.active.lock().unwrap().insert(device.clone(), a);
            if let Some(r) = remaining {
                self.arm_auto_stop(&device, r, start_ms);
            }
            log::info!("{device}: recording state read back (MediaMTX record flag: {recording_in_mediamtx})");
        }
        self.persist().await;
    }

    /// Stops keepalive readers (service shutdown). Recordings stay on in MediaMTX and in the
    /// state file, so a restarted service picks them up.
    pub async fn shutdown(&self) {
        // Timers are re-armed from the state file by the next start.
        self.timers.lock().unwrap().clear();
        let keepalives: Vec<Supervised> = self
            .active
            .lock()
            .unwrap()
            .values_mut()
            .filter_map(|a| a.keepalive.take())
            .collect();
        for mut k in keepalives {
            blocking::unblock(move || k.stop()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_listed_in_time_order_per_camera_and_format() {
        let dir = std::env::temp_dir().join(format!("rec-seg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in [
            "camera1_2026-11-24_10-00-05-000001.mp4",
            "camera1_2026-11-24_09-59-59-999999.mp4",
            "camera11_2026-11-24_10-00-00-000000.mp4",
            "camera1_2026-11-24_10-00-00-000000.ts",
            "camera1_x.txt",
        ] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        // Not regular files: never segments.
        std::os::unix::fs::symlink(
            dir.join("camera1_2026-11-24_09-59-59-999999.mp4"),
            dir.join("camera1_2030-01-01_00-00-00-000000.mp4"),
        )
        .unwrap();
        nix::unistd::mkfifo(
            &dir.join("camera1_2031-01-01_00-00-00-000000.mp4"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let s: Vec<String> = segments(&dir, "camera1", RecordFormat::Fmp4)
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            s,
            vec![
                "camera1_2026-11-24_09-59-59-999999.mp4",
                "camera1_2026-11-24_10-00-05-000001.mp4"
            ]
        );
        assert_eq!(segments(&dir, "camera1", RecordFormat::Mpegts).len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn first_frame_time_comes_from_the_name_in_any_zone() {
        // 2026-11-24 10:15:30.123456 UTC
        let utc_ms = 1_795_515_330_123;
        let seen = utc_ms + 1_400;
        let f = |name: &str| first_frame_unix_ms(name, "camera1", seen);
        assert_eq!(f("camera1_2026-11-24_10-15-30-123456.mp4"), Some(utc_ms));
        // MediaMTX in UTC+05:45 and UTC-03:30: same instant
        assert_eq!(f("camera1_2026-11-24_16-00-30-123456.mp4"), Some(utc_ms));
        assert_eq!(f("camera1_2026-11-24_06-45-30-123456.ts"), Some(utc_ms));
        for bad in [
            "camera11_2026-11-24_10-15-30-123456.mp4",
            "camera1_2026-13-24_10-15-30-123456.mp4",
            "camera1_2026-11-24_10-15-30.mp4",
            "camera1_2026-11-24_10-15-+3-123456.mp4",
            "camera1_x.mp4",
        ] {
            assert_eq!(f(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_files_seen_growing_after_the_start_are_adopted() {
        let seg = |name: &str, size: u64, modified_ms: i64| Segment {
            name: name.into(),
            size,
            modified_ms,
        };
        let p = Persisted {
            start_unix_ms: 1_000_000,
            first_file: "camera1_2026-01-01_10-00-00-000000.mp4".into(),
            format: RecordFormat::Fmp4,
            duration: None,
            media_start_unix_ms: None,
        };
        let ahead = "camera1_2099-01-01_00-00-00-000000.mp4";
        let mut a = Active::new(p, None, false, [ahead.to_string()].into());
        let next = "camera1_2026-01-01_10-00-10-000000.mp4";
        let copied = "camera1_2050-01-01_00-00-00-000000.mp4";
        let t1 = vec![
            seg("camera1_2026-01-01_10-00-00-000000.mp4", 100, 1_000_500),
            seg(next, 10, 1_010_000),
            seg(copied, 500, 1),
            seg(ahead, 900, 1),
        ];
        let ours = a.observe(&t1, false);
        assert_eq!(ours, vec![("camera1_2026-01-01_10-00-00-000000.mp4".to_string(), 100)]);
        assert_eq!(
            a.current, "camera1_2026-01-01_10-00-00-000000.mp4",
            "new files wait until they grow"
        );
        let t2 = vec![
            seg("camera1_2026-01-01_10-00-00-000000.mp4", 100, 1_000_500),
            seg(next, 20, 1_011_000),
            seg(copied, 500, 1),
            seg(ahead, 900, 1),
        ];
        let ours = a.observe(&t2, false);
        assert_eq!(ours.len(), 2);
        assert_eq!(
            a.current, next,
            "the growing segment is current; the copied and early files are not ours"
        );
        // At the stop, a file written during the recording is ours even if it did not grow
        // between two looks; one written before the start is not.
        let last = "camera1_2026-01-01_10-00-20-000000.mp4";
        let mut t3 = t2.clone();
        t3.push(seg(last, 30, 1_020_000));
        let ours = a.observe(&t3, true);
        assert_eq!(
            ours.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().last(),
            Some(&last)
        );
        assert!(!ours.iter().any(|(n, _)| n == copied || n == ahead));
    }

    #[test]
    fn being_written_is_the_current_segment_or_a_newer_one() {
        let cfg = Arc::new(Config::default());
        let client = Arc::new(crate::mediamtx::client::Client::new(&cfg.mediamtx));
        let paths = Arc::new(PathManager::new(client, cfg.clone()));
        let m = RecordingManager::new(cfg.clone(), paths, Arc::new(|_| {}), Arc::new(|| Ok(())));
        let persisted = Persisted {
            start_unix_ms: 0,
            first_file: "camera1_2026-11-24_10-00-00-000000.mp4".into(),
            format: RecordFormat::Fmp4,
            duration: None,
            media_start_unix_ms: None,
        };
        let mut a = Active::new(
            persisted,
            None,
            false,
            ["camera1_2026-11-24_12-00-00-000000.mp4".to_string()].into(),
        );
        a.current = "camera1_2026-11-24_11-00-00-000000.mp4".into();
        m.active.lock().unwrap().insert("camera1".into(), a);
        let dir = cfg.storage.recordings_dir.join("camera1");
        assert!(
            m.is_being_written(&dir.join("camera1_2026-11-24_11-00-00-000000.mp4")),
            "current"
        );
        assert!(
            m.is_being_written(&dir.join("camera1_2026-11-24_11-00-05-000000.mp4")),
            "appeared since the last tick"
        );
        assert!(
            !m.is_being_written(&dir.join("camera1_2026-11-24_10-00-00-000000.mp4")),
            "closed earlier segment"
        );
        assert!(
            !m.is_being_written(&dir.join("camera1_2026-11-24_11-00-05-000000.ts")),
            "other format"
        );
        assert!(
            !m.is_being_written(&dir.join("camera1_2026-11-24_12-00-00-000000.mp4")),
            "there before the start: never ours, whatever its name"
        );
        assert!(!m.is_being_written(
            &cfg.storage
                .recordings_dir
                .join("camera2")
                .join("camera2_2026-11-24_12-00-00-000000.mp4")
        ));
        assert!(
            !m.is_being_written(&dir.join("camera11_2026-11-24_12-00-00-000000.mp4")),
            "another camera's prefix"
        );
    }
}
