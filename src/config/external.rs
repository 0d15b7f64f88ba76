//! `[external_streams]` and `[discovery]`: RTSP sources that are not V4L2 devices.

use super::{Dur, SimulatedCamera, Validator};
use crate::external::StreamType;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalStreamsConfig {
    /// false = the external stream methods answer -32030 (`feature: external_streams`) and
    /// no external stream (configured or persisted) becomes a camera.
    pub enabled: bool,
    /// Period of the liveness check of every external stream (MediaMTX path, then a
    /// `DESCRIBE` of the source URL when nothing flows).
    pub health_interval: Dur,
    /// Timeout of one liveness `DESCRIBE` of a source URL.
    pub probe_timeout: Dur,
    /// Consecutive failed checks before a connected stream is reported disconnected.
    pub offline_after: u32,
    /// Streams with fixed ids, defined here (not removable through the API).
    #[serde(deserialize_with = "super::entries")]
    pub streams: Vec<StaticExternalStream>,
}

impl Default for ExternalStreamsConfig {
    fn default() -> Self {
        ExternalStreamsConfig {
            enabled: true,
            health_interval: Dur::secs(2),
            probe_timeout: Dur::secs(2),
            offline_after: 2,
            streams: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticExternalStream {
    pub id: String,
    /// Kept as given (credentials included) for MediaMTX; redacted wherever it is shown
    /// (`check-config` included).
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_stream_type", rename = "type", deserialize_with = "stream_type")]
    pub stream_type: StreamType,
}

fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::external::redact_url(url))
}

fn default_stream_type() -> StreamType {
    StreamType::GenericRtsp
}

fn stream_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StreamType, D::Error> {
    super::one_of(d, StreamType::parse, "generic_rtsp, skydio_eo, skydio_ir")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Addresses or host names to scan.
    pub hosts: Vec<String>,
    /// CIDR ranges to scan (e.g. "192.168.10.0/24").
    pub cidrs: Vec<String>,
    /// Generic profile: ports probed on every address, with every path of `paths`.
    pub ports: Vec<u16>,
    pub paths: Vec<String>,
    /// Generic profile on by default (`discover_external_streams {generic_enabled}` overrides).
    pub generic: bool,
    /// Skydio profile: `skydio_eo_port` + /subject (EO), `skydio_ir_port` + /infrared (IR).
    pub skydio: bool,
    pub skydio_eo_port: u16,
    pub skydio_ir_port: u16,
    /// Timeout of each RTSP exchange (connect, OPTIONS, each DESCRIBE).
    pub probe_timeout: Dur,
    /// Endpoints probed at the same time.
    pub concurrency: usize,
    /// Hard cap on addresses per scan (hosts + expanded ranges).
    pub max_addresses: usize,
    /// Period of the background scan; 0 = off. `set_discovery_interval` overrides it (persisted).
    pub interval: Dur,
    /// Streams found by a scan become cameras.
    pub auto_add: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            hosts: Vec::new(),
            cidrs: Vec::new(),
            ports: vec![554, 8554],
            paths: vec!["/stream".into(), "/live".into()],
            generic: true,
            skydio: true,
            skydio_eo_port: 5554,
            skydio_ir_port: 6554,
            probe_timeout: Dur::secs(1),
            concurrency: 16,
            max_addresses: 256,
            interval: Dur::secs(0),
            auto_add: false,
        }
    }
}

impl ExternalStreamsConfig {
    pub(super) fn validate(&self, v: &mut Validator, simulated: &[SimulatedCamera]) {
        v.dur(
            "external_streams.health_interval",
            self.health_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "external_streams.probe_timeout",
            self.probe_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        v.range("external_streams.offline_after", self.offline_after as u64, 1, 100);
        let mut ids: std::collections::HashSet<&str> = simulated.iter().map(|s| s.id.as_str()).collect();
        let mut urls = std::collections::HashSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            let key = format!("external_streams.streams[{i}]");
            v.check(
                crate::ids::parse_camera_id(&s.id).is_some(),
                &format!("{key}.id"),
                "must look like cameraN (e.g. camera120)",
            );
            v.check(
                ids.insert(s.id.as_str()),
                &format!("{key}.id"),
                "must be unique among external streams and simulated cameras",
            );
            if let Err(why) = crate::external::validate_url(&s.url) {
                v.check(false, &format!("{key}.url"), &why);
            }
            v.check(urls.insert(s.url.as_str()), &format!("{key}.url"), "must be unique");
        }
    }
}

impl DiscoveryConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        for (i, h) in self.hosts.iter().enumerate() {
            v.check(
                !h.is_empty() && !h.contains(|c: char| c.is_whitespace() || c == '/' || c == '@'),
                &format!("discovery.hosts[{i}]"),
                "must be an IP address or host name",
            );
        }
        for (i, c) in self.cidrs.iter().enumerate() {
            if let Err(why) = crate::external::scan::parse_cidr(c) {
                v.check(false, &format!("discovery.cidrs[{i}]"), &why);
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            v.port(&format!("discovery.ports[{i}]"), *p);
        }
        for (i, p) in self.paths.iter().enumerate() {
            v.check(
                p.starts_with('/') && p.len() < 256 && !p.contains(|c: char| c.is_whitespace() || c.is_control()),
                &format!("discovery.paths[{i}]"),
                "must start with '/' and contain no spaces",
            );
        }
        v.port("discovery.skydio_eo_port", self.skydio_eo_port);
        v.port("discovery.skydio_ir_port", self.skydio_ir_port);
        v.dur(
            "discovery.probe_timeout",
            self.probe_timeout,
            Duration::from_millis(50),
            Duration::from_secs(30),
        );
        v.range("discovery.concurrency", self.concurrency as u64, 1, 256);
        v.range("discovery.max_addresses", self.max_addresses as u64, 1, 65_536);
        v.check(
            self.interval.get().is_zero()
                || (self.interval.get() >= Duration::from_secs(5)
                    && self.interval.get() <= Duration::from_secs(7 * 86400)),
            "discovery.interval",
            "must be 0s (off) or between 5s and 7days",
        );
    }
}
