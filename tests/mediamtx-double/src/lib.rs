//! mediamtx-double: a test-only stand-in for MediaMTX v1.20.1.
//!
//! It implements the parts of the control API v3 the camera service uses (same status
//! codes, error bodies, field names and defaults), an RTSP server relaying TCP-interleaved
//! RTP from publishers to readers, runOnDemand, pulled RTSP sources and recording (through
//! ffmpeg children), plus a separate test-control HTTP surface for fault injection.
//! See README.md.

#![allow(clippy::too_many_arguments)]

pub mod api;
pub mod auth;
pub mod cleaner;
pub mod conf;
mod conf_fields;
pub mod core;
pub mod fmp4;
pub mod gojson;
pub mod hooks;
pub mod http;
pub mod media;
pub mod procs;
pub mod re2;
pub mod recordings;
pub mod rtsp;
pub mod rtsp_multicast;
pub mod rtsp_registry;
pub mod rtsp_udp;
pub mod rtsps;
pub mod ts;
pub mod util;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Start options. Port 0 = pick a free port.
#[derive(Clone, Debug)]
pub struct Options {
    pub api_port: u16,
    pub rtsp_port: u16,
    /// RTSP over UDP: the server's RTP and RTCP ports (`rtpAddress`, `rtcpAddress`)
    pub rtp_port: u16,
    pub rtcp_port: u16,
    /// the RTSPS listener (`rtspsAddress`), serving while `rtspEncryption` is not `no`
    pub rtsps_port: u16,
    pub control_port: u16,
    /// working directory: logs, and the base of relative record paths
    pub dir: PathBuf,
    /// include MediaMTX's default `all_others` path configuration (default true)
    pub all_others: bool,
    /// ffmpeg binary used for recorders and pulled sources
    pub ffmpeg: String,
    /// like MediaMTX's configuration file: `pathDefaults` fields and `paths` entries,
    /// decoded and validated (Conf.Validate) at start
    pub path_defaults: Option<serde_json::Value>,
    pub paths: Vec<(String, serde_json::Value)>,
}

impl Options {
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            api_port: 0,
            rtsp_port: 0,
            rtp_port: 0,
            rtcp_port: 0,
            rtsps_port: 0,
            control_port: 0,
            dir: dir.into(),
            all_others: true,
            ffmpeg: "ffmpeg".into(),
            path_defaults: None,
            paths: Vec::new(),
        }
    }
}

/// A running double. Dropping it shuts it down.
pub struct Handle {
    pub api_port: u16,
    pub rtsp_port: u16,
    pub rtp_port: u16,
    pub rtcp_port: u16,
    pub rtsps_port: u16,
    pub control_port: u16,
    shared: Arc<core::Shared>,
    threads: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl Handle {
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }
    pub fn rtsp_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}", self.rtsp_port)
    }
    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }
    /// Every configuration change refused so far by MediaMTX's rules (injected refusals
    /// excluded): `{method, path, body, error}`.
    pub fn refused(&self) -> Vec<serde_json::Value> {
        self.shared.refused.lock().unwrap().clone()
    }
    /// The line printed by the binary when ready.
    pub fn ready_line(&self) -> String {
        format!(
            "READY api={} rtsp={} control={}",
            self.api_url(),
            self.rtsp_url(),
            self.control_url()
        )
    }
    /// Stops listeners, drops every connection and stops every child (SIGINT, then
    /// SIGKILL after 5 s so that nothing is left behind).
    pub fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let mut st = self.shared.lock();
            let names: Vec<String> = st.paths.keys().cloned().collect();
            for n in names {
                if let Some(mut p) = st.paths.remove(&n) {
                    core::destroy_path(&self.shared, &mut p);
                }
            }
            self.shared.cv.notify_all();
        }
        for (_, c) in self.shared.conns.lock().unwrap().drain() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        procs::stop_all(&self.shared, Duration::from_secs(5));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the double: binds loopback ports and spawns its threads.
pub fn start(opts: Options) -> std::io::Result<Handle> {
    std::fs::create_dir_all(&opts.dir)?;
    let dir = std::fs::canonicalize(&opts.dir)?;
    let api_l = api::bind(opts.api_port)?;
    let rtsp_l = TcpListener::bind(("127.0.0.1", opts.rtsp_port))?;
    let ctl_l = api::bind(opts.control_port)?;
    let api_port = api_l.local_addr()?.port();
    let rtsp_port = rtsp_l.local_addr()?.port();
    let control_port = ctl_l.local_addr()?.port();
    let mut state = core::initial_state(api_port, rtsp_port, opts.all_others);
    api::load_conf_file(&mut state, opts.path_defaults.as_ref(), &opts.paths)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let udp = rtsp_udp::UdpServer::bind(opts.rtp_port, opts.rtcp_port)?;
    state
        .global
        .insert("rtpAddress".into(), serde_json::json!(format!(":{}", udp.rtp_port)));
    state
        .global
        .insert("rtcpAddress".into(), serde_json::json!(format!(":{}", udp.rtcp_port)));
    let udp = Arc::new(udp);
    let rtsps_l = TcpListener::bind(("127.0.0.1", opts.rtsps_port))?;
    let rtsps_port = rtsps_l.local_addr()?.port();
    state
        .global
        .insert("rtspsAddress".into(), serde_json::json!(format!(":{}", rtsps_port)));
    let shared = Arc::new(core::Shared {
        st: Mutex::new(state),
        cv: Condvar::new(),
        api_port,
        rtsp_port,
        control_port,
        dir,
        all_others: opts.all_others,
        ffmpeg: opts.ffmpeg.clone(),
        token: util::hex_id(6),
        shutdown: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        conns: Mutex::new(Default::default()),
        children: Mutex::new(Default::default()),
        refused: Mutex::new(Vec::new()),
        rtsp: Default::default(),
        udp: Some(udp.clone()),
        multicast: Default::default(),
    });
    {
        // configured paths exist from the start
        let mut st = shared.lock();
        core::sync_paths(&shared, &mut st);
    }
    let mut threads = Vec::new();
    {
        let sh = shared.clone();
        let conns = Arc::new(Mutex::new(Vec::new()));
        threads.push(std::thread::spawn(move || api::serve_api(sh, api_l, conns)));
    }
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || rtsp::serve(sh, rtsp_l)));
    }
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || rtsps::serve(sh, rtsps_l)));
    }
    for rtcp in [false, true] {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || rtsp_udp::serve(sh, rtcp)));
    }
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || api::serve_control(sh, ctl_l)));
    }
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || cleaner::serve(sh)));
    }
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || {
            while !sh.shutdown.load(Ordering::SeqCst) {
                core::tick(&sh);
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    shared.log(&format!(
        "started api={} rtsp={} control={}",
        api_port, rtsp_port, control_port
    ));
    Ok(Handle {
        api_port,
        rtsp_port,
        rtp_port: udp.rtp_port,
        rtcp_port: udp.rtcp_port,
        rtsps_port,
        control_port,
        shared,
        threads,
        stopped: false,
    })
}
