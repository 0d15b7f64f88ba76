//! Reading HTTP/1.x requests as Go's net/http server reads them for MediaMTX's HTTP
//! servers (httpp): the request line, header and framing rules of request.go,
//! textproto and transfer.go, the answers conn.serve writes for what it refuses (400,
//! 431, 501, 505, 417), the head's read limit, the server's deadlines (ReadTimeout,
//! IdleTimeout 30 s), `Expect: 100-continue`, and what happens to a body the handler
//! leaves unread (up to 256 KiB discarded, more closes the connection).

use crate::http::Request;
use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// DefaultMaxHeaderBytes (1 MiB, httpp sets no MaxHeaderBytes) plus the 4096 bytes of
/// bufio slack of initialReadLimitSize.
const MAX_HEAD: u64 = (1 << 20) + 4096;
/// net/http's bufio.Reader size: what one read may pull from the socket.
const BUFFER: usize = 4096;
/// maxPostHandlerReadBytes: how much of an unread body is discarded to keep a connection.
const DISCARD: u64 = 256 << 10;
/// httpp.Server's IdleTimeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// chunked.go's maxLineLength.
const CHUNK_LINE: usize = 4096;

/// The socket under the 4 KiB buffer: Go's connReader, whose limit bounds a head by
/// what the buffer pulled from the socket, and whose deadline is the request's.
struct Socket {
    s: TcpStream,
    remain: u64,
    deadline: Option<Instant>,
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remain == 0 {
            return Ok(0);
        }
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.s.set_read_timeout(Some(left))?;
        }
        let n = buf.len().min(self.remain.min(usize::MAX as u64) as usize);
        let k = self.s.read(&mut buf[..n])?;
        self.remain -= k as u64;
        Ok(k)
    }
}

/// One server connection's reading side (the writing side is a clone of the socket).
pub struct Conn {
    rd: BufReader<Socket>,
    read_timeout: Duration,
    idle_timeout: Duration,
    /// whether a request was read (the next one waits up to IdleTimeout)
    served: bool,
    /// whether the last request was a POST (leading CR/LF are then skipped)
    last_post: bool,
}

impl Conn {
    /// `read_timeout`: the server's ReadTimeout (MediaMTX's `readTimeout`) for each
    /// request, `idle_timeout` between requests (Duration::MAX: none).
    pub fn new(s: TcpStream, read_timeout: Duration, idle_timeout: Duration) -> Conn {
        let socket = Socket {
            s,
            remain: u64::MAX,
            deadline: None,
        };
        Conn {
            rd: BufReader::with_capacity(BUFFER, socket),
            read_timeout,
            idle_timeout,
            served: false,
            last_post: false,
        }
    }

    /// A deadline `d` from now (none for a zero or unbounded `d`).
    fn deadline_in(&mut self, d: Duration) {
        let at = Instant::now().checked_add(d).filter(|_| !d.is_zero());
        let socket = self.rd.get_mut();
        socket.deadline = at;
        if at.is_none() {
            let _ = socket.s.set_read_timeout(None);
        }
    }

    fn stream(&mut self) -> &mut TcpStream {
        &mut self.rd.get_mut().s
    }

    /// Writes one of conn.serve's answers to a request it refuses (then closed).
    fn refuse(&mut self, answer: &str) {
        let _ = self.stream().write_all(answer.as_bytes());
    }
}

/// What conn.serve writes for an error of readRequest: plain text, `Connection: close`.
const ERROR_HEADERS: &str = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";

