//! `udpMaxPayloadSize` on the stream: MediaMTX hands its readers RTP payloads of at
//! most udpMaxPayloadSize - 12 bytes (- 10 with RTSPS: SRTP tag). Like MediaMTX's
//! subStreamFormat, the double decodes every H.264/H.265 packet into access units; once a
//! packet is larger than the limit, that format gets an RTP encoder for good (sequence
//! numbers and SSRC continuing from the oversized packet's, an INF line logged): from then
//! on the incoming packets are dropped and each complete access unit is remuxed
//! (parameter sets and delimiters removed, the parameter sets put back before a key frame)
//! and encoded as gortsplib's rtph264/rtph265 encoders do (small NAL units aggregated into
//! STAP-A/AP, big ones cut into FU-A/FU). An oversized packet of another codec is dropped
//! (MediaMTX's "RTP payload size (N) is greater than maximum allowed (M)" for codecs it has
//! no RTP encoder for). A packet the decoder refuses (a lost or orphan fragment, a bad
//! aggregation packet, an access unit over mediacommon's bounds) is not relayed and counts
//! in the stream's `inboundFramesInError`, as MediaMTX's subStreamFormat does.

use crate::media::Sdp;
use base64::Engine;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The RTP payload limit for the global configuration (core.go getRTPMaxPayloadSize).
pub fn max_payload(global: &serde_json::Map<String, serde_json::Value>) -> usize {
    let udp = global.get("udpMaxPayloadSize").and_then(|v| v.as_u64()).unwrap_or(1452) as usize;
    let enc = global.get("rtspEncryption").and_then(|v| v.as_str()).unwrap_or("no");
    let srtp = if matches!(enc, "optional" | "strict") { 10 } else { 0 };
    udp.saturating_sub(12 + srtp).max(16)
}

/// mediacommon's MaxAccessUnitSize (H.264 and H.265); its MaxNALUsPerAccessUnit is 50
/// for H.264 and 21 for H.265 (see `decode`).
const MAX_AU_SIZE: usize = 8 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Codec {
    H264,
    H265,
    Other,
}

impl Codec {
    /// The NAL unit type (H.264: 5 bits; H.265: 6 bits after the forbidden bit).
    fn nalu_type(self, nalu: &[u8]) -> u8 {
        match self {
            Codec::H265 => (nalu[0] >> 1) & 0x3F,
            _ => nalu[0] & 0x1F,
        }
    }

    /// Parameter sets, in the order they are put back (H.264 SPS, PPS; H.265 VPS, SPS, PPS).
    fn param_types(self) -> &'static [u8] {
        match self {
            Codec::H264 => &[7, 8],
            Codec::H265 => &[32, 33, 34],
            Codec::Other => &[],
        }
    }

    fn is_delimiter(self, typ: u8) -> bool {
        match self {
            Codec::H264 => typ == 9,
            Codec::H265 => typ == 35,
            Codec::Other => false,
        }
    }

    /// Key frames that get the parameter sets (H.264 IDR; H.265 IDR_W_RADL, IDR_N_LP, CRA).
    fn is_key(self, typ: u8) -> bool {
        match self {
            Codec::H264 => typ == 5,
            Codec::H265 => matches!(typ, 19..=21),
            Codec::Other => false,
        }
    }
}

/// A complete access unit: its RTP timestamp and NAL units.
type AccessUnit = (u32, Vec<Vec<u8>>);

/// The RTP header fields the encoder writes.
struct Encoder {
    pt: u8,
    ssrc: [u8; 4],
    next_seq: u16,
}

struct Track {
    codec: Codec,
    /// the format's parameter sets (from the SDP, updated in-band: formatUpdater)
    params: Vec<Option<Vec<u8>>>,
    /// decoder: the access unit being received (timestamp, NAL units, size)
    au: Option<(u32, Vec<Vec<u8>>, usize)>,
    /// decoder: the FU-A/FU being reassembled and the sequence number it expects next
    frag: Option<(Vec<u8>, u16)>,
    /// decoder: a packet that starts something was seen (later orphan fragments are errors)
    first_packet: bool,
    /// Some once the format is re-encoded
    enc: Option<Encoder>,
}

