//! MPEG-TS recording writer, like MediaMTX's (recorder/format_mpegts*.go): the first
//! segment starts with the first frame of any track (a video track's frames before its
//! first random-access point are dropped); a new one starts once the current one spans
//! `recordSegmentDuration` of DTS, at a video random-access point, or at any frame while
//! no video frame was recorded (audio-only streams: cut by duration). Its data goes
//! through a 64 KiB buffer that is written out when a frame's DTS is
//! `recordPartDuration` past the last write (or when full), and the file is created by
//! its first write; its duration is a DTS span (formatMPEGTSSegment: lastDTS - startDTS). ffmpeg muxes the
//! stream into MPEG-TS on a pipe; the double does the rest.

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PKT: usize = 188;
const BUFFER: usize = 64 * 1024;

fn payload(p: &[u8]) -> &[u8] {
    let afc = (p[3] >> 4) & 3;
    let start = if afc & 2 != 0 { 5 + p[4] as usize } else { 4 };
    if afc & 1 == 0 || start >= PKT {
        return &[];
    }
    &p[start..]
}

/// A section (PAT/PMT) starting in this packet, after its pointer field.
fn section(p: &[u8]) -> Option<&[u8]> {
    if p[1] & 0x40 == 0 {
        return None;
    }
    let pl = payload(p);
    let ptr = *pl.first()? as usize;
    pl.get(1 + ptr..)
}

/// End of a section's data (before its CRC), bounded by what this packet holds.
fn section_end(s: &[u8]) -> usize {
    if s.len() < 3 {
        return 0;
    }
    let len = (((s[1] & 0x0f) as usize) << 8) | s[2] as usize;
    (3 + len).saturating_sub(4).min(s.len())
}

/// The DTS (else PTS) of a PES starting in this packet, 90 kHz, 33 bits.
fn pes_dts(p: &[u8]) -> Option<u64> {
    if p[1] & 0x40 == 0 {
        return None;
    }
    let pl = payload(p);
    // start code, stream id, length, flags (2, the first starting with bits 10: an
    // optional PES header), header length, PTS, DTS
    if pl.len() < 14 || pl[..3] != [0, 0, 1] || pl[6] >> 6 != 2 {
        return None;
    }
    let ts = |b: &[u8]| -> u64 {
        (((b[0] >> 1) & 0x07) as u64) << 30
            | (b[1] as u64) << 22
            | ((b[2] >> 1) as u64) << 15
            | (b[3] as u64) << 7
            | (b[4] >> 1) as u64
    };
    match pl[7] >> 6 {
        3 if pl.len() >= 19 => Some(ts(&pl[14..19])),
        2 | 3 => Some(ts(&pl[9..14])),
        _ => None,
    }
}

/// `to - from` of 33-bit 90 kHz timestamps (across a wrap), 0 when `to` is earlier.
fn dts_span(from: u64, to: u64) -> Duration {
    const WRAP: u64 = 1 << 33;
    let d = to.wrapping_sub(from) & (WRAP - 1);
    if d >= WRAP / 2 {
        return Duration::ZERO;
    }
    Duration::from_nanos(d * 100_000 / 9)
}

struct Current {
    path: String,
    /// DTS of its first and last PES (MediaMTX's startDTS/lastDTS)
    start_dts: u64,
    last_dts: u64,
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    /// DTS of the last write after `recordPartDuration` (MediaMTX's lastFlush)
    last_flush_dts: u64,
}

/// The log of a recorder's segment writer (level, text), by the path's `[recorder]`.
pub type RecorderLog = Box<dyn Fn(&str, &str) + Send>;

pub struct TsSegmenter {
    /// record format with extension, `%path` substituted, absolute
    pub format: String,
    pub segment_duration: Duration,
    pub part_duration: Duration,
    pub log: RecorderLog,
    /// segment created (path, None) / completed (path, Some(duration))
    pub on_segment: crate::hooks::SegmentFn,
    pat: Option<Vec<u8>>,
    pmt: Option<Vec<u8>>,
    pmt_pid: Option<u16>,
    /// elementary streams of the PMT that are video
    video_pids: Vec<u16>,
    /// video streams that had their first random-access point (recorded from there on)
    started_video: Vec<u16>,
    /// a video frame was recorded (MediaMTX's hasVideo): from then on only video cuts
    has_video: bool,
    cur: Option<Current>,
}

