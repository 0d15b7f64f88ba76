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

/// A receiver report about SSRC 7 with `lost` packets lost, then an SDES: one compound.
fn rr_and_sdes(lost: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, lost];
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
    // the reader reports 5 lost, then 6
    reader.write_all(&interleaved(1, &rr_and_sdes(5))).unwrap();
    reader.write_all(&interleaved(1, &rr_and_sdes(6))).unwrap();

    wait_until(Duration::from_secs(10), "the counters", || {
        let p = session(&h, "publish");
        let r = session(&h, "read");
        p["inboundRTPPackets"] == 5 && p["inboundRTCPPackets"] == 2 && r["inboundRTCPPackets"] == 4
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
