//! `[ffmpeg]`, `[recording]`, `[snapshot]`: producing and keeping media.

use super::{Dur, Validator};
use crate::media::snapshot::Tier;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FfmpegConfig {
    /// FFmpeg used for camera publishers (run by MediaMTX), keepalive readers and snapshots.
    pub path: String,
    /// H.264 encoder of V4L2/simulated publishers: libx264, or a hardware one (h264_v4l2m2m, ...).
    pub encoder: String,
    /// Extra encoder options, split on whitespace (default: fast, low-latency x264).
    pub encoder_options: String,
    /// Target bitrate (FFmpeg syntax) or "" for the encoder's default.
    pub bitrate: String,
    /// SIGINT → SIGKILL delay when stopping our FFmpeg children.
    pub stop_timeout: Dur,
    /// A child that reports no progress this long is restarted.
    pub stall_timeout: Dur,
}

impl Default for FfmpegConfig {
    fn default() -> Self {
        FfmpegConfig {
            path: "ffmpeg".into(),
            encoder: "libx264".into(),
            encoder_options: "-preset ultrafast -tune zerolatency".into(),
            bitrate: String::new(),
            stop_timeout: Dur::secs(3),
            stall_timeout: Dur::secs(10),
        }
    }
}

impl FfmpegConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.check(
            !self.path.trim().is_empty() && !self.path.contains(char::is_whitespace),
            "ffmpeg.path",
            "must be a program name or path without spaces",
        );
        v.check(
            !self.encoder.is_empty() && self.encoder.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "ffmpeg.encoder",
            "must be an FFmpeg encoder name such as libx264 or h264_v4l2m2m",
        );
        v.check(
            !self.encoder_options.contains(['"', '\'', '$', '`']),
            "ffmpeg.encoder_options",
            "must not contain quotes, '$' or backquotes",
        );
        v.check(
            self.bitrate.is_empty() || self.bitrate.trim_end_matches(['k', 'K', 'M']).parse::<u32>().is_ok(),
            "ffmpeg.bitrate",
            "must be empty or like 2M / 800k",
        );
        v.dur(
            "ffmpeg.stop_timeout",
            self.stop_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        v.dur(
            "ffmpeg.stall_timeout",
            self.stall_timeout,
            Duration::from_secs(1),
            Duration::from_secs(600),
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    Fmp4,
    Mpegts,
}

impl RecordFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordFormat::Fmp4 => "fmp4",
            RecordFormat::Mpegts => "mpegts",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Fmp4 => "mp4",
            RecordFormat::Mpegts => "ts",
        }
    }
    pub fn parse(s: &str) -> Option<RecordFormat> {
        match s {
            "fmp4" => Some(RecordFormat::Fmp4),
            "mpegts" => Some(RecordFormat::Mpegts),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    pub default_format: RecordFormat,
    /// `start_recording` returns once the first segment exists, or rolls back after this.
    pub start_timeout: Dur,
    /// MediaMTX `recordSegmentDuration`: a new file after this much media.
    pub segment_duration: Dur,
    /// MediaMTX `recordPartDuration`: media at risk on power loss.
    pub part_duration: Dur,
    /// Period of `recording.progress` events and of the growth/space checks.
    pub progress_interval: Dur,
    /// Segment files not growing this long → `recording.error` (`source_lost`).
    pub stall_timeout: Dur,
    /// MediaMTX `runOnDemandStartTimeout` / `sourceOnDemandStartTimeout` of camera paths.
    pub on_demand_start_timeout: Dur,
    /// MediaMTX `runOnDemandCloseAfter` / `sourceOnDemandCloseAfter`: reported as `auto_close_after`.
    pub on_demand_close_after: Dur,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            default_format: RecordFormat::Fmp4,
            start_timeout: Dur::secs(5),
            segment_duration: Dur::secs(3600),
            part_duration: Dur::secs(1),
            progress_interval: Dur::secs(5),
            stall_timeout: Dur::secs(15),
            on_demand_start_timeout: Dur::secs(10),
            on_demand_close_after: Dur::secs(10),
        }
    }
}

