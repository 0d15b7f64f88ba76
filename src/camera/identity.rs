//! Camera identity: what a V4L2 device says about itself, turned into a stable key, and the
//! persisted map key → `cameraN` that keeps a camera's id across replug, re-enumeration and
//! restarts (docs/cameras.md, "Identity").
//!
//! Derivation (`derive`), strongest first:
//! 1. **serial**: USB vendor:product + serial number (udev `ID_SERIAL_SHORT`, else sysfs
//!    `serial`), plus the USB interface (`1.0`) so a device with two video functions (RGB +
//!    IR) is two cameras;
//! 2. **port**: USB vendor:product + physical port path (udev `ID_PATH`, else the same
//!    `pci-…-usb-0:…:…` path built from sysfs);
//! 3. **bus**: driver + `bus_info` + card name from `VIDIOC_QUERYCAP` (works without udevd and
//!    for non-USB drivers such as `vivid`).
//!
//! The map (`IdentityMap`) is pure data; reading and writing the file (`load`,
//! `write_durably`) block and run on the blocking pool.

use super::v4l2::DeviceInfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The map file in `storage.state_dir`.
pub const MAP_FILE: &str = "camera-ids.json";
/// At most this many identities are remembered; a new identity beyond it gets no id (the
/// camera is not listed, logged, and shown in the `cameras` health message) until an admin
/// forgets one (`forget_camera`).
pub const MAX_ENTRIES: usize = 1024;
/// A map file larger than this is treated as corrupt.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest identity key / serial / port path kept (longer values are cut).
pub const MAX_KEY_LEN: usize = 256;
const FORMAT_VERSION: u32 = 1;

/// What a device node says about itself: `VIDIOC_QUERYCAP` plus, for USB devices, udev
/// properties or sysfs attributes. Tests inject these directly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// USB serial number (`ID_SERIAL_SHORT` / sysfs `serial`).
    pub serial: Option<String>,
    /// USB idVendor / idProduct, 4 lowercase hex digits.
    pub vendor_id: Option<String>,
    pub product_id: Option<String>,
    /// Physical port path (`ID_PATH` or the sysfs equivalent).
    pub port_path: Option<String>,
    /// USB `configuration.interface` of the video function (`1.0`).
    pub interface: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// USB vendor:product + serial number.
    Serial,
    /// USB vendor:product + physical port path.
    Port,
    /// Driver + bus_info + card name (`VIDIOC_QUERYCAP`).
    Bus,
}

/// A camera's identity: the key the map is indexed by, and the facts shown to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Identity {
    /// The identity key (stable across replug and restart).
    pub key: String,
    pub kind: IdentityKind,
    pub serial: Option<String>,
    pub vendor_id: Option<String>,
    pub product_id: Option<String>,
    pub port_path: Option<String>,
    pub bus_info: String,
}

/// A serial number worth trusting: printable, not blank, not one repeated character
/// (`0000000000`, which cheap cameras all share).
fn usable_serial(s: &str) -> Option<String> {
    let s: String = s.trim().chars().filter(|c| !c.is_control()).take(MAX_KEY_LEN).collect();
    let first = s.chars().next()?;
    if s.chars().all(|c| c == first) {
        return None;
    }
    Some(s)
}

