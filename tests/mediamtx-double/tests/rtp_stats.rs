//! RTSP session statistics as gortsplib keeps them: a publisher's packets lost (sequence
//! gaps) and interarrival jitter, RTCP counted packet by packet inside compound payloads
//! (a payload that does not parse is one packet in error), and the losses a reader reports
//! in its receiver reports. Raw clients over interleaved TCP.

mod common;
use common::rtsp::*;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

fn session(h: &mediamtx_double::Handle, state: &str) -> Value {
    items(h, "/v3/rtspsessions/list")
        .into_iter()
        .find(|s| s["state"] == state)
        .unwrap_or_else(|| panic!("no {} session", state))
}

fn rtp(seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96 | 0x80];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 7]);
    p.extend_from_slice(&[0x65, 1, 2, 3]); // an IDR slice: PTS = DTS, so it moves the jitter
    p
}

/// The next interleaved frame on `channel` (frames on other channels are skipped).
fn read_frame(r: &mut std::net::TcpStream, channel: u8) -> Vec<u8> {
    loop {
        let mut hdr = [0u8; 4];
        std::io::Read::read_exact(r, &mut hdr).unwrap();
        let mut pkt = vec![0u8; u16::from_be_bytes([hdr[2], hdr[3]]) as usize];
        std::io::Read::read_exact(r, &mut pkt).unwrap();
        if hdr[1] == channel {
            return pkt;
        }
    }
}

/// A receiver report about `ssrc` with `lost` packets lost, then an SDES: one compound.
fn rr_and_sdes(ssrc: u32, lost: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0, 0, 0, 9];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, lost]);
    p.extend_from_slice(&[0; 16]);
    p.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 9]);
    p
}

#[test]
fn losses_jitter_and_rtcp_are_counted_like_gortsplib() {
    let (h, _dir) = start("rtpstats");
    let mut publ = tcp_publisher(h.rtsp_port, "s");
    let mut reader = tcp_reader(h.rtsp_port, "s");

    // 1, 2, 5, 6, 9: two gaps of two; at 90 kHz the timestamps say 40 ms apart, the
    // packets come 40 ms and 140 ms apart
    let mut ts = 0u32;
    for (i, seq) in [1u16, 2, 5, 6, 9].into_iter().enumerate() {
        publ.write_all(&interleaved(0, &rtp(seq, ts))).unwrap();
        ts += 3600;
        std::thread::sleep(Duration::from_millis(if i % 2 == 0 { 40 } else { 140 }));
    }
    // the publisher's sender report + SDES (2 packets), and RTCP that does not parse
    let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 7];
    sr.extend_from_slice(&[0; 20]);
    sr.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 7]);
    publ.write_all(&interleaved(1, &sr)).unwrap();
    publ.write_all(&interleaved(1, &[0x80, 200, 0, 9, 1])).unwrap();
    // the reader reports on the stream's SSRC (not the publisher's 7): 5 lost, then 6;
    // a block about another SSRC is not about this stream
    let ssrc = u32::from_be_bytes(read_frame(&mut reader, 0)[8..12].try_into().unwrap());
    assert_ne!(ssrc, 7);
    reader.write_all(&interleaved(1, &rr_and_sdes(ssrc, 5))).unwrap();
    reader.write_all(&interleaved(1, &rr_and_sdes(ssrc, 6))).unwrap();
    reader.write_all(&interleaved(1, &rr_and_sdes(7, 9))).unwrap();

    wait_until(Duration::from_secs(10), "the counters", || {
        let p = session(&h, "publish");
        let r = session(&h, "read");
        p["inboundRTPPackets"] == 5 && p["inboundRTCPPackets"] == 2 && r["inboundRTCPPackets"] == 6
    });
    let p = session(&h, "publish");
    assert_eq!(p["inboundRTPPacketsLost"], 4, "{}", p);
    assert_eq!(p["rtpPacketsLost"], 4, "{}", p);
    assert_eq!(p["inboundRTCPPacketsInError"], 1, "{}", p);
    let jitter = p["inboundRTPPacketsJitter"].as_f64().unwrap();
    // |D| is about 0.1 s x 90 kHz = 9000 ticks every other packet: about 1000 here (more
    // under load); in ticks, not seconds
    assert!(jitter > 500.0 && jitter < 90_000.0, "jitter {}", jitter);
    assert_eq!(p["rtpPacketsJitter"], p["inboundRTPPacketsJitter"]);
    let r = session(&h, "read");
    assert_eq!(r["outboundRTPPacketsReportedLost"], 6, "{}", r);
    assert_eq!(r["inboundRTPPacketsLost"], 0, "{}", r);
    assert!(r["inboundBytes"].as_u64().unwrap() >= 2 * 40, "{}", r);
}

