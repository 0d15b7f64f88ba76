//! SRT server like MediaMTX's internal/servers/srt: one UDP listener, stream ids
//! `publish:<path>[:user:pass][:query]` / `read:...` (or `#!::r=...,m=publish`), path
//! lookup and authentication before the handshake completes (refusals answer REJ_PEER),
//! per-path passphrases. MPEG-TS is not demuxed here: a publisher's payload goes into an
//! ffmpeg relay that publishes into the double's own RTSP server, a reader gets the
//! output of an ffmpeg relay reading from it (both hidden like the recorder; srt_conn.rs).

use crate::core::Shared;
use crate::srt_packet::{self as pk, Handshake, KeyMaterial};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// packets kept for retransmission / waiting for the peer's window, and out-of-order
/// packets held by the receiver: bounded
pub(crate) const MAX_BUFFERED: usize = 8192;
/// receiver latency the double asks for (gosrt's default)
const LATENCY_MS: u16 = 120;

/// What `/v3/srtconns` shows of a connection.
pub struct ConnInfo {
    pub id: String,
    pub created: SystemTime,
    pub remote: SocketAddr,
    pub info: Mutex<Meta>,
    pub stats: Stats,
    pub kick: AtomicBool,
}

#[derive(Default)]
pub struct Meta {
    pub state: &'static str,
    pub path: String,
    pub query: String,
    pub user: String,
}

