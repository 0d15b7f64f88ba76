//! Typed configuration: TOML file + `CAMERA_SERVICE_<SECTION>_<KEY>` environment overrides,
//! every key with a default, validation errors that name the key and the rule.
//! The reference for every key is `docs/config.md`; `docs/config.example.toml` is the example.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/camera-service/config.toml";
pub const ENV_PREFIX: &str = "CAMERA_SERVICE_";

mod camera;
mod external;
mod media;
mod mediamtx;
mod server;
mod storage;

pub use crate::mavlink::config::MavlinkConfig;
pub use camera::{parse_size, CameraConfig, CameraMonitor, SimulatedCamera};
pub use external::{DiscoveryConfig, ExternalStreamsConfig, StaticExternalStream};
pub use media::{FfmpegConfig, RecordFormat, RecordingConfig, SnapshotConfig, TierList};
pub use mediamtx::MediamtxConfig;
pub use server::{LogLevel, LoggingConfig, SecurityConfig, ServerConfig};
pub use storage::StorageConfig;

/// A duration written as a string in the file (`"30s"`, `"5m"`, `"1h 30m"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); use e.g. \"500ms\", \"30s\", \"5m\", \"1h\""
            ))
        })
    }
}

/// A secret string: never printed by `Debug`, redacted by `check-config`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub security: SecurityConfig,
    pub logging: LoggingConfig,
    pub mediamtx: MediamtxConfig,
    pub camera: CameraConfig,
    pub storage: StorageConfig,
    pub ffmpeg: FfmpegConfig,
    pub recording: RecordingConfig,
    pub snapshot: SnapshotConfig,
    pub external_streams: ExternalStreamsConfig,
    pub discovery: DiscoveryConfig,
    pub mavlink: MavlinkConfig,
}

/// Every problem found, each naming the key (or env var) and the rule it broke.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "config error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const SECTIONS: &[&str] = &[
    "server",
    "security",
    "logging",
    "mediamtx",
    "camera",
    "storage",
    "ffmpeg",
    "recording",
    "snapshot",
    "external_streams",
    "discovery",
    "mavlink",
];

impl Config {
    /// Reads `path` (a missing file at the default path means "all defaults"), applies
    /// environment overrides from `env`, validates.
    pub fn load(
        path: &Path,
        explicit: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => {
                return Err(ConfigErrors(vec![format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )]))
            }
        };
        Config::from_toml_str(&text, env)
    }

    pub fn from_toml_str(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigErrors> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigErrors(vec![format!("TOML syntax: {e}")]))?;
        let mut errors = Vec::new();
        apply_env_overrides(&mut table, env, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigErrors(vec![describe_error(&e)]))?;
        config.validate()?;
        Ok(config)
    }

    /// Every rule of every section; each section checks its own keys (`XConfig::validate`).
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut v = Validator::default();
        self.server.validate(&mut v);
        self.security.validate(&mut v);
        self.mediamtx.validate(&mut v);
        self.camera.validate(&mut v);
        self.camera
            .validate_devices(&mut v, self.external_streams.streams.iter().map(|s| s.id.clone()));
        self.ffmpeg.validate(&mut v);
        self.recording.validate(&mut v);
        self.external_streams.validate(&mut v, &self.camera.simulated);
        self.discovery.validate(&mut v);
        self.snapshot.validate(&mut v);
        self.storage.validate(&mut v);
        v.0.extend(self.mavlink.validate());
        v.finish()
    }

    /// The effective configuration as TOML with secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// An enum-valued key: a name from a fixed set, parsed at load; anything else is rejected
/// then, with the key named (`storage.retention_policy: must be one of age, size, manual`).
fn one_of<'de, D: serde::Deserializer<'de>, T>(
    d: D,
    parse: impl Fn(&str) -> Option<T>,
    names: &str,
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).ok_or_else(|| serde::de::Error::custom(format!("must be one of {names}")))
}

#[derive(Default)]
struct Validator(Vec<String>);