/// The path's log: (level, message).
pub type PathLog = Arc<dyn Fn(&str, &str) + Send + Sync>;

pub struct Splitter {
    max: usize,
    tracks: Vec<Track>,
    log: PathLog,
    errors: ErrorDumper,
}

/// MediaMTX's stream `inboundFramesInError` with its errordumper: errors are counted,
/// and a ticker started with the stream reports every second in which some came, with
/// their number and the last one. The ticker thread ends with the dumper.
struct ErrorDumper {
    total: u64,
    /// errors since the last report, and the last one
    pending: Arc<Mutex<(u64, String)>>,
    /// dropped with the dumper, which ends the ticker
    _stop: mpsc::Sender<()>,
}

impl ErrorDumper {
    fn start(log: PathLog) -> ErrorDumper {
        let pending = Arc::new(Mutex::new((0u64, String::new())));
        let (stop, stopped) = mpsc::channel::<()>();
        let errors = pending.clone();
        std::thread::spawn(move || {
            let mut tick = Instant::now();
            loop {
                tick += Duration::from_secs(1);
                let wait = tick.saturating_duration_since(Instant::now());
                if !matches!(stopped.recv_timeout(wait), Err(mpsc::RecvTimeoutError::Timeout)) {
                    return;
                }
                let (n, last) = {
                    let mut e = errors.lock().unwrap();
                    (std::mem::take(&mut e.0), e.1.clone())
                };
                match n {
                    0 => {}
                    1 => log("WAR", &format!("processing error: {}", last)),
                    n => log("WAR", &format!("{} processing errors, last was: {}", n, last)),
                }
            }
        });
        ErrorDumper {
            total: 0,
            pending,
            _stop: stop,
        }
    }

    fn add(&mut self, err: String) {
        self.total += 1;
        let mut e = self.pending.lock().unwrap();
        e.0 += 1;
        e.1 = err;
    }
}

/// (header length, payload end) of an RTP packet, or None if it is malformed.
fn bounds(pkt: &[u8]) -> Option<(usize, usize)> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 {
        return None;
    }
    let mut hl = 12 + 4 * (pkt[0] & 0x0F) as usize;
    if pkt[0] & 0x10 != 0 {
        let ext = pkt.get(hl + 2..hl + 4)?;
        hl += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let mut end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        end = end.checked_sub(*pkt.last()? as usize)?;
    }
    (hl <= end).then_some((hl, end))
}