impl TsSegmenter {
    pub fn new(format: String, segment_duration: Duration, part_duration: Duration, log: RecorderLog) -> TsSegmenter {
        TsSegmenter {
            format,
            segment_duration,
            part_duration,
            log,
            on_segment: Box::new(|_, _| {}),
            pat: None,
            pmt: None,
            pmt_pid: None,
            video_pids: Vec::new(),
            started_video: Vec::new(),
            has_video: false,
            cur: None,
        }
    }

    pub fn run<R: Read>(&mut self, mut input: R) {
        let mut p = [0u8; PKT];
        loop {
            if input.read_exact(&mut p).is_err() {
                break;
            }
            if p[0] != 0x47 {
                (self.log)("ERR", "lost MPEG-TS sync");
                break;
            }
            if let Err(e) = self.packet(&p) {
                (self.log)("ERR", &e.to_string());
                break;
            }
        }
        if let Err(e) = self.close_segment() {
            (self.log)("ERR", &e.to_string());
        }
    }

    fn packet(&mut self, p: &[u8]) -> std::io::Result<()> {
        let pid = (((p[1] & 0x1f) as u16) << 8) | p[2] as u16;
        if pid == 0 {
            self.pat = Some(p.to_vec());
            if let Some(s) = section(p) {
                // programs after the 8-byte header: number(2) pid(2), up to the CRC
                let end = section_end(s);
                let mut i = 8;
                while i + 4 <= end {
                    let number = u16::from_be_bytes([s[i], s[i + 1]]);
                    if number != 0 {
                        self.pmt_pid = Some((((s[i + 2] & 0x1f) as u16) << 8) | s[i + 3] as u16);
                        break;
                    }
                    i += 4;
                }
            }
        } else if Some(pid) == self.pmt_pid {
            self.pmt = Some(p.to_vec());
            if let Some(s) = section(p) {
                let end = section_end(s);
                self.video_pids.clear();
                if end > 12 {
                    let info = (((s[10] & 0x0f) as usize) << 8) | s[11] as usize;
                    let mut i = 12 + info;
                    while i + 5 <= end {
                        let stream_type = s[i];
                        let es_pid = (((s[i + 1] & 0x1f) as u16) << 8) | s[i + 2] as u16;
                        // H.264, H.265, MPEG-1/2 and MPEG-4 video
                        if matches!(stream_type, 0x1b | 0x24 | 0x01 | 0x02 | 0x10) && self.video_pids.len() < 64 {
                            self.video_pids.push(es_pid);
                        }
                        let es_info = (((s[i + 3] & 0x0f) as usize) << 8) | s[i + 4] as usize;
                        i += 5 + es_info;
                    }
                }
            }
        }
        let afc = (p[3] >> 4) & 3;
        let is_video = self.video_pids.contains(&pid);
        let dts = if pid != 0 && Some(pid) != self.pmt_pid {
            pes_dts(p)
        } else {
            None
        };
        // every frame of other tracks is a random-access point (MediaMTX passes true)
        let random_access = !is_video || (afc & 2 != 0 && p[4] > 0 && p[5] & 0x40 != 0);
        if is_video && !self.started_video.contains(&pid) {
            // a video track is recorded from its first random-access point (MediaMTX
            // drops the frames before it), also the rest of a dropped frame's PES
            if !(random_access && dts.is_some()) {
                return Ok(());
            }
            self.started_video.push(pid);
        }
        if let Some(dts) = dts {
            self.has_video |= is_video;
            let cut = match &self.cur {
                None => true,
                Some(c) => {
                    (!self.has_video || is_video)
                        && random_access
                        && dts_span(c.start_dts, dts) >= self.segment_duration
                }
            };
            if cut {
                // the segment ends where the next one starts (lastDTS = this DTS)
                if let Some(c) = self.cur.as_mut() {
                    c.last_dts = dts;
                }
                self.close_segment()?;
                self.open_segment(dts);
            } else if self
                .cur
                .as_ref()
                .is_some_and(|c| dts_span(c.last_flush_dts, dts) >= self.part_duration)
            {
                // a part is written out once this frame's DTS is `recordPartDuration`
                // past the last one, before the frame
                self.flush()?;
                if let Some(c) = self.cur.as_mut() {
                    c.last_flush_dts = dts;
                }
            }
        }
        let Some(cur) = self.cur.as_mut() else {
            // nothing before the first frame
            return Ok(());
        };
        if let Some(dts) = dts {
            cur.last_dts = dts;
        }
        cur.buf.extend_from_slice(p);
        if cur.buf.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn open_segment(&mut self, dts: u64) {
        let now = SystemTime::now();
        let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut tm = crate::util::local_tm(UNIX_EPOCH + Duration::from_secs(d.as_secs()));
        tm.nanos = d.subsec_nanos();
        let mut buf = Vec::new();
        // a segment is readable on its own: tables first
        for t in [&self.pat, &self.pmt].into_iter().flatten() {
            buf.extend_from_slice(t);
        }
        self.cur = Some(Current {
            path: crate::recordings::encode(&self.format, "", &tm),
            start_dts: dts,
            last_dts: dts,
            file: None,
            buf,
            last_flush_dts: dts,
        });
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let Some(cur) = self.cur.as_mut() else { return Ok(()) };
        if cur.file.is_none() {
            cur.file = Some(crate::recordings::create_segment(&cur.path).map_err(std::io::Error::other)?);
            (self.log)("DEB", &format!("creating segment {}", cur.path));
            (self.on_segment)(&cur.path, None);
        }
        if let Some(f) = cur.file.as_mut() {
            f.write_all(&cur.buf)
                .map_err(|e| std::io::Error::other(crate::util::go_path_error("write", &cur.path, &e)))?;
        }
        cur.buf.clear();
        Ok(())
    }

    fn close_segment(&mut self) -> std::io::Result<()> {
        let r = if self.cur.as_ref().is_some_and(|c| !c.buf.is_empty()) {
            self.flush()
        } else {
            Ok(())
        };
        if let Some(cur) = self.cur.take() {
            if cur.file.is_some() {
                (self.on_segment)(&cur.path, Some(dts_span(cur.start_dts, cur.last_dts)));
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::enc;
    use super::*;

    #[test]
    fn dts_spans() {
        assert_eq!(dts_span(126_000, 216_000), Duration::from_secs(1));
        // across the 33-bit wrap
        assert_eq!(dts_span((1 << 33) - 45_000, 45_000), Duration::from_secs(1));
        // earlier: 0
        assert_eq!(dts_span(216_000, 126_000), Duration::ZERO);
        assert_eq!(dts_span(0, 6_000), Duration::from_nanos(66_666_666));
    }

    #[test]
    fn pes_timestamps() {
        let packet = |flags: u8, stamps: &[[u8; 5]]| -> Vec<u8> {
            let mut p = vec![0x47, 0x41, 0x00, 0x10, 0, 0, 1, 0xe0, 0, 0, 0x80, flags, 10];
            for s in stamps {
                p.extend_from_slice(s);
            }
            p.resize(PKT, 0xff);
            p
        };
        let (pts, dts) = ((1u64 << 32) + 12_345, 7_000_000_001u64);
        assert_eq!(pes_dts(&packet(0xc0, &[enc(3, pts), enc(1, dts)])), Some(dts));
        assert_eq!(pes_dts(&packet(0x80, &[enc(2, pts)])), Some(pts));
        assert_eq!(pes_dts(&packet(0x00, &[])), None);
        // not a PES start (no payload_unit_start_indicator)
        let mut p = packet(0x80, &[enc(2, pts)]);
        p[1] = 0x01;
        assert_eq!(pes_dts(&p), None);
    }
}

#[cfg(test)]
mod segment_tests {
    use super::tests_support::*;
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Runs a segmenter (1 s segments) over `packets`: the durations of the completed
    /// segments.
    fn durations(tag: &str, packets: Vec<Vec<u8>>) -> Vec<Duration> {
        let dir = std::env::temp_dir().join(format!("mtxd-ts-{}-{}", tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let format = format!("{}/%Y-%m-%d_%H-%M-%S-%f.ts", dir.display());
        let mut s = TsSegmenter::new(
            format,
            Duration::from_secs(1),
            Duration::from_secs(60),
            Box::new(|_, _| {}),
        );
        let done = Arc::new(Mutex::new(Vec::new()));
        let d = done.clone();
        s.on_segment = Box::new(move |_, dur| d.lock().unwrap().extend(dur));
        s.run(std::io::Cursor::new(packets.concat()));
        let _ = std::fs::remove_dir_all(&dir);
        let v = done.lock().unwrap().clone();
        v
    }

    const MS: u64 = 90;

    /// MediaMTX (format_mpegts_track.go): the first segment starts with the first frame
    /// of any track, a video track's frames before its first random-access point are
    /// dropped, and once video was recorded only its random-access points cut.
    #[test]
    fn audio_and_video_cut_at_video_random_access() {
        let packets = vec![
            pat(),
            pmt(&[(0x1b, VIDEO), (0x0f, AUDIO)]),
            pes(VIDEO, 0, false),
            pes(AUDIO, 100 * MS, true),
            pes(VIDEO, 200 * MS, true),
            // past the duration, but audio cuts no more once video was recorded
            pes(AUDIO, 1150 * MS, true),
            pes(VIDEO, 1250 * MS, false),
            pes(VIDEO, 1300 * MS, true),
            pes(AUDIO, 2500 * MS, true),
        ];
        let want = [1200, 1200].map(Duration::from_millis);
        assert_eq!(durations("av", packets), want);
    }

    /// MediaMTX writes the buffer out when a frame's DTS is recordPartDuration past the
    /// last write (before that frame), not by the wall clock.
    #[test]
    fn parts_are_written_by_dts() {
        let dir = std::env::temp_dir().join(format!("mtxd-ts-parts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let format = format!("{}/%Y-%m-%d_%H-%M-%S-%f.ts", dir.display());
        let part = Duration::from_millis(250);
        let mut s = TsSegmenter::new(format, Duration::from_secs(60), part, Box::new(|_, _| {}));
        let on_disk = |s: &TsSegmenter| {
            let path = &s.cur.as_ref().expect("a segment").path;
            std::fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0)
        };
        for p in [pat(), pmt(&[(0x0f, AUDIO)])] {
            s.packet(&p).unwrap();
        }
        for i in 0..3 {
            s.packet(&pes(AUDIO, i * 100 * MS, true)).unwrap();
        }
        assert_eq!(on_disk(&s), 0);
        // 300 ms: the tables and the three frames before it
        s.packet(&pes(AUDIO, 300 * MS, true)).unwrap();
        assert_eq!(on_disk(&s), 5 * PKT);
        s.packet(&pes(AUDIO, 500 * MS, true)).unwrap();
        assert_eq!(on_disk(&s), 5 * PKT);
        s.packet(&pes(AUDIO, 550 * MS, true)).unwrap();
        assert_eq!(on_disk(&s), 7 * PKT);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Without video, every frame is a random-access point: cut by duration.
    #[test]
    fn audio_only_cuts_by_duration() {
        let mut packets = vec![pat(), pmt(&[(0x0f, AUDIO)])];
        packets.extend((0..=25).map(|i| pes(AUDIO, i * 100 * MS, true)));
        let want = [1000, 1000, 500].map(Duration::from_millis);
        assert_eq!(durations("audio", packets), want);
    }
}

/// Minimal MPEG-TS packets for the tests: PAT, PMT and PES starts.
#[cfg(test)]
mod tests_support {
    use super::PKT;

    pub const PMT: u16 = 0x1000;
    pub const VIDEO: u16 = 0x100;
    pub const AUDIO: u16 = 0x101;

    fn packet(pid: u16, head: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8];
        p.extend_from_slice(head);
        p.extend_from_slice(payload);
        p.resize(PKT, 0xff);
        p
    }

    /// A section (pointer field first), CRC left zero (not checked by the segmenter).
    fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() + 4;
        let mut s = vec![0, table_id, 0xb0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(body);
        s.extend_from_slice(&[0; 4]);
        s
    }

    /// A PES timestamp field: `prefix` (2 = PTS only, 3 = PTS before DTS, 1 = DTS) and
    /// the 33-bit value.
    pub fn enc(prefix: u8, v: u64) -> [u8; 5] {
        [
            prefix << 4 | ((v >> 29) & 0x0e) as u8 | 1,
            (v >> 22) as u8,
            ((v >> 14) & 0xfe) as u8 | 1,
            (v >> 7) as u8,
            ((v << 1) & 0xfe) as u8 | 1,
        ]
    }

    pub fn pat() -> Vec<u8> {
        let body = [0, 1, 0xc1, 0, 0, 0, 1, 0xe0 | (PMT >> 8) as u8, PMT as u8];
        packet(0, &[0x10], &section(0, &body))
    }

    /// A PMT listing (stream type, pid).
    pub fn pmt(streams: &[(u8, u16)]) -> Vec<u8> {
        let mut body = vec![0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0];
        for &(t, pid) in streams {
            body.extend_from_slice(&[t, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
        }
        packet(PMT, &[0x10], &section(2, &body))
    }

    /// The start of a PES with PTS `pts`, flagged random-access in its adaptation field.
    pub fn pes(pid: u16, pts: u64, random_access: bool) -> Vec<u8> {
        let head: &[u8] = if random_access { &[0x30, 1, 0x40] } else { &[0x10] };
        let mut pl = vec![0, 0, 1, 0xc0, 0, 0, 0x80, 0x80, 5];
        pl.extend_from_slice(&enc(2, pts));
        packet(pid, head, &pl)
    }
}
