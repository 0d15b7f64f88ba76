//! Playback server (MediaMTX internal/playback): `/list` gives the recorded spans of a
//! path (consecutive fMP4 segments merged), `/get` serves a time range of them as fMP4
//! (or MP4). Like MediaMTX: path name checked first, then authentication with the
//! `playback` action, errors as `{"status":"error","error":...}` (400 bad parameters or
//! path, 404 `no recording segments found`, 500 for MPEG-TS recordings on `/list`).

use crate::core::Shared;
use crate::fmp4::{be32, be64, child, children, find_mvhd};
use crate::http::{Request, Response};
use crate::util::Tm;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

const NO_SEGMENTS: &str = "no recording segments found";
/// segmentFMP4CanBeConcatenated (legacy method, the double writes no `mtxi` box)
const CONCAT_TOLERANCE_NS: i128 = 1_000_000_000;
/// recordings are the double's own files; this only bounds a damaged one
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// `/get` builds its answer in memory: a bound on the segment bytes it reads
const MAX_GET_BYTES: usize = 512 << 20;

struct Segment {
    file: PathBuf,
    /// unix nanoseconds
    start: i128,
    /// RFC3339Nano as decoded from the file name
    start_text: String,
}

/// A segment file read into memory, split into its boxes.
struct Parsed {
    bytes: Vec<u8>,
    /// ftyp..moov end
    init_end: usize,
    moov: (usize, usize),
    /// (moof start, moof end, mdat end)
    parts: Vec<(usize, usize, usize)>,
    /// (track id, timescale, sample entry type) per trak
    tracks: Vec<(u32, u32, [u8; 4])>,
}

pub fn handle(shared: &Arc<Shared>, req: &Request, peer: SocketAddr) -> Response {
    let r = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/list") => list(shared, req, peer),
        ("GET", "/get") => get(shared, req, peer),
        _ => return Response::not_found_text(),
    };
    r.unwrap_or_else(|(code, msg)| {
        // writeError: logged, then sent
        shared.log(&format!("ERR [playback] {}", msg));
        Response::error(code, &msg)
    })
}

/// An error status and text.
type Fail = (u16, String);

/// conf.IsValidPathName on the `path` parameter, checked before authentication.
fn path_param(req: &Request) -> Result<String, Fail> {
    let path = req.query("path").unwrap_or_default();
    crate::conf::check_path_name(&path).map_err(|e| (400, format!("invalid path name: {} ({})", e, path)))?;
    Ok(path)
}

fn auth(shared: &Shared, req: &Request, peer: SocketAddr, path: &str) -> Option<Response> {
    crate::servers::check_auth(shared, req, peer, "playback", path)
}

/// time.Parse(time.RFC3339, s) → (unix nanos, tm as written).
fn parse_time(s: &str, what: &str) -> Result<(i128, Tm), Fail> {
    crate::util::parse_rfc3339_tm(s)
        .map(|(tm, unix)| (unix as i128 * 1_000_000_000 + tm.nanos as i128, tm))
        .ok_or_else(|| {
            (
                400,
                format!(
                    "invalid {}: parsing time \"{}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{}\" as \"2006\"",
                    what, s, s
                ),
            )
        })
}

/// The configuration's record format with `%path` and extension, and the format's name.
fn record_format(shared: &Shared, path: &str) -> Result<(String, String), Fail> {
    let st = shared.lock();
    let cn = st.find_conf(path).map_err(|e| (400, e))?;
    let eff = st.effective(&cn).unwrap_or_default();
    drop(st);
    let name = eff
        .get("recordFormat")
        .and_then(|v| v.as_str())
        .unwrap_or("fmp4")
        .to_string();
    Ok((crate::api::recording_format(shared, &eff, Some(path)), name))
}

