//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on the RTSP, RTSPS, RTMP and
//! RTMPS listeners, as MediaMTX's proxy.Listener reads it through go-proxyproto v0.15:
//! once `rtspTrustedProxies`/`rtmpTrustedProxies` is not empty, every connection may
//! start with a header (policy USE for peers inside the list: the client it names is
//! the connection's remote address; IGNORE for the others: read and dropped), and a
//! malformed one ends the connection with go-proxyproto's error. The header is peeked
//! from the socket, so only its bytes are consumed, with the look of go-proxyproto's
//! bufio reads: a v1 line must be there at once, a v2 header is waited for.

use crate::socket_peek::{Peek, Wait};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

const SIG_V1: &[u8] = b"PROXY";
const SIG_V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// MaxV2HeaderSize: the longest v2 payload (addresses and TLVs).
const MAX_V2_PAYLOAD: usize = 4096;
/// bufio.NewReader's size: what go-proxyproto's first reads can hold.
const BUFFER: usize = 4096;

const CANT_READ_V1: &str = "proxyproto: can't read version 1 header";
const CANT_READ_FAMILY: &str = "proxyproto: can't read address family or protocol";
const INVALID_LENGTH: &str = "proxyproto: invalid length";
const INVALID_ADDRESS: &str = "proxyproto: invalid address";
const INVALID_PORT: &str = "proxyproto: invalid port number";

/// A PROXY header read from a connection.
#[derive(Debug, PartialEq)]
pub enum Header {
    /// no header (other data, nothing within the timeout, or the connection's end)
    Absent,
    /// a header naming no client (LOCAL, UNKNOWN, UNSPEC, Unix families)
    Local,
    /// the client a PROXY header names
    Client(SocketAddr),
}

/// Reads the header a peer may send first (go-proxyproto's Read under its
/// ReadHeaderTimeout), consuming only its bytes. Err(text): a malformed header; the
/// connection is to be closed with that error.
pub fn read_header(tcp: &TcpStream, timeout: Duration) -> Result<Header, String> {
    let mut p = Peek::new(tcp, timeout, 16 + MAX_V2_PAYLOAD);
    // Peek(1), Peek(5), Peek(12): a timeout or the connection's end means no header
    if p.wait(1) != Wait::Ready || !matches!(p.data()[0], b'P' | b'\r') || p.wait(5) != Wait::Ready {
        return Ok(Header::Absent);
    }
    let (len, header) = if p.data().starts_with(SIG_V1) {
        parse_v1(p.data())?
    } else if p.wait(12) == Wait::Ready && p.data().starts_with(SIG_V2) {
        parse_v2(&mut p)?
    } else {
        return Ok(Header::Absent);
    };
    let mut consumed = vec![0u8; len];
    (&*tcp).read_exact(&mut consumed).map_err(|e| e.to_string())?;
    Ok(header)
}

/// parseVersion1 over what was buffered: the line must end within it (and within 107
/// bytes) with CRLF; `PROXY TCP4|TCP6 src dst sport dport` or `PROXY UNKNOWN ...`.
fn parse_v1(buffered: &[u8]) -> Result<(usize, Header), String> {
    let buffered = &buffered[..buffered.len().min(BUFFER)];
    let Some(end) = buffered.iter().take(107).position(|&b| b == b'\n') else {
        return Err(if buffered.len() >= 107 {
            "proxyproto: version 1 header must be 107 bytes or less".into()
        } else {
            CANT_READ_V1.into()
        });
    };
    let line = &buffered[..end + 1];
    if line.len() < 2 || line[line.len() - 2] != b'\r' {
        return Err("proxyproto: version 1 header is invalid, must end with \\r\\n".into());
    }
    let text = &line[..line.len() - 2];
    let tokens: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
    if tokens[0] != b"PROXY" {
        return Err(CANT_READ_V1.into());
    }
    let v6 = match tokens.get(1).copied() {
        Some(b"TCP4") => false,
        Some(b"TCP6") => true,
        Some(b"UNKNOWN") => return Ok((line.len(), Header::Local)),
        _ => return Err(CANT_READ_FAMILY.into()),
    };
    if tokens.len() != 6 {
        return Err(CANT_READ_FAMILY.into());
    }
    let source = v1_address(tokens[2], v6)?;
    v1_address(tokens[3], v6)?;
    let source_port = v1_port(tokens[4])?;
    v1_port(tokens[5])?;
    Ok((line.len(), Header::Client(SocketAddr::new(source, source_port))))
}

