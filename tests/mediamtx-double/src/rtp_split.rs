//! `udpMaxPayloadSize` on the stream: MediaMTX hands its readers RTP payloads of at
//! most udpMaxPayloadSize - 12 bytes (- 10 with RTSPS: SRTP tag). Once a format's
//! packet is larger, that format is re-packetized for good, sequence numbers continuing
//! from the oversized packet's. Here H.264 and H.265 payloads that are too big are cut
//! into FU-A / FU fragments and every later packet of the media is renumbered; an
//! oversized packet of another codec is dropped (MediaMTX's error for codecs it has no
//! RTP encoder for).

use crate::media::Sdp;

/// The RTP payload limit for the global configuration (core.go getRTPMaxPayloadSize).
pub fn max_payload(global: &serde_json::Map<String, serde_json::Value>) -> usize {
    let udp = global.get("udpMaxPayloadSize").and_then(|v| v.as_u64()).unwrap_or(1452) as usize;
    let enc = global.get("rtspEncryption").and_then(|v| v.as_str()).unwrap_or("no");
    let srtp = if matches!(enc, "optional" | "strict") { 10 } else { 0 };
    udp.saturating_sub(12 + srtp).max(16)
}

#[derive(Clone, Copy, PartialEq)]
enum Codec {
    H264,
    H265,
    Other,
}

struct Track {
    codec: Codec,
    /// Some(next sequence number) once the media is re-packetized
    next_seq: Option<u16>,
}

pub struct Splitter {
    max: usize,
    tracks: Vec<Track>,
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
    pub fn new(sdp: &Sdp, max: usize) -> Splitter {
        let tracks = sdp
            .medias
            .iter()
            .map(|m| Track {
                codec: match m.codec {
                    "H264" => Codec::H264,
                    "H265" => Codec::H265,
                    _ => Codec::Other,
                },
                next_seq: None,
            })
            .collect();
        Splitter { max, tracks }
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
        if payload.len() > max && t.next_seq.is_none() {
            if t.codec == Codec::Other {
                // "RTP payload size (%d) is greater than maximum allowed (%d)"
                return Vec::new();
            }
            t.next_seq = Some(u16::from_be_bytes([pkt[2], pkt[3]]));
        }
        let Some(mut seq) = t.next_seq else {
            return vec![pkt];
        };
        let payloads = if payload.len() <= max {
            vec![payload.to_vec()]
        } else {
            match t.codec {
                Codec::H264 => split_h264(payload, max),
                Codec::H265 => split_h265(payload, max),
                Codec::Other => Vec::new(),
            }
        };
        let marker = pkt[1] & 0x80;
        let n = payloads.len();
        let out = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                // a plain 12-byte header: no CSRCs, extension or padding, as re-encoded
                let mut o = Vec::with_capacity(12 + p.len());
                o.push(0x80);
                o.push((pkt[1] & 0x7F) | if i + 1 == n { marker } else { 0 });
                o.extend_from_slice(&seq.to_be_bytes());
                o.extend_from_slice(&pkt[4..12]);
                o.extend_from_slice(&p);
                seq = seq.wrapping_add(1);
                o
            })
            .collect();
        t.next_seq = Some(seq);
        out
    }
}

/// NAL units of an aggregation payload (2-byte sizes after `skip` header bytes).
fn aggregated(payload: &[u8], skip: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = payload.get(skip..).unwrap_or(&[]);
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(nalu) = rest.get(2..2 + n) else { break };
        if n > 0 {
            out.push(nalu);
        }
        rest = &rest[2 + n..];
    }
    out
}

