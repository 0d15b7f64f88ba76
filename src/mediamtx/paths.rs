//! One MediaMTX path per camera (`cameraN`), created with `replace` (an idempotent upsert).
//! The manager keeps the desired configuration of every path, so that after a MediaMTX
//! restart (API changes live in RAM only) all paths, recording flags included, are re-applied.

use super::client::{Client, MtxError};
use super::types::{Path, PathConf};
use crate::config::{Config, Dur, RecordFormat};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a camera's stream comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Publisher {
    /// A V4L2 node captured by FFmpeg (started by MediaMTX on demand).
    V4l2 {
        device: PathBuf,
        input_format: Option<String>,
        width: u32,
        height: u32,
        fps: u32,
        /// Per-camera encoding overrides (`set_camera_settings`).
        encode: Encode,
    },
    /// A lavfi test pattern (simulated cameras).
    Lavfi {
        pattern: String,
        width: u32,
        height: u32,
        fps: u32,
    },
    /// An external RTSP/RTSPS source pulled by MediaMTX.
    Url { url: String },
}

/// Encoding overrides of one camera; `None` = the `[ffmpeg]` config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encode {
    /// `-b:v`.
    pub bitrate: Option<String>,
    /// `-g` / `-keyint_min` in frames (default: the frame rate, one key frame a second).
    pub gop: Option<u32>,
    /// `-c:v`; another encoder than `ffmpeg.encoder` drops `ffmpeg.encoder_options`.
    pub encoder: Option<String>,
}

/// Recording fields of a path while it records.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSettings {
    pub path_template: String,
    pub format: RecordFormat,
}

fn go_duration(d: Dur) -> String {
    let ms = d.get().as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `-f v4l2 -input_format` name for a V4L2 FourCC, when FFmpeg knows it by another name.
pub fn ffmpeg_input_format(fourcc: &str) -> Option<&'static str> {
    match fourcc {
        "MJPG" | "JPEG" => Some("mjpeg"),
        "YUYV" => Some("yuyv422"),
        "UYVY" => Some("uyvy422"),
        "NV12" => Some("nv12"),
        "YU12" => Some("yuv420p"),
        "RGB3" => Some("rgb24"),
        "BGR3" => Some("bgr24"),
        "H264" => Some("h264"),
        _ => None,
    }
}

/// Bits of the frame counter drawn into simulated cameras' pictures.
pub const COUNTER_BITS: u32 = 16;

/// The frame number drawn into the top of a simulated camera's picture as a row of
/// [`COUNTER_BITS`] square blocks of `width / 16` pixels on a black strip, least significant
/// bit left, white = 1: tests read back which frame a photo shows (no font needed). The
/// expressions avoid commas and quotes (the command is split by MediaMTX without a shell).
pub fn frame_counter(width: u32) -> String {
    let b = (width / COUNTER_BITS).max(2);
    let mut s = format!(",drawbox=x=0:y=0:w={}:h={b}:color=black:t=fill", b * COUNTER_BITS);
    for k in 0..COUNTER_BITS {
        s.push_str(&format!(
            ",drawbox=x={}:y=0:w={b}:h={b}:color=white:t=fill:enable=trunc(n/{})-2*trunc(n/{})",
            k * b,
            1u64 << k,
            2u64 << k
        ));
    }
    s
}

