//! Container header readers: duration, codec and size of recordings (MP4 / fragmented MP4 /
//! MPEG-TS) and size of snapshots (JPEG / PNG), without spawning a process per file.
//!
//! These read box/packet headers only; no codec is decoded (the one exception is the H.264
//! SPS of MPEG-TS recordings, read for the picture size). Every length read from the file is
//! bounds-checked; a malformed or truncated file yields `None` fields, never a panic.

use std::io::{Read, Seek, SeekFrom};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaInfo {
    /// `fmp4` (fragmented MP4), `mp4` (classic MP4) or `mpegts`.
    pub format: &'static str,
    /// Seconds.
    pub duration: Option<f64>,
    /// FFmpeg's codec name (`h264`, `hevc`, ...).
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Largest `moov`/`moof` read into memory; bigger ones are skipped.
const MAX_BOX_IN_MEMORY: u64 = 32 * 1024 * 1024;
/// MPEG-TS bytes scanned at each end of the file.
const TS_SCAN_BYTES: u64 = 4 * 1024 * 1024;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Child boxes of an in-memory box body: `(type, body)`.
fn children(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = be32(b, 0)? as u64;
        let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            0 => (8, b.len() as u64),
            1 => (16, be64(b, 8)?),
            s => (8, s),
        };
        if size < header as u64 || size > b.len() as u64 {
            return None;
        }
        let body = &b[header..size as usize];
        b = &b[size as usize..];
        Some((kind, body))
    })
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b).find(|(k, _)| k == kind).map(|(_, body)| body)
}

#[derive(Default, Debug)]
struct Track {
    id: u32,
    timescale: u32,
    media_duration: u64,
    video: bool,
    codec: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    trex_default_duration: u32,
    // fragments
    frag_start: Option<u64>,
    frag_end: u64,
    frag_sum: u64,
}

fn codec_name(fourcc: &[u8]) -> String {
    match fourcc {
        b"avc1" | b"avc3" => "h264".into(),
        b"hvc1" | b"hev1" => "hevc".into(),
        b"av01" => "av1".into(),
        b"vp09" => "vp9".into(),
        b"vp08" => "vp8".into(),
        b"mp4v" => "mpeg4".into(),
        b"jpeg" | b"mjpa" => "mjpeg".into(),
        b"mp4a" => "aac".into(),
        b"Opus" => "opus".into(),
        other => String::from_utf8_lossy(other).trim().to_string(),
    }
}

fn parse_trak(trak: &[u8]) -> Option<Track> {
    let mut t = Track::default();
    if let Some(tkhd) = child(trak, b"tkhd") {
        let v1 = tkhd.first() == Some(&1);
        t.id = be32(tkhd, if v1 { 20 } else { 12 }).unwrap_or(0);
        let wh = if v1 { 88 } else { 76 };
        let (w, h) = (be32(tkhd, wh).unwrap_or(0) >> 16, be32(tkhd, wh + 4).unwrap_or(0) >> 16);
        if w > 0 && h > 0 {
            t.width = Some(w);
            t.height = Some(h);
        }
    }
    let mdia = child(trak, b"mdia")?;
    if let Some(mdhd) = child(mdia, b"mdhd") {
        if mdhd.first() == Some(&1) {
            t.timescale = be32(mdhd, 20).unwrap_or(0);
            t.media_duration = be64(mdhd, 24).unwrap_or(0);
        } else {
            t.timescale = be32(mdhd, 12).unwrap_or(0);
            t.media_duration = be32(mdhd, 16).unwrap_or(0) as u64;
        }
    }
    if let Some(hdlr) = child(mdia, b"hdlr") {
        t.video = hdlr.get(8..12) == Some(b"vide");
    }
    let stsd = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsd")?;
    // full box header (4) + entry_count (4), then the first sample entry box
    if let Some((fourcc, entry)) = stsd.get(8..).and_then(|e| children(e).next()) {
        t.codec = Some(codec_name(&fourcc));
        if t.video {
            // VisualSampleEntry: 6 reserved, 2 data_reference_index, 16 pre_defined/reserved,
            // then width and height.
            if let (Some(w), Some(h)) = (be16(entry, 24), be16(entry, 26)) {
                if w > 0 && h > 0 {
                    t.width = Some(w as u32);
                    t.height = Some(h as u32);
                }
            }
        }
    }
    Some(t)
}

