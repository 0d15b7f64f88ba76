//! `/get`'s fMP4 writer, like MediaMTX's segmentFMP4MuxParts + muxerFMP4: every recorded
//! sample is read from the segments' `moof`/`mdat` boxes with its decode time relative
//! to the requested start; samples before the start are kept from the last keyframe on
//! and squeezed (zero duration) at the first sample at or after the start, samples from
//! the end on are dropped, and new parts of about one second are written.

use crate::fmp4::{be32, be64, child, children, Tracks};

const NON_SYNC: u32 = 0x0001_0000;
/// muxerFMP4's partDuration
const PART_NS: i128 = 1_000_000_000;

/// One recorded sample: duration, size, flags, composition offset, file offset.
struct Entry {
    duration: u32,
    size: u32,
    flags: u32,
    cto: i32,
    offset: usize,
}

/// A traf of a recorded moof: track, base decode time, samples.
struct Traf {
    id: u32,
    base: u64,
    entries: Vec<Entry>,
}

/// The trafs of the moof at `file[start..end]` (data offsets resolved in `file`).
fn read_trafs(file: &[u8], start: usize, end: usize, tracks: &Tracks) -> Vec<Traf> {
    let mut out = Vec::new();
    let top = children(file, start, end);
    let Some(moof) = child(&top, b"moof") else { return out };
    for traf in children(file, moof.body, moof.end).iter().filter(|b| &b.typ == b"traf") {
        let kids = children(file, traf.body, traf.end);
        let (Some(tfhd), Some(trun)) = (child(&kids, b"tfhd"), child(&kids, b"trun")) else {
            continue;
        };
        let tf_flags = be32(file, tfhd.body).unwrap_or(0) & 0x00ff_ffff;
        let id = be32(file, tfhd.body + 4).unwrap_or(0);
        let mut base_offset = start as u64;
        let mut def_duration = tracks.trex_duration.get(&id).copied().unwrap_or(0);
        let mut def_size = 0;
        let mut def_flags = tracks.trex_flags.get(&id).copied().unwrap_or(0);
        let mut at = tfhd.body + 8;
        if tf_flags & 0x1 != 0 {
            base_offset = be64(file, at).unwrap_or(base_offset);
            at += 8;
        }
        if tf_flags & 0x2 != 0 {
            at += 4;
        }
        if tf_flags & 0x8 != 0 {
            def_duration = be32(file, at).unwrap_or(def_duration);
            at += 4;
        }
        if tf_flags & 0x10 != 0 {
            def_size = be32(file, at).unwrap_or(0);
            at += 4;
        }
        if tf_flags & 0x20 != 0 {
            def_flags = be32(file, at).unwrap_or(def_flags);
        }
        let base = child(&kids, b"tfdt")
            .and_then(|t| {
                if file.get(t.body) == Some(&1) {
                    be64(file, t.body + 4)
                } else {
                    be32(file, t.body + 4).map(u64::from)
                }
            })
            .unwrap_or(0);
        let tr_flags = be32(file, trun.body).unwrap_or(0) & 0x00ff_ffff;
        let count = be32(file, trun.body + 4).unwrap_or(0) as usize;
        let mut at = trun.body + 8;
        let mut data = base_offset as i64;
        if tr_flags & 0x1 != 0 {
            data += be32(file, at).unwrap_or(0) as i32 as i64;
            at += 4;
        }
        let mut first_flags = None;
        if tr_flags & 0x4 != 0 {
            first_flags = be32(file, at);
            at += 4;
        }
        let mut entries = Vec::new();
        let mut data = data.max(0) as usize;
        for i in 0..count {
            // every field read is bounds-checked: a damaged trun ends the list
            let mut field = |bit: u32, default: u32| -> Option<u32> {
                if tr_flags & bit == 0 {
                    return Some(default);
                }
                let v = be32(file, at);
                at += 4;
                v
            };
            let flags_default = if i == 0 {
                first_flags.unwrap_or(def_flags)
            } else {
                def_flags
            };
            let (Some(duration), Some(size), Some(flags), Some(cto)) = (
                field(0x100, def_duration),
                field(0x200, def_size),
                field(0x400, flags_default),
                field(0x800, 0),
            ) else {
                break;
            };
            if at > trun.end || data + size as usize > file.len() {
                break;
            }
            entries.push(Entry {
                duration,
                size,
                flags,
                cto: cto as i32,
                offset: data,
            });
            data += size as usize;
        }
        out.push(Traf { id, base, entries });
    }
    out
}

