//! The V4L2 hot-plug monitor: one thread that listens on a udev netlink monitor (blocking
//! `poll` on its fd), enumerates `video4linux` at start and every `camera.rescan_interval`,
//! and sends what it sees to the camera manager. It never probes devices itself.
//!
//! Event source (docs/cameras.md): udevd's events (`"udev"` netlink group) when udevd runs,
//! since they arrive after the rules set the node's permissions; otherwise the kernel's own
//! uevents (`"kernel"` group, `udev::MonitorBuilder::new_kernel`), as in containers, initramfs
//! systems and the QEMU test guest. If neither socket can be opened, periodic rescans alone.

use crate::config::CameraMonitor;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A `/dev/videoN` node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub num: u32,
    pub devnode: PathBuf,
}

#[derive(Debug)]
pub enum NodeEvent {
    /// Every `/dev/videoN` present now (`initial` for the pass at start).
    Snapshot {
        nodes: Vec<Node>,
        initial: bool,
    },
    Added(Node),
    Changed(Node),
    Removed(Node),
}

/// What the monitor thread actually listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Udev,
    Kernel,
    RescanOnly,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Udev => "udev events",
            Source::Kernel => "kernel uevents",
            Source::RescanOnly => "periodic rescan only",
        }
    }
}

pub struct MonitorHandle {
    pub source: Source,
    /// Why the requested event source could not be used.
    pub fallback_reason: Option<String>,
    wake: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MonitorHandle {
    /// Stops the thread (it wakes at once) and waits for it. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(w) = self.wake.take() {
            let _ = nix::unistd::write(&w, &[1]);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `videoN` → N (other video4linux names — `vbi0`, `radio0`, `swradio0`, `v4l-subdev0`,
/// `v4l-touch0` — are never cameras).
pub fn video_num(sysname: &str) -> Option<u32> {
    let digits = sysname.strip_prefix("video")?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn node_of(sysname: &str, devnode: Option<&Path>) -> Option<Node> {
    let num = video_num(sysname)?;
    Some(Node {
        num,
        devnode: devnode.map_or_else(|| PathBuf::from(format!("/dev/{sysname}")), Path::to_path_buf),
    })
}

/// Every `/dev/videoN` node, through libudev's enumerator (it reads sysfs, so it works
/// without udevd) or, if libudev fails, `/sys/class/video4linux` directly.
pub fn enumerate() -> Vec<Node> {
    let mut nodes = BTreeSet::new();
    let via_udev = (|| -> std::io::Result<()> {
        let mut e = udev::Enumerator::new()?;
        e.match_subsystem("video4linux")?;
        for d in e.scan_devices()? {
            if let Some(n) = node_of(&d.sysname().to_string_lossy(), d.devnode()) {
                nodes.insert(n);
            }
        }
        Ok(())
    })();
    if let Err(e) = via_udev {
        log::debug!("udev enumeration failed ({e}); reading /sys/class/video4linux");
        if let Ok(dir) = std::fs::read_dir("/sys/class/video4linux") {
            for entry in dir.flatten() {
                if let Some(n) = node_of(&entry.file_name().to_string_lossy(), None) {
                    nodes.insert(n);
                }
            }
        }
    }
    nodes.into_iter().collect()
}

fn open_socket(source: Source) -> std::io::Result<udev::MonitorSocket> {
    let builder = match source {
        Source::Kernel => udev::MonitorBuilder::new_kernel()?,
        _ => udev::MonitorBuilder::new()?,
    };
    builder.match_subsystem("video4linux")?.listen()
}

/// Starts the monitor thread. `mode` must not be `Off`. The first message sent is the
/// initial snapshot; the socket listens before it is taken, so no event is lost between.
pub fn start(
    mode: CameraMonitor,
    rescan_interval: Duration,
    tx: async_channel::Sender<NodeEvent>,
) -> std::io::Result<MonitorHandle> {
    let wanted = match mode {
        CameraMonitor::Udev => Source::Udev,
        CameraMonitor::Kernel => Source::Kernel,
        CameraMonitor::Rescan | CameraMonitor::Off => Source::RescanOnly,
        CameraMonitor::Auto => {
            if Path::new("/run/udev/control").exists() {
                Source::Udev
            } else {
                Source::Kernel
            }
        }
    };
    let (wake_rx, wake_tx) = nix::unistd::pipe()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("camera-monitor".into())
        .spawn(move || {
            // The libudev handles are not Send: they live and die on this thread.
            let (socket, source, reason) = match wanted {
                Source::RescanOnly => (None, Source::RescanOnly, None),
                s => match open_socket(s) {
                    Ok(sock) => (Some(sock), s, None),
                    Err(e) => (
                        None,
                        Source::RescanOnly,
                        Some(format!("cannot listen for {}: {e}", s.describe())),
                    ),
                },
            };
            let _ = ready_tx.send((source, reason));
            run(socket, wake_rx, rescan_interval, tx);
        })?;
    let (source, fallback_reason) = ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("camera monitor thread died at start"))?;
    Ok(MonitorHandle {
        source,
        fallback_reason,
        wake: Some(wake_tx),
        thread: Some(thread),
    })
}

fn run(
    socket: Option<udev::MonitorSocket>,
    wake: OwnedFd,
    rescan_interval: Duration,
    tx: async_channel::Sender<NodeEvent>,
) {
    if tx
        .send_blocking(NodeEvent::Snapshot {
            nodes: enumerate(),
            initial: true,
        })
        .is_err()
    {
        return;
    }
    let mut next_rescan = Instant::now() + rescan_interval;
    loop {
        let left = next_rescan.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        let (woken, readable) = {
            let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
            if let Some(s) = &socket {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("camera monitor: poll failed: {e}; stopping");
                    return;
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if woken {
            return;
        }
        if readable {
            if let Some(s) = &socket {
                for ev in s.iter() {
                    let Some(node) = node_of(&ev.sysname().to_string_lossy(), ev.devnode()) else {
                        continue;
                    };
                    log::debug!("camera monitor: {} {}", ev.event_type(), node.devnode.display());
                    let msg = match ev.event_type() {
                        udev::EventType::Add => NodeEvent::Added(node),
                        udev::EventType::Remove => NodeEvent::Removed(node),
                        udev::EventType::Change => NodeEvent::Changed(node),
                        _ => continue,
                    };
                    if tx.send_blocking(msg).is_err() {
                        return;
                    }
                }
            }
        }
        if Instant::now() >= next_rescan {
            if tx
                .send_blocking(NodeEvent::Snapshot {
                    nodes: enumerate(),
                    initial: false,
                })
                .is_err()
            {
                return;
            }
            next_rescan = Instant::now() + rescan_interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_video_nodes() {
        assert_eq!(video_num("video0"), Some(0));
        assert_eq!(video_num("video12"), Some(12));
        for n in [
            "vbi0",
            "radio0",
            "swradio0",
            "v4l-subdev0",
            "v4l-touch0",
            "video",
            "videox",
        ] {
            assert_eq!(video_num(n), None, "{n}");
        }
        assert_eq!(node_of("video3", None).unwrap().devnode, PathBuf::from("/dev/video3"));
    }

    #[test]
    fn rescan_only_monitor_reports_and_stops() {
        let (tx, rx) = async_channel::unbounded();
        let mut h = start(CameraMonitor::Rescan, Duration::from_millis(100), tx).unwrap();
        assert_eq!(h.source, Source::RescanOnly);
        match rx.recv_blocking().unwrap() {
            NodeEvent::Snapshot { initial, .. } => assert!(initial),
            e => panic!("{e:?}"),
        }
        match rx.recv_blocking().unwrap() {
            NodeEvent::Snapshot { initial, .. } => assert!(!initial),
            e => panic!("{e:?}"),
        }
        let t = Instant::now();
        h.shutdown();
        h.shutdown();
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