/// recordstore.FindSegments: segments starting before `end`, from the one containing
/// `start` on.
fn find_segments(format: &str, start: Option<i128>, end: Option<i128>) -> Result<Vec<Segment>, Fail> {
    let mut segs: Vec<Segment> = crate::recordings::find_files(format)
        .into_iter()
        .filter(|(_, s)| end.map_or(true, |e| *s <= e))
        .filter_map(|(f, s)| {
            let text = crate::recordings::decode(format, &f.to_string_lossy())?.1;
            Some(Segment {
                file: f,
                start: s,
                start_text: text,
            })
        })
        .collect();
    if segs.is_empty() {
        return Err((404, NO_SEGMENTS.into()));
    }
    segs.sort_by_key(|s| s.start);
    if let Some(start) = start {
        if start < segs[0].start {
            return Ok(segs);
        }
        match (0..segs.len() - 1).find(|&i| start >= segs[i].start && start < segs[i + 1].start) {
            Some(i) => {
                segs.drain(..i);
            }
            None => {
                segs.drain(..segs.len() - 1);
                if segs[0].start > start {
                    return Err((404, NO_SEGMENTS.into()));
                }
            }
        }
    }
    Ok(segs)
}

fn read_segment(file: &PathBuf) -> Result<Parsed, Fail> {
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if len > MAX_SEGMENT_BYTES {
        return Err((400, format!("{}: segment too large", file.display())));
    }
    let bytes = std::fs::read(file).map_err(|e| (400, format!("open {}: {}", file.display(), e)))?;
    let top = children(&bytes, 0, bytes.len());
    if top.first().map(|b| &b.typ) != Some(b"ftyp") {
        return Err((400, "ftyp box not found".into()));
    }
    let Some(moov) = top.get(1).filter(|b| &b.typ == b"moov") else {
        return Err((400, "moov box not found".into()));
    };
    let moov_start = moov.body - 8;
    let mut parts = Vec::new();
    for w in top[2..].windows(2) {
        if &w[0].typ == b"moof" && &w[1].typ == b"mdat" {
            parts.push((w[0].body - 8, w[0].end, w[1].end));
        }
    }
    let tracks = track_list(&bytes[moov_start..moov.end]);
    Ok(Parsed {
        init_end: moov.end,
        moov: (moov_start, moov.end),
        parts,
        tracks,
        bytes,
    })
}

/// (track id, timescale, sample entry type) of every trak of a moov box.
fn track_list(moov: &[u8]) -> Vec<(u32, u32, [u8; 4])> {
    let tracks = crate::fmp4::parse_moov(moov);
    let top = children(moov, 0, moov.len());
    let Some(m) = child(&top, b"moov") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for trak in children(moov, m.body, m.end).iter().filter(|b| &b.typ == b"trak") {
        let tk = children(moov, trak.body, trak.end);
        let Some(id) =
            child(&tk, b"tkhd").and_then(|h| be32(moov, h.body + if moov.get(h.body) == Some(&1) { 20 } else { 12 }))
        else {
            continue;
        };
        let entry = (|| {
            let md = child(&tk, b"mdia")?;
            let mk = children(moov, md.body, md.end);
            let mi = child(&mk, b"minf")?;
            let ik = children(moov, mi.body, mi.end);
            let sb = child(&ik, b"stbl")?;
            let sk = children(moov, sb.body, sb.end);
            let sd = child(&sk, b"stsd")?;
            let mut t = [0u8; 4];
            t.copy_from_slice(moov.get(sd.body + 12..sd.body + 16)?);
            Some(t)
        })()
        .unwrap_or_default();
        out.push((id, tracks.timescale.get(&id).copied().unwrap_or(1), entry));
    }
    out
}

impl Parsed {
    fn timescales(&self) -> crate::fmp4::Tracks {
        crate::fmp4::parse_moov(&self.bytes[self.moov.0..self.moov.1])
    }

    /// Duration from the mvhd, else from the last part (segmentFMP4ReadDurationFromParts).
    fn duration_ns(&self) -> i128 {
        let moov = &self.bytes[self.moov.0..self.moov.1];
        if let Some((off, v1, ts)) = find_mvhd(moov) {
            let d = if v1 {
                be64(moov, off)
            } else {
                be32(moov, off).map(u64::from)
            }
            .unwrap_or(0);
            if d > 0 {
                return d as i128 * 1_000_000_000 / ts.max(1) as i128;
            }
        }
        let tracks = self.timescales();
        self.parts
            .last()
            .map(|p| {
                let (start, dur) = self.part_times(p, &tracks);
                start + dur
            })
            .unwrap_or(0)
    }

