//! Frame tap (design.md "Frame tap"): while a camera's stream is up (streaming or recording),
//! one FFmpeg reader per camera copies the MediaMTX stream's video, without decoding, as an
//! Annex-B elementary stream to a pipe. A reader thread keeps only the last group of pictures
//! (from the newest IDR/IRAP access unit with its parameter sets, bounded in bytes). A photo
//! decodes that GOP with a short-lived FFmpeg and keeps the newest picture: no RTSP session
//! and no wait for a keyframe per photo, and no decoding while nobody asks.

use super::ffmpeg::{EventSink, Progress, Spec, StdoutSink, Supervised};
use super::image::{self, Frame};
use crate::config::Config;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A GOP larger than this is dropped until the next IRAP (a stream with very long key-frame
/// intervals then falls back to the tiers instead of growing memory without bound).
pub const MAX_GOP_BYTES: usize = 16 << 20;
/// Data older than this is stale: the stream stalled, a photo goes to the tiers.
pub const STALE_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// FFmpeg's raw elementary-stream format name.
    pub fn format(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "hevc",
        }
    }
    /// From MediaMTX's track codec name (`H264`, `H265`); other codecs have no tap.
    pub fn from_mediamtx(name: &str) -> Option<Codec> {
        match name {
            "H264" => Some(Codec::H264),
            "H265" => Some(Codec::H265),
            _ => None,
        }
    }
    /// From the FFmpeg encoder our publisher runs (`libx264`, `libx265`, `h264_v4l2m2m`, …).
    pub fn from_encoder(name: &str) -> Codec {
        let n = name.to_ascii_lowercase();
        if n.contains("265") || n.contains("hevc") {
            Codec::H265
        } else {
            Codec::H264
        }
    }
}

/// What one NAL unit header says, for cutting the stream into GOPs.
#[derive(Debug, PartialEq)]
enum Nal {
    /// A coded slice: `irap` = random access point, `first` = first slice of its picture.
    Slice { irap: bool, first: bool },
    /// Parameter sets, SEI, AUD, …: they belong to the next picture.
    Other,
}

/// Header bytes needed after the start code to classify a NAL unit.
fn header_len(codec: Codec) -> usize {
    match codec {
        Codec::H264 => 2,
        Codec::H265 => 3,
    }
}

fn classify(codec: Codec, h: &[u8]) -> Nal {
    match codec {
        Codec::H264 => {
            let t = h[0] & 0x1f;
            if (1..=5).contains(&t) {
                // first_mb_in_slice = ue(v) 0 ⇔ its first bit is 1
                Nal::Slice {
                    irap: t == 5,
                    first: h[1] & 0x80 != 0,
                }
            } else {
                Nal::Other
            }
        }
        Codec::H265 => {
            let t = (h[0] >> 1) & 0x3f;
            if t < 32 {
                Nal::Slice {
                    irap: (16..=23).contains(&t),
                    first: h[2] & 0x80 != 0, // first_slice_segment_in_pic_flag
                }
            } else {
                Nal::Other
            }
        }
    }
}

/// The last GOP of an Annex-B stream, fed in chunks as they arrive.
pub struct Gop {
    codec: Codec,
    /// Bytes from the newest IRAP access unit (its leading parameter sets included) on.
    buf: Vec<u8>,
    /// Where the start-code scan resumes.
    scan: usize,
    /// Start of the non-slice NAL units after the last slice (they lead the next picture).
    run_start: Option<usize>,
    has_irap: bool,
    /// Pictures in `buf`, and in `buf[..complete]`.
    pictures: u32,
    complete: usize,
    complete_pictures: u32,
    /// When `complete` last advanced: the arrival of the newest whole access unit.
    last_at: Option<Instant>,
}

impl Gop {
    pub fn new(codec: Codec) -> Gop {
        Gop {
            codec,
            buf: Vec::new(),
            scan: 0,
            run_start: None,
            has_irap: false,
            pictures: 0,
            complete: 0,
            complete_pictures: 0,
            last_at: None,
        }
    }

    fn drop_front(&mut self, n: usize) {
        self.buf.drain(..n);
        self.complete = self.complete.saturating_sub(n);
        if self.complete == 0 {
            self.complete_pictures = 0;
        }
    }

