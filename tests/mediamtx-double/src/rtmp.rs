//! RTMP server like MediaMTX v1.20.1's (internal/servers/rtmp with gortmplib v1.0.1):
//! plain handshake, chunk stream, the connect/createStream/publish/play commands and the
//! onStatus answers gortmplib sends. Codecs are not re-packetized here: a publisher's
//! audio/video messages go as FLV into an ffmpeg child that publishes them into the
//! double's own RTSP relay (under the internal prefix, so it is no RTSP session), and a
//! reader is fed from an ffmpeg child that reads the relay and writes FLV.

use crate::amf0::{self, Value as Amf};
use crate::core::{self, Shared};
use crate::flv;
use crate::logger::Scope;
use crate::rtmp_chunk::{bad, ChunkReader, Counting, Msg, Writer, MAX_MESSAGE, OUT_CHUNK};
use crate::rtmp_relay::{spawn_publisher, spawn_reader, stop_child};
use crate::servers::{values, Kind, Serve, Settings};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// gortmplib's window (AcceptConn)
const WINDOW: u32 = 2_500_000;

/// One RTMP connection as the API shows it (defs.APIRTMPConn).
pub struct ConnInfo {
    pub num: u64,
    pub uuid: String,
    created: SystemTime,
    remote: String,
    ip: Option<std::net::IpAddr>,
    /// RTMPS: the connection is the plain side of the TLS proxy
    encrypted: bool,
    tcp: TcpStream,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    /// FLV tags dropped because the reader's writeQueueSize queue was full
    discarded: Arc<AtomicU64>,
    meta: Mutex<Meta>,
}

#[derive(Default)]
struct Meta {
    state: &'static str,
    path: String,
    query: String,
    user: String,
    user_agent: String,
}

/// The RTMP connections of a double and the paths they are publishing to.
#[derive(Default)]
pub struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<ConnInfo>>>,
    publishing: Mutex<HashMap<String, Arc<ConnInfo>>>,
}

impl ConnInfo {
    /// the type of this connection as a path source or reader
    /// The connection's logger (`[RTMP] [conn IP:P]`).
    pub fn scope(&self) -> Scope {
        let server = if self.encrypted { "RTMPS" } else { "RTMP" };
        Scope::conn(server, &self.remote)
    }

    pub fn kind(&self) -> &'static str {
        if self.encrypted {
            "rtmpsConn"
        } else {
            "rtmpConn"
        }
    }
}

/// For the RTSP server: the RTMP connection whose ffmpeg child is publishing `path`
/// through the internal prefix (its source type and id, connection and query).
pub fn publisher_of(shared: &Shared, path: &str) -> Option<(&'static str, String, TcpStream, String, Scope)> {
    let m = shared.rtmp.publishing.lock().unwrap();
    let c = m.get(path)?;
    let q = c.meta.lock().unwrap().query.clone();
    Some((c.kind(), c.uuid.clone(), c.tcp.try_clone().ok()?, q, c.scope()))
}

/// The RTMP and RTMPS servers (run by servers.rs): on `rtmpAddress`/`rtmpsAddress` while
/// `enabled`, restarted on a change of the fields closeRTMPServer/closeRTMPSServer compare.
pub const SERVERS: [Kind; 2] = [
    Kind {
        name: "RTMP",
        settings,
        serve: Serve::Raw(conn),
        held_off: crate::servers::never,
        proxy_protocol: Some("rtmpTrustedProxies"),
    },
    Kind {
        name: "RTMPS",
        settings,
        serve: Serve::Raw(conn),
        held_off: crate::servers::never,
        proxy_protocol: Some("rtmpTrustedProxies"),
    },
];

