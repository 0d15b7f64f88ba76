//! RTSP tunnelled in HTTP on the RTSP/RTSPS port (gortsplib's server_conn_reader.go and
//! server_tunnel_http.go): a connection starting with `GET ` or `POST` is an HTTP request;
//! a GET with `Accept: application/x-rtsp-tunnelled` is the channel the server writes to, a
//! POST with that `Content-Type` carries the client's RTSP in base64; both have the same
//! `x-sessioncookie` and client IP. Once paired, the RTSP connection is served as any
//! other (through a loopback socket, as RTSPS is) with `tunnel: http`. A WebSocket upgrade
//! goes to `rtsp_ws`.

use crate::core::Shared;
use crate::rtsp_registry::ConnEntry;
use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIME: &str = "application/x-rtsp-tunnelled";
/// How long a GET waits for its POST (gortsplib's handleHTTPChannel).
const POST_WAIT: Duration = Duration::from_secs(5);
/// What a GET's and a POST's ServerConn end with once paired (errHTTPUpgraded).
const UPGRADED: &str = "upgraded to HTTP conn";
/// GET channels waiting for their POST (all doubles of the process; oldest dropped).
const MAX_PENDING: usize = 64;
const MAX_HEAD: u64 = 16 * 1024;

struct Pending {
    /// the double it belongs to (several run in one test process)
    owner: usize,
    /// the GET's ServerConn, ended when it is paired (gortsplib closes it on the
    /// upgrade), dropped, or closed by its client
    leg: Arc<Mutex<Option<Leg>>>,
    cookie: String,
    ip: IpAddr,
    get: TcpStream,
}

static PENDING: Mutex<VecDeque<Pending>> = Mutex::new(VecDeque::new());

/// Whether the connection starts with an HTTP request (`GET ` or `POST`), as gortsplib
/// checks before reading RTSP. Waits up to 10 s for the first 4 bytes.
pub fn is_http(tcp: &TcpStream) -> bool {
    let mut b = [0u8; 4];
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut n = 0;
    for _ in 0..200 {
        n = tcp.peek(&mut b).unwrap_or(0);
        if n >= 4 || n == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = tcp.set_read_timeout(None);
    n == 4 && (&b == b"GET " || &b == b"POST")
}

/// An HTTP request head read on the RTSP port.
pub use crate::http_read::Head;

/// Reads the request head as http.ReadRequest does (bounded here), or its error.
fn read_head(rd: &mut BufReader<TcpStream>) -> Result<Head, String> {
    crate::http_read::read_request_head(&mut rd.by_ref().take(MAX_HEAD))
}

/// Serves a connection that started with an HTTP request (`peer`: the client, `tls`:
/// it came through the RTSPS server). `leg`: its ServerConn, which a WebSocket upgrade
/// keeps and an HTTP tunnel's GET and POST end once paired (the tunnel is a new one).
pub fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: Option<SocketAddr>, tls: bool, leg: Leg) {
    let Some(peer) = peer.or_else(|| tcp.peer_addr().ok()) else {
        return;
    };
    let Ok(w) = tcp.try_clone() else {
        return;
    };
    let mut w = w;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut rd = BufReader::new(tcp);
    let h = match read_head(&mut rd) {
        Ok(h) => h,
        Err(e) => return leg.close(&e),
    };
    let cookie = h.get("x-sessioncookie").to_string();
    let get = h.method == "GET" && h.get("Accept") == MIME;
    let post = h.method == "POST" && h.get("Content-Type") == MIME;
    let http_tunnel = !cookie.is_empty() && (get || post);
    if !http_tunnel && crate::rtsp_ws::is_upgrade(&h) {
        return crate::rtsp_ws::serve(shared, rd, w, &h, peer, tls, leg);
    }
    if !http_tunnel {
        // gortsplib: 400 and the connection closes
        let _ = write!(w, "HTTP/1.{} 400 Bad Request\r\nContent-Length: 0\r\n\r\n", h.minor);
        return leg.close("invalid HTTP request");
    }
    let ok = format!(
        "HTTP/1.{} 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: {}\r\nPragma: no-cache\r\n\r\n",
        h.minor, MIME
    );
    let owner = Arc::as_ptr(&shared) as usize;
    if get {
        // Answered and registered under the lock: a client sends its POST once it has this
        // answer, and the POST must then find the GET.
        let mut p = PENDING.lock().unwrap();
        if w.write_all(ok.as_bytes()).is_err() {
            return;
        }
        if p.len() >= MAX_PENDING {
            if let Some(old) = p.pop_front() {
                let _ = old.get.shutdown(Shutdown::Both);
                if let Some(l) = old.leg.lock().unwrap().take() {
                    l.close("terminated");
                }
            }
        }
        let get_leg = Arc::new(Mutex::new(Some(leg)));
        p.push_back(Pending {
            owner,
            leg: get_leg.clone(),
            cookie,
            ip: peer.ip(),
            get: w,
        });
        drop(p);
        // gortsplib reads nothing more on a GET: it waits POST_WAIT for its POST, then
        // closes it, whether or not the client is still there
        let waiting = || PENDING.lock().unwrap().iter().any(|x| Arc::ptr_eq(&x.leg, &get_leg));
        let since = std::time::Instant::now();
        while since.elapsed() < POST_WAIT && waiting() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let unpaired = {
            let mut p = PENDING.lock().unwrap();
            let before = p.len();
            p.retain(|x| !Arc::ptr_eq(&x.leg, &get_leg));
            p.len() != before
        };
        if unpaired {
            let _ = rd.get_ref().shutdown(Shutdown::Both);
            if let Some(l) = get_leg.lock().unwrap().take() {
                l.close("did not found a corresponding HTTP POST request");
            }
            return;
        }
        // paired: the channel stays the tunnel's until the client closes it
        let _ = rd.get_ref().set_read_timeout(None);
        while matches!(rd.read(&mut [0u8; 512]), Ok(n) if n > 0) {}
        return;
    }
    if w.write_all(ok.as_bytes()).is_err() {
        return;
    }
    let get_side = {
        let mut p = PENDING.lock().unwrap();
        let i = p
            .iter()
            .position(|x| x.owner == owner && x.cookie == cookie && x.ip == peer.ip());
        i.and_then(|i| p.remove(i))
    };
    // gortsplib: "did not found a corresponding HTTP GET request", the POST is closed
    let Some(get_side) = get_side else {
        return leg.close("did not found a corresponding HTTP GET request");
    };
    let _ = rd.get_ref().set_read_timeout(None);
    // the upgrade closes the POST's and the GET's ServerConns
    leg.close(UPGRADED);
    if let Some(l) = get_side.leg.lock().unwrap().take() {
        l.close(UPGRADED);
    }
    let Some((outer, server)) = rtsp_behind(&shared, peer, tls, "http", crate::rtsp::Hooks::Open) else {
        return;
    };
    let (Ok(outer_w), Ok(post_raw)) = (outer.try_clone(), rd.get_ref().try_clone()) else {
        return;
    };
    // server -> GET channel; ends when the RTSP side closes
    let get_raw = get_side.get.try_clone().ok();
    let down = std::thread::spawn(move || {
        let mut outer = outer;
        let mut g = get_side.get;
        let _ = std::io::copy(&mut outer, &mut g);
        let _ = g.shutdown(Shutdown::Both);
        let _ = post_raw.shutdown(Shutdown::Both);
    });
    // POST body (base64) -> server; a bad chunk ends the tunnel
    let _ = decode_into(&mut rd, &outer_w);
    let _ = outer_w.shutdown(Shutdown::Both);
    if let Some(g) = get_raw {
        let _ = g.shutdown(Shutdown::Both);
    }
    let _ = down.join();
    if let Ok(Some(e)) = server.join() {
        shared.log_as(&crate::rtsp::conn_scope(tls, peer), "INF", &format!("closed: {}", e));
    }
}

