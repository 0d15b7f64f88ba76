//! The TCP servers of MediaMTX that follow the configuration: the auxiliary HTTP servers
//! (playback, metrics, pprof), RTSP, RTSPS, RTMP, RTMPS and the API. Each has its own listener, open only
//! while MediaMTX would run it, on the port of its `*Address`, with TLS when encrypted,
//! like MediaMTX which starts, closes and restarts them on configuration changes
//! (closeResources/createResources). Shared here: that lifecycle and the accept loop,
//! and for the HTTP servers CORS (httpp's handlerOrigin and the preflight middleware) and
//! authentication with the server's action (auth.LogAndDelayError on failure). The
//! double's own RTSP clients use a listener of their own (rtsp::serve), never restarted.

use crate::core::Shared;
use crate::http::{self, Request, Response};
use crate::logger::LogConf;
use crate::rtsps::Handshake;
use openssl::ssl::SslAcceptor;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Handler = fn(&Arc<Shared>, &Request, SocketAddr) -> Response;

type Open = Arc<Mutex<HashMap<u64, TcpStream>>>;

/// How a server serves an accepted connection (after TLS termination when encrypted).
#[derive(Clone, Copy)]
pub enum Serve {
    /// HTTP, each request to the handler
    Http(Handler),
    /// HTTP with a connection loop of its own (the API: fault injection), given the
    /// client's address
    HttpConn(fn(Arc<Shared>, TcpStream, SocketAddr)),
    /// the protocol's own code, given the client's address and what is in front of it
    /// (TLS, done behind the plain side, see `rtsps::lazy_tls`; a failed PROXY header)
    Raw(fn(Arc<Shared>, TcpStream, SocketAddr, Front)),
}

impl Serve {
    fn is_http(&self) -> bool {
        !matches!(self, Serve::Raw(_))
    }
}

/// One server: its name (`playback`, `metrics`, `pprof`, `RTSP`, `RTSPS`, `RTMP`,
/// `RTMPS`, `API`: the tag of its log lines), its settings and how it serves connections.
#[derive(Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    /// the settings the server runs with in a global configuration, None while it is off
    pub settings: fn(&Map<String, Value>, &str) -> Option<Settings>,
    pub serve: Serve,
    /// kept closed whatever the configuration says (the API stopped by the control
    /// surface); `never` for the others
    pub held_off: fn(&crate::core::State) -> bool,
    /// the `*TrustedProxies` field whose peers may send a PROXY protocol header (RTSP,
    /// RTMP); the HTTP servers trust `X-Forwarded-For` instead
    pub proxy_protocol: Option<&'static str>,
}

/// A server the control surface never holds off.
pub fn never(_: &crate::core::State) -> bool {
    false
}

/// What a running server was started with: a change restarts it, like closeResources.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// `*Address`: the port is bound on loopback
    pub address: String,
    /// key and certificate files (relative to the double's directory) when encrypted
    pub tls: Option<(String, String)>,
    /// what MediaMTX logs when the server has started, after `[name] `
    pub started: String,
    /// the values of the other fields whose change restarts the server
    pub others: Vec<Value>,
}

/// The global fields whose change recreates MediaMTX's logger (core.go closeLogger).
const LOGGER_FIELDS: [&str; 5] = [
    "logLevel",
    "logDestinations",
    "logFile",
    "sysLogPrefix",
    "logStructured",
];

/// ... its authentication manager (closeAuthManager; `authInternalUsers` is reloaded
/// in place).
pub const AUTH_FIELDS: [&str; 12] = [
    "authMethod",
    "authHTTPAddress",
    "authHTTPFingerprint",
    "authHTTPExclude",
    "authJWTJWKS",
    "authJWTJWKSFingerprint",
    "authJWTClaimKey",
    "authJWTExclude",
    "authJWTInHTTPQuery",
    "authJWTIssuer",
    "authJWTAudience",
    "readTimeout",
];

/// ... its metrics server (closeMetrics, besides the authentication manager and logger).
const METRICS_FIELDS: [&str; 10] = [
    "metrics",
    "metricsAddress",
    "metricsEncryption",
    "metricsServerKey",
    "metricsServerCert",
    "metricsAllowOrigins",
    "metricsTrustedProxies",
    "readTimeout",
    "writeTimeout",
    "dumpPackets",
];