/// Why a request is refused, by the answer conn.serve gives.
#[derive(Debug, PartialEq)]
enum Fault {
    /// a read error Go does not answer (EOF before a request, a timeout)
    Net,
    /// `400 Bad Request` (its text stays in the server)
    Bad(String),
    /// a statusError: its text is in the answer
    Status(u16, &'static str),
    /// an unsupportedTEError: 501
    TransferEncoding(String),
}

fn bad(text: impl Into<String>) -> Fault {
    Fault::Bad(text.into())
}

/// badStringError: `what "val"`.
fn bad_string(what: &str, val: &str) -> Fault {
    bad(format!("{} {}", what, crate::util::go_quote(val.as_bytes())))
}

impl Fault {
    /// The error's text as Go words it (http.ReadRequest's, for the RTSP tunnel).
    pub fn text(&self) -> String {
        match self {
            Fault::Net => "EOF".into(),
            Fault::Bad(t) | Fault::TransferEncoding(t) => t.clone(),
            Fault::Status(_, t) => t.to_string(),
        }
    }
}

/// The parts of a request's head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    uri: String,
    path: String,
    raw_query: String,
    major: u8,
    pub minor: u8,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The first value, names compared case-insensitively (Go's Header.Get).
    pub fn get(&self, name: &str) -> &str {
        crate::http::first_header(&self.headers, name).unwrap_or("")
    }
}

/// Reads the next request. None when the connection is to be closed: at its end, on a
/// timeout, or after the answer to a refused request was written here.
pub fn read_request(c: &mut Conn) -> Option<Request<'_>> {
    // conn.serve: between requests the connection may idle for IdleTimeout, then the
    // request has ReadTimeout for its head and body
    if c.served {
        c.deadline_in(c.idle_timeout);
        if c.rd.fill_buf().map_or(true, |b| b.is_empty()) {
            return None;
        }
    }
    c.served = true;
    c.deadline_in(c.read_timeout);
    c.rd.get_mut().remain = MAX_HEAD;
    if c.last_post {
        // RFC 7230 section 3 tolerance for old buggy clients, on what is buffered
        let skip =
            c.rd.buffer()
                .iter()
                .take(4)
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        c.rd.consume(skip);
    }
    let head = read_head(&mut c.rd).and_then(|h| match h {
        Some(h) => framing(&h).map(|f| Some((h, f))),
        None => Ok(None),
    });
    let hit_limit = c.rd.get_ref().remain == 0;
    c.rd.get_mut().remain = u64::MAX;
    let (head, framing) = match head {
        Ok(Some(h)) => h,
        Ok(None) => return None,
        Err(_) if hit_limit => {
            refuse_too_large(c);
            return None;
        }
        Err(f) => return refused(c, f),
    };
    if let Err(f) = server_checks(&head) {
        return refused(c, f);
    }
    c.last_post = head.method == "POST";
    let expect = values(&head.headers, "Expect").first().map(|v| v.to_string());
    let continues = expect.as_deref().is_some_and(|e| has_token(e, "100-continue"));
    if expect.is_some_and(|e| !e.is_empty()) && !continues {
        // sendExpectationFailed
        c.refuse("HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return None;
    }
    let close = head.major != 1 || should_close(head.minor, &head.headers);
    let expect_continue = continues && (head.major, head.minor) >= (1, 1) && framing != Framing::Length(0);
    Some(Request::new(
        head.method,
        head.path,
        head.raw_query,
        head.headers,
        (head.major, head.minor) == (1, 0),
        close,
        RefCell::new(Body {
            conn: c,
            framing,
            expect_continue,
            wrote_continue: false,
            read: Vec::new(),
            error: None,
            eof: false,
        }),
    ))
}

fn refused(c: &mut Conn, f: Fault) -> Option<Request<'_>> {
    match f {
        Fault::Net => {}
        Fault::Bad(_) => c.refuse(&format!("HTTP/1.1 400 Bad Request{}400 Bad Request", ERROR_HEADERS)),
        Fault::Status(code, text) => {
            let status = format!("{} {}: {}", code, crate::http::reason(code), text);
            c.refuse(&format!("HTTP/1.1 {}{}{}", status, ERROR_HEADERS, status));
        }
        Fault::TransferEncoding(_) => c.refuse(&format!(
            "HTTP/1.1 501 Not Implemented{}Unsupported transfer encoding",
            ERROR_HEADERS
        )),
    }
    None
}