/// The RTSP connection a tunnel carries, served as any other on the inner side of a
/// loopback pair (`tunnel`: how it is listed): the outer side, for the tunnel's bytes,
/// and the server thread.
pub fn rtsp_behind(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    tls: bool,
    tunnel: &'static str,
    hooks: crate::rtsp::Hooks,
) -> Option<(TcpStream, std::thread::JoinHandle<Option<String>>)> {
    let (inner, outer) = crate::rtsps::loopback_pair().ok()?;
    let sh = shared.clone();
    let server = std::thread::spawn(move || crate::rtsp::serve_conn(sh, inner, Some(peer), tls, tunnel, hooks));
    Some((outer, server))
}

/// The ServerConn gortsplib opened for a connection that turned out to start with an
/// HTTP request: listed (tunnel `none`) with its hooks until it ends (dropped: closed,
/// or upgraded to an HTTP tunnel), unless a WebSocket upgrade carries it on.
pub struct Leg {
    shared: Arc<Shared>,
    entry: Option<Arc<ConnEntry>>,
    hooks: Option<crate::hooks::Pair>,
}

impl Leg {
    pub fn new(shared: Arc<Shared>, entry: Arc<ConnEntry>, hooks: Option<crate::hooks::Pair>) -> Leg {
        Leg {
            shared,
            entry: Some(entry),
            hooks,
        }
    }

    /// Ends the ServerConn with `why` (`[RTSP] [conn IP:P] closed: WHY`): unlisted, its
    /// hooks ended.
    pub fn close(mut self, why: &str) {
        if let Some(e) = &self.entry {
            self.shared.log_as(&e.scope(), "INF", &format!("closed: {}", why));
        }
        self.end();
    }

    fn end(&mut self) {
        if let Some(e) = self.entry.take() {
            self.shared.rtsp.remove_conn(&e);
        }
        crate::hooks::on_disconnect(&self.shared, self.hooks.take());
    }

    /// The upgraded connection keeps the ServerConn: same listing, same hooks.
    pub fn carry_on(mut self) -> crate::rtsp::Hooks {
        let entry = self.entry.take().expect("a leg is carried on once");
        crate::rtsp::Hooks::Carried(entry, self.hooks.take())
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.end();
    }
}

/// Decodes the POST body like gortsplib's base64streamreader: whole 4-character groups,
/// each run ending at its padding, CR/LF ignored.
fn decode_into(rd: &mut BufReader<TcpStream>, mut out: &TcpStream) -> Result<(), ()> {
    let mut pre: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = rd.read(&mut buf).map_err(|_| ())?;
        if n == 0 {
            return Ok(());
        }
        pre.extend(buf[..n].iter().filter(|c| !matches!(c, b'\r' | b'\n')));
        loop {
            let mut cut = pre.len() / 4 * 4;
            // a run ends with the group holding its padding
            if let Some(i) = pre[..cut].iter().position(|&c| c == b'=') {
                cut = (i / 4 + 1) * 4;
            }
            if cut == 0 {
                break;
            }
            let dec = decode(&pre[..cut]).ok_or(())?;
            out.write_all(&dec).map_err(|_| ())?;
            pre.drain(..cut);
        }
    }
}

/// Standard base64 of whole 4-character groups (padding only in the last group).
fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let groups = s.len() / 4;
    for (gi, g) in s.chunks(4).enumerate() {
        let pad = g.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && gi + 1 != groups) {
            return None;
        }
        let mut n = 0u32;
        for &c in &g[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}
