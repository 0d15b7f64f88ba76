//! Loopback ports for static sources and `forward` destinations whose transport ffmpeg
//! cannot carry as MediaMTX does: TLS (ffmpeg's TLS verifies nothing; MediaMTX verifies the
//! certificate against the system roots or pins `sourceFingerprint`/`destFingerprint`) and
//! RTSP tunnelled in WebSocket (ffmpeg has no client for it). ffmpeg talks plain to the
//! port; for each connection it opens, the double dials the upstream server and carries
//! the bytes both ways.

use crate::core::Shared;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the upstream is reached.
#[derive(Clone, Copy, PartialEq)]
pub enum Carrier {
    /// TLS straight on TCP (`rtsps://`, `rtsps+http://`, `rtmps://`)
    Tls,
    /// gortsplib's WebSocket tunnel (`rtsp+ws://`), over TLS when `secure` (`rtsps+ws://`)
    WebSocket { secure: bool },
}

/// The server a static source reads from.
pub struct Upstream {
    /// the URL's host (`name[:port]`, `[v6][:port]`)
    pub host: String,
    /// the scheme's port when the host names none
    pub default_port: u16,
    pub carrier: Carrier,
    /// `sourceFingerprint` / `destFingerprint`
    pub fingerprint: String,
    /// `readTimeout`, also the dial and handshake bound
    pub timeout: Duration,
    /// the logger of a failure (`[path P] [RTSP source]`); none: not logged (the
    /// caller reports it from `Bridge::error`)
    pub log_scope: Option<crate::logger::Scope>,
}

/// An open bridge.
pub struct Bridge {
    pub port: u16,
    /// the last failure to reach the upstream, in MediaMTX's words
    pub error: Arc<Mutex<Option<String>>>,
}

/// How long a bridge waits for the puller's connections.
const ACCEPT_WINDOW: Duration = Duration::from_secs(30);

/// Opens a loopback port for one ffmpeg run: up to `connections` connections (RTSP and RTMP
/// use one, the HTTP tunnel two) are accepted within 30 s, then the port closes; a
/// restarted ffmpeg gets a new port.
pub fn open(shared: &Arc<Shared>, up: Upstream, connections: usize) -> std::io::Result<Bridge> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    l.set_nonblocking(true)?;
    let shared = shared.clone();
    let up = Arc::new(up);
    let error = Arc::new(Mutex::new(None));
    let last_error = error.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + ACCEPT_WINDOW;
        let mut accepted = 0;
        while accepted < connections && Instant::now() < deadline {
            match l.accept() {
                Ok((local, _)) => {
                    accepted += 1;
                    let (shared, up, last_error) = (shared.clone(), up.clone(), last_error.clone());
                    std::thread::spawn(move || {
                        // a failure closes ffmpeg's connection: ffmpeg fails and is restarted
                        if let Err(e) = carry(&shared, &up, local) {
                            if let Some(scope) = &up.log_scope {
                                shared.log_as(scope, "ERR", &e);
                            }
                            *last_error.lock().unwrap() = Some(e);
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return,
            }
        }
    });
    Ok(Bridge { port, error })
}

/// Opens a bridge to the host of `rest` (a URL after `scheme://`); the same URL with the
/// bridge's loopback address as its host (credentials, path and query kept), and the bridge.
pub fn open_for_url(
    shared: &Arc<Shared>,
    rest: &str,
    up: impl FnOnce(String) -> Upstream,
    connections: usize,
) -> Option<(String, Bridge)> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{}@", u), h),
        None => (String::new(), authority),
    };
    let b = open(shared, up(host.to_string()), connections).ok()?;
    Some((format!("{}127.0.0.1:{}{}", userinfo, b.port, tail), b))
}

/// Dials the upstream for one of ffmpeg's connections and copies both ways until either ends.
fn carry(shared: &Arc<Shared>, up: &Upstream, local: TcpStream) -> Result<(), String> {
    let _ = local.set_nonblocking(false);
    let (name, tcp) = crate::http_client::dial(&up.host, up.default_port, up.timeout)?;
    match up.carrier {
        Carrier::Tls => {
            let tls = crate::http_client::tls_connect(tcp, &name, &up.fingerprint)?;
            crate::rtsps::pump(shared, tls, local);
            Ok(())
        }
        Carrier::WebSocket { secure: false } => crate::rtsp_ws::carry_as_client(tcp, &up.host, local),
        Carrier::WebSocket { secure: true } => {
            // TLS terminated by a pump thread, so the WebSocket halves are plain sockets
            let tls = crate::http_client::tls_connect(tcp, &name, &up.fingerprint)?;
            let (inner, outer) = crate::rtsps::loopback_pair().map_err(|e| e.to_string())?;
            let sh = shared.clone();
            std::thread::spawn(move || crate::rtsps::pump(&sh, tls, inner));
            let _ = outer.set_read_timeout(Some(up.timeout));
            crate::rtsp_ws::carry_as_client(outer, &up.host, local)
        }
    }
}