/// parseV1IPAddress: netip.ParseAddr, no zone, of the line's family (an IPv4-mapped
/// IPv6 address counts as IPv6).
fn v1_address(token: &[u8], v6: bool) -> Result<IpAddr, String> {
    let addr = parse_addr(token).map_err(|e| {
        format!(
            "{}: ParseAddr({}): {}",
            INVALID_ADDRESS,
            crate::util::go_quote(token),
            e
        )
    })?;
    match addr {
        (_, true) => Err(INVALID_ADDRESS.into()),
        (IpAddr::V4(a), _) if !v6 => Ok(IpAddr::V4(a)),
        (IpAddr::V6(a), _) if v6 => Ok(IpAddr::V6(a)),
        _ => Err(INVALID_ADDRESS.into()),
    }
}

/// parseV1PortNumber: no leading zero, then strconv.ParseUint(port, 10, 16).
fn v1_port(token: &[u8]) -> Result<u16, String> {
    if token.len() > 1 && token[0] == b'0' {
        return Err(INVALID_PORT.into());
    }
    let quoted = crate::util::go_quote(token);
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "{}: strconv.ParseUint: parsing {}: invalid syntax",
            INVALID_PORT, quoted
        ));
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "{}: strconv.ParseUint: parsing {}: value out of range",
                INVALID_PORT, quoted
            )
        })
}

/// netip.ParseAddr: the address and whether it had a zone, or the error's message
/// (with its `(at "...")` part).
fn parse_addr(s: &[u8]) -> Result<(IpAddr, bool), String> {
    for &c in s {
        match c {
            b'.' => return parse_ipv4(s, 0, s.len()).map(|f| (IpAddr::V4(Ipv4Addr::from(f)), false)),
            b':' => return parse_ipv6(s),
            b'%' => return Err("missing IPv6 address".into()),
            _ => {}
        }
    }
    Err("unable to parse IP".into())
}

/// parseAddrError's message with the input left where it failed (none when empty).
fn at(msg: &str, rest: &[u8]) -> String {
    if rest.is_empty() {
        return msg.into();
    }
    format!("{} (at {})", msg, crate::util::go_quote(rest))
}

/// parseIPv4Fields over `input[off..end]`.
fn parse_ipv4(input: &[u8], off: usize, end: usize) -> Result<[u8; 4], String> {
    let s = &input[off..end];
    let (mut fields, mut pos, mut val, mut digits) = ([0u8; 4], 0, 0u32, 0);
    for (i, &c) in s.iter().enumerate() {
        if c.is_ascii_digit() {
            if digits == 1 && val == 0 {
                return Err("IPv4 field has octet with leading zero".into());
            }
            val = val * 10 + u32::from(c - b'0');
            digits += 1;
            if val > 255 {
                return Err("IPv4 field has value >255".into());
            }
        } else if c == b'.' {
            if i == 0 || i == s.len() - 1 || s[i - 1] == b'.' {
                return Err(at("IPv4 field must have at least one digit", &s[i..]));
            }
            if pos == 3 {
                return Err("IPv4 address too long".into());
            }
            fields[pos] = val as u8;
            (pos, val, digits) = (pos + 1, 0, 0);
        } else {
            return Err(at("unexpected character", &s[i..]));
        }
    }
    if pos < 3 {
        return Err("IPv4 address too short".into());
    }
    fields[3] = val as u8;
    Ok(fields)
}

