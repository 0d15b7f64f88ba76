//! The method table: one entry per JSON-RPC method — name, minimum role, params type, result
//! type, operation. The role checks, the role-matrix tests and the OpenRPC document
//! (`docs/openrpc.json`, `openrpc.rs`) all come from this table, so they cannot drift.
//!
//! A params type parses itself from the request (`FromParams`, keeping each -32602 message
//! and `data.param`) and describes itself (`JsonSchema`); the operation calls the typed core
//! and returns a typed result (`Serialize + JsonSchema`), serialised here once.

use super::auth::{verify_credential, CredentialError, Role};
use super::error::RpcError;
use super::events::Topic;
use super::external_rpc;
use super::files_rpc;
use super::jsonrpc::Params;
use super::{AppState, AuthMethod, Session};
use crate::clock;
use crate::config::RecordFormat;
use crate::controller::cameras::{CameraList, CameraStatusView, Capabilities, ServerInfo, SystemStatus};
use crate::controller::media::{
    RecordingStarted, RecordingStopped, StreamEntry, StreamStarted, StreamStatusInfo, StreamStopped, StreamUrlInfo,
};
use crate::controller::snapshots::SnapshotResult;
use crate::controller::status::{Metrics, StatusReport};
use crate::media::image::ImageFormat;
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// What a handler gets.
pub struct Call {
    pub state: Arc<AppState>,
    pub session: Arc<Session>,
    pub params: Params,
}

pub type Handler = fn(Call) -> BoxFuture<'static, Result<Value, RpcError>>;
/// An operation of the table: typed params in, typed result out.
pub type Op<P, R> = fn(Arc<AppState>, Arc<Session>, P) -> BoxFuture<'static, Result<R, RpcError>>;

/// A params type reads itself from the request object. It calls `Params::finish` itself, at
/// the point the contract fixes (unknown members are reported before value checks that come
/// after them), so every -32602 keeps its message and `data.param`.
pub trait FromParams: Sized {
    fn from_params(p: Params) -> Result<Self, RpcError>;
}

pub struct MethodSpec {
    pub name: &'static str,
    /// `None` = callable without authentication.
    pub min_role: Option<Role>,
    pub summary: &'static str,
    /// Only the OpenRPC generator (a test) asks for schemas, so they stay out of the binary.
    #[cfg(test)]
    pub params_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    #[cfg(test)]
    pub result_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    pub handler: Handler,
}

/// Runs a typed operation on a request: params → op → one serialisation of the result.
pub async fn run<P: FromParams, R: Serialize>(call: Call, op: Op<P, R>) -> Result<Value, RpcError> {
    let Call { state, session, params } = call;
    let p = P::from_params(params)?;
    let r = op(state, session, p).await?;
    serde_json::to_value(r).map_err(|e| crate::error::ServiceError::Internal(format!("result encoding: {e}")).into())
}

/// One table entry. `$op` is a non-capturing closure `|state, session, params| future`.
macro_rules! method {
    ($name:literal, $role:expr, $summary:literal, $p:ty => $r:ty, $op:expr) => {
        MethodSpec {
            name: $name,
            min_role: $role,
            summary: $summary,
            #[cfg(test)]
            params_schema: |g| g.subschema_for::<$p>(),
            #[cfg(test)]
            result_schema: |g| g.subschema_for::<$r>(),
            handler: |call| {
                let op: Op<$p, $r> = $op;
                Box::pin(run(call, op))
            },
        }
    };
}

const V: Option<Role> = Some(Role::Viewer);
const O: Option<Role> = Some(Role::Operator);
const A: Option<Role> = Some(Role::Admin);

// ---- params ----

/// No params (an empty object, or none).
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NoParams {}

