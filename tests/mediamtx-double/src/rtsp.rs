//! RTSP server (TCP interleaved and UDP unicast transports): publish
//! (ANNOUNCE/SETUP/RECORD) and read (DESCRIBE/SETUP/PLAY), relaying RTP packets to every
//! reader.

use crate::conf;
use crate::core::{self, Out, Publisher, Shared, Sink, Stream};
use crate::media;
use crate::rtsp_registry::{ConnEntry, Counters, SessionEntry, SessionProps};
use crate::rtsp_udp::{Activity, Target, UdpSink};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A publisher's incoming packets, from its TCP connection or the UDP sockets.
pub struct PubIn {
    stream: Arc<Stream>,
    /// per media: H264 without SPS in the SDP, waiting for one in the packets
    sps_pending: Mutex<Vec<bool>>,
    counters: Arc<Counters>,
    activity: Arc<Activity>,
}

impl PubIn {
    /// A UDP datagram that filled the receive buffer: counted, then dropped as in error.
    pub fn too_big(&self, rtcp: bool, len: usize) {
        self.counters.in_bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.activity.touch();
        let n = if rtcp {
            &self.counters.in_rtcp_err
        } else {
            &self.counters.in_rtp_err
        };
        n.fetch_add(1, Ordering::Relaxed);
    }

    pub fn receive(&self, media: usize, rtcp: bool, payload: Vec<u8>) {
        self.activity.touch();
        if rtcp {
            self.counters.rtcp_in(media, &payload, false);
            return self.stream.write(media, true, payload);
        }
        self.counters
            .in_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if payload.len() < 12 {
            // pion cannot unmarshal it: a decode error, nothing relayed
            self.counters.in_rtp_err.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if payload.len() > 12 {
            let mut pending = self.sps_pending.lock().unwrap();
            if pending.get(media).copied().unwrap_or(false) {
                let cc = (payload[0] & 0x0f) as usize;
                let off = 12 + cc * 4;
                if payload.len() > off {
                    if let Some(props) = media::find_sps_in_rtp(&payload[off..]).and_then(|sps| media::h264_props(&sps))
                    {
                        self.stream.props.lock().unwrap()[media] = Some(props);
                        pending[media] = false;
                    }
                }
            }
        }
        // the receiver decides what is relayed, and in which order (UDP)
        let pkts = match self.counters.receivers.lock().unwrap().get_mut(media) {
            Some(Some(r)) => r.process(payload, Instant::now()),
            _ => vec![payload],
        };
        self.counters.in_rtp.fetch_add(pkts.len() as u64, Ordering::Relaxed);
        for p in pkts {
            self.stream.write(media, false, p);
        }
    }
}

/// One SETUP's transport: TCP (interleaved channels) or UDP (client ports).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Transport {
    Tcp(Option<(u8, u8)>),
    Udp(u16, u16),
    /// readers only: the server chooses the group
    Multicast,
}

impl Transport {
    fn label(&self) -> &'static str {
        match self {
            Transport::Tcp(_) => "TCP",
            Transport::Udp(..) => "UDP",
            Transport::Multicast => "UDP-multicast",
        }
    }
}

/// The public RTSP server: listens while `rtsp` is on and `rtspEncryption` is not
/// `strict`, restarted (connections closed) as core.go's closeRTSPServer decides.
pub const SERVER: crate::servers::Kind = crate::servers::Kind {
    name: "RTSP",
    settings,
    serve: crate::servers::Serve::Raw(conn),
    held_off: crate::servers::never,
    proxy_protocol: Some("rtspTrustedProxies"),
};

/// The fields whose change restarts both the RTSP and the RTSPS server (core.go
/// closeRTSPServer, closeRTSPSServer), besides each one's own.
pub const SHARED_FIELDS: [&str; 12] = [
    "rtspAuthMethods",
    "rtspUDPReadBufferSize",
    "dumpPackets",
    "udpReadBufferSize",
    "readTimeout",
    "writeTimeout",
    "writeQueueSize",
    "rtspTransports",
    "rtspTrustedProxies",
    "runOnConnect",
    "runOnConnectRestart",
    "runOnDisconnect",
];

fn settings(g: &serde_json::Map<String, serde_json::Value>, _: &str) -> Option<crate::servers::Settings> {
    if !crate::api::rtsp_servers_on(g).0 {
        return None;
    }
    let text = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let address = text("rtspAddress");
    let mut others = crate::servers::values(g, &SHARED_FIELDS);
    others.extend(crate::servers::values(
        g,
        &[
            "rtpAddress",
            "rtcpAddress",
            "multicastIPRange",
            "multicastRTPPort",
            "multicastRTCPPort",
        ],
    ));
    // and what closes the metrics server, path manager and logger
    others.extend(crate::servers::media_server_dependencies(g));
    // printAddresses: the UDP listeners are listed when UDP is a transport
    let mut started = format!("started with listeners on {} (TCP/RTSP)", address);
    if udp_is_transport(g) {
        started += &format!(", {} (UDP/RTP), {} (UDP/RTCP)", text("rtpAddress"), text("rtcpAddress"));
    }
    Some(crate::servers::Settings {
        started,
        address,
        tls: None,
        others,
    })
}

/// Whether UDP is among `rtspTransports` (the RTSP server then has UDP listeners).
pub fn udp_is_transport(g: &serde_json::Map<String, serde_json::Value>) -> bool {
    g.get("rtspTransports")
        .and_then(|v| v.as_array())
        .is_some_and(|t| t.iter().any(|t| t == "udp"))
}

/// gortsplib's RTP-Info of a PLAY answer: per media set up, in that order, its URL and,
/// once the stream has sent a packet of it, the next sequence number and the RTP time of
/// now (less 100 ms, so that DTS never passes PTS).
fn rtp_info(stream: &Stream, url: &str, path: &str, set_up: &[usize]) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("rtsp", url));
    let host = rest.split('/').next().unwrap_or("");
    let last = stream.last_sent.lock().unwrap();
    let now = SystemTime::now();
    let entries: Vec<String> = set_up
        .iter()
        .map(|&m| {
            let mut e = format!("url={}://{}/{}/trackID={}", scheme, host, path, m);
            let clock = stream.sdp.medias.get(m).map_or(0, |x| u64::from(x.clock_rate));
            if let (Some(Some((seq, rtp, ntp))), true) = (last.get(m), clock != 0) {
                let elapsed = now.duration_since(*ntp).unwrap_or_default().as_secs_f64();
                let ts = u64::from(*rtp)
                    .wrapping_add((elapsed * clock as f64) as u64)
                    .wrapping_sub(clock / 10);
                e.push_str(&format!(";seq={};rtptime={}", seq.wrapping_add(1), ts as u32));
            }
            e
        })
        .collect();
    entries.join(",")
}

/// Accept loop of the listener of the double's own RTSP clients (see procs::internal_url).
pub fn serve(shared: Arc<Shared>, listener: TcpListener) {
    listener.set_nonblocking(true).ok();
    while !shared.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let sh = shared.clone();
                s.set_nonblocking(false).ok();
                std::thread::spawn(move || serve_conn(sh, s, None, false, "none", Hooks::Internal));
            }
            Err(_) => crate::util::wait_acceptable(&listener, Duration::from_millis(100)),
        }
    }
}

struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
}

enum Role {
    None,
    Publisher {
        path: String,
        /// the double's own relay (pulled source, RTMP publisher)
        internal: bool,
        sdp: media::Sdp,
        chmap: HashMap<u8, (usize, bool)>,
        /// per media: the client's UDP ports (RTP, RTCP)
        udp_ports: Vec<Option<(u16, u16)>>,
        pub_in: Option<Arc<PubIn>>,
        sps_pending: Vec<bool>,
        /// alwaysAvailable's offline-stream generator
        offline: bool,
    },
    Reader {
        path: String,
        hidden: bool,
        chans: Vec<Option<u8>>,
        udp_ports: Vec<Option<(u16, u16)>>,
        /// the medias in the order they were set up (RTP-Info lists them so)
        set_up: Vec<usize>,
        playing: Option<(Arc<Stream>, u64)>,
    },
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    tcp: TcpStream,
    tx: SyncSender<Out>,
    session: String,
    role: Role,
    /// path described on this connection (name, hidden, media count)
    described: Option<(String, bool, usize)>,
    peer: Option<std::net::SocketAddr>,
    /// gortsplib's digest nonce, made on the first digest verification
    nonce: std::cell::RefCell<String>,
    /// the error that closes the connection after the current answer: gortsplib ends a
    /// connection on any request error (a refused path, wrong credentials...)
    close: Option<String>,
    /// query of the URL of the last DESCRIBE/ANNOUNCE/SETUP (MTX_QUERY of hooks)
    query: String,
    /// query of an internal DESCRIBE (a forwarder's `forward=<uid>`; its SETUPs have none)
    internal_query: String,
    /// runOnConnect/runOnDisconnect, started when the connection opened
    connect_hooks: Option<crate::hooks::Pair>,
    conn_uuid: String,
    /// the SRT connection whose relay publishes here (named in its ANNOUNCE query)
    srt_conn: Option<String>,
    /// the API's view of this connection and of its session
    entry: Arc<ConnEntry>,
    session_entry: Option<Arc<SessionEntry>>,
    counters: Arc<Counters>,
    /// the transport of the medias set up so far (all must have the same)
    transport: Option<&'static str>,
    /// last RTSP request / UDP packet: the UDP session timeouts
    activity: Arc<Activity>,
    /// authenticated user (API `user`)
    user: String,
    /// UDP source addresses registered for this session
    udp_regs: Vec<(SocketAddr, bool)>,
    /// set when the connection ends (stops the UDP watchdog)
    closed: Arc<AtomicBool>,
    /// the socket's local and remote addresses, for Go's read errors (a reset socket
    /// no longer has a peer)
    ends: (Option<SocketAddr>, Option<SocketAddr>),
    /// its server's closings when it opened (see `servers::closings`)
    closings: u64,
}

