//! The auxiliary HTTP servers of MediaMTX (playback, metrics, pprof): each has its own
//! listener, open only while its global switch (`playback`, `metrics`, `pprof`) is on,
//! like MediaMTX which starts and closes them on configuration changes. Shared here:
//! the accept loop, CORS (httpp's handlerOrigin and the preflight middleware) and
//! authentication with the server's action (auth.LogAndDelayError on failure).

use crate::core::Shared;
use crate::http::{self, Request, Response};
use std::collections::HashMap;
use std::io::BufReader;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Handler = fn(&Arc<Shared>, &Request, SocketAddr) -> Response;

type Open = Arc<Mutex<HashMap<u64, TcpStream>>>;

/// One auxiliary server: its name in the configuration (`playback`, `metrics`, `pprof`)
/// and its request handler.
#[derive(Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    pub port: u16,
    pub handle: Handler,
}

fn enabled(shared: &Shared, kind: &Kind) -> bool {
    shared.lock().global.get(kind.name).and_then(|v| v.as_bool()) == Some(true)
}

/// Accept loop: the listener is held only while the server is enabled (connections are
/// refused otherwise) and bound again on the same port when it is turned on. The first
/// listener (bound at start to learn a free port) is closed at once if disabled.
pub fn serve(shared: Arc<Shared>, first: TcpListener, kind: Kind, started: Arc<std::sync::Barrier>) {
    let mut listener = enabled(&shared, &kind).then_some(first);
    started.wait();
    // open connections (each removes itself when done), closed with the server
    // (httpp.Server.Close)
    let open: Open = Arc::new(Mutex::new(HashMap::new()));
    let close_all = |open: &Open| {
        for (_, c) in open.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    };
    while !shared.shutdown.load(Ordering::SeqCst) {
        if !enabled(&shared, &kind) {
            if listener.take().is_some() {
                shared.log(&format!("INF [{}] closing", kind.name));
                close_all(&open);
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if listener.is_none() {
            match crate::api::bind(kind.port) {
                Ok(l) => {
                    shared.log(&format!(
                        "INF [{}] started with listener on 127.0.0.1:{} (TCP/HTTP)",
                        kind.name, kind.port
                    ));
                    listener = Some(l)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let l = listener.as_ref().unwrap();
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok();
                let id = shared.id();
                if let Ok(c) = s.try_clone() {
                    open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, c);
                }
                let sh = shared.clone();
                let open = open.clone();
                std::thread::spawn(move || {
                    conn(sh, s, kind);
                    open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                });
            }
            // poll returns at once on a connection; the timeout only paces the switch check
            Err(_) => crate::util::wait_acceptable(l, Duration::from_millis(50)),
        }
    }
    close_all(&open);
}

fn conn(shared: Arc<Shared>, s: TcpStream, kind: Kind) {
    let (Ok(mut w), Ok(peer)) = (s.try_clone(), s.peer_addr()) else {
        return;
    };
    // bounds a client that sends nothing (MediaMTX: readTimeout)
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut rd = BufReader::new(s);
    while let Ok(Some(req)) = http::read_request(&mut rd) {
        let mut resp = if is_preflight(&req) {
            preflight()
        } else {
            (kind.handle)(&shared, &req, peer)
        };
        let origins = shared.lock().global.get(&format!("{}AllowOrigins", kind.name)).cloned();
        let origins: Vec<String> = origins.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        if let Some(o) = allowed_origin(req.header("Origin").unwrap_or(""), &origins) {
            resp.headers.push(("Access-Control-Allow-Origin", o));
        }
        let ka = req.keep_alive();
        if http::write_response(&mut w, &resp, ka, false).is_err() || !ka {
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
    let proxies: Vec<String> = shared
        .lock()
        .global
        .get(&format!("{}TrustedProxies", action))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let ip = client_ip(req, peer.ip(), &proxies);
    refuse_unauthenticated(shared, req, peer, ip, action, path, action)
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
    let err = crate::auth::authenticate(&global, &areq).err()?;
    let mut r = Response::error(401, "authentication error");
    if err.ask {
        r.headers.push(("WWW-Authenticate", "Basic realm=\"mediamtx\"".into()));
    } else {
        shared.log(&format!("WAR [{}] [conn {}] {}", tag, peer, err));
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