fn settings(g: &Map<String, Value>, name: &str) -> Option<Settings> {
    let encrypted = name == "RTMPS";
    if !runs(g, encrypted) {
        return None;
    }
    let text = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let address = text(if encrypted { "rtmpsAddress" } else { "rtmpAddress" });
    let mut others = values(
        g,
        &[
            "rtmp",
            "rtmpEncryption",
            "dumpPackets",
            "readTimeout",
            "writeTimeout",
            "rtspAddress",
            "rtmpTrustedProxies",
            "runOnConnect",
            "runOnConnectRestart",
            "runOnDisconnect",
        ],
    );
    // and what closes the metrics server, path manager and logger
    others.extend(crate::servers::media_server_dependencies(g));
    Some(Settings {
        started: format!("started with listener on {} (TCP/{})", address, name),
        address,
        tls: encrypted.then(|| (text("rtmpServerKey"), text("rtmpServerCert"))),
        others,
    })
}

/// Whether MediaMTX runs the RTMP (`encrypted` false) or the RTMPS server: `rtmp` on,
/// `rtmpEncryption` no/optional for RTMP, strict/optional for RTMPS.
pub fn enabled(shared: &Shared, encrypted: bool) -> bool {
    runs(&shared.lock().global, encrypted)
}

fn runs(g: &Map<String, Value>, encrypted: bool) -> bool {
    let on = g.get("rtmp").and_then(|v| v.as_bool()).unwrap_or(true);
    let enc = g.get("rtmpEncryption").and_then(|v| v.as_str()).unwrap_or("no");
    on && match enc {
        "optional" => true,
        "strict" => encrypted,
        _ => !encrypted,
    }
}

fn api_item(c: &ConnInfo) -> Value {
    let m = c.meta.lock().unwrap();
    let (rx, tx) = (c.received.load(Ordering::Relaxed), c.sent.load(Ordering::Relaxed));
    json!({
        "id": c.uuid,
        "created": crate::util::rfc3339_nano(c.created),
        "remoteAddr": c.remote,
        "state": m.state,
        "path": m.path,
        "query": m.query,
        "user": m.user,
        "userAgent": m.user_agent,
        "inboundBytes": rx,
        "outboundBytes": tx,
        "bytesReceived": rx,
        "bytesSent": tx,
        "outboundFramesDiscarded": c.discarded.load(Ordering::Relaxed),
    })
}

/// `/v3/rtmpconns/list` items, oldest first (like the server's sort by `created`).
pub fn api_list(shared: &Shared, encrypted: bool) -> Vec<Value> {
    let conns = shared.rtmp.conns.lock().unwrap();
    conns
        .values()
        .filter(|c| c.encrypted == encrypted)
        .map(|c| api_item(c))
        .collect()
}

/// uuid.Parse's errors, then ErrConnNotFound.
pub fn api_find(shared: &Shared, encrypted: bool, id: &str) -> Result<Arc<ConnInfo>, (u16, String)> {
    let canon = crate::util::parse_uuid(id).map_err(|e| (400, e))?;
    let conns = shared.rtmp.conns.lock().unwrap();
    conns
        .values()
        .find(|c| c.uuid == canon && c.encrypted == encrypted)
        .cloned()
        .ok_or((404, "connection not found".to_string()))
}

pub fn api_get(shared: &Shared, encrypted: bool, id: &str) -> Result<Value, (u16, String)> {
    api_find(shared, encrypted, id).map(|c| api_item(&c))
}

pub fn api_kick(shared: &Shared, encrypted: bool, id: &str) -> Result<(), (u16, String)> {
    let c = api_find(shared, encrypted, id)?;
    shared.rtmp.conns.lock().unwrap().remove(&c.num);
    let _ = c.tcp.shutdown(Shutdown::Both);
    Ok(())
}

/// What the client asked for after connect.
struct Action {
    publish: bool,
    txid: f64,
    path: String,
    query: String,
}

struct Session {
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    /// shared with a reader's media thread: one lock keeps messages whole
    w: Arc<Writer>,
    rd: ChunkReader<BufReader<Counting>>,
    /// the client's window: an acknowledgement is due every `window` bytes
    window: u32,
    acked: u64,
    connect_txid: f64,
}