impl FromParams for NoParams {
    fn from_params(p: Params) -> Result<Self, RpcError> {
        p.finish()?;
        Ok(NoParams {})
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeviceParams {
    /// Camera id, `cameraN`.
    #[schemars(regex(pattern = r"^camera[0-9]+$"))]
    pub device: String,
}

impl FromParams for DeviceParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let device = p.device()?;
        p.finish()?;
        Ok(DeviceParams { device })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AuthenticateParams {
    /// A JWT (HS256) or an API key.
    pub auth_token: String,
}

impl FromParams for AuthenticateParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let auth_token = p.str("auth_token")?;
        p.finish()?;
        Ok(AuthenticateParams { auth_token })
    }
}

#[derive(Debug, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventFilters {
    /// Only events of this camera.
    #[schemars(regex(pattern = r"^camera[0-9]+$"))]
    pub device: Option<String>,
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SubscribeParams {
    /// Topic names (`camera.connected`, ...) or aliases (`camera_status_update`, ...).
    #[schemars(length(min = 1))]
    pub topics: Vec<String>,
    pub filters: Option<EventFilters>,
}

impl FromParams for SubscribeParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let topics = p.opt_str_list("topics")?.ok_or_else(|| {
            RpcError::invalid_params("topics", "topics is required (a non-empty array of topic names)")
        })?;
        let filters = p.opt_object("filters")?;
        p.finish()?;
        if topics.is_empty() {
            return Err(RpcError::invalid_params("topics", "topics must not be empty"));
        }
        let filters = filters.map(parse_filters).transpose()?;
        Ok(SubscribeParams { topics, filters })
    }
}

fn parse_filters(f: Map<String, Value>) -> Result<EventFilters, RpcError> {
    let mut out = EventFilters::default();
    for (k, v) in f {
        match (k.as_str(), v) {
            ("device", Value::String(d)) if crate::ids::parse_camera_id(&d).is_some() => out.device = Some(d),
            ("device", Value::Null) => {}
            ("device", _) => {
                return Err(RpcError::invalid_params(
                    "filters",
                    "filters.device must look like cameraN",
                ))
            }
            (other, _) => {
                return Err(RpcError::invalid_params(
                    "filters",
                    format!("unknown filter {other:?} (supported: device)"),
                ))
            }
        }
    }
    Ok(out)
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UnsubscribeParams {
    /// Topics or aliases to drop; absent = every topic.
    pub topics: Option<Vec<String>>,
}

impl FromParams for UnsubscribeParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let topics = p.opt_str_list("topics")?;
        p.finish()?;
        Ok(UnsubscribeParams { topics })
    }
}

/// `take_snapshot {device, format?, quality?, filename?, max_width?, max_height?}` (api.md §6;
/// `max_width`/`max_height` are this service's extension).
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TakeSnapshotParams {
    #[schemars(regex(pattern = r"^camera[0-9]+$"))]
    pub device: String,
    /// Default: from the file name's extension, else `jpg`.
    pub format: Option<ImageFormat>,
    #[schemars(range(min = 1, max = 100))]
    pub quality: Option<u8>,
    /// A bare file name (no directories).
    pub filename: Option<String>,
    #[schemars(range(min = 1, max = 16384))]
    pub max_width: Option<u32>,
    #[schemars(range(min = 1, max = 16384))]
    pub max_height: Option<u32>,
}

impl FromParams for TakeSnapshotParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let device = p.device()?;
        let format = p.opt_str("format")?;
        let quality = p.opt_int("quality", 1, 100)?.map(|q| q as u8);
        let filename = p.opt_str("filename")?;
        let max_width = p.opt_int("max_width", 1, 16384)?.map(|v| v as u32);
        let max_height = p.opt_int("max_height", 1, 16384)?.map(|v| v as u32);
        p.finish()?;
        let format = match format.as_deref() {
            Some(f) => Some(
                ImageFormat::parse(f).ok_or_else(|| RpcError::invalid_params("format", "format must be jpg or png"))?,
            ),
            None => None,
        };
        Ok(TakeSnapshotParams {
            device,
            format,
            quality,
            filename,
            max_width,
            max_height,
        })
    }
}