    /// (start, duration) of a part in ns from its segment's start (first track listed).
    fn part_times(&self, p: &(usize, usize, usize), tracks: &crate::fmp4::Tracks) -> (i128, i128) {
        let f = crate::fmp4::parse_moof(&self.bytes[p.0..p.1], tracks);
        let Some(&(id, dts, _, _)) = f.trafs.first() else {
            return (0, 0);
        };
        let ts = tracks.timescale.get(&id).copied().unwrap_or(1).max(1) as i128;
        (
            dts as i128 * 1_000_000_000 / ts,
            f.duration as i128 * 1_000_000_000 / ts,
        )
    }
}

fn concatenable(prev: &Parsed, prev_end: i128, cur: &Parsed, cur_start: i128) -> bool {
    prev.tracks == cur.tracks && (cur_start - prev_end).abs() <= CONCAT_TOLERANCE_NS
}

/// A float as encoding/json writes it (no `.0` for whole numbers).
fn go_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn list(shared: &Arc<Shared>, req: &Request, peer: SocketAddr) -> Result<Response, Fail> {
    let path = path_param(req)?;
    if let Some(r) = auth(shared, req, peer, &path) {
        return Ok(r);
    }
    let (format, format_name) = record_format(shared, &path)?;
    let start = match req.query("start").filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_time(&s, "start")?),
        None => None,
    };
    let end = match req.query("end").filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_time(&s, "end")?),
        None => None,
    };
    let segs = find_segments(&format, start.as_ref().map(|s| s.0), end.as_ref().map(|e| e.0))?;
    if format_name != "fmp4" {
        return Err((500, "MPEG-TS format is not supported yet".into()));
    }
    // (start ns, start text, duration ns)
    let mut entries: Vec<(i128, String, i128)> = Vec::new();
    let mut prev: Option<Parsed> = None;
    for s in &segs {
        let p = read_segment(&s.file).map_err(|(_, e)| (500, e))?;
        let d = p.duration_ns();
        let merge = match (entries.last(), &prev) {
            (Some(last), Some(pp)) => concatenable(pp, last.0 + last.2, &p, s.start),
            _ => false,
        };
        if merge {
            let last = entries.last_mut().unwrap();
            last.2 = s.start + d - last.0;
        } else {
            entries.push((s.start, s.start_text.clone(), d));
        }
        prev = Some(p);
    }
    if let Some((st, tm)) = &start {
        let first = &entries[0];
        if first.0 + first.2 < *st {
            entries.remove(0);
            if entries.is_empty() {
                return Err((404, NO_SEGMENTS.into()));
            }
        } else if first.0 < *st {
            entries[0].2 -= st - first.0;
            entries[0].0 = *st;
            entries[0].1 = crate::util::rfc3339_nano_tm(tm);
        }
    }
    if let Some((en, _)) = &end {
        let last = entries.last_mut().unwrap();
        if last.0 + last.2 > *en {
            last.2 = en - last.0;
        }
    }
    let scheme = url_scheme(shared, req, peer);
    let host = req.header("Host").unwrap_or("").to_string();
    let items: Vec<Value> = entries
        .iter()
        .map(|(_, text, d)| {
            let secs = *d as f64 / 1e9;
            let q = format!(
                "duration={}&path={}&start={}",
                crate::hooks::query_escape(&secs.to_string()),
                crate::hooks::query_escape(&path),
                crate::hooks::query_escape(text)
            );
            json!({"start": text, "duration": go_number(secs), "url": format!("{}://{}/get?{}", scheme, host, q)})
        })
        .collect();
    Ok(Response::json(200, &Value::Array(items)))
}

/// urlScheme: X-Forwarded-Proto from a trusted proxy, else https with
/// `playbackEncryption` (the server restarts when it changes), else http.
fn url_scheme(shared: &Shared, req: &Request, peer: SocketAddr) -> String {
    let (proxies, encryption) = {
        let st = shared.lock();
        let proxies: Vec<String> = st
            .global
            .get("playbackTrustedProxies")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        (
            proxies,
            st.global.get("playbackEncryption").and_then(|v| v.as_bool()) == Some(true),
        )
    };
    match req.header("X-Forwarded-Proto") {
        Some(p) if !p.is_empty() && crate::servers::ip_trusted(peer.ip(), &proxies) => p.to_string(),
        _ if encryption => "https".into(),
        _ => "http".into(),
    }
}

