//! `[mavlink]`: the MAVLink camera front end (docs/config.md, docs/mavlink.md). A
//! self-contained section with its own validation, hooked into `Config` by one field.

use crate::config::Dur;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where the link sends and listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Listen on a UDP port; replies go to every peer heard from.
    UdpIn(String),
    /// Send to a fixed UDP peer (and read its replies).
    UdpOut(String),
    /// Connect to a TCP server (mavlink-router, SITL), reconnecting when it goes away.
    TcpOut(String),
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (kind, addr) = text
            .split_once(':')
            .ok_or("must look like udpin:HOST:PORT, udpout:HOST:PORT or tcpout:HOST:PORT")?;
        let (host, port) = addr.rsplit_once(':').ok_or("must end in :PORT")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err("needs a host (an IP address or name) before :PORT".into());
        }
        match port.parse::<u16>() {
            Ok(p) if p != 0 || kind == "udpin" => {}
            _ => return Err(format!("port {port:?} must be a number between 1 and 65535")),
        }
        match kind {
            "udpin" => {
                if host.parse::<std::net::IpAddr>().is_err() {
                    return Err("udpin needs an IP address to listen on (e.g. 0.0.0.0)".into());
                }
                Ok(Endpoint::UdpIn(addr.into()))
            }
            "udpout" => Ok(Endpoint::UdpOut(addr.into())),
            "tcpout" => Ok(Endpoint::TcpOut(addr.into())),
            other => Err(format!(
                "unknown kind {other:?}; use udpin, udpout or tcpout (serial: through mavlink-router)"
            )),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MavlinkConfig {
    pub enabled: bool,
    /// `udpin:HOST:PORT`, `udpout:HOST:PORT`, `tcpout:HOST:PORT`.
    pub endpoints: Vec<String>,
    /// `"autopilot"`: adopt the system id of the autopilot whose HEARTBEAT arrives (until
    /// then `system_id`); `"fixed"`: always `system_id`.
    pub system_id_policy: String,
    pub system_id: u8,
    /// First camera component id; cameras get `base`, `base + 1`, ... (at most 6, up to 105).
    pub component_id_base: u8,
    /// Host written into stream URIs and file URLs; a GCS must reach it (never 0.0.0.0).
    /// Empty: `mediamtx.public_host`, else this machine's host name.
    pub advertised_host: String,
    pub heartbeat_interval: Dur,
}

impl Default for MavlinkConfig {
    fn default() -> Self {
        MavlinkConfig {
            enabled: false,
            endpoints: vec!["udpin:0.0.0.0:14550".into()],
            system_id_policy: "autopilot".into(),
            system_id: 1,
            component_id_base: 100,
            advertised_host: String::new(),
            heartbeat_interval: Dur::secs(1),
        }
    }
}

pub const MAX_CAMERAS: u8 = 6;

impl MavlinkConfig {
    pub fn adopt_autopilot(&self) -> bool {
        self.system_id_policy == "autopilot"
    }

    pub fn parsed_endpoints(&self) -> Vec<Endpoint> {
        self.endpoints.iter().filter_map(|e| Endpoint::parse(e).ok()).collect()
    }

    /// Every problem, each as `mavlink.<key>: <rule>`. Checked even when disabled, so a
    /// config is not found broken only the day it is switched on.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, rule: String| {
            if !ok {
                errors.push(format!("mavlink.{key}: {rule}"));
            }
        };
        check(
            !self.enabled || !self.endpoints.is_empty(),
            "endpoints",
            "needs at least one endpoint when mavlink.enabled = true".into(),
        );
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Err(why) = Endpoint::parse(e) {
                check(false, &format!("endpoints[{i}]"), format!("{e:?} {why}"));
            }
        }
        check(
            matches!(self.system_id_policy.as_str(), "autopilot" | "fixed"),
            "system_id_policy",
            "must be \"autopilot\" or \"fixed\"".into(),
        );
        check(self.system_id >= 1, "system_id", "must be between 1 and 255".into());
        check(
            (100..=105).contains(&self.component_id_base),
            "component_id_base",
            format!(
                "must be between 100 and 105 (MAV_COMP_ID_CAMERA..CAMERA6, got {})",
                self.component_id_base
            ),
        );
        let host = self.advertised_host.trim();
        check(
            !matches!(host, "0.0.0.0" | "::" | "[::]") && !host.contains(char::is_whitespace) && !host.contains('/'),
            "advertised_host",
            "must be an address a GCS can reach (not 0.0.0.0), or empty".into(),
        );
        let hb = self.heartbeat_interval.get();
        check(
            hb >= Duration::from_millis(100) && hb <= Duration::from_secs(5),
            "heartbeat_interval",
            "must be between 100ms and 5s (QGC drops a camera after a few silent seconds)".into(),
        );
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_bad_values_name_the_key() {
        assert_eq!(
            Endpoint::parse("udpin:0.0.0.0:14550"),
            Ok(Endpoint::UdpIn("0.0.0.0:14550".into()))
        );
        assert_eq!(
            Endpoint::parse("tcpout:router.local:5760"),
            Ok(Endpoint::TcpOut("router.local:5760".into()))
        );
        for bad in [
            "udp:1.2.3.4:5",
            "udpin:host:14550",
            "udpout:1.2.3.4",
            "tcpout:1.2.3.4:0",
            "x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        let c = MavlinkConfig {
            enabled: true,
            endpoints: vec!["serial:/dev/ttyS0:57600".into()],
            system_id_policy: "any".into(),
            system_id: 0,
            component_id_base: 1,
            advertised_host: "0.0.0.0".into(),
            heartbeat_interval: Dur::secs(60),
        };
        let e = c.validate().join("\n");
        for key in [
            "mavlink.endpoints[0]",
            "mavlink.system_id_policy",
            "mavlink.system_id:",
            "mavlink.component_id_base",
            "mavlink.advertised_host",
            "mavlink.heartbeat_interval",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
        assert!(MavlinkConfig::default().validate().is_empty());
    }
}
