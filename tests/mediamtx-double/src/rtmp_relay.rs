//! The ffmpeg children behind RTMP connections: a publisher's FLV becomes an RTSP
//! publisher of the double's relay, a reader's FLV comes from an RTSP reader of it (both
//! under the internal prefix: no RTSP session, no reader, no hooks).

use crate::core::{ChildKind, Shared};
use std::process::{Child, ChildStdin};
use std::sync::Arc;
use std::time::Duration;

fn spawn(shared: &Arc<Shared>, args: &[String], path: &str, publisher: bool) -> std::io::Result<Child> {
    crate::procs::spawn_relay(shared, args, path, ChildKind::Rtmp, publisher)
        .ok_or_else(|| std::io::Error::other("cannot start ffmpeg"))
}

/// ffmpeg turning the publisher's FLV into an RTSP publisher of the relay.
pub fn spawn_publisher(shared: &Arc<Shared>, path: &str) -> std::io::Result<(Child, ChildStdin)> {
    let args = crate::procs::relay_in_args(shared, &["-f", "flv"], &crate::procs::internal_url(shared, path));
    let mut c = spawn(shared, &args, path, true)?;
    let stdin = c.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
    Ok((c, stdin))
}

/// ffmpeg reading the relay (a hidden RTSP reader) and writing FLV with the medias
/// `tracks` (indexes).
pub fn spawn_reader(shared: &Arc<Shared>, path: &str, tracks: &[usize]) -> std::io::Result<Child> {
    let url = crate::procs::internal_url(shared, path);
    let flv = ["-flvflags", "no_duration_filesize", "-f", "flv"];
    let args = crate::procs::relay_out_args(shared, &url, Some(tracks), &flv);
    spawn(shared, &args, path, false)
}

/// rtmp.FromStream's errNoSupportedCodecsFrom.
pub const NO_SUPPORTED_CODECS: &str = "the stream doesn't contain any supported codec, which are currently \
     AV1, VP9, H265, H264, Opus, FLAC, MPEG-4 Audio (AAC), MPEG-1/2 Audio (MP3), AC-3, G711, LPCM";

/// The medias rtmp.FromStream gives a reader without enhanced RTMP (ffmpeg's FLV is
/// legacy): the first H.264 track and the first MPEG-4 Audio, MPEG-1/2 Audio or 8 kHz
/// G711 track. (LPCM too in MediaMTX: FLV's PCM is little-endian, RTP's big-endian, so
/// ffmpeg cannot copy it and the double skips it.)
pub fn legacy_tracks(medias: &[crate::media::Media]) -> Vec<usize> {
    let video = medias.iter().position(|m| m.codec == "H264");
    let audio = medias.iter().position(|m| {
        matches!(m.codec, "MPEG-4 Audio" | "MPEG-4 Audio LATM" | "MPEG-1/2 Audio")
            || (m.codec == "G711" && m.clock_rate == 8000)
    });
    let mut tracks: Vec<usize> = video.into_iter().chain(audio).collect();
    tracks.sort_unstable();
    tracks
}

/// SIGINT to the child's group; it is reaped in the background (SIGKILL after 5 s).
pub fn stop_child(shared: &Arc<Shared>, c: Child) {
    crate::procs::stop_in_background(shared, c, Duration::from_secs(5));
}
