//! RTP/RTCP statistics of RTSP sessions as gortsplib keeps them (pkg/rtpreceiver,
//! pkg/rtpsender, server_session_media.go): a publisher's packets lost and interarrival
//! jitter per media (over UDP after a 64-packet reordering buffer, which also decides the
//! order the packets are relayed in), the RTCP packets counted one by one inside compound
//! payloads, and the losses readers report in their receiver reports.

use std::time::{Duration, Instant, SystemTime};

/// gortsplib's rtpreceiver default buffer (a power of two).
const REORDER_BUFFER: usize = 64;

/// The receiving side of one media of a publisher.
pub struct Receiver {
    clock_rate: u32,
    h26x: Option<bool>,
    udp: bool,
    first: bool,
    last_seq: u16,
    pub lost: u64,
    pub jitter: f64,
    /// the last packet whose PTS equals its DTS: (RTP timestamp, arrival)
    last_time: Option<(u32, Instant)>,
    /// UDP only: packets waiting for the ones before them
    buffer: Vec<Option<Vec<u8>>>,
    abs_pos: usize,
    negative: usize,
}

impl Receiver {
    /// `codec`: the media's codec name (the PTS = DTS rule differs for H.264/H.265).
    pub fn new(codec: &str, clock_rate: u32, udp: bool) -> Receiver {
        Receiver {
            clock_rate,
            h26x: h26x(codec),
            udp,
            first: true,
            last_seq: 0,
            lost: 0,
            jitter: 0.0,
            last_time: None,
            buffer: vec![None; REORDER_BUFFER],
            abs_pos: 0,
            negative: 0,
        }
    }

    /// Takes one RTP packet (at least 12 bytes); returns the packets to relay, in order.
    pub fn process(&mut self, pkt: Vec<u8>, now: Instant) -> Vec<Vec<u8>> {
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        if self.first {
            self.first = false;
            self.last_seq = seq;
            self.clock(&pkt, now);
            return vec![pkt];
        }
        let (pkts, lost) = if self.udp {
            self.reorder(pkt, seq)
        } else {
            // TCP: every gap is a loss (Go's uint16 arithmetic: a packet from the past
            // counts as a wrap)
            (vec![pkt], u64::from(seq.wrapping_sub(self.last_seq).wrapping_sub(1)))
        };
        self.lost += lost;
        for p in &pkts {
            self.last_seq = u16::from_be_bytes([p[2], p[3]]);
            self.clock(p, now);
        }
        pkts
    }