impl Validator {
    fn check(&mut self, ok: bool, key: &str, rule: &str) {
        if !ok {
            self.0.push(format!("{key}: {rule}"));
        }
    }
    fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        self.check(
            (min..=max).contains(&value),
            key,
            &format!("must be between {min} and {max} (got {value})"),
        );
    }
    fn port(&mut self, key: &str, port: u16) {
        self.check(port != 0, key, "must be a TCP port between 1 and 65535");
    }
    fn dur(&mut self, key: &str, d: Dur, min: Duration, max: Duration) {
        self.check(
            d.get() >= min && d.get() <= max,
            key,
            &format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        );
    }
    fn abs_path(&mut self, key: &str, p: &Path) {
        let text = p.to_string_lossy();
        self.check(
            p.is_absolute() && !text.contains('\0') && !p.components().any(|c| c == std::path::Component::ParentDir),
            key,
            "must be an absolute path without '..'",
        );
    }
    fn finish(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

/// `CAMERA_SERVICE_SERVER_PORT=9000` → `server.port = 9000`. The value is read as a TOML
/// value when it parses as one (numbers, booleans, arrays), else as a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    errors: &mut Vec<String>,
) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| lower.starts_with(&format!("{s}_"))) else {
            errors.push(format!("{name}: unknown section; environment overrides look like {ENV_PREFIX}<SECTION>_<KEY> with SECTION one of {}", SECTIONS.join(", ")));
            continue;
        };
        let key = &lower[section.len() + 1..];
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"));
        let value = parsed.unwrap_or(toml::Value::String(value));
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key.to_string(), value);
            }
            _ => errors.push(format!("{section}: must be a table")),
        }
    }
}

/// toml renders the key path as a trailing "in `server.port`" line; put it first, as
/// every other config error does: `server.port: invalid value: integer `70000`, expected u16`.
fn describe_error(e: &toml::de::Error) -> String {
    match split_error(e) {
        // An entry of an array of tables names itself (`[1].type: ...`, see `entries`).
        (Some(path), what) if what.starts_with('[') => format!("{path}{what}"),
        (Some(path), what) => format!("{path}: {what}"),
        (None, what) => what,
    }
}

/// (key path if toml gives one, message on one line).
fn split_error(e: &toml::de::Error) -> (Option<String>, String) {
    let text = e.to_string();
    let mut lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let path = lines
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
        .map(String::from);
    if path.is_some() {
        lines.pop();
    }
    (path, lines.join(" "))
}

