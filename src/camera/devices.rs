//! `[[camera.devices]]`: per-device rules from the config. A rule matches a V4L2 camera by
//! USB serial, by physical port path or by device node, and pins its id, names it or
//! disables it (docs/cameras.md, "Configured devices"). Self-contained: the config only
//! holds `Vec<DeviceRule>` and calls `validate`.

use super::identity::Identity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    /// Match: the USB serial number (`identity.serial` of `get_camera_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Match: the physical port path (`identity.port_path`, e.g.
    /// `pci-0000:00:14.0-usb-0:1.2:1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_path: Option<String>,
    /// Match: the device node (`/dev/video2`), whatever device is on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Pin this id (`cameraN`, N below `camera.external_id_base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name (`name` in the API) instead of the card name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `false`: the device is not a camera of this service.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl DeviceRule {
    pub fn matches(&self, identity: &Identity, devnode: &Path) -> bool {
        if let Some(s) = &self.serial {
            return identity.serial.as_deref() == Some(s.as_str());
        }
        if let Some(p) = &self.port_path {
            return identity.port_path.as_deref() == Some(p.as_str());
        }
        if let Some(n) = &self.node {
            return Path::new(n) == devnode;
        }
        false
    }

    pub fn pinned(&self) -> Option<u32> {
        self.id.as_deref().and_then(crate::ids::parse_camera_id)
    }
}

/// The first rule matching a device.
pub fn find<'a>(rules: &'a [DeviceRule], identity: &Identity, devnode: &Path) -> Option<&'a DeviceRule> {
    rules.iter().find(|r| r.matches(identity, devnode))
}

/// Every id pinned by a rule.
pub fn pinned_ids(rules: &[DeviceRule]) -> BTreeSet<u32> {
    rules.iter().filter_map(DeviceRule::pinned).collect()
}

/// Checks the rules; `(key, rule broken)` for each problem. `taken`: ids of simulated and
/// configured external cameras; `id_limit`: `camera.external_id_base`.
pub fn validate(rules: &[DeviceRule], taken: &BTreeSet<String>, id_limit: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    let mut matchers = BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        let key = format!("camera.devices[{i}]");
        let set: Vec<(&str, &String)> = [("serial", &r.serial), ("port_path", &r.port_path), ("node", &r.node)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect();
        match set.as_slice() {
            [(k, v)] => {
                if v.trim().is_empty() || v.len() > 256 || v.contains(char::is_control) {
                    out.push((
                        format!("{key}.{k}"),
                        "must be a non-empty value (at most 256 characters)".into(),
                    ));
                } else if *k == "node"
                    && !(v.starts_with("/dev/video")
                        && crate::camera::monitor::video_num(v.trim_start_matches("/dev/")).is_some())
                {
                    out.push((format!("{key}.node"), "must be a device node like /dev/video0".into()));
                } else if !matchers.insert((*k, v.to_string())) {
                    out.push((
                        format!("{key}.{k}"),
                        "must be unique (another rule matches the same)".into(),
                    ));
                }
            }
            _ => out.push((
                key.clone(),
                "must set exactly one of serial, port_path, node (what the rule matches)".into(),
            )),
        }
        if let Some(id) = &r.id {
            match crate::ids::parse_camera_id(id) {
                None => out.push((format!("{key}.id"), "must look like cameraN (e.g. camera3)".into())),
                Some(n) if n >= id_limit => out.push((
                    format!("{key}.id"),
                    format!(
                        "must be below camera.external_id_base (camera0 .. camera{})",
                        id_limit.saturating_sub(1)
                    ),
                )),
                Some(_) if taken.contains(id) => out.push((
                    format!("{key}.id"),
                    "must not be the id of a simulated camera or an external stream".into(),
                )),
                Some(_) if !ids.insert(id.clone()) => out.push((format!("{key}.id"), "must be unique".into())),
                Some(_) => {}
            }
            if !r.enabled {
                out.push((format!("{key}.id"), "cannot be pinned on a disabled device".into()));
            }
        }
        if let Some(n) = &r.name {
            if n.trim().is_empty() || n.chars().count() > 128 || n.contains(char::is_control) {
                out.push((format!("{key}.name"), "must be 1 to 128 printable characters".into()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::identity::{derive, Facts};

    fn rule(toml_text: &str) -> DeviceRule {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn rules_match_by_serial_port_or_node() {
        let usb = derive(&Facts {
            driver: "uvcvideo".into(),
            card: "Cam".into(),
            bus_info: "usb-0000:00:14.0-1".into(),
            serial: Some("SN42".into()),
            vendor_id: Some("046d".into()),
            product_id: Some("0825".into()),
            port_path: Some("pci-0000:00:14.0-usb-0:1:1.0".into()),
            interface: Some("1.0".into()),
        });
        let dev = Path::new("/dev/video2");
        assert!(rule("serial = \"SN42\"").matches(&usb, dev));
        assert!(!rule("serial = \"SN43\"").matches(&usb, dev));
        assert!(rule("port_path = \"pci-0000:00:14.0-usb-0:1:1.0\"").matches(&usb, dev));
        assert!(rule("node = \"/dev/video2\"").matches(&usb, dev));
        assert!(!rule("node = \"/dev/video0\"").matches(&usb, dev));
        let rules = vec![
            rule("node = \"/dev/video9\"\nenabled = false"),
            rule("serial = \"SN42\"\nid = \"camera7\"\nname = \"Front\""),
        ];
        let r = find(&rules, &usb, dev).unwrap();
        assert_eq!(
            (r.pinned(), r.name.as_deref(), r.enabled),
            (Some(7), Some("Front"), true)
        );
        assert_eq!(pinned_ids(&rules), [7].into_iter().collect());
    }

    #[test]
    fn validation_names_key_and_rule() {
        let taken: BTreeSet<String> = ["camera50".to_string()].into_iter().collect();
        let rules = vec![
            rule("serial = \"A\"\nnode = \"/dev/video0\""),
            rule("node = \"/dev/vbi0\""),
            rule("serial = \"B\"\nid = \"camera50\""),
            rule("serial = \"C\"\nid = \"camera100\""),
            rule("serial = \"D\"\nid = \"camera3\""),
            rule("serial = \"D\"\nid = \"camera3\""),
            rule("port_path = \"x\"\nname = \"\""),
        ];
        let errs: Vec<String> = validate(&rules, &taken, 100)
            .into_iter()
            .map(|(k, r)| format!("{k}: {r}"))
            .collect();
        let has = |s: &str| errs.iter().any(|e| e.starts_with(s));
        assert!(has("camera.devices[0]: must set exactly one"), "{errs:?}");
        assert!(has("camera.devices[1].node"), "{errs:?}");
        assert!(has("camera.devices[2].id: must not be"), "{errs:?}");
        assert!(has("camera.devices[3].id: must be below"), "{errs:?}");
        assert!(has("camera.devices[5].serial: must be unique"), "{errs:?}");
        assert!(has("camera.devices[5].id: must be unique"), "{errs:?}");
        assert!(has("camera.devices[6].name"), "{errs:?}");
        assert!(!has("camera.devices[4]"), "{errs:?}");
        assert!(validate(&[rule("node = \"/dev/video1\"\nenabled = false")], &taken, 100).is_empty());
    }
}
