//! `alwaysAvailable`: while no publisher is there, the path carries an offline stream.
//! MediaMTX generates it inside its stream (a looped 1920x1080 30 fps "STREAM IS OFFLINE"
//! clip per video codec, silence per audio codec, or `alwaysAvailableFile` looped); here an
//! ffmpeg child generates the same kinds of tracks (black picture, silence) or loops the
//! file, and publishes them into the double as an internal "offline" publisher that a
//! real publisher replaces.

use crate::core::{PathRt, Shared};
use serde_json::Value;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause before the generator is started again after it stopped on its own.
const RESTART_PAUSE: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Offline {
    pub pid: Option<i32>,
    retry_at: Option<Instant>,
    /// the tracks of `alwaysAvailableFile`, read once per path configuration as
    /// MediaMTX reads them when the path starts
    file_tracks: Option<Result<Vec<OfflineTrack>, String>>,
}

/// A track of the offline stream, that publishers must bring.
#[derive(Clone, Debug)]
pub struct OfflineTrack {
    /// its stream index in `alwaysAvailableFile` (ffmpeg's `-map 0:N`)
    pub index: usize,
    /// formatlabel's name
    pub codec: String,
    /// mediasAreCompatible's name and formatted configuration, for the audio codecs whose
    /// configuration it compares
    pub audio: Option<(&'static str, String)>,
}

/// URL path marker of the generator's ANNOUNCE (path names cannot start with `~`).
pub const MARK: &str = "~offline/";

fn tracks(p: &PathRt) -> Vec<Value> {
    p.conf
        .get("alwaysAvailableTracks")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// The offline stream's tracks: those of `alwaysAvailableFile`, or the configured ones
/// as mediasFromAlwaysAvailableTracks builds them (AAC-LC, 16-bit LPCM).
fn offline_tracks(p: &mut PathRt) -> Result<Vec<OfflineTrack>, String> {
    let file = p.s("alwaysAvailableFile");
    if !file.is_empty() {
        return p
            .offline
            .file_tracks
            .get_or_insert_with(|| crate::always_available_file::tracks(&file))
            .clone();
    }
    Ok(tracks(p)
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let n = |k: &str| t[k].as_u64().unwrap_or(0) as u32;
            let codec = t["codec"].as_str().unwrap_or("");
            let audio = match codec {
                "MPEG4Audio" => Some((
                    "MPEG-4 audio",
                    format!(
                        "type=2, sampleRate={}, channelCount={}",
                        n("sampleRate"),
                        n("channelCount")
                    ),
                )),
                "G711" => Some((
                    "G711",
                    crate::media::g711_config(
                        t["muLaw"].as_bool().unwrap_or(false),
                        n("sampleRate"),
                        n("channelCount"),
                    ),
                )),
                "LPCM" => Some((
                    "LPCM",
                    crate::media::lpcm_config(16, n("sampleRate"), n("channelCount")),
                )),
                _ => None,
            };
            OfflineTrack {
                index,
                codec: label(codec).to_string(),
                audio,
            }
        })
        .collect())
}

/// formatlabel's name of a configured track codec.
fn label(codec: &str) -> &str {
    match codec {
        "MPEG4Audio" => "MPEG-4 Audio",
        c => c,
    }
}

/// mediasAreCompatible: a publisher of an alwaysAvailable path must bring the offline
/// stream's tracks, in order, and the audio configuration of their MPEG-4 Audio, G711
/// and LPCM tracks. A file the double cannot read checks nothing (MediaMTX would not
/// have started).
pub fn check_publisher(p: &mut PathRt, sdp: &crate::media::Sdp) -> Result<(), String> {
    if !p.b("alwaysAvailable") {
        return Ok(());
    }
    let Ok(want) = offline_tracks(p) else { return Ok(()) };
    let want_codecs: Vec<&str> = want.iter().map(|t| t.codec.as_str()).collect();
    let got: Vec<&str> = sdp.medias.iter().map(|m| m.codec).collect();
    if want_codecs != got {
        return Err(format!(
            "wants to publish [{}], but stream expects [{}]",
            got.join(" "),
            want_codecs.join(" ")
        ));
    }
    for (t, m) in want.iter().zip(&sdp.medias) {
        let Some((kind, expected)) = &t.audio else { continue };
        if let Some(got) = m.audio_config.as_ref().filter(|got| *got != expected) {
            return Err(format!(
                "{} configuration does not match, is {}, but stream expects {}",
                kind, got, expected
            ));
        }
    }
    Ok(())
}

/// Supervisor tick: the generator runs while the path has no real publisher.
pub fn tick(shared: &Arc<Shared>, p: &mut PathRt, now: Instant) {
    let wanted = p.b("alwaysAvailable") && p.publisher.as_ref().map_or(true, |pb| pb.offline);
    match p.offline.pid {
        Some(pid) if !wanted => crate::procs::interrupt(pid),
        None if wanted && p.offline.retry_at.map_or(true, |t| now >= t) => start(shared, p),
        _ => {}
    }
}

pub fn stop(p: &mut PathRt) {
    if let Some(pid) = p.offline.pid {
        crate::procs::interrupt(pid);
    }
}