#[derive(Default)]
pub struct Stats {
    pub pkt_sent: AtomicU64,
    pub pkt_recv: AtomicU64,
    pub pkt_sent_unique: AtomicU64,
    pub pkt_recv_unique: AtomicU64,
    pub pkt_recv_loss: AtomicU64,
    pub pkt_send_loss: AtomicU64,
    pub pkt_retrans: AtomicU64,
    pub pkt_recv_retrans: AtomicU64,
    pub pkt_sent_ack: AtomicU64,
    pub pkt_recv_ack: AtomicU64,
    pub pkt_sent_nak: AtomicU64,
    pub pkt_recv_nak: AtomicU64,
    pub pkt_recv_km: AtomicU64,
    pub pkt_recv_undecrypt: AtomicU64,
    pub byte_sent: AtomicU64,
    pub byte_recv: AtomicU64,
    pub byte_sent_unique: AtomicU64,
    pub byte_recv_unique: AtomicU64,
    pub byte_retrans: AtomicU64,
    pub flow_window: AtomicU64,
    pub rtt_us: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl ConnInfo {
    /// The connection's logger (`[SRT] [conn IP:P]`).
    pub fn scope(&self) -> crate::logger::Scope {
        crate::logger::Scope::conn("SRT", self.remote)
    }

    /// A connection request, `idle` until it publishes or reads (conn.initialize).
    fn new(remote: SocketAddr) -> Arc<ConnInfo> {
        Arc::new(ConnInfo {
            id: crate::util::uuid(),
            created: SystemTime::now(),
            remote,
            info: Mutex::new(Meta {
                state: "idle",
                ..Default::default()
            }),
            stats: Stats::default(),
            kick: AtomicBool::new(false),
        })
    }

    /// The SRTConn object (packet counters the double keeps; the others are 0).
    pub fn json(&self) -> serde_json::Value {
        let m = self.info.lock().unwrap();
        // MediaMTX sets path, query and the socket (its counters) together with the
        // state: while `idle` they are empty
        let idle = m.state == "idle";
        let s = &self.stats;
        let g = |c: &AtomicU64| if idle { 0 } else { c.load(Ordering::Relaxed) };
        let shown = |v: &str| if idle { String::new() } else { v.to_string() };
        let mut v = serde_json::json!({
            "id": self.id,
            "created": crate::util::rfc3339_nano(self.created),
            "remoteAddr": self.remote.to_string(),
            "state": m.state,
            "path": shown(&m.path),
            "query": shown(&m.query),
            "user": m.user,
            "packetsSent": g(&s.pkt_sent),
            "packetsReceived": g(&s.pkt_recv),
            "packetsSentUnique": g(&s.pkt_sent_unique),
            "packetsReceivedUnique": g(&s.pkt_recv_unique),
            "packetsSendLoss": g(&s.pkt_send_loss),
            "packetsReceivedLoss": g(&s.pkt_recv_loss),
            "packetsRetrans": g(&s.pkt_retrans),
            "packetsReceivedRetrans": g(&s.pkt_recv_retrans),
            "packetsSentACK": g(&s.pkt_sent_ack),
            "packetsReceivedACK": g(&s.pkt_recv_ack),
            "packetsSentNAK": g(&s.pkt_sent_nak),
            "packetsReceivedNAK": g(&s.pkt_recv_nak),
            "packetsSentKM": 0,
            "packetsReceivedKM": g(&s.pkt_recv_km),
            "packetsReceivedUndecrypt": g(&s.pkt_recv_undecrypt),
            "bytesSent": g(&s.byte_sent),
            "bytesReceived": g(&s.byte_recv),
            "bytesSentUnique": g(&s.byte_sent_unique),
            "bytesReceivedUnique": g(&s.byte_recv_unique),
            "bytesRetrans": g(&s.byte_retrans),
            "packetsFlowWindow": g(&s.flow_window),
            "msRTT": g(&s.rtt_us) as f64 / 1000.0,
            "byteMSS": if idle { 0 } else { 1500 },
            "outboundFramesDiscarded": 0,
        });
        let o = v.as_object_mut().unwrap();
        for k in [
            "usSndDuration",
            "packetsReceivedBelated",
            "packetsSendDrop",
            "packetsReceivedDrop",
            "bytesReceivedLoss",
            "bytesReceivedRetrans",
            "bytesReceivedBelated",
            "bytesSendDrop",
            "bytesReceivedDrop",
            "bytesReceivedUndecrypt",
            "usPacketsSendPeriod",
            "packetsFlightSize",
            "mbpsSendRate",
            "mbpsReceiveRate",
            "mbpsLinkCapacity",
            "bytesAvailSendBuf",
            "bytesAvailReceiveBuf",
            "mbpsMaxBW",
            "packetsSendBuf",
            "bytesSendBuf",
            "msSendBuf",
            "msSendTsbPdDelay",
            "packetsReceiveBuf",
            "bytesReceiveBuf",
            "msReceiveBuf",
            "msReceiveTsbPdDelay",
            "packetsReorderTolerance",
            "packetsReceivedAvgBelatedTime",
            "packetsSendLossRate",
            "packetsReceivedLossRate",
        ] {
            o.insert(k.into(), serde_json::json!(0));
        }
        v
    }
}

pub fn find(shared: &Shared, id: &str) -> Option<Arc<ConnInfo>> {
    shared.srt_conns.lock().unwrap().iter().find(|c| c.id == id).cloned()
}

/// The connection whose relay now publishes to the path: it is `publish` from here on
/// (MediaMTX: once its tracks are read and the path took it as publisher).
pub fn publishing(shared: &Shared, id: &str) -> Option<Arc<ConnInfo>> {
    let c = find(shared, id)?;
    c.info.lock().unwrap().state = "publish";
    Some(c)
}

/// Closes every SRT connection (restart, shutdown).
pub fn kick_all(shared: &Shared) {
    for c in shared.srt_conns.lock().unwrap().iter() {
        c.kick.store(true, Ordering::SeqCst);
    }
}

/// A parsed stream id (streamid.go).
#[derive(Debug, Default, PartialEq)]
pub struct StreamId {
    pub publish: bool,
    pub path: String,
    pub query: String,
    pub user: String,
    pub pass: String,
}

const SID_SYNTAX: &str = "stream ID must be 'action:pathname[:query]' or 'action:pathname:user:pass[:query]', \
where action is either read or publish, pathname is the path name, user and pass are the credentials, \
query is an optional token containing additional information";

pub fn parse_stream_id(raw: &str) -> Result<StreamId, String> {
    let mut s = StreamId::default();
    if let Some(rest) = raw.strip_prefix("#!::") {
        // the standard syntax (access-control.md)
        for kv in rest.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                return Err("invalid value".into());
            };
            match k {
                "u" => s.user = v.into(),
                "r" => s.path = v.into(),
                "s" => s.pass = v.into(),
                "m" => match v {
                    "request" => s.publish = false,
                    "publish" => s.publish = true,
                    _ => return Err(format!("unsupported mode '{}'", v)),
                },
                _ => {}
            }
        }
        return Ok(s);
    }
    let mut parts: Vec<&str> = raw.split(':').collect();
    if parts.len() < 2 || parts.len() > 5 {
        return Err(SID_SYNTAX.into());
    }
    let last = parts.len() - 1;
    parts[last] = parts[last].strip_suffix("#feedbackplay").unwrap_or(parts[last]);
    s.publish = match parts[0] {
        "read" => false,
        "publish" => true,
        _ => return Err(SID_SYNTAX.into()),
    };
    s.path = parts[1].into();
    if parts.len() >= 4 {
        s.user = parts[2].into();
        s.pass = parts[3].into();
    }
    match parts.len() {
        3 => s.query = parts[2].into(),
        5 => s.query = parts[4].into(),
        _ => {}
    }
    Ok(s)
}