impl Splitter {
    pub fn new(sdp: &Sdp, max: usize, log: PathLog) -> Splitter {
        let tracks = sdp
            .medias
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let codec = match m.codec {
                    "H264" => Codec::H264,
                    "H265" => Codec::H265,
                    _ => Codec::Other,
                };
                let known = match codec {
                    Codec::H264 => m.params.clone(),
                    Codec::H265 => h265_sprop(&sdp.describe, i),
                    Codec::Other => Vec::new(),
                };
                let mut params = vec![None; codec.param_types().len()];
                for p in known.into_iter().filter(|p| !p.is_empty()) {
                    if let Some(slot) = codec.param_types().iter().position(|&t| t == codec.nalu_type(&p)) {
                        params[slot] = Some(p);
                    }
                }
                Track {
                    codec,
                    params,
                    au: None,
                    frag: None,
                    first_packet: false,
                    enc: None,
                }
            })
            .collect();
        Splitter {
            max,
            tracks,
            errors: ErrorDumper::start(log.clone()),
            log,
        }
    }

    /// alwaysAvailable: another producer feeds the stream. Its packets get fresh decoders
    /// (MediaMTX's are per sub-stream) while the encoders, the stream's, go on.
    pub fn new_producer(&mut self) {
        for t in &mut self.tracks {
            t.au = None;
            t.frag = None;
            t.first_packet = false;
        }
    }

    /// The stream's `inboundFramesInError`.
    pub fn frames_in_error(&self) -> u64 {
        self.errors.total
    }

    /// The packets the readers get for one RTP packet of `media`.
    pub fn split(&mut self, media: usize, pkt: Vec<u8>) -> Vec<Vec<u8>> {
        let max = self.max;
        let Some(t) = self.tracks.get_mut(media) else {
            return vec![pkt];
        };
        let Some((hl, end)) = bounds(&pkt) else {
            return vec![pkt];
        };
        let payload = &pkt[hl..end];
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let marker = pkt[1] & 0x80 != 0;
        // the decoder runs on every packet, as MediaMTX's does, so that the access unit
        // in progress is whole when the encoder starts
        let done = match t.codec {
            Codec::Other => None,
            // a packet the decoder refuses is a frame in error, and is not relayed
            _ => match t.decode(payload, seq, ts, marker) {
                Ok(done) => done,
                Err(e) => {
                    self.errors.add(e);
                    return Vec::new();
                }
            },
        };
        if t.enc.is_none() && payload.len() > max {
            if t.codec == Codec::Other {
                let e = format!(
                    "RTP payload size ({}) is greater than maximum allowed ({})",
                    payload.len(),
                    max
                );
                self.errors.add(e);
                return Vec::new();
            }
            (self.log)(
                "INF",
                &format!(
                    "RTP packets are too big ({} > {}), remuxing them into smaller ones",
                    payload.len(),
                    max
                ),
            );
            t.enc = Some(Encoder {
                pt: pkt[1] & 0x7F,
                ssrc: [pkt[8], pkt[9], pkt[10], pkt[11]],
                next_seq: seq,
            });
        }
        if t.enc.is_none() {
            return vec![pkt];
        }
        match done {
            Some((au_ts, au)) => t.encode(au_ts, au, max),
            None => Vec::new(),
        }
    }
}

impl Track {
    /// gortsplib's rtph264/rtph265 Decoder: NAL units of single, aggregation and
    /// fragmentation packets gathered per timestamp; Ok(Some) with a complete access unit
    /// (marker bit, or a packet with a new timestamp) and its timestamp; Err with the
    /// decoder's text for what MediaMTX counts as a frame in error.
    fn decode(&mut self, payload: &[u8], seq: u16, ts: u32, marker: bool) -> Result<Option<AccessUnit>, String> {
        let Some(nalus) = self.nalus(payload, seq)? else {
            return Ok(None);
        };
        let mut done = None;
        if self.au.as_ref().is_some_and(|(t, _, _)| *t != ts) {
            done = self.au.take().map(|(t, n, _)| (t, n));
        }
        let (_, buf, size) = self.au.get_or_insert_with(|| (ts, Vec::new(), 0));
        let count = buf.len() + nalus.len();
        let max_count = if self.codec == Codec::H265 { 21 } else { 50 };
        if count > max_count {
            self.au = None;
            return Err(format!(
                "NALU count ({}) exceeds maximum allowed ({})",
                count, max_count
            ));
        }
        let new_size = *size + nalus.iter().map(|n| n.len()).sum::<usize>();
        if new_size > MAX_AU_SIZE {
            self.au = None;
            return Err(format!(
                "access unit size ({}) is too big, maximum is {}",
                new_size, MAX_AU_SIZE
            ));
        }
        buf.extend(nalus);
        *size = new_size;
        if marker && done.is_none() {
            done = self.au.take().map(|(t, n, _)| (t, n));
        }
        Ok(done)
    }

