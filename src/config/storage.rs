//! `[storage]`: where state, recordings and snapshots live; free space; retention.

use super::{Dur, Validator};
use crate::storage::retention::PolicyType;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub state_dir: PathBuf,
    pub recordings_dir: PathBuf,
    pub snapshots_dir: PathBuf,
    /// Free-space floor: below it new recordings/snapshots are refused (-32060) and the
    /// low-space warning is on.
    pub min_free_bytes: u64,
    /// Low-space warning (event + `storage` health DEGRADED) when free space is below this
    /// percentage of the file system.
    pub low_space_warning_percent: u8,
    /// Period of the free-space check.
    pub space_check_interval: Dur,
    /// Period of background retention enforcement.
    pub retention_check_interval: Dur,
    /// Retention policy used until `set_retention_policy` saves one: age|size|manual.
    #[serde(deserialize_with = "retention_policy")]
    pub retention_policy: PolicyType,
    pub retention_max_age_days: u32,
    pub retention_max_size_gb: f64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            state_dir: PathBuf::from("/var/lib/camera-service"),
            recordings_dir: PathBuf::from("/var/lib/camera-service/recordings"),
            snapshots_dir: PathBuf::from("/var/lib/camera-service/snapshots"),
            min_free_bytes: 256 * 1024 * 1024,
            low_space_warning_percent: 10,
            space_check_interval: Dur::secs(30),
            retention_check_interval: Dur::secs(600),
            retention_policy: PolicyType::Manual,
            retention_max_age_days: 30,
            retention_max_size_gb: 50.0,
        }
    }
}

impl StorageConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.abs_path("storage.state_dir", &self.state_dir);
        v.abs_path("storage.recordings_dir", &self.recordings_dir);
        v.abs_path("storage.snapshots_dir", &self.snapshots_dir);
        v.check(
            self.recordings_dir != self.snapshots_dir,
            "storage.snapshots_dir",
            "must differ from storage.recordings_dir",
        );
        v.range(
            "storage.low_space_warning_percent",
            self.low_space_warning_percent as u64,
            0,
            100,
        );
        v.dur(
            "storage.space_check_interval",
            self.space_check_interval,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        );
        v.dur(
            "storage.retention_check_interval",
            self.retention_check_interval,
            Duration::from_millis(100),
            Duration::from_secs(7 * 86400),
        );
        v.range(
            "storage.retention_max_age_days",
            self.retention_max_age_days as u64,
            1,
            3650,
        );
        v.check(
            self.retention_max_size_gb.is_finite() && self.retention_max_size_gb > 0.0,
            "storage.retention_max_size_gb",
            "must be a number greater than 0",
        );
    }
}

fn retention_policy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PolicyType, D::Error> {
    super::one_of(d, PolicyType::parse, "age, size, manual")
}
