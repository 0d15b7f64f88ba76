//! One continuous RTP stream out of changing producers, so that the readers of an
//! alwaysAvailable path stay connected (offline stream → publisher → offline stream), as
//! they do on MediaMTX's single stream: SSRC, sequence numbers and timestamps continue
//! across a switch and payload types are the stream's. The readers know only the first
//! producer's H.264 parameter sets (from the SDP), so the current producer's are sent
//! in-band at a switch and before every IDR.

use crate::media::Sdp;

pub struct Restamper {
    tracks: Vec<Track>,
}

struct Track {
    pt: u8,
    ssrc: u32,
    clock_rate: u32,
    h264: bool,
    params: Vec<Vec<u8>>,
    /// added to the producer's timestamps; None until its first packet
    ts_delta: Option<u32>,
    next_seq: u16,
    last_ts: u32,
}

fn random_u32(salt: u32) -> u32 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    n.wrapping_mul(2654435761).wrapping_add(salt.wrapping_mul(40503))
}

impl Restamper {
    pub fn new(sdp: &Sdp) -> Restamper {
        let tracks = sdp
            .medias
            .iter()
            .enumerate()
            .map(|(i, m)| Track {
                pt: m.pt,
                ssrc: random_u32(i as u32),
                clock_rate: m.clock_rate,
                h264: m.is_h264,
                params: m.params.clone(),
                ts_delta: None,
                next_seq: random_u32(i as u32 + 7) as u16,
                last_ts: random_u32(i as u32 + 13),
            })
            .collect();
        Restamper { tracks }
    }

    /// A new producer (same tracks, checked by the caller) takes over.
    pub fn switch(&mut self, sdp: &Sdp) {
        for (t, m) in self.tracks.iter_mut().zip(&sdp.medias) {
            t.params = m.params.clone();
            t.ts_delta = None;
        }
    }

    /// The packets readers get for one RTP packet of the producer (none if malformed).
    pub fn rewrite(&mut self, media: usize, pkt: &[u8]) -> Vec<Vec<u8>> {
        let Some(t) = self.tracks.get_mut(media) else {
            return Vec::new();
        };
        let Some(off) = payload_offset(pkt) else {
            return Vec::new();
        };
        let in_ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let first = t.ts_delta.is_none();
        // the new producer's first packet comes one frame (1/30 s) after the last one
        let delta = *t
            .ts_delta
            .get_or_insert_with(|| t.last_ts.wrapping_add(t.clock_rate / 30).wrapping_sub(in_ts));
        let ts = in_ts.wrapping_add(delta);
        let mut out = Vec::new();
        if t.h264 && (first || starts_idr(&pkt[off..])) {
            for nal in &t.params {
                let mut p = header(t.pt, t.next_seq, ts, t.ssrc);
                p.extend_from_slice(nal);
                t.next_seq = t.next_seq.wrapping_add(1);
                out.push(p);
            }
        }
        let mut p = pkt.to_vec();
        p[1] = (pkt[1] & 0x80) | t.pt;
        p[2..4].copy_from_slice(&t.next_seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&t.ssrc.to_be_bytes());
        t.next_seq = t.next_seq.wrapping_add(1);
        t.last_ts = ts;
        out.push(p);
        out
    }
}

fn header(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut h = vec![0x80, pt];
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&ts.to_be_bytes());
    h.extend_from_slice(&ssrc.to_be_bytes());
    h
}

/// Where the payload starts (after CSRCs and a header extension); None if malformed.
fn payload_offset(pkt: &[u8]) -> Option<usize> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 {
        return None;
    }
    let mut off = 12 + 4 * (pkt[0] & 0x0f) as usize;
    if pkt[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*pkt.get(off + 2)?, *pkt.get(off + 3)?]) as usize;
        off += 4 + 4 * words;
    }
    (off < pkt.len()).then_some(off)
}

/// An H.264 RTP payload that starts an IDR picture (single NAL, STAP-A, FU-A start).
fn starts_idr(p: &[u8]) -> bool {
    match p.first().map(|b| b & 0x1f) {
        Some(5) => true,
        Some(28) => p.get(1).is_some_and(|b| b & 0x80 != 0 && b & 0x1f == 5),
        Some(24) => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if p[i + 2] & 0x1f == 5 {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_across_producers() {
        let sdp = crate::media::parse_sdp(
            "v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=Z0IAHg==,aM4=\r\n",
        )
        .unwrap();
        let mut r = Restamper::new(&sdp);
        let pkt = |seq: u16, ts: u32, nal: u8| {
            let mut p = header(97, seq, ts, 1);
            p.push(nal);
            p
        };
        // first packet: parameter sets in front
        let out = r.rewrite(0, &pkt(10, 1000, 0x65));
        assert_eq!(out.len(), 3);
        let seq = |p: &Vec<u8>| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &Vec<u8>| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(out[2][1] & 0x7f, 96);
        let (s0, t0) = (seq(&out[2]), ts(&out[2]));
        // another producer with unrelated numbers continues the sequence
        r.switch(&sdp);
        let out = r.rewrite(0, &pkt(5000, 77, 0x41));
        assert_eq!(out.len(), 3);
        assert_eq!(seq(&out[0]), s0.wrapping_add(1));
        assert_eq!(ts(&out[2]), t0.wrapping_add(3000));
        // malformed input gives nothing
        assert!(r.rewrite(0, &[0x80, 96]).is_empty());
        assert!(r.rewrite(3, &pkt(1, 1, 1)).is_empty());
    }
}
