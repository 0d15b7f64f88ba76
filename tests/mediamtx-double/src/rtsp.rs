//! RTSP server (TCP interleaved transport only): publish (ANNOUNCE/SETUP/RECORD) and
//! read (DESCRIBE/SETUP/PLAY), relaying RTP packets to every reader.

use crate::core::{self, Out, Publisher, Shared, Sink, Stream};
use crate::media;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn serve(shared: Arc<Shared>, listener: TcpListener) {
    listener.set_nonblocking(true).ok();
    while !shared.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let sh = shared.clone();
                s.set_nonblocking(false).ok();
                std::thread::spawn(move || conn(sh, s));
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
        stream: Option<Arc<Stream>>,
        sps_pending: Vec<bool>,
        /// alwaysAvailable's offline-stream generator
        offline: bool,
    },
    Reader {
        path: String,
        hidden: bool,
        chans: Vec<Option<u8>>,
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
    /// close after the current response (wrong credentials)
    close: bool,
    /// query of the URL of the last DESCRIBE/ANNOUNCE/SETUP (MTX_QUERY of hooks)
    query: String,
    /// query of an internal DESCRIBE (a forwarder's `forward=<uid>`; its SETUPs have none)
    internal_query: String,
    /// runOnConnect/runOnDisconnect, started with the first request that is not the
    /// double's own (recorder, pulled source)
    connect_hooks: Option<crate::hooks::Pair>,
    conn_uuid: String,
    /// the SRT connection whose relay publishes here (named in its ANNOUNCE query)
    srt_conn: Option<String>,
}

fn writer(mut tcp: TcpStream, rx: Receiver<Out>) {
    for o in rx {
        let r = match o {
            Out::Raw(b) => tcp.write_all(&b),
            Out::Sync(done) => {
                let _ = done.send(());
                Ok(())
            }
            Out::Frame(ch, data) => {
                let mut buf = Vec::with_capacity(4 + data.len());
                buf.push(b'$');
                buf.push(ch);
                buf.extend_from_slice(&(data.len() as u16).to_be_bytes());
                buf.extend_from_slice(&data);
                tcp.write_all(&buf)
            }
        };
        if r.is_err() {
            let _ = tcp.shutdown(Shutdown::Both);
            break;
        }
    }
    let _ = tcp.shutdown(Shutdown::Both);
}

fn conn(shared: Arc<Shared>, tcp: TcpStream) {
    let id = shared.id();
    let _ = tcp.set_nodelay(true);
    let (tx, rx) = sync_channel::<Out>(2048);
    let wtcp = match tcp.try_clone() {
        Ok(t) => t,
        Err(_) => return,
    };
    let wthread = std::thread::spawn(move || writer(wtcp, rx));
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
        peer: tcp.peer_addr().ok(),
        nonce: Default::default(),
        close: false,
        query: String::new(),
        internal_query: String::new(),
        connect_hooks: None,
        conn_uuid: crate::util::uuid(),
        srt_conn: None,
    };
    let mut rd = BufReader::with_capacity(64 * 1024, tcp);
    let _ = c.run(&mut rd);
    c.cleanup();
    if let Some(h) = c.connect_hooks.take() {
        if !shared.shutdown.load(Ordering::SeqCst) {
            h.end(&shared);
        }
    }
    shared.conns.lock().unwrap().remove(&id);
    let _ = c.tcp.shutdown(Shutdown::Both);
    drop(c);
    let _ = wthread.join();
}