fn clean(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(|v| {
            v.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_KEY_LEN)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
}

/// The identity of a device from its facts (rules in the module doc and docs/cameras.md).
pub fn derive(f: &Facts) -> Identity {
    let vendor = clean(&f.vendor_id).map(|v| v.to_ascii_lowercase());
    let product = clean(&f.product_id).map(|v| v.to_ascii_lowercase());
    let port = clean(&f.port_path);
    let serial = f.serial.as_deref().and_then(usable_serial);
    let (key, kind) = match (&vendor, &product, &serial, &port) {
        (Some(v), Some(p), Some(s), _) => {
            let mut key = format!("usb:{v}:{p}:serial:{s}");
            if let Some(i) = clean(&f.interface) {
                key.push_str(&format!(":if{i}"));
            }
            (key, IdentityKind::Serial)
        }
        (Some(v), Some(p), None, Some(port)) => (format!("usb:{v}:{p}:port:{port}"), IdentityKind::Port),
        _ => (
            format!("v4l2:{}:{}:{}", f.driver.trim(), f.bus_info.trim(), f.card.trim()),
            IdentityKind::Bus,
        ),
    };
    Identity {
        key: key.chars().take(MAX_KEY_LEN).collect(),
        kind,
        serial,
        vendor_id: vendor,
        product_id: product,
        port_path: port,
        bus_info: f.bus_info.trim().to_string(),
    }
}

/// Reads the facts of `/dev/video<num>` (udev properties when udevd left them, else sysfs).
/// Blocking (file reads): run on the blocking pool.
pub fn read_facts(num: u32, info: &DeviceInfo) -> Facts {
    let mut f = Facts {
        driver: info.driver.clone(),
        card: info.card.clone(),
        bus_info: info.bus_info.clone(),
        ..Facts::default()
    };
    let syspath = PathBuf::from(format!("/sys/class/video4linux/video{num}"));
    if let Ok(dev) = udev::Device::from_syspath(&syspath) {
        let prop = |k: &str| dev.property_value(k).map(|v| v.to_string_lossy().to_string());
        f.serial = prop("ID_SERIAL_SHORT");
        f.vendor_id = prop("ID_VENDOR_ID");
        f.product_id = prop("ID_MODEL_ID");
        f.port_path = prop("ID_PATH");
    }
    if let Some(usb) = sysfs_usb(&syspath) {
        f.serial = f.serial.or(usb.serial);
        f.vendor_id = f.vendor_id.or(Some(usb.vendor_id));
        f.product_id = f.product_id.or(Some(usb.product_id));
        f.port_path = f.port_path.or(usb.port_path);
        // sysfs names the interface (`1-1.2:1.0` → `1.0`).
        f.interface = usb.interface;
    }
    f
}

struct UsbFacts {
    vendor_id: String,
    product_id: String,
    serial: Option<String>,
    port_path: Option<String>,
    interface: Option<String>,
}

/// Walks up from the node's `device` link to the USB device (the directory with `idVendor`).
fn sysfs_usb(syspath: &Path) -> Option<UsbFacts> {
    let start = std::fs::canonicalize(syspath.join("device")).ok()?;
    let read = |p: &Path, name: &str| {
        std::fs::read_to_string(p.join(name))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut interface: Option<String> = None;
    let mut dir = start.as_path();
    loop {
        let name = dir.file_name()?.to_string_lossy().to_string();
        if read(dir, "idVendor").is_some() {
            let (vendor_id, product_id) = (read(dir, "idVendor")?, read(dir, "idProduct")?);
            // `1-1.2` = bus 1, ports 1.2; the PCI host controller is the nearest ancestor
            // named like `0000:00:14.0`.
            let ports = name.split_once('-').map(|(_, p)| p.to_string());
            let pci = dir
                .ancestors()
                .filter_map(|a| a.file_name().map(|n| n.to_string_lossy().to_string()))
                .find(|n| is_pci_address(n));
            let port_path = ports.map(|p| {
                let mut s = match &pci {
                    Some(pci) => format!("pci-{pci}-usb-0:{p}"),
                    None => format!("usb-0:{p}"),
                };
                if let Some(i) = &interface {
                    s.push(':');
                    s.push_str(i);
                }
                s
            });
            return Some(UsbFacts {
                vendor_id,
                product_id,
                serial: read(dir, "serial"),
                port_path,
                interface,
            });
        }
        // A USB interface directory: `1-1.2:1.0`.
        if interface.is_none() {
            if let Some((_, i)) = name.split_once(':') {
                if i.split('.').count() == 2
                    && i.split('.')
                        .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                {
                    interface = Some(i.to_string());
                }
            }
        }
        dir = dir.parent()?;
        if dir == Path::new("/sys/devices") || dir == Path::new("/") {
            return None;
        }
    }
}

fn is_pci_address(n: &str) -> bool {
    // dddd:bb:dd.f
    let b = n.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && n.chars().filter(|c| c.is_ascii_hexdigit()).count() == 9
}

/// Per-camera capture settings (`set_camera_settings`), persisted with the identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaptureSettings {
    /// Pixel format (FourCC text, as in `get_camera_capabilities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `WIDTHxHEIGHT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// FFmpeg bitrate (`2M`, `800k`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<String>,
    /// Key-frame interval in frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gop: Option<u32>,
    /// FFmpeg encoder name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
}

impl CaptureSettings {
    pub fn is_empty(&self) -> bool {
        *self == CaptureSettings::default()
    }
}

/// One remembered identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub key: String,
    pub kind: IdentityKind,
    /// The card name when last seen (for admins reading the file).
    #[serde(default)]
    pub name: String,
    /// RFC 3339 UTC.
    pub first_seen: String,
    #[serde(default, skip_serializing_if = "CaptureSettings::is_empty")]
    pub settings: CaptureSettings,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    version: u32,
    cameras: Vec<Entry>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AssignError {
    /// `MAX_ENTRIES` identities are remembered already.
    Full,
    /// No free id below the limit.
    NoFreeId,
}

/// identity key → camera number, persisted. Pure data.
#[derive(Debug, Default)]
pub struct IdentityMap {
    entries: BTreeMap<String, Entry>,
    max_entries: usize,
}

impl IdentityMap {
    pub fn new() -> IdentityMap {
        IdentityMap {
            entries: BTreeMap::new(),
            max_entries: MAX_ENTRIES,
        }
    }

    #[cfg(test)]
    pub fn with_limit(max_entries: usize) -> IdentityMap {
        IdentityMap {
            entries: BTreeMap::new(),
            max_entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parses and checks a map file's text.
    pub fn parse(text: &str) -> Result<IdentityMap, String> {
        let file: MapFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if file.version != FORMAT_VERSION {
            return Err(format!(
                "unsupported version {} (expected {FORMAT_VERSION})",
                file.version
            ));
        }
        if file.cameras.len() > MAX_ENTRIES {
            return Err(format!("{} entries (limit {MAX_ENTRIES})", file.cameras.len()));
        }
        let mut map = IdentityMap::new();
        let mut ids = std::collections::BTreeSet::new();
        for e in file.cameras {
            if crate::ids::parse_camera_id(&e.id).is_none() {
                return Err(format!("invalid id {:?}", e.id));
            }
            if e.key.is_empty() || e.key.len() > MAX_KEY_LEN * 4 {
                return Err(format!("invalid identity key for {}", e.id));
            }
            if !ids.insert(e.id.clone()) {
                return Err(format!("{} is given to two identities", e.id));
            }
            if map.entries.contains_key(&e.key) {
                return Err(format!("identity {:?} is listed twice", e.key));
            }
            map.entries.insert(e.key.clone(), e);
        }
        Ok(map)
    }

    /// The file's text (ids in number order).
    pub fn to_json(&self) -> String {
        let mut cameras: Vec<Entry> = self.entries.values().cloned().collect();
        cameras.sort_by_key(|e| crate::ids::parse_camera_id(&e.id));
        serde_json::to_string_pretty(&MapFile {
            version: FORMAT_VERSION,
            cameras,
        })
        .expect("identity map serialises")
            + "\n"
    }

    pub fn lookup(&self, key: &str) -> Option<u32> {
        self.entries.get(key).and_then(|e| crate::ids::parse_camera_id(&e.id))
    }

    pub fn entry_by_num(&self, num: u32) -> Option<&Entry> {
        self.entries
            .values()
            .find(|e| crate::ids::parse_camera_id(&e.id) == Some(num))
    }

    /// Every number the map gives out.
    pub fn numbers(&self) -> std::collections::BTreeSet<u32> {
        self.entries
            .values()
            .filter_map(|e| crate::ids::parse_camera_id(&e.id))
            .collect()
    }

    /// The number of `identity`: the remembered one, or the lowest number below `limit` that
    /// is neither in the map nor `reserved` (given to simulated, external or pinned cameras).
    /// `Ok((num, true))` when the identity is new (the map changed).
    pub fn assign(
        &mut self,
        identity: &Identity,
        name: &str,
        now: &str,
        limit: u32,
        reserved: impl Fn(u32) -> bool,
    ) -> Result<(u32, bool), AssignError> {
        if let Some(n) = self.lookup(&identity.key) {
            return Ok((n, false));
        }
        if self.entries.len() >= self.max_entries {
            return Err(AssignError::Full);
        }
        let taken = self.numbers();
        let num = (0..limit)
            .find(|n| !taken.contains(n) && !reserved(*n))
            .ok_or(AssignError::NoFreeId)?;
        self.insert(identity, num, name, now);
        Ok((num, true))
    }

    fn insert(&mut self, identity: &Identity, num: u32, name: &str, now: &str) {
        self.entries.insert(
            identity.key.clone(),
            Entry {
                id: crate::ids::camera_id(num),
                key: identity.key.clone(),
                kind: identity.kind,
                name: name.to_string(),
                first_seen: now.to_string(),
                settings: CaptureSettings::default(),
            },
        );
    }

    /// Gives `identity` the number `num` the config pins for it. Returns whether the map
    /// changed and the key of another identity that held `num` (it is dropped: the config
    /// wins).
    pub fn pin(&mut self, identity: &Identity, num: u32, name: &str, now: &str) -> (bool, Option<String>) {
        if self.lookup(&identity.key) == Some(num) {
            return (false, None);
        }
        let displaced = self
            .entries
            .values()
            .find(|e| e.key != identity.key && crate::ids::parse_camera_id(&e.id) == Some(num))
            .map(|e| e.key.clone());
        if let Some(k) = &displaced {
            self.entries.remove(k);
        }
        match self.entries.get_mut(&identity.key) {
            Some(e) => e.id = crate::ids::camera_id(num),
            None => {
                if self.entries.len() >= self.max_entries {
                    // Pinned cameras always get their id; the limit is for automatic ids.
                    log::warn!(
                        "camera id map is full; {} kept anyway (pinned in the config)",
                        identity.key
                    );
                }
                self.insert(identity, num, name, now);
            }
        }
        (true, displaced)
    }

    /// The saved settings of the identity `key`.
    pub fn settings_of(&self, key: &str) -> CaptureSettings {
        self.entries.get(key).map(|e| e.settings.clone()).unwrap_or_default()
    }

    /// Replaces the settings of the identity holding `num`; false when there is none.
    pub fn set_settings(&mut self, num: u32, settings: CaptureSettings) -> bool {
        let Some(key) = self.entry_by_num(num).map(|e| e.key.clone()) else {
            return false;
        };
        if let Some(e) = self.entries.get_mut(&key) {
            e.settings = settings;
        }
        true
    }

    /// Forgets the identity holding `num`; its entry.
    pub fn forget(&mut self, num: u32) -> Option<Entry> {
        let key = self.entry_by_num(num)?.key.clone();
        self.entries.remove(&key)
    }
}

/// Reads the map at `path`. A missing file is an empty map. A corrupt one (unreadable JSON,
/// failed checks, too large) is moved aside to `<path>.corrupt-<unix time>` and an empty
/// map is used; the message (with both paths) is returned for the log and health. Blocking.
pub fn load(path: &Path) -> (IdentityMap, Option<String>) {
    let text = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (IdentityMap::new(), None),
        Err(e) => Err(format!("cannot read it: {e}")),
        Ok(m) if m.len() > MAX_FILE_BYTES => Err(format!("{} bytes (limit {MAX_FILE_BYTES})", m.len())),
        Ok(_) => std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}")),
    };
    let why = match text.and_then(|t| IdentityMap::parse(&t)) {
        Ok(map) => return (map, None),
        Err(why) => why,
    };
    let aside = PathBuf::from(format!("{}.corrupt-{}", path.display(), crate::clock::unix_now()));
    let moved = match std::fs::rename(path, &aside) {
        Ok(()) => format!("moved aside to {}", aside.display()),
        Err(e) => format!("could not move it aside ({e}); it will be overwritten"),
    };
    let msg = format!(
        "camera id map {} is corrupt ({why}); {moved}; starting with an empty map (camera ids are given afresh)",
        path.display()
    );
    (IdentityMap::new(), Some(msg))
}

/// Durable replace of `path` with `bytes`, mode 0600 (the shared state-file writer). Blocking.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::state_file::write(path, bytes, crate::state_file::Mode::Private)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb(serial: Option<&str>, port: &str) -> Facts {
        Facts {
            driver: "uvcvideo".into(),
            card: "HD Webcam".into(),
            bus_info: format!("usb-0000:00:14.0-{port}"),
            serial: serial.map(String::from),
            vendor_id: Some("046D".into()),
            product_id: Some("0825".into()),
            port_path: Some(format!("pci-0000:00:14.0-usb-0:{port}:1.0")),
            interface: Some("1.0".into()),
        }
    }

    fn vivid(n: u32) -> Facts {
        Facts {
            driver: "vivid".into(),
            card: "vivid".into(),
            bus_info: format!("platform:vivid-{n:03}"),
            ..Facts::default()
        }
    }

    #[test]
    fn serial_wins_and_follows_the_device_across_ports() {
        let a = derive(&usb(Some("A1B2C3"), "1"));
        let moved = derive(&usb(Some("A1B2C3"), "4.2"));
        assert_eq!(a.kind, IdentityKind::Serial);
        assert_eq!(a.key, "usb:046d:0825:serial:A1B2C3:if1.0");
        assert_eq!(a.key, moved.key, "another port, same camera");
        assert_eq!(a.vendor_id.as_deref(), Some("046d"));
        // Junk serials are no serial: the port decides.
        for junk in ["", "   ", "0000000000", "\u{1}"] {
            let i = derive(&usb(Some(junk), "2"));
            assert_eq!(i.kind, IdentityKind::Port, "{junk:?}");
            assert_eq!(i.key, "usb:046d:0825:port:pci-0000:00:14.0-usb-0:2:1.0");
            assert_eq!(i.serial, None);
        }
    }

    #[test]
    fn identical_cameras_without_serial_are_told_apart_by_port() {
        let a = derive(&usb(None, "1"));
        let b = derive(&usb(None, "2"));
        assert_eq!((a.kind, b.kind), (IdentityKind::Port, IdentityKind::Port));
        assert_ne!(a.key, b.key);
    }

    #[test]
    fn without_usb_facts_bus_info_and_card_decide() {
        let a = derive(&vivid(0));
        assert_eq!(a.kind, IdentityKind::Bus);
        assert_eq!(a.key, "v4l2:vivid:platform:vivid-000:vivid");
        assert_ne!(a.key, derive(&vivid(1)).key);
        // vendor:product without serial or port: bus.
        let mut f = usb(None, "1");
        f.port_path = None;
        assert_eq!(derive(&f).kind, IdentityKind::Bus);
    }

    fn t() -> &'static str {
        "2026-11-30T14:00:00Z"
    }

    #[test]
    fn ids_are_assigned_once_and_survive_a_round_trip() {
        let mut m = IdentityMap::new();
        let a = derive(&vivid(0));
        let b = derive(&vivid(1));
        let reserved = |n: u32| n == 1; // e.g. a simulated camera1
        assert_eq!(m.assign(&a, "vivid", t(), 100, reserved), Ok((0, true)));
        assert_eq!(m.assign(&b, "vivid", t(), 100, reserved), Ok((2, true)));
        assert_eq!(m.assign(&a, "vivid", t(), 100, reserved), Ok((0, false)));
        let text = m.to_json();
        let back = IdentityMap::parse(&text).unwrap();
        assert_eq!(back.lookup(&a.key), Some(0));
        assert_eq!(back.lookup(&b.key), Some(2));
        // Forget frees the id for the next new identity.
        let mut m = back;
        assert_eq!(m.forget(0).unwrap().key, a.key);
        assert!(m.forget(0).is_none());
        let c = derive(&usb(Some("X9"), "1"));
        assert_eq!(m.assign(&c, "cam", t(), 100, reserved), Ok((0, true)));
        assert_eq!(m.assign(&a, "vivid", t(), 100, reserved), Ok((3, true)));
    }

    #[test]
    fn limits_are_enforced() {
        let mut m = IdentityMap::with_limit(2);
        m.assign(&derive(&vivid(0)), "", t(), 100, |_| false).unwrap();
        m.assign(&derive(&vivid(1)), "", t(), 100, |_| false).unwrap();
        assert_eq!(
            m.assign(&derive(&vivid(2)), "", t(), 100, |_| false),
            Err(AssignError::Full)
        );
        let mut m = IdentityMap::new();
        m.assign(&derive(&vivid(0)), "", t(), 1, |_| false).unwrap();
        assert_eq!(
            m.assign(&derive(&vivid(1)), "", t(), 1, |_| false),
            Err(AssignError::NoFreeId)
        );
    }

    #[test]
    fn pins_take_the_id_from_whoever_had_it() {
        let mut m = IdentityMap::new();
        let a = derive(&vivid(0));
        let b = derive(&vivid(1));
        m.assign(&a, "", t(), 100, |_| false).unwrap();
        assert_eq!(m.pin(&b, 0, "", t()), (true, Some(a.key.clone())));
        assert_eq!(m.lookup(&b.key), Some(0));
        assert_eq!(m.lookup(&a.key), None);
        assert_eq!(m.pin(&b, 0, "", t()), (false, None));
        assert_eq!(m.pin(&b, 7, "", t()), (true, None));
        assert_eq!(m.lookup(&b.key), Some(7));
    }

    #[test]
    fn corrupt_files_are_refused_with_a_reason() {
        for (text, why) in [
            ("{", "EOF"),
            ("{\"version\":2,\"cameras\":[]}", "version"),
            (
                "{\"version\":1,\"cameras\":[{\"id\":\"cam0\",\"key\":\"k\",\"kind\":\"bus\",\"first_seen\":\"\"}]}",
                "invalid id",
            ),
            (
                "{\"version\":1,\"cameras\":[{\"id\":\"camera0\",\"key\":\"k\",\"kind\":\"bus\",\"first_seen\":\"\"},{\"id\":\"camera0\",\"key\":\"j\",\"kind\":\"bus\",\"first_seen\":\"\"}]}",
                "two identities",
            ),
        ] {
            let e = IdentityMap::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn load_moves_a_corrupt_file_aside_and_writes_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cs-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(MAP_FILE);
        assert!(load(&path).0.is_empty(), "missing file = empty map");
        let mut m = IdentityMap::new();
        m.assign(&derive(&vivid(0)), "vivid", t(), 100, |_| false).unwrap();
        write_durably(&path, m.to_json().as_bytes()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (back, problem) = load(&path);
        assert_eq!((back.len(), problem), (1, None));
        std::fs::write(&path, "not json").unwrap();
        let (fresh, problem) = load(&path);
        assert!(fresh.is_empty());
        let problem = problem.unwrap();
        assert!(
            problem.contains(&path.display().to_string()) && problem.contains(".corrupt-"),
            "{problem}"
        );
        assert!(!path.exists(), "moved aside");
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