    /// The NAL units a packet completes: Ok(None) while a fragmented one goes on (or a
    /// stream is joined in the middle of one).
    fn nalus(&mut self, payload: &[u8], seq: u16) -> Result<Option<Vec<Vec<u8>>>, String> {
        let h265 = self.codec == Codec::H265;
        let (hdr, agg, fu) = if h265 { (2, 48, 49) } else { (1, 24, 28) };
        if payload.len() < hdr {
            self.frag = None;
            return Err("payload is too short".into());
        }
        let typ = self.codec.nalu_type(payload);
        let (fu_name, agg_name) = if h265 {
            ("fragmentation unit", "invalid aggregation unit (invalid size)")
        } else {
            ("FU-A packet", "invalid STAP-A packet (invalid size)")
        };
        if typ == fu {
            let Some(&fu_header) = payload.get(hdr) else {
                if h265 {
                    self.frag = None;
                    return Err("payload is too short".into());
                }
                return Err("invalid FU-A packet (invalid size)".into());
            };
            let data = &payload[hdr + 1..];
            let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
            if start {
                if h265 && end {
                    self.frag = None;
                    return Err("invalid fragmentation unit (can't contain both a start and end bit)".into());
                }
                // the NAL unit header rebuilt from the indicator and the FU header (the
                // F bit of H.264 is not carried over, as gortsplib's decoder does)
                let mut nalu = match self.codec {
                    Codec::H265 => vec![(payload[0] & 0x81) | ((fu_header & 0x3F) << 1), payload[1]],
                    _ => vec![(payload[0] & 0x60) | (fu_header & 0x1F)],
                };
                nalu.extend_from_slice(data);
                self.frag = Some((nalu, seq.wrapping_add(1)));
                self.first_packet = true;
            } else {
                let Some((nalu, next)) = self.frag.as_mut() else {
                    // joined in the middle of a NAL unit: not an error
                    if !self.first_packet {
                        return Ok(None);
                    }
                    return Err(format!("invalid {} (non-starting)", fu_name));
                };
                if *next != seq {
                    self.frag = None;
                    return Err("discarding frame since a RTP packet is missing".into());
                }
                if nalu.len() + data.len() > MAX_AU_SIZE {
                    let n = nalu.len() + data.len();
                    self.frag = None;
                    return Err(format!("NALU size ({}) is too big, maximum is {}", n, MAX_AU_SIZE));
                }
                nalu.extend_from_slice(data);
                *next = seq.wrapping_add(1);
            }
            if !end {
                return Ok(None);
            }
            return Ok(self.frag.take().map(|(n, _)| vec![n]));
        }
        self.frag = None;
        self.first_packet = true;
        if typ == agg {
            let nalus = aggregated(payload, hdr, !h265).ok_or(agg_name)?;
            if nalus.is_empty() {
                return Err("STAP-A packet doesn't contain any NALU".into());
            }
            return Ok(Some(nalus));
        }
        match (h265, typ) {
            (true, 50) => Err("PACI packets are not supported (yet)".into()),
            (false, 25..=27 | 29) => Err(format!("packet type not supported ({})", h264_type_name(typ))),
            _ => Ok(Some(vec![payload.to_vec()])),
        }
    }

    /// formatUpdater + unitRemuxer + the gortsplib encoder: the packets of one access unit.
    fn encode(&mut self, ts: u32, au: Vec<Vec<u8>>, max: usize) -> Vec<Vec<u8>> {
        let codec = self.codec;
        let types = codec.param_types();
        let mut out_au: Vec<Vec<u8>> = Vec::with_capacity(au.len() + types.len());
        let mut key = false;
        for nalu in au {
            let typ = codec.nalu_type(&nalu);
            if let Some(slot) = types.iter().position(|&t| t == typ) {
                self.params[slot] = Some(nalu);
                continue;
            }
            if codec.is_delimiter(typ) {
                continue;
            }
            if codec.is_key(typ) && !key {
                key = true;
                if self.params.iter().all(|p| p.is_some()) {
                    out_au.extend(self.params.iter().flatten().cloned());
                }
            }
            out_au.push(nalu);
        }
        if out_au.is_empty() {
            return Vec::new();
        }
        let payloads = packetize(codec, &out_au, max);
        let Some(enc) = self.enc.as_mut() else {
            return Vec::new();
        };
        let n = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                // a plain 12-byte header, as gortsplib's encoder writes it
                let mut o = Vec::with_capacity(12 + p.len());
                o.push(0x80);
                o.push(enc.pt | if i + 1 == n { 0x80 } else { 0 });
                o.extend_from_slice(&enc.next_seq.to_be_bytes());
                o.extend_from_slice(&ts.to_be_bytes());
                o.extend_from_slice(&enc.ssrc);
                o.extend_from_slice(&p);
                enc.next_seq = enc.next_seq.wrapping_add(1);
                o
            })
            .collect()
    }
}