/// The publisher command MediaMTX runs on demand (split shell-style by MediaMTX, no shell;
/// `$RTSP_PORT` and `$MTX_PATH` are filled in by MediaMTX).
pub fn publisher_command(cfg: &Config, p: &Publisher) -> Option<String> {
    let f = &cfg.ffmpeg;
    let none = Encode::default();
    let (input, fps, encode) = match p {
        Publisher::V4l2 {
            device,
            input_format,
            width,
            height,
            fps,
            encode,
        } => {
            let fmt = input_format
                .as_deref()
                .map(|f| format!("-input_format {f} "))
                .unwrap_or_default();
            (
                format!(
                    "-f v4l2 {fmt}-video_size {width}x{height} -framerate {fps} -i {}",
                    device.display()
                ),
                *fps,
                encode,
            )
        }
        Publisher::Lavfi {
            pattern,
            width,
            height,
            fps,
        } => (
            format!(
                "-re -f lavfi -i {pattern}=size={width}x{height}:rate={fps}{}",
                frame_counter(*width)
            ),
            *fps,
            &none,
        ),
        Publisher::Url { .. } => return None,
    };
    let bitrate = encode.bitrate.as_deref().unwrap_or(&f.bitrate);
    let bitrate = if bitrate.is_empty() {
        String::new()
    } else {
        format!(" -b:v {bitrate}")
    };
    // GOP = fps by default: a new segment or a snapshot never waits more than a second for
    // a keyframe.
    let gop = encode.gop.unwrap_or(fps);
    let (encoder, options) = match &encode.encoder {
        Some(e) if *e != f.encoder => (e.as_str(), ""),
        _ => (f.encoder.as_str(), f.encoder_options.as_str()),
    };
    Some(format!(
        "{} -hide_banner -loglevel error {input} -c:v {encoder} {options} -pix_fmt yuv420p -g {gop} -keyint_min {gop}{bitrate} -f rtsp -rtsp_transport tcp rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH",
        f.path
    ))
}

/// The full path configuration for a camera (sent with `replace`).
pub fn path_conf(cfg: &Config, p: &Publisher, record: Option<&RecordSettings>) -> PathConf {
    let r = &cfg.recording;
    let mut c = PathConf {
        record_delete_after: Some("0s".into()),
        record: Some(record.is_some()),
        ..Default::default()
    };
    match p {
        Publisher::Url { url } => {
            c.source = Some(url.clone());
            c.rtsp_transport = Some("tcp".into());
            c.source_on_demand = Some(true);
            c.source_on_demand_start_timeout = Some(go_duration(r.on_demand_start_timeout));
            c.source_on_demand_close_after = Some(go_duration(r.on_demand_close_after));
        }
        _ => {
            c.source = Some("publisher".into());
            c.run_on_demand = publisher_command(cfg, p);
            c.run_on_demand_restart = Some(true);
            c.run_on_demand_start_timeout = Some(go_duration(r.on_demand_start_timeout));
            c.run_on_demand_close_after = Some(go_duration(r.on_demand_close_after));
        }
    }
    if let Some(rec) = record {
        c.record_path = Some(rec.path_template.clone());
        c.record_format = Some(rec.format.as_str().into());
        c.record_segment_duration = Some(go_duration(r.segment_duration));
        c.record_part_duration = Some(go_duration(r.part_duration));
    }
    c
}

/// MediaMTX `recordPath` for a camera: `<recordings_dir>/%path/cameraN_%Y-%m-%d_%H-%M-%S-%f`
/// (camera id written literally once; `%path` only as the folder).
pub fn record_path_template(cfg: &Config, camera: &str) -> String {
    format!(
        "{}/%path/{camera}_%Y-%m-%d_%H-%M-%S-%f",
        cfg.storage.recordings_dir.display()
    )
}

#[derive(Clone, Debug)]
struct Desired {
    publisher: Publisher,
    record: Option<RecordSettings>,
}

/// Result of one health probe.
#[derive(Debug, PartialEq)]
pub enum Probe {
    Healthy { version: String, reapplied: usize },
    Unreachable(String),
}

pub struct PathManager {
    client: Arc<Client>,
    config: Arc<Config>,
    desired: Mutex<HashMap<String, Desired>>,
    locks: Mutex<HashMap<String, Arc<async_lock::Mutex<()>>>>,
    started: Mutex<Option<String>>,
}

