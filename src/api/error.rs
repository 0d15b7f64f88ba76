//! JSON-RPC error objects (api.md §2) and the one mapping from domain errors to codes.

use crate::error::ServiceError;
use serde_json::{json, Map, Value};

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;
pub const AUTH_FAILED: i32 = -32001;
pub const PERMISSION_DENIED: i32 = -32002;
pub const NOT_FOUND: i32 = -32010;
pub const INVALID_STATE: i32 = -32020;
pub const UNSUPPORTED: i32 = -32030;
pub const RATE_LIMITED: i32 = -32040;
pub const DEPENDENCY_FAILED: i32 = -32050;
pub const INSUFFICIENT_STORAGE: i32 = -32060;

/// The fixed `message` text of each code.
pub fn message_for(code: i32) -> &'static str {
    match code {
        PARSE_ERROR => "Parse error",
        INVALID_REQUEST => "Invalid Request",
        METHOD_NOT_FOUND => "Method not found",
        INVALID_PARAMS => "Invalid params",
        INTERNAL_ERROR => "Internal error",
        AUTH_FAILED => "Authentication failed or token expired",
        PERMISSION_DENIED => "Permission denied",
        NOT_FOUND => "Not found",
        INVALID_STATE => "Invalid state",
        UNSUPPORTED => "Unsupported",
        RATE_LIMITED => "Rate limited",
        DEPENDENCY_FAILED => "Dependency failed",
        INSUFFICIENT_STORAGE => "Insufficient storage",
        _ => "Server error",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub reason: &'static str,
    pub details: String,
    pub suggestion: Option<&'static str>,
    /// Code-specific `data` fields (`param`, `resource`, `retry_after_ms`, ...).
    pub extra: Map<String, Value>,
}

impl RpcError {
    pub fn new(code: i32, reason: &'static str, details: impl Into<String>) -> RpcError {
        RpcError {
            code,
            reason,
            details: details.into(),
            suggestion: None,
            extra: Map::new(),
        }
    }
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> RpcError {
        self.extra.insert(key.to_string(), value.into());
        self
    }
    pub fn suggest(mut self, s: &'static str) -> RpcError {
        self.suggestion = Some(s);
        self
    }

    pub fn parse_error(details: impl Into<String>) -> RpcError {
        RpcError::new(PARSE_ERROR, "parse_error", details)
            .suggest("send one JSON-RPC 2.0 object or a batch array per text frame")
    }
    pub fn invalid_request(reason: &'static str, details: impl Into<String>) -> RpcError {
        RpcError::new(INVALID_REQUEST, reason, details)
            .suggest("a request is {\"jsonrpc\":\"2.0\",\"method\":\"...\",\"params\":{...},\"id\":1}")
    }
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::new(
            METHOD_NOT_FOUND,
            "method_not_found",
            format!("no method named {method:?}"),
        )
        .with("method", method)
        .suggest("see the method list in docs/api.md")
    }
    pub fn invalid_params(param: &str, details: impl Into<String>) -> RpcError {
        RpcError::new(INVALID_PARAMS, "invalid_params", details).with("param", param)
    }
    pub fn auth_required() -> RpcError {
        RpcError::new(
            AUTH_FAILED,
            "auth_required",
            "this method needs an authenticated connection",
        )
        .suggest("call authenticate with a JWT or API key first")
    }
    pub fn auth_failed(details: impl Into<String>) -> RpcError {
        RpcError::new(AUTH_FAILED, "auth_failed", details).suggest("check the token or API key")
    }
    pub fn token_expired() -> RpcError {
        RpcError::new(AUTH_FAILED, "token_expired", "the token of this connection has expired")
            .suggest("call authenticate with a fresh token")
    }
    pub fn permission_denied(required: &str, role: &str) -> RpcError {
        RpcError::new(
            PERMISSION_DENIED,
            "insufficient_role",
            format!("this method needs role {required} or above"),
        )
        .with("required_role", required)
        .with("role", role)
    }
    pub fn rate_limited(retry_after_ms: u64) -> RpcError {
        RpcError::new(RATE_LIMITED, "rate_limited", "too many requests")
            .with("retry_after_ms", retry_after_ms)
            .suggest("slow down and retry after retry_after_ms")
    }
    pub fn auth_rate_limited(retry_after_ms: u64) -> RpcError {
        RpcError::new(
            RATE_LIMITED,
            "auth_rate_limited",
            "too many failed authentication attempts from this address",
        )
        .with("retry_after_ms", retry_after_ms)
    }
    pub fn internal(correlation_id: &str) -> RpcError {
        RpcError::new(
            INTERNAL_ERROR,
            "internal_error",
            "unexpected server error; it has been logged",
        )
        .with("correlation_id", correlation_id)
    }

    pub fn to_json(&self) -> Value {
        let mut data = Map::new();
        data.insert("reason".into(), Value::from(self.reason));
        data.insert("details".into(), Value::from(self.details.clone()));
        if let Some(s) = self.suggestion {
            data.insert("suggestion".into(), Value::from(s));
        }
        for (k, v) in &self.extra {
            data.insert(k.clone(), v.clone());
        }
        json!({"code": self.code, "message": message_for(self.code), "data": data})
    }
}

impl From<ServiceError> for RpcError {
    fn from(e: ServiceError) -> RpcError {
        match e {
            ServiceError::InvalidParam { param, details } => RpcError::invalid_params(param, details),
            ServiceError::NotFound { resource, id } => {
                RpcError::new(NOT_FOUND, "not_found", format!("{resource} {id} not found"))
                    .with("resource", resource)
                    .with("id", id)
            }
            ServiceError::InvalidState { state, details } => {
                RpcError::new(INVALID_STATE, "invalid_state", details).with("state", state)
            }
            ServiceError::Unsupported { feature, details } => {
                RpcError::new(UNSUPPORTED, "unsupported", details).with("feature", feature)
            }
            ServiceError::Dependency { dependency, details } => {
                RpcError::new(DEPENDENCY_FAILED, "dependency_failed", details).with("dependency", dependency)
            }
            ServiceError::MediamtxRejected { text } => RpcError::new(
                DEPENDENCY_FAILED,
                "dependency_failed",
                format!("MediaMTX rejected the request: {text}"),
            )
            .with("dependency", "mediamtx")
            .with("mediamtx_error", text.as_str()),
            ServiceError::CaptureFailed { details, tiers_tried } => {
                RpcError::new(DEPENDENCY_FAILED, "dependency_failed", details)
                    .with("dependency", "capture")
                    .with("tiers_tried", serde_json::to_value(tiers_tried).unwrap_or_default())
            }
            ServiceError::InsufficientStorage {
                available_bytes,
                required_bytes,
            } => RpcError::new(
                INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "free space is below the configured floor",
            )
            .with("available_bytes", available_bytes)
            .with("required_bytes", required_bytes),
            ServiceError::Internal(detail) => {
                let id = crate::api::auth::random_token(6);
                log::error!("internal error [{id}]: {detail}");
                RpcError::internal(&id)
            }
        }
    }
}