/// Like Go's closeWriteAndWait after the 431: the answer, a FIN, then up to 500 ms
/// (rstAvoidanceDelay) for the client to read it; the rest it sends is discarded so
/// that closing does not reset the connection under the answer.
fn refuse_too_large(c: &mut Conn) {
    const PUBLIC: &str = "431 Request Header Fields Too Large";
    c.refuse(&format!("HTTP/1.1 {}{}{}", PUBLIC, ERROR_HEADERS, PUBLIC));
    let s = c.stream();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 65536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// bufio.Reader.ReadLine as textproto uses it: a line without its `\n` (and a `\r`
/// before it); a last line without `\n` at EOF is a line; None at EOF.
fn read_line(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, Fault> {
    let mut line = Vec::new();
    match r.read_until(b'\n', &mut line) {
        Ok(0) => Ok(None),
        Ok(_) => {
            if line.ends_with(b"\n") {
                line.pop();
                if line.ends_with(b"\r") {
                    line.pop();
                }
            }
            Ok(Some(line))
        }
        Err(_) => Err(Fault::Net),
    }
}

/// request.go readRequest up to the header (readTransfer is `framing`). Ok(None): the
/// connection ended before a request.
fn read_head(r: &mut impl BufRead) -> Result<Option<Head>, Fault> {
    let Some(line) = read_line(r)? else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&line).into_owned();
    let (method, uri, proto) = parse_request_line(&line).ok_or_else(|| bad_string("malformed HTTP request", &line))?;
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(bad_string("invalid method", method));
    }
    let (major, minor) = parse_http_version(proto).ok_or_else(|| bad_string("malformed HTTP version", proto))?;
    // url.Error: `parse "URL": ...`
    let (path, raw_query) =
        parse_request_uri(uri).map_err(|e| bad(format!("parse {}: {}", crate::util::go_quote(uri.as_bytes()), e)))?;
    let headers = read_mime_header(r)?;
    if values(&headers, "Host").len() > 1 {
        return Err(bad("too many Host headers"));
    }
    Ok(Some(Head {
        method: method.to_string(),
        uri: uri.to_string(),
        path,
        raw_query,
        major,
        minor,
        headers,
    }))
}

/// http.ReadRequest, as gortsplib reads an HTTP tunnel's request: its head, or Go's
/// error text.
pub fn read_request_head(r: &mut impl BufRead) -> Result<Head, String> {
    match read_head(r).and_then(|h| h.map(|h| framing(&h).map(|_| h)).transpose()) {
        Ok(Some(h)) => Ok(h),
        Ok(None) => Err("EOF".into()),
        Err(f) => Err(f.text()),
    }
}

/// parseRequestLine: method, URI and protocol cut at the first two spaces.
fn parse_request_line(line: &str) -> Option<(&str, &str, &str)> {
    let (method, rest) = line.split_once(' ')?;
    let (uri, proto) = rest.split_once(' ')?;
    Some((method, uri, proto))
}

/// ParseHTTPVersion: `HTTP/1.1`, `HTTP/1.0` or `HTTP/X.Y` with one digit each.
fn parse_http_version(v: &str) -> Option<(u8, u8)> {
    match v {
        "HTTP/1.1" => return Some((1, 1)),
        "HTTP/1.0" => return Some((1, 0)),
        _ => {}
    }
    let b = v.strip_prefix("HTTP/")?.as_bytes();
    match b {
        [maj, b'.', min] if maj.is_ascii_digit() && min.is_ascii_digit() => Some((maj - b'0', min - b'0')),
        _ => None,
    }
}

/// url.ParseRequestURI: the path (unescaped) and raw query a router sees, or Go's
/// refusal (control characters, a relative reference, a bad escape, a bad host).
fn parse_request_uri(raw: &str) -> Result<(String, String), String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() {
        return Err("empty url".into());
    }
    if raw == "*" {
        return Ok(("*".into(), String::new()));
    }
    let (scheme, rest) = scheme_of(raw)?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, q),
        None => (rest, ""),
    };
    if !rest.starts_with('/') {
        if scheme.is_some() {
            // an opaque URL: no path
            return Ok((String::new(), query.into()));
        }
        return Err("invalid URI for request".into());
    }
    let path = match (scheme, rest.strip_prefix("//")) {
        (Some(_), Some(authority_and_path)) => {
            let (authority, path) = match authority_and_path.find('/') {
                Some(i) => authority_and_path.split_at(i),
                None => (authority_and_path, ""),
            };
            check_authority(authority)?;
            path
        }
        _ => rest,
    };
    if let Some(at) = crate::util::first_bad_escape(path) {
        // EscapeError: the `%` and at most two bytes after it
        let escape = &path.as_bytes()[at..path.len().min(at + 3)];
        return Err(format!("invalid URL escape {}", crate::util::go_quote(escape)));
    }
    // Go's path holds any bytes; one that is not UTF-8 is routed as sent here
    let path = crate::http::percent_decode(path, false).unwrap_or_else(|| path.to_string());
    Ok((path, query.into()))
}