/// The ffmpeg arguments: the file looped, or one generated input per track.
fn args(shared: &Shared, p: &mut PathRt) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = vec![
        shared.ffmpeg.clone(),
        "-nostdin".into(),
        "-hide_banner".into(),
        "-loglevel".into(),
        "error".into(),
    ];
    let file = p.s("alwaysAvailableFile");
    if !file.is_empty() {
        // only the tracks MediaMTX takes from the file
        let tracks = offline_tracks(p).map_err(|e| format!("alwaysAvailableFile: {}", e))?;
        if tracks.is_empty() {
            return Err("alwaysAvailableFile has no track MediaMTX can stream".into());
        }
        a.extend(["-re", "-stream_loop", "-1", "-i", &file].map(String::from));
        for t in tracks {
            a.extend(["-map".to_string(), format!("0:{}", t.index)]);
        }
        a.extend(["-c", "copy"].map(String::from));
    } else {
        let tracks = tracks(p);
        for t in &tracks {
            let codec = t["codec"].as_str().unwrap_or("");
            let rate = t["sampleRate"].as_u64().unwrap_or(48000);
            let input = match codec {
                "H264" | "H265" | "VP9" => "color=c=black:s=1920x1080:r=30".to_string(),
                "AV1" => return Err("AV1 cannot be sent over RTSP by the double's ffmpeg".into()),
                _ => format!("anullsrc=r={}:cl=mono", rate),
            };
            a.extend(["-re", "-f", "lavfi", "-i", &input].map(String::from));
        }
        for (i, t) in tracks.iter().enumerate() {
            let codec = t["codec"].as_str().unwrap_or("");
            let rate = t["sampleRate"].as_u64().unwrap_or(48000).to_string();
            let channels = t["channelCount"].as_u64().unwrap_or(1).to_string();
            let mut o: Vec<String> = vec!["-map".into(), format!("{}:0", i)];
            let opts: Vec<(&str, &str)> = match codec {
                "H264" => vec![
                    ("c", "libx264"),
                    ("preset", "ultrafast"),
                    ("tune", "zerolatency"),
                    ("g", "30"),
                    ("pix_fmt", "yuv420p"),
                ],
                "H265" => vec![
                    ("c", "libx265"),
                    ("preset", "ultrafast"),
                    ("x265-params", "log-level=error"),
                    ("g", "30"),
                    ("pix_fmt", "yuv420p"),
                ],
                "VP9" => vec![
                    ("c", "libvpx-vp9"),
                    ("deadline", "realtime"),
                    ("cpu-used", "8"),
                    ("g", "30"),
                ],
                // gortsplib's offline Opus track is stereo at 48 kHz
                "Opus" => vec![("c", "libopus"), ("ar", "48000"), ("ac", "2")],
                "MPEG4Audio" => vec![("c", "aac"), ("ar", &rate), ("ac", &channels)],
                "G711" if t["muLaw"].as_bool().unwrap_or(false) => {
                    vec![("c", "pcm_mulaw"), ("ar", &rate), ("ac", &channels)]
                }
                "G711" => vec![("c", "pcm_alaw"), ("ar", &rate), ("ac", &channels)],
                _ => vec![("c", "pcm_s16be"), ("ar", &rate), ("ac", &channels)],
            };
            for (k, v) in opts {
                o.push(format!("-{}:{}", k, i));
                o.push(v.to_string());
            }
            a.extend(o);
        }
    }
    a.extend(["-f", "rtsp", "-rtsp_transport", "tcp"].map(String::from));
    a.push(format!(
        "rtsp://127.0.0.1:{}/{}{}{}",
        shared.internal_rtsp_port,
        shared.internal_prefix(),
        MARK,
        p.name
    ));
    Ok(a)
}

fn start(shared: &Arc<Shared>, p: &mut PathRt) {
    let args = match args(shared, p) {
        Ok(a) => a,
        Err(e) => {
            shared.log(&format!("path {}: no offline stream: {}", p.name, e));
            // not retried before the configuration changes (which recreates the path)
            p.offline.retry_at = Some(Instant::now() + Duration::from_secs(24 * 3600));
            return;
        }
    };
    let Some(child) = crate::procs::spawn_offline(shared, &args, &p.name) else {
        p.offline.retry_at = Some(Instant::now() + RESTART_PAUSE);
        return;
    };
    p.offline.pid = Some(child.id() as i32);
    watch(shared, p, child);
}

fn watch(shared: &Arc<Shared>, p: &PathRt, child: Child) {
    let (name, path_gen) = (p.name.clone(), p.gen);
    crate::procs::watch(shared, child, move |sh, pid| {
        let mut st = sh.lock();
        if let Some(p) = st.paths.get_mut(&name).filter(|p| p.gen == path_gen) {
            if p.offline.pid == Some(pid) {
                p.offline.pid = None;
                p.offline.retry_at = Some(Instant::now() + RESTART_PAUSE);
                // a real publisher may have replaced it: then the restart comes at once
                // when that publisher leaves
                if p.publisher.as_ref().is_some_and(|pb| !pb.offline) {
                    p.offline.retry_at = None;
                }
            }
        }
    });
}