impl PathManager {
    pub fn new(client: Arc<Client>, config: Arc<Config>) -> PathManager {
        PathManager {
            client,
            config,
            desired: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            started: Mutex::new(None),
        }
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Per-path lock: operations on one camera are serialised, different cameras run freely.
    pub fn lock(&self, name: &str) -> Arc<async_lock::Mutex<()>> {
        self.locks.lock().unwrap().entry(name.to_string()).or_default().clone()
    }

    fn conf_of(&self, d: &Desired, name: &str) -> PathConf {
        let _ = name;
        path_conf(&self.config, &d.publisher, d.record.as_ref())
    }

    /// Makes the path exist with this publisher (keeping its recording settings). Cheap
    /// when nothing changed: one GET, no reload in MediaMTX.
    pub async fn ensure(&self, name: &str, publisher: Publisher) -> Result<(), MtxError> {
        let desired = {
            let mut map = self.desired.lock().unwrap();
            let record = map.get(name).and_then(|d| d.record.clone());
            let d = Desired { publisher, record };
            map.insert(name.to_string(), d.clone());
            d
        };
        let conf = self.conf_of(&desired, name);
        let n = name.to_string();
        self.client
            .run(move |c| {
                let current = c.get_path_conf(&n)?;
                if current.as_ref().is_some_and(|cur| matches_desired(cur, &conf)) {
                    return Ok(());
                }
                c.replace_path(&n, &conf)
            })
            .await
    }

    /// Turns recording on (`Some`) or off (`None`) with a PATCH: MediaMTX hot-reloads record
    /// fields without dropping readers.
    pub async fn set_record(&self, name: &str, record: Option<RecordSettings>) -> Result<(), MtxError> {
        let patch = {
            let mut map = self.desired.lock().unwrap();
            let d = map
                .get_mut(name)
                .ok_or_else(|| MtxError::NotFound(format!("path {name} not managed")))?;
            d.record = record.clone();
            let full = path_conf(&self.config, &d.publisher, record.as_ref());
            PathConf {
                record: full.record,
                record_path: full.record_path,
                record_format: full.record_format,
                record_segment_duration: full.record_segment_duration,
                record_part_duration: full.record_part_duration,
                record_delete_after: full.record_delete_after,
                ..Default::default()
            }
        };
        let n = name.to_string();
        let full = { self.conf_of(self.desired.lock().unwrap().get(name).expect("set above"), name) };
        self.client
            .run(move |c| match c.patch_path(&n, &patch) {
                // MediaMTX lost it (restart): recreate it whole.
                Err(MtxError::NotFound(_)) => c.replace_path(&n, &full),
                other => other,
            })
            .await
    }

    pub fn is_recording(&self, name: &str) -> bool {
        self.desired
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|d| d.record.is_some())
    }

    /// Forgets and deletes the path.
    pub async fn remove(&self, name: &str) -> Result<(), MtxError> {
        self.desired.lock().unwrap().remove(name);
        let n = name.to_string();
        self.client.run(move |c| c.delete_path(&n)).await
    }

    pub async fn runtime(&self, name: &str) -> Result<Option<Path>, MtxError> {
        let n = name.to_string();
        self.client.run(move |c| c.get_path(&n)).await
    }

    /// Adopts the recording state MediaMTX has for a path (after our own restart).
    pub async fn read_back(&self, name: &str) -> Result<Option<PathConf>, MtxError> {
        let n = name.to_string();
        self.client.run(move |c| c.get_path_conf(&n)).await
    }

    /// Re-records desired recording settings without calling MediaMTX (state read back).
    pub fn adopt_record(&self, name: &str, publisher: Publisher, record: Option<RecordSettings>) {
        self.desired
            .lock()
            .unwrap()
            .insert(name.to_string(), Desired { publisher, record });
    }