/// getScheme: letters, then letters, digits, `+`, `-`, `.` up to a `:`.
fn scheme_of(raw: &str) -> Result<(Option<&str>, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((Some(&raw[..i]), &raw[i + 1..])),
            _ => return Ok((None, raw)),
        }
    }
    Ok((None, raw))
}

/// parseAuthority and parseHost, as far as a request line tells them: the host's bytes
/// and a numeric port (after an IPv6 literal's bracket or the last colon).
fn check_authority(authority: &str) -> Result<(), String> {
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').ok_or("missing ']' in host")?.1,
        None => host.rfind(':').map_or("", |i| &host[i..]),
    };
    let numeric = port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit());
    if !port.is_empty() && !numeric {
        return Err(format!(
            "invalid port {} after host",
            crate::util::go_quote(port.as_bytes())
        ));
    }
    if let Some(c) = host.chars().find(|c| matches!(c, ' ' | '"' | '<' | '>' | '\\' | '^')) {
        return Err(format!(
            "invalid character {} in host name",
            crate::util::go_quote(c.to_string().as_bytes())
        ));
    }
    Ok(())
}

/// Go's isTokenRune for ASCII: a byte of an HTTP token.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// textproto's validHeaderValueByte: visible ASCII, space, tab and obs-text.
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

/// textproto.readMIMEHeader: `Key: value` lines up to an empty one, continuation lines
/// folded into their header, keys canonicalized (a key with a space is kept as sent,
/// for the server to refuse).
fn read_mime_header(r: &mut impl BufRead) -> Result<Vec<(String, String)>, Fault> {
    let malformed = |kv: &[u8]| bad(format!("malformed MIME header line: {}", String::from_utf8_lossy(kv)));
    let mut headers = Vec::new();
    if matches!(r.fill_buf().ok().and_then(|b| b.first().copied()), Some(b' ' | b'\t')) {
        let mut line = Vec::new();
        let _ = r.read_until(b'\n', &mut line);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // readLineSlice(80): a longer line is errMessageTooLarge
        if line.len() > 80 {
            return Err(bad("message too large"));
        }
        return Err(bad(format!(
            "malformed MIME header initial line: {}",
            String::from_utf8_lossy(line)
        )));
    }
    loop {
        // past the request line, the connection's end is io.ErrUnexpectedEOF: answered
        let Some(line) = read_line(r)? else {
            return Err(bad("unexpected EOF"));
        };
        if line.is_empty() {
            return Ok(headers);
        }
        if !line.contains(&b':') {
            return Err(bad(format!(
                "malformed MIME header: missing colon: {}",
                crate::util::go_quote(&line)
            )));
        }
        let mut kv = trim(&line).to_vec();
        // continuation lines, each trimmed and joined with one space
        while matches!(r.fill_buf().ok().and_then(|b| b.first().copied()), Some(b' ' | b'\t')) {
            let Some(more) = read_line(r)? else { break };
            kv.push(b' ');
            kv.extend_from_slice(trim(&more));
        }
        let colon = kv.iter().position(|&b| b == b':').unwrap_or(kv.len());
        let (k, v) = (&kv[..colon], &kv[(colon + 1).min(kv.len())..]);
        let key = canonical_key(k).ok_or_else(|| malformed(&kv))?;
        if !v.iter().all(|&b| is_value_byte(b)) {
            return Err(malformed(&kv));
        }
        let value = String::from_utf8_lossy(trim(v)).into_owned();
        headers.push((key, value));
    }
}

/// textproto's trim: spaces and tabs at both ends.
fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t')).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// canonicalMIMEHeaderKey: None for an empty key or one with a byte that is neither a
/// token byte nor a space; a key with a space is not canonicalized.
fn canonical_key(k: &[u8]) -> Option<String> {
    if k.is_empty() || !k.iter().all(|&b| is_token(b) || b == b' ') {
        return None;
    }
    if k.contains(&b' ') {
        return Some(String::from_utf8_lossy(k).into_owned());
    }
    let mut upper = true;
    let key = k
        .iter()
        .map(|&b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            c as char
        })
        .collect();
    Some(key)
}

/// The values of a header (by its canonical key), in order.
fn values<'a>(headers: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// httpguts.HeaderValuesContainsToken for one value: comma-separated, case-insensitive.
fn has_token(v: &str, token: &str) -> bool {
    v.split(',')
        .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
}

