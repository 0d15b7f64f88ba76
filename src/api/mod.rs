//! The API tier: WebSocket JSON-RPC and plain HTTP on one port. It talks only to the
//! controller; it never calls MediaMTX or spawns FFmpeg itself.

pub mod auth;
pub(crate) mod dispatch;
pub mod error;
pub(crate) mod event_wire;
pub mod events;
pub(crate) mod external_rpc;
pub(crate) mod files_http;
pub(crate) mod files_rpc;
pub(crate) mod http;
pub mod jsonrpc;
pub mod methods;
#[cfg(test)]
mod openrpc;
pub(crate) mod server;
pub(crate) mod websocket;

use crate::config::Config;
use crate::controller::Controller;
use auth::{ApiKeyStore, AuthFailureLimiter, JwtKey, Role, TokenBucket};
use events::Subscriber;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Everything the API handlers share.
pub struct AppState {
    pub config: Arc<Config>,
    pub jwt: JwtKey,
    pub keys: ApiKeyStore,
    pub auth_failures: AuthFailureLimiter,
    pub controller: Arc<Controller>,
    /// The JSON-RPC side of the domain events: topics, subscriptions, per-client queues.
    pub bus: Arc<events::EventBus>,
    pub connections: AtomicUsize,
    pub shutdown: crate::shutdown::Shutdown,
}

impl AppState {
    pub fn connected_clients(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AuthMethod {
    Jwt,
    ApiKey { key_id: String },
}

/// Who a connection is, after a successful `authenticate`.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user_id: String,
    pub role: Role,
    pub method: AuthMethod,
    /// Unix seconds; `None` = the credential does not expire.
    pub expires_at: Option<i64>,
    pub session_id: String,
}

/// One WebSocket connection's state.
pub struct Session {
    pub peer: SocketAddr,
    /// Host the client connected to (from `Host`), for stream URLs.
    pub host: String,
    pub identity: Mutex<Option<Identity>>,
    pub bucket: Mutex<TokenBucket>,
    pub subscriber: Arc<Subscriber>,
}

impl Session {
    pub fn identity(&self) -> Option<Identity> {
        self.identity.lock().unwrap().clone()
    }
}
