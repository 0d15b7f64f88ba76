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

/// Go's http.Server reads a request's head from the connection through a limit of
/// DefaultMaxHeaderBytes (1 MiB, MediaMTX sets no MaxHeaderBytes) plus 4096 bytes of
/// slack (initialReadLimitSize); past it, it answers 431 and closes.
const MAX_HEAD: u64 = (1 << 20) + 4096;

/// What net/http's conn.serve writes for errTooLarge: HTTP/1.1, no Content-Length.
const TOO_LARGE: &str = "HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n\
    431 Request Header Fields Too Large";

/// read_line within what is left of the head's byte budget.
fn read_line_bounded(r: &mut BufReader<TcpStream>, line: &mut String, budget: &mut u64) -> io::Result<usize> {
    if *budget == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request too large"));
    }
    let n = r.by_ref().take(*budget).read_line(line)?;
    *budget -= n as u64;
    if *budget == 0 && !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request too large"));
    }
    Ok(n)
}

/// Like Go's closeWriteAndWait after the 431: the answer, a FIN, then up to 500 ms
/// (rstAvoidanceDelay) for the client to read it; the rest it sends is discarded so
/// that closing does not reset the connection under the answer.
fn refuse_too_large(r: &mut BufReader<TcpStream>) {
    let s = r.get_mut();
    let _ = s.write_all(TOO_LARGE.as_bytes());
    let _ = s.shutdown(std::net::Shutdown::Write);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    let mut buf = [0u8; 65536];
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Reads one request; Ok(None) on clean EOF before a request starts. A head over Go's
/// limit is answered 431 here (then Err: the caller closes).
pub fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEAD;
    let res = read_head(r, &mut budget);
    if budget == 0 && res.is_err() {
        refuse_too_large(r);
    }
    let Some((line, headers)) = res? else {
        return Ok(None);
    };
    read_rest(r, line, headers).map(Some)
}

type Head = (String, Vec<(String, String)>);

/// The request line and header lines; None on clean EOF before a request starts.
fn read_head(r: &mut BufReader<TcpStream>, budget: &mut u64) -> io::Result<Option<Head>> {
    let mut line = String::new();
    loop {
        line.clear();
        if read_line_bounded(r, &mut line, budget)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if read_line_bounded(r, &mut h, budget)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in headers"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(Some((line, headers)));
        }
        // no limit on their number (as Go): the byte budget bounds them
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// The body (Content-Length) and the parsed request line.
fn read_rest(r: &mut BufReader<TcpStream>, line: String, headers: Vec<(String, String)>) -> io::Result<Request> {
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
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
    Ok(Request {
        method,
        path,
        raw_query,
        headers,
        body,
    })
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

pub fn write_response(w: &mut TcpStream, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.code, reason(resp.code));
    if !resp.body.is_empty() || resp.code != 204 {
        head.push_str(&format!("Content-Type: {}\r\n", resp.content_type));
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