/// shouldClose: HTTP/1.0 without `Connection: keep-alive`, or `Connection: close`.
fn should_close(minor: u8, headers: &[(String, String)]) -> bool {
    let conn = values(headers, "Connection");
    let has = |t: &str| conn.iter().any(|v| has_token(v, t));
    has("close") || (minor == 0 && !has("keep-alive"))
}

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// Content-Length: what is left to read
    Length(u64),
    /// chunked: what is left of the current chunk, and whether the last one was read
    Chunked { left: u64, started: bool },
}

/// transfer.go readTransfer for a request: Transfer-Encoding (only `chunked`, once;
/// ignored in HTTP/1.0) overrides Content-Length, whose copies must agree.
fn framing(h: &Head) -> Result<Framing, Fault> {
    let te = values(&h.headers, "Transfer-Encoding");
    if !te.is_empty() && (h.major, h.minor) >= (1, 1) {
        if te.len() != 1 {
            return Err(Fault::TransferEncoding(format!(
                "too many transfer encodings: {}",
                quote_list(&te)
            )));
        }
        if !te[0].eq_ignore_ascii_case("chunked") {
            return Err(Fault::TransferEncoding(format!(
                "unsupported transfer encoding: {}",
                crate::util::go_quote(te[0].as_bytes())
            )));
        }
        return Ok(Framing::Chunked {
            left: 0,
            started: false,
        });
    }
    let lengths: Vec<&str> = values(&h.headers, "Content-Length")
        .into_iter()
        .map(|v| v.trim_matches([' ', '\t']))
        .collect();
    let Some(first) = lengths.first() else {
        return Ok(Framing::Length(0));
    };
    if lengths.iter().any(|l| l != first) {
        return Err(bad(format!(
            "http: message cannot contain multiple Content-Length headers; got {}",
            quote_list(&lengths)
        )));
    }
    if first.is_empty() {
        return Err(bad_string("invalid empty Content-Length", first));
    }
    // strconv.ParseUint(cl, 10, 63)
    match first.parse::<u64>() {
        Ok(n) if first.bytes().all(|b| b.is_ascii_digit()) && n < 1 << 63 => Ok(Framing::Length(n)),
        _ => Err(bad_string("bad Content-Length", first)),
    }
}

/// `%q` of a []string: `["a" "b"]`.
fn quote_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| crate::util::go_quote(v.as_bytes())).collect();
    format!("[{}]", quoted.join(" "))
}

/// conn.readRequest's checks after the head: the protocol version, then the Host
/// header (HTTP/1.1 needs one, with host bytes only) and the header names.
fn server_checks(h: &Head) -> Result<(), Fault> {
    // http1ServerSupportsRequest: HTTP/1.x, or HTTP/2.0's `PRI *` upgrade
    let h2_upgrade = h.method == "PRI" && h.uri == "*";
    if h.major != 1 && !(h2_upgrade && (h.major, h.minor) == (2, 0)) {
        return Err(Fault::Status(505, "unsupported protocol version"));
    }
    let hosts = values(&h.headers, "Host");
    if (h.major, h.minor) >= (1, 1) && hosts.is_empty() && !h2_upgrade && h.method != "CONNECT" {
        return Err(Fault::Status(400, "missing required Host header"));
    }
    if hosts.first().is_some_and(|v| !v.bytes().all(is_host_byte)) {
        return Err(Fault::Status(400, "malformed Host header"));
    }
    if h.headers.iter().any(|(k, _)| !k.bytes().all(is_token)) {
        return Err(Fault::Status(400, "invalid header name"));
    }
    Ok(())
}

/// httpguts' validHostByte.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b)
}

/// A request's body, read from the connection only when a handler reads it, as Go's
/// handlers read theirs.
pub struct Body<'c> {
    conn: &'c mut Conn,
    framing: Framing,
    /// `Expect: 100-continue` on HTTP/1.1 with a body: `100 Continue` at the first read
    expect_continue: bool,
    wrote_continue: bool,
    /// what the handler read
    read: Vec<u8>,
    /// the first read error (sticky, like body's)
    error: Option<String>,
    eof: bool,
}