/// parseDuration: seconds as a float, or (deprecated) a Go duration.
fn parse_duration(s: &str) -> Result<i128, Fail> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() {
            // saturating conversion, like a huge float in Go
            return Ok((secs * 1e9) as i128);
        }
    }
    crate::conf::go_parse_duration(s).map_err(|e| (400, format!("invalid duration: {}", e)))
}

fn get(shared: &Arc<Shared>, req: &Request, peer: SocketAddr) -> Result<Response, Fail> {
    let path = path_param(req)?;
    if let Some(r) = auth(shared, req, peer, &path) {
        return Ok(r);
    }
    let (start, _) = parse_time(&req.query("start").unwrap_or_default(), "start")?;
    let duration = parse_duration(&req.query("duration").unwrap_or_default())?;
    let format = req.query("format").unwrap_or_default();
    if !matches!(format.as_str(), "" | "fmp4" | "mp4") {
        return Err((400, format!("invalid format: {}", format)));
    }
    let (rec_format, format_name) = record_format(shared, &path)?;
    let segs = find_segments(&rec_format, Some(start), Some(start.saturating_add(duration)))?;
    if format_name != "fmp4" {
        return Err((400, "MPEG-TS format is not supported yet".into()));
    }
    let mut body = mux_fmp4(&segs, start, duration)?;
    if format == "mp4" {
        body = remux_mp4(shared, &body)?;
    }
    Ok(Response {
        code: 200,
        content_type: "video/mp4",
        body,
        headers: vec![("Accept-Ranges", "none".into())],
    })
}

/// seekAndMux: the first segment's init (mvhd duration cleared), then the samples of
/// the concatenable segments from `start` for `duration` (see playback_mux.rs).
fn mux_fmp4(segs: &[Segment], start: i128, duration: i128) -> Result<Vec<u8>, Fail> {
    let mut muxer: Option<crate::playback_mux::Muxer> = None;
    let mut prev: Option<Parsed> = None;
    let mut seg_end = 0;
    let mut loaded = 0;
    for s in segs {
        let p = read_segment(&s.file)?;
        loaded += p.bytes.len();
        if loaded > MAX_GET_BYTES {
            return Err((400, "requested range too large for mediamtx-double".into()));
        }
        if let Some(pp) = &prev {
            if !concatenable(pp, seg_end, &p, s.start) {
                break;
            }
        }
        let m = muxer.get_or_insert_with(|| {
            let mut init = p.bytes[..p.init_end].to_vec();
            let moov = &mut init[p.moov.0..p.moov.1];
            if let Some((off, v1, _)) = find_mvhd(moov) {
                moov[off..off + if v1 { 8 } else { 4 }].fill(0);
            }
            let tracks: Vec<(u32, u32)> = p.tracks.iter().map(|t| (t.0, t.1)).collect();
            crate::playback_mux::Muxer::new(init, &tracks)
        });
        m.segment(&p.bytes, &p.parts, &p.timescales(), s.start - start, duration);
        seg_end = s.start + p.duration_ns();
        prev = Some(p);
    }
    muxer.and_then(|m| m.finish()).ok_or_else(|| (404, NO_SEGMENTS.into()))
}

/// format=mp4 (muxerMP4): the fMP4 remuxed into a plain MP4 by an ffmpeg child
/// (MP4 needs a seekable output: temporary files in the working directory).
fn remux_mp4(shared: &Shared, fmp4: &[u8]) -> Result<Vec<u8>, Fail> {
    let id = shared.id();
    let input = shared.dir.join(format!("playback-{}.in.mp4", id));
    let output = shared.dir.join(format!("playback-{}.out.mp4", id));
    let fail = |e: String| (400, e);
    std::fs::write(&input, fmp4).map_err(|e| fail(e.to_string()))?;
    let status = std::process::Command::new(&shared.ffmpeg)
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(&input)
        .args(["-c", "copy", "-f", "mp4"])
        .arg(&output)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let body = std::fs::read(&output);
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    match (status, body) {
        (Ok(s), Ok(b)) if s.success() => Ok(b),
        _ => Err(fail("cannot mux MP4".into())),
    }
}
