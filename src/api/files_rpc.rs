//! Params and operations of the file and storage methods (api.md §7): each operation is
//! one controller call.

use super::error::RpcError;
use super::jsonrpc::Params;
use super::methods::{FromParams, NoParams};
use super::{AppState, Session};
use crate::controller::files::{Cleanup, Deleted, FileInfo, FileList, RetentionPolicySet, StorageInfo};
use crate::storage::files::Kind;
use crate::storage::retention::PolicyType;
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use std::sync::Arc;

type Reply<R> = BoxFuture<'static, Result<R, RpcError>>;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, default 50.
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<usize>,
    #[schemars(range(min = 0))]
    pub offset: Option<usize>,
    /// Only this camera's files.
    #[schemars(regex(pattern = r"^camera[0-9]+$"))]
    pub device: Option<String>,
}

impl FromParams for ListParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let limit = p.opt_int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize;
        let offset = p.opt_int("offset", 0, i64::MAX)?.unwrap_or(0) as usize;
        let device = match p.opt_str("device")? {
            Some(d) if crate::ids::parse_camera_id(&d).is_none() => {
                return Err(RpcError::invalid_params(
                    "device",
                    "device must look like cameraN (^camera[0-9]+$)",
                ))
            }
            d => d,
        };
        p.finish()?;
        Ok(ListParams {
            limit: Some(limit),
            offset: Some(offset),
            device,
        })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FileParams {
    /// A bare file name as listed (no directories).
    pub filename: String,
}

impl FromParams for FileParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let filename = p.str("filename")?;
        crate::storage::files::validate_name(&filename)?;
        p.finish()?;
        Ok(FileParams { filename })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RetentionParams {
    pub policy_type: PolicyType,
    pub enabled: bool,
    /// Required for the `age` policy (unless set before).
    #[schemars(range(min = 1, max = 3650))]
    pub max_age_days: Option<u32>,
    /// Required for the `size` policy (unless set before); greater than 0.
    #[schemars(range(max = 1000000.0))]
    pub max_size_gb: Option<f64>,
}

impl FromParams for RetentionParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let policy_type = p.str("policy_type")?;
        let policy_type = PolicyType::parse(&policy_type)
            .ok_or_else(|| RpcError::invalid_params("policy_type", "policy_type must be age, size or manual"))?;
        let enabled = p
            .opt_bool("enabled")?
            .ok_or_else(|| RpcError::invalid_params("enabled", "enabled is required (true or false)"))?;
        let max_age_days = p.opt_int("max_age_days", 1, 3650)?.map(|d| d as u32);
        let max_size_gb = p.opt_number("max_size_gb", 0.0, 1_000_000.0)?;
        p.finish()?;
        Ok(RetentionParams {
            policy_type,
            enabled,
            max_age_days,
            max_size_gb,
        })
    }
}

fn list(s: Arc<AppState>, p: ListParams, kind: Kind) -> Reply<FileList> {
    Box::pin(async move {
        let (limit, offset) = (p.limit.unwrap_or(DEFAULT_LIMIT as usize), p.offset.unwrap_or(0));
        Ok(s.controller.list_files(kind, p.device, limit, offset).await?)
    })
}

pub fn list_recordings(s: Arc<AppState>, _: Arc<Session>, p: ListParams) -> Reply<FileList> {
    list(s, p, Kind::Recording)
}
pub fn list_snapshots(s: Arc<AppState>, _: Arc<Session>, p: ListParams) -> Reply<FileList> {
    list(s, p, Kind::Snapshot)
}
pub fn get_recording_info(s: Arc<AppState>, _: Arc<Session>, p: FileParams) -> Reply<FileInfo> {
    Box::pin(async move { Ok(s.controller.file_info(Kind::Recording, p.filename).await?) })
}
pub fn get_snapshot_info(s: Arc<AppState>, _: Arc<Session>, p: FileParams) -> Reply<FileInfo> {
    Box::pin(async move { Ok(s.controller.file_info(Kind::Snapshot, p.filename).await?) })
}
pub fn delete_recording(s: Arc<AppState>, _: Arc<Session>, p: FileParams) -> Reply<Deleted> {
    Box::pin(async move { Ok(s.controller.delete_file(Kind::Recording, p.filename).await?) })
}
pub fn delete_snapshot(s: Arc<AppState>, _: Arc<Session>, p: FileParams) -> Reply<Deleted> {
    Box::pin(async move { Ok(s.controller.delete_file(Kind::Snapshot, p.filename).await?) })
}
pub fn get_storage_info(s: Arc<AppState>, _: Arc<Session>, _: NoParams) -> Reply<StorageInfo> {
    Box::pin(async move { Ok(s.controller.storage_info().await?) })
}
pub fn set_retention_policy(s: Arc<AppState>, _: Arc<Session>, p: RetentionParams) -> Reply<RetentionPolicySet> {
    Box::pin(async move {
        Ok(s.controller
            .set_retention_policy(p.policy_type, p.enabled, p.max_age_days, p.max_size_gb)
            .await?)
    })
}
pub fn cleanup_old_files(s: Arc<AppState>, _: Arc<Session>, _: NoParams) -> Reply<Cleanup> {
    Box::pin(async move { Ok(s.controller.cleanup_old_files().await?) })
}
