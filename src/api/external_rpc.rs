//! Params and operations of the external stream methods (api.md §11): each operation is one
//! call of the external stream manager.

use super::error::RpcError;
use super::jsonrpc::Params;
use super::methods::{FromParams, NoParams};
use super::{AppState, Session};
use crate::external::manager::{
    DiscoveryInterval, DiscoveryResult, ExternalAdded, ExternalRemoved, ExternalStreams, MAX_SCAN_INTERVAL,
    MIN_SCAN_INTERVAL,
};
use crate::external::StreamType;
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use std::sync::Arc;

type Reply<R> = BoxFuture<'static, Result<R, RpcError>>;

/// `stream_url`: validated here so a bad URL is -32602 with `data.param`; the details never
/// echo credentials.
fn stream_url(p: &mut Params) -> Result<String, RpcError> {
    let url = p.str("stream_url")?;
    crate::external::validate_url(&url).map_err(|why| RpcError::invalid_params("stream_url", why))?;
    Ok(url)
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AddParams {
    /// `rtsp://` or `rtsps://` URL (credentials allowed; never echoed).
    pub stream_url: String,
    #[schemars(length(min = 1, max = 128))]
    pub stream_name: String,
    /// Default `generic_rtsp`.
    pub stream_type: Option<StreamType>,
}

impl FromParams for AddParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let stream_url = stream_url(&mut p)?;
        let name = p.str("stream_name")?;
        let stream_name = name.trim().to_string();
        if stream_name.is_empty() || stream_name.chars().count() > 128 || stream_name.chars().any(char::is_control) {
            return Err(RpcError::invalid_params(
                "stream_name",
                "stream_name must be 1 to 128 characters without control characters",
            ));
        }
        let stream_type = match p.opt_str("stream_type")? {
            None => None,
            Some(t) => Some(StreamType::parse(&t).ok_or_else(|| {
                RpcError::invalid_params(
                    "stream_type",
                    "stream_type must be generic_rtsp, skydio_eo or skydio_ir",
                )
            })?),
        };
        p.finish()?;
        Ok(AddParams {
            stream_url,
            stream_name,
            stream_type,
        })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UrlParams {
    pub stream_url: String,
}

impl FromParams for UrlParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let stream_url = stream_url(&mut p)?;
        p.finish()?;
        Ok(UrlParams { stream_url })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DiscoverParams {
    /// Default: `discovery.skydio`.
    pub skydio_enabled: Option<bool>,
    /// Default: `discovery.generic`.
    pub generic_enabled: Option<bool>,
    /// Scan even if a scan younger than 10 s has a result.
    pub force_rescan: Option<bool>,
}

impl FromParams for DiscoverParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let skydio_enabled = p.opt_bool("skydio_enabled")?;
        let generic_enabled = p.opt_bool("generic_enabled")?;
        let force_rescan = p.opt_bool("force_rescan")?;
        p.finish()?;
        Ok(DiscoverParams {
            skydio_enabled,
            generic_enabled,
            force_rescan,
        })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct IntervalParams {
    /// Seconds: 0 (off) or 5 to 604800.
    #[schemars(range(min = 0, max = 604800))]
    pub scan_interval: u64,
}

impl FromParams for IntervalParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let secs = p
            .opt_int("scan_interval", 0, MAX_SCAN_INTERVAL)?
            .ok_or_else(|| RpcError::invalid_params("scan_interval", "scan_interval is required (seconds, 0 = off)"))?;
        if secs != 0 && secs < MIN_SCAN_INTERVAL {
            return Err(RpcError::invalid_params(
                "scan_interval",
                format!("scan_interval must be 0 (off) or from {MIN_SCAN_INTERVAL} to {MAX_SCAN_INTERVAL} seconds"),
            ));
        }
        p.finish()?;
        Ok(IntervalParams {
            scan_interval: secs as u64,
        })
    }
}

pub fn add_external_stream(s: Arc<AppState>, _: Arc<Session>, p: AddParams) -> Reply<ExternalAdded> {
    Box::pin(async move {
        let t = p.stream_type.unwrap_or(StreamType::GenericRtsp);
        Ok(s.controller
            .external()
            .add_external_stream(&p.stream_url, &p.stream_name, t)
            .await?)
    })
}

pub fn remove_external_stream(s: Arc<AppState>, _: Arc<Session>, p: UrlParams) -> Reply<ExternalRemoved> {
    Box::pin(async move { Ok(s.controller.external().remove_external_stream(&p.stream_url).await?) })
}

pub fn get_external_streams(s: Arc<AppState>, _: Arc<Session>, _: NoParams) -> Reply<ExternalStreams> {
    Box::pin(async move { Ok(s.controller.external().external_streams()?) })
}

pub fn discover_external_streams(s: Arc<AppState>, _: Arc<Session>, p: DiscoverParams) -> Reply<DiscoveryResult> {
    Box::pin(async move {
        Ok(s.controller
            .external()
            .discover_external_streams(p.skydio_enabled, p.generic_enabled, p.force_rescan.unwrap_or(false))
            .await?)
    })
}

pub fn set_discovery_interval(s: Arc<AppState>, _: Arc<Session>, p: IntervalParams) -> Reply<DiscoveryInterval> {
    Box::pin(async move { Ok(s.controller.external().set_discovery_interval(p.scan_interval).await?) })
}