    /// `/v3/info` probe: notices a restart (`started` changed) or paths gone missing and
    /// re-applies every managed path.
    pub async fn probe(&self) -> Probe {
        let info = match self.client.run(|c| c.info()).await {
            Ok(i) => i,
            Err(e) => return Probe::Unreachable(e.to_string()),
        };
        let restarted = {
            let mut s = self.started.lock().unwrap();
            let changed = s.as_deref().is_some_and(|old| old != info.started);
            *s = Some(info.started.clone());
            changed
        };
        let wanted: Vec<(String, PathConf)> = {
            let map = self.desired.lock().unwrap();
            map.iter().map(|(n, d)| (n.clone(), self.conf_of(d, n))).collect()
        };
        if wanted.is_empty() {
            return Probe::Healthy {
                version: info.version,
                reapplied: 0,
            };
        }
        let result = self
            .client
            .run(move |c| {
                let present: std::collections::HashSet<String> =
                    c.list_path_confs()?.into_iter().filter_map(|p| p.name).collect();
                let mut n = 0;
                for (name, conf) in wanted {
                    if restarted || !present.contains(&name) {
                        c.replace_path(&name, &conf)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await;
        match result {
            Ok(n) => {
                if n > 0 {
                    log::warn!(
                        "MediaMTX {} (restart detected: {restarted}); re-applied {n} camera path(s)",
                        info.version
                    );
                }
                Probe::Healthy {
                    version: info.version,
                    reapplied: n,
                }
            }
            Err(e) => Probe::Unreachable(e.to_string()),
        }
    }
}

/// Whether MediaMTX's effective configuration already has every field we would send.
fn matches_desired(current: &PathConf, desired: &PathConf) -> bool {
    let (Ok(serde_json::Value::Object(cur)), Ok(serde_json::Value::Object(want))) =
        (serde_json::to_value(current), serde_json::to_value(desired))
    else {
        return false;
    };
    want.iter().all(|(k, v)| match (cur.get(k), v) {
        (Some(c), v) if c == v => true,
        // Go renders durations its own way ("10s" vs "10s", "1h" vs "1h0m0s"): compare parsed.
        (Some(serde_json::Value::String(c)), serde_json::Value::String(w)) => same_duration(c, w),
        _ => false,
    })
}

fn same_duration(a: &str, b: &str) -> bool {
    matches!((mtx_duration(a), mtx_duration(b)), (Some(x), Some(y)) if x == y)
}

/// A duration as MediaMTX v1.20.1 writes and reads it (conf.Duration): an optional leading
/// `<N>d`, then a Go duration (`1h0m0s`, `1.5s`, `200ms`); `""` is zero. Nanoseconds.
fn mtx_duration(s: &str) -> Option<i128> {
    let (days, rest) = match s.find('d') {
        Some(i) if i > 0 && s[..i].bytes().all(|c| c.is_ascii_digit()) => (s[..i].parse::<i128>().ok()?, &s[i + 1..]),
        _ => (0, s),
    };
    let mut total = days * 86_400_000_000_000;
    if rest.is_empty() || rest == "0" {
        return Some(total);
    }
    let mut r = rest;
    while !r.is_empty() {
        let num_len = r.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(r.len());
        let unit_len = r[num_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(r.len() - num_len);
        let (num, unit) = (&r[..num_len], &r[num_len..num_len + unit_len]);
        let mult: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        total += int.parse::<i128>().unwrap_or(0) * mult;
        let mut scale = mult;
        for c in frac.bytes() {
            scale /= 10;
            total += i128::from(c - b'0') * scale;
        }
        r = &r[num_len + unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_compare_as_mediamtx_renders_them() {
        // MediaMTX v1.20.1 renders zero as "", whole days as "1d", the rest Go-style
        assert!(same_duration("", "0s"));
        assert!(same_duration("1h0m0s", "3600s"));
        assert!(same_duration("1d", "86400s"));
        assert!(same_duration("1d1h0m0s", "90000s"));
        assert!(same_duration("1.5s", "1500ms"));
        assert!(same_duration("10s", "10s"));
        assert!(!same_duration("10s", "1s"));
        assert!(!same_duration("soon", "soon"));
    }

    #[test]
    fn camera_paths_follow_the_integration_contract() {
        let cfg = Config::default();
        let sim = Publisher::Lavfi {
            pattern: "testsrc2".into(),
            width: 640,
            height: 480,
            fps: 15,
        };
        let c = path_conf(&cfg, &sim, None);
        assert_eq!(c.source.as_deref(), Some("publisher"));
        assert_eq!(c.record_delete_after.as_deref(), Some("0s"));
        assert_eq!(c.run_on_demand_restart, Some(true));
        let cmd = c.run_on_demand.unwrap();
        assert!(
            cmd.contains("-f lavfi -i testsrc2=size=640x480:rate=15")
                && cmd.contains("-g 15")
                && cmd.ends_with("rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH"),
            "{cmd}"
        );
        let v4l = Publisher::V4l2 {
            device: "/dev/video0".into(),
            input_format: Some("mjpeg".into()),
            width: 1280,
            height: 720,
            fps: 30,
            encode: Encode::default(),
        };
        let cmd = publisher_command(&cfg, &v4l).unwrap();
        assert!(
            cmd.contains("-f v4l2 -input_format mjpeg -video_size 1280x720 -framerate 30 -i /dev/video0")
                && cmd.contains("-c:v libx264 -preset ultrafast -tune zerolatency"),
            "{cmd}"
        );
        // Per-camera overrides (set_camera_settings): another encoder drops the options.
        let tuned = Publisher::V4l2 {
            device: "/dev/video0".into(),
            input_format: None,
            width: 640,
            height: 360,
            fps: 30,
            encode: Encode {
                bitrate: Some("800k".into()),
                gop: Some(60),
                encoder: Some("h264_v4l2m2m".into()),
            },
        };
        let cmd = publisher_command(&cfg, &tuned).unwrap();
        assert!(
            cmd.contains("-c:v h264_v4l2m2m  -pix_fmt") && cmd.contains("-g 60 -keyint_min 60 -b:v 800k"),
            "{cmd}"
        );
        let ext = path_conf(
            &cfg,
            &Publisher::Url {
                url: "rtsp://10.0.0.9:5554/subject".into(),
            },
            None,
        );
        assert_eq!(
            (
                ext.source.as_deref(),
                ext.rtsp_transport.as_deref(),
                ext.source_on_demand
            ),
            (Some("rtsp://10.0.0.9:5554/subject"), Some("tcp"), Some(true))
        );
        assert!(ext.run_on_demand.is_none());
        let rec = RecordSettings {
            path_template: record_path_template(&cfg, "camera3"),
            format: RecordFormat::Mpegts,
        };
        let c = path_conf(&cfg, &sim, Some(&rec));
        assert_eq!(c.record, Some(true));
        assert_eq!(
            c.record_path.as_deref(),
            Some("/var/lib/camera-service/recordings/%path/camera3_%Y-%m-%d_%H-%M-%S-%f")
        );
        assert_eq!(
            (
                c.record_format.as_deref(),
                c.record_segment_duration.as_deref(),
                c.record_part_duration.as_deref()
            ),
            (Some("mpegts"), Some("3600s"), Some("1s"))
        );
    }

    #[test]
    fn go_durations_compare_equal() {
        assert!(same_duration("1h0m0s", "3600s"));
        assert!(same_duration("10s", "10s"));
        assert!(same_duration("0s", "0s"));
        assert!(!same_duration("10s", "5s"));
        let want = PathConf {
            record_segment_duration: Some("3600s".into()),
            record: Some(false),
            ..Default::default()
        };
        let cur = PathConf {
            record_segment_duration: Some("1h0m0s".into()),
            record: Some(false),
            source: Some("publisher".into()),
            ..Default::default()
        };
        assert!(matches_desired(&cur, &want));
    }
}
