//! External RTSP/RTSPS streams (api.md §11): URL validation and credential redaction, the
//! stream types (generic RTSP, Skydio EO/IR), and the persisted list of streams added through
//! the API (a JSON state file in `storage.state_dir`, mode 0600, replaced atomically).
//!
//! The plain URL (credentials included) lives only in the state file and in the MediaMTX path
//! (`source:`); everything shown to clients or written to logs goes through [`redact_url`].

pub mod manager;
pub mod scan;

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the state file inside `storage.state_dir`.
pub const STATE_FILE: &str = "external-streams.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamType {
    GenericRtsp,
    SkydioEo,
    SkydioIr,
}

impl StreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::GenericRtsp => "generic_rtsp",
            StreamType::SkydioEo => "skydio_eo",
            StreamType::SkydioIr => "skydio_ir",
        }
    }
    pub fn parse(s: &str) -> Option<StreamType> {
        match s {
            "generic_rtsp" => Some(StreamType::GenericRtsp),
            "skydio_eo" => Some(StreamType::SkydioEo),
            "skydio_ir" => Some(StreamType::SkydioIr),
            _ => None,
        }
    }
    pub fn is_skydio(self) -> bool {
        matches!(self, StreamType::SkydioEo | StreamType::SkydioIr)
    }
}

/// A source URL whose `Debug` never shows credentials (it sits in `Camera`, which is
/// debug-printed in places).
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl(String);