#[derive(Default)]
struct Mp4State {
    movie_timescale: u32,
    movie_duration: u64,
    fragment_duration: Option<u64>,
    fragmented: bool,
    tracks: Vec<Track>,
}

fn parse_moov(moov: &[u8], st: &mut Mp4State) {
    if let Some(mvhd) = child(moov, b"mvhd") {
        if mvhd.first() == Some(&1) {
            st.movie_timescale = be32(mvhd, 20).unwrap_or(0);
            st.movie_duration = be64(mvhd, 24).unwrap_or(0);
        } else {
            st.movie_timescale = be32(mvhd, 12).unwrap_or(0);
            st.movie_duration = be32(mvhd, 16).unwrap_or(0) as u64;
        }
    }
    st.tracks = children(moov)
        .filter(|(k, _)| k == b"trak")
        .filter_map(|(_, b)| parse_trak(b))
        .collect();
    if let Some(mvex) = child(moov, b"mvex") {
        st.fragmented = true;
        if let Some(mehd) = child(mvex, b"mehd") {
            let d = if mehd.first() == Some(&1) {
                be64(mehd, 4)
            } else {
                be32(mehd, 4).map(u64::from)
            };
            st.fragment_duration = d.filter(|d| *d > 0);
        }
        for (_, trex) in children(mvex).filter(|(k, _)| k == b"trex") {
            let (Some(id), Some(dur)) = (be32(trex, 4), be32(trex, 12)) else {
                continue;
            };
            if let Some(t) = st.tracks.iter_mut().find(|t| t.id == id) {
                t.trex_default_duration = dur;
            }
        }
    }
}

/// Sums the sample durations of each `traf` of a `moof`.
fn parse_moof(moof: &[u8], st: &mut Mp4State) {
    st.fragmented = true;
    for (_, traf) in children(moof).filter(|(k, _)| k == b"traf") {
        let Some(tfhd) = child(traf, b"tfhd") else { continue };
        let Some(flags) = be32(tfhd, 0).map(|v| v & 0x00ff_ffff) else {
            continue;
        };
        let Some(id) = be32(tfhd, 4) else { continue };
        let Some(t) = st.tracks.iter_mut().find(|t| t.id == id) else {
            continue;
        };
        let mut at = 8;
        if flags & 0x01 != 0 {
            at += 8; // base_data_offset
        }
        if flags & 0x02 != 0 {
            at += 4; // sample_description_index
        }
        let default_duration = if flags & 0x08 != 0 {
            be32(tfhd, at).unwrap_or(0)
        } else {
            t.trex_default_duration
        };
        let base = child(traf, b"tfdt").and_then(|tfdt| {
            if tfdt.first() == Some(&1) {
                be64(tfdt, 4)
            } else {
                be32(tfdt, 4).map(u64::from)
            }
        });
        let mut sum = 0u64;
        for (_, trun) in children(traf).filter(|(k, _)| k == b"trun") {
            let (Some(flags), Some(count)) = (be32(trun, 0).map(|v| v & 0x00ff_ffff), be32(trun, 4)) else {
                continue;
            };
            let mut at = 8;
            if flags & 0x001 != 0 {
                at += 4;
            }
            if flags & 0x004 != 0 {
                at += 4;
            }
            let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|f| flags & **f != 0).count() * 4;
            if flags & 0x100 == 0 {
                sum += default_duration as u64 * count as u64;
                continue;
            }
            for i in 0..count as usize {
                match be32(trun, at + i * per_sample) {
                    Some(d) => sum += d as u64,
                    None => break, // truncated: count what is there
                }
            }
        }
        t.frag_sum += sum;
        if let Some(b) = base {
            t.frag_start = Some(t.frag_start.map_or(b, |s| s.min(b)));
            t.frag_end = t.frag_end.max(b + sum);
        }
    }
}

