//! Recording segments on disk: recordPath encoding/decoding like MediaMTX's recordstore.

use crate::util::{local_to_unix, rfc3339_nano_tm, tm_to_unix, Tm};
use std::path::{Path, PathBuf};

/// `%z` like recordstore's timeLocationEncode: `Z` or `+hhmm`/`-hhmm`.
/// Creates a segment file as MediaMTX's recorder does (os.MkdirAll of its directory,
/// then os.Create), failing with Go's texts (`mkdir /r/cam: permission denied`,
/// `open /r/cam/s.mp4: no space left on device`).
pub fn create_segment(path: &str) -> Result<std::fs::File, String> {
    if let Some(dir) = Path::new(path).parent() {
        mkdir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| crate::util::go_path_error("open", path, &e))
}

/// os.MkdirAll: the missing directories from the top down, the first that cannot be
/// made named in the error.
fn mkdir_all(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(format!("mkdir {}: not a directory", dir.display()));
    }
    if let Some(parent) = dir.parent() {
        mkdir_all(parent)?;
    }
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Err(_) if dir.is_dir() => Ok(()),
        r => r.map_err(|e| crate::util::go_path_error("mkdir", dir.display(), &e)),
    }
}

pub fn zone_encode(gmtoff: i64) -> String {
    if gmtoff == 0 {
        return "Z".into();
    }
    let sign = if gmtoff > 0 { '+' } else { '-' };
    let o = gmtoff.abs();
    format!("{}{:02}{:02}", sign, o / 3600, (o / 60) % 60)
}