/// Cuts `data` into fragments of `prefix` + at most max - prefix.len() - 1 bytes with a
/// FU header (`typ` plus S on the first if `start`, E on the last if `end`).
fn fragments(prefix: &[u8], typ: u8, data: &[u8], start: bool, end: bool, max: usize) -> Vec<Vec<u8>> {
    let room = max.saturating_sub(prefix.len() + 1).max(1);
    let chunks: Vec<&[u8]> = data.chunks(room).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut h = typ;
            if i == 0 && start {
                h |= 0x80;
            }
            if i + 1 == n && end {
                h |= 0x40;
            }
            let mut p = prefix.to_vec();
            p.push(h);
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// H.264 (RFC 6184): a NAL unit that does not fit becomes FU-A fragments.
fn h264_nalu(nalu: &[u8], max: usize) -> Vec<Vec<u8>> {
    if nalu.len() <= max {
        return vec![nalu.to_vec()];
    }
    let ind = (nalu[0] & 0xE0) | 28;
    fragments(&[ind], nalu[0] & 0x1F, &nalu[1..], true, true, max)
}

fn split_h264(payload: &[u8], max: usize) -> Vec<Vec<u8>> {
    match payload[0] & 0x1F {
        24 => aggregated(payload, 1)
            .into_iter()
            .flat_map(|n| h264_nalu(n, max))
            .collect(),
        28 if payload.len() >= 2 => {
            let h = payload[1];
            fragments(
                &payload[..1],
                h & 0x1F,
                &payload[2..],
                h & 0x80 != 0,
                h & 0x40 != 0,
                max,
            )
        }
        1..=23 => h264_nalu(payload, max),
        // STAP-B, MTAP, FU-B: not produced by MediaMTX's encoder
        _ => Vec::new(),
    }
}

/// H.265 (RFC 7798): a NAL unit that does not fit becomes FU fragments.
fn h265_nalu(nalu: &[u8], max: usize) -> Vec<Vec<u8>> {
    if nalu.len() <= max || nalu.len() < 3 {
        return vec![nalu.to_vec()];
    }
    let hdr = [(nalu[0] & 0x81) | (49 << 1), nalu[1]];
    fragments(&hdr, (nalu[0] >> 1) & 0x3F, &nalu[2..], true, true, max)
}

fn split_h265(payload: &[u8], max: usize) -> Vec<Vec<u8>> {
    if payload.len() < 3 {
        return Vec::new();
    }
    match (payload[0] >> 1) & 0x3F {
        48 => aggregated(payload, 2)
            .into_iter()
            .flat_map(|n| h265_nalu(n, max))
            .collect(),
        49 => {
            let h = payload[2];
            fragments(
                &payload[..2],
                h & 0x3F,
                &payload[3..],
                h & 0x80 != 0,
                h & 0x40 != 0,
                max,
            )
        }
        0..=47 => h265_nalu(payload, max),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fu_a_fragments_fit_and_rebuild() {
        let mut nalu = vec![0x65];
        nalu.extend((0..4000u32).map(|i| i as u8));
        let out = split_h264(&nalu, 1000);
        assert!(out.iter().all(|p| p.len() <= 1000));
        assert_eq!(out[0][1] & 0x80, 0x80);
        assert_eq!(out.last().unwrap()[1] & 0x40, 0x40);
        let mut re = vec![(out[0][0] & 0xE0) | (out[0][1] & 0x1F)];
        for p in &out {
            re.extend_from_slice(&p[2..]);
        }
        assert_eq!(re, nalu);
    }

    #[test]
    fn stap_a_and_h265_split_and_hostile_input() {
        // STAP-A with a small and a big NAL unit: the small one alone, the big one in FU-A
        let big: Vec<u8> = std::iter::once(0x65).chain(std::iter::repeat(7).take(300)).collect();
        let mut stap = vec![24, 0, 2, 0x67, 1];
        stap.extend_from_slice(&(big.len() as u16).to_be_bytes());
        stap.extend_from_slice(&big);
        let out = split_h264(&stap, 100);
        assert_eq!(out[0], vec![0x67, 1]);
        assert!(out[1..].iter().all(|p| p[0] & 0x1F == 28 && p.len() <= 100));
        // H.265 IDR (type 19) into FU (type 49) with the FU header carrying 19
        let mut nalu = vec![19 << 1, 1];
        nalu.extend(std::iter::repeat(9).take(500));
        let out = split_h265(&nalu, 100);
        assert!(out
            .iter()
            .all(|p| (p[0] >> 1) & 0x3F == 49 && p[2] & 0x3F == 19 && p.len() <= 100));
        assert_eq!(out.iter().map(|p| p.len() - 3).sum::<usize>(), 500);
        // truncated or malformed packets neither panic nor grow
        assert!(split_h264(&[24, 0xFF, 0xFF, 1], 2).is_empty());
        assert!(split_h265(&[49 << 1], 2).is_empty());
        assert_eq!(bounds(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
