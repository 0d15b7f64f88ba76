//! fMP4 recording writer, like MediaMTX's recorder: ffmpeg muxes the stream into a
//! fragmented MP4 (one fragment = one "part" of `recordPartDuration`, cut earlier at
//! keyframes) on a pipe; the double splits that into segment files itself. Every part is
//! written to its file with one `write(2)` as soon as it is complete, so after a crash
//! (SIGKILL) of the double a segment holds everything up to the last complete part.
//! Segments are cut at the first keyframe part after `recordSegmentDuration`, named after
//! the wall-clock time of their first frame (with real microseconds for `%f`), and their
//! decode times start at zero.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One box: type, start of its payload, end (offsets into the buffer it was found in).
#[derive(Clone, Copy)]
pub(crate) struct BoxRef {
    pub(crate) typ: [u8; 4],
    pub(crate) body: usize,
    pub(crate) end: usize,
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_be_bytes(a)
    })
}

/// Children boxes of `buf[from..to]`.
pub(crate) fn children(buf: &[u8], from: usize, to: usize) -> Vec<BoxRef> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let Some(size32) = be32(buf, at) else { break };
        let mut typ = [0u8; 4];
        typ.copy_from_slice(&buf[at + 4..at + 8]);
        let (size, hdr) = match size32 {
            1 => match be64(buf, at + 8) {
                Some(s) => (s as usize, 16),
                None => break,
            },
            0 => (to - at, 8),
            s => (s as usize, 8),
        };
        if size < hdr || at + size > to {
            break;
        }
        out.push(BoxRef {
            typ,
            body: at + hdr,
            end: at + size,
        });
        at += size;
    }
    out
}

pub(crate) fn child<'a>(list: &'a [BoxRef], typ: &[u8; 4]) -> Option<&'a BoxRef> {
    list.iter().find(|b| &b.typ == typ)
}

/// Position of the mvhd duration inside a moov box: (offset, 64-bit?, timescale).
pub(crate) fn find_mvhd(moov: &[u8]) -> Option<(usize, bool, u32)> {
    let top = children(moov, 0, moov.len());
    let m = child(&top, b"moov")?;
    let kids = children(moov, m.body, m.end);
    let h = child(&kids, b"mvhd")?;
    if moov.get(h.body) == Some(&1) {
        Some((h.body + 24, true, be32(moov, h.body + 20)?))
    } else {
        Some((h.body + 16, false, be32(moov, h.body + 12)?))
    }
}

/// Per-track facts from the `moov`: timescale (mdhd) and default sample flags (trex).
#[derive(Default, Debug)]
pub struct Tracks {
    pub timescale: HashMap<u32, u32>,
    pub trex_flags: HashMap<u32, u32>,
    pub trex_duration: HashMap<u32, u32>,
}

pub fn parse_moov(moov: &[u8]) -> Tracks {
    let mut t = Tracks::default();
    let top = children(moov, 0, moov.len());
    let Some(m) = child(&top, b"moov") else { return t };
    let kids = children(moov, m.body, m.end);
    for k in &kids {
        if &k.typ == b"trak" {
            let tk = children(moov, k.body, k.end);
            let id = child(&tk, b"tkhd").and_then(|h| {
                let v = moov.get(h.body).copied().unwrap_or(0);
                be32(moov, h.body + if v == 1 { 20 } else { 12 })
            });
            let ts = child(&tk, b"mdia").and_then(|md| {
                let mk = children(moov, md.body, md.end);
                child(&mk, b"mdhd").and_then(|h| {
                    let v = moov.get(h.body).copied().unwrap_or(0);
                    be32(moov, h.body + if v == 1 { 20 } else { 12 })
                })
            });
            if let (Some(id), Some(ts)) = (id, ts) {
                t.timescale.insert(id, ts.max(1));
            }
        }
        if &k.typ == b"mvex" {
            for x in children(moov, k.body, k.end) {
                if &x.typ == b"trex" {
                    if let (Some(id), Some(fl)) = (be32(moov, x.body + 4), be32(moov, x.body + 20)) {
                        t.trex_flags.insert(id, fl);
                    }
                    if let (Some(id), Some(d)) = (be32(moov, x.body + 4), be32(moov, x.body + 12)) {
                        t.trex_duration.insert(id, d);
                    }
                }
            }
        }
    }
    t
}

