//! Discovery of external RTSP streams (api.md §11): the address list (configured hosts and
//! CIDR ranges, capped), a real RTSP probe (`OPTIONS`, then `DESCRIBE` per path, accepted
//! only for status 200 with an SDP body that has an `m=video` line), and the scan that runs
//! the probes on a bounded number of threads, each exchange bounded by a timeout.
//!
//! Only addresses the configuration lists are ever contacted. Everything here is blocking
//! and runs on the blocking pool (`blocking::unblock`).

use crate::external::StreamType;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Skydio stream paths: EO on the EO port, IR on the IR port.
pub const SKYDIO_EO_PATH: &str = "/subject";
pub const SKYDIO_IR_PATH: &str = "/infrared";

/// What one scan covers.
#[derive(Clone, Debug)]
pub struct ScanSpec {
    pub hosts: Vec<String>,
    pub cidrs: Vec<String>,
    /// Generic profile: every port × every path (`None` = generic profile off).
    pub generic: Option<(Vec<u16>, Vec<String>)>,
    /// Skydio profile: (EO port, IR port) (`None` = off).
    pub skydio: Option<(u16, u16)>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub max_addresses: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub url: String,
    pub host: IpAddr,
    pub port: u16,
    pub path: String,
    pub stream_type: StreamType,
    /// Video codec from the SDP `a=rtpmap` line (e.g. `H264`).
    pub codec: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ScanReport {
    pub found: Vec<Found>,
    /// Scan-level problems (truncated address list, unresolvable host) and endpoints that
    /// accepted TCP but did not speak RTSP properly. Refused/silent ports are not errors.
    pub errors: Vec<String>,
    pub addresses: usize,
    pub endpoints: usize,
    pub duration: Duration,
}

/// Parses `a.b.c.d/n` or `v6/n`.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("{s:?}: invalid address"))?;
    let bits: u8 = bits.parse().map_err(|_| format!("{s:?}: invalid prefix length"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(format!("{s:?}: prefix length above {max}"));
    }
    Ok((ip, bits))
}

/// Host addresses of a CIDR range, at most `cap` (the network and broadcast addresses of IPv4
/// ranges wider than /31 are skipped; so is the all-zero address of IPv6 ranges wider than /127).
/// Never materialises more than `cap` addresses. The bool says whether the range was cut.
pub fn expand_cidr(ip: IpAddr, bits: u8, cap: usize) -> (Vec<IpAddr>, bool) {
    let mut out = Vec::new();
    match ip {
        IpAddr::V4(v4) => {
            let host_bits = 32 - bits as u32;
            let mask: u32 = if host_bits == 32 { 0 } else { u32::MAX << host_bits };
            let net = u32::from(v4) & mask;
            let size: u64 = 1u64 << host_bits;
            let (first, last) = if host_bits >= 2 { (1, size - 2) } else { (0, size - 1) };
            let mut i = first;
            while i <= last {
                if out.len() >= cap {
                    return (out, true);
                }
                out.push(IpAddr::V4(Ipv4Addr::from(net.wrapping_add(i as u32))));
                i += 1;
            }
        }
        IpAddr::V6(v6) => {
            let host_bits = 128 - bits as u32;
            let mask: u128 = if host_bits == 128 { 0 } else { u128::MAX << host_bits };
            let net = u128::from(v6) & mask;
            let last: u128 = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let mut i: u128 = if host_bits >= 1 { 1 } else { 0 };
            while i <= last {
                if out.len() >= cap {
                    return (out, true);
                }
                out.push(IpAddr::V6(Ipv6Addr::from(net.wrapping_add(i))));
                if i == u128::MAX {
                    break;
                }
                i += 1;
            }
        }
    }
    (out, false)
}

/// The addresses to scan: hosts (addresses or names, resolved), then CIDR ranges; duplicates
/// dropped, at most `cap` in all.
pub fn addresses(hosts: &[String], cidrs: &[String], cap: usize) -> (Vec<IpAddr>, Vec<String>) {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut errors = Vec::new();
    let mut truncated = false;
    let push = |ip: IpAddr, out: &mut Vec<IpAddr>| {
        if out.contains(&ip) {
            return true;
        }
        if out.len() >= cap {
            return false;
        }
        out.push(ip);
        true
    };
    for h in hosts {
        let ips: Vec<IpAddr> = match h.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match (h.as_str(), 0).to_socket_addrs() {
                Ok(a) => a.map(|s| s.ip()).take(4).collect(),
                Err(e) => {
                    errors.push(format!("host {h}: cannot resolve ({e})"));
                    continue;
                }
            },
        };
        for ip in ips {
            truncated |= !push(ip, &mut out);
        }
    }
    for c in cidrs {
        match parse_cidr(c) {
            Ok((ip, bits)) => {
                let left = cap.saturating_sub(out.len());
                let (ips, cut) = expand_cidr(ip, bits, left + 1);
                truncated |= cut;
                for ip in ips {
                    truncated |= !push(ip, &mut out);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if truncated {
        errors.push(format!(
            "address list truncated to {cap} addresses (discovery.max_addresses)"
        ));
    }
    (out, errors)
}

// ---- RTSP ----

/// A parsed RTSP response.
#[derive(Clone, Debug, PartialEq)]
pub struct RtspResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RtspResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// Parses a response head from `buf`: `Ok(None)` = incomplete; `Ok(Some((status, headers,
/// head_len)))`. The status line is checked by hand (`RTSP/1.0 200 OK`; httparse only knows
/// `HTTP/1.x`), the headers by `httparse::parse_headers`.
#[allow(clippy::type_complexity)]
pub fn parse_head(buf: &[u8]) -> Result<Option<(u16, Vec<(String, String)>, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= 12 && !buf.starts_with(b"RTSP/") {
            return Err("not an RTSP response".into());
        }
        return if buf.len() > MAX_HEAD {
            Err("status line too long".into())
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[..eol]).map_err(|_| "status line is not text".to_string())?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !matches!(version, "RTSP/1.0" | "RTSP/1.1" | "RTSP/2.0") {
        return Err(format!(
            "not an RTSP response (status line starts {:?})",
            short(version)
        ));
    }
    let code = parts.next().unwrap_or_default();
    let status: u16 = match code.parse() {
        Ok(n) if (100..=999).contains(&n) && code.len() == 3 => n,
        _ => return Err(format!("bad RTSP status code {:?}", short(code))),
    };
    let mut storage = [httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(&buf[eol + 2..], &mut storage) {
        Ok(httparse::Status::Complete((len, headers))) => {
            let headers = headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).trim().to_string()))
                .collect();
            Ok(Some((status, headers, eol + 2 + len)))
        }
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => Ok(None),
        Ok(httparse::Status::Partial) => Err("response head too long".into()),
        Err(e) => Err(format!("bad RTSP header: {e}")),
    }
}

fn short(s: &str) -> String {
    s.chars().take(16).collect()
}

/// Whether an SDP has a video media section, and the codec of its first `a=rtpmap`.
pub fn sdp_video(sdp: &str) -> Option<Option<String>> {
    let mut in_video = false;
    let mut seen = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if seen && in_video {
                break;
            }
            in_video = m.starts_with("video ");
            seen |= in_video;
        } else if in_video {
            if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let codec = map
                    .split_whitespace()
                    .nth(1)
                    .and_then(|e| e.split('/').next())
                    .map(|c| c.to_ascii_uppercase());
                return Some(codec);
            }
        }
    }
    seen.then_some(None)
}