/// Events of one connection: packets routed by the listener, MPEG-TS from a reader relay.
pub(crate) enum Ev {
    Net(Vec<u8>),
    Media(Vec<u8>),
    MediaEnd,
}

/// socket id → (peer address, the connection's queue)
type Routes = Arc<Mutex<HashMap<u32, (SocketAddr, SyncSender<Ev>)>>>;

/// open connections at most (each runs an ffmpeg relay)
const MAX_CONNS: usize = 64;

enum Pending {
    Deciding,
    Answered(Vec<u8>, Instant),
}

/// The listener's socket and the settings it was started with: `sync` restarts it when
/// they change, like MediaMTX's core closes and recreates its SRT server.
#[derive(Default)]
pub struct Listener(Mutex<Running>);

#[derive(Default)]
struct Running {
    settings: Option<Vec<serde_json::Value>>,
    sock: Option<Arc<UdpSocket>>,
    /// the socket of a closed server (at first the one bound at start), taken again by a
    /// start on its port
    idle: Option<Arc<UdpSocket>>,
    /// the settings whose bind failed (logged once)
    failed: Option<Vec<serde_json::Value>>,
}

/// The global fields whose change closes the SRT server (core.go closeSRTServer, its own
/// fields; srtAddress second).
const SERVER_FIELDS: [&str; 9] = [
    "srt",
    "srtAddress",
    "rtspAddress",
    "readTimeout",
    "writeTimeout",
    "udpMaxPayloadSize",
    "runOnConnect",
    "runOnConnectRestart",
    "runOnDisconnect",
];

impl Listener {
    fn socket(&self) -> Option<Arc<UdpSocket>> {
        self.0.lock().unwrap().sock.clone()
    }

    /// Whether `sock` is still the server's (not closed while the loop waited on it).
    fn serves(&self, sock: &Arc<UdpSocket>) -> bool {
        self.socket().is_some_and(|s| Arc::ptr_eq(&s, sock))
    }
}

/// The server's settings, None while `srt` is off.
fn settings(shared: &Shared) -> Option<Vec<serde_json::Value>> {
    let st = shared.lock();
    let g = |k: &str| st.global.get(k).cloned().unwrap_or(serde_json::Value::Null);
    (g("srt").as_bool() != Some(false)).then(|| {
        let mut v: Vec<_> = SERVER_FIELDS.iter().map(|k| g(k)).collect();
        // and what closes the metrics server, path manager and logger
        v.extend(crate::servers::media_server_dependencies(&st.global));
        v
    })
}