#[test]
fn refused_fragments_are_frames_in_error_and_not_relayed() {
    let (h, dir) = start("framesinerror");
    let mut publ = tcp_publisher(h.rtsp_port, "f");
    let mut reader = tcp_reader(h.rtsp_port, "f");
    reader.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let fu = |seq: u16, fu_header: u8| {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7, 0x7C, fu_header, 1, 2]);
        p
    };
    // an IDR in FU-A whose second fragment is lost: the third is refused
    publ.write_all(&interleaved(0, &fu(1, 0x85))).unwrap();
    publ.write_all(&interleaved(0, &fu(3, 0x45))).unwrap();
    // then a good single NAL unit packet
    let mut ok = vec![0x80, 0x80 | 96, 0, 4, 0, 0, 0x0E, 0x10, 0, 0, 0, 7];
    ok.extend_from_slice(&[0x41, 9]);
    publ.write_all(&interleaved(0, &ok)).unwrap();
    wait_until(Duration::from_secs(10), "the frame in error", || {
        path_get(&h, "f")["inboundFramesInError"] == 1
    });
    wait_until(Duration::from_secs(10), "MediaMTX's warning", || {
        log_of(&dir).contains("WAR [path f] processing error: discarding frame since a RTP packet is missing")
    });
    // the reader gets the start and the good packet, not the refused fragment
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let mut hdr = [0u8; 4];
        std::io::Read::read_exact(&mut reader, &mut hdr).unwrap();
        let mut pkt = vec![0u8; u16::from_be_bytes([hdr[2], hdr[3]]) as usize];
        std::io::Read::read_exact(&mut reader, &mut pkt).unwrap();
        if hdr[1] == 0 {
            seqs.push(u16::from_be_bytes([pkt[2], pkt[3]]));
        }
    }
    assert_eq!(seqs, vec![1, 4]);
}

/// MediaMTX's errordumper: the frames in error are reported by a one-second ticker, each
/// second in which some came, with their number and the last one; none is left out.
#[test]
fn frames_in_error_are_reported_each_second_with_their_number() {
    let (h, dir) = start("errordumper");
    let mut publ = tcp_publisher(h.rtsp_port, "e");
    let fu = |seq: u16, fu_header: u8| {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7, 0x7C, fu_header, 1, 2]);
        p
    };
    // three IDRs in FU-A, each missing its middle fragment: three frames in error
    for first in [1u16, 4, 7] {
        publ.write_all(&interleaved(0, &fu(first, 0x85))).unwrap();
        publ.write_all(&interleaved(0, &fu(first + 2, 0x45))).unwrap();
    }
    wait_until(Duration::from_secs(10), "the frames in error", || {
        path_get(&h, "e")["inboundFramesInError"] == 3
    });
    let error = "discarding frame since a RTP packet is missing";
    let reported = || -> u64 {
        log_of(&dir)
            .lines()
            .filter_map(|l| l.split_once("WAR [path e] ").map(|(_, m)| m.to_string()))
            .map(|m| {
                if m == format!("processing error: {}", error) {
                    1
                } else {
                    let (n, last) = m.split_once(" processing errors, last was: ").expect("a report");
                    assert_eq!(last, error);
                    n.parse::<u64>().unwrap()
                }
            })
            .sum()
    };
    wait_until(Duration::from_secs(5), "all three reported", || reported() == 3);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(reported(), 3, "{}", log_of(&dir));
}