/// One RTSP connection with a deadline per exchange.
pub struct RtspConn {
    stream: TcpStream,
    cseq: u32,
    timeout: Duration,
}

#[derive(Debug, PartialEq)]
pub enum ProbeError {
    /// Refused, unreachable, timed out connecting: nothing listening (not reported).
    Unreachable(String),
    /// Something answered but not as an RTSP server should.
    Protocol(String),
}

impl RtspConn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<RtspConn, ProbeError> {
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| ProbeError::Unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(RtspConn {
            stream,
            cseq: 0,
            timeout,
        })
    }

    /// Sends one request and reads its response, all within the timeout.
    pub fn request(&mut self, method: &str, url: &str, extra: &[(&str, &str)]) -> Result<RtspResponse, ProbeError> {
        let deadline = Instant::now() + self.timeout;
        self.cseq += 1;
        let mut req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: camera-service/{}\r\n",
            self.cseq,
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let io = |e: std::io::Error| ProbeError::Protocol(format!("{method}: {e}"));
        self.stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        self.stream.write_all(req.as_bytes()).map_err(io)?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        let (status, headers, head_len) = loop {
            if let Some(h) = parse_head(&buf).map_err(ProbeError::Protocol)? {
                break h;
            }
            let n = self.read_some(&mut chunk, deadline, method)?;
            buf.extend_from_slice(&chunk[..n]);
        };
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| {
                v.parse()
                    .map_err(|_| ProbeError::Protocol(format!("{method}: bad Content-Length")))
            })
            .transpose()?
            .unwrap_or(0);
        if len > MAX_BODY {
            return Err(ProbeError::Protocol(format!(
                "{method}: body of {len} bytes is too large"
            )));
        }
        while buf.len() < head_len + len {
            let n = self.read_some(&mut chunk, deadline, method)?;
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(RtspResponse {
            status,
            headers,
            body: buf[head_len..head_len + len].to_vec(),
        })
    }

    fn read_some(&mut self, chunk: &mut [u8], deadline: Instant, method: &str) -> Result<usize, ProbeError> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ProbeError::Protocol(format!("{method}: no complete answer within the timeout")))?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| ProbeError::Protocol(e.to_string()))?;
        match self.stream.read(chunk) {
            Ok(0) => Err(ProbeError::Protocol(format!("{method}: connection closed"))),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Err(
                ProbeError::Protocol(format!("{method}: no complete answer within the timeout")),
            ),
            Err(e) => Err(ProbeError::Protocol(format!("{method}: {e}"))),
        }
    }
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Result of `DESCRIBE` on one path.
#[derive(Debug, PartialEq)]
pub enum Described {
    /// 200 with an SDP that has video (codec if named).
    Video(Option<String>),
    /// Any other answer (404, 401, no video...): the status and why.
    Not(u16, String),
}

