//! Shared server state: configuration (RAM only), runtime paths, streams, and the
//! supervisor tick that drives runOnDemand close-after, pulled sources and recorders.

use crate::conf::{self, Field, GLOBAL_FIELDS, PATH_FIELDS};
use crate::logger::Scope;
use crate::media::Sdp;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub const VERSION: &str = "v1.20.1";

/// What a connection writer thread sends.
pub enum Out {
    Frame(u8, Arc<Vec<u8>>),
    Raw(Vec<u8>),
    /// answered once everything queued before it is written
    Sync(SyncSender<()>),
}

pub struct Sink {
    pub id: u64,
    pub tx: SyncSender<Out>,
    /// per media: base interleaved channel (RTP; RTCP = +1)
    pub chans: Vec<Option<u8>>,
    pub conn: TcpStream,
    pub hidden: bool,
    /// a forwarder's outboundBytes (hidden readers are not counted in the stream's)
    pub counter: Option<Arc<AtomicU64>>,
    /// RTSP over UDP: packets go to these addresses instead of `tx`
    pub udp: Option<crate::rtsp_udp::UdpSink>,
    /// the reader session's counters (API)
    pub stats: Option<Arc<crate::rtsp_registry::Counters>>,
    /// the sender reports this reader gets (a visible one)
    pub reports: crate::rtp_stats::SenderReports,
}

