//! The method table: one entry per JSON-RPC method (name, minimum role, handler). The role
//! checks, the role-matrix tests and docs/api.md's method list all come from this table.

use super::auth::{verify_credential, CredentialError, Role};
use super::error::RpcError;
use super::events::Topic;
use super::external_rpc;
use super::files_rpc;
use super::jsonrpc::Params;
use super::{AppState, AuthMethod, Session};
use crate::clock;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// What a handler gets.
pub struct Call {
    pub state: Arc<AppState>,
    pub session: Arc<Session>,
    pub params: Params,
}

pub type Handler = fn(Call) -> BoxFuture<'static, Result<Value, RpcError>>;

pub struct MethodSpec {
    pub name: &'static str,
    /// `None` = callable without authentication.
    pub min_role: Option<Role>,
    pub handler: Handler,
}

const fn m(name: &'static str, min_role: Option<Role>, handler: Handler) -> MethodSpec {
    MethodSpec {
        name,
        min_role,
        handler,
    }
}

const V: Role = Role::Viewer;
const O: Role = Role::Operator;
const A: Role = Role::Admin;

pub static METHODS: &[MethodSpec] = &[
    m("ping", None, ping),
    m("authenticate", None, authenticate),
    // viewer
    m("get_camera_list", Some(V), get_camera_list),
    m("get_camera_status", Some(V), get_camera_status),
    m("get_camera_capabilities", Some(V), get_camera_capabilities),
    m("get_stream_url", Some(V), get_stream_url),
    m("get_stream_status", Some(V), get_stream_status),
    m("get_streams", Some(V), get_streams),
    m("list_recordings", Some(V), files_rpc::list_recordings),
    m("list_snapshots", Some(V), files_rpc::list_snapshots),
    m("get_recording_info", Some(V), files_rpc::get_recording_info),
    m("get_snapshot_info", Some(V), files_rpc::get_snapshot_info),
    m("get_server_info", Some(V), get_server_info),
    m("get_system_status", Some(V), get_system_status),
    m("subscribe_events", Some(V), subscribe_events),
    m("unsubscribe_events", Some(V), unsubscribe_events),
    m("get_subscription_stats", Some(V), get_subscription_stats),
    m("get_external_streams", Some(V), external_rpc::get_external_streams),
    // operator
    m("take_snapshot", Some(O), take_snapshot),
    m("start_recording", Some(O), start_recording),
    m("stop_recording", Some(O), stop_recording),
    m("start_streaming", Some(O), start_streaming),
    m("stop_streaming", Some(O), stop_streaming),
    m(
        "discover_external_streams",
        Some(O),
        external_rpc::discover_external_streams,
    ),
    m("add_external_stream", Some(O), external_rpc::add_external_stream),
    m("remove_external_stream", Some(O), external_rpc::remove_external_stream),
    // admin
    m("delete_recording", Some(A), files_rpc::delete_recording),
    m("delete_snapshot", Some(A), files_rpc::delete_snapshot),
    m("get_metrics", Some(A), get_metrics),
    m("get_status", Some(A), get_status),
    m("get_storage_info", Some(A), files_rpc::get_storage_info),
    m("set_retention_policy", Some(A), files_rpc::set_retention_policy),
    m("cleanup_old_files", Some(A), files_rpc::cleanup_old_files),
    m("set_discovery_interval", Some(A), external_rpc::set_discovery_interval),
];

pub fn lookup(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

fn ping(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(Value::from("pong"))
    })
}

fn authenticate(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call {
            state,
            session,
            mut params,
        } = call;
        let ip = session.peer.ip();
        let token = params.str("auth_token")?;
        params.finish()?;
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
        let result = json!({
            "authenticated": true,
            "role": identity.role.as_str(),
            "permissions": identity.role.permissions(),
            "expires_at": identity.expires_at.and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok()).map(clock::rfc3339),
            "session_id": identity.session_id,
            "auth_method": match identity.method { AuthMethod::Jwt => "jwt", AuthMethod::ApiKey { .. } => "api_key" },
            "user_id": identity.user_id,
        });
        log::info!(
            "{ip} authenticated as {} ({})",
            identity.user_id,
            identity.role.as_str()
        );
        *session.identity.lock().unwrap() = Some(identity);
        Ok(result)
    })
}

fn get_server_info(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.server_info())
    })
}

fn get_camera_list(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.camera_list(&call.session.host))
    })
}

fn get_camera_status(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call {
            state,
            session,
            mut params,
        } = call;
        let device = params.device()?;
        params.finish()?;
        Ok(state.controller.camera_status(&device, &session.host)?)
    })
}

fn get_camera_capabilities(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call { state, mut params, .. } = call;
        let device = params.device()?;
        params.finish()?;
        Ok(state.controller.camera_capabilities(&device)?)
    })
}

fn get_system_status(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.system_status())
    })
}