/// Counts the bytes read from the connection (API `inboundBytes`).
struct CountingRead {
    inner: TcpStream,
    entry: Arc<ConnEntry>,
}

impl Read for CountingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.entry.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

type ConnReader = BufReader<CountingRead>;

/// Writes what the connection queues; buffered, flushed whenever the queue runs empty
/// (one system call for a burst of packets, so a reader keeps up with its queue).
fn writer(tcp: TcpStream, rx: Receiver<Out>, entry: Arc<ConnEntry>) {
    let Ok(raw) = tcp.try_clone() else {
        return;
    };
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, tcp);
    loop {
        let o = match rx.try_recv() {
            Ok(o) => o,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if w.flush().is_err() {
                    break;
                }
                match rx.recv() {
                    Ok(o) => o,
                    Err(_) => break,
                }
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
        };
        let (n, r) = match o {
            Out::Raw(b) => (b.len(), w.write_all(&b)),
            Out::Sync(done) => {
                let r = w.flush();
                let _ = done.send(());
                (0, r)
            }
            Out::Frame(ch, data) => {
                let len = (data.len() as u16).to_be_bytes();
                let r = w
                    .write_all(&[b'$', ch, len[0], len[1]])
                    .and_then(|_| w.write_all(&data));
                (4 + data.len(), r)
            }
        };
        if r.is_err() {
            break;
        }
        entry.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = w.flush();
    let _ = raw.shutdown(Shutdown::Both);
}

/// A connection accepted by the RTSP or RTSPS server, with what is in front of it (a
/// TLS handshake, a PROXY header) and its outcome: the connection is listed and its
/// hooks started before, as gortsplib does.
pub fn conn(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr, front: crate::servers::Front) {
    let tls = front.tls;
    let ended = serve_conn(shared.clone(), tcp, Some(peer), tls, "none", Hooks::Open);
    // a failure in front is what ended the connection, whatever the plain side saw
    if let Some(e) = front.error().or(ended) {
        shared.log_as(&conn_scope(tls, peer), "INF", &format!("closed: {}", e));
    }
}

/// The logger of a connection of the RTSP (`[RTSP] [conn IP:P]`) or RTSPS server.
pub fn conn_scope(tls: bool, peer: SocketAddr) -> crate::logger::Scope {
    crate::logger::Scope::conn(if tls { "RTSPS" } else { "RTSP" }, peer)
}

/// A connection's hooks.OnConnect (runOnConnect/runOnDisconnect, with RTSP_PORT,
/// MTX_CONN_TYPE, MTX_CONN_ID), started when gortsplib opens a ServerConn.
pub enum Hooks {
    /// a new connection: its id and hooks start here (a TCP connection, or the RTSP
    /// connection an HTTP tunnel builds once its GET and POST are paired)
    Open,
    /// the connection upgraded to a WebSocket: gortsplib keeps the ServerConn, so its
    /// id and hooks are those of the TCP connection
    Carried(Arc<ConnEntry>, Option<crate::hooks::Pair>),
    /// one of the double's own clients (on its own listener): never listed, no hooks
    Internal,
}

/// The type hooks give an RTSP connection.
pub fn conn_type(tls: bool) -> &'static str {
    if tls {
        "rtspsConn"
    } else {
        "rtspConn"
    }
}

/// Serves an RTSP connection until it ends; returns the error it ended with, as
/// gortsplib's ServerConn reports it (`EOF`, `terminated`, a request's error, a read
/// error), for the caller to log; none for the double's own connections and the legs of
/// an HTTP tunnel (logged by the tunnel). `tls`: a connection of the RTSPS server, whose
/// TLS is terminated by `rtsps` (`tcp` is then the loopback socket carrying it);
/// `tunnel`: "none", or "http"/"websocket" for RTSP carried by `rtsp_tunnel`/`rtsp_ws`
/// (through loopback too).
pub fn serve_conn(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: Option<SocketAddr>,
    tls: bool,
    tunnel: &'static str,
    hooks: Hooks,
) -> Option<String> {
    let internal = matches!(hooks, Hooks::Internal);
    let peer_given = peer;
    let peer = peer.or_else(|| tcp.peer_addr().ok());
    let new_entry = || {
        Arc::new(ConnEntry {
            uuid: crate::util::uuid(),
            created: SystemTime::now(),
            remote: peer.map(|a| a.to_string()).unwrap_or_default(),
            tls,
            tunnel: Mutex::new(tunnel),
            internal: internal.into(),
            bytes_in: Default::default(),
            bytes_out: Default::default(),
            session: Mutex::new(None),
        })
    };
    // listed from the start, as gortsplib's ServerConn, also while the first bytes tell
    // whether it is an HTTP tunnel's leg
    let (entry, connect_hooks) = match hooks {
        Hooks::Open => {
            let entry = new_entry();
            shared.rtsp.add_conn(entry.clone());
            shared.log_as(&entry.scope(), "INF", "opened");
            let pair = crate::hooks::on_connect(&shared, entry.scope(), conn_type(tls), &entry.uuid);
            (entry, pair)
        }
        Hooks::Carried(entry, pair) => {
            *entry.tunnel.lock().unwrap() = tunnel;
            (entry, pair)
        }
        Hooks::Internal => {
            let entry = new_entry();
            shared.rtsp.add_conn(entry.clone());
            (entry, None)
        }
    };
    let id = shared.id();
    let _ = tcp.set_nodelay(true);
    // writeQueueSize bounds what waits for a reader (gortsplib's write queue): packets
    // that do not fit are discarded; writeTimeout bounds each write
    let (queue, write_timeout) = {
        let st = shared.lock();
        let q = st.global.get("writeQueueSize").and_then(|v| v.as_u64()).unwrap_or(512);
        (
            q.clamp(1, 1 << 16) as usize,
            conf::duration_of(&st.global, "writeTimeout"),
        )
    };
    let (tx, rx) = sync_channel::<Out>(queue);
    let Ok(wtcp) = tcp.try_clone() else {
        shared.rtsp.remove_conn(&entry);
        crate::hooks::on_disconnect(&shared, connect_hooks);
        return None;
    };
    if tunnel == "none" && !internal && crate::rtsp_tunnel::is_http(&tcp) {
        let leg = crate::rtsp_tunnel::Leg::new(shared.clone(), entry, connect_hooks);
        crate::rtsp_tunnel::serve(shared, tcp, peer_given, tls, leg);
        return None;
    }
    let went = entry.clone();
    if !write_timeout.is_zero() {
        let _ = wtcp.set_write_timeout(Some(write_timeout));
    }
    let wthread = std::thread::spawn(move || writer(wtcp, rx, went));
    if let Ok(c) = tcp.try_clone() {
        shared.conns.lock().unwrap().insert(id, c);
    }
    let mut c = Conn {
        shared: shared.clone(),
        id,
        tcp: tcp.try_clone().expect("clone"),
        tx,
        session: crate::util::hex_id(8),
        role: Role::None,
        described: None,
        peer,
        nonce: Default::default(),
        close: None,
        query: String::new(),
        internal_query: String::new(),
        connect_hooks,
        srt_conn: None,
        conn_uuid: entry.uuid.clone(),
        entry: entry.clone(),
        session_entry: None,
        counters: Default::default(),
        transport: None,
        activity: Default::default(),
        user: String::new(),
        udp_regs: Vec::new(),
        closed: Default::default(),
        ends: (tcp.local_addr().ok(), tcp.peer_addr().ok()),
        closings: crate::servers::closings(&shared, entry.server()),
    };
    let mut rd = BufReader::with_capacity(
        64 * 1024,
        CountingRead {
            inner: tcp,
            entry: entry.clone(),
        },
    );
    let res = c.run(&mut rd);
    let ended = c.ended_with(res);
    c.end_session();
    shared.rtsp.remove_conn(&entry);
    crate::hooks::on_disconnect(&shared, c.connect_hooks.take());
    shared.conns.lock().unwrap().remove(&id);
    let _ = c.tcp.shutdown(Shutdown::Both);
    drop(c);
    let _ = wthread.join();
    (!internal).then_some(ended)
}

