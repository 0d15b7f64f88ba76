//! Driving MediaMTX over its control API v3: typed API objects, the HTTP client with retries
//! and circuit breaker, and the per-camera path manager.

pub mod breaker;
pub mod client;
pub mod paths;
pub mod types;