fn subscribe_events(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call {
            session, mut params, ..
        } = call;
        let names = params.opt_str_list("topics")?.ok_or_else(|| {
            RpcError::invalid_params("topics", "topics is required (a non-empty array of topic names)")
        })?;
        let filters = params.opt_object("filters")?;
        params.finish()?;
        if names.is_empty() {
            return Err(RpcError::invalid_params("topics", "topics must not be empty"));
        }
        let mut topics: Vec<Topic> = Vec::new();
        for n in &names {
            let resolved =
                Topic::resolve(n).ok_or_else(|| RpcError::invalid_params("topics", format!("unknown topic {n:?}")))?;
            for t in resolved {
                if !topics.contains(&t) {
                    topics.push(t);
                }
            }
        }
        let mut device = None;
        if let Some(f) = filters {
            for (k, v) in f {
                match (k.as_str(), v) {
                    ("device", Value::String(d)) if crate::ids::parse_camera_id(&d).is_some() => device = Some(d),
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
        }
        session.subscriber.subscribe(&topics, device.clone());
        Ok(json!({
            "subscribed": true,
            "topics": topics.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "filters": {"device": session.subscriber.device_filter()},
        }))
    })
}

fn unsubscribe_events(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call {
            session, mut params, ..
        } = call;
        let names = params.opt_str_list("topics")?;
        params.finish()?;
        let before = session.subscriber.topics();
        match names {
            None => session.subscriber.unsubscribe(None),
            Some(names) => {
                let mut topics = Vec::new();
                for n in &names {
                    topics.extend(
                        Topic::resolve(n)
                            .ok_or_else(|| RpcError::invalid_params("topics", format!("unknown topic {n:?}")))?,
                    );
                }
                session.subscriber.unsubscribe(Some(&topics));
            }
        }
        let after = session.subscriber.topics();
        let removed: Vec<&str> = before
            .iter()
            .filter(|t| !after.contains(t))
            .map(|t| t.as_str())
            .collect();
        Ok(
            json!({"unsubscribed": true, "topics": removed, "remaining_topics": after.iter().map(|t| t.as_str()).collect::<Vec<_>>()}),
        )
    })
}

fn get_subscription_stats(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.bus().stats(&call.session.subscriber))
    })
}

/// Handlers taking only `{device}` and calling one controller operation.
macro_rules! device_handler {
    ($name:ident, |$state:ident, $session:ident, $device:ident| $body:expr) => {
        fn $name(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
            Box::pin(async move {
                let Call {
                    state: $state,
                    session: $session,
                    mut params,
                } = call;
                let $device = params.device()?;
                params.finish()?;
                let _ = &$session;
                Ok($body.await?)
            })
        }
    };
}

device_handler!(get_stream_url, |state, session, device| state
    .controller
    .stream_url(&device, &session.host));
device_handler!(get_stream_status, |state, session, device| state
    .controller
    .stream_status(&device));
device_handler!(start_streaming, |state, session, device| state
    .controller
    .start_streaming(&device, &session.host));
device_handler!(stop_streaming, |state, session, device| state
    .controller
    .stop_streaming(&device));
device_handler!(stop_recording, |state, session, device| state
    .controller
    .stop_recording(&device));

fn get_streams(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.streams().await?)
    })
}

/// `take_snapshot {device, format?, quality?, filename?, max_width?, max_height?}` (api.md §6;
/// `max_width`/`max_height` are this service's extension).
fn take_snapshot(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call { state, mut params, .. } = call;
        let device = params.device()?;
        let format = params.opt_str("format")?;
        let quality = params.opt_int("quality", 1, 100)?;
        let filename = params.opt_str("filename")?;
        let max_width = params.opt_int("max_width", 1, 16384)?;
        let max_height = params.opt_int("max_height", 1, 16384)?;
        params.finish()?;
        let cfg = &state.controller.config().snapshot;
        let format = match format.as_deref() {
            Some(f) => crate::media::image::ImageFormat::parse(f)
                .ok_or_else(|| RpcError::invalid_params("format", "format must be jpg or png"))?,
            // a client name with an image extension decides the format
            None => match filename
                .as_deref()
                .and_then(|n| crate::storage::files::file_format(crate::storage::files::Kind::Snapshot, n))
            {
                Some("png") => crate::media::image::ImageFormat::Png,
                _ => crate::media::image::ImageFormat::Jpg,
            },
        };
        let limit = |v: Option<i64>, default: u32| v.map(|v| v as u32).or((default > 0).then_some(default));
        let req = crate::media::snapshot::Request {
            format,
            quality: quality.map_or(cfg.default_quality, |q| q as u8),
            filename,
            max_width: limit(max_width, cfg.max_width),
            max_height: limit(max_height, cfg.max_height),
        };
        Ok(state.controller.take_snapshot(&device, req).await?)
    })
}

fn start_recording(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        let Call { state, mut params, .. } = call;
        let device = params.device()?;
        let duration = params.opt_int("duration", 1, 86400)?.map(|d| d as u64);
        let format = match params.opt_str("format")? {
            None => None,
            Some(f) => Some(
                crate::config::RecordFormat::parse(&f)
                    .ok_or_else(|| RpcError::invalid_params("format", "format must be fmp4 or mpegts"))?,
            ),
        };
        params.finish()?;
        Ok(state.controller.start_recording(&device, duration, format).await?)
    })
}

fn get_status(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.status())
    })
}

fn get_metrics(call: Call) -> BoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(async move {
        call.params.finish()?;
        Ok(call.state.controller.metrics(call.state.connected_clients()))
    })
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
        assert_eq!(total, METHODS.len(), "no method beyond the contract");
    }
}