/// What a `moof` says about its fragment.
#[derive(Debug, PartialEq)]
pub struct Frag {
    /// (track id, decode time, offset of the tfdt value inside the moof, 64-bit?)
    pub trafs: Vec<(u32, u64, usize, bool)>,
    /// every track's first sample is a sync sample
    pub sync: bool,
    /// duration of the first listed track's samples, in its timescale
    pub duration: u64,
}

const NON_SYNC: u32 = 0x0001_0000;

pub fn parse_moof(moof: &[u8], tracks: &Tracks) -> Frag {
    let mut f = Frag {
        trafs: Vec::new(),
        sync: true,
        duration: 0,
    };
    let mut first_traf = true;
    let top = children(moof, 0, moof.len());
    let Some(m) = child(&top, b"moof") else {
        f.sync = false;
        return f;
    };
    for traf in children(moof, m.body, m.end) {
        if &traf.typ != b"traf" {
            continue;
        }
        let kids = children(moof, traf.body, traf.end);
        let Some(tfhd) = child(&kids, b"tfhd") else { continue };
        let tf_flags = be32(moof, tfhd.body).unwrap_or(0) & 0x00ff_ffff;
        let id = be32(moof, tfhd.body + 4).unwrap_or(0);
        let mut default_duration = tracks.trex_duration.get(&id).copied().unwrap_or(0);
        let mut default_flags = tracks.trex_flags.get(&id).copied().unwrap_or(0);
        let mut at = tfhd.body + 8;
        if tf_flags & 0x1 != 0 {
            at += 8; // base data offset
        }
        if tf_flags & 0x2 != 0 {
            at += 4; // sample description index
        }
        if tf_flags & 0x8 != 0 {
            default_duration = be32(moof, at).unwrap_or(default_duration);
            at += 4;
        }
        if tf_flags & 0x10 != 0 {
            at += 4; // default sample size
        }
        if tf_flags & 0x20 != 0 {
            default_flags = be32(moof, at).unwrap_or(default_flags);
        }
        if let Some(tfdt) = child(&kids, b"tfdt") {
            let v1 = moof.get(tfdt.body) == Some(&1);
            let off = tfdt.body + 4;
            let dts = if v1 {
                be64(moof, off).unwrap_or(0)
            } else {
                be32(moof, off).unwrap_or(0) as u64
            };
            f.trafs.push((id, dts, off, v1));
        }
        if let Some(trun) = child(&kids, b"trun") {
            let tr_flags = be32(moof, trun.body).unwrap_or(0) & 0x00ff_ffff;
            let count = be32(moof, trun.body + 4).unwrap_or(0);
            let mut at = trun.body + 8;
            if tr_flags & 0x1 != 0 {
                at += 4;
            }
            let first = if tr_flags & 0x4 != 0 {
                be32(moof, at).unwrap_or(default_flags)
            } else if tr_flags & 0x400 != 0 && count > 0 {
                let skip = (if tr_flags & 0x100 != 0 { 4 } else { 0 }) + (if tr_flags & 0x200 != 0 { 4 } else { 0 });
                be32(moof, at + skip).unwrap_or(default_flags)
            } else {
                default_flags
            };
            if first & NON_SYNC != 0 {
                f.sync = false;
            }
            if first_traf {
                if tr_flags & 0x100 != 0 {
                    let first_flags = if tr_flags & 0x4 != 0 { 4 } else { 0 };
                    let entry = 4 * [0x100, 0x200, 0x400, 0x800]
                        .iter()
                        .filter(|b| tr_flags & **b != 0)
                        .count();
                    for i in 0..count as usize {
                        f.duration += be32(moof, at + first_flags + i * entry).unwrap_or(0) as u64;
                    }
                } else {
                    f.duration = default_duration as u64 * count as u64;
                }
            }
        }
        first_traf = false;
    }
    f
}

/// Splits the fMP4 stream of `input` into segment files.
pub struct Segmenter {
    /// record format with extension, `%path` substituted, absolute
    pub format: String,
    pub segment_duration: Duration,
    /// the recorder's log (level, text): `[path P] [recorder]`
    pub log: crate::ts::RecorderLog,
    /// segment created (path, None) / completed (path, Some(duration)): the
    /// runOnRecordSegment* hooks
    pub on_segment: crate::hooks::SegmentFn,
    /// recordMaxPartSize: a part with more sample bytes fails the recorder
    pub max_part_size: u64,
    init: Vec<u8>,
    tracks: Tracks,
    /// mvhd in the init: (offset of its duration field, 64-bit?, movie timescale)
    mvhd: Option<(usize, bool, u32)>,
    /// wall clock of the first frame, and every track's first decode time
    anchor: Option<SystemTime>,
    first_dts: HashMap<u32, u64>,
    cur: Option<Current>,
}