    /// Appends a chunk; `whole` = the writer had nothing more to give (FFmpeg writes an access
    /// unit per packet and flushes it), so everything so far is whole access units.
    pub fn push(&mut self, chunk: &[u8], whole: bool, now: Instant) {
        self.buf.extend_from_slice(chunk);
        let need = header_len(self.codec);
        loop {
            let Some(rel) = self.buf[self.scan..].windows(3).position(|w| w == [0, 0, 1]) else {
                self.scan = self.buf.len().saturating_sub(2);
                break;
            };
            let s = self.scan + rel;
            if s + 3 + need > self.buf.len() {
                self.scan = s;
                break;
            }
            // a four-byte start code begins one byte earlier
            let st = if s > 0 && self.buf[s - 1] == 0 { s - 1 } else { s };
            match classify(self.codec, &self.buf[s + 3..s + 3 + need]) {
                Nal::Other => {
                    self.run_start.get_or_insert(st);
                    self.scan = s + 3;
                }
                Nal::Slice { irap, first } => {
                    let lead = self.run_start.take().unwrap_or(st);
                    let dropped = if irap && first {
                        self.has_irap = true;
                        self.pictures = 0;
                        lead
                    } else if !self.has_irap {
                        // nothing decodable before the first IRAP
                        st
                    } else {
                        0
                    };
                    self.drop_front(dropped);
                    if irap && first {
                        // what was whole belonged to the previous GOP
                        self.complete = 0;
                        self.complete_pictures = 0;
                    }
                    if first && self.has_irap {
                        self.pictures += 1;
                    }
                    self.scan = s + 3 - dropped;
                }
            }
        }
        if self.buf.len() > MAX_GOP_BYTES {
            log::debug!("frame tap: GOP over {MAX_GOP_BYTES} bytes; dropped until the next IRAP");
            *self = Gop::new(self.codec);
            return;
        }
        if whole && self.has_irap && self.pictures > 0 {
            self.complete = self.buf.len();
            self.complete_pictures = self.pictures;
            self.last_at = Some(now);
        }
    }

    /// The decodable data (whole access units from the IRAP on), its picture count and
    /// its age.
    pub fn snapshot(&self) -> Option<(Vec<u8>, u32, Instant)> {
        let at = self.last_at?;
        (self.has_irap && self.complete > 0 && self.complete_pictures > 0)
            .then(|| (self.buf[..self.complete].to_vec(), self.complete_pictures, at))
    }

    /// Bytes held (for the cost figures).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }
}

/// Starts a decoder for one GOP: FFmpeg reading an Annex-B stream on stdin and writing
/// every picture as YUV 4:2:0 (y4m) on stdout. Started ahead of the photo that uses it (see
/// [`Tap`]): it loads its libraries and then waits on stdin, so a photo does not pay for
/// FFmpeg's start (about 100 ms on a small machine).
fn spawn_decoder(program: &str, codec: Codec) -> std::io::Result<std::process::Child> {
    Command::new(program)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            codec.format(),
            "-i",
            "pipe:0",
        ])
        .args(["-an", "-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Feeds `data` (an Annex-B GOP) to `child` (from [`spawn_decoder`]) and returns its last
/// picture; only that one is converted to RGB. Blocking, bounded by `timeout`; the child is
/// always reaped.
fn decode_last(child: std::process::Child, data: Vec<u8>, timeout: Duration) -> Result<Frame, String> {
    let run = super::ffmpeg::run_bounded(child, Some(data), timeout, last_y4m_picture)
        .map_err(|e| format!("the decoder failed: {e}"))?;
    if run.timed_out {
        return Err(format!("the decoder took more than {} ms", timeout.as_millis()));
    }
    let why = run.last_error_line();
    let (w, h, yuv) = run.output.map_err(|e| {
        format!("the decoder gave no picture ({}): {e} {why}", run.status)
            .trim()
            .to_string()
    })?;
    image::raw_to_rgb("YU12", w, h, w, &yuv)
        .map(Frame::Rgb)
        .map_err(|e| e.0)
}

/// Reads a y4m (4:2:0) stream to its end, keeping only the last picture: (w, h, planes).
fn last_y4m_picture(out: impl Read) -> Result<(u32, u32, Vec<u8>), String> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
    let header = String::from_utf8_lossy(&line).to_string();
    if !header.starts_with("YUV4MPEG2 ") {
        return Err("no picture".into());
    }
    let field = |c: char| {
        header
            .split_whitespace()
            .find_map(|f| f.strip_prefix(c))
            .and_then(|v| v.parse::<u32>().ok())
    };
    let (w, h) = (field('W').ok_or("y4m without W")?, field('H').ok_or("y4m without H")?);
    let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
    let size = w as usize * h as usize + 2 * cw * ch;
    let (mut cur, mut last) = (vec![0u8; size], None::<Vec<u8>>);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
            break;
        }
        if !line.starts_with(b"FRAME") {
            return Err("bad y4m frame header".into());
        }
        r.read_exact(&mut cur).map_err(|e| format!("short y4m picture: {e}"))?;
        let done = last.replace(cur);
        cur = done.unwrap_or_else(|| vec![0u8; size]);
    }
    last.map(|p| (w, h, p)).ok_or_else(|| "no picture".into())
}