/// Closes the server when `srt` was turned off or its settings changed (MediaMTX closes
/// and recreates its SRT server): its connections end (Server.Close cancels their
/// context); the socket is kept aside for a restart on the same address.
pub fn close_if_changed(shared: &Shared, old_log: &Mutex<crate::logger::LogConf>) {
    let wanted = settings(shared);
    let mut r = shared.srt.0.lock().unwrap();
    if r.sock.is_none() || r.settings == wanted {
        return;
    }
    crate::servers::log_closing(shared, old_log, "SRT");
    kick_all(shared);
    r.idle = r.sock.take();
    r.settings = None;
}

/// Starts the server when it is off and `srt` is on: on the kept socket when its port is
/// that of `srtAddress`, else on a new one. A bind that fails is logged once and retried
/// (MediaMTX exits).
pub fn start_if_wanted(shared: &Shared) {
    let wanted = settings(shared);
    let mut r = shared.srt.0.lock().unwrap();
    if r.sock.is_some() {
        return;
    }
    let Some(wanted) = wanted else {
        (r.idle, r.failed) = (None, None);
        return;
    };
    let addr = wanted[1].as_str().unwrap_or("").to_string();
    let port = crate::conf::port_of(&addr);
    let kept = r.idle.take().filter(|s| s.local_addr().ok().map(|a| a.port()) == port);
    let sock = match (kept, port) {
        (Some(s), _) => Ok(s),
        (None, Some(p)) => UdpSocket::bind(("127.0.0.1", p))
            .map(Arc::new)
            .map_err(|e| format!("listen udp {}: bind: {}", addr, crate::conf::go_io_error(&e))),
        (None, None) => Err(format!("invalid address '{}'", addr)),
    };
    match sock {
        Ok(s) => {
            // the receive loop checks the configuration between waits
            let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
            shared.log(&format!("INF [SRT] started with listener on {} (UDP/SRT)", addr));
            (r.sock, r.settings, r.failed) = (Some(s), Some(wanted), None);
        }
        Err(e) if r.failed.as_ref() != Some(&wanted) => {
            shared.log(&format!("ERR {}", e));
            r.failed = Some(wanted);
        }
        Err(_) => {}
    }
}

/// Retries a bind that failed; starting a server the configuration turned on is
/// `servers::sync`'s, after the other servers (MediaMTX starts SRT last).
fn retry_failed_start(shared: &Shared) {
    let failed = shared.srt.0.lock().unwrap().failed.is_some();
    if failed {
        start_if_wanted(shared);
    }
}

