//! Controller operations for files and storage (one per API method), and the background
//! task that checks free space and enforces retention. File-system work runs on the
//! blocking pool.

use super::Controller;
use crate::error::ServiceError;
use crate::events::Event;
use crate::health::Level;
use crate::storage::files::{Kind, Opened};
use crate::storage::retention::PolicyType;
use crate::storage::Storage;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::storage::{Cleanup, Deleted, FileEntry, FileInfo, FileList, RetentionPolicySet, StorageInfo};

impl Controller {
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    async fn on_storage<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Storage) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        // At most FILE_WORKERS file-system jobs on the blocking pool at once: a burst of
        // file requests (or a slow disk) waits here, asynchronously, instead of filling the
        // pool and starving everyone else's blocking work (credential checks, MediaMTX).
        let _permit = self.file_workers.acquire().await;
        let s = self.storage.clone();
        blocking::unblock(move || f(&s)).await
    }

    pub async fn list_files(
        &self,
        kind: Kind,
        device: Option<String>,
        limit: usize,
        offset: usize,
    ) -> Result<FileList, ServiceError> {
        self.on_storage(move |s| s.list(kind, device.as_deref(), limit, offset))
            .await
    }

    pub async fn file_info(&self, kind: Kind, filename: String) -> Result<FileInfo, ServiceError> {
        self.on_storage(move |s| s.info(kind, &filename)).await
    }

    pub async fn delete_file(&self, kind: Kind, filename: String) -> Result<Deleted, ServiceError> {
        self.on_storage(move |s| s.delete(kind, &filename)).await
    }

    /// Opens a file for download (same resolution rules as every other file method).
    pub async fn open_download(&self, kind: Kind, filename: String) -> Result<Opened, ServiceError> {
        self.on_storage(move |s| crate::storage::files::open_file(kind, s.root(kind), &filename))
            .await
    }

    pub async fn storage_info(&self) -> Result<StorageInfo, ServiceError> {
        let v = self.on_storage(|s| s.storage_info()).await?;
        self.check_storage_space().await;
        Ok(v)
    }

    pub async fn set_retention_policy(
        &self,
        policy_type: PolicyType,
        enabled: bool,
        max_age_days: Option<u32>,
        max_size_gb: Option<f64>,
    ) -> Result<RetentionPolicySet, ServiceError> {
        self.on_storage(move |s| s.set_policy(policy_type, enabled, max_age_days, max_size_gb))
            .await
    }

    pub async fn cleanup_old_files(&self) -> Result<Cleanup, ServiceError> {
        self.on_storage(|s| s.cleanup()).await
    }

    /// Free space at or above `storage.min_free_bytes`, else -32060 (for recordings and
    /// snapshots).
    pub async fn check_free_space(&self) -> Result<(), ServiceError> {
        self.on_storage(|s| s.check_free_space()).await
    }

    /// Updates the `storage` health component; publishes `storage.low_space` when free space
    /// falls below the warning threshold (once per transition).
    pub async fn check_storage_space(&self) {
        let check = match self.on_storage(|s| s.check_space()).await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("storage check failed: {e}");
                self.set_component("storage", Level::Degraded, "cannot read free space", false, true);
                return;
            }
        };
        let s = &check.space;
        let message = format!(
            "{} bytes free of {} ({:.1}% used)",
            s.available,
            s.total,
            s.usage_percentage()
        );
        if check.low {
            self.set_component(
                "storage",
                Level::Degraded,
                &format!("low space: {message}"),
                false,
                true,
            );
        } else {
            self.set_component("storage", Level::Healthy, &message, false, true);
        }
        if check.low && check.changed {
            log::warn!("storage low: {message}");
            self.events.publish(Event::StorageLowSpace {
                space: check.space.clone(),
                threshold_percent: self.config.storage.low_space_warning_percent,
                min_free_bytes: self.storage.min_free_bytes(),
                message: format!("low storage space: {message}"),
            });
        }
    }

    /// Runs retention once if the policy is enabled (background path).
    pub async fn enforce_retention(&self) {
        if !self.storage.background_enabled() {
            return;
        }
        match self.on_storage(|s| s.enforce()).await {
            Ok(Some((n, freed))) if n > 0 => log::info!("retention deleted {n} file(s), {freed} bytes"),
            Ok(_) => {}
            Err(e) => log::warn!("retention failed: {e}"),
        }
    }

    /// Starts the storage task: a free-space check every `storage.space_check_interval`
    /// (and at once), retention every `storage.retention_check_interval`. Ends on shutdown.
    pub(super) fn start_storage(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let cfg = &self.config.storage;
        let (space_every, retention_every) = (cfg.space_check_interval.get(), cfg.retention_check_interval.get());
        let shutdown = self.shutdown.clone();
        self.tasks.spawn("storage", async move {
            let tick = space_every.min(retention_every).max(Duration::from_millis(50));
            let mut next_space = Instant::now();
            let mut next_retention = Instant::now() + retention_every;
            while !shutdown.is_triggered() {
                let Some(ctl) = me.upgrade() else { return };
                let now = Instant::now();
                if now >= next_space {
                    ctl.check_storage_space().await;
                    next_space = now + space_every;
                }
                if now >= next_retention {
                    ctl.enforce_retention().await;
                    next_retention = now + retention_every;
                }
                drop(ctl);
                super::stop_or_sleep(&shutdown, tick).await;
            }
        });
    }
}