/// Serves one connection; for RTMPS `tcp` is the plain side of the TLS proxy, whose
/// handshake is still under way when the connection is listed and its hooks started
/// (MediaMTX's conn starts before Go's TLS handshakes at its first read).
fn conn(shared: Arc<Shared>, tcp: TcpStream, remote: SocketAddr, front: crate::servers::Front) {
    let encrypted = front.tls;
    let remote = Some(remote);
    let num = shared.id();
    let (Ok(wtcp), Ok(rtcp), Ok(ctcp)) = (tcp.try_clone(), tcp.try_clone(), tcp.try_clone()) else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let info = Arc::new(ConnInfo {
        num,
        uuid: crate::util::uuid(),
        created: SystemTime::now(),
        remote: remote.map(|a| a.to_string()).unwrap_or_default(),
        ip: remote.map(|a| a.ip()),
        encrypted,
        tcp,
        received: Arc::new(AtomicU64::new(0)),
        sent: Arc::new(AtomicU64::new(0)),
        discarded: Arc::new(AtomicU64::new(0)),
        meta: Mutex::new(Meta {
            state: "idle",
            ..Default::default()
        }),
    });
    shared.rtmp.conns.lock().unwrap().insert(num, info.clone());
    shared.conns.lock().unwrap().insert(num, ctcp);
    shared.log_as(&info.scope(), "INF", "opened");
    let hooks = crate::hooks::on_connect(&shared, info.scope(), info.kind(), &info.uuid);
    let counting = Counting {
        tcp: rtcp,
        n: info.received.clone(),
    };
    let mut s = Session {
        shared: shared.clone(),
        info: info.clone(),
        w: Arc::new(Writer {
            tcp: Mutex::new(wtcp),
            sent: info.sent.clone(),
        }),
        rd: ChunkReader::new(BufReader::with_capacity(64 * 1024, counting)),
        window: WINDOW,
        acked: 0,
        connect_txid: 1.0,
    };
    // a client must finish the handshake and its commands in time (readTimeout), and
    // every write must complete within writeTimeout (conn.runReader's deadlines)
    let _ = info.tcp.set_read_timeout(Some(timeout_of(&shared, "readTimeout")));
    let _ = info.tcp.set_write_timeout(Some(timeout_of(&shared, "writeTimeout")));
    // taken now: a reset socket no longer has a peer
    let ends = (info.tcp.local_addr().ok(), info.tcp.peer_addr().ok());
    let server = if encrypted { "RTMPS" } else { "RTMP" };
    let closings = crate::servers::closings(&shared, server);
    let res = s.run();
    // kicked (the API unlisted it) or its server closed: MediaMTX cancels the conn
    let kicked = shared.rtmp.conns.lock().unwrap().remove(&num).is_none();
    let terminated = kicked || closings != crate::servers::closings(&shared, server);
    let reason = match (front.error(), res) {
        (Some(front_error), _) => front_error,
        _ if terminated => "terminated".to_string(),
        (None, Ok(())) => "EOF".to_string(),
        (None, Err(e)) => crate::util::go_read_error(&e, ends.0, ends.1),
    };
    shared.log_as(&info.scope(), "INF", &format!("closed: {}", reason));
    let _ = info.tcp.shutdown(Shutdown::Both);
    shared.conns.lock().unwrap().remove(&num);
    crate::hooks::on_disconnect(&shared, hooks);
}

/// The global `readTimeout` or `writeTimeout` (never zero: a socket rejects that).
fn timeout_of(shared: &Shared, key: &str) -> Duration {
    let d = crate::conf::duration_of(&shared.lock().global, key);
    if d.is_zero() {
        Duration::from_secs(10)
    } else {
        d
    }
}