/// ... its path manager (closePathManager, besides the metrics server, authentication
/// manager and logger).
const PATH_MANAGER_FIELDS: [&str; 9] = [
    "logLevel",
    "dumpPackets",
    "rtspAddress",
    "readTimeout",
    "writeTimeout",
    "writeQueueSize",
    "udpReadBufferSize",
    "udpMaxPayloadSize",
    "rtspEncryption",
];

/// The values that restart an auxiliary HTTP server besides its own fields: MediaMTX
/// closes playback, metrics and pprof with its authentication manager and logger.
fn http_server_dependencies(g: &Map<String, Value>) -> Vec<Value> {
    values(g, &[&AUTH_FIELDS[..], &LOGGER_FIELDS[..]].concat())
}

/// The values that restart a media server (RTSPS, RTMP, RTMPS, SRT) besides its own
/// fields: MediaMTX closes them with its metrics server, path manager and logger (and
/// so with its authentication manager).
pub fn media_server_dependencies(g: &Map<String, Value>) -> Vec<Value> {
    let keys = [
        &METRICS_FIELDS[..],
        &PATH_MANAGER_FIELDS[..],
        &AUTH_FIELDS[..],
        &LOGGER_FIELDS[..],
    ]
    .concat();
    values(g, &keys)
}

/// The values of `keys` in a global configuration (null when absent).
pub fn values(g: &Map<String, Value>, keys: &[&str]) -> Vec<Value> {
    keys.iter().map(|k| g.get(*k).cloned().unwrap_or(Value::Null)).collect()
}

/// The settings of an auxiliary HTTP server: on while `<name>` is, restarted on a change
/// of `<name>Address`, `...Encryption`, `...ServerKey`, `...ServerCert`,
/// `...AllowOrigins`, `...TrustedProxies`, `readTimeout`, `writeTimeout`, `dumpPackets`
/// and of the authentication and log settings.
pub fn http_settings(g: &Map<String, Value>, name: &str) -> Option<Settings> {
    let f = |k: &str| g.get(&format!("{}{}", name, k)).cloned().unwrap_or(Value::Null);
    let text = |k: &str| f(k).as_str().unwrap_or("").to_string();
    if g.get(name).and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let tls = (f("Encryption").as_bool() == Some(true)).then(|| (text("ServerKey"), text("ServerCert")));
    let mut others = vec![f("AllowOrigins"), f("TrustedProxies")];
    others.extend(values(g, &["readTimeout", "writeTimeout", "dumpPackets"]));
    others.extend(http_server_dependencies(g));
    Some(Settings {
        started: format!(
            "started with listener on {} (TCP/{})",
            text("Address"),
            if tls.is_some() { "HTTPS" } else { "HTTP" }
        ),
        address: text("Address"),
        tls,
        others,
    })
}