/// Reads an MP4 (classic or fragmented) by walking its top-level boxes; `mdat` payloads
/// are skipped with a seek, never read.
pub fn probe_mp4<R: Read + Seek>(r: &mut R, len: u64) -> MediaInfo {
    let mut st = Mp4State::default();
    let mut pos = 0u64;
    let mut header = [0u8; 16];
    while pos + 8 <= len {
        if r.seek(SeekFrom::Start(pos)).is_err() || r.read_exact(&mut header[..8]).is_err() {
            break;
        }
        let kind: [u8; 4] = header[4..8].try_into().expect("4 bytes");
        let (hlen, size) = match be32(&header, 0).unwrap_or(0) {
            0 => (8, len - pos),
            1 => {
                if r.read_exact(&mut header[8..16]).is_err() {
                    break;
                }
                (16, be64(&header, 8).unwrap_or(0))
            }
            s => (8, s as u64),
        };
        if size < hlen || pos + size > len {
            break; // truncated (e.g. being written): use what we have
        }
        if (&kind == b"moov" || &kind == b"moof") && size - hlen <= MAX_BOX_IN_MEMORY {
            let mut body = vec![0u8; (size - hlen) as usize];
            if r.read_exact(&mut body).is_err() {
                break;
            }
            if &kind == b"moov" {
                parse_moov(&body, &mut st);
            } else {
                parse_moof(&body, &mut st);
            }
        }
        pos += size;
    }
    let video = st.tracks.iter().find(|t| t.video).or_else(|| st.tracks.first());
    let mut info = MediaInfo {
        format: if st.fragmented { "fmp4" } else { "mp4" },
        ..MediaInfo::default()
    };
    if let Some(t) = video {
        info.codec = t.codec.clone();
        info.width = t.width;
        info.height = t.height;
    }
    let secs = |v: u64, scale: u32| (scale > 0).then(|| v as f64 / scale as f64);
    info.duration = if st.fragmented {
        // Longest track of the fragments (what ffprobe reports), else mehd.
        let from_frags = st
            .tracks
            .iter()
            .filter_map(|t| {
                let d = match t.frag_start {
                    Some(s) => t.frag_end.saturating_sub(s).max(t.frag_sum),
                    None => t.frag_sum,
                };
                (d > 0).then(|| secs(d, t.timescale)).flatten()
            })
            .fold(None, |a: Option<f64>, d| Some(a.map_or(d, |a| a.max(d))));
        from_frags
            .or_else(|| st.fragment_duration.and_then(|d| secs(d, st.movie_timescale)))
            .or(Some(0.0).filter(|_| !st.tracks.is_empty()))
    } else if st.movie_duration > 0 {
        secs(st.movie_duration, st.movie_timescale)
    } else {
        video.and_then(|t| secs(t.media_duration, t.timescale))
    };
    info
}

// ---------------------------------------------------------------- MPEG-TS

const TS_PACKET: usize = 188;

struct TsScan {
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    stream_type: Option<u8>,
    pts: Vec<u64>,
    sps: Option<Vec<u8>>,
}

fn ts_payload(p: &[u8]) -> Option<(u16, bool, &[u8])> {
    if p.len() != TS_PACKET || p[0] != 0x47 {
        return None;
    }
    let pusi = p[1] & 0x40 != 0;
    let pid = (((p[1] & 0x1f) as u16) << 8) | p[2] as u16;
    let afc = (p[3] >> 4) & 0x3;
    let start = match afc {
        1 => 4,
        3 => 5 + p[4] as usize,
        _ => return Some((pid, pusi, &[])),
    };
    Some((pid, pusi, p.get(start..).unwrap_or(&[])))
}