/// The listener: handshakes for socket 0, everything else routed to its connection.
pub fn serve(shared: Arc<Shared>, first: UdpSocket) {
    shared.srt.0.lock().unwrap().idle = Some(Arc::new(first));
    start_if_wanted(&shared);
    let routes: Routes = Default::default();
    let pending: Arc<Mutex<HashMap<(SocketAddr, u32), Pending>>> = Default::default();
    let secret = crate::util::random_bytes(8);
    let mut buf = vec![0u8; 2048];
    let mut checked = Instant::now();
    while !shared.shutdown.load(Ordering::SeqCst) {
        if checked.elapsed() >= Duration::from_millis(200) {
            checked = Instant::now();
            retry_failed_start(&shared);
        }
        let Some(sock) = shared.srt.socket() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) if shared.srt.serves(&sock) => r,
            _ => continue,
        };
        let pkt = &buf[..n];
        let Some(dest) = pk::dest_socket(pkt) else { continue };
        if dest != 0 {
            if let Some((peer, tx)) = routes.lock().unwrap().get(&dest) {
                if *peer == from {
                    // a full queue drops the packet, like a full socket buffer
                    let _ = tx.try_send(Ev::Net(pkt.to_vec()));
                }
            }
            continue;
        }
        let Some(c) = pk::parse_control(pkt).filter(|c| c.kind == pk::CTRL_HANDSHAKE) else {
            continue;
        };
        let Some(hs) = Handshake::parse(c.cif) else { continue };
        let cookie = syn_cookie(&secret, from);
        if hs.hs_type == pk::HS_INDUCTION {
            let resp = Handshake {
                version: 5,
                ext_field: pk::SRT_MAGIC,
                hs_type: pk::HS_INDUCTION,
                socket_id: new_socket_id(),
                cookie,
                peer_ip: peer_ip(from),
                ..hs.clone()
            };
            let _ = sock.send_to(&pk::control(0, 0, 0, hs.socket_id, &resp.encode(None, None)), from);
            continue;
        }
        if hs.hs_type != pk::HS_CONCLUSION || hs.cookie != cookie || hs.version != 5 {
            continue;
        }
        let key = (from, hs.socket_id);
        let mut pend = pending.lock().unwrap();
        pend.retain(|_, p| !matches!(p, Pending::Answered(_, t) if t.elapsed() > Duration::from_secs(10)));
        match pend.get(&key) {
            Some(Pending::Answered(resp, _)) => {
                let _ = sock.send_to(resp, from);
                continue;
            }
            Some(Pending::Deciding) => continue,
            None if pend.len() >= 256 => continue,
            None => {}
        }
        pend.insert(key, Pending::Deciding);
        drop(pend);
        // deciding may pause (auth failures): not on the listener's thread
        let (sh, so, ro, pe) = (shared.clone(), sock.clone(), routes.clone(), pending.clone());
        std::thread::spawn(move || {
            let resp = conclude(&sh, &so, &ro, from, hs);
            let _ = so.send_to(&resp, from);
            pe.lock().unwrap().insert(key, Pending::Answered(resp, Instant::now()));
        });
    }
}