/// A port the double picked at start for a server, held for the whole run by a bound
/// socket that does not listen: connections are refused while the server is off, as
/// with MediaMTX, yet nothing else (a parallel test) can take the port meanwhile, so
/// turning the server on at its first address always works. Both sockets share the
/// port through SO_REUSEPORT; only the listening one takes connections. The holder has
/// no SO_REUSEADDR: with it, Linux would let any SO_REUSEADDR socket (all of std's
/// listeners) bind the port while nothing listens.
pub struct PortHold {
    /// kept open for the port, never read
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

impl PortHold {
    pub fn new(port: u16) -> std::io::Result<PortHold> {
        let socket = shared_port_socket(port, false)?;
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a valid socket and an address buffer of `len` bytes.
        let rc = unsafe {
            libc::getsockname(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                &mut addr as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(PortHold {
            _socket: socket,
            port: u16::from_be(addr.sin_port),
        })
    }

    /// A listener on the held port, next to the holding socket.
    fn listen(&self) -> std::io::Result<TcpListener> {
        let socket = shared_port_socket(self.port, true)?;
        // SAFETY: a valid, bound socket.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&socket), 1024) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let l = TcpListener::from(socket);
        l.set_nonblocking(true)?;
        Ok(l)
    }
}

/// A TCP socket bound to 127.0.0.1:`port` with SO_REUSEPORT (so that the holder and the
/// listener can share the port) and, for a listener, SO_REUSEADDR as std's listeners.
fn shared_port_socket(port: u16, reuse_addr: bool) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket calls; the descriptor is owned at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let socket = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let opts: &[libc::c_int] = if reuse_addr {
            &[libc::SO_REUSEADDR, libc::SO_REUSEPORT]
        } else {
            &[libc::SO_REUSEPORT]
        };
        for &opt in opts {
            let rc = libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        crate::util::bind_loopback(socket.as_raw_fd(), port)?;
        Ok(socket)
    }
}

/// A running server: the settings it started with, its listener and, when encrypted,
/// its TLS context.
struct Running {
    settings: Settings,
    listener: TcpListener,
    tls: Option<Arc<SslAcceptor>>,
}

/// Starts a server from its settings: the listener on the port of its address (always
/// on loopback here; on the held port next to its holder) and the TLS context from the
/// key and certificate files.
fn start(shared: &Shared, kind: &Kind, settings: Settings, hold: &PortHold) -> Result<Running, String> {
    let address = &settings.address;
    let port = crate::conf::port_of(address).ok_or_else(|| format!("invalid address '{}'", address))?;
    let tls = match &settings.tls {
        Some((key, cert)) => {
            // httpp.Server.Initialize
            if kind.serve.is_http() && cert.is_empty() {
                return Err("server cert is missing".into());
            }
            check_key_pair(shared, key, cert)?;
            let path = |f: &str| shared.dir.join(f).to_string_lossy().into_owned();
            Some(Arc::new(crate::rtsps::tls_acceptor(&path(key), &path(cert))?))
        }
        None => None,
    };
    let listener = if port == hold.port {
        hold.listen()
    } else {
        crate::api::bind(port)
    }
    .map_err(|e| format!("listen tcp {}: bind: {}", address, crate::util::go_os_error(&e)))?;
    shared.log(&format!("INF [{}] {}", kind.name, settings.started));
    Ok(Running {
        settings,
        listener,
        tls,
    })
}

/// tls.LoadX509KeyPair's first checks, with Go's errors: the certificate file, then the
/// key file must be readable, then each must hold PEM data. Other faults are found by
/// OpenSSL (its error texts).
fn check_key_pair(shared: &Shared, key: &str, cert: &str) -> Result<(), String> {
    let read = |f: &str| {
        let mut data = Vec::new();
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let file = if f.is_empty() {
            Err(missing())
        } else {
            std::fs::File::open(shared.dir.join(f))
        };
        // PEM files are small: the first MiB tells
        file.and_then(|file| file.take(1 << 20).read_to_end(&mut data))
            .map_err(|e| format!("open {}: {}", f, crate::util::go_os_error(&e)))?;
        Ok::<_, String>(data)
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    for (pem, what) in [(cert_pem, "certificate"), (key_pem, "key")] {
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(format!("tls: failed to find any PEM data in {} input", what));
        }
    }
    Ok(())
}

/// The servers by name: started by their accept loop (which retries a failed start),
/// closed and restarted by `sync`.
#[derive(Default)]
pub struct Registry(
    Mutex<HashMap<&'static str, Arc<Mutex<Server>>>>,
    /// `sync` calls waiting for a server's lock: the accept loops let them in
    std::sync::atomic::AtomicUsize,
    /// how many times each server closed with connections open (see `closings`)
    Mutex<HashMap<&'static str, u64>>,
);

/// How many times the server `name` has closed so far: a connection that sees this
/// change during its life was ended by the server, `terminated` as MediaMTX logs it
/// (its servers cancel their connections' contexts), not by its client.
pub fn closings(shared: &Shared, name: &str) -> u64 {
    lock(&shared.aux.2).get(name).copied().unwrap_or(0)
}

/// Counts a closing of `name`, before its connections are shut.
fn count_closing(shared: &Shared, name: &'static str) {
    *lock(&shared.aux.2).entry(name).or_insert(0) += 1;
}

struct Server {
    kind: Kind,
    hold: PortHold,
    running: Option<Running>,
    /// the settings whose start failed (logged once)
    failed: Option<Settings>,
    /// open connections (each removes itself when done), closed with the server
    /// (httpp.Server.Close)
    open: Open,
}

impl Server {
    /// Closes the server when the configuration turned it off or changed its settings
    /// (connections are refused while it is off; a changed server starts again in
    /// `start_if_wanted`, on the new address, with or without TLS).
    fn close_if_changed(&mut self, shared: &Shared, old_log: &Mutex<LogConf>) {
        let wanted = self.wanted(shared);
        if self
            .running
            .as_ref()
            .is_some_and(|r| Some(&r.settings) != wanted.as_ref())
        {
            self.running = None;
            log_closing(shared, old_log, self.kind.name);
            // an HTTP server closes gracefully (httpp: Shutdown): a request being
            // answered (the API's own PATCH) gets its answer, then the connection ends
            let how = if self.kind.serve.is_http() {
                Shutdown::Read
            } else {
                Shutdown::Both
            };
            count_closing(shared, self.kind.name);
            for (_, c) in lock(&self.open).drain() {
                let _ = c.shutdown(how);
            }
        }
    }

