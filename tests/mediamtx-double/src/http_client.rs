//! The small HTTP/1.1 client of the auth manager (`authHTTPAddress` POSTs, `authJWTJWKS`
//! GETs): plain `http://` or `https://` through openssl, with MediaMTX's TLS rule
//! (internal/protocols/tls.MakeConfig): with a fingerprint the certificate is not verified
//! but its SHA-256 must match; without one it is verified against the system roots.
//! Errors read like Go's net/http (`Post "URL": ...`). Its dial and TLS rule also serve the
//! RTSP-over-WebSocket sources (rtsp_ws).

use openssl::hash::MessageDigest;
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest status line + headers accepted.
const MAX_HEAD: usize = 64 * 1024;

pub struct Response {
    pub code: u16,
    pub body: Vec<u8>,
    /// the body was longer than the caller's limit (body holds the first `limit` bytes)
    pub over_limit: bool,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One request with `Connection: close`. `op` is Go's url.Error Op ("Get", "Post").
pub fn request(
    op: &str,
    url: &str,
    body: Option<&[u8]>,
    fingerprint: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Response, String> {
    let wrap = |e: String| format!("{} \"{}\": {}", op, url, e);
    let (tls, rest) = match url.split_once("://") {
        Some(("http", r)) => (false, r),
        Some(("https", r)) => (true, r),
        Some((s, _)) => return Err(wrap(format!("unsupported protocol scheme \"{}\"", s))),
        None => return Err(wrap("unsupported protocol scheme \"\"".into())),
    };
    let (host, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    // Go's Client.Timeout 0 = none; the double bounds it anyway
    let timeout = if timeout.is_zero() {
        Duration::from_secs(10)
    } else {
        timeout
    };
    let (name, tcp) = dial(host, if tls { 443 } else { 80 }, timeout).map_err(wrap)?;
    let mut s: Box<dyn Stream> = if tls {
        Box::new(tls_connect(tcp, &name, fingerprint).map_err(wrap)?)
    } else {
        Box::new(tcp)
    };
    let body = body.unwrap_or(b"");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: close\r\n",
        op.to_uppercase(),
        path,
        host
    );
    if op == "Post" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .and_then(|_| s.flush())
        .map_err(|e| wrap(e.to_string()))?;
    read_response(s, limit).map_err(wrap)
}

/// Connects to a URL's `host` (`name[:port]`, `[v6][:port]`) with read/write timeouts set;
/// the host name (for TLS) and the socket, or the error in Go's net words.
pub fn dial(host: &str, default_port: u16, timeout: Duration) -> Result<(String, TcpStream), String> {
    let (name, hostport) = split_host(host, default_port);
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp: lookup {}: {}", name, e))?
        .next()
        .ok_or_else(|| format!("dial tcp: lookup {}: no such host", name))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("dial tcp {}: connect: {}", addr, crate::util::go_os_error(&e)))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    Ok((name, tcp))
}

/// ("name", "name:port") of a URL host, IPv6 brackets kept for the dial.
fn split_host(host: &str, default_port: u16) -> (String, String) {
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        let name = host[1..end + 1].to_string();
        let port = host[end + 2..].strip_prefix(':').unwrap_or("");
        let port = if port.is_empty() {
            default_port.to_string()
        } else {
            port.into()
        };
        return (name.clone(), format!("[{}]:{}", name, port));
    }
    match host.rsplit_once(':') {
        Some((n, p)) if !p.is_empty() => (n.to_string(), host.to_string()),
        Some((n, _)) => (n.to_string(), format!("{}:{}", n, default_port)),
        None => (host.to_string(), format!("{}:{}", host, default_port)),
    }
}

/// The TLS handshake under MakeConfig's rule.
pub fn tls_connect(
    tcp: TcpStream,
    name: &str,
    fingerprint: &str,
) -> Result<openssl::ssl::SslStream<TcpStream>, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    let pinned = !fingerprint.is_empty();
    if pinned {
        b.set_verify(SslVerifyMode::NONE);
    }
    let conf = b
        .build()
        .configure()
        .map_err(|e| e.to_string())?
        .verify_hostname(!pinned);
    let s = match conf.connect(name, tcp) {
        Ok(s) => s,
        Err(HandshakeError::Failure(m)) => {
            let v = m.ssl().verify_result();
            return Err(match v.as_raw() {
                0 => format!("remote error: tls: {}", m.error()),
                // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN,
                // UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE
                18..=21 => "tls: failed to verify certificate: x509: certificate signed by unknown authority".into(),
                // X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
                62 | 64 => format!(
                    "tls: failed to verify certificate: x509: certificate is not valid for {}",
                    name
                ),
                _ => format!("tls: failed to verify certificate: x509: {}", v.error_string()),
            });
        }
        Err(e) => return Err(e.to_string()),
    };
    if pinned {
        let got = s
            .ssl()
            .peer_certificate()
            .and_then(|c| c.digest(MessageDigest::sha256()).ok())
            .map(|d| d.iter().map(|b| format!("{:02x}", b)).collect::<String>())
            .unwrap_or_default();
        let want = fingerprint.to_lowercase();
        if got != want {
            return Err(format!(
                "source fingerprint does not match: expected {}, got {}",
                want, got
            ));
        }
    }
    Ok(s)
}

/// Status code and body (Content-Length, chunked, or up to the close), at most `limit`
/// body bytes kept.
fn read_response(s: Box<dyn Stream>, limit: usize) -> Result<Response, String> {
    let mut r = BufReader::new(s);
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take((MAX_HEAD - head.len().min(MAX_HEAD)) as u64)
            .read_until(b'\n', &mut head)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(if head.is_empty() {
                "EOF".into()
            } else {
                "malformed HTTP response".into()
            });
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("");
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .filter(|_| status.starts_with("HTTP/1."))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response {:?}", status))?;
    let header = |k: &str| {
        lines
            .clone()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(k))
            .map(|(_, v)| v.trim().to_string())
    };
    let chunked = header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = header("Content-Length").and_then(|v| v.parse().ok());
    let mut body = Vec::new();
    let want = limit + 1;
    if chunked {
        while body.len() < want {
            let mut size_line = String::new();
            r.by_ref()
                .take(1024)
                .read_line(&mut size_line)
                .map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| "malformed chunked encoding".to_string())?;
            if size == 0 {
                break;
            }
            let take = size.min(want - body.len());
            let start = body.len();
            body.resize(start + take, 0);
            r.read_exact(&mut body[start..]).map_err(|e| e.to_string())?;
            if take < size {
                break;
            }
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).map_err(|e| e.to_string())?;
        }
    } else {
        let n = length.map(|l| l.min(want)).unwrap_or(want);
        r.take(n as u64).read_to_end(&mut body).map_err(|e| e.to_string())?;
        if length.is_some_and(|l| body.len() < l.min(want)) {
            return Err("unexpected EOF".into());
        }
    }
    let over_limit = body.len() > limit;
    body.truncate(limit);
    Ok(Response { code, body, over_limit })
}
