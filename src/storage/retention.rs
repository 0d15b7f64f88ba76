//! Retention policy: its persisted form and the pure decision of which files to delete.

use super::files::Entry;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyType {
    Age,
    Size,
    Manual,
}

impl PolicyType {
    pub fn parse(s: &str) -> Option<PolicyType> {
        match s {
            "age" => Some(PolicyType::Age),
            "size" => Some(PolicyType::Size),
            "manual" => Some(PolicyType::Manual),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Age => "age",
            PolicyType::Size => "size",
            PolicyType::Manual => "manual",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub policy_type: PolicyType,
    pub enabled: bool,
    pub max_age_days: Option<u32>,
    pub max_size_gb: Option<f64>,
}

pub const FILE_NAME: &str = "retention-policy.json";

pub fn state_file(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// The persisted policy; `Ok(None)` when none was saved yet.
pub fn load(state_dir: &Path) -> Result<Option<Policy>, String> {
    let path = state_file(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is not a valid retention policy: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Atomic, durable replace ([`crate::state_file`]).
pub fn save(state_dir: &Path, policy: &Policy) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(policy).expect("policy serialises");
    crate::state_file::write(
        &state_file(state_dir),
        text.as_bytes(),
        crate::state_file::Mode::Default,
    )
}

pub const GB: f64 = 1_000_000_000.0;

/// Files to delete under `policy` at `now_unix`, oldest first. `files` holds recordings and
/// snapshots together; `is_active` files (segments being written) are never chosen, but
/// still count towards the size total.
pub fn plan(policy: &Policy, files: &[Entry], now_unix: i64, is_active: impl Fn(&Entry) -> bool) -> Vec<Entry> {
    let mut sorted: Vec<&Entry> = files.iter().collect();
    sorted.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
    match policy.policy_type {
        PolicyType::Manual => Vec::new(),
        PolicyType::Age => {
            let Some(days) = policy.max_age_days else {
                return Vec::new();
            };
            let cutoff = now_unix - days as i64 * 86_400;
            let cutoff = SystemTime::UNIX_EPOCH + Duration::from_secs(cutoff.max(0) as u64);
            sorted
                .into_iter()
                .filter(|e| e.modified < cutoff && !is_active(e))
                .cloned()
                .collect()
        }
        PolicyType::Size => {
            let Some(gb) = policy.max_size_gb else {
                return Vec::new();
            };
            let limit = (gb * GB) as u64;
            let mut total: u64 = sorted.iter().map(|e| e.size).sum();
            let mut out = Vec::new();
            for e in sorted {
                if total <= limit {
                    break;
                }
                if is_active(e) {
                    continue;
                }
                total -= e.size;
                out.push(e.clone());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, age_days: i64, size: u64, now: i64) -> Entry {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs((now - age_days * 86_400) as u64);
        Entry {
            kind: super::super::files::Kind::Recording,
            name: name.into(),
            device: "camera0".into(),
            path: PathBuf::from(name),
            size,
            modified: t,
            created: t,
        }
    }

    #[test]
    fn age_and_size_plans_pick_oldest_and_skip_active() {
        let now = 2_000_000_000;
        let files = vec![
            entry("a", 10, 400, now),
            entry("b", 5, 300, now),
            entry("c", 1, 200, now),
            entry("d", 20, 100, now),
        ];
        let names = |v: Vec<Entry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        let age = Policy {
            policy_type: PolicyType::Age,
            enabled: true,
            max_age_days: Some(7),
            max_size_gb: None,
        };
        assert_eq!(names(plan(&age, &files, now, |_| false)), ["d", "a"]);
        assert_eq!(names(plan(&age, &files, now, |e| e.name == "d")), ["a"]);
        let size = Policy {
            policy_type: PolicyType::Size,
            max_size_gb: Some(550.0 / GB),
            ..age.clone()
        };
        // total 1000 → delete d (900), a (500 ≤ 550)
        assert_eq!(names(plan(&size, &files, now, |_| false)), ["d", "a"]);
        // d active: still counted, a and b go (1000-400-300 = 300)
        assert_eq!(names(plan(&size, &files, now, |e| e.name == "d")), ["a", "b"]);
        let manual = Policy {
            policy_type: PolicyType::Manual,
            ..age
        };
        assert!(plan(&manual, &files, now, |_| false).is_empty());
    }

    #[test]
    fn persisted_policy_round_trips() {
        let dir = std::env::temp_dir().join(format!("cs-ret-{}", crate::api::auth::random_token(6)));
        assert_eq!(load(&dir).unwrap(), None);
        let p = Policy {
            policy_type: PolicyType::Size,
            enabled: true,
            max_age_days: None,
            max_size_gb: Some(1.5),
        };
        save(&dir, &p).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(p));
        std::fs::write(state_file(&dir), "{").unwrap();
        assert!(load(&dir).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