/// An array of tables read entry by entry, so that an error names its entry
/// (`external_streams.streams[1].type: ...`) where toml alone says `external_streams.streams.type`.
fn entries<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<toml::Value>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            entry.try_into().map_err(|e: toml::de::Error| {
                serde::de::Error::custom(match split_error(&e) {
                    (Some(path), what) => format!("[{i}].{path}: {what}"),
                    (None, what) => format!("[{i}]: {what}"),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external::StreamType;
    use crate::media::snapshot::Tier;
    use crate::storage::retention::PolicyType;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::from_toml_str(text, env.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.port, 8002);
        assert_eq!(c.server.ping_interval.get(), Duration::from_secs(30));
        assert_eq!(c.camera.external_id_base, 100);
    }

    #[test]
    fn env_overrides_file_and_types_values() {
        let c = load(
            "[server]\nport = 9000\n",
            &[
                ("CAMERA_SERVICE_SERVER_PORT", "9100"),
                ("CAMERA_SERVICE_SECURITY_ALLOWED_ORIGINS", "[\"https://gcs.local\"]"),
                ("CAMERA_SERVICE_MEDIAMTX_PUBLIC_HOST", "10.0.0.5"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.port, 9100);
        assert_eq!(c.security.allowed_origins, vec!["https://gcs.local"]);
        assert_eq!(c.mediamtx.public_host, "10.0.0.5");
    }

    #[test]
    fn unknown_keys_and_sections_are_named() {
        let e = load("[server]\nprot = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
        let e = load("[serverx]\n", &[]).unwrap_err().to_string();
        assert!(e.contains("serverx"), "{e}");
        let e = load("", &[("CAMERA_SERVICE_NOPE_X", "1")]).unwrap_err().to_string();
        assert!(e.contains("CAMERA_SERVICE_NOPE_X"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_rule() {
        let e = load("[server]\nmax_connections = 0\nping_interval = \"soon\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ping_interval") || e.contains("soon"), "{e}");
        let e = load("[server]\nmax_connections = 0\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains("server.max_connections: must be between 1 and 100000"),
            "{e}"
        );
        let e = load(
            "[storage]\nrecordings_dir = \"rel/dir\"\n[security]\njwt_secret = \"short\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("storage.recordings_dir: must be an absolute path"), "{e}");
        assert!(e.contains("security.jwt_secret: must be at least 32 bytes"), "{e}");
        let e = load("[server]\nport = 70000\n", &[]).unwrap_err().to_string();
        assert!(e.contains("server.port: invalid value"), "{e}");
        let e = load("[[camera.simulated]]\nid = \"cam5\"\nsize = \"641x480\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("camera.simulated[0].id") && e.contains("camera.simulated[0].size"),
            "{e}"
        );
    }

    #[test]
    fn snapshot_section_is_validated_by_key() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.snapshot.tiers.len(), 4);
        assert_eq!(c.snapshot.default_quality, 85);
        let c = load("[snapshot]\ntiers = [\"rtsp_activation\"]\nwarmup_frames = 0\n", &[]).unwrap();
        assert_eq!(c.snapshot.tiers[..], [Tier::RtspActivation]);
        let e = load(
            "[snapshot]\ntiers = [\"v4l2_direct\", \"tier9\", \"v4l2_direct\"]\ndefault_quality = 0\nv4l2_direct_timeout = \"1ms\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        for key in [
            "snapshot.tiers[1]",
            "snapshot.tiers[2]: must not repeat",
            "snapshot.default_quality",
            "snapshot.v4l2_direct_timeout",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = load("[snapshot]\ntiers = []\n", &[]).unwrap_err().to_string();
        assert!(e.contains("snapshot.tiers: must name at least one tier"), "{e}");
        let c = load("", &[("CAMERA_SERVICE_SNAPSHOT_WARMUP_FRAMES", "7")]).unwrap();
        assert_eq!(c.snapshot.warmup_frames, 7);
        assert!(c.snapshot.frame_tap);
        assert!(!load("[snapshot]\nframe_tap = false\n", &[]).unwrap().snapshot.frame_tap);
    }

    #[test]
    fn enum_keys_are_parsed_at_load_and_named_when_wrong() {
        let c = load(
            "[logging]\nlevel = \"DEBUG\"\n[storage]\nretention_policy = \"age\"\n\
             [[external_streams.streams]]\nid = \"camera120\"\nurl = \"rtsp://10.0.0.9/a\"\ntype = \"skydio_ir\"\n\
             [[external_streams.streams]]\nid = \"camera121\"\nurl = \"rtsp://10.0.0.9/b\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.logging.level, LogLevel::Debug);
        assert_eq!(c.logging.level.filter(), log::LevelFilter::Debug);
        assert_eq!(c.storage.retention_policy, PolicyType::Age);
        let types: Vec<_> = c.external_streams.streams.iter().map(|s| s.stream_type).collect();
        assert_eq!(types, [StreamType::SkydioIr, StreamType::GenericRtsp]);
        assert_eq!(load("", &[]).unwrap().logging.level, LogLevel::Info);
        assert_eq!(load("", &[]).unwrap().storage.retention_policy, PolicyType::Manual);
        let out = c.to_redacted_toml();
        for line in [
            "level = \"debug\"",
            "retention_policy = \"age\"",
            "type = \"skydio_ir\"",
        ] {
            assert!(out.contains(line), "{line}: {out}");
        }

        for (text, want) in [
            (
                "[logging]\nlevel = \"loud\"\n",
                "logging.level: must be one of off, error, warn, info, debug, trace",
            ),
            (
                "[storage]\nretention_policy = \"weekly\"\n",
                "storage.retention_policy: must be one of age, size, manual",
            ),
            (
                "[[external_streams.streams]]\nid = \"camera120\"\nurl = \"rtsp://h/a\"\ntype = \"thermal\"\n",
                "external_streams.streams[0].type: must be one of generic_rtsp, skydio_eo, skydio_ir",
            ),
            (
                "[[external_streams.streams]]\nid = \"camera120\"\nurl = \"rtsp://h/a\"\n\
                 [[external_streams.streams]]\nid = \"camera121\"\nurl = \"rtsp://h/b\"\ncolour = \"red\"\n",
                "external_streams.streams[1]: unknown field `colour`",
            ),
        ] {
            let e = load(text, &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = load("", &[("CAMERA_SERVICE_STORAGE_RETENTION_POLICY", "sometimes")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.retention_policy: must be one of"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let c = load(
            "[security]\njwt_secret = \"0123456789abcdef0123456789abcdef-secret\"\n",
            &[],
        )
        .unwrap();
        let out = c.to_redacted_toml();
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(out.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }
}
