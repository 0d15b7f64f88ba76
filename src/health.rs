//! Component health: each component reports its level and a message; readiness and the
//! overall status are derived from them (api.md §8, §10).

use crate::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Healthy => "healthy",
            Level::Degraded => "degraded",
            Level::Unhealthy => "unhealthy",
        }
    }
    /// HEALTHY|DEGRADED|UNHEALTHY of `get_status` and `system.health`.
    pub fn as_upper(self) -> &'static str {
        match self {
            Level::Healthy => "HEALTHY",
            Level::Degraded => "DEGRADED",
            Level::Unhealthy => "UNHEALTHY",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub level: Level,
    pub message: String,
    /// Whether `/health/ready` waits for this component.
    pub gates_readiness: bool,
    /// Whether the component finished its start (e.g. first discovery pass).
    pub ready: bool,
}

pub struct Health {
    started: Instant,
    components: RwLock<BTreeMap<&'static str, Component>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            started: Instant::now(),
            components: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Sets a component's state; returns true when the overall level changed.
    pub fn set(
        &self,
        name: &'static str,
        level: Level,
        message: impl Into<String>,
        gates_readiness: bool,
        ready: bool,
    ) -> bool {
        let before = self.overall();
        self.components.write().unwrap().insert(
            name,
            Component {
                level,
                message: message.into(),
                gates_readiness,
                ready,
            },
        );
        before != self.overall()
    }

    pub fn get(&self, name: &str) -> Option<Component> {
        self.components.read().unwrap().get(name).cloned()
    }

    pub fn overall(&self) -> Level {
        self.components
            .read()
            .unwrap()
            .values()
            .map(|c| c.level)
            .max()
            .unwrap_or(Level::Healthy)
    }

    /// `Err(reason)` while a readiness-gating component is not ready or unhealthy.
    pub fn readiness(&self) -> Result<(), String> {
        let comps = self.components.read().unwrap();
        let waiting: Vec<String> = comps
            .iter()
            .filter(|(_, c)| c.gates_readiness && (!c.ready || c.level == Level::Unhealthy))
            .map(|(n, c)| format!("{n}: {}", c.message))
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("; "))
        }
    }

    /// Every component, by name.
    pub fn components(&self) -> Vec<(&'static str, Component)> {
        let comps = self.components.read().unwrap();
        comps.iter().map(|(n, c)| (*n, c.clone())).collect()
    }
}

/// The health monitor of one component: probes it every `every` (every `retry_every` while
/// it is unhealthy, so a recovery is seen soon) and reports the outcome, until shutdown.
/// Owns its loop; what to probe and where to report are given.
pub struct Monitor {
    name: &'static str,
    every: Duration,
    retry_every: Duration,
}

impl Monitor {
    pub fn new(name: &'static str, every: Duration) -> Monitor {
        Monitor {
            name,
            every,
            retry_every: every.min(Duration::from_secs(1)),
        }
    }

    pub async fn run<P, F>(self, shutdown: Shutdown, probe: P, report: impl Fn(Level, &str))
    where
        P: Fn() -> F,
        F: std::future::Future<Output = (Level, String)>,
    {
        log::debug!("health monitor {} every {:?}", self.name, self.every);
        loop {
            let (level, message) = probe().await;
            report(level, &message);
            let wait = if level == Level::Unhealthy {
                self.retry_every
            } else {
                self.every
            };
            let stop = futures_lite::future::or(
                async {
                    shutdown.wait().await;
                    true
                },
                async {
                    smol::Timer::after(wait).await;
                    false
                },
            )
            .await;
            if stop {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn overall_and_readiness() {
        let h = Health::new();
        assert_eq!(h.overall(), Level::Healthy);
        assert!(!h.set("cameras", Level::Healthy, "discovering", true, false));
        assert!(h.readiness().unwrap_err().contains("cameras"));
        assert!(h.set("mediamtx", Level::Unhealthy, "unreachable", true, true));
        assert_eq!(h.overall(), Level::Unhealthy);
        h.set("cameras", Level::Healthy, "ok", true, true);
        h.set("mediamtx", Level::Healthy, "ok", true, true);
        assert!(h.readiness().is_ok());
    }
}