struct Current {
    file: std::fs::File,
    path: String,
    start: SystemTime,
    base: HashMap<u32, u64>,
    /// end of the last sample, from the segment start
    end: Duration,
}

impl Segmenter {
    pub fn new(format: String, segment_duration: Duration, log: crate::ts::RecorderLog) -> Segmenter {
        Segmenter {
            format,
            segment_duration,
            log,
            on_segment: Box::new(|_, _| {}),
            max_part_size: u64::MAX,
            init: Vec::new(),
            tracks: Tracks::default(),
            mvhd: None,
            anchor: None,
            first_dts: HashMap::new(),
            cur: None,
        }
    }

    /// Reads boxes until EOF or error; every complete fragment goes to disk at once.
    pub fn run<R: Read>(&mut self, mut input: R) {
        let mut pending_moof: Option<Vec<u8>> = None;
        loop {
            let mut hdr = [0u8; 8];
            if input.read_exact(&mut hdr).is_err() {
                break;
            }
            let size32 = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as u64;
            let mut bx = hdr.to_vec();
            let size = if size32 == 1 {
                let mut ext = [0u8; 8];
                if input.read_exact(&mut ext).is_err() {
                    break;
                }
                bx.extend_from_slice(&ext);
                u64::from_be_bytes(ext)
            } else {
                size32
            };
            if size < bx.len() as u64 || size > (1 << 32) {
                (self.log)("ERR", &format!("bad box size {}", size));
                break;
            }
            let start = bx.len();
            bx.resize(size as usize, 0);
            if input.read_exact(&mut bx[start..]).is_err() {
                // an incomplete box is lost, like an unfinished part
                break;
            }
            match &hdr[4..8] {
                b"ftyp" => self.init = bx,
                b"moov" => {
                    self.tracks = parse_moov(&bx);
                    let at = self.init.len();
                    self.mvhd = find_mvhd(&bx).map(|(off, v1, ts)| (at + off, v1, ts));
                    self.init.extend_from_slice(&bx);
                }
                b"moof" => pending_moof = Some(bx),
                b"mdat" => {
                    if let Some(moof) = pending_moof.take() {
                        if let Err(e) = self.fragment(moof, &bx) {
                            (self.log)("ERR", &e.to_string());
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        self.close_segment();
    }

    /// Like MediaMTX when it closes a segment: the overall duration goes into the mvhd.
    fn close_segment(&mut self) {
        let Some(cur) = self.cur.take() else { return };
        self.write_duration(&cur);
        (self.on_segment)(&cur.path, Some(cur.end));
    }

    fn write_duration(&self, cur: &Current) {
        let Some((off, v1, ts)) = self.mvhd else { return };
        use std::os::unix::fs::FileExt;
        let d = (cur.end.as_nanos() * ts as u128 / 1_000_000_000) as u64;
        let r = if v1 {
            cur.file.write_all_at(&d.to_be_bytes(), off as u64)
        } else {
            cur.file
                .write_all_at(&(d.min(u32::MAX as u64) as u32).to_be_bytes(), off as u64)
        };
        if let Err(e) = r {
            (self.log)("ERR", &crate::util::go_path_error("write", &cur.path, &e));
        }
    }

    fn fragment(&mut self, mut moof: Vec<u8>, mdat: &[u8]) -> std::io::Result<()> {
        // formatFMP4Part.write: the recorder instance fails, its segment is closed and a
        // new recorder starts after the restart pause
        let header = if mdat.len() >= 8 && u32::from_be_bytes([mdat[0], mdat[1], mdat[2], mdat[3]]) == 1 {
            16
        } else {
            8
        };
        if mdat.len().saturating_sub(header) as u64 > self.max_part_size {
            self.close_segment();
            return Err(std::io::Error::other("reached maximum part size"));
        }
        let frag = parse_moof(&moof, &self.tracks);
        // a fragment is complete when the first frame of the next one arrives: its first
        // frame was seen its duration ago
        let anchor = *self.anchor.get_or_insert_with(|| {
            let ts = frag
                .trafs
                .first()
                .and_then(|t| self.tracks.timescale.get(&t.0))
                .copied()
                .unwrap_or(90_000) as u128;
            let ns = frag.duration as u128 * 1_000_000_000 / ts;
            SystemTime::now() - Duration::from_nanos(ns.min(10_000_000_000) as u64)
        });
        // wall-clock time of the fragment's first frame, from the first listed track
        let when = match frag.trafs.first() {
            Some(&(id, dts, _, _)) => {
                let first = *self.first_dts.entry(id).or_insert(dts);
                let ts = self.tracks.timescale.get(&id).copied().unwrap_or(90_000) as u128;
                let ns = (dts.saturating_sub(first) as u128) * 1_000_000_000 / ts;
                anchor + Duration::from_nanos(ns as u64)
            }
            None => SystemTime::now(),
        };
        for &(id, dts, _, _) in &frag.trafs {
            self.first_dts.entry(id).or_insert(dts);
        }
        let cut = match &self.cur {
            None => true,
            Some(c) => frag.sync && when.duration_since(c.start).unwrap_or_default() >= self.segment_duration,
        };
        if cut {
            self.close_segment();
            self.open_segment(when)?;
        }
        let ts_first = frag
            .trafs
            .first()
            .and_then(|t| self.tracks.timescale.get(&t.0))
            .copied()
            .unwrap_or(90_000) as u128;
        let cur = self.cur.as_mut().expect("segment open");
        // decode times relative to the segment start
        for (i, &(id, dts, off, v1)) in frag.trafs.iter().enumerate() {
            let base = *cur.base.entry(id).or_insert(dts);
            let rel = dts.saturating_sub(base);
            if i == 0 {
                let end = Duration::from_nanos(((rel + frag.duration) as u128 * 1_000_000_000 / ts_first) as u64);
                cur.end = cur.end.max(end);
            }
            if v1 {
                moof[off..off + 8].copy_from_slice(&rel.to_be_bytes());
            } else {
                moof[off..off + 4].copy_from_slice(&(rel as u32).to_be_bytes());
            }
        }
        let mut part = moof;
        part.extend_from_slice(mdat);
        let path = &cur.path;
        cur.file
            .write_all(&part)
            .map_err(|e| std::io::Error::other(crate::util::go_path_error("write", path, &e)))
    }

    fn open_segment(&mut self, when: SystemTime) -> std::io::Result<()> {
        let d = when.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut tm = crate::util::local_tm(UNIX_EPOCH + Duration::from_secs(d.as_secs()));
        tm.nanos = d.subsec_nanos();
        let path = crate::recordings::encode(&self.format, "", &tm);
        let mut file = crate::recordings::create_segment(&path).map_err(std::io::Error::other)?;
        file.write_all(&self.init)
            .map_err(|e| std::io::Error::other(crate::util::go_path_error("write", &path, &e)))?;
        (self.log)("DEB", &format!("creating segment {}", path));
        (self.on_segment)(&path, None);
        self.cur = Some(Current {
            file,
            path,
            start: when,
            base: HashMap::new(),
            end: Duration::ZERO,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn moof_sync_and_tfdt() {
        // tfhd: flags 0x020000 (default-base-is-moof), track 1
        let tfhd = bx(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
        let tfdt = bx(b"tfdt", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8]);
        // trun: flags 0x000205? use first-sample-flags (0x4): count 1, first flags sync
        let trun_sync = bx(b"trun", &[0, 0, 0, 4, 0, 0, 0, 1, 0x02, 0, 0, 0]);
        let trun_non = bx(b"trun", &[0, 0, 0, 4, 0, 0, 0, 1, 0x01, 0x01, 0, 0]);
        let mk = |trun: &[u8]| {
            let traf = bx(b"traf", &[tfhd.clone(), tfdt.clone(), trun.to_vec()].concat());
            bx(b"moof", &[bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]), traf].concat())
        };
        let t = Tracks::default();
        let f = parse_moof(&mk(&trun_sync), &t);
        assert!(f.sync);
        assert_eq!(f.trafs.len(), 1);
        assert_eq!((f.trafs[0].0, f.trafs[0].1, f.trafs[0].3), (1, 3000, true));
        assert!(!parse_moof(&mk(&trun_non), &t).sync);
    }
}