impl SourceUrl {
    pub fn new(url: impl Into<String>) -> SourceUrl {
        SourceUrl(url.into())
    }
    /// The plain URL, for MediaMTX and the RTSP probe only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// The parts of a validated URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedUrl {
    pub scheme: String,
    pub has_credentials: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/` (`/` when absent).
    pub path: String,
}

/// Validates an external stream URL: `rtsp://` or `rtsps://`, no whitespace or control
/// characters, a host, a valid port (default 554 / 322), optional `user[:password]@`.
/// The error text never contains the credentials.
pub fn validate_url(url: &str) -> Result<ParsedUrl, String> {
    if url.is_empty() {
        return Err("stream_url must not be empty".into());
    }
    if url.len() > 2048 {
        return Err("stream_url is longer than 2048 characters".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("stream_url must not contain whitespace or control characters".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "stream_url must start with rtsp:// or rtsps://".to_string())?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "rtsp" => 554,
        "rtsps" => 322,
        _ => return Err("stream_url must use the rtsp or rtsps scheme".into()),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains('#') {
        return Err("stream_url must not contain a fragment (#)".into());
    }
    if path.contains('@') {
        // Most likely an unencoded '/' in a password: the credentials would end up in the path.
        return Err("stream_url has '@' after the host; percent-encode special characters in credentials".into());
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if userinfo.is_some_and(|u| u.is_empty() || u.starts_with(':')) {
        return Err("stream_url has credentials without a user name".into());
    }
    // MediaMTX refuses a source with a user but no password ("username and password must
    // be both provided"): refuse it here, not in the background.
    if userinfo.is_some_and(|u| u.split_once(':').map_or(true, |(_, pass)| pass.is_empty())) {
        return Err("stream_url has a user name without a password; give both (user:password@host)".into());
    }
    // Go's URL parser (MediaMTX) refuses a '%' not followed by two hex digits.
    let b = url.as_bytes();
    if b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    }) {
        return Err("stream_url has an invalid percent-escape ('%' must be followed by two hex digits)".into());
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6.find(']').ok_or("stream_url has an unterminated IPv6 address")?;
        let host = &v6[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("stream_url has an invalid IPv6 address".into());
        }
        (format!("[{host}]"), &v6[end + 1..])
    } else {
        match hostport.find(':') {
            Some(i) => (hostport[..i].to_string(), &hostport[i..]),
            None => (hostport.to_string(), ""),
        }
    };
    if host.is_empty() {
        return Err("stream_url must name a host".into());
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err("stream_url has an invalid host name".into());
    }
    let port = match port {
        "" => default_port,
        p => {
            let digits = p.strip_prefix(':').unwrap_or(p);
            match digits.parse::<u16>() {
                Ok(n) if n > 0 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err("stream_url has an invalid port (1-65535)".into()),
            }
        }
    };
    Ok(ParsedUrl {
        scheme,
        has_credentials: userinfo.is_some(),
        host,
        port,
        path: if path.is_empty() { "/".into() } else { path.to_string() },
    })
}

/// `rtsp://user:pw@host:554/x` → `rtsp://***@host:554/x`. Works on any text shaped like a URL
/// (valid or not); errs on the side of hiding: everything between `://` and the last `@`
/// goes.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// Removes the credentials of `url` from any text (e.g. an error message from MediaMTX that
/// quotes the source).
pub fn scrub(text: &str, url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let Some(at) = url[start..].rfind('@') else {
        return text.to_string();
    };
    let userinfo = &url[start..start + at];
    let mut out = text.replace(url, &redact_url(url));
    if !userinfo.is_empty() {
        out = out.replace(userinfo, "***");
        if let Some((_, pw)) = userinfo.split_once(':') {
            if !pw.is_empty() {
                out = out.replace(pw, "***");
            }
        }
    }
    out
}

/// Where a stream came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `[[external_streams.streams]]`: fixed id, not removable through the API.
    Config,
    /// `add_external_stream`.
    Api,
    /// Added by a discovery scan with `discovery.auto_add`.
    Discovery,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
            Origin::Discovery => "discovery",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExternalStream {
    pub device: String,
    /// The plain URL (credentials included). Never shown; see `redacted_url`.
    pub url: String,
    pub name: String,
    pub stream_type: StreamType,
    pub origin: Origin,
    /// RFC 3339.
    pub added_at: String,
}

impl ExternalStream {
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    streams: Vec<ExternalStream>,
    /// Set by `set_discovery_interval` (seconds; 0 = off); overrides `discovery.interval`.
    #[serde(default)]
    discovery_interval: Option<u64>,
}

#[derive(Debug, PartialEq)]
pub enum AddError {
    Duplicate(String),
    NoFreeId,
    Persist(String),
}

/// All external streams (configured ones and persisted ones), one lock.
pub struct ExternalStore {
    path: PathBuf,
    state: Mutex<(Vec<ExternalStream>, Option<u64>)>,
}

impl ExternalStore {
    /// Loads the state file (missing = empty) and merges the configured streams, which win
    /// on URL or id clashes (a persisted stream whose id a configured stream now takes gets
    /// a new id; `taken` are the ids of other cameras, e.g. simulated ones).
    pub fn load(
        state_dir: &Path,
        configured: Vec<ExternalStream>,
        taken: &BTreeSet<u32>,
        base: u32,
    ) -> (ExternalStore, Vec<String>) {
        let path = state_dir.join(STATE_FILE);
        let mut warnings = Vec::new();
        let file: StateFile = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                warnings.push(format!(
                    "{} is unreadable ({e}); starting with no added streams",
                    path.display()
                ));
                StateFile::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => {
                warnings.push(format!("cannot read {}: {e}", path.display()));
                StateFile::default()
            }
        };
        let mut streams = configured;
        let mut changed = false;
        for mut s in file.streams.into_iter().filter(|s| s.origin != Origin::Config) {
            if streams.iter().any(|o| o.url == s.url) {
                warnings.push(format!(
                    "{} ({}) is now configured in the config file; the added copy is dropped",
                    s.device,
                    s.redacted_url()
                ));
                changed = true;
                continue;
            }
            let clash = |d: &str, streams: &[ExternalStream]| {
                let n = crate::ids::parse_camera_id(d);
                n.is_none() || taken.contains(&n.unwrap_or(0)) || streams.iter().any(|o| o.device == d)
            };
            if clash(&s.device, &streams) {
                let Some(id) = free_id(base, taken, &streams) else {
                    continue;
                };
                warnings.push(format!(
                    "{} ({}) clashes with another camera id; it is now {id}",
                    s.device,
                    s.redacted_url()
                ));
                s.device = id;
                changed = true;
            }
            streams.push(s);
        }
        let store = ExternalStore {
            path,
            state: Mutex::new((streams, file.discovery_interval)),
        };
        if changed {
            if let Err(e) = store.persist() {
                warnings.push(e);
            }
        }
        (store, warnings)
    }

    pub fn list(&self) -> Vec<ExternalStream> {
        self.state.lock().unwrap().0.clone()
    }

    pub fn by_url(&self, url: &str) -> Option<ExternalStream> {
        self.state.lock().unwrap().0.iter().find(|s| s.url == url).cloned()
    }

    pub fn by_device(&self, device: &str) -> Option<ExternalStream> {
        self.state
            .lock()
            .unwrap()
            .0
            .iter()
            .find(|s| s.device == device)
            .cloned()
    }

    /// Adds a stream under the lowest free id from `base` (`taken` = ids of other cameras)
    /// and persists it.
    pub fn add(
        &self,
        url: &str,
        name: &str,
        stream_type: StreamType,
        origin: Origin,
        base: u32,
        taken: &BTreeSet<u32>,
    ) -> Result<ExternalStream, AddError> {
        let stream = {
            let mut st = self.state.lock().unwrap();
            if let Some(s) = st.0.iter().find(|s| s.url == url) {
                return Err(AddError::Duplicate(s.device.clone()));
            }
            let device = free_id(base, taken, &st.0).ok_or(AddError::NoFreeId)?;
            let s = ExternalStream {
                device,
                url: url.to_string(),
                name: name.to_string(),
                stream_type,
                origin,
                added_at: crate::clock::now_rfc3339(),
            };
            st.0.push(s.clone());
            s
        };
        if let Err(e) = self.persist() {
            self.state.lock().unwrap().0.retain(|s| s.url != url);
            return Err(AddError::Persist(e));
        }
        Ok(stream)
    }

    /// Removes a stream by URL and persists; `None` when unknown.
    pub fn remove(&self, url: &str) -> Result<Option<ExternalStream>, String> {
        let removed = {
            let mut st = self.state.lock().unwrap();
            let Some(i) = st.0.iter().position(|s| s.url == url) else {
                return Ok(None);
            };
            st.0.remove(i)
        };
        if let Err(e) = self.persist() {
            self.state.lock().unwrap().0.push(removed);
            return Err(e);
        }
        Ok(Some(removed))
    }

    pub fn discovery_interval(&self) -> Option<u64> {
        self.state.lock().unwrap().1
    }

    pub fn set_discovery_interval(&self, secs: u64) -> Result<(), String> {
        let old = self.state.lock().unwrap().1.replace(secs);
        let r = self.persist();
        if r.is_err() {
            self.state.lock().unwrap().1 = old;
        }
        r
    }

    /// Writes the API/discovery-added streams (configured ones live in the config file):
    /// temporary file with mode 0600, fsync, rename, fsync of the directory.
    fn persist(&self) -> Result<(), String> {
        let file = {
            let st = self.state.lock().unwrap();
            StateFile {
                version: 1,
                streams: st.0.iter().filter(|s| s.origin != Origin::Config).cloned().collect(),
                discovery_interval: st.1,
            }
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        crate::state_file::write(&self.path, text.as_bytes(), crate::state_file::Mode::Private)
            .map_err(|e| format!("cannot write the external stream state file: {e}"))
    }
}

fn free_id(base: u32, taken: &BTreeSet<u32>, streams: &[ExternalStream]) -> Option<String> {
    let used: BTreeSet<u32> = streams
        .iter()
        .filter_map(|s| crate::ids::parse_camera_id(&s.device))
        .collect();
    (base..=999_999_999)
        .take(100_000)
        .find(|n| !taken.contains(n) && !used.contains(n))
        .map(crate::ids::camera_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated() {
        let ok = validate_url("rtsp://10.0.0.9:5554/subject").unwrap();
        assert_eq!(
            (
                ok.scheme.as_str(),
                ok.host.as_str(),
                ok.port,
                ok.path.as_str(),
                ok.has_credentials
            ),
            ("rtsp", "10.0.0.9", 5554, "/subject", false)
        );
        let ok = validate_url("rtsps://user:p%40ss@cam.local/live?x=1").unwrap();
        assert_eq!(
            (ok.port, ok.has_credentials, ok.path.as_str()),
            (322, true, "/live?x=1")
        );
        assert_eq!(validate_url("rtsp://[::1]:8554/a").unwrap().host, "[::1]");
        assert_eq!(validate_url("RTSP://h").unwrap().path, "/");
        for bad in [
            "",
            "http://h/x",
            "rtsp:/h/x",
            "h:554/x",
            "rtsp://",
            "rtsp:///path",
            "rtsp://h:0/x",
            "rtsp://h:65536/x",
            "rtsp://h:/x",
            "rtsp://h:12a/x",
            "rtsp://h /x",
            "rtsp://h/x y",
            "rtsp://h/x\n",
            "rtsp://h\t/x",
            "rtsp://@h/x",
            "rtsp://:pw@h/x",
            "rtsp://u:pw/x@h/x",
            "rtsp://[::1/x",
            "rtsp://[zz]/x",
            "rtsp://h%20/x",
            "rtsp://h/x#frag",
        ] {
            assert!(validate_url(bad).is_err(), "{bad:?} accepted");
        }
        let e = validate_url("rtsp://user:topsecret@h:99999/x").unwrap_err();
        assert!(!e.contains("topsecret"), "{e}");
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("rtsp://u:secret@10.0.0.1:554/a"),
            "rtsp://***@10.0.0.1:554/a"
        );
        assert_eq!(redact_url("rtsp://u@h/a"), "rtsp://***@h/a");
        assert_eq!(redact_url("rtsp://h:554/a"), "rtsp://h:554/a");
        assert_eq!(redact_url("not a url"), "not a url");
        // Malformed: hide everything up to the last '@'.
        assert_eq!(redact_url("rtsp://u:se/cret@h/a"), "rtsp://***@h/a");
        let url = "rtsp://admin:hunter2@h/a";
        let text = format!("MediaMTX said: invalid source '{url}' (password hunter2)");
        let s = scrub(&text, url);
        assert!(!s.contains("hunter2") && s.contains("rtsp://***@h/a"), "{s}");
        assert_eq!(format!("{:?}", SourceUrl::new(url)), "\"rtsp://***@h/a\"");
    }

    #[test]
    fn store_allocates_persists_and_merges() {
        let dir = std::env::temp_dir().join(format!("cs-ext-{}-{}", std::process::id(), line!()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = ExternalStream {
            device: "camera101".into(),
            url: "rtsp://10.0.0.1:5554/subject".into(),
            name: "eo".into(),
            stream_type: StreamType::SkydioEo,
            origin: Origin::Config,
            added_at: String::new(),
        };
        let taken: BTreeSet<u32> = [100].into_iter().collect();
        let (s, w) = ExternalStore::load(&dir, vec![cfg.clone()], &taken, 100);
        assert!(w.is_empty(), "{w:?}");
        let a = s
            .add(
                "rtsp://u:pw@h/a",
                "a",
                StreamType::GenericRtsp,
                Origin::Api,
                100,
                &taken,
            )
            .unwrap();
        assert_eq!(a.device, "camera102", "100 taken by another camera, 101 configured");
        assert_eq!(
            s.add(
                "rtsp://u:pw@h/a",
                "a",
                StreamType::GenericRtsp,
                Origin::Api,
                100,
                &taken
            ),
            Err(AddError::Duplicate("camera102".into()))
        );
        s.set_discovery_interval(60).unwrap();
        let file = dir.join(STATE_FILE);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("rtsp://u:pw@h/a") && !text.contains("10.0.0.1"), "{text}");
        // Reload; the config now claims camera102's id for another URL.
        let mut cfg2 = cfg.clone();
        cfg2.device = "camera102".into();
        let (s2, w) = ExternalStore::load(&dir, vec![cfg2], &taken, 100);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(s2.by_url("rtsp://u:pw@h/a").unwrap().device, "camera101");
        assert_eq!(s2.discovery_interval(), Some(60));
        assert_eq!(s2.remove("rtsp://u:pw@h/a").unwrap().unwrap().device, "camera101");
        assert_eq!(s2.remove("rtsp://u:pw@h/a").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