impl Sink {
    /// Sends on the sink's transport; false if the media is not set up here or the
    /// packet could not go (a full write queue discards it).
    fn send(&self, media: usize, rtcp: bool, data: &Arc<Vec<u8>>) -> bool {
        if let Some(udp) = &self.udp {
            return udp.send(media, rtcp, data);
        }
        let Some(Some(ch)) = self.chans.get(media) else {
            return false;
        };
        let ok = self.tx.try_send(Out::Frame(ch + rtcp as u8, data.clone())).is_ok();
        if let (false, Some(st)) = (ok, &self.stats) {
            st.out_discarded.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

pub struct Stream {
    pub id: u64,
    pub sdp: Sdp,
    pub props: Mutex<Vec<Option<Value>>>,
    pub sinks: Mutex<Vec<Sink>>,
    pub inbound: AtomicU64,
    pub outbound: AtomicU64,
    /// alwaysAvailable: producers change under the readers (restamp.rs)
    pub restamp: Option<Mutex<crate::restamp::Restamper>>,
    /// udpMaxPayloadSize: oversized RTP payloads re-packetized (rtp_split.rs)
    pub split: Mutex<crate::rtp_split::Splitter>,
    /// per media, the SSRC readers get (gortsplib's ServerStream localSSRC)
    pub ssrc: Vec<u32>,
    /// per media, the last RTP packet sent: (sequence number, RTP time, NTP time), for
    /// the RTP-Info of a PLAY answer
    pub last_sent: Mutex<Vec<Option<(u16, u32, SystemTime)>>>,
}

impl Stream {
    /// Like MediaMTX's stream: `inboundBytes` counts the RTP packets received (unitSize,
    /// RTCP excluded); `outboundBytes` what gortsplib's ServerStream sends to each RTSP
    /// reader (RTP and RTCP packets, without the interleaved-frame header); the recorder
    /// (SkipOutboundBytes) is not counted.
    pub fn write(&self, media: usize, rtcp: bool, payload: Vec<u8>) {
        if !rtcp {
            self.inbound.fetch_add(payload.len() as u64, Ordering::Relaxed);
        }
        let pkts = match &self.restamp {
            None if rtcp => return self.fan_out(media, rtcp, payload),
            None => vec![payload],
            // the producers' RTCP describes their own numbering: not relayed
            Some(_) if rtcp => return,
            Some(r) => r.lock().unwrap().rewrite(media, &payload),
        };
        let mut split = self.split.lock().unwrap();
        for p in pkts {
            for q in split.split(media, p) {
                self.fan_out(media, false, q);
            }
        }
    }

    /// Sends a packet to the readers. Like gortsplib's ServerStream, RTSP readers get RTP
    /// with the stream's own SSRC and the stream's own sender reports instead of the
    /// publisher's RTCP; the double's internal readers (recorder, relays, forwarders) get
    /// the packets as published.
    fn fan_out(&self, media: usize, rtcp: bool, payload: Vec<u8>) {
        let now = (SystemTime::now(), Instant::now());
        let ssrc = self.ssrc.get(media).filter(|_| !rtcp && payload.len() >= 12);
        if ssrc.is_some() {
            self.note_last_sent(media, &payload, now.0);
        }
        let (codec, clock_rate) = self
            .sdp
            .medias
            .get(media)
            .map(|m| (m.codec, m.clock_rate))
            .unwrap_or(("", 0));
        let mut sinks = self.sinks.lock().unwrap();
        // readers get the packet with the stream's SSRC: a copy, made only when one listens
        let own = match ssrc {
            Some(ssrc) if sinks.iter().any(|s| !s.hidden) => {
                let mut p = payload.clone();
                p[8..12].copy_from_slice(&ssrc.to_be_bytes());
                Some(Arc::new(p))
            }
            _ => None,
        };
        let data = Arc::new(payload);
        for s in sinks.iter_mut() {
            if rtcp && !s.hidden {
                continue;
            }
            let pkt = match (&own, s.hidden) {
                (Some(own), false) => own,
                _ => &data,
            };
            let sent = s.send(media, rtcp, pkt);
            self.account(s, sent, rtcp, pkt.len());
            if sent && !rtcp && !s.hidden {
                if let Some(sr) = s.reports.on_packet(media, pkt, codec, clock_rate, now) {
                    let sent = s.send(media, true, &Arc::new(sr));
                    self.account(s, sent, true, 28);
                }
            }
        }
    }

    /// Keeps the sequence number and RTP time of a media's last packet (for RTP-Info).
    fn note_last_sent(&self, media: usize, p: &[u8], at: SystemTime) {
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let mut last = self.last_sent.lock().unwrap();
        if last.len() <= media {
            last.resize(media + 1, None);
        }
        last[media] = Some((seq, ts, at));
    }

    /// Counts what went to a sink: a forwarder's own counter for an internal reader,
    /// else the stream's outboundBytes and the reader session's counters.
    fn account(&self, s: &Sink, sent: bool, rtcp: bool, len: usize) {
        if !sent {
            return;
        }
        if s.hidden {
            if let Some(c) = &s.counter {
                c.fetch_add(len as u64, Ordering::Relaxed);
            }
            return;
        }
        self.outbound.fetch_add(len as u64, Ordering::Relaxed);
        if let Some(st) = &s.stats {
            st.sent(rtcp, len);
        }
    }

    pub fn close(&self) {
        let mut sinks = self.sinks.lock().unwrap();
        for s in sinks.drain(..) {
            let _ = s.conn.shutdown(Shutdown::Both);
        }
    }

    pub fn remove_sink(&self, id: u64) {
        self.sinks.lock().unwrap().retain(|s| s.id != id);
    }
}

pub struct Publisher {
    pub id: String,
    pub conn_id: u64,
    pub conn: TcpStream,
    pub internal: bool,
    /// `source.type` in the API: rtspSession, srtConn, rtmpConn, rtspSource, rtmpSource, ...
    pub source_type: &'static str,
    /// query of the publishing URL (MTX_QUERY of runOnAvailable)
    pub query: String,
    /// the offline-stream generator of an alwaysAvailable path
    pub offline: bool,
    /// the publisher's logger (`[RTSP] [session ID]`, `[RTMP] [conn IP:P]`...); none for
    /// static sources and the offline stream
    pub scope: Option<Scope>,
}

#[derive(Default)]
pub struct ProcSlot {
    pub active: bool,
    pub pid: Option<i32>,
    pub gen: u64,
}

#[derive(Default)]
pub struct RecorderSlot {
    pub pid: Option<i32>,
    pub stream_id: u64,
    pub sig: String,
    pub stopping: bool,
    pub retry_at: Option<Instant>,
    /// MediaMTX's Recorder exists (for `stream_id` and `sig`), with or without an ffmpeg
    /// running: its `recording stopped` line is due when it is closed
    pub on: bool,
    /// that Recorder found no track it can record: it waits to be closed, no ffmpeg
    pub skipped: bool,
}

/// A reader or recorder (logger `scope`) takes the medias `taken`: each other one is
/// logged `WAR SCOPE skipping track N (CODEC)` (tracks count from 1, as MediaMTX's);
/// returns defs.FormatsInfo of those taken (`N tracks (...)`).
pub fn log_track_choice(shared: &Shared, scope: &Scope, medias: &[crate::media::Media], taken: &[usize]) -> String {
    for (i, m) in medias.iter().enumerate().filter(|(i, _)| !taken.contains(i)) {
        shared.log_as(scope, "WAR", &format!("skipping track {} ({})", i + 1, m.codec));
    }
    crate::media::tracks_info(taken.iter().map(|&i| &medias[i]))
}

/// The logger of a path's recorder (`[path P] [recorder]`).
pub fn recorder_scope(path: &str) -> Scope {
    Scope::path(path).child("recorder")
}

/// Closes the recorder when recording is off, the stream has gone or changed, or the
/// recording settings changed (Recorder.Close: `recording stopped`), asking its ffmpeg
/// to finish the segment. Returns that ffmpeg's pid, to wait for.
pub fn close_unwanted_recorder(shared: &Shared, p: &mut PathRt) -> Option<i32> {
    let wanted = p.b("record")
        && p.stream.as_ref().is_some_and(|s| s.id == p.recorder.stream_id)
        && p.recorder.sig == record_sig(&p.conf);
    if wanted {
        return None;
    }
    if p.recorder.on {
        (p.recorder.on, p.recorder.skipped) = (false, false);
        shared.log_as(&recorder_scope(&p.name), "INF", "recording stopped");
    }
    match p.recorder.pid {
        Some(pid) if !p.recorder.stopping => {
            p.recorder.stopping = true;
            crate::procs::interrupt(pid);
            Some(pid)
        }
        _ => None,
    }
}

pub struct PathRt {
    pub gen: u64,
    /// an alwaysAvailable path's `stream is available` line was logged
    pub available_logged: bool,
    pub name: String,
    pub conf_name: String,
    pub conf: Map<String, Value>,
    pub created: SystemTime,
    pub stream: Option<Arc<Stream>>,
    pub publisher: Option<Publisher>,
    pub available_time: Option<SystemTime>,
    /// (connection, reader id, reader type: rtspSession, srtConn, rtmpConn or rtmpsConn)
    pub readers: Vec<(u64, String, &'static str)>,
    /// connections of readers past their first SETUP but not playing yet (maxReaders
    /// counts them: MediaMTX adds a reader at SETUP)
    pub set_up_readers: Vec<u64>,
    pub demand: usize,
    pub idle_since: Instant,
    pub ondemand: ProcSlot,
    pub ondemand_query: String,
    pub puller: ProcSlot,
    pub recorder: RecorderSlot,
    /// `forward` destinations (forward.rs)
    pub forward: Vec<crate::forward::Dest>,
    /// alwaysAvailable's offline-stream generator
    pub offline: crate::always_available::Offline,
    /// runOnInit, while the path exists
    pub init_hook: Option<crate::hooks::Running>,
    /// runOnAvailable/runOnUnavailable and runOnOnline/runOnOffline, while available
    pub available_hooks: Vec<crate::hooks::Pair>,
    /// runOnAvailable/runOnUnavailable of an alwaysAvailable path, while the path exists
    pub always_available_hook: Option<crate::hooks::Pair>,
    /// runOnRead/runOnUnread per reader connection
    pub read_hooks: Vec<(u64, crate::hooks::Pair)>,
    /// moved to a regexp configuration by a configuration change while unused: MediaMTX
    /// closes an unused regexp path only after one of its events (a request, a timer),
    /// not on the change, so it stays until its next request (get_or_create_path)
    pub kept_until_request: bool,
}

impl PathRt {
    pub fn s(&self, k: &str) -> String {
        self.conf.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
    }
    pub fn b(&self, k: &str) -> bool {
        self.conf.get(k).and_then(|v| v.as_bool()).unwrap_or(false)
    }
    pub fn d(&self, k: &str) -> Duration {
        conf::duration_of(&self.conf, k)
    }
    pub fn is_url_source(&self) -> bool {
        conf::is_url_source(&self.s("source"))
    }

    /// `source.type` of a pulled source (rtspSource, rtmpSource, hlsSource, ...).
    pub fn url_source_type(&self) -> &'static str {
        conf::url_source_type(&self.s("source")).unwrap_or("rtspSource")
    }
    pub fn has_on_demand(&self) -> bool {
        self.s("source") == "publisher" && !self.s("runOnDemand").is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum ApiMode {
    Up,
    Refuse,
    Hang,
    Close,
}

pub struct Fault {
    pub mode: ApiMode,
    pub delay_ms: u64,
    pub fail500: bool,
    pub fail_count: Option<u64>,
    /// the next N configuration changes (POST/PATCH/DELETE) answer 400 with this text
    pub fail400: Option<(String, u64)>,
}

pub struct State {
    pub started: SystemTime,
    pub global: Map<String, Value>,
    pub path_defaults: Map<String, Value>,
    /// configured paths: only the fields that were sent (OptionalPath)
    pub confs: BTreeMap<String, Map<String, Value>>,
    pub paths: BTreeMap<String, PathRt>,
    pub fault: Fault,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum ChildKind {
    OnDemand,
    Puller,
    Recorder,
    Hook,
    Forwarder,
    Offline,
    /// ffmpeg between an SRT connection and the RTSP relay
    SrtRelay,
    /// ffmpeg relaying an RTMP publisher or reader
    Rtmp,
}

pub struct Shared {
    pub st: Mutex<State>,
    pub cv: Condvar,
    /// the global configuration at start, with the double's own listener addresses: what
    /// a /control/restart goes back to
    pub initial_global: Map<String, Value>,
    pub api_port: u16,
    /// the RTSP server's port at start (`rtspAddress`)
    pub rtsp_port: u16,
    /// the listener of the double's own RTSP clients (procs::internal_url)
    pub internal_rtsp_port: u16,
    /// the port of the configured `rtspAddress`: RTSP_PORT of hooks and commands
    pub rtsp_port_env: std::sync::atomic::AtomicU16,
    pub control_port: u16,
    /// listeners of the playback, metrics and pprof servers
    pub aux_ports: AuxPorts,
    /// the playback, metrics and pprof servers (servers.rs)
    pub aux: crate::servers::Registry,
    /// RTMP and RTMPS listeners
    pub rtmp_ports: [u16; 2],
    pub rtmp: crate::rtmp::Registry,
    pub dir: PathBuf,
    pub all_others: bool,
    pub ffmpeg: String,
    pub token: String,
    pub shutdown: AtomicBool,
    pub next_id: AtomicU64,
    pub conns: Mutex<HashMap<u64, TcpStream>>,
    pub children: Mutex<HashMap<i32, (ChildKind, String)>>,
    /// every configuration change refused by MediaMTX's rules: {method, path, body, error}
    pub refused: Mutex<Vec<Value>>,
    /// the log settings in force (see logger.rs)
    pub log_conf: Mutex<crate::logger::LogConf>,
    pub srt_port: u16,
    /// open SRT connections (`/v3/srtconns`)
    pub srt_conns: Mutex<Vec<Arc<crate::srt::ConnInfo>>>,
    /// the SRT listener's socket (`srtAddress`)
    pub srt: crate::srt::Listener,
    /// RTSP(S) connections and sessions shown by the API
    pub rtsp: crate::rtsp_registry::Registry,
    /// the RTP/RTCP sockets of RTSP over UDP
    pub udp: Option<Arc<crate::rtsp_udp::UdpServer>>,
    /// multicast groups of the streams read over UDP multicast
    pub multicast: crate::rtsp_multicast::Multicast,
    /// the JWKS of the auth manager (authMethod jwt)
    pub jwks: crate::jwt::KeySet,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
    /// RTSP_PORT as MediaMTX sets it: the port of the configured `rtspAddress`.
    pub fn rtsp_port_env(&self) -> String {
        self.rtsp_port_env.load(Ordering::Relaxed).to_string()
    }

    /// Takes note of a new global configuration's `rtspAddress` (for RTSP_PORT).
    pub fn note_rtsp_address(&self, g: &Map<String, Value>) {
        let port = g
            .get("rtspAddress")
            .and_then(Value::as_str)
            .and_then(crate::conf::port_of);
        if let Some(p) = port {
            self.rtsp_port_env.store(p, Ordering::Relaxed);
        }
    }

    pub fn internal_prefix(&self) -> String {
        format!("__double_{}/", self.token)
    }
    pub fn log(&self, msg: &str) {
        crate::logger::write(&self.dir, &self.log_conf, msg);
    }

    /// Logs `LVL SCOPE TEXT` by the logger `scope`.
    pub fn log_as(&self, scope: &Scope, level: &str, text: &str) {
        self.log(&scope.line(level, text));
    }
}

/// Ports of the auxiliary servers (shown in `playbackAddress`, `metricsAddress`,
/// `pprofAddress`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AuxPorts {
    pub playback: u16,
    pub metrics: u16,
    pub pprof: u16,
}

impl AuxPorts {
    /// Writes the listener addresses into a global configuration, like `apiAddress`.
    pub fn set_addresses(&self, g: &mut Map<String, Value>) {
        for (k, p) in [
            ("playbackAddress", self.playback),
            ("metricsAddress", self.metrics),
            ("pprofAddress", self.pprof),
        ] {
            g.insert(k.into(), json!(format!("127.0.0.1:{}", p)));
        }
    }
}

pub fn initial_global(api_port: u16, rtsp_port: u16, srt_port: u16, rtmp_ports: [u16; 2]) -> Map<String, Value> {
    let mut g = conf::defaults(GLOBAL_FIELDS);
    g.insert("api".into(), json!(true));
    g.insert("apiAddress".into(), json!(format!("127.0.0.1:{}", api_port)));
    g.insert("rtspAddress".into(), json!(format!(":{}", rtsp_port)));
    g.insert("srtAddress".into(), json!(format!(":{}", srt_port)));
    g.insert("rtmpAddress".into(), json!(format!(":{}", rtmp_ports[0])));
    g.insert("rtmpsAddress".into(), json!(format!(":{}", rtmp_ports[1])));
    g
}

pub fn initial_state(api_port: u16, rtsp_port: u16, srt_port: u16, rtmp_ports: [u16; 2], all_others: bool) -> State {
    let mut confs = BTreeMap::new();
    if all_others {
        confs.insert("all_others".to_string(), Map::new());
    }
    State {
        started: SystemTime::now(),
        global: initial_global(api_port, rtsp_port, srt_port, rtmp_ports),
        path_defaults: conf::defaults(PATH_FIELDS),
        confs,
        paths: BTreeMap::new(),
        fault: Fault {
            mode: ApiMode::Up,
            delay_ms: 0,
            fail500: false,
            fail_count: None,
            fail400: None,
        },
    }
}

impl State {
    pub fn effective(&self, conf_name: &str) -> Option<Map<String, Value>> {
        let opt = self.confs.get(conf_name)?;
        let mut m = self.path_defaults.clone();
        conf::merge(&mut m, opt, PATH_FIELDS);
        conf::map_deprecated_path(&mut m);
        m.insert("name".into(), json!(conf_name));
        Some(m)
    }

    /// conf.FindPathConf: a configuration with exactly this name first, then the regexp
    /// configurations by name, `all`/`all_others` last.
    pub fn find_conf(&self, name: &str) -> Result<String, String> {
        if self.confs.contains_key(name) {
            return Ok(name.to_string());
        }
        conf::check_path_name(name).map_err(|e| format!("invalid path name: {} ({})", e, name))?;
        let mut regexps: Vec<&String> = self.confs.keys().filter(|k| conf::is_regex_conf(k)).collect();
        regexps.sort_by_key(|k| (k.as_str() == "all" || k.as_str() == "all_others", k.as_str()));
        for k in regexps {
            if conf::regex_matches(k, name) {
                return Ok(k.clone());
            }
        }
        Err(format!("path '{}' is not configured", name))
    }
}

/// Fields a path takes without being recreated (pathConfCanBeUpdated); a change of any
/// other field closes the path (publisher and readers dropped, commands stopped).
const HOT_FIELDS: &[&str] = &[
    "name",
    "forward",
    "record",
    "recordPath",
    "recordFormat",
    "recordPartDuration",
    "recordMaxPartSize",
    "recordSegmentDuration",
    "recordDeleteAfter",
    "rpiCameraBrightness",
    "rpiCameraContrast",
    "rpiCameraSaturation",
    "rpiCameraSharpness",
    "rpiCameraExposure",
    "rpiCameraFlickerPeriod",
    "rpiCameraAWB",
    "rpiCameraAWBGains",
    "rpiCameraDenoise",
    "rpiCameraShutter",
    "rpiCameraMetering",
    "rpiCameraGain",
    "rpiCameraEV",
    "rpiCameraFPS",
    "rpiCameraTextOverlayEnable",
    "rpiCameraTextOverlay",
    "rpiCameraIDRPeriod",
    "rpiCameraBitrate",
];

/// pathConfCanBeUpdated: equal apart from the hot fields.
fn can_be_updated(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    let norm = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    old.keys()
        .chain(new.keys())
        .filter(|k| !HOT_FIELDS.contains(&k.as_str()))
        .all(|k| norm(old.get(k)) == norm(new.get(k)))
}

pub fn record_sig(conf: &Map<String, Value>) -> String {
    [
        "recordPath",
        "recordFormat",
        "recordSegmentDuration",
        "recordPartDuration",
        "recordMaxPartSize",
    ]
    .iter()
    .map(|k| conf.get(*k).map(|v| v.to_string()).unwrap_or_default())
    .collect::<Vec<_>>()
    .join("|")
}

fn new_path(shared: &Arc<Shared>, name: &str, conf_name: &str, conf: Map<String, Value>) -> PathRt {
    // runOnInit (refused on regexp configurations)
    let init_hook = crate::hooks::start(
        shared,
        &crate::hooks::Owner::path(name),
        "runOnInit",
        conf.get("runOnInit").and_then(|v| v.as_str()).unwrap_or(""),
        crate::hooks::path_env(shared, name, conf_name),
        conf.get("runOnInitRestart").and_then(|v| v.as_bool()).unwrap_or(false),
    );
    // an alwaysAvailable path is available from its creation (setAvailable in path.run)
    let always_available_hook = conf
        .get("alwaysAvailable")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        .then(|| {
            let s = |k: &str| conf.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let restart = conf
                .get("runOnAvailableRestart")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let mut env = crate::hooks::path_env(shared, name, conf_name);
            env.push(("MTX_QUERY".into(), String::new()));
            crate::hooks::Pair::start(
                shared,
                &crate::hooks::Owner::path(name),
                ("runOnAvailable", &s("runOnAvailable"), restart),
                ("runOnUnavailable", &s("runOnUnavailable")),
                env,
            )
        });
    PathRt {
        always_available_hook,
        forward: crate::forward::init(shared, &conf),
        offline: Default::default(),
        init_hook,
        available_hooks: Vec::new(),
        read_hooks: Vec::new(),
        gen: shared.id(),
        name: name.to_string(),
        conf_name: conf_name.to_string(),
        conf,
        created: SystemTime::now(),
        stream: None,
        publisher: None,
        available_time: None,
        readers: Vec::new(),
        set_up_readers: Vec::new(),
        demand: 0,
        idle_since: Instant::now(),
        ondemand: ProcSlot::default(),
        ondemand_query: String::new(),
        puller: ProcSlot::default(),
        recorder: RecorderSlot::default(),
        kept_until_request: false,
        available_logged: false,
    }
}

/// Closes a runtime path: kicks publisher and readers, stops its processes.
/// Returns recorder pids to wait for.
pub fn destroy_path(shared: &Arc<Shared>, p: &mut PathRt) -> Vec<i32> {
    if let Some(pb) = p.publisher.take() {
        let _ = pb.conn.shutdown(Shutdown::Both);
    }
    if let Some(s) = p.stream.take() {
        s.close();
    }
    p.available_time = None;
    // path.run's order: runOnInit, the on-demand hook, then the stream's hooks
    if let Some(h) = p.init_hook.take() {
        h.close(shared);
    }
    stop_on_demand(shared, p, "path destroyed");
    end_hooks(shared, p);
    if let Some(h) = p.always_available_hook.take() {
        if !shared.shutdown.load(Ordering::SeqCst) {
            h.end(shared);
        }
    }
    let mut wait = Vec::new();
    if let Some(pid) = p.ondemand.pid {
        crate::procs::interrupt(pid);
    }
    p.ondemand.active = false;
    if let Some(pid) = p.puller.pid {
        crate::procs::interrupt(pid);
    }
    p.puller.active = false;
    crate::forward::stop_all(p);
    crate::always_available::stop(p);
    if p.recorder.on {
        p.recorder.on = false;
        shared.log_as(&recorder_scope(&p.name), "INF", "recording stopped");
    }
    if let Some(pid) = p.recorder.pid {
        crate::procs::interrupt(pid);
        p.recorder.stopping = true;
        wait.push(pid);
    }
    wait
}

/// Brings runtime paths in line with the configuration after any config change.
/// Returns recorder pids that were asked to stop (callers may wait for them).
pub fn sync_paths(shared: &Arc<Shared>, st: &mut State) -> Vec<i32> {
    let mut wait = Vec::new();
    let names: Vec<String> = st.paths.keys().cloned().collect();
    for name in names {
        let target = st.find_conf(&name).ok();
        let keep = match &target {
            None => false,
            Some(cn) => {
                let p = &st.paths[&name];
                let eff = st.effective(cn).unwrap_or_default();
                can_be_updated(&p.conf, &eff)
            }
        };
        if keep {
            let cn = target.unwrap();
            let eff = st.effective(&cn).unwrap_or_default();
            let p = st.paths.get_mut(&name).unwrap();
            p.kept_until_request =
                conf::is_regex_conf(&cn) && (p.kept_until_request || (!conf::is_regex_conf(&p.conf_name) && unused(p)));
            p.conf = eff;
            p.conf_name = cn;
            crate::forward::reload(shared, p);
        } else {
            let mut p = st.paths.remove(&name).unwrap();
            shared.log(&format!("path {} closed (configuration changed)", name));
            wait.extend(destroy_path(shared, &mut p));
        }
    }
    // configured non-regex paths exist from creation
    let static_names: Vec<String> = st.confs.keys().filter(|k| !conf::is_regex_conf(k)).cloned().collect();
    for n in static_names {
        if !st.paths.contains_key(&n) {
            let eff = st.effective(&n).unwrap_or_default();
            let p = new_path(shared, &n, &n, eff);
            st.paths.insert(n.clone(), p);
        }
    }
    shared.cv.notify_all();
    wait
}

/// Returns the runtime path for `name`, creating it for regex confs. Err = message.
pub fn get_or_create_path<'a>(shared: &Arc<Shared>, st: &'a mut State, name: &str) -> Result<&'a mut PathRt, String> {
    if !st.paths.contains_key(name) {
        let cn = st.find_conf(name)?;
        let eff = st.effective(&cn).unwrap_or_default();
        let p = new_path(shared, name, &cn, eff);
        st.paths.insert(name.to_string(), p);
    }
    let p = st.paths.get_mut(name).unwrap();
    // an event: from now on the path goes once unused (see tick)
    p.kept_until_request = false;
    Ok(p)
}

/// Nobody uses the path: no stream, publisher, reader, demand or process (MediaMTX's
/// shouldClose, for regexp paths).
fn unused(p: &PathRt) -> bool {
    p.stream.is_none()
        && p.publisher.is_none()
        && p.demand == 0
        && p.readers.is_empty()
        && p.ondemand.pid.is_none()
        && !p.ondemand.active
        && p.puller.pid.is_none()
        && !p.puller.active
        && p.recorder.pid.is_none()
        && p.forward.iter().all(|d| d.pid.is_none())
}

pub fn start_on_demand(shared: &Arc<Shared>, p: &mut PathRt, query: &str) {
    if p.ondemand.active {
        return;
    }
    p.ondemand.active = true;
    p.ondemand.gen = shared.id();
    p.ondemand_query = query.to_string();
    p.idle_since = Instant::now();
    crate::hooks::Owner::path(&p.name).log(shared, "runOnDemand command started");
    crate::procs::spawn_on_demand(shared, p);
}

/// hooks.OnDemand's closing part: `runOnDemand command stopped: REASON`, then
/// runOnUnDemand is launched.
pub fn stop_on_demand(shared: &Arc<Shared>, p: &mut PathRt, reason: &str) {
    if !p.ondemand.active {
        return;
    }
    p.ondemand.active = false;
    if let Some(pid) = p.ondemand.pid {
        crate::procs::interrupt(pid);
    }
    if shared.shutdown.load(Ordering::SeqCst) {
        return;
    }
    let owner = crate::hooks::Owner::path(&p.name);
    owner.log(shared, &format!("runOnDemand command stopped: {}", reason));
    let mut env = crate::hooks::path_env(shared, &p.name, &p.conf_name);
    env.push(("MTX_QUERY".into(), crate::hooks::query_escape(&p.ondemand_query)));
    crate::hooks::launch(shared, &owner, "runOnUnDemand", &p.s("runOnUnDemand"), env);
}

/// Supervisor tick (every 100 ms).
pub fn tick(shared: &Arc<Shared>) {
    let mut wait_free = Vec::new();
    {
        let mut st = shared.lock();
        let names: Vec<String> = st.paths.keys().cloned().collect();
        let mut remove = Vec::new();
        let source_globals = crate::source_input::Globals::of(&st.global);
        for name in names {
            let p = st.paths.get_mut(&name).unwrap();
            let now = Instant::now();
            // runOnDemand close-after
            if p.ondemand.active && p.demand == 0 && now.duration_since(p.idle_since) >= p.d("runOnDemandCloseAfter") {
                stop_on_demand(shared, p, "not needed by anyone");
                // MediaMTX also closes the publisher of an on-demand path when it is not demanded
            }
            // pulled sources
            if p.is_url_source() {
                let wanted = if p.b("sourceOnDemand") {
                    p.demand > 0
                        || (p.puller.active && now.duration_since(p.idle_since) < p.d("sourceOnDemandCloseAfter"))
                } else {
                    true
                };
                if wanted && !p.puller.active {
                    p.puller.active = true;
                    p.puller.gen = shared.id();
                    crate::procs::spawn_puller(shared, p, source_globals);
                } else if !wanted && p.puller.active {
                    p.puller.active = false;
                    if let Some(pid) = p.puller.pid {
                        crate::procs::interrupt(pid);
                    }
                    // stream goes away with the puller
                }
            }
            // recording
            let rec_wanted = p.b("record") && p.stream.is_some();
            close_unwanted_recorder(shared, p);
            // a new ffmpeg once the last one is gone, unless the recorder skips this stream
            if p.recorder.pid.is_none()
                && rec_wanted
                && !p.recorder.skipped
                && p.recorder.retry_at.map(|t| now >= t).unwrap_or(true)
            {
                p.recorder.retry_at = None;
                crate::procs::spawn_recorder(shared, p);
            }
            crate::forward::tick(shared, p, now, source_globals);
            crate::always_available::tick(shared, p, now);
            // regex-path instances disappear when unused (after their last event: within
            // 100 ms here)
            if conf::is_regex_conf(&p.conf_name) && !p.kept_until_request && unused(p) {
                remove.push(name.clone());
            }
        }
        for n in remove {
            if let Some(mut p) = st.paths.remove(&n) {
                wait_free.extend(destroy_path(shared, &mut p));
            }
        }
    }
    let _ = wait_free;
}

/// MediaMTX's path log (`LVL [path NAME] ...`) for the stream's parts; a weak handle, so
/// that a stream kept by the state does not keep the state alive.
fn path_logger(shared: &Arc<Shared>, name: &str) -> crate::rtp_split::PathLog {
    let (weak, scope) = (Arc::downgrade(shared), Scope::path(name));
    Arc::new(move |level, msg| {
        if let Some(sh) = weak.upgrade() {
            sh.log_as(&scope, level, msg);
        }
    })
}

/// Sets the stream of a path when its publisher starts recording.
pub fn publish_start(shared: &Arc<Shared>, p: &mut PathRt, pb: Publisher, sdp: Sdp, max_payload: usize) -> Arc<Stream> {
    if let Some(old) = p.publisher.take() {
        let _ = old.conn.shutdown(Shutdown::Both);
    }
    let always = p.b("alwaysAvailable");
    // alwaysAvailable: the stream stays, with its readers, when the producer changes
    let kept =
        p.stream.take().and_then(
            |s| match always && s.restamp.is_some() && s.sdp.medias.len() == sdp.medias.len() {
                true => Some(s),
                false => {
                    s.close();
                    None
                }
            },
        );
    end_hooks(shared, p);
    // hooks.OnAvailable / OnOnline
    let mut env = crate::hooks::path_env(shared, &p.name, &p.conf_name);
    env.push(("MTX_QUERY".into(), crate::hooks::query_escape(&pb.query)));
    if pb.internal {
        env.push(("MTX_SOURCE_TYPE".into(), p.url_source_type().into()));
        env.push(("MTX_SOURCE_ID".into(), String::new()));
    } else {
        env.push(("MTX_SOURCE_TYPE".into(), pb.source_type.into()));
        env.push(("MTX_SOURCE_ID".into(), pb.id.clone()));
    }
    for (on, off, restart) in [
        ("runOnAvailable", "runOnUnavailable", "runOnAvailableRestart"),
        ("runOnOnline", "runOnOffline", "runOnOnlineRestart"),
    ] {
        // the offline stream runs no hooks; an alwaysAvailable path's publishers only
        // bring it online
        if pb.offline || (always && on == "runOnAvailable") {
            continue;
        }
        let (a, b, r) = (p.s(on), p.s(off), p.b(restart));
        if !a.is_empty() || !b.is_empty() {
            let owner = crate::hooks::Owner::path(&p.name);
            let pair = crate::hooks::Pair::start(shared, &owner, (on, &a, r), (off, &b), env.clone());
            p.available_hooks.push(pair);
        }
    }
    let props = sdp.medias.iter().map(|m| m.props.clone()).collect();
    let sdp_medias = sdp.medias.len();
    let stream = match kept {
        Some(s) => {
            if let Some(r) = &s.restamp {
                r.lock().unwrap().switch(&sdp);
            }
            s.split.lock().unwrap().new_producer();
            *s.props.lock().unwrap() = props;
            s
        }
        None => Arc::new(Stream {
            id: shared.id(),
            restamp: always.then(|| Mutex::new(crate::restamp::Restamper::new(&sdp))),
            split: Mutex::new(crate::rtp_split::Splitter::new(
                &sdp,
                max_payload,
                path_logger(shared, &p.name),
            )),
            sdp,
            props: Mutex::new(props),
            sinks: Mutex::new(Vec::new()),
            inbound: AtomicU64::new(0),
            outbound: AtomicU64::new(0),
            ssrc: (0..sdp_medias).map(|_| crate::util::random_u32()).collect(),
            last_sent: Mutex::new(Vec::new()),
        }),
    };
    // path.setAvailable's line (an alwaysAvailable path's stream is available once, from
    // its first producer), then the publisher's
    let tracks = crate::media::tracks_info(&stream.sdp.medias);
    if !always {
        shared.log_as(
            &Scope::path(&p.name),
            "INF",
            &format!("stream is available and online, {}", tracks),
        );
    } else if !p.available_logged {
        shared.log_as(
            &Scope::path(&p.name),
            "INF",
            &format!("stream is available, {}", tracks),
        );
        p.available_logged = true;
    }
    if let Some(scope) = &pb.scope {
        shared.log_as(scope, "INF", &format!("is publishing to path '{}'", p.name));
    }
    p.stream = Some(stream.clone());
    p.publisher = Some(pb);
    p.available_time = Some(SystemTime::now());
    shared.cv.notify_all();
    stream
}

pub fn publish_stop(shared: &Arc<Shared>, st: &mut State, name: &str, conn_id: u64) {
    if let Some(p) = st.paths.get_mut(name) {
        if p.publisher.as_ref().map(|pb| pb.conn_id) == Some(conn_id) {
            p.publisher = None;
            // alwaysAvailable: readers wait on the stream for the offline stream
            if !p.b("alwaysAvailable") {
                if let Some(s) = p.stream.take() {
                    s.close();
                }
            }
            end_hooks(shared, p);
            p.available_time = None;
            shared.log(&format!("path {}: stream not available", name));
            shared.cv.notify_all();
        }
    }
}

/// The stream went away: runOnAvailable/runOnOnline stop, runOnUnavailable/runOnOffline
/// and every reader's runOnUnread are launched.
fn end_hooks(shared: &Arc<Shared>, p: &mut PathRt) {
    if shared.shutdown.load(Ordering::SeqCst) {
        // the double is exiting: nothing new is started
        for h in p.available_hooks.drain(..) {
            drop(h);
        }
        p.read_hooks.clear();
        return;
    }
    for h in p.available_hooks.drain(..) {
        h.end(shared);
    }
    for (_, h) in p.read_hooks.drain(..) {
        h.end(shared);
    }
}

/// A reader (id, API type, logger scope) started playing: runOnRead (hooks.OnRead).
pub fn reader_added(
    shared: &Arc<Shared>,
    p: &mut PathRt,
    conn_id: u64,
    (reader_id, reader_type, scope): (&str, &str, Scope),
    query: &str,
) {
    let (a, b) = (p.s("runOnRead"), p.s("runOnUnread"));
    if a.is_empty() && b.is_empty() {
        return;
    }
    let mut env = crate::hooks::path_env(shared, &p.name, &p.conf_name);
    env.push(("MTX_QUERY".into(), crate::hooks::query_escape(query)));
    env.push(("MTX_READER_TYPE".into(), reader_type.into()));
    env.push(("MTX_READER_ID".into(), reader_id.to_string()));
    let restart = p.b("runOnReadRestart");
    // logged by the reader, its output in the path's log files
    let owner = crate::hooks::Owner::of(scope, &p.name);
    let pair = crate::hooks::Pair::start(shared, &owner, ("runOnRead", &a, restart), ("runOnUnread", &b), env);
    p.read_hooks.push((conn_id, pair));
}

/// A reader left: runOnRead stops, runOnUnread is launched.
pub fn reader_removed(shared: &Arc<Shared>, p: &mut PathRt, conn_id: u64) {
    let (gone, keep): (Vec<_>, Vec<_>) = p.read_hooks.drain(..).partition(|(c, _)| *c == conn_id);
    p.read_hooks = keep;
    for (_, h) in gone {
        h.end(shared);
    }
}

fn opt_time(t: Option<SystemTime>) -> Value {
    match t {
        Some(t) => json!(crate::util::rfc3339_nano(t)),
        None => Value::Null,
    }
}

/// The v1.20.1 Path object.
pub fn path_json(p: &PathRt) -> Value {
    // an alwaysAvailable path is available from its creation, online with a publisher
    let always = p.b("alwaysAvailable");
    let available = p.stream.is_some() || always;
    let available_time = if always { Some(p.created) } else { p.available_time };
    let (source, online, online_time) = if p.is_url_source() {
        (json!({"type": p.url_source_type(), "id": ""}), true, Some(p.created))
    } else if let Some(pb) = p.publisher.as_ref().filter(|pb| !pb.offline) {
        (json!({"type": pb.source_type, "id": pb.id}), true, p.available_time)
    } else {
        (Value::Null, false, None)
    };
    let (tracks, tracks2, inb, outb, frames_in_error) = match &p.stream {
        Some(s) => {
            let props = s.props.lock().unwrap();
            let tracks: Vec<Value> = s.sdp.medias.iter().map(|m| json!(m.codec)).collect();
            let tracks2: Vec<Value> = s
                .sdp
                .medias
                .iter()
                .enumerate()
                .map(|(i, m)| json!({"codec": m.codec, "codecProps": props.get(i).cloned().flatten()}))
                .collect();
            (
                tracks,
                tracks2,
                s.inbound.load(Ordering::Relaxed),
                s.outbound.load(Ordering::Relaxed),
                s.split.lock().unwrap().frames_in_error(),
            )
        }
        None => (vec![], vec![], 0, 0, 0),
    };
    let readers: Vec<Value> = p
        .readers
        .iter()
        .map(|(_, id, kind)| json!({"type": kind, "id": id}))
        .collect();
    json!({
        "name": p.name,
        "confName": p.conf_name,
        "source": source,
        "ready": available,
        "readyTime": opt_time(if available { available_time } else { None }),
        "available": available,
        "availableTime": opt_time(if available { available_time } else { None }),
        "online": online,
        "onlineTime": opt_time(if online { online_time } else { None }),
        "tracks": tracks,
        "tracks2": tracks2,
        "inboundBytes": inb,
        "outboundBytes": outb,
        "inboundFramesInError": frames_in_error,
        "bytesReceived": inb,
        "bytesSent": outb,
        "readers": readers,
    })
}

pub fn fields_for(global: bool) -> &'static [Field] {
    if global {
        GLOBAL_FIELDS
    } else {
        PATH_FIELDS
    }
}

/// path.doAddReader for readers other than RTSP's DESCRIBE: the stream if there is one;
/// else an on-demand command or on-demand pulled source is started and waited for (its
/// start timeout), the reader counting as demand meanwhile. Err = MediaMTX's text.
pub fn await_stream(shared: &Arc<Shared>, name: &str, query: &str) -> Result<Arc<Stream>, String> {
    let mut st = shared.lock();
    let p = get_or_create_path(shared, &mut st, name)?;
    if let Some(s) = &p.stream {
        return Ok(s.clone());
    }
    let timeout = if p.has_on_demand() {
        p.demand += 1;
        start_on_demand(shared, p, query);
        p.d("runOnDemandStartTimeout")
    } else if p.is_url_source() && p.b("sourceOnDemand") {
        p.demand += 1;
        p.d("sourceOnDemandStartTimeout")
    } else {
        return Err(format!("no stream is available on path '{}'", name));
    };
    let gen = p.gen;
    let deadline = Instant::now() + timeout;
    let mut res = Err(format!("source of path '{}' has timed out", name));
    loop {
        let Some(p) = st.paths.get(name).filter(|p| p.gen == gen) else {
            return Err(format!("no stream is available on path '{}'", name));
        };
        if let Some(s) = &p.stream {
            res = Ok(s.clone());
            break;
        }
        let now = Instant::now();
        if now >= deadline || shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        st = shared
            .cv
            .wait_timeout(st, (deadline - now).min(Duration::from_millis(200)))
            .unwrap()
            .0;
    }
    if let Some(p) = st.paths.get_mut(name).filter(|p| p.gen == gen) {
        p.demand = p.demand.saturating_sub(1);
        if p.demand == 0 {
            p.idle_since = Instant::now();
        }
    }
    res
}