impl Body<'_> {
    /// Reads some of the body into `buf`: 0 at its end.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.eof {
            return Ok(0);
        }
        if self.expect_continue && !self.wrote_continue {
            self.wrote_continue = true;
            let _ = self.conn.stream().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let res = self.read_framed(buf);
        match &res {
            Ok(0) => self.eof = true,
            Err(e) => self.error = Some(e.clone()),
            _ => {}
        }
        res
    }

    fn read_framed(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let rd = &mut self.conn.rd;
        match &mut self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(left) => read_within(rd, buf, left),
            Framing::Chunked { left, started } => {
                if *left == 0 {
                    if *started {
                        // the CRLF after a chunk's data
                        let mut crlf = [0u8; 2];
                        rd.read_exact(&mut crlf).map_err(|e| read_error_text(&e))?;
                        if crlf != *b"\r\n" {
                            return Err("malformed chunked encoding".into());
                        }
                    }
                    *started = true;
                    *left = chunk_size(rd)?;
                    if *left == 0 {
                        read_trailer(rd)?;
                        return Ok(0);
                    }
                }
                read_within(rd, buf, left)
            }
        }
    }
}

/// Reads into `buf` at most the `left` bytes of a body or chunk; the connection's end
/// before them is `unexpected EOF`.
fn read_within(rd: &mut impl Read, buf: &mut [u8], left: &mut u64) -> Result<usize, String> {
    let n = buf.len().min((*left).min(usize::MAX as u64) as usize);
    match rd.read(&mut buf[..n]) {
        Ok(0) => Err("unexpected EOF".into()),
        Ok(k) => {
            *left -= k as u64;
            Ok(k)
        }
        Err(e) => Err(read_error_text(&e)),
    }
}

/// A read error's text as the handler sees it (`unexpected EOF`, `i/o timeout`).
fn read_error_text(e: &io::Error) -> String {
    crate::util::go_read_error(e, None, None)
}

/// chunked.go beginChunk: a CRLF-ended line (no bare LF, no other CR, under 4096
/// bytes), extensions after `;` dropped, the size in hex (at most 16 digits).
fn chunk_size(rd: &mut impl BufRead) -> Result<u64, String> {
    let mut line = Vec::new();
    match rd.by_ref().take(CHUNK_LINE as u64).read_until(b'\n', &mut line) {
        Ok(_) if !line.ends_with(b"\n") && line.len() >= CHUNK_LINE => return Err("header line too long".into()),
        Ok(_) if !line.ends_with(b"\n") => return Err("unexpected EOF".into()),
        Ok(_) => {}
        Err(e) => return Err(read_error_text(&e)),
    }
    match line.iter().position(|&b| b == b'\r') {
        None => return Err("chunked line ends with bare LF".into()),
        Some(i) if i != line.len() - 2 => return Err("invalid CR in chunked line".into()),
        _ => {}
    }
    line.truncate(line.len() - 2);
    if line.len() >= CHUNK_LINE {
        return Err("header line too long".into());
    }
    while line.last().is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        line.pop();
    }
    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
    if digits.is_empty() {
        return Err("empty hex number for chunk length".into());
    }
    let mut n: u64 = 0;
    for (i, &b) in digits.iter().enumerate() {
        let d = (b as char).to_digit(16).ok_or("invalid byte in chunk length")?;
        if i == 16 {
            return Err("http chunk length too large".into());
        }
        n = (n << 4) | u64::from(d);
    }
    Ok(n)
}

/// body.readTrailer: a CRLF, or trailer lines ending with an empty one within the
/// buffer's 4 KiB.
fn read_trailer(rd: &mut impl BufRead) -> Result<(), String> {
    let mut seen = 0;
    loop {
        let mut line = Vec::new();
        let n = rd
            .by_ref()
            .take((BUFFER - seen) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error_text(&e))?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(if seen + n >= BUFFER {
                "http: suspiciously long trailer after chunked body".into()
            } else {
                "http: unexpected EOF reading trailer".into()
            });
        }
        seen += n;
        if line == b"\r\n" || line == b"\n" {
            return Ok(());
        }
    }
}