    fn wanted(&self, shared: &Shared) -> Option<Settings> {
        let st = shared.lock();
        if (self.kind.held_off)(&st) {
            return None;
        }
        (self.kind.settings)(&st.global, self.kind.name)
    }

    /// Starts the server when it is off and the configuration wants it. A server that
    /// cannot start (address in use, missing or bad key or certificate) logs the error
    /// once and stays closed until it can (MediaMTX exits).
    fn start_if_wanted(&mut self, shared: &Shared) {
        if self.running.is_some() {
            return;
        }
        let Some(wanted) = self.wanted(shared) else {
            self.failed = None;
            return;
        };
        match start(shared, &self.kind, wanted.clone(), &self.hold) {
            Ok(r) => (self.running, self.failed) = (Some(r), None),
            Err(e) if self.failed.as_ref() != Some(&wanted) => {
                // logged by the core, untagged, before MediaMTX exits
                shared.log(&format!("ERR {}", e));
                self.failed = Some(wanted);
            }
            Err(_) => {}
        }
    }

    /// Retries a start that failed. Only that: starting a server the configuration turned
    /// on is `sync`'s, in MediaMTX's order (an accept loop starting it on its own could
    /// come before a server that `sync` has yet to restart).
    fn retry_failed_start(&mut self, shared: &Shared) {
        if self.failed.is_some() {
            self.start_if_wanted(shared);
        }
    }
}

/// Logs a server's closing with the log settings in force before the reload: MediaMTX
/// closes its logger after its servers and opens the new one before them.
pub fn log_closing(shared: &Shared, old_log: &Mutex<LogConf>, name: &str) {
    crate::logger::write(&shared.dir, old_log, &format!("INF [{}] closing", name));
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// MediaMTX's order of starting its servers (closeResources closes them the other way
/// round); SRT is a UDP server kept by srt.rs.
const START_ORDER: [&str; 9] = [
    "metrics", "pprof", "playback", "RTSP", "RTSPS", "RTMP", "RTMPS", "SRT", "API",
];

/// Applies a configuration change to the servers at once, so that it has taken effect
/// when the API answers (MediaMTX reloads right after answering): those to close or
/// restart are closed first (logged with `old_log`, the log settings before the change),
/// then those to run are started, each phase in MediaMTX's order. Called without the
/// state lock (each server's lock is taken first elsewhere).
pub fn sync(shared: &Shared, old_log: LogConf) {
    let old_log = Mutex::new(old_log);
    let servers: Vec<_> = {
        let registry = lock(&shared.aux.0);
        START_ORDER.iter().map(|n| (*n, registry.get(n).cloned())).collect()
    };
    shared.aux.1.fetch_add(1, Ordering::SeqCst);
    for (name, s) in servers.iter().rev() {
        match s {
            Some(s) => lock(s).close_if_changed(shared, &old_log),
            None if *name == "SRT" => crate::srt::close_if_changed(shared, &old_log),
            None => {}
        }
    }
    for (name, s) in &servers {
        match s {
            Some(s) => lock(s).start_if_wanted(shared),
            None if *name == "SRT" => crate::srt::start_if_wanted(shared),
            None => {}
        }
        // the RTSP server's UDP listeners come with it
        if let (&"RTSP", Some(udp)) = (name, &shared.udp) {
            udp.follow(shared);
        }
    }
    shared.aux.1.fetch_sub(1, Ordering::SeqCst);
}

/// Accept loop of one server. The server's lock is held while waiting for a connection
/// (at most 50 ms), so that `sync` finds it between two waits.
pub fn serve(shared: Arc<Shared>, hold: PortHold, kind: Kind, started: Arc<std::sync::Barrier>) {
    let server = Arc::new(Mutex::new(Server {
        kind,
        hold,
        running: None,
        failed: None,
        open: Open::default(),
    }));
    lock(&shared.aux.0).insert(kind.name, server.clone());
    lock(&server).start_if_wanted(&shared);
    started.wait();
    while !shared.shutdown.load(Ordering::SeqCst) {
        // std's mutex is not fair: a loop that locks again right after unlocking can keep
        // a waiting `sync` out for good on a busy machine, so it steps aside for one
        if shared.aux.1.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut srv = lock(&server);
        if shared.aux.1.load(Ordering::SeqCst) == 0 {
            srv.retry_failed_start(&shared);
        }
        let Some(r) = srv.running.as_ref() else {
            drop(srv);
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        match r.listener.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false).ok();
                let id = shared.id();
                if let Ok(c) = s.try_clone() {
                    lock(&srv.open).insert(id, c);
                }
                let sh = shared.clone();
                let open = srv.open.clone();
                let tls = r.tls.clone();
                std::thread::spawn(move || {
                    match (client_of(&sh, &s, peer, kind), tls) {
                        (Err(e), tls) => malformed_proxy_header(&sh, s, peer, kind, tls.is_some(), e),
                        (Ok(peer), Some(tls)) => tls_conn(&sh, s, peer, tls, kind),
                        (Ok(peer), None) => match kind.serve {
                            Serve::Http(handle) => http_conn(&sh, s, peer, kind.name, handle),
                            Serve::HttpConn(serve) => serve(sh.clone(), s, peer),
                            Serve::Raw(serve) => serve(sh.clone(), s, peer, Front::default()),
                        },
                    }
                    lock(&open).remove(&id);
                });
            }
            // poll returns at once on a connection; the timeout only paces the checks
            Err(_) => crate::util::wait_acceptable(&r.listener, Duration::from_millis(50)),
        }
    }
    count_closing(&shared, kind.name);
    for (_, c) in lock(&lock(&server).open).drain() {
        let _ = c.shutdown(Shutdown::Both);
    }
}

/// What stands in front of a raw server's protocol code: TLS (RTSPS, RTMPS), and the
/// error that ended the connection there (a failed TLS handshake, a malformed PROXY
/// header), which is then the connection's closing reason whatever its protocol saw.
#[derive(Clone, Default)]
pub struct Front {
    pub tls: bool,
    pub failed: Handshake,
}

impl Front {
    pub fn error(&self) -> Option<String> {
        self.failed.get().cloned()
    }
}

/// The client of an accepted connection: its peer, or behind a peer in the server's
/// trusted proxies the client its PROXY header names (proxy.Listener, read before TLS);
/// the header's error when it is malformed. With trusted proxies configured, every
/// connection goes through go-proxyproto: the others' headers are read and dropped
/// (policy IGNORE), and fail the same way.
fn client_of(shared: &Shared, s: &TcpStream, peer: SocketAddr, kind: Kind) -> Result<SocketAddr, String> {
    let Some(field) = kind.proxy_protocol else {
        return Ok(peer);
    };
    let proxies: Vec<String> = {
        let st = shared.lock();
        let v = st.global.get(field).cloned();
        v.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    };
    if proxies.is_empty() {
        return Ok(peer);
    }
    // go-proxyproto's DefaultReadHeaderTimeout
    let header = crate::proxy_protocol::read_header(s, Duration::from_secs(10))?;
    match header {
        crate::proxy_protocol::Header::Client(client) if ip_trusted(peer.ip(), &proxies) => Ok(client),
        _ => Ok(peer),
    }
}

/// A connection whose PROXY header is malformed: go-proxyproto reports the error at the
/// first read only (RemoteAddr falls back to the peer), so MediaMTX lists it under the
/// peer's address and runs its hooks before it closes with that error. Nothing more is
/// read from it.
fn malformed_proxy_header(shared: &Arc<Shared>, s: TcpStream, peer: SocketAddr, kind: Kind, tls: bool, e: String) {
    let _ = s.shutdown(Shutdown::Read);
    match kind.serve {
        Serve::Raw(serve) => {
            let front = Front {
                tls,
                ..Front::default()
            };
            let _ = front.failed.set(e);
            serve(shared.clone(), s, peer, front)
        }
        _ => {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// The TLS is terminated behind the plain side, which is served at once (Go handshakes
/// at the first read): a failed handshake ends the connection, logged by RTSPS and RTMPS
/// (not by httpp's servers).
fn tls_conn(shared: &Arc<Shared>, s: TcpStream, peer: SocketAddr, tls: Arc<SslAcceptor>, kind: Kind) {
    let mut timeout = crate::conf::duration_of(&shared.lock().global, "readTimeout");
    if timeout.is_zero() {
        timeout = Duration::from_secs(10);
    }
    let Ok((plain, handshake)) = crate::rtsps::lazy_tls(shared, s, tls, timeout, kind.serve.is_http()) else {
        return;
    };
    match kind.serve {
        Serve::Http(handle) => http_conn(shared, plain, peer, kind.name, handle),
        Serve::HttpConn(serve) => serve(shared.clone(), plain, peer),
        Serve::Raw(serve) => serve(
            shared.clone(),
            plain,
            peer,
            Front {
                tls: true,
                failed: handshake,
            },
        ),
    }
}

fn http_conn(shared: &Arc<Shared>, s: TcpStream, peer: SocketAddr, name: &str, handle: Handler) {
    let Ok(mut w) = s.try_clone() else {
        return;
    };
    let read_timeout = crate::conf::duration_of(&shared.lock().global, "readTimeout");
    let mut conn = crate::http_read::Conn::new(s, read_timeout, crate::http_read::IDLE_TIMEOUT);
    while let Some(req) = crate::http_read::read_request(&mut conn) {
        let mut resp = if is_preflight(&req) {
            preflight()
        } else {
            handle(shared, &req, peer)
        };
        add_allowed_origin(shared, name, &req, &mut resp);
        if !http::respond(&mut w, &resp, &req) {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn is_preflight(req: &Request) -> bool {
    req.method == "OPTIONS" && req.header("Access-Control-Request-Method").is_some()
}

/// middlewarePreflightRequests of the three servers.
fn preflight() -> Response {
    Response {
        code: 204,
        content_type: "text/plain",
        body: Vec::new(),
        headers: vec![
            ("Access-Control-Allow-Methods", "OPTIONS, GET".into()),
            ("Access-Control-Allow-Headers", "Authorization".into()),
        ],
    }
}

/// httpp's handlerOrigin: `Access-Control-Allow-Origin` per `<name>AllowOrigins` of
/// server `name` (`api`, `playback`, ...).
pub fn add_allowed_origin(shared: &Shared, name: &str, req: &Request, resp: &mut Response) {
    let origins = shared.lock().global.get(&format!("{}AllowOrigins", name)).cloned();
    let origins: Vec<String> = origins.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    if let Some(o) = allowed_origin(req.header("Origin").unwrap_or(""), &origins) {
        resp.headers.push(("Access-Control-Allow-Origin", o));
    }
}

/// (scheme, host, port) of an origin URL; the port defaults from http/https.
fn origin_parts(u: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = u.split_once("://")?;
    if scheme.is_empty() {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (h, p) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || host.starts_with('[') => (h.to_string(), p.to_string()),
        _ => (host.to_string(), String::new()),
    };
    let p = match (p.is_empty(), scheme) {
        (true, "http") => "80".to_string(),
        (true, "https") => "443".to_string(),
        _ => p,
    };
    Some((scheme.to_string(), h, p))
}

/// httpp isOriginAllowed: an exact scheme/host/port match (ports defaulted), a `*`
/// pattern in an allowed host, else `*` if listed.
pub fn allowed_origin(origin: &str, allow: &[String]) -> Option<String> {
    if allow.is_empty() {
        return None;
    }
    if let Some((scheme, host, port)) = origin_parts(origin).filter(|_| !origin.is_empty()) {
        let origin_host = if port.is_empty() {
            host.clone()
        } else {
            format!("{}:{}", host, port)
        };
        for a in allow {
            let Some((ascheme, ahost, aport)) = origin_parts(a) else {
                continue;
            };
            if ascheme == scheme && ahost == host && aport == port {
                return Some(origin.to_string());
            }
            if ahost.contains('*') {
                let allowed_host = if aport.is_empty() {
                    ahost
                } else {
                    format!("{}:{}", ahost, aport)
                };
                let pattern = regex::escape(&allowed_host)
                    .replace(r"\*\.", r"(.*\.)?")
                    .replace(r"\*", ".*");
                if regex::Regex::new(&format!("^{}$", pattern)).is_ok_and(|r| r.is_match(&origin_host)) {
                    return Some(origin.to_string());
                }
            }
        }
    }
    allow.iter().any(|a| a == "*").then(|| "*".to_string())
}

/// Authentication with the server's action, the client's address taken through the
/// server's trusted proxies; Some(401 response) when refused.
pub fn check_auth(shared: &Shared, req: &Request, peer: SocketAddr, action: &str, path: &str) -> Option<Response> {
    let ip = server_client_ip(shared, req, peer, action);
    refuse_unauthenticated(shared, req, peer, ip, action, path, action)
}

/// The client IP of a request to server `name` (`api`, `playback`, ...): gin's ClientIP
/// with the server's `<name>TrustedProxies`.
pub fn server_client_ip(shared: &Shared, req: &Request, peer: SocketAddr, name: &str) -> IpAddr {
    let proxies: Vec<String> = shared
        .lock()
        .global
        .get(&format!("{}TrustedProxies", name))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    client_ip(req, peer.ip(), &proxies)
}

/// Authenticates an HTTP request as `ip`; Some(401 response) when refused: the
/// `WWW-Authenticate` challenge when no credentials were sent, else (auth.LogAndDelayError)
/// a `WAR [<tag>]` line and the pause.
pub fn refuse_unauthenticated(
    shared: &Shared,
    req: &Request,
    peer: SocketAddr,
    ip: IpAddr,
    action: &str,
    path: &str,
    tag: &str,
) -> Option<Response> {
    let global = shared.lock().global.clone();
    let areq = crate::auth::Request {
        action,
        path,
        ip,
        creds: crate::auth::http_credentials(&req.headers),
        verify: None,
        ask_credentials: true,
        protocol: "",
        id: None,
        query: &req.raw_query,
        user_agent: req.header("User-Agent").unwrap_or(""),
    };
    let err = crate::auth::authenticate(shared, &global, &areq).err()?;
    let mut r = Response::error(401, "authentication error");
    if err.ask {
        r.headers.push(("WWW-Authenticate", "Basic realm=\"mediamtx\"".into()));
    } else {
        // httpp.RemoteAddr: the client IP with the peer's port
        let remote = SocketAddr::new(ip, peer.port());
        shared.log_as(&crate::logger::Scope::conn(tag, remote), "WAR", &err.to_string());
        std::thread::sleep(crate::auth::failure_pause());
    }
    Some(r)
}

/// gin's ClientIP: behind a trusted proxy, the rightmost untrusted address of
/// `X-Forwarded-For` (else `X-Real-IP`); otherwise the peer.
fn client_ip(req: &Request, peer: IpAddr, proxies: &[String]) -> IpAddr {
    if !ip_trusted(peer, proxies) {
        return peer;
    }
    for h in ["X-Forwarded-For", "X-Real-IP"] {
        let Some(v) = req.header(h) else { continue };
        let items: Vec<&str> = v.split(',').collect();
        for (i, item) in items.iter().enumerate().rev() {
            let Ok(ip) = item.trim().parse::<IpAddr>() else { break };
            if i == 0 || !ip_trusted(ip, proxies) {
                return ip;
            }
        }
    }
    peer
}

/// Whether an IP is inside one of the `*TrustedProxies` networks (`a.b.c.d/n` or an IP).
pub fn ip_trusted(ip: IpAddr, nets: &[String]) -> bool {
    nets.iter().any(|n| {
        let (addr, bits) = n.split_once('/').unwrap_or((n, ""));
        let Ok(a) = addr.parse::<IpAddr>() else { return false };
        match (a, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let bits: u32 = bits.parse().unwrap_or(32).min(32);
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let bits: u32 = bits.parse().unwrap_or(128).min(128);
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_refuses_connections_and_stays_ours_until_the_server_listens() {
        let hold = PortHold::new(0).unwrap();
        assert_ne!(hold.port, 0);
        let connect = || TcpStream::connect(("127.0.0.1", hold.port));
        let err = connect().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{}", err);
        // a listener of someone else (std's, no SO_REUSEPORT) cannot take it
        assert!(TcpListener::bind(("127.0.0.1", hold.port)).is_err());
        let listener = hold.listen().unwrap();
        connect().expect("the server listens on the held port");
        drop(listener);
        assert!(connect().is_err(), "closed server");
        assert!(TcpListener::bind(("127.0.0.1", hold.port)).is_err(), "still held");
        // and it listens again
        let _listener = hold.listen().unwrap();
        connect().expect("listens again");
    }
}
