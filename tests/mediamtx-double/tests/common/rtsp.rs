//! Raw RTSP by hand, for what ffmpeg cannot show: single requests and their answers, raw
//! publishers and readers over interleaved TCP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One H.264 track, control `trackID=0`.
pub const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n";

/// A connection to a local port whose reads give up after `timeout`.
pub fn connect(port: u16, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

pub fn url(port: u16, path: &str) -> String {
    format!("rtsp://127.0.0.1:{}/{}", port, path)
}

/// A message head (up to the blank line), read byte by byte so that nothing after it is
/// taken; on close or timeout, what came until then.
pub fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

/// One RTSP exchange on an open connection: the response head, its body (by
/// Content-Length) read and dropped. A server that closed the connection answers "".
pub fn rtsp_req(s: &mut TcpStream, req: &str) -> String {
    let _ = s.write_all(req.as_bytes());
    let head = read_head(s);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    head
}

/// The session id of an answer, without its `;timeout=`.
pub fn session_of(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// A raw publisher: ANNOUNCE of [`SDP`], SETUP with `transport`; returns the SETUP answer.
pub fn announce_and_setup(port: u16, path: &str, transport: &str) -> (TcpStream, String) {
    announce_sdp_and_setup(port, path, SDP, transport)
}

/// A raw publisher: ANNOUNCE of `sdp` (track `trackID=0`), SETUP with `transport`;
/// returns the SETUP answer.
pub fn announce_sdp_and_setup(port: u16, path: &str, sdp: &str, transport: &str) -> (TcpStream, String) {
    let mut s = connect(port, Duration::from_secs(20));
    let url = url(port, path);
    let r = rtsp_req(
        &mut s,
        &format!(
            "ANNOUNCE {} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            url,
            sdp.len(),
            sdp
        ),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    let session = session_of(&r).unwrap_or_default();
    let r = rtsp_req(
        &mut s,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nSession: {}\r\nTransport: {}\r\n\r\n",
            url, session, transport
        ),
    );
    (s, r)
}

/// A raw publisher of `sdp` set up with `transport` and RECORDing: its connection.
pub fn raw_publisher(port: u16, path: &str, sdp: &str, transport: &str) -> TcpStream {
    raw_publisher_session(port, path, sdp, transport).0
}

/// A raw publisher RECORDing, with its session ID (the `Session` header's).
pub fn raw_publisher_session(port: u16, path: &str, sdp: &str, transport: &str) -> (TcpStream, String) {
    let (mut s, r) = announce_sdp_and_setup(port, path, sdp, transport);
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    let session = session_of(&r).expect("SETUP answer with a session");
    let r = rtsp_req(
        &mut s,
        &format!(
            "RECORD {} RTSP/1.0\r\nCSeq: 3\r\nSession: {}\r\n\r\n",
            url(port, path),
            session
        ),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    (s, session)
}

/// A raw publisher over interleaved TCP (RTP on channel 0), RECORDing.
pub fn tcp_publisher(port: u16, path: &str) -> TcpStream {
    raw_publisher(port, path, SDP, "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
}

/// A raw reader: SETUP with `transport`, then PLAY; returns its connection.
pub fn setup_and_play(port: u16, path: &str, transport: &str) -> TcpStream {
    setup_and_play_session(port, path, transport).0
}

/// A raw reader PLAYing, with its session ID.
pub fn setup_and_play_session(port: u16, path: &str, transport: &str) -> (TcpStream, String) {
    let url = url(port, path);
    let mut rd = connect(port, Duration::from_secs(20));
    let r = rtsp_req(
        &mut rd,
        &format!(
            "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: {}\r\n\r\n",
            url, transport
        ),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    let session = session_of(&r).expect("SETUP answer with a session");
    let r = rtsp_req(
        &mut rd,
        &format!("PLAY {} RTSP/1.0\r\nCSeq: 2\r\nSession: {}\r\n\r\n", url, session),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{}", r);
    (rd, session)
}

/// A PLAYing raw reader over interleaved TCP.
pub fn tcp_reader(port: u16, path: &str) -> TcpStream {
    setup_and_play(port, path, "RTP/AVP/TCP;unicast;interleaved=0-1")
}

/// A packet framed for interleaved TCP on `channel`.
pub fn interleaved(channel: u8, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![b'$', channel];
    f.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    f.extend_from_slice(packet);
    f
}