/// PSI section after the pointer field.
fn psi_section(payload: &[u8]) -> Option<&[u8]> {
    let ptr = *payload.first()? as usize;
    let sec = payload.get(1 + ptr..)?;
    let len = (((*sec.get(1)? & 0x0f) as usize) << 8) | *sec.get(2)? as usize;
    sec.get(..(3 + len).min(sec.len()))
}

fn parse_pes_pts(payload: &[u8]) -> Option<u64> {
    if payload.get(..3)? != [0, 0, 1] {
        return None;
    }
    let flags = *payload.get(7)?;
    if flags & 0x80 == 0 {
        return None;
    }
    let b = payload.get(9..14)?;
    Some(
        (((b[0] >> 1) & 0x07) as u64) << 30
            | (b[1] as u64) << 22
            | ((b[2] >> 1) as u64) << 15
            | (b[3] as u64) << 7
            | (b[4] >> 1) as u64,
    )
}

impl TsScan {
    fn feed(&mut self, data: &[u8], want_sps: bool) {
        // Find packet alignment: a sync byte repeated at 188-byte steps.
        let Some(off) = (0..TS_PACKET.min(data.len()))
            .find(|&o| (0..3).all(|k| data.get(o + k * TS_PACKET).map_or(k > 0, |b| *b == 0x47)))
        else {
            return;
        };
        for p in data[off..].chunks_exact(TS_PACKET) {
            let Some((pid, pusi, payload)) = ts_payload(p) else {
                continue;
            };
            if pid == 0 && pusi && self.pmt_pid.is_none() {
                if let Some(sec) = psi_section(payload) {
                    // programs from byte 8 to the CRC
                    let mut i = 8;
                    while i + 4 <= sec.len().saturating_sub(4) {
                        let prog = be16(sec, i).unwrap_or(0);
                        let pid = be16(sec, i + 2).unwrap_or(0) & 0x1fff;
                        if prog != 0 {
                            self.pmt_pid = Some(pid);
                            break;
                        }
                        i += 4;
                    }
                }
            } else if Some(pid) == self.pmt_pid && pusi && self.video_pid.is_none() {
                if let Some(sec) = psi_section(payload) {
                    let info_len = (be16(sec, 10).unwrap_or(0) & 0x0fff) as usize;
                    let mut i = 12 + info_len;
                    let end = sec.len().saturating_sub(4);
                    while i + 5 <= end {
                        let st = sec[i];
                        let epid = be16(sec, i + 1).unwrap_or(0) & 0x1fff;
                        let es_len = (be16(sec, i + 3).unwrap_or(0) & 0x0fff) as usize;
                        if matches!(st, 0x01 | 0x02 | 0x10 | 0x1b | 0x24 | 0x42 | 0xea) {
                            self.video_pid = Some(epid);
                            self.stream_type = Some(st);
                            break;
                        }
                        i += 5 + es_len;
                    }
                }
            } else if Some(pid) == self.video_pid && pusi {
                if let Some(pts) = parse_pes_pts(payload) {
                    self.pts.push(pts);
                }
                if want_sps && self.sps.is_none() && self.stream_type == Some(0x1b) {
                    let hdr = 9 + *payload.get(8).unwrap_or(&0) as usize;
                    if let Some(es) = payload.get(hdr..) {
                        self.sps = find_h264_sps(es).map(<[u8]>::to_vec);
                    }
                }
            }
        }
    }
}

fn ts_codec(stream_type: u8) -> &'static str {
    match stream_type {
        0x1b => "h264",
        0x24 => "hevc",
        0x01 | 0x02 => "mpeg2video",
        0x10 => "mpeg4",
        0x42 => "cavs",
        0xea => "vc1",
        _ => "unknown",
    }
}

const PTS_WRAP: u64 = 1 << 33;