fn syn_cookie(secret: &[u8], from: SocketAddr) -> u32 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(secret);
    h.update(from.to_string().as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn new_socket_id() -> u32 {
    let b = crate::util::random_bytes(4);
    (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x3FFF_FFFF).max(1)
}

/// The peer's IPv4 address as libsrt writes it (first word, bytes reversed).
fn peer_ip(a: SocketAddr) -> [u8; 16] {
    let mut ip = [0u8; 16];
    if let std::net::IpAddr::V4(v4) = a.ip() {
        let o = v4.octets();
        ip[..4].copy_from_slice(&[o[3], o[2], o[1], o[0]]);
    }
    ip
}

fn reject(hs: &Handshake, from: SocketAddr) -> Vec<u8> {
    let resp = Handshake {
        version: 5,
        ext_field: 0,
        hs_type: pk::REJ_PEER,
        socket_id: 0,
        peer_ip: peer_ip(from),
        ..hs.clone()
    };
    pk::control(0, 0, 0, hs.socket_id, &resp.encode(None, None))
}

/// What an accepted connection needs from its handshake.
struct Accepted {
    sid: StreamId,
    keys: Option<pk::Sek>,
}

/// conn.run: the connection exists from its conclusion handshake (listed `idle`,
/// `runOnConnect` started) until it is refused or closed. Returns the handshake answer
/// (rejection or conclusion).
fn conclude(shared: &Arc<Shared>, sock: &Arc<UdpSocket>, routes: &Routes, from: SocketAddr, hs: Handshake) -> Vec<u8> {
    let info = ConnInfo::new(from);
    {
        let mut conns = shared.srt_conns.lock().unwrap();
        if conns.len() >= MAX_CONNS {
            drop(conns);
            shared.log_as(&info.scope(), "INF", "closed: too many connections");
            return reject(&hs, from);
        }
        conns.push(info.clone());
    }
    shared.log_as(&info.scope(), "INF", "opened");
    let hooks = crate::hooks::on_connect(shared, info.scope(), "srtConn", &info.id);
    let accepted = match admit(shared, &info, &hs) {
        Ok(a) => a,
        Err(e) => {
            // removed before the rejection goes out
            closed(shared, &info, &e, hooks);
            return reject(&hs, from);
        }
    };
    let our_id = new_socket_id();
    let (rcv, snd) = hs.hsreq.map(|(_, _, r, s)| (r, s)).unwrap_or((0, 0));
    let resp = Handshake {
        version: 5,
        encryption: 0,
        ext_field: 0x1 | if accepted.keys.is_some() { 0x2 } else { 0 },
        flow_window: 8192,
        hs_type: pk::HS_CONCLUSION,
        socket_id: our_id,
        peer_ip: peer_ip(from),
        ..hs.clone()
    };
    let kmrsp = accepted.keys.as_ref().and(hs.kmreq.as_deref());
    let answer = pk::control(
        0,
        0,
        0,
        hs.socket_id,
        &resp.encode(Some((snd.max(LATENCY_MS), rcv.max(LATENCY_MS))), kmrsp),
    );
    info.stats.flow_window.store(hs.flow_window as u64, Ordering::Relaxed);
    if accepted.keys.is_some() {
        add(&info.stats.pkt_recv_km, 1);
    }
    let (tx, rx) = sync_channel(4096);
    routes.lock().unwrap().insert(our_id, (from, tx.clone()));
    let conn = crate::srt_conn::Conn {
        shared: shared.clone(),
        sock: sock.clone(),
        peer: from,
        peer_id: hs.socket_id,
        info: info.clone(),
        keys: accepted.keys,
        isn: hs.isn,
        peer_window: hs.flow_window.clamp(32, MAX_BUFFERED as u32) as usize,
        start: Instant::now(),
        last_sent: Instant::now(),
    };
    let (sh, ro) = (shared.clone(), routes.clone());
    std::thread::spawn(move || {
        let reason = conn.run(accepted.sid, tx, rx);
        ro.lock().unwrap().remove(&our_id);
        closed(&sh, &info, &reason, hooks);
    });
    answer
}

/// The end of a connection, refused or not: unlisted, logged, `runOnDisconnect`.
fn closed(shared: &Arc<Shared>, info: &ConnInfo, reason: &str, hooks: Option<crate::hooks::Pair>) {
    shared.srt_conns.lock().unwrap().retain(|c| c.id != info.id);
    shared.log_as(&info.scope(), "INF", &format!("closed: {}", reason));
    crate::hooks::on_disconnect(shared, hooks);
}

/// conn.runInner up to Accept(): the stream id, FindPathConf + authentication (publish)
/// or AddReader (read), then the passphrase.
fn admit(shared: &Arc<Shared>, info: &ConnInfo, hs: &Handshake) -> Result<Accepted, String> {
    let raw = hs.stream_id.clone().unwrap_or_default();
    let sid = parse_stream_id(&raw).map_err(|e| format!("invalid stream ID '{}': {}", raw, e))?;
    let (global, conf) = {
        let st = shared.lock();
        let cn = st.find_conf(&sid.path)?;
        (st.global.clone(), st.effective(&cn).unwrap_or_default())
    };
    let areq = crate::auth::Request {
        action: if sid.publish { "publish" } else { "read" },
        path: &sid.path,
        ip: info.remote.ip(),
        creds: crate::auth::Creds {
            user: sid.user.clone(),
            pass: sid.pass.clone(),
            token: String::new(),
        },
        verify: None,
        ask_credentials: false,
        protocol: "srt",
        id: Some(&info.id),
        query: &sid.query,
        user_agent: "",
    };
    if let Err(e) = crate::auth::authenticate(shared, &global, &areq) {
        // auth.LogAndDelayError
        std::thread::sleep(crate::auth::failure_pause());
        return Err(e.to_string());
    }
    {
        let mut m = info.info.lock().unwrap();
        (m.path, m.query) = (sid.path.clone(), sid.query.clone());
        if sid.publish {
            // a publisher's user is shown from here, a reader's with its state
            m.user = sid.user.clone();
        }
    }
    let passphrase_key = if sid.publish {
        "srtPublishPassphrase"
    } else {
        "srtReadPassphrase"
    };
    if !sid.publish {
        let st = wait_on_demand(shared, &sid);
        let p = st.paths.get(&sid.path).filter(|p| p.stream.is_some());
        let Some(p) = p else {
            return Err(format!("no stream is available on path '{}'", sid.path));
        };
        let max = p.conf.get("maxReaders").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        if max != 0 && p.readers.len() >= max {
            return Err("maximum reader count reached".into());
        }
    }
    let passphrase = conf
        .get(passphrase_key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let keys = check_passphrase(hs, &passphrase)?;
    Ok(Accepted { sid, keys })
}

/// path.addReader: a path with `runOnDemand` (or an on-demand URL source) without stream
/// starts it and waits up to its start timeout for the stream.
fn wait_on_demand<'a>(shared: &'a Arc<Shared>, sid: &StreamId) -> std::sync::MutexGuard<'a, crate::core::State> {
    let mut st = shared.lock();
    let Ok(p) = crate::core::get_or_create_path(shared, &mut st, &sid.path) else {
        return st;
    };
    let timeout = if p.stream.is_some() {
        return st;
    } else if p.has_on_demand() {
        crate::core::start_on_demand(shared, p, &sid.query);
        p.d("runOnDemandStartTimeout")
    } else if p.is_url_source() && p.b("sourceOnDemand") {
        p.d("sourceOnDemandStartTimeout")
    } else {
        return st;
    };
    p.demand += 1;
    let gen = p.gen;
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        match st.paths.get(&sid.path).filter(|p| p.gen == gen) {
            Some(p) if p.stream.is_none() && now < deadline && !shared.shutdown.load(Ordering::SeqCst) => {}
            _ => break,
        }
        st = shared
            .cv
            .wait_timeout(st, (deadline - now).min(Duration::from_millis(200)))
            .unwrap()
            .0;
    }
    if let Some(p) = st.paths.get_mut(&sid.path).filter(|p| p.gen == gen) {
        p.demand = p.demand.saturating_sub(1);
        if p.demand == 0 {
            p.idle_since = Instant::now();
        }
    }
    st
}

