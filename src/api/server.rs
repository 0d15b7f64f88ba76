//! The listener: one port, plain HTTP and WebSocket upgrades. Each TCP connection is one task.

use super::http::{self, HeadError, RequestHead, Response};
use super::websocket;
use super::AppState;
use smol::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Time a client gets to send a complete request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an idle keep-alive HTTP connection is kept.
const HTTP_IDLE: Duration = Duration::from_secs(30);

pub async fn bind(state: &AppState) -> std::io::Result<TcpListener> {
    let addr = format!("{}:{}", state.config.server.host, state.config.server.port);
    TcpListener::bind(addr).await
}

/// Accepts until shutdown; returns after the listener is closed (connections finish on their own).
pub async fn serve(state: Arc<AppState>, listener: TcpListener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            state.shutdown.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                let _ = stream.set_nodelay(true);
                let st = state.clone();
                smol::spawn(async move { handle_connection(st, stream, peer).await }).detach();
            }
            Some(Err(e)) => {
                // e.g. EMFILE: back off instead of spinning.
                log::warn!("accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn with_timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

async fn handle_connection(state: Arc<AppState>, mut stream: TcpStream, peer: SocketAddr) {
    let mut buf = Vec::new();
    let mut first = true;
    loop {
        let limit = if first { HEAD_TIMEOUT } else { HTTP_IDLE };
        let head = match with_timeout(limit, http::read_head(&mut stream, &mut buf)).await {
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
            upgrade(state, stream, peer, head, buf).await;
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
        let keep_alive = head.keep_alive() && !state.shutdown.is_triggered();
        match http::respond(&state, &head, &mut stream, keep_alive).await {
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

async fn upgrade(state: Arc<AppState>, mut stream: TcpStream, peer: SocketAddr, head: RequestHead, leftover: Vec<u8>) {
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
        let resp = Response::error(
            503,
            "too_many_connections",
            "the server has reached its connection limit",
        )
        .header("Retry-After", "5");
        let _ = http::write_response(&mut stream, &resp, false, false).await;
        return;
    }
    let accept = async_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let reply = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
    if futures_lite::AsyncWriteExt::write_all(&mut stream, reply.as_bytes())
        .await
        .is_ok()
    {
        let host = head.header("host").map(host_without_port).unwrap_or_default();
        websocket::run(state.clone(), stream, peer, host, leftover).await;
    }
    state.connections.fetch_sub(1, Ordering::SeqCst);
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