/// First/last PTS of the video stream; duration = last − first + one frame (as ffprobe
/// counts the last frame's display time).
pub fn probe_ts<R: Read + Seek>(r: &mut R, len: u64) -> MediaInfo {
    let mut info = MediaInfo {
        format: "mpegts",
        ..MediaInfo::default()
    };
    let mut scan = TsScan {
        pmt_pid: None,
        video_pid: None,
        stream_type: None,
        pts: Vec::new(),
        sps: None,
    };
    let head_len = len.min(TS_SCAN_BYTES);
    let mut head = vec![0u8; head_len as usize];
    if r.seek(SeekFrom::Start(0)).is_err() || r.read_exact(&mut head).is_err() {
        return info;
    }
    scan.feed(&head, true);
    let Some(st) = scan.stream_type else { return info };
    info.codec = Some(ts_codec(st).to_string());
    if let Some((w, h)) = scan.sps.as_deref().and_then(h264_sps_size) {
        info.width = Some(w);
        info.height = Some(h);
    }
    let Some(&first) = scan.pts.first() else {
        return info;
    };
    let first = scan.pts.iter().copied().fold(first, |a, p| {
        if p.wrapping_sub(a) % PTS_WRAP > PTS_WRAP / 2 {
            p
        } else {
            a
        }
    });
    let mut tail_pts = if len > head_len {
        let start = len.saturating_sub(TS_SCAN_BYTES).max(head_len);
        let mut tail = vec![0u8; (len - start) as usize];
        if r.seek(SeekFrom::Start(start)).is_err() || r.read_exact(&mut tail).is_err() {
            return info;
        }
        scan.pts.clear();
        scan.feed(&tail, false);
        std::mem::take(&mut scan.pts)
    } else {
        scan.pts
    };
    if tail_pts.is_empty() {
        return info;
    }
    // Offsets from `first` (modulo the 33-bit wrap), so sorting works across a wrap.
    let mut rel: Vec<u64> = tail_pts.drain(..).map(|p| p.wrapping_sub(first) % PTS_WRAP).collect();
    rel.sort_unstable();
    rel.dedup();
    let last = *rel.last().expect("non-empty");
    let frame = rel
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(0);
    info.duration = Some((last + frame) as f64 / 90_000.0);
    info
}

// ---------------------------------------------------------------- H.264 SPS (size only)

fn find_h264_sps(es: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let start = i + 3;
            if es.get(start).map(|b| b & 0x1f) == Some(7) {
                let end = (start..es.len().saturating_sub(2))
                    .find(|&j| es[j] == 0 && es[j + 1] == 0 && (es[j + 2] == 1 || es[j + 2] == 0))
                    .unwrap_or(es.len());
                return Some(&es[start..end]);
            }
            i = start;
        } else {
            i += 1;
        }
    }
    None
}

struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal: &[u8]) -> Bits {
        // remove emulation prevention bytes (00 00 03)
        let mut data = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }
    fn bit(&mut self) -> Option<u32> {
        let b = *self.data.get(self.pos / 8)?;
        let v = (b >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + self.bits(zeros)? as u64) as u32)
    }
    fn se(&mut self) -> Option<i32> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

/// Picture size from an H.264 SPS NAL (with its one-byte NAL header).
pub fn h264_sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let mut b = Bits::new(nal.get(1..)?);
    let profile = b.bits(8)?;
    b.bits(16)?; // constraint flags + level
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    let mut separate_planes = 0;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = b.ue()?;
        if chroma_format == 3 {
            separate_planes = b.bit()?;
        }
        b.ue()?; // bit_depth_luma
        b.ue()?; // bit_depth_chroma
        b.bit()?; // qpprime_y_zero_transform_bypass
        if b.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + b.se()? + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let n = b.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_allowed
    let w_mbs = b.ue()? + 1;
    let h_map = b.ue()? + 1;
    let frame_mbs_only = b.bit()?;
    if frame_mbs_only == 0 {
        b.bit()?;
    }
    b.bit()?; // direct_8x8_inference
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if b.bit()? == 1 {
        cl = b.ue()?;
        cr = b.ue()?;
        ct = b.ue()?;
        cb = b.ue()?;
    }
    let (sub_w, sub_h) = match (chroma_format, separate_planes) {
        (1, 0) => (2, 2),
        (2, 0) => (2, 1),
        _ => (1, 1),
    };
    let crop_x = if chroma_format == 0 || separate_planes == 1 {
        1
    } else {
        sub_w
    };
    let crop_y = (if chroma_format == 0 || separate_planes == 1 {
        1
    } else {
        sub_h
    }) * (2 - frame_mbs_only);
    let w = (w_mbs * 16).checked_sub((cl + cr) * crop_x)?;
    let h = ((2 - frame_mbs_only) * h_map * 16).checked_sub((ct + cb) * crop_y)?;
    (w > 0 && h > 0).then_some((w, h))
}

