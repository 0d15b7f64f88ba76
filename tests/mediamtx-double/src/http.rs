//! HTTP/1.x requests (read by http_read as Go's net/http reads them) and the answers
//! written to them (Content-Length bodies, keep-alive).

use crate::http_read::Body;
use std::cell::RefCell;
use std::io::{self, Write};
use std::net::TcpStream;

pub struct Request<'c> {
    pub method: String,
    /// unescaped, as routers see it
    pub path: String,
    pub raw_query: String,
    /// canonical keys, as sent
    pub headers: Vec<(String, String)>,
    http10: bool,
    /// shouldClose: the client asked for the connection to end after the answer
    close: bool,
    /// read when a handler reads it
    body: RefCell<Body<'c>>,
}

impl<'c> Request<'c> {
    pub(crate) fn new(
        method: String,
        path: String,
        raw_query: String,
        headers: Vec<(String, String)>,
        http10: bool,
        close: bool,
        body: RefCell<Body<'c>>,
    ) -> Request<'c> {
        Request {
            method,
            path,
            raw_query,
            headers,
            http10,
            close,
            body,
        }
    }

    /// The body, as MediaMTX's config handlers read it (at most 10 MiB), or the error
    /// they report.
    pub fn config_body(&self) -> Result<std::cell::Ref<'_, [u8]>, String> {
        crate::http_read::read_config_body(&self.body)
    }

    /// What a handler read of the body.
    pub fn body_read(&self) -> Vec<u8> {
        crate::http_read::body_read(&self.body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }

    /// First value of a query parameter (Go url.Query semantics: '+' is a space).
    pub fn query(&self, key: &str) -> Option<String> {
        for part in self.raw_query.split('&') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if percent_decode(k, true).as_deref() == Some(key) {
                return percent_decode(v, true);
            }
        }
        None
    }
}

/// Go's Header.Get: the first value of a header, names compared case-insensitively.
pub fn first_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

pub struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(code: u16, v: &serde_json::Value) -> Response {
        Response {
            code,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: Vec::new(),
        }
    }
    pub fn error(code: u16, msg: &str) -> Response {
        Response::json(code, &serde_json::json!({"status": "error", "error": msg}))
    }
    pub fn ok() -> Response {
        Response::json(200, &serde_json::json!({"status": "ok"}))
    }
    pub fn not_found_text() -> Response {
        Response {
            code: 404,
            content_type: "text/plain",
            body: b"404 page not found".to_vec(),
            headers: Vec::new(),
        }
    }
}

/// Answers a request; false when the connection is to be closed (the client asked,
/// or what is left of its body says so: see http_read::finish).
pub fn respond(w: &mut TcpStream, resp: &Response, req: &Request) -> bool {
    let keep_alive = crate::http_read::finish(&req.body, req.close);
    write_response(w, resp, req.http10, keep_alive).is_ok() && keep_alive
}

fn write_response(w: &mut TcpStream, resp: &Response, http10: bool, keep_alive: bool) -> io::Result<()> {
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut head = format!("{} {} {}\r\n", version, resp.code, reason(resp.code));
    if !resp.body.is_empty() || resp.code != 204 {
        head.push_str(&format!("Content-Type: {}\r\n", resp.content_type));
    }
    for (k, v) in &resp.headers {
        head.push_str(&format!("{}: {}\r\n", k, v));
    }
    head.push_str("Server: mediamtx-double\r\n");
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    // an HTTP/1.0 client keeps the connection only when told so
    match (http10, keep_alive) {
        (true, true) => head.push_str("Connection: keep-alive\r\n"),
        (false, false) => head.push_str("Connection: close\r\n"),
        _ => {}
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(&resp.body);
    w.write_all(&buf)?;
    w.flush()
}