/// Encodes a segment path (format already has the extension) like recordstore's
/// Path.Encode: clock fields and `%z` of `tm` as they are (no conversion to local
/// time), `%f` = microseconds (truncated), `%s` = the instant.
pub fn encode(format: &str, path_name: &str, tm: &Tm) -> String {
    let unix = tm_to_unix(tm);
    let micros = tm.nanos / 1000;
    format
        .replace("%path", path_name)
        .replace("%Y", &format!("{:04}", tm.year))
        .replace("%m", &format!("{:02}", tm.month))
        .replace("%d", &format!("{:02}", tm.day))
        .replace("%H", &format!("{:02}", tm.hour))
        .replace("%M", &format!("{:02}", tm.min))
        .replace("%S", &format!("{:02}", tm.sec))
        .replace("%f", &format!("{:06}", micros))
        .replace("%z", &zone_encode(tm.gmtoff))
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
    z: Option<i64>,
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
            c @ (b'Y' | b'm' | b'd' | b'H' | b'M' | b'S' | b'f') => {
                let n = match c {
                    b'Y' => 4,
                    b'f' => 6,
                    _ => 2,
                };
                let v = digits(s, n)?;
                match c {
                    b'Y' => a.y = Some(v as i64),
                    b'm' => a.mo = Some(v as u32),
                    b'd' => a.d = Some(v as u32),
                    b'H' => a.h = Some(v as u32),
                    b'M' => a.mi = Some(v as u32),
                    b'S' => a.s = Some(v as u32),
                    _ => a.f = Some(v as u32),
                }
                (n, &fmt[2..])
            }
            b'z' => {
                // Z | +hhmm | -hhmm
                if s.first() == Some(&b'Z') {
                    a.z = Some(0);
                    (1, &fmt[2..])
                } else {
                    let sign = match s.first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return None,
                    };
                    let v = digits(&s[1..], 4)? as i64;
                    a.z = Some(sign * ((v / 100) * 3600 + (v % 100) * 60));
                    (5, &fmt[2..])
                }
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

/// Decodes a file path with a record format; returns (path name, start RFC3339Nano, unix
/// nanos). Like recordstore's Path.Decode: `%s` gives the instant, otherwise the clock
/// fields are read in the zone of `%z` if present, else in local time; the start is shown
/// in that zone.
pub fn decode(format: &str, file: &str) -> Option<(String, String, i128)> {
    let p = m(format.as_bytes(), file.as_bytes(), &Parsed::default())?;
    let micros = p.f.unwrap_or(0);
    let nanos = micros * 1000;
    let (tm, unix) = if let Some(u) = p.unix.filter(|u| *u > 0) {
        let local = crate::util::local_tm(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u.max(0) as u64));
        (crate::util::tm_at_offset(u, nanos, local.gmtoff), u)
    } else if let Some(off) = p.z {
        let tm = Tm {
            year: p.y.unwrap_or(0),
            month: p.mo.unwrap_or(1),
            day: p.d.unwrap_or(1),
            hour: p.h.unwrap_or(0),
            min: p.mi.unwrap_or(0),
            sec: p.s.unwrap_or(0),
            nanos,
            gmtoff: off,
        };
        (tm, tm_to_unix(&tm))
    } else {
        let u = local_to_unix(
            p.y.unwrap_or(0),
            p.mo.unwrap_or(1),
            p.d.unwrap_or(1),
            p.h.unwrap_or(0),
            p.mi.unwrap_or(0),
            p.s.unwrap_or(0),
        );
        let mut tm = crate::util::local_tm(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u.max(0) as u64));
        tm.nanos = nanos;
        (tm, u)
    };
    Some((
        p.path.unwrap_or_default(),
        rfc3339_nano_tm(&tm),
        unix as i128 * 1_000_000_000 + nanos as i128,
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

/// absolutePathInside: whether `candidate`, lexically cleaned, is under `base` (string prefix).
pub fn inside(base: &str, candidate: &str) -> bool {
    fn clean(p: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        for seg in p.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        format!("/{}", out.join("/"))
    }
    clean(candidate).starts_with(&clean(base))
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

/// Every file below the fixed leading directories of a record format.
fn candidates(format_abs: &str) -> Vec<PathBuf> {
    let cp = common_path(format_abs);
    let root = PathBuf::from(if cp.is_empty() { "/" } else { &cp });
    let mut files = Vec::new();
    walk(&root, &mut files, 0);
    files
}

/// Segment files with their sort key (unix nanos), for a record format as in `find`.
pub fn find_files(format_abs: &str) -> Vec<(PathBuf, i128)> {
    candidates(format_abs)
        .into_iter()
        .filter_map(|f| {
            let k = decode(format_abs, &f.to_string_lossy())?.2;
            Some((f, k))
        })
        .collect()
}

/// Lists segments: (path name, start string, sort key), for a record format whose
/// %path is either kept (any path) or already substituted.
pub fn find(format_abs: &str) -> Vec<(String, String, i128)> {
    let mut out = Vec::new();
    for f in candidates(format_abs) {
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
        let mut tm = crate::util::local_tm(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        tm.nanos = 123_456_789;
        let p = encode(fmt, "a/b", &tm);
        let (name, start, _) = decode(fmt, &p).unwrap();
        assert_eq!(name, "a/b");
        assert!(start.contains(".123456"), "{}", start);
        assert_eq!(common_path(fmt), "/rec");
        let (_, s2, _) = decode("/r/%path/%s.ts", "/r/x/1700000000.ts").unwrap();
        assert_eq!(crate::util::parse_rfc3339(&s2).unwrap().0, 1_700_000_000);
        assert!(decode(fmt, "/rec/x/other.mp4").is_none());
        // %z: listed with the offset of the name
        let fz = "/r/%path/%Y-%m-%d_%H-%M-%S-%f%z.mp4";
        let (_, s3, _) = decode(fz, "/r/x/2008-11-07_11-22-00-500000+0230.mp4").unwrap();
        assert_eq!(s3, "2008-11-07T11:22:00.5+02:30");
        let (_, s4, _) = decode(fz, "/r/x/2008-11-07_11-22-00-000000Z.mp4").unwrap();
        assert_eq!(s4, "2008-11-07T11:22:00Z");
        let (tm5, _) = crate::util::parse_rfc3339_tm("2008-11-07T11:22:00.5-01:00").unwrap();
        assert_eq!(encode(fz, "x", &tm5), "/r/x/2008-11-07_11-22-00-500000-0100.mp4");
    }
}