/// netip's parseIPv6, with its messages.
fn parse_ipv6(input: &[u8]) -> Result<(IpAddr, bool), String> {
    let (mut s, zone) = match input.iter().position(|&b| b == b'%') {
        Some(i) if i + 1 == input.len() => return Err("zone must be a non-empty string".into()),
        Some(i) => (&input[..i], Some(&input[i + 1..])),
        None => (input, None),
    };
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.starts_with(b"::") {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Ok((IpAddr::V6(Ipv6Addr::UNSPECIFIED), zone.is_some()));
        }
    }
    let mut i = 0;
    while i < 16 {
        let (mut off, mut acc) = (0, 0u32);
        while off < s.len() {
            let Some(d) = (s[off] as char).to_digit(16) else { break };
            acc = (acc << 4) + d;
            if off > 3 {
                return Err(at("each group must have 4 or less digits", s));
            }
            if acc > 0xffff {
                return Err(at("IPv6 field has value >=2^16", s));
            }
            off += 1;
        }
        if off == 0 {
            return Err(at("each colon-separated field must have at least one digit", s));
        }
        if s.get(off) == Some(&b'.') {
            if ellipsis.is_none() && i != 12 {
                return Err(at(
                    "embedded IPv4 address must replace the final 2 fields of the address",
                    s,
                ));
            }
            if i + 4 > 16 {
                return Err(at(
                    "too many hex fields to fit an embedded IPv4 at the end of the address",
                    s,
                ));
            }
            let end = input.len() - zone.map_or(0, |z| z.len() + 1);
            let v4 = parse_ipv4(input, end - s.len(), end)?;
            ip[i..i + 4].copy_from_slice(&v4);
            s = &[];
            i += 4;
            break;
        }
        ip[i] = (acc >> 8) as u8;
        ip[i + 1] = acc as u8;
        i += 2;
        s = &s[off..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' {
            return Err(at("unexpected character, want colon", s));
        } else if s.len() == 1 {
            return Err(at("colon must be followed by more characters", s));
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return Err(at("multiple :: in address", s));
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return Err(at("trailing garbage after address", s));
    }
    match ellipsis {
        _ if i == 16 && ellipsis.is_some() => return Err(at("the :: must expand to at least one field of zeros", s)),
        None if i < 16 => return Err("address string too short".into()),
        Some(e) if i < 16 => {
            let n = 16 - i;
            ip.copy_within(e..i, e + n);
            ip[e..e + n].fill(0);
        }
        _ => {}
    }
    Ok((IpAddr::V6(Ipv6Addr::from(ip)), zone.is_some()))
}

/// Bytes `at..at + n` for a v2 field, or the error of Go's read of that field:
/// `EOF` when none came, `unexpected EOF` when some did, or the timeout's text.
fn field<'p>(p: &'p mut Peek, at: usize, n: usize) -> Result<&'p [u8], String> {
    match p.wait(at + n) {
        Wait::Ready => Ok(&p.data()[at..at + n]),
        Wait::Ended if p.data().len() <= at => Err("EOF".into()),
        Wait::Ended => Err("unexpected EOF".into()),
        Wait::TimedOut => Err(crate::util::go_read_error(
            &std::io::ErrorKind::TimedOut.into(),
            p.tcp().local_addr().ok(),
            p.tcp().peer_addr().ok(),
        )),
    }
}

