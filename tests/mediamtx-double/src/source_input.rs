//! The ffmpeg input arguments of a pulled static source (MediaMTX internal/staticsources),
//! by URL scheme: RTSP (also tunnelled in HTTP(S) or WebSocket), RTMP(S), HLS over HTTP(S),
//! SRT (caller), MPEG-TS on a UDP address or a unix socket that the source listens on, and
//! RTP on a UDP address or a unix socket (`unix_rtp`) described by `rtpSDP`. TLS (but HLS's) and the WebSocket tunnel go
//! through a `source_bridge`.

use crate::core::{PathRt, Shared};
use crate::source_bridge::{Carrier, Upstream};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The global settings a static source uses.
#[derive(Clone, Copy)]
pub struct Globals {
    /// `readTimeout`: a source that receives nothing for this long is restarted
    pub read_timeout: Duration,
    /// `udpReadBufferSize` (0: the system default)
    pub udp_read_buffer: u64,
}

impl Globals {
    pub fn of(global: &Map<String, Value>) -> Globals {
        Globals {
            read_timeout: crate::conf::duration_of(global, "readTimeout"),
            udp_read_buffer: global.get("udpReadBufferSize").and_then(|v| v.as_u64()).unwrap_or(0),
        }
    }
}

/// The arguments before the output (`-i ...` included); `None` when the source cannot be
/// read (an `rtpSDP` file that cannot be written).
pub fn args(shared: &Arc<Shared>, p: &PathRt, g: Globals) -> Option<Vec<String>> {
    let source = p.s("source");
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    let (scheme, rest) = source.split_once("://").unwrap_or(("", ""));
    // at most 35 minutes: ffmpeg's timeouts are int microseconds
    let timeout_us = g.read_timeout.as_micros().clamp(1, i32::MAX as u128).to_string();
    if !scheme.starts_with("rtsp") {
        // ffmpeg probes 5 s by default; MediaMTX starts once it knows the tracks
        push(&["-analyzeduration", "1000000"]);
    }
    if !scheme.starts_with("rtsp") && !scheme.starts_with("udp") {
        push(&["-rw_timeout", &timeout_us]);
    }
    if scheme.starts_with("rtsp") {
        // the RTSP demuxer's socket I/O timeout (TCP and UDP reads): a source silent for
        // readTimeout ends, as MediaMTX's RTSP client does
        push(&["-timeout", &timeout_us]);
    }
    let bridge = |carrier, default_port, connections, tag| {
        bridged(
            shared,
            p,
            g,
            rest,
            Bridge {
                carrier,
                default_port,
                connections,
                tag,
            },
        )
    };
    match scheme {
        "rtsp" => {
            match p.s("rtspTransport").as_str() {
                "tcp" => push(&["-rtsp_transport", "tcp"]),
                "udp" => push(&["-rtsp_transport", "udp"]),
                "multicast" => push(&["-rtsp_transport", "udp_multicast"]),
                _ => {}
            }
            push(&["-i", &source]);
        }
        // TLS and the tunnels go through a loopback bridge (source_bridge): TCP only, as
        // gortsplib's tunnels (RTSPS over UDP would be SRTP, which neither side speaks here)
        "rtsps" => {
            let url = bridge(Carrier::Tls, 322, 1, "RTSP")?;
            push(&["-rtsp_transport", "tcp", "-i", &format!("rtsp://{}", url)]);
        }
        // RTSP tunnelled in HTTP: ffmpeg's own tunnel (a GET and a POST connection)
        "rtsp+http" => push(&["-rtsp_transport", "http", "-i", &format!("rtsp://{}", rest)]),
        "rtsps+http" => {
            let url = bridge(Carrier::Tls, 322, 2, "RTSP")?;
            push(&["-rtsp_transport", "http", "-i", &format!("rtsp://{}", url)]);
        }
        "rtsp+ws" | "rtsps+ws" => {
            let secure = scheme == "rtsps+ws";
            let port = if secure { 322 } else { 554 };
            let url = bridge(Carrier::WebSocket { secure }, port, 1, "RTSP")?;
            push(&["-rtsp_transport", "tcp", "-i", &format!("rtsp://{}", url)]);
        }
        "rtmps" => {
            let url = bridge(Carrier::Tls, 443, 1, "RTMP")?;
            push(&["-i", &format!("rtmp://{}", url)]);
        }
        "udp" | "udp+mpegts" => {
            // the deprecated path setting wins over the global one
            let buffer = p.conf.get("mpegtsUDPReadBufferSize").and_then(|v| v.as_u64());
            let buffer = buffer.unwrap_or(g.udp_read_buffer);
            let url = udp_input(rest, &buffer.to_string(), &timeout_us);
            push(&["-f", "mpegts", "-i", &url]);
        }
        "unix+mpegts" => {
            // MediaMTX listens on the socket and reads one connection at a time
            let path = unix_path(rest);
            remove_stale_socket(&path);
            push(&["-f", "mpegts", "-listen", "1", "-i", &format!("unix:{}", path)]);
        }
        "udp+rtp" | "unix+rtp" => {
            let sdp_file = shared.dir.join(format!("{}-rtp.sdp", p.name.replace('/', "_")));
            let relay_port;
            let (host, port) = if scheme == "unix+rtp" {
                relay_port = crate::unix_rtp::relay(&unix_path(rest), g.read_timeout)
                    .ok()?
                    .to_string();
                ("127.0.0.1", relay_port.as_str())
            } else {
                host_port(rest.split(['?', '/']).next().unwrap_or(""))
            };
            let buffer = p.conf.get("rtpUDPReadBufferSize").and_then(|v| v.as_u64());
            if buffer.unwrap_or(g.udp_read_buffer) != 0 {
                push(&["-buffer_size", &buffer.unwrap_or(g.udp_read_buffer).to_string()]);
            }
            std::fs::write(&sdp_file, listening_sdp(&p.s("rtpSDP"), host, port)).ok()?;
            let sdp = sdp_file.to_string_lossy().to_string();
            push(&["-protocol_whitelist", "file,udp,rtp", "-f", "sdp", "-i", &sdp]);
        }
        // HLS is played at its pace (ffmpeg would read a finished playlist at once)
        "http" | "https" => push(&["-re", "-i", &source]),
        // rtmp(s), srt: ffmpeg reads these URLs as they are
        _ => push(&["-i", &source]),
    }
    Some(a)
}