#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StartRecordingParams {
    #[schemars(regex(pattern = r"^camera[0-9]+$"))]
    pub device: String,
    /// Seconds of media, then the recording stops by itself.
    #[schemars(range(min = 1, max = 86400))]
    pub duration: Option<u64>,
    /// Default: `recording.default_format`.
    pub format: Option<RecordFormat>,
}

impl FromParams for StartRecordingParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let device = p.device()?;
        let duration = p.opt_int("duration", 1, 86400)?.map(|d| d as u64);
        let format = match p.opt_str("format")? {
            None => None,
            // `mp4` is the contract's alias of `fmp4` (the result says `fmp4`).
            Some(f) if f == "mp4" => Some(RecordFormat::Fmp4),
            Some(f) => Some(RecordFormat::parse(&f).ok_or_else(|| {
                RpcError::invalid_params("format", "format must be fmp4 (or its alias mp4) or mpegts")
            })?),
        };
        p.finish()?;
        Ok(StartRecordingParams {
            device,
            duration,
            format,
        })
    }
}

/// `set_camera_settings {device, format?, resolution?, fps?, bitrate?, gop?, encoder?}`
/// (this service's extension; `encoder` needs admin).
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SetCameraSettingsParams {
    #[schemars(regex(pattern = r"^camera[0-9]+$"))]
    pub device: String,
    /// Pixel format (FourCC as in `get_camera_capabilities`).
    pub format: Option<String>,
    /// `WIDTHxHEIGHT`, one of the camera's modes.
    pub resolution: Option<String>,
    #[schemars(range(min = 1, max = 1000))]
    pub fps: Option<u32>,
    /// FFmpeg bitrate: `2M`, `800k`, `500000`.
    pub bitrate: Option<String>,
    /// Key-frame interval in frames.
    #[schemars(range(min = 1, max = 600))]
    pub gop: Option<u32>,
    /// FFmpeg encoder name (admin only).
    pub encoder: Option<String>,
}

impl FromParams for SetCameraSettingsParams {
    fn from_params(mut p: Params) -> Result<Self, RpcError> {
        let device = p.device()?;
        let format = p.opt_str("format")?;
        let resolution = p.opt_str("resolution")?;
        let fps = p.opt_int("fps", 1, 1000)?.map(|v| v as u32);
        let bitrate = p.opt_str("bitrate")?;
        let gop = p.opt_int("gop", 1, 600)?.map(|v| v as u32);
        let encoder = p.opt_str("encoder")?;
        p.finish()?;
        if format.is_none()
            && resolution.is_none()
            && fps.is_none()
            && bitrate.is_none()
            && gop.is_none()
            && encoder.is_none()
        {
            return Err(RpcError::invalid_params(
                "params",
                "name at least one of format, resolution, fps, bitrate, gop, encoder",
            ));
        }
        Ok(SetCameraSettingsParams {
            device,
            format,
            resolution,
            fps,
            bitrate,
            gop,
            encoder,
        })
    }
}

async fn set_camera_settings(
    state: Arc<AppState>,
    session: Arc<Session>,
    p: SetCameraSettingsParams,
) -> Result<crate::controller::cameras::CameraSettingsView, RpcError> {
    let role = session.identity().map(|i| i.role);
    if p.encoder.is_some() && role < Some(Role::Admin) {
        return Err(RpcError::permission_denied("admin", role.map_or("none", |r| r.as_str())).with("param", "encoder"));
    }
    let req = crate::camera::identity::CaptureSettings {
        format: p.format,
        resolution: p.resolution,
        fps: p.fps,
        bitrate: p.bitrate,
        gop: p.gop,
        encoder: p.encoder,
    };
    Ok(state.controller.set_camera_settings(&p.device, req).await?)
}

