//! RTMPS: TLS with `rtmpServerKey`/`rtmpServerCert` (relative paths from the double's
//! directory), then the RTMP server of rtmp.rs. The TLS stream cannot be shared by the
//! connection's reading and writing threads, so one proxy thread moves the bytes
//! between it and a loopback socket that the plain RTMP code serves.

use crate::core::Shared;
use openssl::ssl::{ErrorCode, SslAcceptor, SslFiletype, SslMethod, SslStream};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

pub fn conn(shared: Arc<Shared>, tcp: TcpStream) {
    let remote = tcp.peer_addr().ok();
    let tls = match accept(&shared, tcp) {
        Ok(t) => t,
        Err(e) => {
            shared.log(&format!("RTMPS [conn {:?}] closed: {}", remote, e));
            return;
        }
    };
    let (inner, outer) = match loopback_pair() {
        Ok(p) => p,
        Err(e) => {
            shared.log(&format!("RTMPS: no loopback pair: {}", e));
            return;
        }
    };
    let proxy = std::thread::spawn(move || proxy(tls, outer));
    crate::rtmp::conn(shared, inner, remote, true);
    let _ = proxy.join();
}

fn accept(shared: &Shared, tcp: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let (key, cert) = {
        let st = shared.lock();
        let s = |k: &str| st.global.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        (
            shared.dir.join(s("rtmpServerKey")),
            shared.dir.join(s("rtmpServerCert")),
        )
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    b.set_private_key_file(&key, SslFiletype::PEM)
        .map_err(|e| format!("{}: {}", key.display(), e))?;
    b.set_certificate_chain_file(&cert)
        .map_err(|e| format!("{}: {}", cert.display(), e))?;
    // the TLS handshake must finish in time (readTimeout-like bound)
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    b.build().accept(tcp).map_err(|e| e.to_string())
}

/// Two connected loopback sockets (the accepted one is checked to be ours).
fn loopback_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(l.local_addr()?)?;
    loop {
        let (b, peer) = l.accept()?;
        if peer == a.local_addr()? {
            return Ok((a, b));
        }
    }
}

fn poll(fds: &mut [libc::pollfd], ms: i32) {
    // SAFETY: plain syscall on a valid, exclusively borrowed array.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

/// Moves bytes both ways until either side closes.
fn proxy(mut tls: SslStream<TcpStream>, mut plain: TcpStream) {
    let _ = tls.get_ref().set_read_timeout(None);
    if tls.get_ref().set_nonblocking(true).is_err() || plain.set_nonblocking(true).is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    // bytes from the plain side not yet accepted by TLS (bounded: no reads beyond 1 MiB)
    let mut pending: Vec<u8> = Vec::new();
    let (tfd, pfd) = (tls.get_ref().as_raw_fd(), plain.as_raw_fd());
    // the plain side closed: what it wrote last still goes out (within 5 s) before TLS
    // is closed
    let mut plain_eof = false;
    let mut eof_at = std::time::Instant::now();
    'outer: loop {
        if tls.ssl().pending() == 0 {
            let mut fds = [
                libc::pollfd {
                    fd: tfd,
                    events: libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
                    revents: 0,
                },
                libc::pollfd {
                    fd: pfd,
                    events: if !plain_eof && pending.len() < 1 << 20 {
                        libc::POLLIN
                    } else {
                        0
                    },
                    revents: 0,
                },
            ];
            poll(&mut fds, 200);
        }
        // TLS → plain
        loop {
            match tls.ssl_read(&mut buf) {
                Ok(0) => break 'outer,
                Ok(n) => {
                    if write_all(&mut plain, &buf[..n]).is_err() {
                        break 'outer;
                    }
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => break,
                Err(_) => break 'outer,
            }
        }
        // plain → TLS
        if !plain_eof && pending.len() < 1 << 20 {
            match plain.read(&mut buf) {
                Ok(0) => {
                    plain_eof = true;
                    eof_at = std::time::Instant::now();
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        while !pending.is_empty() {
            match tls.ssl_write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => break,
                Err(_) => break 'outer,
            }
        }
        if plain_eof && (pending.is_empty() || eof_at.elapsed() > Duration::from_secs(5)) {
            break;
        }
    }
    let _ = plain.shutdown(Shutdown::Both);
    let _ = tls.get_ref().shutdown(Shutdown::Both);
}

/// write_all on a non-blocking socket: waits for room with poll.
fn write_all(s: &mut TcpStream, mut b: &[u8]) -> std::io::Result<()> {
    while !b.is_empty() {
        match s.write(b) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                }];
                poll(&mut fds, 200);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
