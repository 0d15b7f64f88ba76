//! Storage manager: recordings and snapshots on disk (list, info, delete), free space,
//! and retention (api.md §7). Every method here blocks (file-system work); the controller
//! runs them on the blocking pool.

pub mod files;
pub mod media_info;
pub mod retention;

use crate::clock::{rfc3339, Clock};
use crate::config::StorageConfig;
use crate::error::ServiceError;
use files::{Entry, Kind};
use media_info::MediaInfo;
use retention::{Policy, PolicyType};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// "Is this file being written?" — implemented by whoever knows (the recording manager).
/// Paths are `<recordings_dir>/<cameraN>/<file name>`, built from the configured directory.
pub trait ActiveRecordings: Send + Sync {
    fn is_active(&self, path: &Path) -> bool;
}

/// One file of `list_recordings` / `list_snapshots`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct FileEntry {
    pub filename: String,
    pub device: String,
    pub file_size: u64,
    pub created_time: String,
    pub modified_time: String,
    /// `fmp4`, `mpegts`, `jpg`, `png` (or `unknown`).
    pub format: String,
    /// Seconds, recordings only (`null` when the header does not tell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<Option<f64>>,
    pub download_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct FileList {
    pub files: Vec<FileEntry>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

/// `get_recording_info` / `get_snapshot_info`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct FileInfo {
    #[serde(flatten)]
    pub entry: FileEntry,
    /// Recordings only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<Option<String>>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The segment is being written now.
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Deleted {
    pub filename: String,
    pub deleted: bool,
    pub message: String,
}

/// `get_storage_info`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StorageInfo {
    pub total_space: u64,
    pub used_space: u64,
    pub available_space: u64,
    pub usage_percentage: f64,
    pub recordings_size: u64,
    pub snapshots_size: u64,
    pub low_space_warning: bool,
    pub recordings_count: usize,
    pub snapshots_count: usize,
    pub min_free_bytes: u64,
    pub low_space_warning_percent: u8,
}

/// `set_retention_policy`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RetentionPolicySet {
    pub policy_type: PolicyType,
    pub enabled: bool,
    pub max_age_days: Option<u32>,
    pub max_size_gb: Option<f64>,
    pub message: String,
}

/// `cleanup_old_files`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Cleanup {
    pub cleanup_executed: bool,
    pub files_deleted: u64,
    pub space_freed: u64,
    pub message: String,
}

/// Below this much free space the disk counts as full whatever `storage.min_free_bytes`
/// says: writers (MediaMTX's recorder, snapshots) would fail with ENOSPC.
pub const FULL_MARGIN: u64 = 1 << 20;

/// Header results kept per (path, size, mtime); cleared when it reaches this many entries.
const MEDIA_CACHE_MAX: usize = 4096;

/// Free-space figures of the file system holding the recordings.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub total: u64,
    pub used: u64,
    pub available: u64,
}

impl Space {
    pub fn usage_percentage(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        (self.used as f64 * 10_000.0 / self.total as f64).round() / 100.0
    }
}

pub struct Storage {
    cfg: StorageConfig,
    clock: RwLock<Clock>,
    active: Arc<dyn ActiveRecordings>,
    cache: Mutex<HashMap<PathBuf, (u64, SystemTime, MediaInfo)>>,
    policy: Mutex<Policy>,
    warning_percent: AtomicU8,
    /// `storage.min_free_bytes`, adjustable at run time.
    min_free: AtomicU64,
    low: AtomicBool,
}

/// Result of a low-space check.
#[derive(Clone, Debug)]
pub struct SpaceCheck {
    pub space: Space,
    pub low: bool,
    /// True when `low` changed with this check.
    pub changed: bool,
}

impl Storage {
    /// Creates the directories (best effort) and loads the persisted retention policy,
    /// falling back to the configured default.
    pub fn new(cfg: &StorageConfig, active: Arc<dyn ActiveRecordings>) -> Storage {
        for d in [&cfg.recordings_dir, &cfg.snapshots_dir] {
            if let Err(e) = std::fs::create_dir_all(d) {
                log::warn!("cannot create {}: {e}", d.display());
            }
        }
        let policy = match retention::load(&cfg.state_dir) {
            Ok(Some(p)) => {
                log::info!(
                    "retention policy {} (enabled: {}) loaded",
                    p.policy_type.as_str(),
                    p.enabled
                );
                p
            }
            Ok(None) => default_policy(cfg),
            Err(e) => {
                log::warn!("{e}; using the configured default retention policy");
                default_policy(cfg)
            }
        };
        Storage {
            min_free: AtomicU64::new(cfg.min_free_bytes),
            cfg: cfg.clone(),
            clock: RwLock::new(Clock::system()),
            active,
            cache: Mutex::new(HashMap::new()),
            policy: Mutex::new(policy),
            warning_percent: AtomicU8::new(cfg.low_space_warning_percent),
            low: AtomicBool::new(false),
        }
    }

