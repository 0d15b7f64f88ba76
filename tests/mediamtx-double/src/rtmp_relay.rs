//! The ffmpeg children behind RTMP connections: a publisher's FLV becomes an RTSP
//! publisher of the double's relay, a reader's FLV comes from an RTSP reader of it (both
//! under the internal prefix: no RTSP session, no reader, no hooks).

use crate::core::{ChildKind, Shared};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn internal_url(shared: &Shared, path: &str) -> String {
    format!(
        "rtsp://127.0.0.1:{}/{}{}",
        shared.rtsp_port,
        shared.internal_prefix(),
        path
    )
}

fn spawn_child(shared: &Shared, path: &str, args: &[String], stdin: Stdio, stdout: Stdio) -> std::io::Result<Child> {
    let dir = shared.dir.join("logs");
    let _ = std::fs::create_dir_all(&dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}-rtmp.log", path.replace('/', "_"))))?;
    let mut cmd = Command::new(&shared.ffmpeg);
    cmd.args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::from(log))
        .current_dir(&shared.dir);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let c = cmd.spawn()?;
    shared
        .children
        .lock()
        .unwrap()
        .insert(c.id() as i32, (ChildKind::Rtmp, path.to_string()));
    shared.log(&format!("path {}: started rtmp pid {}: {:?}", path, c.id(), args));
    Ok(c)
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// ffmpeg turning the publisher's FLV into an RTSP publisher of the relay.
pub fn spawn_publisher(shared: &Shared, path: &str) -> std::io::Result<(Child, ChildStdin)> {
    let url = internal_url(shared, path);
    let args = strings(&[
        "-hide_banner",
        "-loglevel",
        "warning",
        "-f",
        "flv",
        "-i",
        "pipe:0",
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "rtsp",
        "-rtsp_transport",
        "tcp",
        &url,
    ]);
    let mut c = spawn_child(shared, path, &args, Stdio::piped(), Stdio::null())?;
    let stdin = c.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
    Ok((c, stdin))
}

/// ffmpeg reading the relay (a hidden RTSP reader) and writing FLV.
pub fn spawn_reader(shared: &Shared, path: &str) -> std::io::Result<Child> {
    let url = internal_url(shared, path);
    let args = strings(&[
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "warning",
        "-rtsp_transport",
        "tcp",
        "-i",
        &url,
        "-map",
        "0",
        "-c",
        "copy",
        "-flvflags",
        "no_duration_filesize",
        "-f",
        "flv",
        "pipe:1",
    ]);
    spawn_child(shared, path, &args, Stdio::null(), Stdio::piped())
}

/// SIGINT to the child's group; it is reaped in the background (SIGKILL after 5 s).
pub fn stop_child(shared: &Arc<Shared>, c: Child) {
    crate::procs::stop_in_background(shared, c, Duration::from_secs(5));
}
