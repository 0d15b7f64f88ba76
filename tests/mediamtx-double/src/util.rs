//! Small helpers: local time formatting (RFC3339Nano like Go), ids, base64, shell splitting.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down local time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tm {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub nanos: u32,
    /// offset east of UTC, seconds
    pub gmtoff: i64,
}

pub fn local_tm(t: SystemTime) -> Tm {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    };
    // SAFETY: localtime_r only writes to the provided tm struct.
    unsafe {
        let tt: libc::time_t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&tt, &mut tm);
        Tm {
            year: tm.tm_year as i64 + 1900,
            month: tm.tm_mon as u32 + 1,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            min: tm.tm_min as u32,
            sec: tm.tm_sec as u32,
            nanos,
            gmtoff: tm.tm_gmtoff as i64,
        }
    }
}

/// Local broken-down time to unix seconds (mktime).
pub fn local_to_unix(year: i64, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> i64 {
    // SAFETY: mktime reads/normalizes the provided struct.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = (year - 1900) as libc::c_int;
        tm.tm_mon = month as libc::c_int - 1;
        tm.tm_mday = day as libc::c_int;
        tm.tm_hour = hour as libc::c_int;
        tm.tm_min = min as libc::c_int;
        tm.tm_sec = sec as libc::c_int;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm) as i64
    }
}

/// Go's time.RFC3339Nano formatting of a local time.
pub fn rfc3339_nano_tm(tm: &Tm) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec
    );
    if tm.nanos != 0 {
        let frac = format!("{:09}", tm.nanos);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if tm.gmtoff == 0 {
        s.push('Z');
    } else {
        let sign = if tm.gmtoff < 0 { '-' } else { '+' };
        let o = tm.gmtoff.abs();
        s.push_str(&format!("{}{:02}:{:02}", sign, o / 3600, (o % 3600) / 60));
    }
    s
}

pub fn rfc3339_nano(t: SystemTime) -> String {
    rfc3339_nano_tm(&local_tm(t))
}

/// Parses an RFC3339 timestamp (with optional fraction) into (unix seconds, nanos).
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    parse_rfc3339_tm(s).map(|(tm, unix)| (unix, tm.nanos))
}

/// Unix seconds of a broken-down time (its own offset).
pub fn tm_to_unix(tm: &Tm) -> i64 {
    days_from_civil(tm.year, tm.month, tm.day) * 86400 + tm.hour as i64 * 3600 + tm.min as i64 * 60 + tm.sec as i64
        - tm.gmtoff
}

/// Broken-down time of an instant at a fixed offset (seconds east of UTC).
pub fn tm_at_offset(unix: i64, nanos: u32, gmtoff: i64) -> Tm {
    let t = unix + gmtoff;
    let days = t.div_euclid(86400);
    let rem = t.rem_euclid(86400);
    // civil_from_days
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    Tm {
        year: y,
        month: m,
        day: d,
        hour: (rem / 3600) as u32,
        min: ((rem % 3600) / 60) as u32,
        sec: (rem % 60) as u32,
        nanos,
        gmtoff,
    }
}

/// Parses an RFC3339 timestamp like Go's time.Parse(time.RFC3339, s): the clock fields and
/// offset as written (Go keeps them), plus the instant in unix seconds.
pub fn parse_rfc3339_tm(s: &str) -> Option<(Tm, i64)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |a: usize, e: usize| -> Option<i64> {
        let t = &s[a..e];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d, h, mi, se) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st || i - st > 9 {
            return None;
        }
        let frac = &s[st..i];
        nanos = format!("{:0<9}", frac).parse().ok()?;
    }
    let off: i64 = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let hh: i64 = rest[1..3].parse().ok()?;
            let mm: i64 = rest[4..6].parse().ok()?;
            let v = hh * 3600 + mm * 60;
            if rest.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let tm = Tm {
        year: y,
        month: mo as u32,
        day: d as u32,
        hour: h as u32,
        min: mi as u32,
        sec: se as u32,
        nanos,
        gmtoff: off,
    };
    Some((tm, tm_to_unix(&tm)))
}

pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// A random 32-bit number (an SSRC).
pub fn random_u32() -> u32 {
    let b = random_bytes(4);
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut v);
    } else {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (i, b) in v.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ i as u8;
        }
    }
    v
}

pub fn uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{:02x}", x)).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// google/uuid's Parse (its forms and error texts), returned in canonical lower case.
pub fn parse_uuid(s: &str) -> Result<String, String> {
    let raw = s.as_bytes();
    let b = match raw.len() {
        36 => raw,
        45 => {
            if !raw[..9].eq_ignore_ascii_case(b"urn:uuid:") {
                return Err(format!("invalid urn prefix: {:?}", String::from_utf8_lossy(&raw[..9])));
            }
            &raw[9..]
        }
        38 => &raw[1..37],
        32 => {
            if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err("invalid UUID format".into());
            }
            let l = s.to_ascii_lowercase();
            return Ok(format!(
                "{}-{}-{}-{}-{}",
                &l[..8],
                &l[8..12],
                &l[12..16],
                &l[16..20],
                &l[20..]
            ));
        }
        n => return Err(format!("invalid UUID length: {}", n)),
    };
    let dashes = [8, 13, 18, 23];
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if dashes.contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if !ok {
        return Err("invalid UUID format".into());
    }
    Ok(String::from_utf8_lossy(b).to_ascii_lowercase())
}

pub fn hex_id(n: usize) -> String {
    random_bytes(n).iter().map(|x| format!("{:02x}", x)).collect()
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Shell-style splitting (like go-shellquote): quotes and backslashes, no expansion.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(n) => cur.push(n),
                    None => return Err("Unterminated backslash-escape".into()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("Unterminated single-quoted string".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("Unterminated double-quoted string".into()),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("Unterminated double-quoted string".into()),
                    }
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Waits until `l` has a connection to accept, or `max` passed (the caller's loop re-checks
/// shutdown and modes). Accept loops poll their non-blocking listener with this instead of
/// sleeping, so a connection is taken at once, as MediaMTX does.
pub fn wait_acceptable(l: &std::net::TcpListener, max: std::time::Duration) {
    use std::os::unix::io::AsRawFd;
    let mut fd = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut fd, 1, max.as_millis().min(i32::MAX as u128) as i32);
    }
}

/// An OS error as Go prints it: `connection refused`, `no such file or directory`, a
/// deadline as `i/o timeout`; a message of the double's own (no errno) as it is.
pub fn go_os_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    if matches!(e.kind(), TimedOut | WouldBlock) {
        return "i/o timeout".into();
    }
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or("");
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// An os.PathError's text: `OP PATH: ERR` (`open /r/s.mp4: permission denied`).
pub fn go_path_error(op: &str, path: impl std::fmt::Display, e: &std::io::Error) -> String {
    format!("{} {}: {}", op, path, go_os_error(e))
}

/// A failed read of a server connection as Go's net package reports it
/// (`read tcp 127.0.0.1:8554->127.0.0.1:40000: i/o timeout`, `...: read: connection
/// reset by peer`); an end inside a message is `unexpected EOF`; errors the double
/// raises itself (a refused request) keep their text.
pub fn go_read_error(e: &std::io::Error, local: Option<SocketAddr>, remote: Option<SocketAddr>) -> String {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, TimedOut, UnexpectedEof, WouldBlock};
    let ends = || match (local, remote) {
        (Some(l), Some(r)) => format!("read tcp {}->{}", l, r),
        _ => "read tcp".into(),
    };
    match e.kind() {
        TimedOut | WouldBlock => format!("{}: i/o timeout", ends()),
        ConnectionReset | ConnectionAborted => format!("{}: read: {}", ends(), go_os_error(e)),
        UnexpectedEof => "unexpected EOF".into(),
        _ if e.raw_os_error().is_some() => format!("{}: read: {}", ends(), go_os_error(e)),
        _ => e.to_string(),
    }
}