struct OutSample {
    cto: i32,
    non_sync: bool,
    duration: u32,
    data: Vec<u8>,
}

struct TrackState {
    id: u32,
    timescale: u32,
    first_dts: i64,
    last_dts: i64,
    samples: Vec<OutSample>,
}

/// muxerFMP4: collects samples per track and writes parts of about one second.
pub struct Muxer {
    out: Vec<u8>,
    init: Option<Vec<u8>>,
    seq: u32,
    tracks: Vec<TrackState>,
}

/// ns → track timescale units (durationGoToMp4)
fn to_ts(ns: i128, ts: u32) -> i64 {
    let v = ns.saturating_mul(ts as i128) / 1_000_000_000;
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl Muxer {
    /// `init`: ftyp + moov to write before the first part; `tracks`: (id, timescale).
    pub fn new(init: Vec<u8>, tracks: &[(u32, u32)]) -> Muxer {
        Muxer {
            out: Vec::new(),
            init: Some(init),
            seq: 0,
            tracks: tracks
                .iter()
                .map(|&(id, timescale)| TrackState {
                    id,
                    timescale: timescale.max(1),
                    first_dts: -1,
                    last_dts: 0,
                    samples: Vec::new(),
                })
                .collect(),
        }
    }

    /// Muxes the parts of one segment file whose decode times start `start_ns` after the
    /// requested start (negative: before it), up to `duration_ns`.
    pub fn segment(
        &mut self,
        file: &[u8],
        parts: &[(usize, usize, usize)],
        tracks: &Tracks,
        start_ns: i128,
        duration_ns: i128,
    ) {
        for &(moof_start, moof_end, _) in parts {
            let mut stop = false;
            for traf in read_trafs(file, moof_start, moof_end, tracks) {
                let Some(t) = self.tracks.iter().position(|t| t.id == traf.id) else {
                    continue;
                };
                let ts = self.tracks[t].timescale;
                let end = to_ts(duration_ns, ts);
                let mut dts = (traf.base as i64).saturating_add(to_ts(start_ns, ts));
                for e in &traf.entries {
                    if dts >= end {
                        stop = true;
                        break;
                    }
                    let data = file[e.offset..e.offset + e.size as usize].to_vec();
                    self.write_sample(t, dts, e.cto, e.flags & NON_SYNC != 0, data);
                    dts = dts.saturating_add(e.duration as i64);
                }
                self.write_final_dts(t, dts);
            }
            if stop {
                return;
            }
        }
    }

    fn write_sample(&mut self, t: usize, dts: i64, cto: i32, non_sync: bool, data: Vec<u8>) {
        let tr = &mut self.tracks[t];
        let sample = OutSample {
            cto,
            non_sync,
            duration: 0,
            data,
        };
        if dts >= 0 {
            if tr.first_dts < 0 {
                tr.first_dts = dts;
                if !non_sync {
                    tr.samples.clear();
                }
            } else if let Some(last) = tr.samples.last_mut() {
                last.duration = dts.saturating_sub(tr.last_dts).clamp(0, u32::MAX as i64) as u32;
            }
            tr.samples.push(sample);
            tr.last_dts = dts;
            if tr.last_dts.saturating_sub(tr.first_dts) >= to_ts(PART_NS, tr.timescale) {
                self.flush_parts(false);
            }
        } else {
            // before the start: keep from the last keyframe on
            if !non_sync {
                tr.samples.clear();
            }
            tr.samples.push(sample);
        }
    }

    fn write_final_dts(&mut self, t: usize, dts: i64) {
        let tr = &mut self.tracks[t];
        if tr.first_dts >= 0 {
            let last_dts = tr.last_dts;
            if let Some(last) = tr.samples.last_mut() {
                last.duration = dts.saturating_sub(last_dts).clamp(0, u32::MAX as i64) as u32;
            }
        }
    }

    /// innerFlush: a part with every track's complete samples (all of them when final).
    /// false = nothing was ever written (no sample at or after the start).
    fn flush_parts(&mut self, final_: bool) -> bool {
        let mut part: Vec<(u32, u64, Vec<OutSample>)> = Vec::new();
        for tr in &mut self.tracks {
            if tr.first_dts >= 0 && (tr.samples.len() > 1 || (final_ && !tr.samples.is_empty())) {
                let keep = if final_ { None } else { tr.samples.pop() };
                part.push((tr.id, tr.first_dts as u64, std::mem::take(&mut tr.samples)));
                if let Some(k) = keep {
                    tr.samples.push(k);
                    tr.first_dts = tr.last_dts;
                }
            }
        }
        if part.is_empty() {
            return self.init.is_none();
        }
        if let Some(init) = self.init.take() {
            self.out.extend_from_slice(&init);
        }
        self.seq += 1;
        write_part(&mut self.out, self.seq, &part);
        true
    }

    /// flush: the output, or None when no sample reached the start (404 in MediaMTX).
    pub fn finish(mut self) -> Option<Vec<u8>> {
        self.flush_parts(true).then_some(self.out)
    }
}

fn bx(out: &mut Vec<u8>, typ: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(typ);
    out.extend_from_slice(body);
}

/// moof (mfhd; per track tfhd default-base-is-moof, tfdt v1, trun v1 with every field)
/// and mdat.
fn write_part(out: &mut Vec<u8>, seq: u32, tracks: &[(u32, u64, Vec<OutSample>)]) {
    let traf_size = |n: usize| 8 + 16 + 20 + 20 + 16 * n;
    let moof_size = 8 + 16 + tracks.iter().map(|t| traf_size(t.2.len())).sum::<usize>();
    let mut moof = Vec::with_capacity(moof_size);
    let mut mfhd = vec![0, 0, 0, 0];
    mfhd.extend_from_slice(&seq.to_be_bytes());
    bx(&mut moof, b"mfhd", &mfhd);
    let mut data_offset = moof_size + 8;
    for (id, base, samples) in tracks {
        let mut traf = Vec::new();
        let mut tfhd = vec![0, 0x02, 0, 0];
        tfhd.extend_from_slice(&id.to_be_bytes());
        bx(&mut traf, b"tfhd", &tfhd);
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&base.to_be_bytes());
        bx(&mut traf, b"tfdt", &tfdt);
        let mut trun = vec![1, 0, 0x0f, 0x01];
        trun.extend_from_slice(&(samples.len() as u32).to_be_bytes());
        trun.extend_from_slice(&(data_offset as u32).to_be_bytes());
        for s in samples {
            let flags: u32 = if s.non_sync { 0x0101_0000 } else { 0x0200_0000 };
            trun.extend_from_slice(&s.duration.to_be_bytes());
            trun.extend_from_slice(&(s.data.len() as u32).to_be_bytes());
            trun.extend_from_slice(&flags.to_be_bytes());
            trun.extend_from_slice(&s.cto.to_be_bytes());
            data_offset += s.data.len();
        }
        bx(&mut traf, b"trun", &trun);
        bx(&mut moof, b"traf", &traf);
    }
    bx(out, b"moof", &moof);
    let payload: usize = tracks.iter().flat_map(|t| t.2.iter()).map(|s| s.data.len()).sum();
    out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for s in tracks.iter().flat_map(|t| t.2.iter()) {
        out.extend_from_slice(&s.data);
    }
}