/// What a reader gets as from gortsplib's ServerStream: the SETUP answer names the
/// stream's own SSRC, which every packet carries; the PLAY answer's RTP-Info gives the
/// next sequence number and the RTP time of now; the stream's sender report comes right
/// after the first packet whose PTS equals its DTS; the publisher's RTCP is not relayed.
#[test]
fn readers_get_the_stream_ssrc_rtp_info_and_its_own_sender_reports() {
    let (h, _dir) = start("rtpinfo");
    let mut publ = tcp_publisher(h.rtsp_port, "i");
    // a non-IDR slice first (PTS may differ from DTS: no report yet), seq 100 at 0.5 s
    let mut p = rtp(99, 45_000);
    p[12] = 0x41;
    publ.write_all(&interleaved(0, &p)).unwrap();
    publ.write_all(&interleaved(0, &rtp(100, 45_000))).unwrap();
    // the publisher's sender report (SSRC 7)
    let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 7];
    sr.extend_from_slice(&[0; 20]);
    publ.write_all(&interleaved(1, &sr)).unwrap();
    wait_until(Duration::from_secs(10), "the packets in", || {
        session(&h, "publish")["inboundRTPPackets"] == 2
    });

    let u = url(h.rtsp_port, "i");
    let mut rd = connect(h.rtsp_port, Duration::from_secs(10));
    let a = rtsp_req(
        &mut rd,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            u
        ),
    );
    let th = a
        .lines()
        .find_map(|l| l.strip_prefix("Transport: "))
        .expect("Transport")
        .to_string();
    let ssrc_hex = th
        .rsplit_once(";ssrc=")
        .map(|(_, x)| x.to_string())
        .expect("ssrc named");
    assert_eq!(th, format!("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={}", ssrc_hex));
    assert!(
        ssrc_hex.len() == 8 && ssrc_hex.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        "{}",
        th
    );
    let ssrc = u32::from_str_radix(&ssrc_hex, 16).unwrap();
    let id = session_of(&a).unwrap();
    let a = rtsp_req(
        &mut rd,
        &format!("PLAY {} RTSP/1.0\r\nCSeq: 2\r\nSession: {}\r\n\r\n", u, id),
    );
    let info = a
        .lines()
        .find_map(|l| l.strip_prefix("RTP-Info: "))
        .expect("RTP-Info")
        .to_string();
    let prefix = format!("url={}/trackID=0;seq=101;rtptime=", u);
    let rtptime: u32 = info
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{}", info))
        .parse()
        .unwrap();
    // 45000 + the time since the last packet at 90 kHz - 9000 (100 ms)
    assert!((36_000..36_000 + 90_000 * 5).contains(&rtptime), "{}", info);

    // two IDR packets; the first is followed by the stream's sender report
    publ.write_all(&interleaved(0, &rtp(101, 48_600))).unwrap();
    publ.write_all(&interleaved(0, &rtp(102, 52_200))).unwrap();
    let mut first = [0u8; 4];
    std::io::Read::read_exact(&mut rd, &mut first).unwrap();
    assert_eq!(&first[..2], b"$\x00", "an RTP packet first");
    let mut pkt = vec![0u8; u16::from_be_bytes([first[2], first[3]]) as usize];
    std::io::Read::read_exact(&mut rd, &mut pkt).unwrap();
    assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), 101);
    assert_eq!(u32::from_be_bytes(pkt[8..12].try_into().unwrap()), ssrc);
    let report = read_frame(&mut rd, 1);
    assert_eq!(report.len(), 28, "{:?}", report);
    assert_eq!(
        (report[1], u32::from_be_bytes(report[4..8].try_into().unwrap())),
        (200, ssrc)
    );
    // NTP time of now (seconds since 1900), RTP time of the packet, 1 packet of 4 bytes
    let ntp_secs = u64::from(u32::from_be_bytes(report[8..12].try_into().unwrap()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2_208_988_800;
    assert!(now.abs_diff(ntp_secs) <= 5, "NTP {} now {}", ntp_secs, now);
    let rtp_time = u32::from_be_bytes(report[16..20].try_into().unwrap());
    assert!((48_600..48_600 + 900).contains(&rtp_time), "{}", rtp_time);
    assert_eq!(u32::from_be_bytes(report[20..24].try_into().unwrap()), 1);
    assert_eq!(u32::from_be_bytes(report[24..28].try_into().unwrap()), 4);
    let pkt = read_frame(&mut rd, 0);
    assert_eq!(
        (
            u16::from_be_bytes([pkt[2], pkt[3]]),
            u32::from_be_bytes(pkt[8..12].try_into().unwrap())
        ),
        (102, ssrc)
    );
    // the report and the packets are what the reader's session sent
    wait_until(Duration::from_secs(5), "the reader's counters", || {
        let r = session(&h, "read");
        r["outboundRTPPackets"] == 2 && r["outboundRTCPPackets"] == 1
    });
}
