//! Domain errors of the managers. The API layer maps them to JSON-RPC codes in exactly one
//! place (`api::error`); nothing matches on error text.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceError {
    /// A parameter is wrong beyond what the API layer can check (e.g. file name exists).
    InvalidParam {
        param: &'static str,
        details: String,
    },
    NotFound {
        resource: &'static str,
        id: String,
    },
    InvalidState {
        state: String,
        details: String,
    },
    Unsupported {
        feature: &'static str,
        details: String,
    },
    Dependency {
        dependency: &'static str,
        details: String,
    },
    /// MediaMTX refused what we sent (HTTP 400); `text` is its own error text, credentials
    /// hidden.
    MediamtxRejected {
        text: String,
    },
    /// Every capture tier of a snapshot failed; `tiers_tried` says why, tier by tier.
    CaptureFailed {
        details: String,
        tiers_tried: Vec<crate::media::snapshot::Attempt>,
    },
    InsufficientStorage {
        available_bytes: u64,
        required_bytes: u64,
    },
    Internal(String),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::InvalidParam { param, details } => {
                write!(f, "invalid parameter {param}: {details}")
            }
            ServiceError::NotFound { resource, id } => write!(f, "{resource} {id} not found"),
            ServiceError::InvalidState { state, details } => {
                write!(f, "invalid state {state}: {details}")
            }
            ServiceError::Unsupported { feature, details } => {
                write!(f, "unsupported {feature}: {details}")
            }
            ServiceError::Dependency { dependency, details } => write!(f, "{dependency} failed: {details}"),
            ServiceError::CaptureFailed { details, .. } => write!(f, "capture failed: {details}"),
            ServiceError::MediamtxRejected { text } => write!(f, "MediaMTX rejected the request: {text}"),
            ServiceError::InsufficientStorage {
                available_bytes,
                required_bytes,
            } => write!(
                f,
                "insufficient storage: {available_bytes} bytes free, {required_bytes} required"
            ),
            ServiceError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for ServiceError {}