// ---- results of the API's own methods ----

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethodName {
    Jwt,
    ApiKey,
}

/// `authenticate`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuthResult {
    pub authenticated: bool,
    pub role: Role,
    pub permissions: Vec<&'static str>,
    /// RFC 3339 UTC; `null` = the credential does not expire.
    pub expires_at: Option<String>,
    pub session_id: String,
    pub auth_method: AuthMethodName,
    pub user_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceFilter {
    pub device: Option<String>,
}

/// `subscribe_events`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Subscribed {
    pub subscribed: bool,
    /// The topics now added (aliases expanded).
    pub topics: Vec<&'static str>,
    pub filters: DeviceFilter,
}

/// `unsubscribe_events`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Unsubscribed {
    pub unsubscribed: bool,
    /// The topics removed by this call.
    pub topics: Vec<&'static str>,
    pub remaining_topics: Vec<&'static str>,
}

/// `ping`: the string `"pong"`.
#[derive(Debug, Serialize, JsonSchema)]
pub enum Pong {
    #[serde(rename = "pong")]
    Pong,
}

pub static METHODS: &[MethodSpec] = &[
    method!("ping", None, "Liveness check; answers \"pong\".", NoParams => Pong, |_, _, _| Box::pin(async {
        Ok(Pong::Pong)
    })),
    method!("authenticate", None, "Authenticates this connection with a JWT or an API key.",
        AuthenticateParams => AuthResult, |s, sess, p| Box::pin(authenticate(s, sess, p))),
    // viewer
    method!("get_camera_list", V, "Every known camera.", NoParams => CameraList, |s, sess, _| Box::pin(async move {
        Ok(s.controller.camera_list(&sess.host))
    })),
    method!("get_camera_status", V, "One camera with its device capabilities and activity.",
    DeviceParams => CameraStatusView, |s, sess, p| Box::pin(async move {
        Ok(s.controller.camera_status(&p.device, &sess.host)?)
    })),
    method!("get_camera_capabilities", V, "Formats, sizes and frame rates a camera offers.",
    DeviceParams => Capabilities, |s, _, p| Box::pin(async move {
        Ok(s.controller.camera_capabilities(&p.device)?)
    })),
    method!("get_stream_url", V, "A camera's stream URLs and whether the stream is up.",
    DeviceParams => StreamUrlInfo, |s, sess, p| Box::pin(async move {
        Ok(s.controller.stream_url(&p.device, &sess.host).await?)
    })),
    method!("get_stream_status", V, "MediaMTX's runtime view of a camera's stream.",
    DeviceParams => StreamStatusInfo, |s, _, p| Box::pin(async move {
        Ok(s.controller.stream_status(&p.device).await?)
    })),
    method!("get_streams", V, "Every camera path MediaMTX has.", NoParams => Vec<StreamEntry>, |s, _, _| Box::pin(async move {
        Ok(s.controller.streams().await?)
    })),
    method!("list_recordings", V, "Recording segments, newest first, paged.",
        files_rpc::ListParams => crate::controller::files::FileList, files_rpc::list_recordings),
    method!("list_snapshots", V, "Snapshots, newest first, paged.",
        files_rpc::ListParams => crate::controller::files::FileList, files_rpc::list_snapshots),
    method!("get_recording_info", V, "One recording segment with its media info.",
        files_rpc::FileParams => crate::controller::files::FileInfo, files_rpc::get_recording_info),
    method!("get_snapshot_info", V, "One snapshot with its image size.",
        files_rpc::FileParams => crate::controller::files::FileInfo, files_rpc::get_snapshot_info),
    method!("get_server_info", V, "Version, build and capabilities of this service.",
        NoParams => ServerInfo, |s, _, _| Box::pin(async move { Ok(s.controller.server_info()) })),
    method!("get_system_status", V, "Camera discovery status.", NoParams => SystemStatus, |s, _, _| Box::pin(async move {
        Ok(s.controller.system_status())
    })),
    method!("subscribe_events", V, "Adds event topics (and a device filter) to this connection.",
        SubscribeParams => Subscribed, |_, sess, p| Box::pin(async move { subscribe(&sess, p) })),
    method!("unsubscribe_events", V, "Removes event topics (all when none are named).",
        UnsubscribeParams => Unsubscribed, |_, sess, p| Box::pin(async move { unsubscribe(&sess, p) })),
    method!("get_subscription_stats", V, "Event delivery figures of the service and this connection.",
        NoParams => Value, |s, sess, _| Box::pin(async move { Ok(s.bus.stats(&sess.subscriber)) })),
    method!("get_external_streams", V, "External RTSP streams added as cameras.",
        NoParams => crate::external::manager::ExternalStreams, external_rpc::get_external_streams),
    // operator
    method!("take_snapshot", O, "Captures a still image through the snapshot tiers.",
        TakeSnapshotParams => SnapshotResult, |s, _, p| Box::pin(take_snapshot(s, p))),
    method!("start_recording", O, "Starts recording a camera through MediaMTX.",
    StartRecordingParams => RecordingStarted, |s, _, p| Box::pin(async move {
        Ok(s.controller.start_recording(&p.device, p.duration, p.format).await?)
    })),
    method!("stop_recording", O, "Stops a camera's recording.", DeviceParams => RecordingStopped, |s, _, p| Box::pin(async move {
        Ok(s.controller.stop_recording(&p.device).await?)
    })),
    method!("start_streaming", O, "Makes sure a camera's stream is published.",
    DeviceParams => StreamStarted, |s, sess, p| Box::pin(async move {
        Ok(s.controller.start_streaming(&p.device, &sess.host).await?)
    })),
    method!("stop_streaming", O, "Releases this client's interest in a camera's stream.",
    DeviceParams => StreamStopped, |s, _, p| Box::pin(async move {
        Ok(s.controller.stop_streaming(&p.device).await?)
    })),
    method!("discover_external_streams", O, "Scans the configured hosts for RTSP streams.",
        external_rpc::DiscoverParams => crate::external::manager::DiscoveryResult, external_rpc::discover_external_streams),
    method!("add_external_stream", O, "Adds an external RTSP stream as a camera.",
        external_rpc::AddParams => crate::external::manager::ExternalAdded, external_rpc::add_external_stream),
    method!("remove_external_stream", O, "Removes an external stream added through the API.",
        external_rpc::UrlParams => crate::external::manager::ExternalRemoved, external_rpc::remove_external_stream),
    // admin
    method!("delete_recording", A, "Deletes a recording segment (not one being written).",
        files_rpc::FileParams => crate::controller::files::Deleted, files_rpc::delete_recording),
    method!("delete_snapshot", A, "Deletes a snapshot.",
        files_rpc::FileParams => crate::controller::files::Deleted, files_rpc::delete_snapshot),
    method!("get_metrics", A, "Service metrics, answered from memory.", NoParams => Metrics, |s, _, _| Box::pin(async move {
        Ok(s.controller.metrics(s.connected_clients()).await)
    })),
    method!("get_status", A, "Health of every component.", NoParams => StatusReport, |s, _, _| Box::pin(async move {
        Ok(s.controller.status())
    })),
    method!("get_storage_info", A, "Space on the recordings file system and in our files.",
        NoParams => crate::controller::files::StorageInfo, files_rpc::get_storage_info),
    method!("set_retention_policy", A, "Sets (and persists) the retention policy.",
        files_rpc::RetentionParams => crate::controller::files::RetentionPolicySet, files_rpc::set_retention_policy),
    method!("cleanup_old_files", A, "Runs the retention policy now.",
        NoParams => crate::controller::files::Cleanup, files_rpc::cleanup_old_files),
    method!("set_discovery_interval", A, "Sets the period of background discovery scans (0 = off).",
        external_rpc::IntervalParams => crate::external::manager::DiscoveryInterval, external_rpc::set_discovery_interval),
    // admin, this service's extensions (docs/api.md)
    method!("forget_camera", A, "Forgets a DISCONNECTED V4L2 camera's identity, so its id may go to another device.",
    DeviceParams => crate::controller::cameras::CameraForgotten, |s, _, p| Box::pin(async move {
        Ok(s.controller.forget_camera(&p.device).await?)
    })),
    method!("get_camera_settings", V, "A V4L2 camera's capture and encoding settings, and what is saved for its identity.",
    DeviceParams => crate::controller::cameras::CameraSettingsView, |s, _, p| Box::pin(async move {
        Ok(s.controller.camera_settings(&p.device)?)
    })),
    method!("set_camera_settings", O, "Sets a V4L2 camera's capture mode and encoding (encoder: admin); saved with its identity.",
        SetCameraSettingsParams => crate::controller::cameras::CameraSettingsView, |s, sess, p| Box::pin(set_camera_settings(s, sess, p))),
];