/// A source bridge's settings (source_bridge::open).
struct Bridge {
    carrier: Carrier,
    default_port: u16,
    connections: usize,
    /// the source's log tag: `RTSP` or `RTMP`
    tag: &'static str,
}

/// The source URL `rest` (after `scheme://`) rewritten to a new bridge's loopback port.
fn bridged(shared: &Arc<Shared>, p: &PathRt, g: Globals, rest: &str, b: Bridge) -> Option<String> {
    let up = |host| Upstream {
        host,
        default_port: b.default_port,
        carrier: b.carrier,
        fingerprint: p.s("sourceFingerprint"),
        timeout: g.read_timeout,
        log_scope: Some(crate::logger::Scope::path(&p.name).child(&format!("{} source", b.tag))),
    };
    crate::source_bridge::open_for_url(shared, rest, up, b.connections).map(|(url, _)| url)
}

/// `host:port` of a MediaMTX UDP URL (host may be a multicast group), with its `source`
/// query (only packets from that IP) as ffmpeg's `sources`. ffmpeg binds to the port on a
/// unicast host's address (`localaddr`) and joins a multicast group, as MediaMTX does.
fn udp_input(rest: &str, buffer: &str, timeout_us: &str) -> String {
    let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
    let addr = addr.trim_end_matches('/');
    let mut opts = vec![
        "overrun_nonfatal=1".to_string(),
        "fifo_size=50000".to_string(),
        format!("timeout={}", timeout_us),
    ];
    if buffer != "0" {
        opts.push(format!("buffer_size={}", buffer));
    }
    let (host, _) = host_port(addr);
    let multicast = host
        .parse::<std::net::Ipv4Addr>()
        .map(|ip| ip.is_multicast())
        .unwrap_or(false);
    if !multicast && !host.is_empty() {
        opts.push(format!("localaddr={}", host));
    }
    for kv in query.split('&') {
        if let Some(ip) = kv.strip_prefix("source=") {
            opts.push(format!("sources={}", ip));
        }
    }
    format!("udp://{}?{}", addr, opts.join("&"))
}

/// The socket path of `unix+mpegts://`/`unix+rtp://` URLs: the URL path, else its host
/// (MediaMTX unix.URLToParams).
fn unix_path(rest: &str) -> String {
    let rest = rest.split('?').next().unwrap_or("");
    match rest.find('/') {
        Some(i) if i < rest.len() - 1 => rest[i..].to_string(),
        _ => rest.trim_end_matches('/').to_string(),
    }
}

/// A socket left by an ffmpeg that was killed would make the next listen fail; only a
/// socket is removed, never another file the configuration names.
pub fn remove_stale_socket(path: &str) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

fn host_port(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => (addr, ""),
    }
}

/// `rtpSDP` describes the formats only; the address comes from the URL. ffmpeg listens on
/// the address of the SDP, so every media line is moved to the URL's port and the
/// connection to its host (a unicast host: any address, like ffmpeg's reading of RTP).
fn listening_sdp(sdp: &str, host: &str, port: &str) -> String {
    let c_host = if host.is_empty() { "0.0.0.0" } else { host };
    let mut out = String::new();
    let mut has_c = false;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut f: Vec<&str> = m.split(' ').collect();
            if f.len() > 1 {
                f[1] = port;
            }
            out.push_str(&format!("m={}\r\n", f.join(" ")));
        } else if line.starts_with("c=") {
            has_c = true;
            out.push_str(&format!("c=IN IP4 {}\r\n", c_host));
        } else if !line.is_empty() {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if !has_c {
        out = out.replacen("\r\nm=", &format!("\r\nc=IN IP4 {}\r\nm=", c_host), 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_urls() {
        assert_eq!(
            udp_input("127.0.0.1:9000?source=10.0.0.1", "0", "10"),
            "udp://127.0.0.1:9000?overrun_nonfatal=1&fifo_size=50000&timeout=10&localaddr=127.0.0.1&sources=10.0.0.1"
        );
        assert_eq!(
            udp_input("238.0.0.1:1234", "1000", "10"),
            "udp://238.0.0.1:1234?overrun_nonfatal=1&fifo_size=50000&timeout=10&buffer_size=1000"
        );
    }

    #[test]
    fn unix_paths() {
        assert_eq!(unix_path("/tmp/a.sock"), "/tmp/a.sock");
        assert_eq!(unix_path("host/tmp/a.sock"), "/tmp/a.sock");
        assert_eq!(unix_path("a.sock"), "a.sock");
    }

    #[test]
    fn sdp_moved_to_url_port() {
        let sdp = "v=0\no=- 0 0 IN IP4 1.2.3.4\ns=x\nc=IN IP4 1.2.3.4\nt=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n";
        let out = listening_sdp(sdp, "127.0.0.1", "7000");
        assert!(out.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(out.contains("m=video 7000 RTP/AVP 96\r\n"));
    }
}
