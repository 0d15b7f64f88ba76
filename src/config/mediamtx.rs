//! `[mediamtx]`: how the service reaches MediaMTX and what it writes into stream URLs.

use super::{Dur, Secret, Validator};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediamtxConfig {
    pub api_url: String,
    /// Host written into stream URLs; empty = the host the client connected to.
    pub public_host: String,
    pub rtsp_port: u16,
    pub hls_port: u16,
    pub webrtc_port: u16,
    /// HTTP Basic credentials when MediaMTX's API requires them (user with `action: api`).
    pub api_user: String,
    pub api_password: Secret,
    /// Whole-call timeout of one API request.
    pub request_timeout: Dur,
    /// Extra attempts for idempotent calls (exponential backoff with jitter).
    pub retries: u32,
    pub retry_backoff: Dur,
    /// Consecutive failures that open the circuit breaker, and how long it stays open.
    pub breaker_failures: u32,
    pub breaker_reset: Dur,
    /// Period of the `/v3/info` health probe (detects restarts: paths are re-applied).
    pub health_interval: Dur,
}

impl Default for MediamtxConfig {
    fn default() -> Self {
        MediamtxConfig {
            api_url: "http://127.0.0.1:9997".into(),
            public_host: String::new(),
            rtsp_port: 8554,
            hls_port: 8888,
            webrtc_port: 8889,
            api_user: String::new(),
            api_password: Secret::default(),
            request_timeout: Dur::secs(3),
            retries: 2,
            retry_backoff: Dur::millis(100),
            breaker_failures: 5,
            breaker_reset: Dur::secs(10),
            health_interval: Dur::secs(5),
        }
    }
}

impl MediamtxConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.check(
            self.api_url.starts_with("http://")
                && self.api_url.len() > "http://".len()
                && !self.api_url.contains(char::is_whitespace),
            "mediamtx.api_url",
            "must be an http:// URL such as http://127.0.0.1:9997",
        );
        v.check(
            !self.public_host.contains(['/', ' ', '@']),
            "mediamtx.public_host",
            "must be a bare host name or address (no scheme, path or credentials)",
        );
        v.port("mediamtx.rtsp_port", self.rtsp_port);
        v.port("mediamtx.hls_port", self.hls_port);
        v.port("mediamtx.webrtc_port", self.webrtc_port);
        v.check(
            !self.api_user.contains(':'),
            "mediamtx.api_user",
            "must not contain ':'",
        );
        v.dur(
            "mediamtx.request_timeout",
            self.request_timeout,
            Duration::from_millis(100),
            Duration::from_secs(120),
        );
        v.range("mediamtx.retries", self.retries as u64, 0, 10);
        v.dur(
            "mediamtx.retry_backoff",
            self.retry_backoff,
            Duration::from_millis(1),
            Duration::from_secs(30),
        );
        v.range("mediamtx.breaker_failures", self.breaker_failures as u64, 1, 1000);
        v.dur(
            "mediamtx.breaker_reset",
            self.breaker_reset,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "mediamtx.health_interval",
            self.health_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
    }
}