/// The GOP store of one camera's tap, fed by the reader thread.
struct Store {
    gop: Mutex<Gop>,
}

/// A running tap: its FFmpeg reader (supervised: restarted when it ends or stalls) and the
/// GOP it keeps.
struct Tap {
    codec: Codec,
    store: Arc<Store>,
    child: Supervised,
    spare: Arc<Mutex<Spare>>,
}

/// A decoder started ahead, waiting for the next photo's GOP; none once the tap stopped.
#[derive(Default)]
struct Spare {
    child: Option<std::process::Child>,
    closed: bool,
}

impl Tap {
    fn stop(mut self) {
        self.child.stop();
        let spare = {
            let mut s = self.spare.lock().unwrap();
            s.closed = true;
            s.child.take()
        };
        if let Some(mut c) = spare {
            drop(c.stdin.take()); // EOF: it ends by itself
            super::ffmpeg::terminate(&mut c, Duration::from_secs(1));
        }
    }
}

/// A photo from the tap.
pub struct Tapped {
    pub frame: Frame,
    /// Age of the newest access unit at the moment the GOP was taken.
    pub age: Duration,
}

/// The taps of all cameras, and why each is wanted.
pub struct Taps {
    config: Arc<Config>,
    running: Mutex<HashMap<String, Tap>>,
    /// Cameras streaming by `start_streaming` (recordings are asked of the recording manager).
    streaming: Mutex<HashSet<String>>,
    /// Set by [`Taps::stop_all`]: no tap starts during shutdown.
    closed: std::sync::atomic::AtomicBool,
}

impl Taps {
    pub fn new(config: Arc<Config>) -> Taps {
        Taps {
            config,
            running: Mutex::new(HashMap::new()),
            streaming: Mutex::new(HashSet::new()),
            closed: Default::default(),
        }
    }

    pub fn set_streaming(&self, device: &str, on: bool) {
        let mut s = self.streaming.lock().unwrap();
        if on {
            s.insert(device.to_string());
        } else {
            s.remove(device);
        }
    }

    pub fn is_streaming(&self, device: &str) -> bool {
        self.streaming.lock().unwrap().contains(device)
    }

    /// Devices with a tap running or wanted for streaming.
    pub fn devices(&self) -> Vec<String> {
        let mut d: HashSet<String> = self.running.lock().unwrap().keys().cloned().collect();
        d.extend(self.streaming.lock().unwrap().iter().cloned());
        d.into_iter().collect()
    }

    pub fn is_running(&self, device: &str) -> bool {
        self.running.lock().unwrap().contains_key(device)
    }

    /// Pid of the tap's FFmpeg reader (0 while it restarts), if a tap runs.
    pub fn pid(&self, device: &str) -> Option<i32> {
        self.running.lock().unwrap().get(device).map(|t| t.child.pid())
    }

    /// MediaMTX readers that are ours (not viewers): 1 while a tap runs.
    pub fn readers(&self, device: &str) -> usize {
        self.is_running(device) as usize
    }