/// A malformed request: the connection closes with gortsplib's text (`closed: TEXT`),
/// without an answer.
fn malformed(text: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, text.into())
}

fn read_byte(rd: &mut ConnReader) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    match rd.read(&mut b)? {
        0 => Err(malformed("EOF")),
        _ => Ok(b[0]),
    }
}

/// readByteEqual.
fn read_byte_equal(rd: &mut ConnReader, want: u8) -> std::io::Result<()> {
    let b = read_byte(rd)?;
    if b != want {
        return Err(malformed(format!("expected '{}', got '{}'", want as char, b as char)));
    }
    Ok(())
}

/// readBytesLimited: the bytes up to and including `delim`, at most `n` of them
/// (`first`, already read, counts among them).
fn read_limited(rd: &mut ConnReader, first: Option<u8>, delim: u8, n: usize) -> std::io::Result<Vec<u8>> {
    let mut out: Vec<u8> = first.into_iter().collect();
    loop {
        if out.last() == Some(&delim) {
            return Ok(out);
        }
        if out.len() >= n {
            return Err(malformed(format!("buffer length exceeds {}", n)));
        }
        out.push(read_byte(rd)?);
    }
}

/// The request starts that gortsplib's Conn.Read recognizes; other bytes are skipped.
fn starts_request(b0: u8, b1: u8) -> bool {
    matches!(
        [b0, b1],
        [b'A', b'N']
            | [b'D', b'E']
            | [b'G', b'E']
            | [b'O', b'P']
            | [b'P', b'A']
            | [b'P', b'L']
            | [b'R', b'E']
            | [b'S', b'E']
            | [b'T', b'E']
    )
}

/// base.ParseURL's refusals, as far as the double tells them (Go's url.Parse is
/// approximated: control characters, bad escapes, a non-numeric port).
fn url_is_valid(raw: &str) -> bool {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.eq_ignore_ascii_case("rtsp") || scheme.eq_ignore_ascii_case("rtsps");
    let controls = raw.bytes().any(|b| b < 0x20 || b == 0x7f);
    // the query is kept raw by Go, the rest unescaped
    let bad_escape = crate::util::first_bad_escape(raw.split(['?', '#']).next().unwrap_or("")).is_some();
    let fragment = raw.split_once('#').is_some_and(|(_, f)| !f.is_empty());
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // after an IPv6 literal's bracket, or after the host name's last colon
    let port = match host.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .map(|(_, rest)| rest.strip_prefix(':').unwrap_or(rest)),
        None => Some(host.rsplit_once(':').map_or("", |(_, p)| p)),
    };
    let port_ok = port.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    scheme_ok && !controls && !bad_escape && !fragment && port_ok
}

/// base.Request.Unmarshal, after Conn.Read saw its first two bytes (`first` consumed):
/// method (64 bytes), URL (2048), `RTSP/1.0`, at most 255 headers (keys 512 bytes,
/// values 2048) and a body of at most 128 KiB.
fn read_req(rd: &mut ConnReader, first: u8) -> std::io::Result<Req> {
    let method = read_limited(rd, Some(first), b' ', 64)?;
    let method = String::from_utf8_lossy(&method[..method.len() - 1]).into_owned();
    if method.is_empty() {
        return Err(malformed("empty method"));
    }
    let url = read_limited(rd, None, b' ', 2048)?;
    let url = String::from_utf8_lossy(&url[..url.len() - 1]).into_owned();
    if url != "*" && !url_is_valid(&url) {
        return Err(malformed(format!("invalid URL ({})", url)));
    }
    let proto = read_limited(rd, None, b'\r', 64)?;
    let proto = &proto[..proto.len() - 1];
    if proto != b"RTSP/1.0" {
        let bytes: Vec<String> = proto.iter().map(|b| b.to_string()).collect();
        return Err(malformed(format!("expected 'RTSP/1.0', got [{}]", bytes.join(" "))));
    }
    read_byte_equal(rd, b'\n')?;
    let headers = read_headers(rd)?;
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut body = Vec::new();
    if let [cl] = lengths[..] {
        let len = Some(cl)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| malformed("invalid Content-Length"))?;
        if len > 128 * 1024 {
            return Err(malformed(format!("Content-Length exceeds 131072 (it's {})", len)));
        }
        body = vec![0u8; len as usize];
        let mut got = 0;
        while got < body.len() {
            match rd.read(&mut body[got..])? {
                0 if got == 0 => return Err(malformed("EOF")),
                0 => return Err(malformed("unexpected EOF")),
                n => got += n,
            }
        }
    }
    Ok(Req {
        method,
        url,
        headers,
        body,
    })
}

/// Header.unmarshal: `Key: value` lines up to an empty one; the key runs to the first
/// colon (across lines if need be), leading spaces of the value are skipped.
fn read_headers(rd: &mut ConnReader) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let b = read_byte(rd)?;
        if b == b'\r' {
            read_byte_equal(rd, b'\n')?;
            return Ok(headers);
        }
        if headers.len() >= 255 {
            return Err(malformed("headers count exceeds 255"));
        }
        // the first byte is part of the key whatever it is
        let rest = read_limited(rd, None, b':', 511).map_err(|_| malformed("value is missing"))?;
        let key = [&[b][..], &rest].concat();
        let mut b = read_byte(rd)?;
        while b == b' ' {
            b = read_byte(rd)?;
        }
        let value = read_limited(rd, Some(b), b'\r', 2048)?;
        read_byte_equal(rd, b'\n')?;
        headers.push((
            String::from_utf8_lossy(&key[..key.len() - 1]).into_owned(),
            String::from_utf8_lossy(&value[..value.len() - 1]).into_owned(),
        ));
    }
}

/// defs.PathNoStreamAvailableError.
fn no_stream(path: &str) -> String {
    format!("no stream is available on path '{}'", path)
}

/// path.addPublisher's refusal of a second publisher.
fn already_publishing(path: &str) -> String {
    format!("someone is already publishing to path '{}'", path)
}

/// Splits an RTSP URL into (path with possible control suffix, query).
fn url_path(url: &str) -> (String, String) {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = match rest.find('/') {
        Some(i) => &rest[i + 1..],
        None => "",
    };
    match path.split_once('?') {
        // FFmpeg appends the control to a Content-Base with a query (gortsplib's
        // getPathAndQueryAndTrackID / getPathAndQuery): `p?q/trackID=N`, `p?q/`
        Some((p, q)) => match q.rfind("/trackID=") {
            Some(i) => (format!("{}{}", p, &q[i..]), q[..i].to_string()),
            None => (p.to_string(), q.strip_suffix('/').unwrap_or(q).to_string()),
        },
        None => (path.to_string(), String::new()),
    }
}

impl Conn {
    fn send(&self, b: Vec<u8>) {
        let _ = self.tx.send(Out::Raw(b));
    }

