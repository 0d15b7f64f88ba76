//! Minimal HTTP/1.1 request parsing and response writing (keep-alive, Content-Length bodies).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

pub struct Request {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

    pub fn keep_alive(&self) -> bool {
        !matches!(self.header("Connection"), Some(v) if v.eq_ignore_ascii_case("close"))
    }
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

/// Go's http.Server DefaultMaxHeaderBytes: a longer request line or header line is refused.
const MAX_LINE: u64 = 1 << 20;

/// read_line with a bound on its length.
fn read_line_bounded(r: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<usize> {
    let n = r.by_ref().take(MAX_LINE).read_line(line)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(n)
}

/// Reads one request; Ok(None) on clean EOF before a request starts.
pub fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    loop {
        line.clear();
        if read_line_bounded(r, &mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if read_line_bounded(r, &mut h)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in headers"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if headers.len() > 200 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too many headers"));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 16 * 1024 * 1024 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let path = percent_decode(&path, false).unwrap_or(path);
    Ok(Some(Request {
        method,
        path,
        raw_query,
        headers,
        body,
    }))
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

pub fn write_response(w: &mut TcpStream, resp: &Response, keep_alive: bool, cors: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.code, reason(resp.code));
    if !resp.body.is_empty() || resp.code != 204 {
        head.push_str(&format!("Content-Type: {}\r\n", resp.content_type));
    }
    if cors {
        head.push_str("Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\n");
    }
    for (k, v) in &resp.headers {
        head.push_str(&format!("{}: {}\r\n", k, v));
    }
    head.push_str("Server: mediamtx-double\r\n");
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(&resp.body);
    w.write_all(&buf)?;
    w.flush()
}