    /// Starts the tap of `device` (no-op when it runs with the same codec).
    pub fn start(&self, device: &str, codec: Codec) {
        let mut running = self.running.lock().unwrap();
        if self.closed.load(std::sync::atomic::Ordering::SeqCst)
            || running.get(device).is_some_and(|t| t.codec == codec)
        {
            return;
        }
        let store = Arc::new(Store {
            gop: Mutex::new(Gop::new(codec)),
        });
        let url = format!("rtsp://127.0.0.1:{}/{device}", self.config.mediamtx.rtsp_port);
        // -c copy: no decoding while nobody asks; dump_extra repeats the parameter sets
        // (from the SDP) before every key frame so each GOP decodes on its own;
        // -flush_packets: each access unit reaches the pipe at once.
        let args = [
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-rtsp_transport",
            "tcp",
            "-i",
            &url,
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-bsf:v",
            "dump_extra=freq=keyframe",
            "-flush_packets",
            "1",
            "-f",
            codec.format(),
            "pipe:1",
        ]
        .map(String::from)
        .to_vec();
        let st = store.clone();
        let mut spec = Spec::new(format!("tap:{device}"), &self.config.ffmpeg.path, args);
        spec.stall_timeout = Some(self.config.ffmpeg.stall_timeout.get());
        spec.stop_timeout = self.config.ffmpeg.stop_timeout.get();
        spec.backoff_min = Duration::from_millis(300);
        spec.backoff_max = Duration::from_secs(5);
        spec.stdout = Some(StdoutSink(Arc::new(move |out, progress| {
            read_stream(out, progress, &st, codec)
        })));
        let sink: EventSink = Arc::new(|name: &str, ev| log::debug!("{name}: {ev:?}"));
        log::info!("{device}: frame tap started ({})", codec.format());
        let spare = spawn_decoder(&self.config.ffmpeg.path, codec).ok();
        let old = running.insert(
            device.to_string(),
            Tap {
                codec,
                store,
                child: Supervised::start(spec, sink),
                spare: Arc::new(Mutex::new(Spare {
                    child: spare,
                    closed: false,
                })),
            },
        );
        drop(running);
        if let Some(t) = old {
            t.stop();
        }
    }

    /// Stops the tap of `device` and waits for its reader to be reaped. Blocking.
    pub fn stop(&self, device: &str) {
        let tap = self.running.lock().unwrap().remove(device);
        if let Some(t) = tap {
            t.stop();
            log::info!("{device}: frame tap released");
        }
    }

    /// Stops every tap (service shutdown). Blocking.
    pub fn stop_all(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let all: Vec<Tap> = self.running.lock().unwrap().drain().map(|(_, t)| t).collect();
        for t in all {
            t.stop();
        }
    }

    /// The newest picture of `device`'s stream, decoded from the tap's GOP. Blocking.
    /// `Err` (the caller goes to the tiers) when no tap runs, it holds no whole GOP yet,
    /// its data is stale or the decoder fails.
    pub fn grab(&self, device: &str, timeout: Duration) -> Result<Tapped, String> {
        let (store, codec, spare) = {
            let running = self.running.lock().unwrap();
            let t = running.get(device).ok_or("no tap")?;
            (t.store.clone(), t.codec, t.spare.clone())
        };
        let (data, _pictures, at) = store.gop.lock().unwrap().snapshot().ok_or("no picture yet")?;
        let age = at.elapsed();
        if age > STALE_AFTER {
            return Err(format!("stale: no data for {} ms", age.as_millis()));
        }
        let program = &self.config.ffmpeg.path;
        // the spare decoder, unless it died meanwhile
        let mut ready = spare.lock().unwrap().child.take();
        if let Some(c) = ready.as_mut() {
            if !matches!(c.try_wait(), Ok(None)) {
                let _ = c.wait();
                ready = None;
            }
        }
        let child = match ready {
            Some(c) => c,
            None => spawn_decoder(program, codec).map_err(|e| format!("cannot start ffmpeg: {e}"))?,
        };
        let frame = decode_last(child, data, timeout);
        // the next photo's decoder, started now
        let next = spawn_decoder(program, codec).ok();
        let mut slot = spare.lock().unwrap();
        if slot.closed || slot.child.is_some() {
            drop(slot);
            if let Some(mut c) = next {
                drop(c.stdin.take());
                super::ffmpeg::terminate(&mut c, Duration::from_secs(1));
            }
        } else {
            slot.child = next;
        }
        Ok(Tapped { frame: frame?, age })
    }

    /// Bytes the tap of `device` holds.
    pub fn held(&self, device: &str) -> Option<usize> {
        let running = self.running.lock().unwrap();
        let store = running.get(device)?.store.clone();
        drop(running);
        let n = store.gop.lock().unwrap().held();
        Some(n)
    }
}