    /// Replaces the clock retention decisions use (tests drive a manual clock).
    pub fn set_clock(&self, clock: Clock) {
        *self.clock.write().unwrap() = clock;
    }

    /// Overrides `storage.min_free_bytes` at run time.
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.min_free.store(bytes, Ordering::SeqCst);
    }

    pub fn min_free_bytes(&self) -> u64 {
        self.min_free.load(Ordering::SeqCst)
    }

    /// Overrides `storage.low_space_warning_percent` at run time.
    pub fn set_low_space_warning_percent(&self, percent: u8) {
        self.warning_percent.store(percent.min(100), Ordering::SeqCst);
    }

    pub fn root(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Recording => &self.cfg.recordings_dir,
            Kind::Snapshot => &self.cfg.snapshots_dir,
        }
    }

    fn media_info(&self, path: &Path, size: u64, mtime: SystemTime, file: Option<&mut std::fs::File>) -> MediaInfo {
        if let Some((s, m, info)) = self.cache.lock().unwrap().get(path) {
            if *s == size && *m == mtime {
                return info.clone();
            }
        }
        let mut opened;
        let file = match file {
            Some(f) => f,
            None => {
                // Listing: the path comes from a directory scan; never follow a symlink.
                use std::os::unix::fs::OpenOptionsExt;
                opened = match std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                    .open(path)
                {
                    Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
                    _ => return MediaInfo::default(),
                };
                &mut opened
            }
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let info = if name.to_ascii_lowercase().ends_with(".ts") {
            media_info::probe_ts(file, size)
        } else {
            media_info::probe_mp4(file, size)
        };
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= MEDIA_CACHE_MAX {
            cache.clear();
        }
        cache.insert(path.to_path_buf(), (size, mtime, info.clone()));
        info
    }

    fn file_entry(&self, kind: Kind, e: &Entry, info: Option<&MediaInfo>) -> FileEntry {
        let format = match (kind, info) {
            (Kind::Recording, Some(i)) if !i.format.is_empty() => i.format,
            _ => files::file_format(kind, &e.name).unwrap_or("unknown"),
        };
        FileEntry {
            filename: e.name.clone(),
            device: e.device.clone(),
            file_size: e.size,
            created_time: time_text(e.created),
            modified_time: time_text(e.modified),
            format: format.to_string(),
            duration: (kind == Kind::Recording)
                .then(|| info.and_then(|i| i.duration).map(|d| (d * 1000.0).round() / 1000.0)),
            download_url: format!("/files/{}/{}", kind.url_segment(), url_encode(&e.name)),
        }
    }

    /// `list_recordings` / `list_snapshots`.
    pub fn list(
        &self,
        kind: Kind,
        device: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<FileList, ServiceError> {
        let mut entries = files::scan(kind, self.root(kind), device)?;
        files::sort_newest_first(&mut entries);
        let total = entries.len();
        let files = entries
            .iter()
            .skip(offset)
            .take(limit)
            .map(|e| {
                let info = (kind == Kind::Recording).then(|| self.media_info(&e.path, e.size, e.modified, None));
                self.file_entry(kind, e, info.as_ref())
            })
            .collect();
        Ok(FileList {
            files,
            total,
            limit,
            offset,
        })
    }

    /// `get_recording_info` / `get_snapshot_info`.
    pub fn info(&self, kind: Kind, name: &str) -> Result<FileInfo, ServiceError> {
        let mut o = files::open_file(kind, self.root(kind), name)?;
        let modified = o.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let e = Entry {
            kind,
            name: name.to_string(),
            device: o.device.clone(),
            path: o.path.clone(),
            size: o.meta.len(),
            modified,
            created: o.meta.created().unwrap_or(modified),
        };
        let active = self.active.is_active(&o.path);
        Ok(match kind {
            Kind::Recording => {
                let info = self.media_info(&o.path, e.size, modified, Some(&mut o.file));
                FileInfo {
                    entry: self.file_entry(kind, &e, Some(&info)),
                    codec: Some(info.codec),
                    width: info.width,
                    height: info.height,
                    active,
                }
            }
            Kind::Snapshot => {
                let size = media_info::image_size(&mut o.file);
                FileInfo {
                    entry: self.file_entry(kind, &e, None),
                    codec: None,
                    width: size.map(|s| s.0),
                    height: size.map(|s| s.1),
                    active,
                }
            }
        })
    }

    fn refuse_active(&self, path: &Path) -> Result<(), ServiceError> {
        if self.active.is_active(path) {
            return Err(ServiceError::InvalidState {
                state: "recording".into(),
                details: "this segment is being written; stop the recording first".into(),
            });
        }
        Ok(())
    }

    /// `delete_recording` / `delete_snapshot`.
    pub fn delete(&self, kind: Kind, name: &str) -> Result<Deleted, ServiceError> {
        files::remove_file(kind, self.root(kind), name, |p| self.refuse_active(p))?;
        log::info!("{} {name} deleted", kind.resource());
        Ok(Deleted {
            filename: name.to_string(),
            deleted: true,
            message: format!("{} deleted", kind.resource()),
        })
    }

    /// statvfs of the recordings file system (the nearest existing ancestor if the
    /// directory is missing).
    pub fn space(&self) -> Result<Space, ServiceError> {
        let mut dir: &Path = &self.cfg.recordings_dir;
        while !dir.exists() {
            match dir.parent() {
                Some(p) => dir = p,
                None => break,
            }
        }
        let st = nix::sys::statvfs::statvfs(dir)
            .map_err(|e| ServiceError::Internal(format!("statvfs of the recordings directory: {e}")))?;
        let frag = st.fragment_size() as u64;
        let total = st.blocks() as u64 * frag;
        let free = st.blocks_free() as u64 * frag;
        Ok(Space {
            total,
            used: total.saturating_sub(free),
            available: st.blocks_available() as u64 * frag,
        })
    }

    fn is_low(&self, s: &Space) -> bool {
        let pct = self.warning_percent.load(Ordering::SeqCst) as u128;
        (s.available as u128) * 100 < (s.total as u128) * pct || s.available < self.min_free_bytes()
    }

    /// Re-evaluates the low-space state.
    pub fn check_space(&self) -> Result<SpaceCheck, ServiceError> {
        let space = self.space()?;
        let low = self.is_low(&space);
        let was = self.low.swap(low, Ordering::SeqCst);
        Ok(SpaceCheck {
            space,
            low,
            changed: was != low,
        })
    }

    /// Free space at or above `storage.min_free_bytes`, and never below [`FULL_MARGIN`]
    /// (shared with the recording work): a full disk is the floor case even with the floor
    /// set to 0.
    pub fn check_free_space(&self) -> Result<(), ServiceError> {
        let s = self.space()?;
        let floor = self.min_free_bytes().max(FULL_MARGIN);
        if s.available < floor {
            return Err(ServiceError::InsufficientStorage {
                available_bytes: s.available,
                required_bytes: floor,
            });
        }
        Ok(())
    }

    /// `get_storage_info`.
    pub fn storage_info(&self) -> Result<StorageInfo, ServiceError> {
        let check = self.check_space()?;
        let recs = files::scan(Kind::Recording, self.root(Kind::Recording), None)?;
        let snaps = files::scan(Kind::Snapshot, self.root(Kind::Snapshot), None)?;
        let s = &check.space;
        Ok(StorageInfo {
            total_space: s.total,
            used_space: s.used,
            available_space: s.available,
            usage_percentage: s.usage_percentage(),
            recordings_size: recs.iter().map(|e| e.size).sum::<u64>(),
            snapshots_size: snaps.iter().map(|e| e.size).sum::<u64>(),
            low_space_warning: check.low,
            recordings_count: recs.len(),
            snapshots_count: snaps.len(),
            min_free_bytes: self.min_free_bytes(),
            low_space_warning_percent: self.warning_percent.load(Ordering::SeqCst),
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy.lock().unwrap().clone()
    }

    /// `set_retention_policy`: missing limits keep their current value; the policy's own
    /// limit must end up set. Persisted before it takes effect.
    pub fn set_policy(
        &self,
        policy_type: PolicyType,
        enabled: bool,
        max_age_days: Option<u32>,
        max_size_gb: Option<f64>,
    ) -> Result<RetentionPolicySet, ServiceError> {
        let mut guard = self.policy.lock().unwrap();
        let new = Policy {
            policy_type,
            enabled,
            max_age_days: max_age_days.or(guard.max_age_days),
            max_size_gb: max_size_gb.or(guard.max_size_gb),
        };
        if policy_type == PolicyType::Age && new.max_age_days.is_none() {
            return Err(ServiceError::InvalidParam {
                param: "max_age_days",
                details: "max_age_days is required for the age policy".into(),
            });
        }
        if policy_type == PolicyType::Size && new.max_size_gb.is_none() {
            return Err(ServiceError::InvalidParam {
                param: "max_size_gb",
                details: "max_size_gb is required for the size policy".into(),
            });
        }
        retention::save(&self.cfg.state_dir, &new)
            .map_err(|e| ServiceError::Internal(format!("cannot save the retention policy: {e}")))?;
        *guard = new.clone();
        log::info!("retention policy set to {} (enabled: {enabled})", policy_type.as_str());
        Ok(RetentionPolicySet {
            policy_type: new.policy_type,
            enabled: new.enabled,
            max_age_days: new.max_age_days,
            max_size_gb: new.max_size_gb,
            message: format!(
                "retention policy {} {}",
                policy_type.as_str(),
                if enabled { "enabled" } else { "saved (disabled)" }
            ),
        })
    }

    /// Runs the current policy once: `(files_deleted, bytes_freed)`; `None` for `manual`.
    pub fn enforce(&self) -> Result<Option<(u64, u64)>, ServiceError> {
        let policy = self.policy();
        if policy.policy_type == PolicyType::Manual {
            return Ok(None);
        }
        let mut all = files::scan(Kind::Recording, self.root(Kind::Recording), None)?;
        all.extend(files::scan(Kind::Snapshot, self.root(Kind::Snapshot), None)?);
        let now = self.clock.read().unwrap().unix();
        let victims = retention::plan(&policy, &all, now, |e| self.active.is_active(&e.path));
        let (mut n, mut freed) = (0u64, 0u64);
        for e in victims {
            match files::remove_file(e.kind, self.root(e.kind), &e.name, |p| self.refuse_active(p)) {
                Ok(size) => {
                    n += 1;
                    freed += size;
                    log::info!(
                        "retention ({}) deleted {} {}",
                        policy.policy_type.as_str(),
                        e.kind.resource(),
                        e.name
                    );
                }
                Err(ServiceError::NotFound { .. }) => {}
                Err(err) => log::warn!("retention could not delete {}: {err}", e.name),
            }
        }
        Ok(Some((n, freed)))
    }

    /// `cleanup_old_files`: runs the policy now, even when its background enforcement is
    /// disabled (an explicit admin request); `manual` deletes nothing.
    pub fn cleanup(&self) -> Result<Cleanup, ServiceError> {
        Ok(match self.enforce()? {
            None => Cleanup {
                cleanup_executed: false,
                files_deleted: 0,
                space_freed: 0,
                message: "retention policy is manual: nothing deleted".into(),
            },
            Some((n, freed)) => Cleanup {
                cleanup_executed: true,
                files_deleted: n,
                space_freed: freed,
                message: format!("{n} file(s) deleted, {freed} bytes freed"),
            },
        })
    }

    /// Background enforcement runs only for an enabled, non-manual policy.
    pub fn background_enabled(&self) -> bool {
        let p = self.policy();
        p.enabled && p.policy_type != PolicyType::Manual
    }
}

fn default_policy(cfg: &StorageConfig) -> Policy {
    let policy_type = cfg.retention_policy;
    Policy {
        policy_type,
        enabled: policy_type != PolicyType::Manual,
        max_age_days: Some(cfg.retention_max_age_days),
        max_size_gb: Some(cfg.retention_max_size_gb),
    }
}

fn time_text(t: SystemTime) -> String {
    let nanos = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(rfc3339)
        .unwrap_or_default()
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for `download_url`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_round_trips_through_the_decoder() {
        for s in ["camera0_2026-11-24_10-15-30-123456.mp4", "my snap #1?.jpg", "é%.png"] {
            assert_eq!(files::percent_decode(&url_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(url_encode("a b.jpg"), "a%20b.jpg");
    }
}
