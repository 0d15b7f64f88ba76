//! JSON-RPC handlers of the external stream methods (api.md §11). Params are checked here;
//! the work is one controller operation each (`controller_external.rs`).

use super::error::RpcError;
use super::methods::Call;
use crate::controller_external::{MAX_SCAN_INTERVAL, MIN_SCAN_INTERVAL};
use crate::external::StreamType;
use futures_util::future::BoxFuture;
use serde_json::Value;

type Reply = BoxFuture<'static, Result<Value, RpcError>>;

/// `stream_url`: validated here so a bad URL is -32602 with `data.param`; the details never
/// echo credentials.
fn stream_url(call: &mut Call) -> Result<String, RpcError> {
    let url = call.params.str("stream_url")?;
    crate::external::validate_url(&url).map_err(|why| RpcError::invalid_params("stream_url", why))?;
    Ok(url)
}

pub fn add_external_stream(mut call: Call) -> Reply {
    Box::pin(async move {
        let url = stream_url(&mut call)?;
        let name = call.params.str("stream_name")?;
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(RpcError::invalid_params(
                "stream_name",
                "stream_name must be 1 to 128 characters without control characters",
            ));
        }
        let stream_type = match call.params.opt_str("stream_type")? {
            None => StreamType::GenericRtsp,
            Some(t) => StreamType::parse(&t).ok_or_else(|| {
                RpcError::invalid_params(
                    "stream_type",
                    "stream_type must be generic_rtsp, skydio_eo or skydio_ir",
                )
            })?,
        };
        call.params.finish()?;
        Ok(call
            .state
            .controller
            .add_external_stream(&url, &name, stream_type)
            .await?)
    })
}

pub fn remove_external_stream(mut call: Call) -> Reply {
    Box::pin(async move {
        let url = stream_url(&mut call)?;
        call.params.finish()?;
        Ok(call.state.controller.remove_external_stream(&url).await?)
    })
}

pub fn get_external_streams(call: Call) -> Reply {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.external_streams()?)
    })
}

pub fn discover_external_streams(mut call: Call) -> Reply {
    Box::pin(async move {
        let skydio = call.params.opt_bool("skydio_enabled")?;
        let generic = call.params.opt_bool("generic_enabled")?;
        let force = call.params.opt_bool("force_rescan")?.unwrap_or(false);
        call.params.finish()?;
        Ok(call
            .state
            .controller
            .discover_external_streams(skydio, generic, force)
            .await?)
    })
}

pub fn set_discovery_interval(mut call: Call) -> Reply {
    Box::pin(async move {
        let secs = call
            .params
            .opt_int("scan_interval", 0, MAX_SCAN_INTERVAL)?
            .ok_or_else(|| RpcError::invalid_params("scan_interval", "scan_interval is required (seconds, 0 = off)"))?;
        if secs != 0 && secs < MIN_SCAN_INTERVAL {
            return Err(RpcError::invalid_params(
                "scan_interval",
                format!("scan_interval must be 0 (off) or from {MIN_SCAN_INTERVAL} to {MAX_SCAN_INTERVAL} seconds"),
            ));
        }
        call.params.finish()?;
        Ok(call.state.controller.set_discovery_interval(secs as u64)?)
    })
}