impl Drop for Taps {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The reader thread: the pipe into the GOP store until EOF (the child ended).
fn read_stream(mut out: std::process::ChildStdout, progress: Progress, store: &Store, codec: Codec) {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                progress.mark();
                store.gop.lock().unwrap().push(&buf[..n], n < buf.len(), Instant::now());
            }
        }
    }
    // a new session starts from a new key frame
    *store.gop.lock().unwrap() = Gop::new(codec);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(h: &[u8], len: usize) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1];
        v.extend_from_slice(h);
        v.resize(4 + len, 0x55);
        v
    }

    #[test]
    fn keeps_the_last_gop_with_its_parameter_sets() {
        let t0 = Instant::now();
        let mut g = Gop::new(Codec::H264);
        let (sps, pps) = (nal(&[0x67, 0x42], 10), nal(&[0x68, 0xce], 4));
        let idr = nal(&[0x65, 0x88], 100);
        let p = nal(&[0x41, 0x9a], 50);
        // P pictures before any IDR are not decodable: dropped
        g.push(&p, true, t0);
        assert!(g.snapshot().is_none());
        let mut gop1 = [sps.clone(), pps.clone(), idr.clone()].concat();
        g.push(&gop1, true, t0);
        g.push(&p, true, t0);
        gop1.extend_from_slice(&p);
        let (data, n, _) = g.snapshot().unwrap();
        assert_eq!((data, n), (gop1.clone(), 2));
        // an access unit split over two reads: only whole ones are handed out
        g.push(&p[..20], false, t0);
        assert_eq!(g.snapshot().unwrap().1, 2);
        g.push(&p[20..], true, t0);
        assert_eq!(g.snapshot().unwrap().1, 3);
        // the next IDR starts a new GOP, its parameter sets included
        let gop2 = [sps, pps, idr].concat();
        g.push(&gop2, true, t0);
        let (data, n, _) = g.snapshot().unwrap();
        assert_eq!((data, n), (gop2, 1));
    }

    #[test]
    fn hevc_irap_and_slices() {
        let t0 = Instant::now();
        let mut g = Gop::new(Codec::H265);
        let vps = nal(&[0x40, 0x01, 0x0c], 10);
        let idr = nal(&[0x26, 0x01, 0xaf], 100); // IDR_W_RADL (19)
        let trail = nal(&[0x02, 0x01, 0xd0], 30); // TRAIL_R (1)
        let second_slice = nal(&[0x02, 0x01, 0x10], 30); // same picture
        g.push(&[vps, idr, trail, second_slice].concat(), true, t0);
        assert_eq!(g.snapshot().unwrap().1, 2);
    }

    #[test]
    fn decodes_the_last_picture_of_a_real_gop() {
        // 12 pictures of testsrc2 as H.264, one GOP; the last one is picture 11
        for (codec, enc) in [(Codec::H264, "libx264"), (Codec::H265, "libx265")] {
            let out = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
                .args(["testsrc2=size=160x120:rate=10", "-frames:v", "12", "-c:v", enc])
                .args(["-g", "100", "-pix_fmt", "yuv420p", "-f", codec.format(), "pipe:1"])
                .output()
                .expect("ffmpeg runs");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let mut g = Gop::new(codec);
            for c in out.stdout.chunks(1000) {
                g.push(c, true, Instant::now());
            }
            let (data, n, _) = g.snapshot().unwrap();
            assert_eq!(n, 12, "{codec:?}");
            let child = spawn_decoder("ffmpeg", codec).unwrap();
            let Frame::Rgb(last) = decode_last(child, data, Duration::from_secs(20)).unwrap() else {
                panic!("rgb")
            };
            assert_eq!((last.width, last.height), (160, 120));
            // the same picture straight from lavfi
            let want = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
                .args([
                    "testsrc2=size=160x120:rate=10",
                    "-vf",
                    "select=eq(n\\,11)",
                    "-frames:v",
                    "1",
                ])
                .args(["-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "pipe:1"])
                .output()
                .unwrap();
            let want = image::parse_ppm(&want.stdout).unwrap();
            let diff: f64 = last
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / want.data.len() as f64;
            assert!(diff < 12.0, "{codec:?}: mean difference {diff} to picture 11");
        }
    }
}