impl RecordingConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.dur(
            "recording.start_timeout",
            self.start_timeout,
            Duration::from_millis(500),
            Duration::from_secs(120),
        );
        v.dur(
            "recording.segment_duration",
            self.segment_duration,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        );
        v.dur(
            "recording.part_duration",
            self.part_duration,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        v.dur(
            "recording.progress_interval",
            self.progress_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        v.dur(
            "recording.stall_timeout",
            self.stall_timeout,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        v.dur(
            "recording.on_demand_start_timeout",
            self.on_demand_start_timeout,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        v.dur(
            "recording.on_demand_close_after",
            self.on_demand_close_after,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
    }
}

/// `[snapshot]`: the capture tiers of `take_snapshot` (api.md §6, docs/config.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Tiers tried in this order; leave one out to disable it. Names: v4l2_direct,
    /// ffmpeg_direct, rtsp_immediate, rtsp_activation.
    pub tiers: TierList,
    /// Tier 0 budget (open, set format, warm-up frames, one frame).
    pub v4l2_direct_timeout: Dur,
    /// Tier 1 budget (FFmpeg start, device open, warm-up, one frame).
    pub ffmpeg_direct_timeout: Dur,
    /// Tier 2 budget (FFmpeg reading the running MediaMTX stream).
    pub rtsp_immediate_timeout: Dur,
    /// Tier 3 budget (on-demand publisher start plus the read).
    pub rtsp_activation_timeout: Dur,
    /// Frames dropped before the kept one in the device tiers (cold webcams deliver dark
    /// first frames while auto-exposure settles).
    pub warmup_frames: u32,
    /// JPEG quality when the request gives none (1..100).
    pub default_quality: u8,
    /// Size limits applied when the request gives none (0 = none); aspect ratio is kept.
    pub max_width: u32,
    pub max_height: u32,
    /// Keep a frame tap (one FFmpeg copy reader and a waiting decoder, about 21 MB private
    /// memory) per streaming or recording camera, so that its photos take one frame time;
    /// off = such photos go through the tiers (a new RTSP read each).
    pub frame_tap: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            tiers: TierList::new(Tier::ALL.to_vec()),
            v4l2_direct_timeout: Dur::secs(3),
            ffmpeg_direct_timeout: Dur::secs(10),
            rtsp_immediate_timeout: Dur::secs(8),
            rtsp_activation_timeout: Dur::secs(20),
            warmup_frames: 3,
            default_quality: 85,
            max_width: 0,
            max_height: 0,
            frame_tap: true,
        }
    }
}

impl SnapshotConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        let names = &self.tiers.names;
        v.check(!names.is_empty(), "snapshot.tiers", "must name at least one tier");
        for (i, t) in names.iter().enumerate() {
            v.check(
                t.is_ok(),
                &format!("snapshot.tiers[{i}]"),
                "must be one of v4l2_direct, ffmpeg_direct, rtsp_immediate, rtsp_activation",
            );
            v.check(
                !names[..i].contains(t),
                &format!("snapshot.tiers[{i}]"),
                "must not repeat a tier",
            );
        }
        for (key, d) in [
            ("snapshot.v4l2_direct_timeout", self.v4l2_direct_timeout),
            ("snapshot.ffmpeg_direct_timeout", self.ffmpeg_direct_timeout),
            ("snapshot.rtsp_immediate_timeout", self.rtsp_immediate_timeout),
            ("snapshot.rtsp_activation_timeout", self.rtsp_activation_timeout),
        ] {
            v.dur(key, d, Duration::from_millis(100), Duration::from_secs(300));
        }
        v.range("snapshot.warmup_frames", self.warmup_frames as u64, 0, 100);
        v.range("snapshot.default_quality", self.default_quality as u64, 1, 100);
        v.range("snapshot.max_width", self.max_width as u64, 0, 16384);
        v.range("snapshot.max_height", self.max_height as u64, 0, 16384);
    }
}

/// `snapshot.tiers`: the names are parsed into [`Tier`]s at load. An unknown name is kept,
/// with its position, only so that validation reports it (`snapshot.tiers[1]: ...`) together
/// with every other problem; a validated config has none, and derefs to exactly its tiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierList {
    /// As written, in order: a tier, or the unknown name.
    names: Vec<Result<Tier, String>>,
    tiers: Vec<Tier>,
}

impl TierList {
    pub fn new(tiers: Vec<Tier>) -> TierList {
        TierList {
            names: tiers.iter().copied().map(Ok).collect(),
            tiers,
        }
    }
}

impl std::ops::Deref for TierList {
    type Target = [Tier];
    fn deref(&self) -> &[Tier] {
        &self.tiers
    }
}

impl Serialize for TierList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names.iter().map(|n| match n {
            Ok(t) => t.as_str(),
            Err(name) => name.as_str(),
        }))
    }
}

impl<'de> Deserialize<'de> for TierList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<Result<Tier, String>> = Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|n| Tier::parse(&n).ok_or(n))
            .collect();
        let tiers = names.iter().filter_map(|n| n.as_ref().ok().copied()).collect();
        Ok(TierList { names, tiers })
    }
}
