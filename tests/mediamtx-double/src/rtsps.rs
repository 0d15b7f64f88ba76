//! RTSPS (`rtspEncryption: optional|strict`, `rtspsAddress`, `rtspServerKey`,
//! `rtspServerCert`): TLS is terminated here and the plain text is handed to the RTSP
//! server's connection code over a loopback socket pair, so that the same code serves
//! both (with the TLS client's address and the connection marked as RTSPS).

use crate::core::Shared;
use crate::servers::{values, Kind, Serve, Settings};
use openssl::ssl::{ErrorCode, SslAcceptor, SslFiletype, SslMethod, SslStream};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The RTSPS server (run by servers.rs): on `rtspsAddress` while `rtspEncryption` is not
/// `no`, restarted on a change of the fields closeRTSPSServer compares.
pub const SERVER: Kind = Kind {
    name: "RTSPS",
    settings,
    serve: Serve::Raw(plain_conn),
    held_off: crate::servers::never,
    proxy_protocol: Some("rtspTrustedProxies"),
};

fn settings(g: &Map<String, Value>, _: &str) -> Option<Settings> {
    if !crate::api::rtsp_servers_on(g).1 {
        return None;
    }
    let text = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let address = text("rtspsAddress");
    let mut others = values(g, &crate::rtsp::SHARED_FIELDS);
    others.extend(values(g, &["rtsp", "rtspEncryption", "rtspAddress"]));
    // and what closes the metrics server, path manager and logger
    others.extend(crate::servers::media_server_dependencies(g));
    Some(Settings {
        // printAddresses: the UDP (SRTP) listeners are not done here
        started: format!("started with listeners on {} (TCP/RTSPS)", address),
        address,
        tls: Some((text("rtspServerKey"), text("rtspServerCert"))),
        others,
    })
}

/// The plain side of a TLS termination, served by the RTSP server's code.
fn plain_conn(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr, front: crate::servers::Front) {
    crate::rtsp::conn(shared, tcp, peer, front)
}

/// A TLS server context from PEM key and certificate files (also the HTTPS servers').
pub fn tls_acceptor(key: &str, cert: &str) -> Result<SslAcceptor, String> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(|e| e.to_string())?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| format!("{}: {}", key, e))?;
    b.set_certificate_chain_file(cert)
        .map_err(|e| format!("{}: {}", cert, e))?;
    b.check_private_key().map_err(|e| e.to_string())?;
    Ok(b.build())
}

/// Set once a TLS handshake done behind a connection already served failed (see
/// `lazy_tls`), with its error.
pub type Handshake = Arc<OnceLock<String>>;

/// Serves an accepted TLS connection the way Go's tls.Conn does, which handshakes at
/// its first read: the plain side of a loopback pair is returned at once, so that the
/// protocol code lists the connection and starts its hooks as MediaMTX does at accept,
/// while a thread completes the handshake within `timeout` (the server's readTimeout),
/// then moves the bytes (`pump`). A failed handshake closes the plain side, its error
/// (in crypto/tls's words) kept in the Handshake. Used by every TLS server of the
/// double (RTSPS, RTMPS, HTTPS); on an HTTP one (`http`), a plain HTTP request gets
/// net/http's 400.
pub fn lazy_tls(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    acceptor: Arc<SslAcceptor>,
    timeout: Duration,
    http: bool,
) -> std::io::Result<(TcpStream, Handshake)> {
    let (inner, outer) = loopback_pair()?;
    let handshake = Handshake::default();
    let (sh, failed) = (shared.clone(), handshake.clone());
    std::thread::spawn(move || {
        let _ = tcp.set_read_timeout(Some(timeout));
        let fail = |why: String| {
            // set before the plain side sees its end
            let _ = failed.set(why);
            let _ = outer.shutdown(std::net::Shutdown::Both);
        };
        if http && plain_http_refused(&tcp) {
            return fail("tls: first record does not look like a TLS handshake".into());
        }
        match acceptor.accept(tcp) {
            Ok(tls) => pump(&sh, tls, outer),
            Err(e) => fail(crate::tls_errors::go_handshake_error(&e)),
        }
    });
    Ok((inner, handshake))
}