/// `DESCRIBE` over an open connection.
pub fn describe(conn: &mut RtspConn, url: &str) -> Result<Described, ProbeError> {
    let r = conn.request("DESCRIBE", url, &[("Accept", "application/sdp")])?;
    if r.status != 200 {
        return Ok(Described::Not(r.status, format!("status {}", r.status)));
    }
    let sdp = String::from_utf8_lossy(&r.body);
    Ok(match sdp_video(&sdp) {
        Some(codec) => Described::Video(codec),
        None => Described::Not(200, "SDP without an m=video line".into()),
    })
}

/// Probes one endpoint: `OPTIONS`, then `DESCRIBE` of each path (reconnecting if the server
/// closed the connection). Returns the paths with video.
pub fn probe_endpoint(
    ip: IpAddr,
    port: u16,
    paths: &[(String, StreamType)],
    timeout: Duration,
) -> Result<(Vec<Found>, Vec<String>), ProbeError> {
    let addr = SocketAddr::new(ip, port);
    let base = format!("rtsp://{}:{port}", url_host(ip));
    let mut conn = RtspConn::connect(addr, timeout)?;
    let opts = conn.request("OPTIONS", &format!("{base}/"), &[])?;
    if opts
        .header("public")
        .is_some_and(|p| !p.to_ascii_uppercase().contains("DESCRIBE"))
    {
        return Err(ProbeError::Protocol("OPTIONS: server does not offer DESCRIBE".into()));
    }
    let mut found = Vec::new();
    let mut notes = Vec::new();
    for (path, stream_type) in paths {
        let url = format!("{base}{path}");
        let result = match describe(&mut conn, &url) {
            Err(ProbeError::Protocol(_)) => {
                // Some servers close after each answer: one fresh connection per retry.
                conn = RtspConn::connect(addr, timeout)?;
                describe(&mut conn, &url)?
            }
            other => other?,
        };
        match result {
            Described::Video(codec) => found.push(Found {
                url,
                host: ip,
                port,
                path: path.clone(),
                stream_type: *stream_type,
                codec,
            }),
            Described::Not(401, _) => notes.push(format!("{url}: requires authentication (401); not added")),
            Described::Not(200, why) => notes.push(format!("{url}: {why}")),
            Described::Not(..) => {}
        }
    }
    Ok((found, notes))
}

