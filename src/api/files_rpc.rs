//! JSON-RPC handlers of the file and storage methods (api.md §7). Params are checked here;
//! the work is one controller operation each.

use super::error::RpcError;
use super::methods::Call;
use crate::storage::files::Kind;
use crate::storage::retention::PolicyType;
use futures_util::future::BoxFuture;
use serde_json::Value;

type Reply = BoxFuture<'static, Result<Value, RpcError>>;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

fn list(call: Call, kind: Kind) -> Reply {
    Box::pin(async move {
        let Call { state, mut params, .. } = call;
        let limit = params.opt_int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize;
        let offset = params.opt_int("offset", 0, i64::MAX)?.unwrap_or(0) as usize;
        let device = match params.opt_str("device")? {
            Some(d) if crate::ids::parse_camera_id(&d).is_none() => {
                return Err(RpcError::invalid_params(
                    "device",
                    "device must look like cameraN (^camera[0-9]+$)",
                ))
            }
            d => d,
        };
        params.finish()?;
        Ok(state.controller.list_files(kind, device, limit, offset).await?)
    })
}

fn filename(call: &mut Call) -> Result<String, RpcError> {
    let name = call.params.str("filename")?;
    crate::storage::files::validate_name(&name)?;
    Ok(name)
}

fn info(mut call: Call, kind: Kind) -> Reply {
    Box::pin(async move {
        let name = filename(&mut call)?;
        call.params.finish()?;
        Ok(call.state.controller.file_info(kind, name).await?)
    })
}

fn delete(mut call: Call, kind: Kind) -> Reply {
    Box::pin(async move {
        let name = filename(&mut call)?;
        call.params.finish()?;
        Ok(call.state.controller.delete_file(kind, name).await?)
    })
}

pub fn list_recordings(call: Call) -> Reply {
    list(call, Kind::Recording)
}
pub fn list_snapshots(call: Call) -> Reply {
    list(call, Kind::Snapshot)
}
pub fn get_recording_info(call: Call) -> Reply {
    info(call, Kind::Recording)
}
pub fn get_snapshot_info(call: Call) -> Reply {
    info(call, Kind::Snapshot)
}
pub fn delete_recording(call: Call) -> Reply {
    delete(call, Kind::Recording)
}
pub fn delete_snapshot(call: Call) -> Reply {
    delete(call, Kind::Snapshot)
}

pub fn get_storage_info(call: Call) -> Reply {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.storage_info().await?)
    })
}

pub fn set_retention_policy(call: Call) -> Reply {
    Box::pin(async move {
        let Call { state, mut params, .. } = call;
        let policy_type = params.str("policy_type")?;
        let policy_type = PolicyType::parse(&policy_type)
            .ok_or_else(|| RpcError::invalid_params("policy_type", "policy_type must be age, size or manual"))?;
        let enabled = params
            .opt_bool("enabled")?
            .ok_or_else(|| RpcError::invalid_params("enabled", "enabled is required (true or false)"))?;
        let max_age_days = params.opt_int("max_age_days", 1, 3650)?.map(|d| d as u32);
        let max_size_gb = params.opt_number("max_size_gb", 0.0, 1_000_000.0)?;
        params.finish()?;
        Ok(state
            .controller
            .set_retention_policy(policy_type, enabled, max_age_days, max_size_gb)
            .await?)
    })
}

pub fn cleanup_old_files(call: Call) -> Reply {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.cleanup_old_files().await?)
    })
}
