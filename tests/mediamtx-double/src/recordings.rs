//! Recording segments on disk: recordPath encoding/decoding like MediaMTX's recordstore.

use crate::util::{local_to_unix, rfc3339_nano_tm, Tm};
use std::path::{Path, PathBuf};

/// Encodes a segment path (format already has the extension) for a start time.
pub fn encode(format: &str, path_name: &str, tm: &Tm, micros: u32) -> String {
    let unix = local_to_unix(tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec);
    format
        .replace("%path", path_name)
        .replace("%Y", &format!("{:04}", tm.year))
        .replace("%m", &format!("{:02}", tm.month))
        .replace("%d", &format!("{:02}", tm.day))
        .replace("%H", &format!("{:02}", tm.hour))
        .replace("%M", &format!("{:02}", tm.min))
        .replace("%S", &format!("{:02}", tm.sec))
        .replace("%f", &format!("{:06}", micros))
        .replace("%s", &unix.to_string())
}

pub fn ext_for(format: &str) -> &'static str {
    if format == "mpegts" {
        ".ts"
    } else {
        ".mp4"
    }
}

/// Directory prefix of a record path before its first variable part.
pub fn common_path(format: &str) -> String {
    let cut = format.find('%').unwrap_or(format.len());
    let head = &format[..cut];
    match head.rfind('/') {
        Some(i) => head[..i].to_string(),
        None => String::new(),
    }
}

#[derive(Default, Clone, Debug)]
struct Parsed {
    path: Option<String>,
    y: Option<i64>,
    mo: Option<u32>,
    d: Option<u32>,
    h: Option<u32>,
    mi: Option<u32>,
    s: Option<u32>,
    f: Option<u32>,
    unix: Option<i64>,
}

fn digits(s: &[u8], n: usize) -> Option<u64> {
    if s.len() < n || !s[..n].iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(&s[..n]).ok()?.parse().ok()
}

fn m(fmt: &[u8], s: &[u8], acc: &Parsed) -> Option<Parsed> {
    if fmt.is_empty() {
        return if s.is_empty() { Some(acc.clone()) } else { None };
    }
    if fmt.starts_with(b"%path") {
        for k in 1..=s.len() {
            let cand = std::str::from_utf8(&s[..k]).ok()?;
            let mut a = acc.clone();
            if let Some(prev) = &a.path {
                if prev != cand {
                    continue;
                }
            }
            a.path = Some(cand.to_string());
            if let Some(r) = m(&fmt[5..], &s[k..], &a) {
                return Some(r);
            }
        }
        return None;
    }
    if fmt[0] == b'%' && fmt.len() >= 2 {
        let mut a = acc.clone();
        let (n, rest) = match fmt[1] {
            b'Y' => {
                a.y = Some(digits(s, 4)? as i64);
                (4, &fmt[2..])
            }
            b'm' => {
                a.mo = Some(digits(s, 2)? as u32);
                (2, &fmt[2..])
            }
            b'd' => {
                a.d = Some(digits(s, 2)? as u32);
                (2, &fmt[2..])
            }
            b'H' => {
                a.h = Some(digits(s, 2)? as u32);
                (2, &fmt[2..])
            }
            b'M' => {
                a.mi = Some(digits(s, 2)? as u32);
                (2, &fmt[2..])
            }
            b'S' => {
                a.s = Some(digits(s, 2)? as u32);
                (2, &fmt[2..])
            }
            b'f' => {
                a.f = Some(digits(s, 6)? as u32);
                (6, &fmt[2..])
            }
            b's' => {
                let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                // greedy then backtrack
                for k in (1..=n).rev() {
                    let mut b = a.clone();
                    b.unix = Some(std::str::from_utf8(&s[..k]).ok()?.parse().ok()?);
                    if let Some(r) = m(&fmt[2..], &s[k..], &b) {
                        return Some(r);
                    }
                }
                return None;
            }
            _ => {
                if s.first() == Some(&b'%') {
                    return m(&fmt[1..], &s[1..], acc);
                }
                return None;
            }
        };
        return m(rest, &s[n..], &a);
    }
    if s.first() == Some(&fmt[0]) {
        return m(&fmt[1..], &s[1..], acc);
    }
    None
}

/// Decodes a file path with a record format; returns (path name, start RFC3339Nano, unix nanos).
pub fn decode(format: &str, file: &str) -> Option<(String, String, i128)> {
    let p = m(format.as_bytes(), file.as_bytes(), &Parsed::default())?;
    let micros = p.f.unwrap_or(0);
    let unix = if let Some(u) = p.unix {
        u
    } else {
        local_to_unix(p.y?, p.mo?, p.d?, p.h?, p.mi?, p.s?)
    };
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let mut tm = crate::util::local_tm(t);
    tm.nanos = micros * 1000;
    Some((
        p.path.unwrap_or_default(),
        rfc3339_nano_tm(&tm),
        unix as i128 * 1_000_000_000 + micros as i128 * 1000,
    ))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out, depth + 1),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Resolves a (possibly relative) record path against the working directory.
pub fn absolute(base: &Path, format: &str) -> String {
    if format.starts_with('/') {
        format.to_string()
    } else {
        let f = format.strip_prefix("./").unwrap_or(format);
        format!("{}/{}", base.display(), f)
    }
}

/// Lists segments: (path name, start string, sort key), for a record format whose
/// %path is either kept (any path) or already substituted.
pub fn find(format_abs: &str) -> Vec<(String, String, i128)> {
    let cp = common_path(format_abs);
    let root = if cp.is_empty() {
        PathBuf::from("/")
    } else {
        PathBuf::from(&cp)
    };
    let mut files = Vec::new();
    walk(&root, &mut files, 0);
    let mut out = Vec::new();
    for f in files {
        let fs = f.to_string_lossy();
        if let Some(d) = decode(format_abs, &fs) {
            out.push(d);
        }
    }
    out.sort_by_key(|a| a.2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let fmt = "/rec/%path/cam_%Y-%m-%d_%H-%M-%S-%f.mp4";
        let tm = crate::util::local_tm(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        let p = encode(fmt, "a/b", &tm, 123456);
        let (name, start, _) = decode(fmt, &p).unwrap();
        assert_eq!(name, "a/b");
        assert!(start.contains(".123456"), "{}", start);
        assert_eq!(common_path(fmt), "/rec");
        let (_, s2, _) = decode("/r/%path/%s.ts", "/r/x/1700000000.ts").unwrap();
        assert_eq!(crate::util::parse_rfc3339(&s2).unwrap().0, 1_700_000_000);
        assert!(decode(fmt, "/rec/x/other.mp4").is_none());
    }
}