    fn respond(&self, req: &Req, code: u16, reason: &str, extra: &[(&str, String)], body: &[u8]) {
        let mut s = format!("RTSP/1.0 {} {}\r\n", code, reason);
        if let Some(cseq) = req.header("CSeq") {
            s.push_str(&format!("CSeq: {}\r\n", cseq));
        }
        s.push_str("Server: mediamtx-double\r\n");
        for (k, v) in extra {
            s.push_str(&format!("{}: {}\r\n", k, v));
        }
        if !body.is_empty() {
            s.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        s.push_str("\r\n");
        let mut b = s.into_bytes();
        b.extend_from_slice(body);
        self.send(b);
    }

    fn session_hdr(&self) -> (&'static str, String) {
        ("Session", format!("{};timeout=55", self.session))
    }

    /// Strips the internal prefix (recorder, pulled source, forwarder, offline stream
    /// generator); returns (name, internal).
    fn path_name(&self, p: &str) -> (String, bool) {
        let pre = self.shared.internal_prefix();
        match p.strip_prefix(&pre) {
            Some(r) => (
                r.strip_prefix(crate::always_available::MARK).unwrap_or(r).to_string(),
                true,
            ),
            None => (p.to_string(), false),
        }
    }

    /// gortsplib's read deadlines: `readTimeout` for a TCP publisher in RECORD, none for
    /// a UDP one (its packets come elsewhere), the idle timeout (60 s) otherwise.
    fn read_deadline(&self) -> Option<Duration> {
        let recording = matches!(self.role, Role::Publisher { pub_in: Some(_), .. });
        if !recording {
            return Some(Duration::from_secs(60));
        }
        if self.transport == Some("UDP") {
            return None;
        }
        let t = conf::duration_of(&self.shared.lock().global, "readTimeout");
        Some(t).filter(|t| !t.is_zero())
    }

    fn run(&mut self, rd: &mut ConnReader) -> std::io::Result<()> {
        let mut deadline = Some(Duration::ZERO);
        loop {
            let want = self.read_deadline();
            if want != deadline {
                rd.get_ref().inner.set_read_timeout(want)?;
                deadline = want;
            }
            // Conn.Read: the first two bytes tell a frame, a response or a request;
            // anything else is skipped a byte at a time
            let first = match rd.fill_buf()?.first() {
                Some(b) => *b,
                None => return Ok(()),
            };
            rd.consume(1);
            let second = match rd.fill_buf()?.first() {
                Some(b) => *b,
                None => return Ok(()),
            };
            if first == b'$' {
                let mut hdr = [0u8; 3];
                rd.read_exact(&mut hdr)?;
                let len = u16::from_be_bytes([hdr[1], hdr[2]]) as usize;
                let mut payload = vec![0u8; len];
                rd.read_exact(&mut payload)?;
                // readFuncStandard: frames belong to a TCP session playing or recording
                if !self.reads_frames() {
                    return Err(malformed("received unexpected interleaved frame"));
                }
                self.on_frame(hdr[0], payload);
                continue;
            }
            if [first, second] == *b"RT" {
                return Err(malformed("received unexpected response"));
            }
            if !starts_request(first, second) {
                continue;
            }
            let req = read_req(rd, first)?;
            if !self.on_request(&req) {
                return Ok(());
            }
        }
    }

    /// After PLAY/RECORD over TCP, gortsplib reads interleaved frames (readFuncTCP).
    fn reads_frames(&self) -> bool {
        match &self.role {
            Role::Publisher {
                chmap, pub_in: Some(_), ..
            } => !chmap.is_empty(),
            Role::Reader {
                chans,
                playing: Some(_),
                ..
            } => chans.iter().any(|c| c.is_some()),
            _ => false,
        }
    }

    fn on_frame(&mut self, ch: u8, payload: Vec<u8>) {
        match &self.role {
            Role::Publisher {
                chmap,
                pub_in: Some(pub_in),
                ..
            } => {
                if let Some(&(media, rtcp)) = chmap.get(&ch) {
                    pub_in.receive(media, rtcp, payload);
                }
            }
            // a reader's RTCP (receiver reports) on the odd channel of a media; what it
            // sends on an RTP channel is ignored, uncounted (no back channel)
            Role::Reader { chans, .. } if ch % 2 == 1 => {
                if let Some(media) = chans.iter().position(|c| *c == Some(ch - 1)) {
                    self.counters.rtcp_in(media, &payload, true);
                }
            }
            _ => {}
        }
    }

    /// Returns false to close the connection.
    fn on_request(&mut self, req: &Req) -> bool {
        self.activity.touch();
        if !self.session_checked(req) {
            return self.close.is_none();
        }
        if matches!(req.method.as_str(), "DESCRIBE" | "ANNOUNCE" | "SETUP") {
            self.query = url_path(&req.url).1;
        }
        match req.method.as_str() {
            "OPTIONS" => {
                self.respond(
                    req,
                    200,
                    "OK",
                    &[(
                        "Public",
                        "DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, TEARDOWN".into(),
                    )],
                    b"",
                );
            }
            "GET_PARAMETER" | "SET_PARAMETER" | "PAUSE" => {
                let h = self.session_hdr();
                self.respond(req, 200, "OK", &[h], b"");
            }
            "DESCRIBE" => self.describe(req),
            "ANNOUNCE" => self.announce(req),
            "SETUP" => self.setup(req),
            "RECORD" => self.record(req),
            "PLAY" => self.play(req),
            "TEARDOWN" => {
                // gortsplib: the session ends, its connection stays open for more requests
                if let Some(s) = &self.session_entry {
                    s.ending(format!("torn down by {}", self.entry.remote));
                }
                let h = self.session_hdr();
                self.end_session();
                self.respond(req, 200, "OK", &[h], b"");
            }
            _ => self.respond(req, 501, "Not Implemented", &[], b""),
        }
        self.close.is_none()
    }

    /// gortsplib's routing by the `Session` header (ServerConn.handleRequestInner,
    /// handleRequestInSession): PLAY, RECORD, PAUSE and TEARDOWN need one (else 501, the
    /// connection stays); a session ID other than this connection's session is refused
    /// (400 `connection is linked to another session`), one without a session here is
    /// unknown (454 `session not found`) unless the request creates a session (ANNOUNCE,
    /// SETUP). Returns false when answered.
    fn session_checked(&mut self, req: &Req) -> bool {
        let method = req.method.as_str();
        let id = req.header("Session").map(|v| v.split(';').next().unwrap_or("").trim());
        let id = id.filter(|i| !i.is_empty());
        let needs = matches!(method, "PLAY" | "RECORD" | "PAUSE" | "TEARDOWN");
        let Some(id) = id.filter(|_| method != "DESCRIBE") else {
            if needs {
                self.respond(req, 501, "Not Implemented", &[], b"");
                return false;
            }
            return true;
        };
        if !matches!(self.role, Role::None) {
            if id != self.session {
                self.fail(
                    req,
                    400,
                    "Bad Request",
                    "connection is linked to another session".into(),
                );
                return false;
            }
            return true;
        }
        if !matches!(method, "ANNOUNCE" | "SETUP") {
            self.fail(req, 454, "Session Not Found", "session not found".into());
            return false;
        }
        true
    }

    /// pathManager: the configuration is looked up first (400 if none), then the request
    /// is authenticated.
    fn find_conf_and_authorize(&mut self, req: &Req, action: &str, name: &str) -> bool {
        let found = self.shared.lock().find_conf(name);
        if let Err(e) = found {
            self.fail(req, 400, "Bad Request", e);
            return false;
        }
        self.authorize(req, action, name)
    }

    /// MediaMTX's authentication of a reader (DESCRIBE, first SETUP) or publisher
    /// (ANNOUNCE) with the internal users; false = refused (401 sent). Without credentials
    /// the client is asked for them (`WWW-Authenticate` per `rtspAuthMethods`); with wrong
    /// ones the answer comes after auth.LogAndDelayError's pause and the connection closes.
    fn authorize(&mut self, req: &Req, action: &str, name: &str) -> bool {
        let Some(peer) = self.peer else {
            return true;
        };
        let global = self.shared.lock().global.clone();
        let methods: Vec<String> = global
            .get("rtspAuthMethods")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let values: Vec<&str> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Authorization"))
            .map(|(_, v)| v.as_str())
            .collect();
        // with digest enabled gortsplib verifies (hashed credentials cannot be used then)
        let verify = |u: &str, p: &str| {
            if u.is_empty() {
                return false;
            }
            let mut n = self.nonce.borrow_mut();
            if n.is_empty() {
                *n = crate::util::hex_id(16);
            }
            crate::auth::rtsp_verify(&values, &req.method, &req.url, u, p, &methods, &n)
        };
        let digest = methods.iter().any(|m| m == "digest");
        let query = url_path(&req.url).1;
        let creds = crate::auth::rtsp_credentials(&values);
        let user = creds.user.clone();
        let areq = crate::auth::Request {
            action,
            path: name,
            ip: peer.ip(),
            creds,
            verify: if digest { Some(&verify) } else { None },
            ask_credentials: true,
            protocol: "rtsp",
            id: Some(&self.conn_uuid),
            query: &query,
            user_agent: req.header("User-Agent").unwrap_or(""),
        };
        let Err(err) = crate::auth::authenticate(&self.shared, &global, &areq) else {
            self.user = user;
            return true;
        };
        let provided = crate::auth::parse_rtsp_authorization(&values).is_some_and(|a| !a.username.is_empty());
        if err.ask && !provided {
            let nonce = self.nonce.borrow().clone();
            let hdrs: Vec<(&str, String)> = crate::auth::www_authenticate(&methods, &nonce)
                .into_iter()
                .map(|v| ("WWW-Authenticate", v))
                .collect();
            self.respond(req, 401, "Unauthorized", &hdrs, b"");
            return false;
        }
        if !err.ask {
            self.shared.log_as(&self.entry.scope(), "WAR", &err.to_string());
            std::thread::sleep(crate::auth::failure_pause());
        }
        // gortsplib's ErrServerAuth when MediaMTX would ask for credentials, else its own
        let e = if err.ask {
            "authentication error".into()
        } else {
            err.to_string()
        };
        self.fail(req, 401, "Unauthorized", e);
        false
    }

    /// A request refused with an error: the answer goes out, then the connection closes
    /// with that error (`closed: ERR`), as gortsplib's does.
    fn fail(&mut self, req: &Req, code: u16, reason: &str, err: String) {
        self.respond(req, code, reason, &[], b"");
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Out::Sync(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
        self.close = Some(err);
    }

    /// The error the connection ended with (ServerConn's OnConnClose): `terminated` when
    /// the server ended it (its session kicked or timed out, the server closed or the
    /// double stops), the error of a refused request, else what the read saw (`EOF`, Go's
    /// read errors).
    fn ended_with(&mut self, res: std::io::Result<()>) -> String {
        let kicked = self
            .session_entry
            .as_ref()
            .is_some_and(|s| s.end.lock().unwrap().is_some());
        let server_closed = self.closings != crate::servers::closings(&self.shared, self.entry.server());
        if kicked || server_closed || self.shared.shutdown.load(Ordering::SeqCst) {
            return "terminated".into();
        }
        if let Some(e) = self.close.take() {
            return e;
        }
        match res {
            Ok(()) => "EOF".into(),
            Err(e) => crate::util::go_read_error(&e, self.ends.0, self.ends.1),
        }
    }

    /// gortsplib's session state of this connection (the invalid-state errors name it).
    fn state_name(&self) -> &'static str {
        match &self.role {
            Role::None => "initial",
            Role::Reader { playing: Some(_), .. } => "play",
            Role::Reader { .. } => "prePlay",
            Role::Publisher { pub_in: Some(_), .. } => "record",
            Role::Publisher { .. } => "preRecord",
        }
    }

    /// ErrServerInvalidState: the request needs one of `allowed` (Go lists a map, in
    /// any order).
    fn wrong_state(&mut self, req: &Req, allowed: &str) {
        let e = format!(
            "must be in state [{}], while is in state {}",
            allowed,
            self.state_name()
        );
        self.fail(req, 400, "Bad Request", e);
    }

    fn describe(&mut self, req: &Req) {
        let (p, query) = url_path(&req.url);
        let (name, internal) = self.path_name(p.trim_end_matches('/'));
        if !internal && !self.find_conf_and_authorize(req, "read", &name) {
            return;
        }
        let shared = self.shared.clone();
        let mut st = shared.lock();
        let path = match core::get_or_create_path(&shared, &mut st, &name) {
            Ok(p) => p,
            Err(e) => {
                drop(st);
                return self.fail(req, 400, "Bad Request", e);
            }
        };
        let gen = path.gen;
        let mut stream = path.stream.clone();
        // why a wait for the stream failed: the source did not come in time, or the
        // path closed meanwhile
        let mut waited = None;
        let on_demand = path.has_on_demand() || (path.is_url_source() && path.b("sourceOnDemand"));
        if stream.is_none() && !internal {
            let (timeout, waits) = if path.has_on_demand() {
                path.demand += 1;
                core::start_on_demand(&shared, path, &query);
                (path.d("runOnDemandStartTimeout"), true)
            } else if path.is_url_source() && path.b("sourceOnDemand") {
                path.demand += 1;
                (path.d("sourceOnDemandStartTimeout"), true)
            } else if path.b("alwaysAvailable") {
                // available from creation in MediaMTX; here while the generator starts
                path.demand += 1;
                (Duration::from_secs(10), true)
            } else {
                (Duration::ZERO, false)
            };
            if waits {
                let deadline = Instant::now() + timeout;
                loop {
                    let now = Instant::now();
                    let cur = st.paths.get(&name).filter(|p| p.gen == gen);
                    match cur {
                        None => {
                            waited = Some("terminated".to_string());
                            break;
                        }
                        Some(p) if p.stream.is_some() => {
                            stream = p.stream.clone();
                            break;
                        }
                        _ => {}
                    }
                    if now >= deadline || shared.shutdown.load(Ordering::SeqCst) {
                        // (an alwaysAvailable path is available at once in MediaMTX)
                        waited = on_demand.then(|| format!("source of path '{}' has timed out", name));
                        break;
                    }
                    let (g, _) = shared
                        .cv
                        .wait_timeout(st, (deadline - now).min(Duration::from_millis(200)))
                        .unwrap();
                    st = g;
                }
                if let Some(p) = st.paths.get_mut(&name).filter(|p| p.gen == gen) {
                    p.demand = p.demand.saturating_sub(1);
                    if p.demand == 0 {
                        p.idle_since = Instant::now();
                    }
                }
            }
        }
        drop(st);
        match stream {
            Some(s) => {
                self.described = Some((name.clone(), internal, s.sdp.medias.len()));
                if internal {
                    self.internal_query = query.clone();
                }
                // gortsplib: the request URL (with its query) + "/"
                let base = format!("{}/", req.url);
                self.respond(
                    req,
                    200,
                    "OK",
                    &[("Content-Base", base), ("Content-Type", "application/sdp".into())],
                    s.sdp.describe.as_bytes(),
                );
            }
            // an on-demand source that did not come is a 400 (path.go), no stream a 404
            None => match waited {
                Some(e) => self.fail(req, 400, "Bad Request", e),
                None => self.fail(req, 404, "Not Found", no_stream(&name)),
            },
        }
    }

    fn announce(&mut self, req: &Req) {
        let (p, q) = url_path(&req.url);
        let (name, internal) = self.path_name(p.trim_end_matches('/'));
        let offline = internal
            && p.strip_prefix(&self.shared.internal_prefix())
                .is_some_and(|r| r.starts_with(crate::always_available::MARK));
        if internal {
            self.srt_conn = q.strip_prefix("srtconn=").map(String::from);
        }
        let sdp = match media::parse_sdp(&String::from_utf8_lossy(&req.body)) {
            Ok(s) => s,
            Err(e) => return self.fail(req, 400, "Bad Request", format!("invalid SDP: {}", e)),
        };
        if !internal && !self.find_conf_and_authorize(req, "publish", &name) {
            return;
        }
        let shared = self.shared.clone();
        let mut st = shared.lock();
        let path = match core::get_or_create_path(&shared, &mut st, &name) {
            Ok(p) => p,
            Err(e) => {
                drop(st);
                return self.fail(req, 400, "Bad Request", e);
            }
        };
        if path.s("source") != "publisher" && !internal {
            drop(st);
            let e = format!("can't publish to path '{}' since 'source' is not 'publisher'", name);
            return self.fail(req, 400, "Bad Request", e);
        }
        // the offline stream never replaces a publisher, and is replaced by any
        let cur_offline = path.publisher.as_ref().is_some_and(|pb| pb.offline);
        if path.publisher.is_some() && (offline || (!cur_offline && !path.b("overridePublisher"))) {
            drop(st);
            return self.fail(req, 400, "Bad Request", already_publishing(&name));
        }
        drop(st);
        let n = sdp.medias.len();
        let pending = sdp
            .medias
            .iter()
            .map(|m| m.is_h264 && m.props.as_ref().map(|p| p["width"] == 0).unwrap_or(false))
            .collect();
        let _ = n;
        self.open_session(req, &name, internal);
        self.role = Role::Publisher {
            path: name,
            internal,
            sdp,
            chmap: HashMap::new(),
            udp_ports: Vec::new(),
            pub_in: None,
            sps_pending: pending,
            offline,
        };
        let h = self.session_hdr();
        self.respond(req, 200, "OK", &[h], b"");
    }

    /// The session of gortsplib is created by the first successful ANNOUNCE or SETUP.
    fn open_session(&mut self, req: &Req, path: &str, internal: bool) {
        if self.session_entry.is_some() || internal {
            return;
        }
        let entry = Arc::new(SessionEntry {
            uuid: crate::util::uuid(),
            created: SystemTime::now(),
            remote: self.entry.remote.clone(),
            conn_uuid: self.conn_uuid.clone(),
            tls: self.entry.tls,
            props: Mutex::new(SessionProps {
                state: "idle",
                path: path.to_string(),
                query: url_path(&req.url).1,
                user: self.user.clone(),
                user_agent: req.header("User-Agent").unwrap_or("").to_string(),
                transport: None,
            }),
            counters: self.counters.clone(),
            tcp: self.tcp.try_clone().expect("clone"),
            end: Mutex::new(None),
        });
        *self.entry.session.lock().unwrap() = Some(entry.uuid.clone());
        self.shared.rtsp.add_session(entry.clone());
        let scope = self.entry.session_scope(&entry.uuid);
        self.shared
            .log_as(&scope, "INF", &format!("created by {}", self.entry.remote));
        self.session_entry = Some(entry);
    }

    fn set_session(&self, f: impl FnOnce(&mut SessionProps)) {
        if let Some(e) = &self.session_entry {
            f(&mut e.props.lock().unwrap());
        }
    }

    /// pickFirstSupportedTransport with `rtspTransports`, then gortsplib's checks.
    /// Err(status, reason, the error that closes the connection, if any) = refused.
    fn pick_transport(&self, req: &Req, record: bool) -> Result<Transport, (u16, &'static str, Option<String>)> {
        let allowed: Vec<String> = {
            let st = self.shared.lock();
            let v = st.global.get("rtspTransports").and_then(|v| v.as_array()).cloned();
            v.unwrap_or_default()
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        };
        let header = req.header("Transport").unwrap_or("");
        for th in header.split(',') {
            let parts: Vec<&str> = th.split(';').map(str::trim).collect();
            let tcp = match parts[0].to_ascii_uppercase().as_str() {
                "RTP/AVP" | "RTP/AVP/UDP" => false,
                "RTP/AVP/TCP" => true,
                _ => continue,
            };
            let multicast = !tcp && parts.iter().any(|p| p.eq_ignore_ascii_case("multicast"));
            let kind = if tcp {
                "tcp"
            } else if multicast {
                "multicast"
            } else {
                "udp"
            };
            // RTSPS over UDP would be SRTP (srtpAddress): not offered by the double
            // nor is UDP with a tunnel (gortsplib)
            if !tcp
                && (self.entry.tls
                    || *self.entry.tunnel.lock().unwrap() != "none"
                    || !allowed.iter().any(|a| a == kind))
            {
                continue;
            }
            // gortsplib picks TCP even when disabled; MediaMTX's onSetup then refuses it
            if tcp && !allowed.iter().any(|a| a == kind) {
                return Err((461, "Unsupported Transport", None));
            }
            let pair = |key: &str| -> Option<Option<(u32, u32)>> {
                let v = parts.iter().find_map(|p| p.strip_prefix(key))?;
                let (a, b) = v.split_once('-').unwrap_or((v, ""));
                let a: u32 = a.parse().ok()?;
                let b: u32 = if b.is_empty() {
                    a.saturating_add(1)
                } else {
                    b.parse().ok()?
                };
                Some(Some((a, b)))
            };
            let mode = parts
                .iter()
                .find_map(|p| p.strip_prefix("mode="))
                .map(|m| m.trim_matches('"').to_ascii_lowercase());
            let bad = |e: String| Err((400, "Bad Request", Some(e)));
            if let Some(m) = mode.as_deref().filter(|m| !matches!(*m, "play" | "record")) {
                return bad(format!("invalid transport header: invalid transport mode: '{}'", m));
            }
            // gortsplib checks multicast publishers before their mode
            if multicast && record {
                return Err((461, "Unsupported Transport", None));
            }
            let mode_ok = if record {
                mode.as_deref() == Some("record")
            } else {
                mode.is_none() || mode.as_deref() == Some("play")
            };
            if !mode_ok {
                let m = mode.unwrap_or_else(|| "null".into());
                return bad(format!("transport header contains a invalid mode ({})", m));
            }
            if multicast {
                return Ok(Transport::Multicast);
            }
            if tcp {
                let ids = match pair("interleaved=") {
                    Some(Some((a, b))) if a < 255 && b == a + 1 => Some((a as u8, b as u8)),
                    Some(_) => return bad("invalid interleaved IDs".into()),
                    None => None,
                };
                return Ok(Transport::Tcp(ids));
            }
            return match pair("client_port=") {
                Some(Some((a, b))) if a <= 65535 && b <= 65535 => Ok(Transport::Udp(a as u16, b as u16)),
                _ => bad("transport header does not contain client ports".into()),
            };
        }
        Err((461, "Unsupported Transport", None))
    }

    /// The answer's Transport header (headers.Transport.Marshal).
    fn transport_reply(&self, t: Transport, default_ch: u8, group: Option<(SocketAddr, SocketAddr)>) -> String {
        match t {
            Transport::Multicast => match group {
                Some((a, b)) => format!(
                    "RTP/AVP;multicast;destination={};port={}-{};ttl=127",
                    a.ip(),
                    a.port(),
                    b.port()
                ),
                None => "RTP/AVP;multicast".into(),
            },
            Transport::Tcp(ids) => {
                let (a, b) = ids.unwrap_or((default_ch, default_ch + 1));
                format!("RTP/AVP/TCP;unicast;interleaved={}-{}", a, b)
            }
            Transport::Udp(a, b) => {
                let (sa, sb) = self
                    .shared
                    .udp
                    .as_ref()
                    .map(|u| {
                        let s = u.sockets();
                        (s.rtp_port, s.rtcp_port)
                    })
                    .unwrap_or((0, 0));
                format!("RTP/AVP;unicast;client_port={}-{};server_port={}-{}", a, b, sa, sb)
            }
        }
    }

    fn setup(&mut self, req: &Req) {
        let record = matches!(self.role, Role::Publisher { .. });
        let transport = match self.pick_transport(req, record) {
            Ok(t) => t,
            Err((code, reason, Some(e))) => return self.fail(req, code, reason, e),
            Err((code, reason, None)) => return self.respond(req, code, reason, &[], b""),
        };
        // gortsplib: every media of a session uses the same transport
        if self.transport.is_some_and(|t| t != transport.label()) {
            let e = "can't setup medias with different transports".to_string();
            return self.fail(req, 400, "Bad Request", e);
        }
        let (p, _) = url_path(&req.url);
        match &mut self.role {
            Role::Publisher {
                sdp, chmap, udp_ports, ..
            } => {
                let idx = media_index_pub(&p, sdp);
                let Some(idx) = idx else {
                    return self.fail(req, 400, "Bad Request", "media not found".into());
                };
                match transport {
                    Transport::Tcp(ids) => {
                        let (a, b) = ids.unwrap_or((default_channel(idx), default_channel(idx) + 1));
                        chmap.insert(a, (idx, false));
                        chmap.insert(b, (idx, true));
                    }
                    Transport::Udp(a, b) => {
                        udp_ports.resize(sdp.medias.len(), None);
                        udp_ports[idx] = Some((a, b));
                    }
                    Transport::Multicast => return self.respond(req, 461, "Unsupported Transport", &[], b""),
                }
                self.transport = Some(transport.label());
                self.set_session(|s| s.transport = Some(transport.label()));
                let h = self.session_hdr();
                let th = self.transport_reply(transport, default_channel(idx), None);
                self.respond(req, 200, "OK", &[("Transport", th), h], b"");
            }
            _ => {
                // reader
                let (path_part, idx) = split_track(&p);
                let (name, hidden) = match &self.described {
                    Some((n, h, _)) => (n.clone(), *h),
                    None => self.path_name(&path_part),
                };
                let count = match &self.described {
                    Some((_, _, c)) => *c,
                    None => {
                        let st = self.shared.lock();
                        match st.paths.get(&name).and_then(|p| p.stream.clone()) {
                            Some(s) => s.sdp.medias.len(),
                            None => {
                                drop(st);
                                return self.fail(req, 404, "Not Found", no_stream(&name));
                            }
                        }
                    }
                };
                let idx = idx.unwrap_or(0);
                if idx >= count {
                    return self.fail(req, 404, "Not Found", "media not found".into());
                }
                let mut group = None;
                if transport == Transport::Multicast {
                    let st = self.shared.lock();
                    let stream = st.paths.get(&name).and_then(|p| p.stream.clone());
                    let groups = stream.and_then(|s| self.shared.multicast.groups(&st.global, &s));
                    drop(st);
                    match groups.and_then(|g| g.get(idx).copied()) {
                        Some(g) => group = Some(g),
                        None => return self.respond(req, 461, "Unsupported Transport", &[], b""),
                    }
                }
                // the first SETUP of a reader adds it to the path: authenticated again
                if !matches!(self.role, Role::Reader { .. }) && !hidden && !self.authorize(req, "read", &name) {
                    return;
                }
                // path.addReaderPost: maxReaders (0 = unlimited)
                if !matches!(self.role, Role::Reader { .. }) && !hidden {
                    let full = {
                        let st = self.shared.lock();
                        st.paths.get(&name).is_some_and(|p| {
                            let max = p.conf.get("maxReaders").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                            max != 0 && p.readers.len() + p.set_up_readers.len() >= max
                        })
                    };
                    if full {
                        return self.fail(req, 400, "Bad Request", "maximum reader count reached".into());
                    }
                }
                if !matches!(self.role, Role::Reader { .. }) {
                    if !hidden {
                        if let Some(p) = self.shared.lock().paths.get_mut(&name) {
                            p.set_up_readers.push(self.id);
                        }
                    }
                    self.role = Role::Reader {
                        path: name.clone(),
                        hidden,
                        chans: vec![None; count],
                        udp_ports: vec![None; count],
                        set_up: Vec::new(),
                        playing: None,
                    };
                }
                if let Role::Reader {
                    chans,
                    udp_ports,
                    set_up,
                    ..
                } = &mut self.role
                {
                    if !set_up.contains(&idx) {
                        set_up.push(idx);
                    }
                    match transport {
                        Transport::Tcp(ids) => chans[idx] = Some(ids.map(|i| i.0).unwrap_or(default_channel(idx))),
                        Transport::Udp(a, b) => udp_ports[idx] = Some((a, b)),
                        Transport::Multicast => {}
                    }
                }
                self.open_session(req, &name, hidden);
                self.transport = Some(transport.label());
                self.set_session(|s| s.transport = Some(transport.label()));
                let h = self.session_hdr();
                let mut th = self.transport_reply(transport, default_channel(idx), group);
                // gortsplib names the stream's SSRC of the media (one format per media
                // here); the double's internal readers get the packets as published
                let stream = self.shared.lock().paths.get(&name).and_then(|p| p.stream.clone());
                if let Some(ssrc) = stream.and_then(|s| s.ssrc.get(idx).copied()).filter(|_| !hidden) {
                    th.push_str(&format!(";ssrc={:08X}", ssrc));
                }
                self.respond(req, 200, "OK", &[("Transport", th), h], b"");
            }
        }
    }

    /// UDP addresses of the client's ports, per media.
    fn udp_addrs(&self, ports: &[Option<(u16, u16)>]) -> Vec<Option<(SocketAddr, SocketAddr)>> {
        let ip = self.peer.map(|p| p.ip()).unwrap_or([127, 0, 0, 1].into());
        ports
            .iter()
            .map(|p| p.map(|(a, b)| (SocketAddr::new(ip, a), SocketAddr::new(ip, b))))
            .collect()
    }

    /// gortsplib closes UDP sessions that go quiet: a publisher after `readTimeout`
    /// without packets, a reader after its idle timeout (60 s) without requests or RTCP.
    fn start_udp_watchdog(&self, quiet: Arc<Activity>, limit: Duration) {
        let closed = self.closed.clone();
        let tcp = self.tcp.try_clone().expect("clone");
        let shared = self.shared.clone();
        let session = self.session_entry.clone();
        std::thread::spawn(move || {
            while !closed.load(Ordering::SeqCst) && !shared.shutdown.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(500));
                if quiet.idle_for() >= limit {
                    // logged as the session's end when the connection closes
                    if let Some(s) = &session {
                        s.ending("session timed out".into());
                    }
                    let _ = tcp.shutdown(Shutdown::Both);
                    break;
                }
            }
        });
    }

    /// The id of this session in the API (a path's source / readers)
    fn session_uuid(&self) -> String {
        match &self.session_entry {
            Some(e) => e.uuid.clone(),
            None => crate::util::uuid(),
        }
    }

    fn record(&mut self, req: &Req) {
        let shared = self.shared.clone();
        let session_uuid = self.session_uuid();
        let tcp = self.tcp.try_clone().expect("clone");
        let udp_addrs = match &self.role {
            Role::Publisher { udp_ports, .. } => self.udp_addrs(udp_ports),
            _ => vec![],
        };
        let Role::Publisher {
            path,
            internal: relay,
            sdp,
            chmap,
            pub_in,
            sps_pending,
            offline,
            ..
        } = &mut self.role
        else {
            return self.wrong_state(req, "preRecord");
        };
        let mut st = shared.lock();
        let name = path.clone();
        let read_timeout = conf::duration_of(&st.global, "readTimeout");
        let max_payload = crate::rtp_split::max_payload(&st.global);
        let p = match core::get_or_create_path(&shared, &mut st, &name) {
            Ok(p) => p,
            Err(e) => {
                drop(st);
                return self.fail(req, 404, "Not Found", e);
            }
        };
        let internal = p.is_url_source() || *offline;
        // path.addPublisher (at RECORD): an alwaysAvailable path wants its tracks
        if !internal {
            if let Err(e) = crate::always_available::check_publisher(p, sdp) {
                drop(st);
                return self.fail(req, 400, "Bad Request", e);
            }
        }
        if *offline && p.publisher.as_ref().is_some_and(|pb| !pb.offline) {
            // a real publisher came in between
            drop(st);
            return self.fail(req, 400, "Bad Request", already_publishing(&name));
        }
        // the relay of an SRT publisher (srt.rs) names its connection in the query
        let srt = self
            .srt_conn
            .as_deref()
            .and_then(|id| crate::srt::publishing(&shared, id));
        // the relay of an RTMP publisher stands for that connection
        let rtmp = if *relay && !p.is_url_source() {
            crate::rtmp::publisher_of(&shared, &name)
        } else {
            None
        };
        let pb = match (srt, rtmp) {
            (Some(c), _) => Publisher {
                offline: false,
                id: c.id.clone(),
                conn_id: self.id,
                conn: self.tcp.try_clone().expect("clone"),
                internal: false,
                source_type: "srtConn",
                query: c.info.lock().unwrap().query.clone(),
                scope: Some(c.scope()),
            },
            (None, Some((source_type, id, conn, query, scope))) => Publisher {
                offline: false,
                id,
                conn_id: self.id,
                conn,
                internal: false,
                query,
                source_type,
                scope: Some(scope),
            },
            (None, None) => Publisher {
                offline: *offline,
                id: session_uuid.clone(),
                conn_id: self.id,
                conn: tcp,
                internal,
                source_type: if p.is_url_source() {
                    p.url_source_type()
                } else {
                    "rtspSession"
                },
                query: self.query.clone(),
                // a session of a client (not a static source's or the offline stream's)
                scope: (!internal && !*offline && !p.is_url_source()).then(|| self.entry.session_scope(&session_uuid)),
            },
        };
        let s = core::publish_start(&shared, p, pb, sdp.clone(), max_payload);
        drop(st);
        // a receiver per media set up (gortsplib: per format), reordering over UDP
        let udp = self.transport == Some("UDP");
        *self.counters.receivers.lock().unwrap() = (0..sdp.medias.len())
            .map(|i| {
                let set_up = udp_addrs.get(i).is_some_and(|a| a.is_some()) || chmap.values().any(|&(m, _)| m == i);
                let m = &sdp.medias[i];
                set_up.then(|| crate::rtp_stats::Receiver::new(m.codec, m.clock_rate, udp))
            })
            .collect();
        let input = Arc::new(PubIn {
            stream: s,
            sps_pending: Mutex::new(std::mem::take(sps_pending)),
            counters: self.counters.clone(),
            activity: Default::default(),
        });
        input.activity.touch();
        *pub_in = Some(input.clone());
        if let Some(udp) = &shared.udp {
            for (media, a) in udp_addrs.iter().enumerate() {
                if let Some((rtp, rtcp)) = a {
                    udp.register(*rtp, false, Target::Publisher(input.clone(), media));
                    udp.register(*rtcp, true, Target::Publisher(input.clone(), media));
                    self.udp_regs.extend([(*rtp, false), (*rtcp, true)]);
                }
            }
        }
        if self.transport == Some("UDP") {
            self.start_udp_watchdog(input.activity.clone(), read_timeout);
        }
        self.set_session(|s| s.state = "publish");
        let h = self.session_hdr();
        self.respond(req, 200, "OK", &[h], b"");
    }

    fn play(&mut self, req: &Req) {
        let shared = self.shared.clone();
        let sink_conn = self.tcp.try_clone().expect("clone");
        let tx = self.tx.clone();
        let conn_id = self.id;
        let query = self.query.clone();
        let internal_query = self.internal_query.clone();
        let udp_addrs = match &self.role {
            Role::Reader { udp_ports, .. } => self.udp_addrs(udp_ports),
            _ => vec![],
        };
        let udp = self.transport == Some("UDP");
        let multicast = self.transport == Some("UDP-multicast");
        let stats = self.counters.clone();
        let session_uuid = self.session_uuid();
        let session_entry = self.session_entry.clone();
        let Role::Reader {
            path,
            hidden,
            chans,
            set_up,
            playing,
            ..
        } = &mut self.role
        else {
            return self.wrong_state(req, "prePlay play");
        };
        if playing.is_some() {
            let h = self.session_hdr();
            return self.respond(req, 200, "OK", &[h], b"");
        }
        let mut st = shared.lock();
        let Some(stream) = st.paths.get(path.as_str()).and_then(|p| p.stream.clone()) else {
            let e = no_stream(path);
            drop(st);
            return self.fail(req, 404, "Not Found", e);
        };
        let p = st.paths.get_mut(path.as_str()).expect("looked up above");
        let counter = if *hidden {
            crate::forward::counter_for(p, &internal_query)
        } else {
            None
        };
        if !*hidden {
            p.set_up_readers.retain(|c| *c != conn_id);
            let rid = session_uuid;
            // session.onPlay: the transport and the medias set up
            let info = crate::media::tracks_info(set_up.iter().filter_map(|&i| stream.sdp.medias.get(i)));
            let transport = self.transport.unwrap_or("TCP");
            let line = format!("is reading from path '{}', with {}, {}", p.name, transport, info);
            let scope = self.entry.session_scope(&rid);
            self.shared.log_as(&scope, "INF", &line);
            p.readers.push((conn_id, rid.clone(), "rtspSession"));
            p.demand += 1;
            core::reader_added(&shared, p, conn_id, (&rid, "rtspSession", scope), &query);
        }
        let sink_id = shared.id();
        // respond before adding the sink so the PLAY reply precedes data
        let h = ("Session".to_string(), format!("{};timeout=55", self.session));
        let mut s = "RTSP/1.0 200 OK\r\n".to_string();
        if let Some(cseq) = req.header("CSeq") {
            s.push_str(&format!("CSeq: {}\r\n", cseq));
        }
        s.push_str(&format!(
            "Server: mediamtx-double\r\n{}: {}\r\nRange: npt=0.000-\r\n",
            h.0, h.1
        ));
        // the double's internal readers (recorder, relays) read the stream as published
        if !*hidden {
            s.push_str(&format!("RTP-Info: {}\r\n", rtp_info(&stream, &req.url, path, set_up)));
        }
        s.push_str("\r\n");
        *stats.local_ssrc.lock().unwrap() = stream.ssrc.clone();
        // For unicast the stream's sinks stay locked from the answer until this reader's
        // sink is in: a client that publishes as soon as it reads the answer gets every
        // packet after it, as from gortsplib (a packet can neither precede the answer nor
        // be lost to a sink added late).
        let held = stream.clone();
        let mut unicast_sinks = (!multicast).then(|| held.sinks.lock().unwrap());
        // the session reads before its answer goes (gortsplib: state play, then the answer)
        if let Some(e) = &session_entry {
            e.props.lock().unwrap().state = "read";
        }
        let _ = tx.send(Out::Raw(s.into_bytes()));
        if udp || multicast {
            // the PLAY answer must be written before the first UDP packet goes out
            let (done_tx, done_rx) = sync_channel(1);
            if tx.send(Out::Sync(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(Duration::from_secs(5));
            }
        }
        let udp_sink = match (&shared.udp, udp) {
            (Some(server), true) => {
                let s = server.sockets();
                Some(UdpSink {
                    rtp: s.rtp,
                    rtcp: s.rtcp,
                    addrs: udp_addrs.clone(),
                })
            }
            _ => None,
        };
        if multicast {
            // one sending per stream, shared by its multicast readers
            let template = Sink {
                id: 0,
                tx: tx.clone(),
                chans: vec![],
                conn: sink_conn.try_clone().expect("clone"),
                hidden: *hidden,
                counter: None,
                udp: None,
                stats: None,
                reports: Default::default(),
            };
            if let Err(e) = shared.multicast.join(&shared, &stream, template) {
                shared.log(&format!("ERR [RTSP] multicast: {}", e));
            }
            // and a sink that sends nothing: the reader is dropped with the stream
            if let Some(server) = &shared.udp {
                stream.sinks.lock().unwrap().push(Sink {
                    id: sink_id,
                    tx,
                    chans: vec![],
                    conn: sink_conn,
                    hidden: *hidden,
                    counter: None,
                    udp: Some(UdpSink {
                        rtp: server.sockets().rtp,
                        rtcp: server.sockets().rtcp,
                        addrs: vec![],
                    }),
                    stats: None,
                    reports: Default::default(),
                });
            }
            drop(unicast_sinks);
            *playing = Some((stream, sink_id));
            drop(st);
            self.start_udp_watchdog(self.activity.clone(), Duration::from_secs(60));
            return;
        }
        let mut sinks = unicast_sinks.take().expect("locked for unicast");
        sinks.push(Sink {
            id: sink_id,
            tx,
            chans: chans.clone(),
            conn: sink_conn,
            hidden: *hidden,
            counter,
            udp: udp_sink,
            stats: Some(stats),
            reports: Default::default(),
        });
        drop(sinks);
        *playing = Some((stream, sink_id));
        drop(st);
        if let (Some(server), true) = (&shared.udp, udp) {
            for (media, a) in udp_addrs.iter().enumerate() {
                if let Some((_, rtcp)) = a {
                    let t = Target::Reader(self.activity.clone(), self.counters.clone(), media);
                    server.register(*rtcp, true, t);
                    self.udp_regs.push((*rtcp, true));
                }
            }
            self.start_udp_watchdog(self.activity.clone(), Duration::from_secs(60));
        }
    }

    /// The session ends (TEARDOWN, or its connection closed): its publisher or reader
    /// goes, it is unlisted and logged `destroyed: REASON`, and a later SETUP or ANNOUNCE
    /// on the connection starts a new one.
    fn end_session(&mut self) {
        // stops the UDP watchdogs of this session
        self.closed.store(true, Ordering::SeqCst);
        self.cleanup();
        if let Some(s) = self.session_entry.take() {
            self.shared.rtsp.remove_session(&s);
            let why = s.end.lock().unwrap().take().unwrap_or_else(|| "not in use".into());
            let scope = self.entry.session_scope(&s.uuid);
            self.shared.log_as(&scope, "INF", &format!("destroyed: {}", why));
        }
        *self.entry.session.lock().unwrap() = None;
        self.session = crate::util::hex_id(8);
        self.transport = None;
        self.counters = Default::default();
        self.activity = Default::default();
        self.closed = Default::default();
    }

    fn cleanup(&mut self) {
        let shared = self.shared.clone();
        if let Some(udp) = &shared.udp {
            for (addr, rtcp) in self.udp_regs.drain(..) {
                udp.unregister(addr, rtcp);
            }
        }
        match std::mem::replace(&mut self.role, Role::None) {
            Role::Publisher {
                path, pub_in: Some(_), ..
            } => {
                let mut st = shared.lock();
                core::publish_stop(&shared, &mut st, &path, self.id);
            }
            Role::Reader {
                path,
                hidden: false,
                playing: None,
                ..
            } => {
                if let Some(p) = shared.lock().paths.get_mut(&path) {
                    p.set_up_readers.retain(|c| *c != self.id);
                }
            }
            Role::Reader {
                path,
                hidden,
                playing: Some((stream, sink_id)),
                ..
            } => {
                stream.remove_sink(sink_id);
                if self.transport == Some("UDP-multicast") {
                    shared.multicast.leave(&stream);
                }
                if !hidden {
                    let mut st = shared.lock();
                    if let Some(p) = st.paths.get_mut(&path) {
                        let before = p.readers.len();
                        p.readers.retain(|(c, _, _)| *c != self.id);
                        core::reader_removed(&shared, p, self.id);
                        if p.readers.len() != before {
                            p.demand = p.demand.saturating_sub(1);
                            if p.demand == 0 {
                                p.idle_since = Instant::now();
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The interleaved channel pair of a media whose SETUP names none (bounded: an SDP may
/// list any number of medias).
fn default_channel(media: usize) -> u8 {
    (media.min(126) * 2) as u8
}

/// Reader SETUP URL "name/trackID=N" → ("name", Some(N)).
fn split_track(p: &str) -> (String, Option<usize>) {
    if let Some((head, last)) = p.rsplit_once('/') {
        for pre in ["trackID=", "streamid=", "track"] {
            if let Some(n) = last.strip_prefix(pre) {
                if let Ok(i) = n.parse() {
                    return (head.to_string(), Some(i));
                }
            }
        }
    }
    (p.trim_end_matches('/').to_string(), None)
}

fn media_index_pub(p: &str, sdp: &media::Sdp) -> Option<usize> {
    for (i, m) in sdp.medias.iter().enumerate() {
        if !m.control.is_empty() && (p.ends_with(&format!("/{}", m.control)) || p == m.control) {
            return Some(i);
        }
        if m.control.contains("://") && m.control.ends_with(p) {
            return Some(i);
        }
    }
    if sdp.medias.len() == 1 {
        return Some(0);
    }
    split_track(p).1.filter(|i| *i < sdp.medias.len())
}

#[cfg(test)]
mod tests {
    use super::url_is_valid;

    #[test]
    fn request_urls_are_checked_like_gortsplib() {
        for ok in [
            "rtsp://127.0.0.1:8554/cam",
            "RTSPS://h/cam?x=%zz",
            "rtsp://[::1]:8554/cam/trackID=0",
            "rtsp://[::1]/cam",
            "rtsp://user:p%40ss@h:8554/cam",
            "rtsp://h:/cam",
        ] {
            assert!(url_is_valid(ok), "{}", ok);
        }
        for bad in [
            "http://h/cam",
            "/cam",
            "rtsp://h/c%zam",
            "rtsp://h/cam#frag",
            "rtsp://h:port/cam",
            "rtsp://h/c\u{7f}am",
            "rtsp://[::1/cam",
        ] {
            assert!(!url_is_valid(bad), "{}", bad);
        }
    }
}