/// conn.serve on an HTTPS server: a first record header that is a plain HTTP request
/// is answered net/http's 400 and the connection closed (true then).
fn plain_http_refused(tcp: &TcpStream) -> bool {
    // the record header: five bytes, as they come (within the read timeout)
    let timeout = tcp.read_timeout().ok().flatten().unwrap_or(Duration::from_secs(10));
    let mut first = crate::socket_peek::Peek::new(tcp, timeout, 5);
    let http = first.wait(5) == crate::socket_peek::Wait::Ready && crate::tls_errors::looks_like_http(first.data());
    if !http {
        // the handshake keeps the read timeout the wait cleared
        let _ = tcp.set_read_timeout(Some(timeout));
        return false;
    }
    // what came with the header is consumed (Go read it), so closing does not reset
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(5)));
    let _ = (&*tcp).read(&mut [0u8; 16 * 1024]);
    let _ = (&*tcp).write_all(crate::tls_errors::PLAIN_HTTP_ANSWER.as_bytes());
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    true
}

/// Two connected loopback sockets (the accepted one is checked to be ours, not another
/// local client's).
pub fn loopback_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let outer = TcpStream::connect(l.local_addr()?)?;
    let inner = loop {
        let (inner, peer) = l.accept()?;
        if peer == outer.local_addr()? {
            break inner;
        }
    };
    let _ = inner.set_nodelay(true);
    let _ = outer.set_nodelay(true);
    Ok((inner, outer))
}

fn poll(fds: &mut [libc::pollfd], ms: i32) {
    // SAFETY: fds is a valid, exclusively borrowed array of pollfd
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

/// Copies between the TLS client and the plain side until either ends. One thread:
/// the TLS socket is non-blocking and both sides are polled.
pub fn pump(shared: &Shared, mut tls: SslStream<TcpStream>, mut plain: TcpStream) {
    let _ = tls.get_ref().set_read_timeout(None);
    if tls.get_ref().set_nonblocking(true).is_err() {
        return;
    }
    let tls_fd = tls.get_ref().as_raw_fd();
    let plain_fd = plain.as_raw_fd();
    let mut buf = vec![0u8; 16 * 1024];
    while !shared.shutdown.load(Ordering::SeqCst) {
        let mut fds = [
            libc::pollfd {
                fd: tls_fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: plain_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if tls.ssl().pending() == 0 {
            poll(&mut fds, 500);
        } else {
            fds[0].revents = libc::POLLIN;
        }
        if fds[0].revents != 0 {
            match tls.ssl_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if plain.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {}
                Err(_) => break,
            }
        }
        if fds[1].revents != 0 {
            match plain.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !tls_write_all(&mut tls, &buf[..n]) {
                        break;
                    }
                }
            }
        }
    }
    let _ = plain.shutdown(std::net::Shutdown::Both);
    let _ = tls.get_ref().set_nonblocking(false);
    let _ = tls.get_ref().set_write_timeout(Some(Duration::from_secs(1)));
    let _ = tls.shutdown();
}

fn tls_write_all(tls: &mut SslStream<TcpStream>, mut data: &[u8]) -> bool {
    let fd = tls.get_ref().as_raw_fd();
    let mut waits = 0;
    while !data.is_empty() {
        match tls.ssl_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.code() == ErrorCode::WANT_WRITE || e.code() == ErrorCode::WANT_READ => {
                // a client that stops reading for long (writeTimeout, 10 s) is dropped
                waits += 1;
                if waits > 100 {
                    return false;
                }
                let events = if e.code() == ErrorCode::WANT_WRITE {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                poll(&mut [libc::pollfd { fd, events, revents: 0 }], 100);
            }
            Err(_) => return false,
        }
    }
    true
}