fn err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl Session {
    fn run(&mut self) -> std::io::Result<()> {
        self.handshake()?;
        let (app_tcurl, flash) = self.read_connect()?;
        let action = self.accept_conn(&app_tcurl)?;
        self.info.meta.lock().unwrap().user_agent = flash.clone();
        let creds = crate::auth::Creds {
            user: query_get(&action.query, "user"),
            pass: query_get(&action.query, "pass"),
            token: String::new(),
        };
        let user = creds.user.clone();
        // pathManager.FindPathConf / AddReader: configuration first, then authentication
        let conf = self.shared.lock().find_conf(&action.path);
        if let Err(e) = conf {
            return Err(err(e));
        }
        if let Err(e) = self.authorize(&action, creds, &flash) {
            let (code, desc) = if action.publish {
                ("NetStream.Publish.Unauthorized", "authentication failed")
            } else {
                ("NetStream.Play.Failed", "authentication failed")
            };
            self.w.on_status(action.txid, "error", code, desc)?;
            return Err(err(e));
        }
        if action.publish {
            self.publish(action, user)
        } else {
            self.read(action, user)
        }
    }

    fn authorize(&self, a: &Action, creds: crate::auth::Creds, flash: &str) -> Result<(), String> {
        let Some(ip) = self.info.ip else {
            return Ok(());
        };
        let global = self.shared.lock().global.clone();
        let req = crate::auth::Request {
            action: if a.publish { "publish" } else { "read" },
            path: &a.path,
            ip,
            creds,
            verify: None,
            ask_credentials: false,
            protocol: "rtmp",
            id: Some(&self.info.uuid),
            query: &a.query,
            user_agent: flash,
        };
        crate::auth::authenticate(&self.shared, &global, &req).map_err(|e| {
            // auth.LogAndDelayError
            self.shared.log_as(&self.info.scope(), "WAR", &e.to_string());
            std::thread::sleep(crate::auth::failure_pause());
            e.to_string()
        })
    }

    /// C0+C1 → S0+S1+S2 → C2 (the plain handshake: S1 carries no digest, so clients
    /// do not validate it).
    fn handshake(&mut self) -> std::io::Result<()> {
        let mut c0c1 = vec![0u8; 1537];
        self.rd.rd.read_exact(&mut c0c1)?;
        if c0c1[0] != 3 {
            return Err(bad("unsupported RTMP version"));
        }
        let mut out = Vec::with_capacity(3073);
        out.push(3);
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&crate::util::random_bytes(1528));
        out.extend_from_slice(&c0c1[1..]);
        self.info.sent.fetch_add(out.len() as u64, Ordering::Relaxed);
        self.w.tcp.lock().unwrap().write_all(&out)?;
        let mut c2 = vec![0u8; 1536];
        self.rd.rd.read_exact(&mut c2)
    }

    /// Next message, after handling protocol control messages and acknowledgements.
    fn next(&mut self) -> std::io::Result<Msg> {
        loop {
            let m = self.rd.read_message()?;
            let total = self.info.received.load(Ordering::Relaxed);
            if self.window > 0 && total - self.acked >= self.window as u64 {
                self.acked = total;
                self.w.control(3, &(total as u32).to_be_bytes())?;
            }
            crate::rtmp_message::check(m.typ, &m.payload).map_err(|e| bad(&e))?;
            let word = || m.payload.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match m.typ {
                1 => {
                    let v = word().ok_or_else(|| bad("invalid set chunk size"))? & 0x7fff_ffff;
                    if v == 0 || v as usize > MAX_MESSAGE {
                        return Err(bad("invalid chunk size"));
                    }
                    self.rd.chunk_size = v as usize;
                }
                5 => self.window = word().unwrap_or(WINDOW),
                2 | 3 | 4 | 6 => {}
                _ => return Ok(m),
            }
        }
    }

    /// A command (AMF0, type 20; gortmplib takes no AMF3 message).
    fn command_of(m: &Msg) -> Option<Vec<Amf>> {
        if m.typ != 20 {
            return None;
        }
        amf0::decode_all(&m.payload).ok()
    }

    fn read_connect(&mut self) -> std::io::Result<(String, String)> {
        loop {
            let m = self.next()?;
            let Some(cmd) = Self::command_of(&m) else { continue };
            if cmd.first().and_then(|v| v.as_str()) != Some("connect") {
                return Err(bad("unexpected command"));
            }
            let txid = match cmd.get(1) {
                Some(Amf::Number(n)) => *n,
                _ => 1.0,
            };
            let o = cmd.get(2).ok_or_else(|| bad("invalid connect command"))?;
            o.get("app")
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad("invalid connect command"))?;
            let tc = o
                .get("tcUrl")
                .or_else(|| o.get("tcurl"))
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad("invalid connect command"))?;
            let flash = o.get("flashVer").and_then(|v| v.as_str()).unwrap_or("").to_string();
            self.connect_txid = txid;
            return Ok((tc.trim_matches('\'').to_string(), flash));
        }
    }

    /// gortmplib's AcceptConn: window, peer bandwidth, chunk size, `_result`; then
    /// createStream is answered until publish or play arrives.
    fn accept_conn(&mut self, tc_url: &str) -> std::io::Result<Action> {
        self.w.control(5, &WINDOW.to_be_bytes())?;
        let mut bw = WINDOW.to_be_bytes().to_vec();
        bw.push(2);
        self.w.control(6, &bw)?;
        self.w.control(1, &(OUT_CHUNK as u32).to_be_bytes())?;
        let props = amf0::obj(&[
            ("fmsVer", amf0::s("LNX 9,0,124,2")),
            ("capabilities", Amf::Number(31.0)),
        ]);
        let status = amf0::obj(&[
            ("level", amf0::s("status")),
            ("code", amf0::s("NetConnection.Connect.Success")),
            ("description", amf0::s("Connection succeeded.")),
            ("objectEncoding", Amf::Number(0.0)),
        ]);
        self.w.command(
            3,
            0,
            &[amf0::s("_result"), Amf::Number(self.connect_txid), props, status],
        )?;
        loop {
            let m = self.next()?;
            let Some(cmd) = Self::command_of(&m) else { continue };
            let txid = match cmd.get(1) {
                Some(Amf::Number(n)) => *n,
                _ => 0.0,
            };
            match cmd.first().and_then(|v| v.as_str()) {
                Some("createStream") => {
                    self.w.command(
                        3,
                        0,
                        &[amf0::s("_result"), Amf::Number(txid), Amf::Null, Amf::Number(1.0)],
                    )?;
                }
                Some(name @ ("play" | "publish")) => {
                    let key = cmd
                        .get(3)
                        .and_then(|v| v.as_str())
                        .ok_or_else(|| bad(&format!("invalid {} command arguments", name)))?;
                    let (path, query) = join_url(tc_url, key);
                    return Ok(Action {
                        publish: name == "publish",
                        txid,
                        path,
                        query,
                    });
                }
                _ => {}
            }
        }
    }

    fn set_meta(&self, state: &'static str, a: &Action, user: String) {
        let mut m = self.info.meta.lock().unwrap();
        m.state = state;
        m.path = a.path.clone();
        m.query = a.query.clone();
        m.user = user;
    }

    fn publish(&mut self, a: Action, user: String) -> std::io::Result<()> {
        self.w
            .on_status(a.txid, "status", "NetStream.Publish.Start", "publish start")?;
        // a publisher: each read within readTimeout, writes (acks) without deadline
        let _ = self
            .info
            .tcp
            .set_read_timeout(Some(timeout_of(&self.shared, "readTimeout")));
        let _ = self.info.tcp.set_write_timeout(None);
        // gortmplib's Reader reads the tracks before the path is asked to take them
        let read = self.read_tracks()?;
        {
            // path.addPublisher's refusals
            let shared = self.shared.clone();
            let mut st = shared.lock();
            let p = core::get_or_create_path(&shared, &mut st, &a.path).map_err(err)?;
            if p.s("source") != "publisher" {
                return Err(err(format!(
                    "can't publish to path '{}' since 'source' is not 'publisher'",
                    a.path
                )));
            }
            if p.publisher.is_some() && !p.b("overridePublisher") {
                return Err(err(format!("someone is already publishing to path '{}'", a.path)));
            }
            let mut reg = shared.rtmp.publishing.lock().unwrap();
            if reg.contains_key(&a.path) && !p.b("overridePublisher") {
                return Err(err(format!("someone is already publishing to path '{}'", a.path)));
            }
            reg.insert(a.path.clone(), self.info.clone());
        }
        self.set_meta("publish", &a, user);
        let res = self.publish_loop(&a, read);
        {
            let mut reg = self.shared.rtmp.publishing.lock().unwrap();
            if reg.get(&a.path).is_some_and(|c| c.num == self.info.num) {
                reg.remove(&a.path);
            }
        }
        // path.RemovePublisher at once, not when the relay's ffmpeg has exited: a
        // publisher reconnecting right away is not refused
        let mut st = self.shared.lock();
        let relay = st.paths.get(&a.path).and_then(|p| p.publisher.as_ref());
        if let Some(conn_id) = relay.filter(|pb| pb.id == self.info.uuid).map(|pb| pb.conn_id) {
            core::publish_stop(&self.shared, &mut st, &a.path, conn_id);
        }
        res
    }

    /// Reader.readTracks: the messages of the first 2 s of media, kept to be replayed
    /// (gortmplib's rewindableConn); `no tracks found` when none makes a track.
    fn read_tracks(&mut self) -> std::io::Result<Vec<Msg>> {
        // the double's bound on what is kept (gortmplib keeps all): a client whose DTS
        // does not advance cannot grow it without end
        const MAX_KEPT: usize = 64 << 20;
        let mut probe = crate::rtmp_message::TrackProbe::default();
        let (mut read, mut kept) = (Vec::new(), 0);
        loop {
            let m = self.next()?;
            let done = probe.add(m.typ, m.ts, &m.payload);
            kept += m.payload.len();
            if kept > MAX_KEPT {
                return Err(bad(
                    "too much data before the tracks were read (the double's bound: 64 MiB)",
                ));
            }
            read.push(m);
            if done {
                probe.result().map_err(|e| bad(&e))?;
                return Ok(read);
            }
        }
    }

    /// Audio, video and metadata messages (`read` first) become FLV tags on the ffmpeg
    /// child's stdin.
    fn publish_loop(&mut self, a: &Action, read: Vec<Msg>) -> std::io::Result<()> {
        let mut child: Option<(Child, ChildStdin)> = None;
        let mut read = read.into_iter();
        let res = (|| loop {
            let m = match read.next() {
                Some(m) => m,
                None => self.next()?,
            };
            let data = match m.typ {
                8 | 9 => m.payload,
                18 => flv::strip_set_data_frame(m.payload),
                20 | 17 => {
                    let cmd = Self::command_of(&m).unwrap_or_default();
                    match cmd.first().and_then(|v| v.as_str()) {
                        Some("deleteStream" | "FCUnpublish" | "closeStream") => return Ok(()),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            if child.is_none() {
                let (has_audio, has_video) = if m.typ == 18 {
                    flv::codecs_of(&data)
                } else {
                    (true, true)
                };
                let (c, mut stdin) = spawn_publisher(&self.shared, &a.path)?;
                stdin.write_all(&flv::header(has_audio, has_video))?;
                child = Some((c, stdin));
            }
            let stdin = &mut child.as_mut().unwrap().1;
            stdin.write_all(&flv::tag(m.typ, m.ts, &data))?;
        })();
        if let Some((c, stdin)) = child {
            drop(stdin);
            stop_child(&self.shared, c);
        }
        res
    }

    fn read(&mut self, a: Action, user: String) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let num = self.info.num;
        let tracks;
        {
            // pathManager.AddReader (on-demand sources started and waited for), then
            // path.addReaderPost
            core::await_stream(&shared, &a.path, &a.query).map_err(err)?;
            let mut st = shared.lock();
            let p = core::get_or_create_path(&shared, &mut st, &a.path).map_err(err)?;
            let max = p.conf.get("maxReaders").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            if max != 0 && p.readers.len() >= max {
                return Err(err("maximum reader count reached".into()));
            }
            // rtmp.FromStream: the tracks FLV takes, the others skipped
            let medias = p.stream.as_ref().map(|s| s.sdp.medias.clone()).unwrap_or_default();
            tracks = crate::rtmp_relay::legacy_tracks(&medias);
            if tracks.is_empty() {
                return Err(err(crate::rtmp_relay::NO_SUPPORTED_CODECS.into()));
            }
            let scope = self.info.scope();
            let info = core::log_track_choice(&shared, &scope, &medias, &tracks);
            shared.log_as(&scope, "INF", &format!("is reading from path '{}', {}", a.path, info));
            p.readers.push((num, self.info.uuid.clone(), self.info.kind()));
            p.demand += 1;
            let reader = (self.info.uuid.as_str(), self.info.kind(), scope);
            core::reader_added(&shared, p, num, reader, &a.query);
        }
        let res = self.read_inner(&a, user, &tracks);
        let mut st = shared.lock();
        if let Some(p) = st.paths.get_mut(&a.path) {
            let before = p.readers.len();
            p.readers.retain(|r| r.0 != num);
            core::reader_removed(&shared, p, num);
            if p.readers.len() != before {
                p.demand = p.demand.saturating_sub(1);
                if p.demand == 0 {
                    p.idle_since = Instant::now();
                }
            }
        }
        res
    }

    fn read_inner(&mut self, a: &Action, user: String, tracks: &[usize]) -> std::io::Result<()> {
        self.w.control(4, &[0, 4, 0, 0, 0, 1])?; // StreamIsRecorded
        self.w.control(4, &[0, 0, 0, 0, 0, 1])?; // StreamBegin
        for (code, desc) in [
            ("NetStream.Play.Reset", "play reset"),
            ("NetStream.Play.Start", "play start"),
            ("NetStream.Data.Start", "data start"),
            ("NetStream.Play.PublishNotify", "publish notify"),
        ] {
            self.w.on_status(a.txid, "status", code, desc)?;
        }
        self.set_meta("read", a, user);
        let mut child = spawn_reader(&self.shared, &a.path, tracks)?;
        let stdout = child.stdout.take().ok_or_else(|| err("no stdout".into()))?;
        let w = self.w.clone();
        // MediaMTX's stream.Reader: a queue of writeQueueSize units between the stream
        // and the socket writer; a unit that does not fit is discarded and counted
        let queue_size = {
            let st = self.shared.lock();
            st.global.get("writeQueueSize").and_then(|v| v.as_u64()).unwrap_or(512) as usize
        };
        let (qtx, qrx) = std::sync::mpsc::sync_channel::<(u8, u32, Vec<u8>)>(queue_size.max(1));
        let discarded = self.info.discarded.clone();
        // FLV tags from ffmpeg into the queue; when the stream ends the queue closes
        let pump = std::thread::spawn(move || {
            let _ = flv::read_tags(stdout, |typ, ts, body| {
                match qtx.try_send((typ, ts, body.to_vec())) {
                    Ok(()) => {}
                    Err(std::sync::mpsc::TrySendError::Full(_)) => {
                        discarded.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(err("writer gone".into())),
                }
                Ok(())
            });
        });
        // the writer: queued tags become messages on stream 1 (audio, video and data on
        // their usual chunk streams), each write bounded by writeTimeout; a failed write
        // or the end of the stream closes the reader
        let writer = std::thread::spawn(move || {
            for (typ, ts, body) in qrx {
                let csid = match typ {
                    8 => 4,
                    9 => 6,
                    _ => 5,
                };
                if w.send(csid, typ, 1, ts, &body).is_err() {
                    break;
                }
            }
            let _ = w.tcp.lock().unwrap().shutdown(Shutdown::Both);
        });
        let _ = self.info.tcp.set_read_timeout(None);
        let res = (|| loop {
            let m = self.next()?;
            if let Some(cmd) = Self::command_of(&m) {
                if matches!(
                    cmd.first().and_then(|v| v.as_str()),
                    Some("deleteStream" | "closeStream")
                ) {
                    return Ok(());
                }
            }
        })();
        let _ = self.info.tcp.shutdown(Shutdown::Both);
        stop_child(&self.shared, child);
        let _ = pump.join();
        let _ = writer.join();
        res
    }
}

/// gortmplib's joinURL, then MediaMTX's path (the URL path without leading slashes)
/// and raw query.
fn join_url(tc_url: &str, key: &str) -> (String, String) {
    let mut u = tc_url.to_string();
    if !key.is_empty() && !key.starts_with('?') {
        u.push('/');
        u.push_str(key);
    }
    let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(&u);
    let rest = rest.split_once('#').map(|(a, _)| a).unwrap_or(rest);
    let after_host = rest.find(['/', '?']).map(|i| &rest[i..]).unwrap_or("");
    let (path, query) = after_host.split_once('?').unwrap_or((after_host, ""));
    let path = crate::http::percent_decode(path, false).unwrap_or_else(|| path.to_string());
    (path.trim_start_matches('/').to_string(), query.to_string())
}

/// url.Values.Get on a raw query.
fn query_get(q: &str, key: &str) -> String {
    for part in q.split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if crate::http::percent_decode(k, true).as_deref() == Some(key) {
            return crate::http::percent_decode(v, true).unwrap_or_default();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_from_tcurl_and_key() {
        // ffmpeg: rtmp://h/mypath?user=a → app "", key "mypath?user=a"
        assert_eq!(
            join_url("rtmp://h:1935/", "mypath?user=a&pass=b"),
            ("mypath".into(), "user=a&pass=b".into())
        );
        assert_eq!(
            join_url("rtmp://h:1935/live", "stream"),
            ("live/stream".into(), "".into())
        );
        assert_eq!(join_url("rtmp://h/live?x=1", "?y"), ("live".into(), "x=1".into()));
        assert_eq!(query_get("user=a%20b&pass=c", "user"), "a b");
    }

    #[test]
    fn random_input_never_panics() {
        // deterministic pseudo-random bytes through the chunk reader and AMF0 decoder
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let b: Vec<u8> = (0..300)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 33) as u8
                })
                .collect();
            let mut r = ChunkReader::new(&b[..]);
            r.chunk_size = 16;
            while let Ok(m) = r.read_message() {
                let _ = amf0::decode_all(&m.payload);
            }
            let _ = amf0::decode_all(&b);
            let _ = flv::codecs_of(&b);
            let _ = join_url(&String::from_utf8_lossy(&b), "k");
            let _ = crate::util::parse_uuid(&String::from_utf8_lossy(&b[..36]));
        }
    }

    #[test]
    fn uuid_forms() {
        let u = "0f9e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        assert_eq!(crate::util::parse_uuid(u).unwrap(), u);
        assert_eq!(crate::util::parse_uuid(&u.replace('-', "")).unwrap(), u);
        assert_eq!(crate::util::parse_uuid("abc").unwrap_err(), "invalid UUID length: 3");
        assert_eq!(
            crate::util::parse_uuid(&u.replace('f', "x")).unwrap_err(),
            "invalid UUID format"
        );
    }
}
