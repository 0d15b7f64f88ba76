//! Runs one text frame through the JSON-RPC pipeline in the order api.md §2 fixes:
//! parse → envelope → rate limit → method exists → authenticated → role → params → work.
//! (The rate-limit token is taken before the envelope check, so invalid entries count too.)

use super::error::RpcError;
use super::jsonrpc::{self, Frame, Params, Request};
use super::methods::{self, Call};
use super::{AppState, AuthMethod, Session};
use crate::clock;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// Handles a frame; `None` when nothing is to be sent back (only notifications).
/// A batch holds at most `server.max_batch` entries (else one -32600 `batch_too_large`, and
/// no entry runs); every entry, valid or not, takes a token from the connection's bucket.
pub async fn handle_frame(state: &Arc<AppState>, session: &Arc<Session>, text: &str) -> Option<String> {
    match jsonrpc::parse_frame_bounded(text, state.config.server.max_batch) {
        Err(e) => {
            let _ = take_token(session);
            Some(jsonrpc::failure(Value::Null, &e).to_string())
        }
        Ok(Frame::Single(v)) => handle_value(state, session, v).await.map(|v| v.to_string()),
        Ok(Frame::Batch(items)) => {
            let replies: Vec<Value> =
                futures_util::future::join_all(items.into_iter().map(|v| handle_value(state, session, v)))
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
            (!replies.is_empty()).then(|| Value::Array(replies).to_string())
        }
    }
}

fn take_token(session: &Session) -> Result<(), RpcError> {
    session
        .bucket
        .lock()
        .unwrap()
        .take(Instant::now())
        .map_err(|wait| RpcError::rate_limited(wait.as_millis().max(1) as u64))
}

async fn handle_value(state: &Arc<AppState>, session: &Arc<Session>, value: Value) -> Option<Value> {
    // Counted before the envelope check, so invalid entries cost a token too; the envelope
    // error is still the one reported (check order: envelope → rate limit).
    let token = take_token(session);
    let request = match jsonrpc::parse_request(value) {
        Ok(r) => r,
        Err((id, e)) => return Some(jsonrpc::failure(id, &e)),
    };
    let started = Instant::now();
    let Request { id, method, params } = request;
    let (name, result) = match token {
        Ok(()) => process(state, session, &method, params).await,
        Err(e) => ("rate_limited", Err(e)),
    };
    let code = result.as_ref().err().map_or(0, |e| e.code);
    state.controller.api_metrics().record(name, code, started.elapsed());
    let id = id?;
    Some(match result {
        Ok(v) => jsonrpc::success(id, v),
        Err(e) => jsonrpc::failure(id, &e),
    })
}

async fn process(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    method: &str,
    params: Result<Map<String, Value>, ()>,
) -> (&'static str, Result<Value, RpcError>) {
    let Some(spec) = methods::lookup(method) else {
        return ("unknown", Err(RpcError::method_not_found(method)));
    };
    let result = async {
        if let Some(required) = spec.min_role {
            // Only what the checks need, not a copy of the whole identity.
            let (role, expires_at, key_id) = {
                let guard = session.identity.lock().unwrap();
                let identity = guard.as_ref().ok_or_else(RpcError::auth_required)?;
                let key_id = match &identity.method {
                    AuthMethod::ApiKey { key_id } => Some(key_id.clone()),
                    AuthMethod::Jwt => None,
                };
                (identity.role, identity.expires_at, key_id)
            };
            let now = clock::unix_now();
            if expires_at.is_some_and(|e| e <= now) {
                return Err(RpcError::token_expired());
            }
            if let Some(key_id) = &key_id {
                // A call sees a revocation made a moment ago: the key file is looked at
                // (stat, re-read if changed) on the blocking pool, not on the executor.
                let st = state.clone();
                blocking::unblock(move || st.keys.reload()).await;
                if !state.keys.is_active(key_id, now) {
                    return Err(RpcError::auth_failed("the API key of this connection was revoked"));
                }
            }
            if role < required {
                return Err(RpcError::permission_denied(required.as_str(), role.as_str()));
            }
        }
        let params = params.map_err(|_| {
            RpcError::invalid_params("params", "positional (array) params are not supported; send an object")
        })?;
        (spec.handler)(Call {
            state: state.clone(),
            session: session.clone(),
            params: Params::new(params),
        })
        .await
    }
    .await;
    (spec.name, result)
}
