//! The deprecated `unix+rtp://` source: RTP packets written into the unix stream socket the
//! source listens on, one write per packet (MediaMTX reads one packet per read), described
//! by `rtpSDP`; read back over RTSP with ffprobe.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[test]
fn unix_rtp_source_reads_one_packet_per_read() {
    require_ffmpeg();
    let (h, dir) = start("src-unix-rtp");
    let sock = dir.join("rtp.sock");
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n";
    add_path(
        &h,
        "b",
        &json!({"source": format!("unix+rtp://{}", sock.display()), "rtpSDP": sdp}),
    );
    wait_until(Duration::from_secs(10), "the source's socket", || sock.exists());

    // ffmpeg's RTP to a UDP port of the test, which writes each packet into the socket
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let port = udp.local_addr().unwrap().port();
    let _sender = spawn_cmd(
        &sender_cmd("rtp", &format!("rtp://127.0.0.1:{}?pkt_size=1200", port), "320x240"),
        &dir.join("send.log"),
    );
    let mut unix = UnixStream::connect(&sock).expect("connect to the source's socket");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = udp.recv(&mut buf) {
                    if unix.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    // apart, so that each read of the source is one packet
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    });

    wait_available(&h, "b");
    let p = path_get(&h, "b");
    assert_eq!(p["source"], json!({"type": "rtpSource", "id": ""}), "{}", p);
    let s = probe_stream(&format!("{}/b", h.rtsp_url()), &[]).expect("ffprobe through the double");
    assert_h264(&s, 320, 240);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
}