/// What a handler that reads its body gets: MediaMTX's config handlers read it through
/// customLimitReader (10 MiB: `size exceeds maximum allowed`), then decode it. The
/// bytes are kept once, in the body (see `body_read`), and lent from there.
pub fn read_config_body<'b>(body: &'b RefCell<Body<'_>>) -> Result<std::cell::Ref<'b, [u8]>, String> {
    const MAX_INBOUND_CONFIG: usize = 10 * 1024 * 1024;
    {
        let b = &mut *body.borrow_mut();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = MAX_INBOUND_CONFIG - b.read.len();
            if left == 0 {
                return Err("size exceeds maximum allowed".into());
            }
            let n = buf.len().min(left);
            match b.read_some(&mut buf[..n]) {
                Ok(0) => break,
                Ok(k) => b.read.extend_from_slice(&buf[..k]),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(std::cell::Ref::map(body.borrow(), |b| b.read.as_slice()))
}

/// What the handler read of the body.
pub fn body_read(body: &RefCell<Body<'_>>) -> Vec<u8> {
    body.borrow().read.clone()
}

/// chunkWriter.writeHeader's decision, once the handler is done: whether the connection
/// stays open after the answer. A body the handler left unread is discarded up to
/// 256 KiB (a known rest of 256 KiB or more is not read at all); more, a read error, or
/// a `100-continue` body never asked for, closes the connection.
pub fn finish(body: &RefCell<Body<'_>>, close: bool) -> bool {
    let mut b = body.borrow_mut();
    if close {
        return false;
    }
    if b.expect_continue {
        // an expectContinueReader not read to its end closes the connection
        return b.eof;
    }
    let unread = match b.framing {
        Framing::Length(0) if b.error.is_none() => return true,
        Framing::Length(n) => Some(n),
        Framing::Chunked { .. } => None,
    };
    if unread.is_some_and(|n| n >= DISCARD) {
        return false;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut discarded = 0u64;
    while discarded <= DISCARD {
        let n = buf.len().min((DISCARD + 1 - discarded) as usize);
        match b.read_some(&mut buf[..n]) {
            Ok(0) => return true,
            Ok(k) => discarded += k as u64,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<Head>, Fault> {
        read_head(&mut io::Cursor::new(raw.as_bytes().to_vec()))
    }

    #[test]
    fn request_lines_follow_go_rules() {
        let ok = |raw: &str| head(raw).unwrap().unwrap();
        let refused = |raw: &str| match head(raw) {
            Err(Fault::Bad(t)) => t,
            other => panic!("{:?}: {:?}", raw, other.map(|h| h.map(|h| h.path))),
        };
        assert_eq!(ok("GET /%ff HTTP/1.1\r\n\r\n").path, "/%ff");
        let h = ok("GET /v3/paths/get/a%20b?x=1 HTTP/1.1\r\nhost: x\r\nX-long-KEY:  v  \r\n\r\n");
        assert_eq!(
            (h.path.as_str(), h.raw_query.as_str(), h.minor),
            ("/v3/paths/get/a b", "x=1", 1)
        );
        assert_eq!(
            h.headers,
            vec![("Host".into(), "x".into()), ("X-Long-Key".into(), "v".into())]
        );
        // absolute form: the path is routed; bare LF ends lines; folded lines join
        let h = ok("GET http://h:80/v3/info HTTP/1.0\nA: b\n  c\n\n");
        assert_eq!((h.path.as_str(), h.minor), ("/v3/info", 0));
        assert_eq!(h.headers, vec![("A".into(), "b c".into())]);
        // the connection's end before a request is no request
        assert!(head("").unwrap().is_none());
        for (raw, text) in [
            ("GET /a b HTTP/1.1\r\n\r\n", r#"malformed HTTP version "b HTTP/1.1""#),
            ("GET /\r\n\r\n", r#"malformed HTTP request "GET /""#),
            ("\r\nGET / HTTP/1.1\r\n\r\n", r#"malformed HTTP request """#),
            ("G(T / HTTP/1.1\r\n\r\n", r#"invalid method "G(T""#),
            ("GET / HTTP/1.10\r\n\r\n", r#"malformed HTTP version "HTTP/1.10""#),
            ("GET / http/1.1\r\n\r\n", r#"malformed HTTP version "http/1.1""#),
            (
                "GET v3/info HTTP/1.1\r\n\r\n",
                r#"parse "v3/info": invalid URI for request"#,
            ),
            (
                "GET /a%zz HTTP/1.1\r\n\r\n",
                r#"parse "/a%zz": invalid URL escape "%zz""#,
            ),
            ("GET /a%2 HTTP/1.1\r\n\r\n", r#"parse "/a%2": invalid URL escape "%2""#),
            (
                "GET /a\x01 HTTP/1.1\r\n\r\n",
                r#"parse "/a\x01": net/url: invalid control character in URL"#,
            ),
            ("GET :x HTTP/1.1\r\n\r\n", r#"parse ":x": missing protocol scheme"#),
            (
                "GET http://h:x/ HTTP/1.1\r\n\r\n",
                r#"parse "http://h:x/": invalid port ":x" after host"#,
            ),
            (
                "GET / HTTP/1.1\r\n Host: x\r\n\r\n",
                "malformed MIME header initial line:  Host: x",
            ),
            (
                "GET / HTTP/1.1\r\nHost x\r\n\r\n",
                r#"malformed MIME header: missing colon: "Host x""#,
            ),
            (
                "GET / HTTP/1.1\r\nHo(st: x\r\n\r\n",
                "malformed MIME header line: Ho(st: x",
            ),
            ("GET / HTTP/1.1\r\n: x\r\n\r\n", "malformed MIME header line: : x"),
            (
                "GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n",
                "malformed MIME header line: A: b\x01c",
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "too many Host headers"),
            ("GET / HTTP/1.1\r\nHost: a\r\n", "unexpected EOF"),
        ] {
            assert_eq!(refused(raw), text, "{:?}", raw);
        }
        // what the server checks after textproto (a key with a space passes it)
        for (raw, want) in [
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX y: z\r\n\r\n",
                Err(Fault::Status(400, "invalid header name")),
            ),
            (
                "GET / HTTP/1.1\r\n\r\n",
                Err(Fault::Status(400, "missing required Host header")),
            ),
            ("GET / HTTP/1.0\r\n\r\n", Ok(())),
            (
                "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
                Err(Fault::Status(400, "malformed Host header")),
            ),
            (
                "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
                Err(Fault::Status(505, "unsupported protocol version")),
            ),
            ("PRI * HTTP/2.0\r\n\r\n", Ok(())),
        ] {
            assert_eq!(server_checks(&ok(raw)), want, "{:?}", raw);
        }
    }

    #[test]
    fn bodies_are_framed_like_transfer_go() {
        let framing_of = |raw: &str| framing(&head(raw).unwrap().unwrap());
        let post = |h: &str| framing_of(&format!("POST / HTTP/1.1\r\nHost: a\r\n{}\r\n", h));
        assert_eq!(post(""), Ok(Framing::Length(0)));
        assert_eq!(post("Content-Length: 12\r\n"), Ok(Framing::Length(12)));
        assert_eq!(
            post("Content-Length: 3\r\nContent-Length: 3\r\n"),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            post("Transfer-Encoding: Chunked\r\nContent-Length: 3\r\n"),
            Ok(Framing::Chunked {
                left: 0,
                started: false
            })
        );
        for (h, text) in [
            ("Content-Length: +3\r\n", r#"bad Content-Length "+3""#),
            ("Content-Length: 0x3\r\n", r#"bad Content-Length "0x3""#),
            (
                "Content-Length: 9223372036854775808\r\n",
                r#"bad Content-Length "9223372036854775808""#,
            ),
            (
                "Content-Length: 3\r\nContent-Length: 4\r\n",
                r#"http: message cannot contain multiple Content-Length headers; got ["3" "4"]"#,
            ),
            ("Content-Length:\r\n", r#"invalid empty Content-Length """#),
        ] {
            assert_eq!(post(h), Err(bad(text)), "{}", h);
        }
        assert_eq!(
            post("Transfer-Encoding: gzip\r\n").map_err(|f| f.text()),
            Err(r#"unsupported transfer encoding: "gzip""#.into())
        );
        assert_eq!(
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n").map_err(|f| f.text()),
            Err(r#"too many transfer encodings: ["chunked" "chunked"]"#.into())
        );
        // HTTP/1.0 ignores Transfer-Encoding
        let h10 = framing_of("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(h10, Ok(Framing::Length(2)));

        let mut chunks = io::Cursor::new(b"a;ext=1\r\n".to_vec());
        assert_eq!(chunk_size(&mut chunks), Ok(10));
        for (line, text) in [
            ("a\n", "chunked line ends with bare LF"),
            ("a\rb\r\n", "invalid CR in chunked line"),
            ("\r\n", "empty hex number for chunk length"),
            ("x\r\n", "invalid byte in chunk length"),
            ("11112222333344445\r\n", "http chunk length too large"),
            ("a", "unexpected EOF"),
        ] {
            let mut c = io::Cursor::new(line.as_bytes().to_vec());
            assert_eq!(chunk_size(&mut c), Err(text.to_string()), "{:?}", line);
        }
    }
}