/// strconv.Quote of bytes: `"`-quoted, each character as `go_escape` writes it, `\xNN`
/// for a byte that is not UTF-8.
pub fn go_quote(b: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = b;
    while !rest.is_empty() {
        // the valid UTF-8 run, then one invalid byte (std's utf8_chunks needs Rust 1.79)
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(v) => (v, None),
            Err(e) => (
                std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or(""),
                Some(rest[e.valid_up_to()]),
            ),
        };
        rest = &rest[valid.len() + usize::from(invalid.is_some())..];
        for c in valid.chars() {
            go_escape(c, '"', &mut out);
        }
        if let Some(byte) = invalid {
            out.push_str(&format!("\\x{:02x}", byte));
        }
    }
    out.push('"');
    out
}

/// strconv's appendEscapedRune for a character inside `quote`s: the quote and the
/// backslash escaped, C0 controls and DEL as `\a`... or `\xNN`, the Latin-1 characters
/// strconv.IsPrint refuses (C1 controls, no-break space, soft hyphen) as `\u00NN`.
pub fn go_escape(c: char, quote: char, out: &mut String) {
    match c {
        c if c == quote || c == '\\' => {
            out.push('\\');
            out.push(c);
        }
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (0x80..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
}

/// Where Go's url.unescape refuses `s`: the first `%` not followed by two hex digits.
pub fn first_bad_escape(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    b.iter().enumerate().position(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Binds a socket to 127.0.0.1:`port` (for sockets std cannot make: options set before
/// binding, or bound again after losing their port).
pub fn bind_loopback(fd: std::os::fd::RawFd, port: u16) -> std::io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the caller's socket and an IPv4 address of the size given.
    let rc = unsafe {
        libc::bind(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let tm = Tm {
            year: 2024,
            month: 5,
            day: 1,
            hour: 10,
            min: 0,
            sec: 3,
            nanos: 123456000,
            gmtoff: 0,
        };
        assert_eq!(rfc3339_nano_tm(&tm), "2024-05-01T10:00:03.123456Z");
        let tm2 = Tm {
            nanos: 0,
            gmtoff: 7200,
            ..tm
        };
        assert_eq!(rfc3339_nano_tm(&tm2), "2024-05-01T10:00:03+02:00");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some((1, 500_000_000)));
        assert_eq!(parse_rfc3339("1970-01-01T02:00:00+02:00"), Some((0, 0)));
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn split() {
        assert_eq!(
            shell_split("a 'b c' \"d e\" f\\ g").unwrap(),
            vec!["a", "b c", "d e", "f g"]
        );
        assert!(shell_split("a 'b").is_err());
    }

    #[test]
    fn b64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    }

    #[test]
    fn read_errors_read_as_go_prints_them() {
        use std::io::{Error, ErrorKind};
        let (l, r) = ("127.0.0.1:8554".parse().ok(), "127.0.0.1:40000".parse().ok());
        let timeout = Error::from(ErrorKind::WouldBlock);
        assert_eq!(
            go_read_error(&timeout, l, r),
            "read tcp 127.0.0.1:8554->127.0.0.1:40000: i/o timeout"
        );
        let reset = Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(
            go_read_error(&reset, l, r),
            "read tcp 127.0.0.1:8554->127.0.0.1:40000: read: connection reset by peer"
        );
        assert_eq!(
            go_read_error(&Error::from(ErrorKind::UnexpectedEof), l, r),
            "unexpected EOF"
        );
        let own = Error::new(ErrorKind::InvalidData, "line too long");
        assert_eq!(go_read_error(&own, l, r), "line too long");
        assert_eq!(
            go_os_error(&Error::from_raw_os_error(libc::ENOENT)),
            "no such file or directory"
        );
    }
}