/// parseVersion2: command (LOCAL or PROXY), family (UNSPEC, TCP/UDP over IPv4/IPv6,
/// Unix), a length long enough for the family's addresses and at most 4096, then the
/// addresses and TLVs, waited for as go-proxyproto's reads wait.
fn parse_v2(p: &mut Peek) -> Result<(usize, Header), String> {
    let wrap = |text: &'static str| move |e: String| format!("{}: {}", text, e);
    let command = field(p, 12, 1).map_err(wrap("proxyproto: can't read proxy protocol version and command"))?[0];
    if command != 0x20 && command != 0x21 {
        return Err("proxyproto: unsupported proxy protocol version and command".into());
    }
    let local = command == 0x20;
    let family = field(p, 13, 1).map_err(wrap(CANT_READ_FAMILY))?[0];
    if ![0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32].contains(&family) || (family == 0 && !local) {
        return Err("proxyproto: unsupported address family and protocol".into());
    }
    let length = field(p, 14, 2).map_err(wrap("proxyproto: can't read length"))?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    let addresses = match family >> 4 {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if length < addresses {
        if !local || length > MAX_V2_PAYLOAD {
            return Err(INVALID_LENGTH.into());
        }
        // bufio's Discard: EOF however much came
        field(p, 16, length).map_err(|_| format!("{}: EOF", INVALID_LENGTH))?;
        return Ok((16 + length, Header::Local));
    }
    if length > MAX_V2_PAYLOAD {
        return Err(INVALID_LENGTH.into());
    }
    let client = if addresses > 0 {
        let a = field(p, 16, addresses).map_err(wrap(INVALID_ADDRESS))?;
        match family >> 4 {
            1 => Some(SocketAddr::from((
                Ipv4Addr::new(a[0], a[1], a[2], a[3]),
                u16::from_be_bytes([a[8], a[9]]),
            ))),
            2 => {
                let ip: [u8; 16] = a[..16].try_into().unwrap_or([0; 16]);
                Some(SocketAddr::from((
                    Ipv6Addr::from(ip),
                    u16::from_be_bytes([a[32], a[33]]),
                )))
            }
            _ => None,
        }
    } else {
        None
    };
    // the TLVs: io.ReadFull's error as it is when some came, EOF is a short length
    if length > addresses {
        match field(p, 16 + addresses, length - addresses) {
            Ok(_) => {}
            Err(e) if e == "EOF" => return Err(INVALID_LENGTH.into()),
            Err(e) => return Err(e),
        }
    }
    let header = match client {
        Some(c) if !local => Header::Client(c),
        _ => Header::Local,
    };
    Ok((16 + length, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_are_parsed_like_go_proxyproto() {
        let ok = |line: &str| parse_v1(line.as_bytes()).unwrap();
        let err = |line: &str| parse_v1(line.as_bytes()).unwrap_err();
        assert_eq!(
            ok("PROXY TCP4 192.168.1.100 10.0.0.1 1234 554\r\nOPTIONS"),
            (44, Header::Client("192.168.1.100:1234".parse().unwrap()))
        );
        assert_eq!(
            ok("PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"),
            (35, Header::Client("[::ffff:1.2.3.4]:1".parse().unwrap()))
        );
        assert_eq!(ok("PROXY UNKNOWN whatever\r\n"), (24, Header::Local));
        for (line, text) in [
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", CANT_READ_V1.to_string()),
            (
                &format!("PROXY {}", "x".repeat(110)),
                "proxyproto: version 1 header must be 107 bytes or less".into(),
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                "proxyproto: version 1 header is invalid, must end with \\r\\n".into(),
            ),
            ("PROXYX TCP4\r\n", CANT_READ_V1.into()),
            ("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", CANT_READ_FAMILY.into()),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", CANT_READ_FAMILY.into()),
            ("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", INVALID_ADDRESS.into()),
            ("PROXY TCP4 ::1 1.2.3.4 1 2\r\n", INVALID_ADDRESS.into()),
            ("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", INVALID_ADDRESS.into()),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", INVALID_PORT.into()),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
                r#"proxyproto: invalid port number: strconv.ParseUint: parsing "70000": value out of range"#.into(),
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
                r#"proxyproto: invalid port number: strconv.ParseUint: parsing "-1": invalid syntax"#.into(),
            ),
        ] {
            assert_eq!(err(line), text, "{:?}", line);
        }
        // netip.ParseAddr's messages, quoted with the address
        for (addr, msg) in [
            ("300.1.1.1", "IPv4 field has value >255"),
            ("1.2..3", r#"IPv4 field must have at least one digit (at ".3")"#),
            ("01.2.3.4", "IPv4 field has octet with leading zero"),
            ("host", "unable to parse IP"),
            ("1::2::3", r#"multiple :: in address (at ":3")"#),
            ("1:2", "address string too short"),
        ] {
            let family = if addr.contains(':') {
                "TCP6 {} ::1"
            } else {
                "TCP4 {} 10.0.0.1"
            };
            let line = format!("PROXY {} 1 2\r\n", family.replace("{}", addr));
            let want = format!(r#"{}: ParseAddr("{}"): {}"#, INVALID_ADDRESS, addr, msg);
            assert_eq!(err(&line), want);
        }
    }

    #[test]
    fn ipv6_addresses_are_parsed_like_netip() {
        let ok = |s: &str| parse_addr(s.as_bytes()).unwrap().0.to_string();
        assert_eq!(ok("::"), "::");
        assert_eq!(ok("1::"), "1::");
        assert_eq!(ok("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
        assert_eq!(ok("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(ok("1::8"), "1::8");
        for (s, msg) in [
            ("12345::", r#"each group must have 4 or less digits (at "12345::")"#),
            ("1:2:3:4:5:6:7:8:9", r#"trailing garbage after address (at "9")"#),
            ("1:2:3:4:5:6:7::8", "the :: must expand to at least one field of zeros"),
            ("1:", r#"colon must be followed by more characters (at ":")"#),
            (
                "1:x",
                r#"each colon-separated field must have at least one digit (at "x")"#,
            ),
            (
                "1:2.3.4.5",
                r#"embedded IPv4 address must replace the final 2 fields of the address (at "2.3.4.5")"#,
            ),
            ("%eth0", "missing IPv6 address"),
            ("::1%", "zone must be a non-empty string"),
        ] {
            assert_eq!(parse_addr(s.as_bytes()).unwrap_err(), msg, "{}", s);
        }
    }
}