    /// RFC 3550 interarrival jitter on the packets whose PTS equals their DTS.
    fn clock(&mut self, pkt: &[u8], now: Instant) {
        if !pts_equals_dts(self.h26x, pkt) {
            return;
        }
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        if let Some((last_ts, last_at)) = self.last_time {
            if self.clock_rate != 0 {
                let arrival = now.duration_since(last_at).as_secs_f64() * f64::from(self.clock_rate);
                let d = (arrival - (f64::from(ts) - f64::from(last_ts))).abs();
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_time = Some((ts, now));
    }

    /// rtpreceiver's reorder: packets ahead of the next expected wait in the buffer; a
    /// packet too far ahead flushes it, counting what never came as lost; packets from the
    /// past are dropped (unless so many come that the sender restarted).
    fn reorder(&mut self, pkt: Vec<u8>, seq: u16) -> (Vec<Vec<u8>>, u64) {
        let n_buf = self.buffer.len();
        let rel = seq.wrapping_sub(self.last_seq).wrapping_sub(1) as i16;
        if rel < 0 {
            self.negative += 1;
            if self.negative > n_buf {
                self.negative = 0;
                self.buffer.iter_mut().for_each(|b| *b = None);
                return (vec![pkt], 0);
            }
            return (Vec::new(), 0);
        }
        self.negative = 0;
        let rel = rel as usize;
        if rel >= n_buf {
            let mut out: Vec<Vec<u8>> = (0..n_buf)
                .filter_map(|i| self.buffer[(self.abs_pos + i) % n_buf].take())
                .collect();
            let lost = (rel + 1 - (out.len() + 1)) as u64;
            out.push(pkt);
            return (out, lost);
        }
        if rel != 0 {
            let slot = &mut self.buffer[(self.abs_pos + rel) % n_buf];
            if slot.is_none() {
                *slot = Some(pkt);
            }
            return (Vec::new(), 0);
        }
        let mut out = vec![pkt];
        self.abs_pos = (self.abs_pos + 1) % n_buf;
        while let Some(p) = self.buffer[self.abs_pos].take() {
            out.push(p);
            self.abs_pos = (self.abs_pos + 1) % n_buf;
        }
        (out, 0)
    }
}

/// Whether a codec is H.264 (false) or H.265 (true), whose PTS = DTS rule is their own.
fn h26x(codec: &str) -> Option<bool> {
    match codec {
        "H264" => Some(false),
        "H265" => Some(true),
        _ => None,
    }
}

/// gortsplib's format PTSEqualsDTS: every codec but H.264/H.265, whose packets count
/// only when they carry (the start of) an IDR/IRAP or a parameter set.
fn pts_equals_dts(h26x: Option<bool>, pkt: &[u8]) -> bool {
    let Some(h265) = h26x else { return true };
    let cc = 12 + 4 * (pkt[0] & 0x0F) as usize;
    let Some(payload) = pkt.get(cc..).filter(|p| !p.is_empty()) else {
        return false;
    };
    let key = |typ: u8| match h265 {
        true => matches!(typ, 19..=21 | 32..=34),
        false => matches!(typ, 5 | 7 | 8),
    };
    let (typ, hdr) = match h265 {
        true => ((payload[0] >> 1) & 0x3F, 2),
        false => (payload[0] & 0x1F, 1),
    };
    let (agg, fu) = if h265 { (48, 49) } else { (24, 28) };
    if typ == agg {
        let mut rest = payload.get(hdr..).unwrap_or(&[]);
        while rest.len() >= 2 {
            let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let Some(nalu) = rest.get(2..2 + n).filter(|x| !x.is_empty()) else {
                return false;
            };
            let t = if h265 { (nalu[0] >> 1) & 0x3F } else { nalu[0] & 0x1F };
            if key(t) {
                return true;
            }
            rest = &rest[2 + n..];
        }
        return false;
    }
    if typ == fu {
        return match payload.get(hdr) {
            Some(&h) if h & 0x80 != 0 => key(if h265 { h & 0x3F } else { h & 0x1F }),
            _ => false,
        };
    }
    key(typ)
}

/// What gortsplib's rtpsender does for one reader: the stream's SSRC is on every packet
/// (set by the stream), and sender reports go out at the first packet whose PTS equals its
/// DTS, then every 10 s (here with the first packet after each period), with the packets
/// and payload octets sent to this reader.
#[derive(Default)]
pub struct SenderReports(Vec<SenderState>);

#[derive(Clone, Default)]
struct SenderState {
    /// the last packet with PTS = DTS: (RTP timestamp, its NTP time, when it was sent)
    last: Option<(u32, SystemTime, Instant)>,
    sent: u32,
    octets: u32,
    next_report: Option<Instant>,
}

/// gortsplib's sender report period.
const REPORT_PERIOD: Duration = Duration::from_secs(10);

impl SenderReports {
    /// Takes note of an RTP packet sent on `media`; returns the sender report due after
    /// it, if any.
    pub fn on_packet(
        &mut self,
        media: usize,
        pkt: &[u8],
        codec: &str,
        clock_rate: u32,
        now: (SystemTime, Instant),
    ) -> Option<Vec<u8>> {
        if self.0.len() <= media {
            self.0.resize(media + 1, SenderState::default());
        }
        let st = &mut self.0[media];
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        if pts_equals_dts(h26x(codec), pkt) {
            st.last = Some((ts, now.0, now.1));
        }
        st.sent = st.sent.wrapping_add(1);
        st.octets = st.octets.wrapping_add(payload_len(pkt) as u32);
        let (last_rtp, last_ntp, last_at) = st.last?;
        if clock_rate == 0 {
            return None;
        }
        match st.next_report {
            Some(at) if now.1 < at => return None,
            Some(at) => {
                let mut next = at;
                while next <= now.1 {
                    next += REPORT_PERIOD;
                }
                st.next_report = Some(next);
            }
            None => st.next_report = Some(now.1 + REPORT_PERIOD),
        }
        let diff = now.1.duration_since(last_at);
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        let rtp = last_rtp.wrapping_add((diff.as_secs_f64() * f64::from(clock_rate)) as u32);
        Some(sender_report(ssrc, last_ntp + diff, rtp, st.sent, st.octets))
    }
}

/// An RTP packet's payload length: without header, CSRCs, extension and padding.
fn payload_len(pkt: &[u8]) -> usize {
    let mut head = 12 + 4 * (pkt[0] & 0x0F) as usize;
    if pkt[0] & 0x10 != 0 {
        if let Some(x) = pkt.get(head + 2..head + 4) {
            head += 4 + 4 * u16::from_be_bytes([x[0], x[1]]) as usize;
        }
    }
    let pad = if pkt[0] & 0x20 != 0 {
        pkt.last().copied().unwrap_or(0) as usize
    } else {
        0
    };
    pkt.len().saturating_sub(head + pad)
}

/// An RTCP sender report (RFC 3550 6.4.1) without report blocks.
pub fn sender_report(ssrc: u32, ntp: SystemTime, rtp: u32, packets: u32, octets: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp_time(ntp).to_be_bytes());
    p.extend_from_slice(&rtp.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    p
}

/// A time in the 64-bit NTP format (seconds since 1900, 32-bit fraction).
fn ntp_time(t: SystemTime) -> u64 {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The packets of a compound RTCP payload as pion/rtcp splits them: (packet type, the
/// whole packet); None when a header is not version 2 or a length runs past the end.
pub fn rtcp_packets(payload: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        if rest.len() < 4 || rest[0] >> 6 != 2 {
            return None;
        }
        let len = 4 * (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1);
        out.push((rest[1], rest.get(..len)?));
        rest = &rest[len..];
    }
    (!out.is_empty()).then_some(out)
}

/// The report blocks of a receiver report (RTCP type 201): (SSRC, cumulative lost).
pub fn reception_reports(rr: &[u8]) -> Vec<(u32, u32)> {
    let count = (rr[0] & 0x1F) as usize;
    (0..count)
        .filter_map(|i| {
            let b = rr.get(8 + 24 * i..8 + 24 * (i + 1))?;
            let ssrc = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            Some((ssrc, u32::from_be_bytes([0, b[5], b[6], b[7]])))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rtp(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0x41]);
        p
    }

    fn seqs(pkts: &[Vec<u8>]) -> Vec<u16> {
        pkts.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect()
    }

    #[test]
    fn tcp_counts_every_gap() {
        let mut r = Receiver::new("Opus", 48000, false);
        let t = Instant::now();
        for s in [10u16, 11, 14, 15] {
            assert_eq!(seqs(&r.process(rtp(s, 0), t)), vec![s]);
        }
        assert_eq!(r.lost, 2);
    }

    #[test]
    fn udp_reorders_and_counts_what_never_came() {
        let mut r = Receiver::new("Opus", 48000, true);
        let t = Instant::now();
        assert_eq!(seqs(&r.process(rtp(1, 0), t)), vec![1]);
        assert!(r.process(rtp(3, 0), t).is_empty());
        assert_eq!(seqs(&r.process(rtp(2, 0), t)), vec![2, 3]);
        // a packet from the past is dropped
        assert!(r.process(rtp(1, 0), t).is_empty());
        // one far ahead flushes the buffer: 4 waits, 5..=70 never came
        assert!(r.process(rtp(5, 0), t).is_empty());
        assert_eq!(seqs(&r.process(rtp(4 + 70, 0), t)), vec![5, 74]);
        // 4..=73 were due, only 5 came
        assert_eq!(r.lost, 69);
    }

    #[test]
    fn jitter_follows_rfc3550_on_key_packets_only() {
        let mut r = Receiver::new("Opus", 1000, false);
        let t = Instant::now();
        r.process(rtp(1, 0), t);
        // 100 ms later by the clock, 80 ticks later by the timestamps: D = 20
        r.process(rtp(2, 80), t + Duration::from_millis(100));
        assert!((r.jitter - 20.0 / 16.0).abs() < 1e-6, "{}", r.jitter);
        // H.264: a non-IDR slice does not move the jitter
        let mut r = Receiver::new("H264", 1000, false);
        r.process(rtp(1, 0), t);
        r.process(rtp(2, 80), t + Duration::from_millis(100));
        assert_eq!(r.jitter, 0.0);
    }

    #[test]
    fn rtcp_compounds_and_reports() {
        // RR with one block (SSRC 7, 3 lost) + SDES
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 3];
        rr.extend_from_slice(&[0; 16]);
        let sdes = [0x81, 202, 0, 1, 0, 0, 0, 9];
        let compound = [&rr[..], &sdes[..]].concat();
        let pkts = rtcp_packets(&compound).unwrap();
        assert_eq!(pkts.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![201, 202]);
        assert_eq!(reception_reports(pkts[0].1), vec![(7, 3)]);
        assert!(rtcp_packets(&[0x81, 201, 0, 9, 1, 2]).is_none());
        assert!(rtcp_packets(&[0x41, 201, 0, 0]).is_none());
        assert!(rtcp_packets(&[]).is_none());
    }
}
