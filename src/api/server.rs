//! The listener: one port, plain HTTP and WebSocket upgrades. Each TCP connection is one task.

use super::http::{self, HeadError, RequestHead, Response};
use super::websocket;
use super::AppState;
use smol::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Time a client gets to send a complete request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an idle keep-alive HTTP connection is kept.
const HTTP_IDLE: Duration = Duration::from_secs(30);
/// Connections admitted beyond `server.max_http_connections`, for WebSocket upgrades and
/// health probes only (everything else on them gets 503).
pub const RESERVE: usize = 8;
/// Time a reserve connection gets to send its request head.
const RESERVE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Descriptors kept for the service's own work (files, FFmpeg pipes, MediaMTX API calls,
/// udev, logs): connections are refused before they could use them.
pub const OWN_DESCRIPTORS: usize = 256;
/// Refusals being written at once; beyond it an over-limit connection is just closed.
const MAX_REFUSING: usize = 64;

pub async fn bind(state: &AppState) -> std::io::Result<TcpListener> {
    let addr = format!("{}:{}", state.config.server.host, state.config.server.port);
    TcpListener::bind(addr).await
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`), from /proc.
fn nofile_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse().ok()
}

/// Counts every accepted TCP connection (api.md v1.1 "Connections"): plain HTTP and
/// not-yet-upgraded ones in a pool of `max_http_connections`, a small reserve beyond it, and
/// the WebSocket clients (`AppState::connections`, limited in `upgrade`). The sum never
/// reaches the descriptor limit minus `OWN_DESCRIPTORS`.
pub struct Limits {
    http_max: usize,
    total_max: usize,
    http_open: AtomicUsize,
    reserve_open: AtomicUsize,
    refusing: AtomicUsize,
    /// Most connections open at once since the last heap trim.
    peak: AtomicUsize,
    /// The 503 answer, serialised once.
    refusal: Vec<u8>,
    /// Closed (and replaced) when the pool is full, waking idle keep-alive connections so
    /// they give their slot back.
    pressure: std::sync::Mutex<(async_channel::Sender<()>, async_channel::Receiver<()>)>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Pool {
    Http,
    Reserve,
}

/// A counted slot; gives itself back on drop.
struct Slot {
    limits: Arc<Limits>,
    pool: Pool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self.pool {
            Pool::Http => self.limits.http_open.fetch_sub(1, Ordering::SeqCst),
            Pool::Reserve => self.limits.reserve_open.fetch_sub(1, Ordering::SeqCst),
        };
    }
}

impl Limits {
    pub fn new(config: &crate::config::ServerConfig, nofile: Option<usize>) -> Limits {
        let wanted = config.max_http_connections + RESERVE + config.max_connections;
        let total_max = match nofile {
            Some(n) => {
                let budget = n.saturating_sub(OWN_DESCRIPTORS).max(RESERVE + 2);
                if budget < wanted {
                    log::warn!(
                        "open-files limit {n} leaves {budget} descriptors for clients, fewer than \
                         max_connections + max_http_connections + {RESERVE} = {wanted}; raise LimitNOFILE"
                    );
                }
                budget.min(wanted)
            }
            None => wanted,
        };
        Limits {
            http_max: config.max_http_connections,
            total_max,
            http_open: AtomicUsize::new(0),
            reserve_open: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            refusal: {
                let mut bytes = Vec::new();
                // Writing into a Vec completes at once.
                let _ = futures_lite::future::block_on(http::write_response(
                    &mut bytes,
                    &too_many_connections(),
                    false,
                    false,
                ));
                bytes
            },
            pressure: std::sync::Mutex::new(async_channel::bounded(1)),
        }
    }

    fn signal_pressure(&self) {
        let mut p = self.pressure.lock().unwrap();
        p.0.close();
        *p = async_channel::bounded(1);
    }

    fn pressure_signal(&self) -> async_channel::Receiver<()> {
        self.pressure.lock().unwrap().1.clone()
    }

    fn under_pressure(&self) -> bool {
        self.http_open.load(Ordering::SeqCst) >= self.http_max
    }

    /// Admits an accepted connection into a pool, or `None` (refuse with 503).
    fn admit(self: &Arc<Self>, websockets: usize) -> Option<Slot> {
        let http = self.http_open.fetch_add(1, Ordering::SeqCst);
        let reserve = self.reserve_open.load(Ordering::SeqCst);
        if http < self.http_max && http + reserve + websockets < self.total_max {
            self.peak.fetch_max(http + reserve + websockets + 1, Ordering::Relaxed);
            return Some(Slot {
                limits: self.clone(),
                pool: Pool::Http,
            });
        }
        self.http_open.fetch_sub(1, Ordering::SeqCst);
        self.signal_pressure();
        let reserve = self.reserve_open.fetch_add(1, Ordering::SeqCst);
        let http = self.http_open.load(Ordering::SeqCst);
        if reserve < RESERVE && http + reserve + websockets < self.total_max {
            return Some(Slot {
                limits: self.clone(),
                pool: Pool::Reserve,
            });
        }
        self.reserve_open.fetch_sub(1, Ordering::SeqCst);
        None
    }
}

fn too_many_connections() -> Response {
    Response::error(
        503,
        "too_many_connections",
        "the server has reached its connection limit",
    )
    .header("Retry-After", "5")
}

/// Connections that must have closed since the peak before the heap is trimmed.
const TRIM_AFTER_CLOSED: usize = 64;

/// Gives the heap freed by closed connections back to the system: glibc keeps freed memory
/// in its arenas, so without this the RSS of a burst of clients stayed after they left.
async fn trim_heap_after_bursts(state: Arc<AppState>, limits: Arc<Limits>) {
    loop {
        smol::Timer::after(Duration::from_secs(5)).await;
        let open = limits.http_open.load(Ordering::Relaxed)
            + limits.reserve_open.load(Ordering::Relaxed)
            + state.connections.load(Ordering::Relaxed);
        if limits.peak.load(Ordering::Relaxed) >= open + TRIM_AFTER_CLOSED {
            limits.peak.store(open, Ordering::Relaxed);
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            blocking::unblock(|| {
                // SAFETY: malloc_trim only releases free memory of the allocator.
                unsafe { nix::libc::malloc_trim(0) };
            })
            .await;
        }
    }
}

/// Accepts until shutdown; returns after the listener is closed (connections finish on their own).
pub async fn serve(state: Arc<AppState>, listener: TcpListener) {
    let limits = Arc::new(Limits::new(&state.config.server, nofile_limit()));
    let trim = smol::spawn(trim_heap_after_bursts(state.clone(), limits.clone()));
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            state.shutdown.wait().await;
            None
        })
        .await;
        match accepted {
            None => {
                drop(trim); // cancels it
                break;
            }
            Some(Ok((stream, peer))) => {
                let _ = stream.set_nodelay(true);
                let websockets = state.connections.load(Ordering::SeqCst);
                match limits.admit(websockets) {
                    Some(slot) => {
                        let st = state.clone();
                        smol::spawn(async move { handle_connection(st, stream, peer, slot).await }).detach();
                    }
                    None => refuse(&limits, stream, peer),
                }
            }
            Some(Err(e)) => {
                // e.g. EMFILE: back off instead of spinning.
                log::warn!("accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers an over-limit connection with 503 without reading its request first. The
/// response is written without waiting (it fits in a fresh socket's send buffer), so every
/// refused client gets it; then the request already received is consumed, briefly, so the
/// close is not a reset that could destroy the response in flight (bounded in time and in
/// number: beyond `MAX_REFUSING` at once the socket is closed right away).
fn refuse(limits: &Arc<Limits>, stream: TcpStream, peer: SocketAddr) {
    use std::io::{Read, Write};
    log::debug!("connection from {peer} refused: connection limits reached");
    let io: Arc<smol::Async<std::net::TcpStream>> = stream.into();
    let sock = io.get_ref();
    let _ = (&*sock).write(&limits.refusal);
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 2048];
    let _ = (&*sock).read(&mut sink);
    if limits.refusing.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSING {
        limits.refusing.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let limits = limits.clone();
    smol::spawn(async move {
        let _ = with_timeout(
            Duration::from_millis(50),
            io.read_with(|s| {
                let mut sink = [0u8; 2048];
                (&*s).read(&mut sink)
            }),
        )
        .await;
        limits.refusing.fetch_sub(1, Ordering::SeqCst);
    })
    .detach();
}

async fn with_timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

async fn handle_connection(state: Arc<AppState>, mut stream: TcpStream, peer: SocketAddr, slot: Slot) {
    let mut buf = Vec::new();
    let mut first = true;
    let reserve = slot.pool == Pool::Reserve;
    loop {
        let limit = match (first, reserve) {
            (_, true) => RESERVE_HEAD_TIMEOUT,
            (true, false) => HEAD_TIMEOUT,
            (false, false) => HTTP_IDLE,
        };
        // When the pool is full, an idle keep-alive connection gives its slot back, and so
        // does a new one that has sent nothing for a second (slow-loris); a connection with
        // a pipelined request waiting is never cut.
        let pressure = slot.limits.pressure_signal();
        let evictable = buf.is_empty();
        let grace = if first { Duration::from_secs(1) } else { Duration::ZERO };
        let read = futures_lite::future::or(
            async { Some(with_timeout(limit, http::read_head(&mut stream, &mut buf)).await) },
            async {
                if !evictable {
                    futures_lite::future::pending::<()>().await;
                }
                smol::Timer::after(grace).await;
                let _ = pressure.recv().await;
                None
            },
        )
        .await;
        let Some(head) = read else {
            log::debug!("closing idle HTTP connection from {peer}: connection pool full");
            return;
        };
        let head = match head {
            None | Some(Err(HeadError::Closed)) | Some(Err(HeadError::Io(_))) => return,
            Some(Err(HeadError::TooLarge)) => {
                let _ = http::write_response(
                    &mut stream,
                    &Response::error(431, "header_too_large", "request head too large"),
                    false,
                    false,
                )
                .await;
                return;
            }
            Some(Err(HeadError::Malformed)) => {
                let _ = http::write_response(
                    &mut stream,
                    &Response::error(400, "bad_request", "malformed HTTP request"),
                    false,
                    false,
                )
                .await;
                return;
            }
            Some(Ok(h)) => h,
        };
        first = false;
        if is_websocket_upgrade(&head) && head.path == state.config.server.websocket_path {
            upgrade(state, stream, peer, head, buf, slot).await;
            return;
        }
        // The reserve is for WebSocket clients and health probes only.
        if reserve && !head.path.starts_with("/health") {
            let _ = http::write_response(&mut stream, &too_many_connections(), false, false).await;
            return;
        }
        // No route takes a request body: refuse one rather than misread it as the next request.
        if head.header("content-length").is_some_and(|v| v.trim() != "0") || head.header("transfer-encoding").is_some()
        {
            let _ = http::write_response(
                &mut stream,
                &Response::error(400, "body_not_accepted", "requests to this server carry no body"),
                false,
                false,
            )
            .await;
            return;
        }
        let keep_alive =
            head.keep_alive() && !reserve && !slot.limits.under_pressure() && !state.shutdown.is_triggered();
        match http::respond(&state, &head, peer.ip(), &mut stream, keep_alive).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
}

fn is_websocket_upgrade(head: &RequestHead) -> bool {
    head.method == "GET"
        && head.header_has_token("connection", "upgrade")
        && head
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// Origin policy (api.md §1): with a non-empty allow list, a present Origin must match.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        Some(o) if !allowed.is_empty() => allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/'))),
        _ => true,
    }
}

async fn upgrade(
    state: Arc<AppState>,
    mut stream: TcpStream,
    peer: SocketAddr,
    head: RequestHead,
    leftover: Vec<u8>,
    slot: Slot,
) {
    if !origin_allowed(&state.config.security.allowed_origins, head.header("origin")) {
        log::warn!("WebSocket from {peer} refused: origin not allowed");
        let _ = http::write_response(
            &mut stream,
            &Response::error(403, "origin_not_allowed", "this Origin is not allowed"),
            false,
            false,
        )
        .await;
        return;
    }
    let key = match head.header("sec-websocket-key") {
        Some(k) if head.header("sec-websocket-version") == Some("13") => k.trim().to_string(),
        _ => {
            let resp = Response::error(
                400,
                "bad_websocket_handshake",
                "Sec-WebSocket-Key and Sec-WebSocket-Version: 13 are required",
            )
            .header("Sec-WebSocket-Version", "13");
            let _ = http::write_response(&mut stream, &resp, false, false).await;
            return;
        }
    };
    // Count the connection before answering, so the limit is exact under a burst.
    let max = state.config.server.max_connections;
    if state.connections.fetch_add(1, Ordering::SeqCst) >= max || state.shutdown.is_triggered() {
        state.connections.fetch_sub(1, Ordering::SeqCst);
        log::warn!("WebSocket from {peer} refused: {max} connections already open");
        let _ = http::write_response(&mut stream, &too_many_connections(), false, false).await;
        return;
    }
    // From here the connection counts as a WebSocket client, not in the HTTP pool.
    drop(slot);
    let accept = async_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let reply = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
    if futures_lite::AsyncWriteExt::write_all(&mut stream, reply.as_bytes())
        .await
        .is_ok()
    {
        let host = head.header("host").map(host_without_port).unwrap_or_default();
        drop(head);
        // The session runs as a task of its own, so the HTTP part of this connection's
        // future (~7 KiB, mostly request and download state) is freed, not kept for the
        // life of the client. `run` gives the connection count back when the client closes.
        smol::spawn(websocket::run(state.clone(), stream, peer, host, leftover)).detach();
    } else {
        state.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `host:port` / `[v6]:port` → host.
pub fn host_without_port(h: &str) -> String {
    let h = h.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    h.rsplit_once(':')
        .map_or(h, |(host, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                host
            } else {
                h
            }
        })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn origins_and_hosts() {
        let allowed = vec!["https://gcs.local".to_string()];
        assert!(origin_allowed(&allowed, None));
        assert!(origin_allowed(&allowed, Some("https://gcs.local")));
        assert!(!origin_allowed(&allowed, Some("https://evil.example")));
        assert!(origin_allowed(&[], Some("https://anything")));
        assert_eq!(host_without_port("10.0.0.2:8002"), "10.0.0.2");
        assert_eq!(host_without_port("[::1]:8002"), "::1");
        assert_eq!(host_without_port("gcs"), "gcs");
    }
}