/// srtCheckPassphrase: the SEK (and salt) when the connection is encrypted.
fn check_passphrase(hs: &Handshake, passphrase: &str) -> Result<Option<pk::Sek>, String> {
    if passphrase.is_empty() {
        if hs.kmreq.is_some() {
            // the double cannot answer an encrypted caller without a passphrase
            return Err("passphrase not set on the server".into());
        }
        return Ok(None);
    }
    let Some(km) = hs.kmreq.as_deref().and_then(KeyMaterial::parse) else {
        return Err("passphrase not provided by client".into());
    };
    km.unwrap_key(passphrase)
        .map(Some)
        .ok_or_else(|| "invalid passphrase".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids() {
        let s = parse_stream_id("publish:a/b:u:p:q=1").unwrap();
        assert_eq!(
            (
                s.publish,
                s.path.as_str(),
                s.user.as_str(),
                s.pass.as_str(),
                s.query.as_str()
            ),
            (true, "a/b", "u", "p", "q=1")
        );
        let s = parse_stream_id("read:x:tok#feedbackplay").unwrap();
        assert_eq!((s.publish, s.query.as_str()), (false, "tok"));
        let s = parse_stream_id("#!::r=cam,m=publish,u=a,s=b").unwrap();
        assert_eq!((s.publish, s.path.as_str(), s.user.as_str()), (true, "cam", "a"));
        assert_eq!(parse_stream_id("#!::m=play").unwrap_err(), "unsupported mode 'play'");
        assert_eq!(parse_stream_id("#!::r").unwrap_err(), "invalid value");
        assert_eq!(parse_stream_id("x:y").unwrap_err(), SID_SYNTAX);
        assert_eq!(parse_stream_id("read").unwrap_err(), SID_SYNTAX);
        assert_eq!(parse_stream_id("read:a:b:c:d:e").unwrap_err(), SID_SYNTAX);
    }
}
