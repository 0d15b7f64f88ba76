//! Plain HTTP on the API port: request heads parsed by `httparse`, a small response writer
//! (keep-alive, HEAD), the health routes, and the file downloads (`files_http`, streamed).

use super::AppState;
use crate::health::Level;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde_json::{json, Value};
use std::io;
use std::sync::Arc;

pub const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// HTTP/1.0 (no keep-alive by default).
    pub http10: bool,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            return false;
        }
        !self.http10 || self.header_has_token("connection", "keep-alive")
    }
}

#[derive(Debug)]
pub enum HeadError {
    Closed,
    TooLarge,
    Malformed,
    // The error is shown by `Debug` in logs.
    Io(#[allow(dead_code)] io::Error),
}

/// Reads one request head. `buf` keeps bytes read past the head (pipelined data or
/// WebSocket frames) for the caller.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Result<RequestHead, HeadError> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let target = req.path.unwrap_or("/");
                    let (path, query) = match target.split_once('?') {
                        Some((p, q)) => (p.to_string(), Some(q.to_string())),
                        None => (target.to_string(), None),
                    };
                    let head = RequestHead {
                        method: req.method.unwrap_or("").to_string(),
                        path,
                        query,
                        headers: req
                            .headers
                            .iter()
                            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                            .collect(),
                        http10: req.version == Some(0),
                    };
                    buf.drain(..n);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(HeadError::Malformed),
            }
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        // Read straight into `buf` (no buffer on the stack: it would be part of every
        // connection's future for as long as the connection lives).
        let len = buf.len();
        buf.resize(len + 2048, 0);
        let n = stream.read(&mut buf[len..]).await;
        buf.truncate(len + *n.as_ref().unwrap_or(&0));
        let n = n.map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A complete response with an in-memory body (small JSON/text bodies only).
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }
    pub fn error(status: u16, error: &str, message: &str) -> Response {
        Response::json(status, &json!({"error": error, "message": message, "status": status}))
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Writes `resp`; HEAD gets the headers (with the real Content-Length) and no body.
pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    resp: &Response,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
        resp.status,
        reason_phrase(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Answers one plain HTTP request on `stream`: file downloads are streamed from disk, every
/// other route is a small in-memory response. Returns whether the connection may be kept.
pub async fn respond<S: AsyncWrite + Unpin>(
    state: &Arc<AppState>,
    head: &RequestHead,
    peer: std::net::IpAddr,
    stream: &mut S,
    keep_alive: bool,
) -> io::Result<bool> {
    if super::files_http::is_files_path(&head.path) {
        return super::files_http::serve(state, head, peer, stream, keep_alive).await;
    }
    let resp = route(state, head).await;
    write_response(stream, &resp, head.method == "HEAD", keep_alive).await?;
    Ok(keep_alive)
}

/// Routes a plain HTTP request.
pub async fn route(state: &Arc<AppState>, head: &RequestHead) -> Response {
    if head.method != "GET" && head.method != "HEAD" {
        return Response::error(405, "method_not_allowed", "only GET and HEAD are served").header("Allow", "GET, HEAD");
    }
    let ctl = &state.controller;
    let health = ctl.health();
    match head.path.as_str() {
        "/health/live" => Response::json(
            200,
            &json!({"status": "alive", "timestamp": crate::clock::now_rfc3339()}),
        ),
        "/health/ready" => match health.readiness() {
            Ok(()) => Response::json(200, &json!({"ready": true, "timestamp": crate::clock::now_rfc3339()})),
            Err(reason) => Response::json(
                503,
                &json!({"ready": false, "reason": reason, "timestamp": crate::clock::now_rfc3339()}),
            ),
        },
        "/health" => {
            let level = health.overall();
            Response::json(
                if level == Level::Unhealthy { 503 } else { 200 },
                &json!({"status": level.as_str(), "uptime": health.uptime_secs(), "version": env!("CARGO_PKG_VERSION"), "timestamp": crate::clock::now_rfc3339()}),
            )
        }
        "/health/detailed" => {
            let level = health.overall();
            Response::json(
                if level == Level::Unhealthy { 503 } else { 200 },
                &json!({"status": level.as_str(), "components": ctl.status().details, "uptime": health.uptime_secs(), "timestamp": crate::clock::now_rfc3339()}),
            )
        }
        "/metrics" => {
            let text = ctl.prometheus_text(state.connected_clients()).await;
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                headers: Vec::new(),
                body: text.into_bytes(),
            }
        }
        p if p == state.config.server.websocket_path => {
            Response::error(426, "upgrade_required", "this path serves WebSocket connections")
                .header("Upgrade", "websocket")
        }
        _ => Response::error(404, "not_found", "no such resource"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_keeps_leftover() {
        smol::block_on(async {
            let data = b"GET /health/live?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\nNEXT".to_vec();
            let mut cursor = futures_lite::io::Cursor::new(data);
            let mut buf = Vec::new();
            let head = read_head(&mut cursor, &mut buf).await.unwrap();
            assert_eq!(
                (head.method.as_str(), head.path.as_str(), head.query.as_deref()),
                ("GET", "/health/live", Some("x=1"))
            );
            assert!(head.keep_alive());
            assert_eq!(buf, b"NEXT");
            let mut bad = futures_lite::io::Cursor::new(b"GARBAGE\0\r\n\r\n".to_vec());
            assert!(matches!(
                read_head(&mut bad, &mut Vec::new()).await,
                Err(HeadError::Malformed)
            ));
            let mut huge = futures_lite::io::Cursor::new(vec![b'a'; MAX_HEAD_BYTES + 10]);
            assert!(matches!(
                read_head(&mut huge, &mut Vec::new()).await,
                Err(HeadError::TooLarge | HeadError::Malformed)
            ));
        });
    }
}