pub fn lookup(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

async fn authenticate(
    state: Arc<AppState>,
    session: Arc<Session>,
    p: AuthenticateParams,
) -> Result<AuthResult, RpcError> {
    let ip = session.peer.ip();
    let token = p.auth_token;
    let now = clock::unix_now();
    let st = state.clone();
    let verified = match blocking::unblock(move || verify_credential(&st.jwt, &st.keys, &token, now)).await {
        Ok(identity) => Ok(identity),
        Err(CredentialError::Rejected(why) | CredentialError::Forbidden(why)) => Err(why),
        // A broken key store is a server fault, not the client's: -32603, logged.
        Err(CredentialError::Store(e)) => {
            return Err(crate::error::ServiceError::Internal(format!("API key store: {e}")).into())
        }
    };
    let identity = match verified {
        Ok(i) => i,
        // Only failures are throttled (counted atomically, so batches and parallel
        // connections cannot overtake the count); a valid credential always passes.
        Err(why) => {
            if let Err(wait) = state.auth_failures.record_failure(ip, Instant::now()) {
                log::warn!("authentication from {ip} refused: too many failed attempts in the last minute");
                return Err(RpcError::auth_rate_limited(wait.as_millis().max(1) as u64));
            }
            log::info!("authentication failed from {ip}: {why}");
            return Err(RpcError::auth_failed(why));
        }
    };
    session
        .subscriber
        .set_authorized_until(identity.expires_at.unwrap_or(i64::MAX));
    let result = AuthResult {
        authenticated: true,
        role: identity.role,
        permissions: identity.role.permissions().to_vec(),
        expires_at: identity
            .expires_at
            .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
            .map(clock::rfc3339),
        session_id: identity.session_id.clone(),
        auth_method: match identity.method {
            AuthMethod::Jwt => AuthMethodName::Jwt,
            AuthMethod::ApiKey { .. } => AuthMethodName::ApiKey,
        },
        user_id: identity.user_id.clone(),
    };
    log::info!(
        "{ip} authenticated as {} ({})",
        identity.user_id,
        identity.role.as_str()
    );
    *session.identity.lock().unwrap() = Some(identity);
    Ok(result)
}

fn resolve_topics(names: &[String]) -> Result<Vec<Topic>, RpcError> {
    let mut topics: Vec<Topic> = Vec::new();
    for n in names {
        let resolved =
            Topic::resolve(n).ok_or_else(|| RpcError::invalid_params("topics", format!("unknown topic {n:?}")))?;
        for t in resolved {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
    }
    Ok(topics)
}

fn subscribe(session: &Session, p: SubscribeParams) -> Result<Subscribed, RpcError> {
    let topics = resolve_topics(&p.topics)?;
    let device = p.filters.and_then(|f| f.device);
    session.subscriber.subscribe(&topics, device);
    Ok(Subscribed {
        subscribed: true,
        topics: topics.iter().map(|t| t.as_str()).collect(),
        filters: DeviceFilter {
            device: session.subscriber.device_filter(),
        },
    })
}

fn unsubscribe(session: &Session, p: UnsubscribeParams) -> Result<Unsubscribed, RpcError> {
    let before = session.subscriber.topics();
    match p.topics {
        None => session.subscriber.unsubscribe(None),
        Some(names) => session.subscriber.unsubscribe(Some(&resolve_topics(&names)?)),
    }
    let after = session.subscriber.topics();
    Ok(Unsubscribed {
        unsubscribed: true,
        topics: before
            .iter()
            .filter(|t| !after.contains(t))
            .map(|t| t.as_str())
            .collect(),
        remaining_topics: after.iter().map(|t| t.as_str()).collect(),
    })
}

async fn take_snapshot(state: Arc<AppState>, p: TakeSnapshotParams) -> Result<SnapshotResult, RpcError> {
    let cfg = &state.controller.config().snapshot;
    let format = match p.format {
        Some(f) => f,
        // a client name with an image extension decides the format
        None => match p
            .filename
            .as_deref()
            .and_then(|n| crate::storage::files::file_format(crate::storage::files::Kind::Snapshot, n))
        {
            Some("png") => ImageFormat::Png,
            _ => ImageFormat::Jpg,
        },
    };
    let limit = |v: Option<u32>, default: u32| v.or((default > 0).then_some(default));
    let req = crate::media::snapshot::Request {
        format,
        quality: p.quality.unwrap_or(cfg.default_quality),
        filename: p.filename,
        max_width: limit(p.max_width, cfg.max_width),
        max_height: limit(p.max_height, cfg.max_height),
    };
    Ok(state.controller.take_snapshot(&p.device, req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_contract_role_matrix() {
        let expect = |names: &str, role: Option<Role>| {
            for n in names.split_whitespace() {
                let spec = lookup(n).unwrap_or_else(|| panic!("{n} missing from the table"));
                assert_eq!(spec.min_role, role, "{n}");
            }
            names.split_whitespace().count()
        };
        let total = expect("ping authenticate", None)
            + expect("get_camera_list get_camera_status get_camera_capabilities get_stream_url get_stream_status get_streams list_recordings list_snapshots get_recording_info get_snapshot_info get_server_info get_system_status subscribe_events unsubscribe_events get_subscription_stats get_external_streams", Some(Role::Viewer))
            + expect("take_snapshot start_recording stop_recording start_streaming stop_streaming discover_external_streams add_external_stream remove_external_stream", Some(Role::Operator))
            + expect("delete_recording delete_snapshot get_metrics get_status get_storage_info set_retention_policy cleanup_old_files set_discovery_interval", Some(Role::Admin));
        // This service's extensions (docs/api.md), beyond the contract.
        let extensions = expect("forget_camera", Some(Role::Admin))
            + expect("get_camera_settings", Some(Role::Viewer))
            + expect("set_camera_settings", Some(Role::Operator));
        assert_eq!(
            total + extensions,
            METHODS.len(),
            "no method beyond the contract and the documented extensions"
        );
    }

    #[test]
    fn start_recording_takes_mp4_as_an_alias_of_fmp4() {
        let parse = |v: serde_json::Value| {
            StartRecordingParams::from_params(Params::new(v.as_object().unwrap().clone())).map(|p| p.format)
        };
        let device = "camera0";
        assert_eq!(
            parse(serde_json::json!({"device": device, "format": "mp4"})).unwrap(),
            Some(RecordFormat::Fmp4)
        );
        assert_eq!(
            parse(serde_json::json!({"device": device, "format": "mpegts"})).unwrap(),
            Some(RecordFormat::Mpegts)
        );
        assert!(parse(serde_json::json!({"device": device, "format": "mkv"})).is_err());
    }
}
