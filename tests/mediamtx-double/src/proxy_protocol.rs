//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on the RTSP, RTSPS, RTMP and
//! RTMPS listeners, as MediaMTX's proxy.Listener (go-proxyproto v0.15, policy USE for
//! peers inside `rtspTrustedProxies`/`rtmpTrustedProxies`, IGNORE for the others): a
//! trusted peer may start its connection with a header naming the client, which is then
//! the connection's remote address (listing, authentication, hooks, logs). Without a
//! header the connection is served as it is. Parsing is the `ppp` crate's.

use ppp::{v1, v2, HeaderResult, PartialResult};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const SIG_V1: &[u8] = b"PROXY";
const SIG_V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v2 header with more TLVs than this is refused (ours: the double's bound).
const MAX_HEADER: usize = 16 + 4096;

/// Reads the PROXY header a trusted peer may send first, consuming only its bytes: the
/// client it names, None when there is none (other data, or nothing within `timeout`:
/// go-proxyproto's ReadHeaderTimeout then assumes none), for a LOCAL command or an
/// unknown/unspecified address family (the peer's own address stays).
/// Err(text): a malformed header; the connection is to be closed.
pub fn read_header(tcp: &TcpStream, timeout: Duration) -> Result<Option<SocketAddr>, String> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
            return Ok(None);
        }
        let n = match tcp.peek(&mut buf) {
            Ok(n) => n,
            Err(_) => return Ok(None),
        };
        let _ = tcp.set_read_timeout(None);
        let data = &buf[..n];
        // go-proxyproto's signature checks: anything else is the protocol's own data
        let could_be = |sig: &[u8]| data[..n.min(sig.len())] == sig[..n.min(sig.len())];
        if n == 0 || !(could_be(SIG_V1) || could_be(SIG_V2)) {
            return Ok(None);
        }
        let header = HeaderResult::parse(data);
        if header.is_incomplete() {
            if n == buf.len() {
                if buf.len() >= MAX_HEADER {
                    return Err("proxyproto: invalid length".into());
                }
                buf.resize(MAX_HEADER, 0);
            } else {
                // the rest of the header is on its way
                std::thread::sleep(Duration::from_millis(5));
            }
            continue;
        }
        let (len, client) = match header {
            HeaderResult::V1(Ok(h)) => (h.header.len(), v1_client(&h.addresses)),
            HeaderResult::V2(Ok(h)) => (h.len(), v2_client(&h)),
            HeaderResult::V1(Err(e)) => return Err(format!("proxyproto: {}", e)),
            HeaderResult::V2(Err(e)) => return Err(format!("proxyproto: {}", e)),
        };
        let mut consumed = vec![0u8; len];
        (&*tcp).read_exact(&mut consumed).map_err(|e| e.to_string())?;
        return Ok(client);
    }
}

fn v1_client(a: &v1::Addresses) -> Option<SocketAddr> {
    match a {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    }
}

fn v2_client(h: &v2::Header) -> Option<SocketAddr> {
    if h.command == v2::Command::Local {
        return None;
    }
    match &h.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    }
}
