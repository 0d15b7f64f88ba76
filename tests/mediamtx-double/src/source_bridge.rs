//! Loopback ports for static sources whose transport ffmpeg cannot carry as MediaMTX does:
//! TLS (ffmpeg's TLS verifies nothing; MediaMTX verifies the certificate against the system
//! roots or pins `sourceFingerprint`) and RTSP tunnelled in WebSocket (ffmpeg has no client
//! for it). The puller's ffmpeg reads plain from the port; for each connection it opens,
//! the double dials the upstream server and carries the bytes.

use crate::core::Shared;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
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
    /// `sourceFingerprint`
    pub fingerprint: String,
    /// `readTimeout`, also the dial and handshake bound
    pub timeout: Duration,
    /// the log prefix: `[path P] [RTSP source]`
    pub log_prefix: String,
}

/// How long a bridge waits for the puller's connections.
const ACCEPT_WINDOW: Duration = Duration::from_secs(30);

/// Opens a loopback port for one puller: up to `connections` connections (RTSP and RTMP use
/// one, the HTTP tunnel two) are accepted within 30 s, then the port closes; a restarted
/// puller gets a new port. Returns the port.
pub fn open(shared: &Arc<Shared>, up: Upstream, connections: usize) -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    l.set_nonblocking(true)?;
    let shared = shared.clone();
    let up = Arc::new(up);
    std::thread::spawn(move || {
        let deadline = Instant::now() + ACCEPT_WINDOW;
        let mut accepted = 0;
        while accepted < connections && Instant::now() < deadline {
            match l.accept() {
                Ok((local, _)) => {
                    accepted += 1;
                    let (shared, up) = (shared.clone(), up.clone());
                    std::thread::spawn(move || {
                        // a failure closes ffmpeg's connection: the puller fails and restarts
                        if let Err(e) = carry(&shared, &up, local) {
                            shared.log(&format!("ERR {} {}", up.log_prefix, e));
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return,
            }
        }
    });
    Ok(port)
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
