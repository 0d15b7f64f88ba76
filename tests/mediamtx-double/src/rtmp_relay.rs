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

/// ffmpeg reading the relay (a hidden RTSP reader) and writing FLV.
pub fn spawn_reader(shared: &Arc<Shared>, path: &str) -> std::io::Result<Child> {
    let url = crate::procs::internal_url(shared, path);
    let args = crate::procs::relay_out_args(shared, &url, &["-flvflags", "no_duration_filesize", "-f", "flv"]);
    spawn(shared, &args, path, false)
}

/// SIGINT to the child's group; it is reaped in the background (SIGKILL after 5 s).
pub fn stop_child(shared: &Arc<Shared>, c: Child) {
    crate::procs::stop_in_background(shared, c, Duration::from_secs(5));
}