/// NAL units of an aggregation payload (2-byte sizes after `skip` header bytes); None
/// if a size is 0 or runs past the end (H.264's STAP-A may end in zero padding).
fn aggregated(payload: &[u8], skip: usize, zero_padding: bool) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = payload.get(skip..).unwrap_or(&[]);
    loop {
        if rest.len() < 2 {
            return None;
        }
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        if n == 0 {
            return (zero_padding && rest.iter().all(|&b| b == 0)).then_some(out);
        }
        out.push(rest.get(..n)?.to_vec());
        rest = &rest[n..];
        if rest.is_empty() {
            return Some(out);
        }
    }
}

/// mediacommon's names of the H.264 packet types gortsplib refuses.
fn h264_type_name(typ: u8) -> &'static str {
    match typ {
        25 => "STAP-B",
        26 => "MTAP-16",
        27 => "MTAP-24",
        _ => "FU-B",
    }
}

/// gortsplib's Encoder.Encode: consecutive NAL units batched while their aggregation
/// packet fits; a batch of one is sent alone if shorter than `max`, else fragmented; a
/// batch of several becomes one STAP-A/AP.
fn packetize(codec: Codec, au: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
    let hdr = if codec == Codec::H265 { 2 } else { 1 };
    let agg_len = |batch: &[&Vec<u8>]| hdr + batch.iter().map(|n| 2 + n.len()).sum::<usize>();
    let mut out = Vec::new();
    let mut batch: Vec<&Vec<u8>> = Vec::new();
    for nalu in au {
        let mut with = batch.clone();
        with.push(nalu);
        if agg_len(&with) <= max {
            batch = with;
        } else {
            if !batch.is_empty() {
                out.extend(write_batch(codec, &batch, max));
            }
            batch = vec![nalu];
        }
    }
    out.extend(write_batch(codec, &batch, max));
    out
}

fn write_batch(codec: Codec, batch: &[&Vec<u8>], max: usize) -> Vec<Vec<u8>> {
    match batch {
        [] => Vec::new(),
        [one] if one.len() < max => vec![one.to_vec()],
        [one] => fragment(codec, one, max),
        many => vec![aggregate(codec, many)],
    }
}

/// STAP-A (header: type 24, F and NRI 0, as gortsplib writes it) or H.265 AP (type 48
/// with the lowest layer and temporal ids of its NAL units).
fn aggregate(codec: Codec, nalus: &[&Vec<u8>]) -> Vec<u8> {
    let mut p = match codec {
        Codec::H265 => {
            let layer = nalus
                .iter()
                .map(|n| ((n[0] & 1) << 5) | ((n.get(1).unwrap_or(&0) >> 3) & 0x1F))
                .min();
            let tid = nalus.iter().map(|n| n.get(1).unwrap_or(&0) & 7).min();
            let (layer, tid) = (layer.unwrap_or(0), tid.unwrap_or(0));
            vec![(48 << 1) | (layer & 0x20), ((layer & 0x1F) << 3) | tid]
        }
        _ => vec![24],
    };
    for n in nalus {
        p.extend_from_slice(&(n.len() as u16).to_be_bytes());
        p.extend_from_slice(n);
    }
    p
}

