//! mediamtx-double: a test-only stand-in for MediaMTX v1.20.1.
//!
//! It implements the parts of the control API v3 the camera service uses (same status
//! codes, error bodies, field names and defaults), an RTSP server relaying TCP-interleaved
//! RTP from publishers to readers, runOnDemand, pulled RTSP sources and recording (through
//! ffmpeg children), plus a separate test-control HTTP surface for fault injection.
//! See README.md.

#![allow(clippy::too_many_arguments)]

pub mod always_available;
mod always_available_file;
pub mod amf0;
pub mod api;
pub mod argon2_cred;
pub mod auth;
pub mod cleaner;
pub mod conf;
mod conf_fields;
pub mod core;
pub mod flv;
pub mod fmp4;
pub mod forward;
pub mod gojson;
pub mod hooks;
pub mod http;
pub mod http_client;
pub mod http_read;
pub mod jwt;
pub mod logger;
pub mod media;
pub mod metrics;
pub mod playback;
mod playback_mux;
pub mod pprof;
pub mod procs;
pub mod proxy_protocol;
pub mod re2;
pub mod recordings;
pub mod restamp;
pub mod rtmp;
pub mod rtmp_chunk;
pub mod rtmp_message;
pub mod rtmp_relay;
mod rtp_split;
pub mod rtp_stats;
pub mod rtsp;
pub mod rtsp_multicast;
pub mod rtsp_registry;
pub mod rtsp_tunnel;
pub mod rtsp_udp;
pub mod rtsp_ws;
pub mod rtsps;
pub mod servers;
pub mod sessions;
pub mod socket_peek;
pub mod source_bridge;
pub mod source_input;
pub mod srt;
mod srt_conn;
pub mod srt_packet;
pub mod tls_errors;
pub mod ts;
pub mod unix_rtp;
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
    /// the RTSPS listener's initial `rtspsAddress` (open while `rtspEncryption` is not
    /// `no`; a configuration change can move it)
    pub rtsps_port: u16,
    pub control_port: u16,
    /// listeners of the playback, metrics and pprof servers (open only while their
    /// global switch is on; 0 = a free port): their initial `*Address`, which a
    /// configuration change can move
    pub playback_port: u16,
    pub metrics_port: u16,
    pub pprof_port: u16,
    /// SRT listener (UDP)
    pub srt_port: u16,
    /// initial `rtmpAddress` and `rtmpsAddress` of the RTMP and RTMPS listeners (open
    /// while that server runs; a configuration change can move them)
    pub rtmp_port: u16,
    pub rtmps_port: u16,
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
    /// the CLI's stdout log: held until `Handle::release_log_stdout` (the READY line comes
    /// first), then written ignoring errors
    pub hold_log_stdout: bool,
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
            playback_port: 0,
            metrics_port: 0,
            pprof_port: 0,
            srt_port: 0,
            rtmp_port: 0,
            rtmps_port: 0,
            dir: dir.into(),
            all_others: true,
            ffmpeg: "ffmpeg".into(),
            path_defaults: None,
            paths: Vec::new(),
            hold_log_stdout: false,
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
    pub playback_port: u16,
    pub metrics_port: u16,
    pub pprof_port: u16,
    pub srt_port: u16,
    pub rtmp_port: u16,
    pub rtmps_port: u16,
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
    /// `srt://127.0.0.1:P` (add `?streamid=...`)
    pub fn srt_url(&self) -> String {
        format!("srt://127.0.0.1:{}", self.srt_port)
    }
    pub fn rtmp_url(&self) -> String {
        format!("rtmp://127.0.0.1:{}", self.rtmp_port)
    }
    pub fn rtmps_url(&self) -> String {
        format!("rtmps://127.0.0.1:{}", self.rtmps_port)
    }
    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }
    pub fn playback_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.playback_port)
    }
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }
    pub fn pprof_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.pprof_port)
    }
    /// Every configuration change refused so far by MediaMTX's rules (injected refusals
    /// excluded): `{method, path, body, error}`.
    pub fn refused(&self) -> Vec<serde_json::Value> {
        self.shared.refused.lock().unwrap().clone()
    }
    /// Prints the log lines held for stdout and stops holding them.
    pub fn release_log_stdout(&self) {
        logger::release_stdout(&self.shared.log_conf);
    }
    /// The line printed by the binary when ready.
    pub fn ready_line(&self) -> String {
        format!(
            "READY api={} rtsp={} control={} playback={} metrics={} pprof={}",
            self.api_url(),
            self.rtsp_url(),
            self.control_url(),
            self.playback_url(),
            self.metrics_url(),
            self.pprof_url()
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
        srt::kick_all(&self.shared);
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
    let api_l = servers::PortHold::new(opts.api_port)?;
    let rtsp_l = servers::PortHold::new(opts.rtsp_port)?;
    // the double's own RTSP clients (recorder, relays, pulled sources) connect here: the
    // public RTSP server comes and goes with the configuration like MediaMTX's
    let internal_rtsp_l = TcpListener::bind(("127.0.0.1", 0))?;
    let ctl_l = api::bind(opts.control_port)?;
    let rtmp_l = servers::PortHold::new(opts.rtmp_port)?;
    let rtmp_port = rtmp_l.port;
    let rtmps_l = servers::PortHold::new(opts.rtmps_port)?;
    let rtmps_port = rtmps_l.port;
    let api_port = api_l.port;
    let rtsp_port = rtsp_l.port;
    let control_port = ctl_l.local_addr()?.port();
    let playback_l = servers::PortHold::new(opts.playback_port)?;
    let metrics_l = servers::PortHold::new(opts.metrics_port)?;
    let pprof_l = servers::PortHold::new(opts.pprof_port)?;
    let aux_ports = core::AuxPorts {
        playback: playback_l.port,
        metrics: metrics_l.port,
        pprof: pprof_l.port,
    };
    let srt_sock = std::net::UdpSocket::bind(("127.0.0.1", opts.srt_port))?;
    let srt_port = srt_sock.local_addr()?.port();
    let mut state = core::initial_state(api_port, rtsp_port, srt_port, [rtmp_port, rtmps_port], opts.all_others);
    aux_ports.set_addresses(&mut state.global);
    api::load_conf_file(&mut state, opts.path_defaults.as_ref(), &opts.paths)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let udp = rtsp_udp::UdpServer::bind(opts.rtp_port, opts.rtcp_port)?;
    let (rtp_port, rtcp_port) = udp.initial_ports();
    state
        .global
        .insert("rtpAddress".into(), serde_json::json!(format!(":{}", rtp_port)));
    state
        .global
        .insert("rtcpAddress".into(), serde_json::json!(format!(":{}", rtcp_port)));
    let udp = Arc::new(udp);
    let rtsps_l = servers::PortHold::new(opts.rtsps_port)?;
    let rtsps_port = rtsps_l.port;
    state
        .global
        .insert("rtspsAddress".into(), serde_json::json!(format!(":{}", rtsps_port)));
    let shared = Arc::new(core::Shared {
        initial_global: state.global.clone(),
        st: Mutex::new(state),
        cv: Condvar::new(),
        api_port,
        rtsp_port,
        internal_rtsp_port: internal_rtsp_l.local_addr()?.port(),
        rtsp_port_env: std::sync::atomic::AtomicU16::new(rtsp_port),
        control_port,
        aux_ports,
        aux: Default::default(),
        rtmp_ports: [rtmp_port, rtmps_port],
        rtmp: Default::default(),
        dir,
        all_others: opts.all_others,
        ffmpeg: opts.ffmpeg.clone(),
        token: util::hex_id(6),
        shutdown: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        conns: Mutex::new(Default::default()),
        children: Mutex::new(Default::default()),
        refused: Mutex::new(Vec::new()),
        log_conf: Mutex::new(logger::LogConf {
            held: opts.hold_log_stdout.then(Vec::new),
            raw_stdout: opts.hold_log_stdout,
            ..Default::default()
        }),
        srt_port,
        srt_conns: Mutex::new(Vec::new()),
        srt: Default::default(),
        rtsp: Default::default(),
        udp: Some(udp.clone()),
        multicast: Default::default(),
        jwks: Default::default(),
    });
    logger::configure(&shared.log_conf, &shared.lock().global);
    // a configuration file can start the RTSP server without UDP listeners
    udp.follow(&shared);
    {
        // configured paths exist from the start
        let mut st = shared.lock();
        core::sync_paths(&shared, &mut st);
    }
    let mut threads = Vec::new();
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || rtsp::serve(sh, internal_rtsp_l)));
    }
    {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || srt::serve(sh, srt_sock)));
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
    let http = |name, handle| servers::Kind {
        name,
        settings: servers::http_settings,
        serve: servers::Serve::Http(handle),
        held_off: servers::never,
        proxy_protocol: None,
    };
    let listeners = [
        (playback_l, http("playback", playback::handle)),
        (metrics_l, http("metrics", metrics::handle)),
        (pprof_l, http("pprof", pprof::handle)),
        (rtsp_l, rtsp::SERVER),
        (rtsps_l, rtsps::SERVER),
        (rtmp_l, rtmp::SERVERS[0]),
        (rtmps_l, rtmp::SERVERS[1]),
        (api_l, api::SERVER),
    ];
    // start() returns once the enabled servers listen
    let started = Arc::new(std::sync::Barrier::new(listeners.len() + 1));
    for (listener, kind) in listeners {
        let sh = shared.clone();
        let st = started.clone();
        threads.push(std::thread::spawn(move || servers::serve(sh, listener, kind, st)));
    }
    started.wait();
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
        rtp_port,
        rtcp_port,
        rtsps_port,
        control_port,
        playback_port: aux_ports.playback,
        metrics_port: aux_ports.metrics,
        pprof_port: aux_ports.pprof,
        srt_port,
        rtmp_port,
        rtmps_port,
        shared,
        threads,
        stopped: false,
    })
}