fn read_req(rd: &mut BufReader<TcpStream>, first: u8) -> std::io::Result<Option<Req>> {
    let _ = first;
    let mut line = String::new();
    if rd.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let url = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if rd.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    rd.read_exact(&mut body)?;
    Ok(Some(Req {
        method,
        url,
        headers,
        body,
    }))
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
        ("Session", format!("{};timeout=60", self.session))
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

    fn run(&mut self, rd: &mut BufReader<TcpStream>) -> std::io::Result<()> {
        loop {
            let first = {
                let buf = rd.fill_buf()?;
                if buf.is_empty() {
                    return Ok(());
                }
                buf[0]
            };
            if first == b'$' {
                let mut hdr = [0u8; 4];
                rd.read_exact(&mut hdr)?;
                let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
                let mut payload = vec![0u8; len];
                rd.read_exact(&mut payload)?;
                self.on_frame(hdr[1], payload);
                continue;
            }
            let req = match read_req(rd, first)? {
                Some(r) => r,
                None => return Ok(()),
            };
            if !self.on_request(&req) {
                return Ok(());
            }
        }
    }

    fn on_frame(&mut self, ch: u8, payload: Vec<u8>) {
        if let Role::Publisher {
            chmap,
            stream: Some(stream),
            sps_pending,
            ..
        } = &mut self.role
        {
            if let Some(&(media, rtcp)) = chmap.get(&ch) {
                if !rtcp && sps_pending.get(media).copied().unwrap_or(false) && payload.len() > 12 {
                    let cc = (payload[0] & 0x0f) as usize;
                    let off = 12 + cc * 4;
                    if payload.len() > off {
                        if let Some(sps) = media::find_sps_in_rtp(&payload[off..]) {
                            if let Some(props) = media::h264_props(&sps) {
                                stream.props.lock().unwrap()[media] = Some(props);
                                sps_pending[media] = false;
                            }
                        }
                    }
                }
                stream.write(media, rtcp, payload);
            }
        }
    }

    /// hooks.OnConnect (global runOnConnect/runOnDisconnect): RTSP_PORT, MTX_CONN_TYPE,
    /// MTX_CONN_ID.
    fn connect_hooks(&mut self, req: &Req) {
        if self.connect_hooks.is_some() || url_path(&req.url).0.starts_with(&self.shared.internal_prefix()) {
            return;
        }
        let g = self.shared.lock().global.clone();
        let s = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let (a, b) = (s("runOnConnect"), s("runOnDisconnect"));
        let restart = g.get("runOnConnectRestart").and_then(|v| v.as_bool()).unwrap_or(false);
        let env = vec![
            ("RTSP_PORT".to_string(), self.shared.rtsp_port.to_string()),
            ("MTX_CONN_TYPE".to_string(), "rtspConn".to_string()),
            ("MTX_CONN_ID".to_string(), self.conn_uuid.clone()),
        ];
        self.connect_hooks = Some(crate::hooks::Pair::start(
            &self.shared,
            "conn",
            ("runOnConnect", &a, restart),
            ("runOnDisconnect", &b),
            env,
        ));
    }

    /// Returns false to close the connection.
    fn on_request(&mut self, req: &Req) -> bool {
        self.connect_hooks(req);
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
                let h = self.session_hdr();
                self.respond(req, 200, "OK", &[h], b"");
                return false;
            }
            _ => self.respond(req, 501, "Not Implemented", &[], b""),
        }
        !self.close
    }

    /// pathManager: the configuration is looked up first (400 if none), then the request
    /// is authenticated.
    fn find_conf_and_authorize(&mut self, req: &Req, action: &str, name: &str) -> bool {
        let found = self.shared.lock().find_conf(name);
        if let Err(e) = found {
            self.shared.log(&format!("{} {}: {}", req.method, name, e));
            self.respond(req, 400, "Bad Request", &[], b"");
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
        let areq = crate::auth::Request {
            action,
            path: name,
            ip: peer.ip(),
            creds: crate::auth::rtsp_credentials(&values),
            verify: if digest { Some(&verify) } else { None },
            ask_credentials: true,
            protocol: "rtsp",
            id: Some(&self.conn_uuid),
            query: &query,
            user_agent: req.header("User-Agent").unwrap_or(""),
        };
        let Err(err) = crate::auth::authenticate(&global, &areq) else {
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
            self.shared.log(&format!("WAR [RTSP] [conn {}] {}", peer, err));
            std::thread::sleep(crate::auth::failure_pause());
        }
        self.respond(req, 401, "Unauthorized", &[], b"");
        // the answer goes out before the connection is closed
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Out::Sync(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
        self.close = true;
        false
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
                self.shared.log(&format!("DESCRIBE {}: {}", name, e));
                return self.respond(req, 400, "Bad Request", &[], b"");
            }
        };
        let gen = path.gen;
        let mut stream = path.stream.clone();
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
                        None => break,
                        Some(p) if p.stream.is_some() => {
                            stream = p.stream.clone();
                            break;
                        }
                        _ => {}
                    }
                    if now >= deadline || shared.shutdown.load(Ordering::SeqCst) {
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
            None => self.respond(req, 404, "Not Found", &[], b""),
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
            Err(e) => {
                self.shared.log(&format!("ANNOUNCE {}: {}", name, e));
                return self.respond(req, 400, "Bad Request", &[], b"");
            }
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
                self.shared.log(&format!("ANNOUNCE {}: {}", name, e));
                return self.respond(req, 400, "Bad Request", &[], b"");
            }
        };
        if path.s("source") != "publisher" && !internal {
            drop(st);
            self.shared.log(&format!(
                "ANNOUNCE {}: can't publish since 'source' is not 'publisher'",
                name
            ));
            return self.respond(req, 400, "Bad Request", &[], b"");
        }
        // the offline stream never replaces a publisher, and is replaced by any
        let cur_offline = path.publisher.as_ref().is_some_and(|pb| pb.offline);
        if path.publisher.is_some() && (offline || (!cur_offline && !path.b("overridePublisher"))) {
            drop(st);
            return self.respond(req, 400, "Bad Request", &[], b"");
        }
        drop(st);
        let n = sdp.medias.len();
        let pending = sdp
            .medias
            .iter()
            .map(|m| m.is_h264 && m.props.as_ref().map(|p| p["width"] == 0).unwrap_or(false))
            .collect();
        let _ = n;
        self.role = Role::Publisher {
            path: name,
            internal,
            sdp,
            chmap: HashMap::new(),
            stream: None,
            sps_pending: pending,
            offline,
        };
        let h = self.session_hdr();
        self.respond(req, 200, "OK", &[h], b"");
    }

    fn setup(&mut self, req: &Req) {
        let transport = req.header("Transport").unwrap_or("").to_string();
        let tcp = transport
            .split(',')
            .find(|t| t.contains("RTP/AVP/TCP") || t.contains("interleaved="));
        let Some(tcp) = tcp else {
            return self.respond(req, 461, "Unsupported Transport", &[], b"");
        };
        let interleaved: Option<(u8, u8)> = tcp.split(';').find_map(|p| {
            let v = p.trim().strip_prefix("interleaved=")?;
            let (a, b) = v.split_once('-').unwrap_or((v, ""));
            let a: u8 = a.parse().ok()?;
            let b: u8 = b.parse().unwrap_or(a.wrapping_add(1));
            Some((a, b))
        });
        let (p, _) = url_path(&req.url);
        match &mut self.role {
            Role::Publisher { sdp, chmap, .. } => {
                let idx = media_index_pub(&p, sdp);
                let Some(idx) = idx else {
                    return self.respond(req, 400, "Bad Request", &[], b"");
                };
                let (a, b) = interleaved.unwrap_or((idx as u8 * 2, idx as u8 * 2 + 1));
                chmap.insert(a, (idx, false));
                chmap.insert(b, (idx, true));
                let h = self.session_hdr();
                self.respond(
                    req,
                    200,
                    "OK",
                    &[("Transport", format!("RTP/AVP/TCP;unicast;interleaved={}-{}", a, b)), h],
                    b"",
                );
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
                                return self.respond(req, 404, "Not Found", &[], b"");
                            }
                        }
                    }
                };
                let idx = idx.unwrap_or(0);
                if idx >= count {
                    return self.respond(req, 404, "Not Found", &[], b"");
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
                        self.shared
                            .log(&format!("SETUP {}: maximum reader count reached", name));
                        return self.respond(req, 400, "Bad Request", &[], b"");
                    }
                }
                if !matches!(self.role, Role::Reader { .. }) {
                    if !hidden {
                        if let Some(p) = self.shared.lock().paths.get_mut(&name) {
                            p.set_up_readers.push(self.id);
                        }
                    }
                    self.role = Role::Reader {
                        path: name,
                        hidden,
                        chans: vec![None; count],
                        playing: None,
                    };
                }
                if let Role::Reader { chans, .. } = &mut self.role {
                    let (a, b) = interleaved.unwrap_or((idx as u8 * 2, idx as u8 * 2 + 1));
                    chans[idx] = Some(a);
                    let h = self.session_hdr();
                    self.respond(
                        req,
                        200,
                        "OK",
                        &[("Transport", format!("RTP/AVP/TCP;unicast;interleaved={}-{}", a, b)), h],
                        b"",
                    );
                }
            }
        }
    }

    fn record(&mut self, req: &Req) {
        let shared = self.shared.clone();
        let Role::Publisher {
            path,
            internal: relay,
            sdp,
            stream,
            offline,
            ..
        } = &mut self.role
        else {
            return self.respond(req, 455, "Method Not Valid in This State", &[], b"");
        };
        let mut st = shared.lock();
        let name = path.clone();
        let p = match core::get_or_create_path(&shared, &mut st, &name) {
            Ok(p) => p,
            Err(_) => {
                drop(st);
                return self.respond(req, 404, "Not Found", &[], b"");
            }
        };
        let internal = p.is_url_source() || *offline;
        // path.addPublisher (at RECORD): an alwaysAvailable path wants its tracks
        if !internal {
            if let Err(e) = crate::always_available::check_publisher(p, sdp) {
                drop(st);
                shared.log(&format!("RECORD {}: {}", name, e));
                return self.respond(req, 400, "Bad Request", &[], b"");
            }
        }
        if *offline && p.publisher.as_ref().is_some_and(|pb| !pb.offline) {
            // a real publisher came in between
            drop(st);
            return self.respond(req, 400, "Bad Request", &[], b"");
        }
        // the relay of an SRT publisher (srt.rs) names its connection in the query
        let srt = self.srt_conn.as_deref().and_then(|id| crate::srt::find(&shared, id));
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
            },
            (None, Some((source_type, id, conn, query))) => Publisher {
                offline: false,
                id,
                conn_id: self.id,
                conn,
                internal: false,
                query,
                source_type,
            },
            (None, None) => Publisher {
                offline: *offline,
                id: crate::util::uuid(),
                conn_id: self.id,
                conn: self.tcp.try_clone().expect("clone"),
                internal,
                source_type: if p.is_url_source() {
                    p.url_source_type()
                } else {
                    "rtspSession"
                },
                query: self.query.clone(),
            },
        };
        let s = core::publish_start(&shared, p, pb, sdp.clone());
        *stream = Some(s);
        drop(st);
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
        let Role::Reader {
            path,
            hidden,
            chans,
            playing,
        } = &mut self.role
        else {
            return self.respond(req, 455, "Method Not Valid in This State", &[], b"");
        };
        if playing.is_some() {
            let h = self.session_hdr();
            return self.respond(req, 200, "OK", &[h], b"");
        }
        let mut st = shared.lock();
        let Some(p) = st.paths.get_mut(path.as_str()) else {
            drop(st);
            return self.respond(req, 404, "Not Found", &[], b"");
        };
        let Some(stream) = p.stream.clone() else {
            drop(st);
            return self.respond(req, 404, "Not Found", &[], b"");
        };
        let counter = if *hidden {
            crate::forward::counter_for(p, &internal_query)
        } else {
            None
        };
        if !*hidden {
            p.set_up_readers.retain(|c| *c != conn_id);
            let rid = crate::util::uuid();
            p.readers.push((conn_id, rid.clone(), "rtspSession"));
            p.demand += 1;
            core::reader_added(&shared, p, conn_id, &rid, "rtspSession", &query);
        }
        let sink_id = shared.id();
        // respond before adding the sink so the PLAY reply precedes data
        let h = ("Session".to_string(), format!("{};timeout=60", self.session));
        let mut s = "RTSP/1.0 200 OK\r\n".to_string();
        if let Some(cseq) = req.header("CSeq") {
            s.push_str(&format!("CSeq: {}\r\n", cseq));
        }
        s.push_str(&format!(
            "Server: mediamtx-double\r\n{}: {}\r\nRange: npt=0.000-\r\n\r\n",
            h.0, h.1
        ));
        let _ = tx.send(Out::Raw(s.into_bytes()));
        stream.sinks.lock().unwrap().push(Sink {
            id: sink_id,
            tx,
            chans: chans.clone(),
            conn: sink_conn,
            hidden: *hidden,
            counter,
        });
        *playing = Some((stream, sink_id));
        drop(st);
    }

    fn cleanup(&mut self) {
        let shared = self.shared.clone();
        match std::mem::replace(&mut self.role, Role::None) {
            Role::Publisher {
                path, stream: Some(_), ..
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