// ---------------------------------------------------------------- images

/// Width and height of a JPEG (first SOF marker) or PNG (IHDR).
pub fn image_size<R: Read>(r: &mut R) -> Option<(u32, u32)> {
    let mut head = Vec::with_capacity(64 * 1024);
    r.take(256 * 1024).read_to_end(&mut head).ok()?;
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        if head.get(12..16)? != b"IHDR" {
            return None;
        }
        return Some((be32(&head, 16)?, be32(&head, 20)?));
    }
    if head.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut i = 2;
    loop {
        // skip fill bytes
        while *head.get(i)? == 0xff && *head.get(i + 1)? == 0xff {
            i += 1;
        }
        if *head.get(i)? != 0xff {
            return None;
        }
        let marker = *head.get(i + 1)?;
        if marker == 0xd8 || marker == 0x01 || (0xd0..=0xd7).contains(&marker) {
            i += 2;
            continue;
        }
        let seg_len = be16(&head, i + 2)? as usize;
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let h = be16(&head, i + 5)? as u32;
            let w = be16(&head, i + 7)? as u32;
            return (w > 0 && h > 0).then_some((w, h));
        }
        if marker == 0xd9 || marker == 0xda || seg_len < 2 {
            return None;
        }
        i += 2 + seg_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }
    fn full(kind: &[u8; 4], version_flags: u32, body: &[u8]) -> Vec<u8> {
        let mut b = version_flags.to_be_bytes().to_vec();
        b.extend_from_slice(body);
        bx(kind, &b)
    }
    fn u32s(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    fn moov(mvhd_duration: u32, with_mvex: bool) -> Vec<u8> {
        let mvhd = full(b"mvhd", 0, &u32s(&[0, 0, 1000, mvhd_duration]));
        let mut tkhd_body = vec![0u8; 80];
        tkhd_body[8..12].copy_from_slice(&1u32.to_be_bytes()); // track id at 12 incl. flags
        tkhd_body[72..76].copy_from_slice(&(640u32 << 16).to_be_bytes());
        tkhd_body[76..80].copy_from_slice(&(480u32 << 16).to_be_bytes());
        let tkhd = full(b"tkhd", 0, &tkhd_body);
        let mdhd = full(b"mdhd", 0, &u32s(&[0, 0, 15360, 0, 0]));
        let hdlr = full(b"hdlr", 0, &[0, 0, 0, 0, b'v', b'i', b'd', b'e', 0, 0, 0, 0]);
        let mut entry = vec![0u8; 70];
        entry[24..26].copy_from_slice(&640u16.to_be_bytes());
        entry[26..28].copy_from_slice(&480u16.to_be_bytes());
        let stsd = full(b"stsd", 0, &[u32s(&[1]), bx(b"avc1", &entry)].concat());
        let stbl = bx(b"stbl", &stsd);
        let minf = bx(b"minf", &stbl);
        let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
        let trak = bx(b"trak", &[tkhd, mdia].concat());
        let mut body = [mvhd, trak].concat();
        if with_mvex {
            body.extend(bx(b"mvex", &full(b"trex", 0, &u32s(&[1, 1, 1024, 0, 0]))));
        }
        bx(b"moov", &body)
    }

    fn moof(base: u32, durations: &[u32]) -> Vec<u8> {
        let tfhd = full(b"tfhd", 0x020000, &u32s(&[1]));
        let tfdt = full(b"tfdt", 0, &u32s(&[base]));
        let mut trun_body = u32s(&[durations.len() as u32]);
        for d in durations {
            trun_body.extend(u32s(&[*d, 100])); // duration + size
        }
        let trun = full(b"trun", 0x000300, &trun_body);
        bx(
            b"moof",
            &[full(b"mfhd", 0, &u32s(&[1])), bx(b"traf", &[tfhd, tfdt, trun].concat())].concat(),
        )
    }

    #[test]
    fn classic_mp4_duration_codec_and_size() {
        let file = [bx(b"ftyp", b"isom"), moov(3000, false), bx(b"mdat", &[0u8; 500])].concat();
        let info = probe_mp4(&mut Cursor::new(&file), file.len() as u64);
        assert_eq!(info.format, "mp4");
        assert_eq!(info.duration, Some(3.0));
        assert_eq!(
            (info.codec.as_deref(), info.width, info.height),
            (Some("h264"), Some(640), Some(480))
        );
    }

    #[test]
    fn fragmented_mp4_sums_fragments_and_tolerates_truncation() {
        let mut file = [bx(b"ftyp", b"iso5"), moov(0, true)].concat();
        file.extend(moof(0, &[1024; 15]));
        file.extend(bx(b"mdat", &[0u8; 100]));
        file.extend(moof(15360, &[]));
        // second fragment uses trex default durations via a trun without per-sample durations
        let tfhd = full(b"tfhd", 0x020000, &u32s(&[1]));
        let tfdt = full(b"tfdt", 0, &u32s(&[15360]));
        let trun = full(b"trun", 0, &u32s(&[15]));
        file.extend(bx(b"moof", &bx(b"traf", &[tfhd, tfdt, trun].concat())));
        file.extend(bx(b"mdat", &[0u8; 100]));
        let info = probe_mp4(&mut Cursor::new(&file), file.len() as u64);
        assert_eq!(info.format, "fmp4");
        assert_eq!(info.duration, Some(2.0));
        assert_eq!(info.codec.as_deref(), Some("h264"));
        // a fragment cut off mid-write is ignored, not an error
        let mut cut = file.clone();
        cut.extend(moof(30720, &[1024; 15]));
        let n = cut.len() - 20;
        let info = probe_mp4(&mut Cursor::new(&cut[..n]), n as u64);
        assert_eq!(info.duration, Some(2.0));
        // garbage never panics
        for len in 0..file.len().min(300) {
            let _ = probe_mp4(&mut Cursor::new(&file[..len]), len as u64);
        }
        let junk: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let _ = probe_mp4(&mut Cursor::new(&junk), junk.len() as u64);
        let _ = probe_ts(&mut Cursor::new(&junk), junk.len() as u64);
        let _ = image_size(&mut Cursor::new(&junk));
    }

    #[test]
    fn sps_size_of_a_cropped_1080p_stream() {
        // x264 high-profile SPS for 1920x1080 (1088 coded, 8 lines cropped)
        let sps = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04,
            0x00, 0x00, 0x03, 0x00, 0x78, 0x3c, 0x60, 0xc6, 0x58,
        ];
        assert_eq!(h264_sps_size(&sps), Some((1920, 1080)));
        assert_eq!(h264_sps_size(&sps[..5]), None);
    }

    #[test]
    fn image_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend(u32s(&[320, 240]));
        png.extend([8, 2, 0, 0, 0]);
        assert_eq!(image_size(&mut Cursor::new(&png)), Some((320, 240)));
        // SOI, APP0 (len 4), SOF0 with height 480, width 640
        let jpg = [
            0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0xe0, 0x02, 0x80, 0x03,
        ];
        assert_eq!(image_size(&mut Cursor::new(&jpg)), Some((640, 480)));
        assert_eq!(image_size(&mut Cursor::new(&jpg[..12])), None);
        assert_eq!(image_size(&mut Cursor::new(b"GIF89a")), None);
    }
}