/// Runs a scan (blocking; bounded by `concurrency` threads and the per-exchange timeout).
pub fn scan(spec: &ScanSpec) -> ScanReport {
    let started = Instant::now();
    let (ips, mut errors) = addresses(&spec.hosts, &spec.cidrs, spec.max_addresses);
    let mut per_port: BTreeMap<u16, Vec<(String, StreamType)>> = BTreeMap::new();
    if let Some((ports, paths)) = &spec.generic {
        for p in ports {
            for path in paths {
                per_port
                    .entry(*p)
                    .or_default()
                    .push((path.clone(), StreamType::GenericRtsp));
            }
        }
    }
    if let Some((eo, ir)) = spec.skydio {
        per_port
            .entry(eo)
            .or_default()
            .push((SKYDIO_EO_PATH.into(), StreamType::SkydioEo));
        per_port
            .entry(ir)
            .or_default()
            .push((SKYDIO_IR_PATH.into(), StreamType::SkydioIr));
    }
    type Target<'a> = (IpAddr, u16, &'a Vec<(String, StreamType)>);
    let targets: Vec<Target> = ips
        .iter()
        .flat_map(|ip| per_port.iter().map(move |(port, paths)| (*ip, *port, paths)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Vec<Found>)>> = Mutex::new(Vec::new());
    let notes: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let workers = spec.concurrency.clamp(1, 256).min(targets.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((ip, port, paths)) = targets.get(i) else {
                    return;
                };
                match probe_endpoint(*ip, *port, paths, spec.timeout) {
                    Ok((f, n)) => {
                        results.lock().unwrap().push((i, f));
                        notes.lock().unwrap().extend(n.into_iter().map(|n| (i, n)));
                    }
                    Err(ProbeError::Unreachable(_)) => {}
                    Err(ProbeError::Protocol(e)) => notes
                        .lock()
                        .unwrap()
                        .push((i, format!("{}:{port}: not an RTSP stream server ({e})", url_host(*ip)))),
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut notes = notes.into_inner().unwrap();
    notes.sort();
    errors.extend(notes.into_iter().map(|(_, n)| n));
    ScanReport {
        found: results.into_iter().flat_map(|(_, f)| f).collect(),
        errors,
        addresses: ips.len(),
        endpoints: targets.len(),
        duration: started.elapsed(),
    }
}

/// Liveness of one configured source URL (credentials are never sent in the request line;
/// they are MediaMTX's business): `Ok(true)` when `DESCRIBE` answers 200 with video, or 401
/// (the server is up and guards the path); `Ok(false)` for other statuses. `rtsps` sources
/// (no TLS here) count as alive when the TCP port accepts.
pub fn source_alive(url: &str, timeout: Duration) -> Result<bool, String> {
    let p = crate::external::validate_url(url)?;
    let host = p.host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, p.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", p.host))?
        .next()
        .ok_or_else(|| format!("no address for {}", p.host))?;
    let mut conn = RtspConn::connect(addr, timeout).map_err(|e| format!("{e:?}"))?;
    if p.scheme == "rtsps" {
        return Ok(true);
    }
    let plain = format!("rtsp://{}:{}{}", p.host, p.port, p.path);
    match describe(&mut conn, &plain).map_err(|e| format!("{e:?}"))? {
        Described::Video(_) | Described::Not(401, _) => Ok(true),
        Described::Not(..) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_expansion_skips_network_and_broadcast_and_caps() {
        let (ip, bits) = parse_cidr("127.0.0.0/27").unwrap();
        let (ips, cut) = expand_cidr(ip, bits, 1000);
        assert!(!cut);
        assert_eq!(ips.len(), 30);
        assert_eq!(ips[0], "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(ips[29], "127.0.0.30".parse::<IpAddr>().unwrap());
        // Host bits set in the address are ignored.
        assert_eq!(expand_cidr("10.1.2.77".parse().unwrap(), 30, 10).0.len(), 2);
        assert_eq!(
            expand_cidr("10.1.2.77".parse().unwrap(), 32, 10).0,
            vec!["10.1.2.77".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(expand_cidr("10.0.0.0".parse().unwrap(), 31, 10).0.len(), 2);
        // A /8 is never materialised beyond the cap.
        let (ips, cut) = expand_cidr("10.0.0.0".parse().unwrap(), 8, 256);
        assert!(cut && ips.len() == 256);
        let (ips, cut) = expand_cidr("0.0.0.0".parse().unwrap(), 0, 3);
        assert!(cut && ips.len() == 3);
        let (ips, _) = expand_cidr("fd00::".parse().unwrap(), 126, 10);
        assert_eq!(ips.len(), 3);
        assert_eq!(expand_cidr("fd00::".parse().unwrap(), 0, 5).0.len(), 5);
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "fd00::/129", "x/1"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        let (ips, errs) = addresses(
            &["127.0.0.5".into()],
            &["127.0.0.0/29".into(), "127.0.1.0/24".into()],
            10,
        );
        assert_eq!(ips.len(), 10, "cap over hosts and ranges");
        assert_eq!(ips[0], "127.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(
            ips.iter().filter(|i| i.to_string() == "127.0.0.5").count(),
            1,
            "deduplicated"
        );
        assert!(errs.iter().any(|e| e.contains("truncated to 10")), "{errs:?}");
        let (ips, errs) = addresses(&[], &["127.0.0.0/30".into()], 2);
        assert_eq!(
            (ips.len(), errs.len()),
            (2, 0),
            "exactly at the cap is not a truncation"
        );
    }

    #[test]
    fn rtsp_response_parser() {
        let ok = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n";
        let (status, headers, len) = parse_head(ok).unwrap().unwrap();
        assert_eq!(status, 200);
        assert_eq!(len, ok.len() - 5);
        assert!(headers.iter().any(|(k, v)| k == "Content-Length" && v == "5"));
        assert_eq!(
            parse_head(b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n").unwrap(),
            None,
            "incomplete"
        );
        assert_eq!(parse_head(b"RTSP/1.0 2").unwrap(), None);
        assert_eq!(
            parse_head(b"RTSP/1.0 401 Unauthorized\r\n\r\n").unwrap().unwrap().0,
            401
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"RTSP/1.0 20 OK\r\n\r\n",
            b"RTSP/1.0 abc OK\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nBad Header\r\n\r\n",
            b"\x00\x01\x02garbage-without-newline",
        ] {
            assert!(parse_head(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let sdp = "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        assert_eq!(sdp_video(sdp), Some(Some("H264".into())));
        assert_eq!(sdp_video("v=0\r\nm=video 0 RTP/AVP 26\r\n"), Some(None));
        assert_eq!(sdp_video("v=0\r\nm=audio 0 RTP/AVP 0\r\n"), None);
    }

    /// A one-shot fake server answering every request with `reply` (CSeq echoed).
    fn fake(reply: &'static str, body: &'static str) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(4) {
                let Ok(mut s) = s else { return };
                let mut buf = [0u8; 4096];
                let mut cseq = 0;
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    cseq += 1;
                    let r = format!(
                        "{reply}\r\nCSeq: {cseq}\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(r.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        port
    }

    #[test]
    fn probe_tells_rtsp_video_from_impostors() {
        let t = Duration::from_millis(800);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let paths = vec![("/subject".to_string(), StreamType::SkydioEo)];
        let good = fake(
            "RTSP/1.0 200 OK",
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
        );
        let (f, _) = probe_endpoint(lo, good, &paths, t).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].url, format!("rtsp://127.0.0.1:{good}/subject"));
        assert_eq!(f[0].codec.as_deref(), Some("H264"));
        let http = fake("HTTP/1.1 200 OK", "hello");
        assert!(matches!(
            probe_endpoint(lo, http, &paths, t),
            Err(ProbeError::Protocol(_))
        ));
        let audio = fake("RTSP/1.0 200 OK", "v=0\r\nm=audio 0 RTP/AVP 0\r\n");
        let (f, notes) = probe_endpoint(lo, audio, &paths, t).unwrap();
        assert!(f.is_empty() && notes[0].contains("m=video"), "{notes:?}");
        // A listener that never answers: bounded by the timeout.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let r = probe_endpoint(lo, silent.local_addr().unwrap().port(), &paths, t);
        assert!(matches!(r, Err(ProbeError::Protocol(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(matches!(
            probe_endpoint(lo, port, &paths, t),
            Err(ProbeError::Unreachable(_))
        ));
    }
}