/// FU-A (H.264: max - 2 bytes of the NAL unit per packet) or FU (H.265: max - 3).
fn fragment(codec: Codec, nalu: &[u8], max: usize) -> Vec<Vec<u8>> {
    let (prefix, typ, body) = match codec {
        Codec::H265 if nalu.len() >= 2 => {
            let typ = (nalu[0] >> 1) & 0x3F;
            (vec![(nalu[0] & 0x81) | (49 << 1), nalu[1]], typ, &nalu[2..])
        }
        Codec::H265 => return vec![nalu.to_vec()],
        _ => (vec![(nalu[0] & 0x60) | 28], nalu[0] & 0x1F, &nalu[1..]),
    };
    let room = max.saturating_sub(prefix.len() + 1).max(1);
    let chunks: Vec<&[u8]> = body.chunks(room).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut p = prefix.clone();
            p.push(typ | if i == 0 { 0x80 } else { 0 } | if i + 1 == n { 0x40 } else { 0 });
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// The H.265 parameter sets of media `index` (`sprop-vps`, `sprop-sps`, `sprop-pps` in its
/// fmtp line).
fn h265_sprop(describe: &str, index: usize) -> Vec<Vec<u8>> {
    let section = describe.split("\nm=").nth(index + 1).unwrap_or("");
    let mut out = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("a=fmtp:")) {
        for kv in line.split([';', ' ']) {
            for key in ["sprop-vps=", "sprop-sps=", "sprop-pps="] {
                if let Some(v) = kv.trim().strip_prefix(key) {
                    let first = v.split(',').next().unwrap_or("");
                    if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(first) {
                        out.push(b);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[1, 2, 3, 4]);
        p.extend_from_slice(payload);
        p
    }

    fn splitter(codec: &'static str, params: Vec<Vec<u8>>, max: usize) -> Splitter {
        let media = crate::media::Media {
            control: String::new(),
            codec,
            props: None,
            is_h264: codec == "H264",
            pt: 96,
            clock_rate: 90000,
            params,
            audio_config: None,
        };
        let sdp = Sdp {
            medias: vec![media],
            describe: String::new(),
        };
        Splitter::new(&sdp, max, Arc::new(|_, _| {}))
    }

    #[test]
    fn small_packets_pass_until_one_is_too_big_then_access_units_are_reencoded() {
        let (sps, pps) = (vec![0x67, 1, 2], vec![0x68, 3]);
        let mut s = splitter("H264", vec![sps.clone(), pps.clone()], 100);
        // fits: passed as it is
        let p = rtp(10, 1000, true, &[0x41, 9, 9]);
        assert_eq!(s.split(0, p.clone()), vec![p]);
        // an IDR of 300 bytes in one packet: the encoder starts at its sequence number
        let idr: Vec<u8> = std::iter::once(0x65).chain(std::iter::repeat(7).take(299)).collect();
        let mut stap = vec![24, 0, 2, 9, 0xF0];
        stap.extend_from_slice(&(idr.len() as u16).to_be_bytes());
        stap.extend_from_slice(&idr);
        let out = s.split(0, rtp(11, 4000, true, &stap));
        // AUD dropped, SPS+PPS put back before the IDR in one STAP-A, the IDR in FU-A
        let payloads: Vec<&[u8]> = out.iter().map(|p| &p[12..]).collect();
        assert_eq!(payloads[0], &[&[24u8, 0, 3][..], &sps, &[0, 2], &pps].concat()[..]);
        assert!(payloads[1..].iter().all(|p| p[0] == 0x7C && p.len() <= 100));
        assert_eq!(payloads[1][1], 0x85);
        assert_eq!(payloads.last().unwrap()[1], 0x45);
        let body: Vec<u8> = payloads[1..].iter().flat_map(|p| p[2..].to_vec()).collect();
        assert_eq!(body, idr[1..]);
        let seqs: Vec<u16> = out.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect();
        assert_eq!(seqs, (11..11 + out.len() as u16).collect::<Vec<_>>());
        assert!(out.iter().all(|p| p[4..12] == [0, 0, 0x0F, 0xA0, 1, 2, 3, 4]));
        assert_eq!(out.iter().filter(|p| p[1] & 0x80 != 0).count(), 1);
        assert_ne!(out.last().unwrap()[1] & 0x80, 0);
        // later small units go through the encoder too: two NAL units of one access unit
        // (a FU-A pair and a single packet) come out aggregated
        let a = s.split(0, rtp(12, 7000, false, &[0x7C, 0x81, 1, 2]));
        assert!(a.is_empty());
        let a = s.split(0, rtp(13, 7000, false, &[0x7C, 0x41, 3]));
        assert!(a.is_empty());
        let out = s.split(0, rtp(14, 7000, true, &[0x41, 4]));
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][12..], &[24, 0, 4, 0x61, 1, 2, 3, 0, 2, 0x41, 4]);
        assert_eq!(u16::from_be_bytes([out[0][2], out[0][3]]), 11 + 5);
    }

    #[test]
    fn h265_fu_and_ap_and_hostile_input() {
        let mut s = splitter("H265", Vec::new(), 100);
        // an IDR_W_RADL (19) of 400 bytes: FU packets (type 49) carrying 19
        let mut nalu = vec![19 << 1, 1];
        nalu.extend(std::iter::repeat(9).take(398));
        let out = s.split(0, rtp(1, 0, true, &nalu));
        assert!(out
            .iter()
            .all(|p| (p[12] >> 1) & 0x3F == 49 && p[14] & 0x3F == 19 && p.len() - 12 <= 100));
        assert_eq!(out.iter().map(|p| p.len() - 15).sum::<usize>(), 398);
        // two small NAL units of one access unit: one AP (type 48)
        assert!(s.split(0, rtp(2, 3000, false, &[2, 1, 5])).is_empty());
        let out = s.split(0, rtp(3, 3000, true, &[2, 1, 6]));
        assert_eq!(&out[0][12..], &[48 << 1, 1, 0, 3, 2, 1, 5, 0, 3, 2, 1, 6]);
        // malformed or truncated packets neither panic nor grow
        assert!(s.split(0, rtp(4, 6000, true, &[48 << 1, 1, 0xFF, 0xFF, 1])).is_empty());
        assert!(s.split(0, rtp(5, 6000, true, &[49 << 1])).is_empty());
        assert!(s.split(0, rtp(9, 6000, true, &[49 << 1, 1, 0x13, 7])).is_empty());
        assert_eq!(bounds(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn refused_packets_are_frames_in_error_and_not_relayed() {
        let mut s = splitter("H264", Vec::new(), 1400);
        // joined in the middle of a NAL unit: relayed, no error
        let orphan = rtp(1, 0, false, &[0x7C, 0x05, 1]);
        assert_eq!(s.split(0, orphan.clone()), vec![orphan]);
        // a fragment lost after a start: the next one is refused, and so is the rest
        let start = rtp(2, 3000, false, &[0x7C, 0x85, 1]);
        assert_eq!(s.split(0, start.clone()), vec![start]);
        assert!(s.split(0, rtp(4, 3000, false, &[0x7C, 0x05, 2])).is_empty());
        assert!(s.split(0, rtp(5, 3000, true, &[0x7C, 0x45, 3])).is_empty());
        // STAP-B is not supported; a STAP-A whose size runs past its end is malformed
        assert!(s.split(0, rtp(6, 6000, true, &[25, 0, 1, 0x41])).is_empty());
        assert!(s.split(0, rtp(7, 6000, true, &[24, 0, 9, 0x41])).is_empty());
        assert_eq!(s.frames_in_error(), 4);
        // a good packet goes on
        let ok = rtp(8, 9000, true, &[0x41, 1]);
        assert_eq!(s.split(0, ok.clone()), vec![ok]);
        assert_eq!(s.frames_in_error(), 4);
    }

    #[test]
    fn other_codecs_lose_oversized_packets_only() {
        let mut s = splitter("Opus", Vec::new(), 50);
        let small = rtp(1, 0, true, &[1; 40]);
        assert_eq!(s.split(0, small.clone()), vec![small]);
        assert!(s.split(0, rtp(2, 960, true, &[1; 60])).is_empty());
        let small = rtp(3, 1920, true, &[1; 40]);
        assert_eq!(s.split(0, small.clone()), vec![small]);
        assert_eq!(s.frames_in_error(), 1);
    }

    #[test]
    fn h265_parameter_sets_from_the_sdp() {
        let d = "v=0\r\nm=video 0 RTP/AVP 96\r\na=fmtp:96 sprop-vps=QAE=; sprop-sps=QgE=; sprop-pps=RAE=\r\n";
        assert_eq!(h265_sprop(d, 0), vec![vec![0x40, 1], vec![0x42, 1], vec![0x44, 1]]);
    }
}
