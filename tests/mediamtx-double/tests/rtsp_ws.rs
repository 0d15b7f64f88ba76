//! RTSP tunnelled in WebSocket on the RTSP port (gortsplib's server with gorilla/websocket):
//! no ffmpeg client speaks it, so an independent WebSocket implementation (tungstenite)
//! carries a raw RTSP reader through it; raw frames check gorilla's refusals. (The
//! `rtsp+ws://` sources: tests/bridged.rs.)

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends an upgrade request on the RTSP port; returns the socket and the answer's head.
fn upgrade(port: u16, headers: &str) -> (TcpStream, String) {
    let mut s = rtsp::connect(port, Duration::from_secs(10));
    let req = format!("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n", headers);
    s.write_all(req.as_bytes()).unwrap();
    let head = rtsp::read_head(&mut s);
    (s, head)
}

fn onvif_headers(version: &str) -> String {
    format!(
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: {}\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Protocol: rtsp.onvif.org\r\n",
        version, KEY
    )
}

/// The RTSP bytes received so far, and the (channel, payload) interleaved frames cut from them.
struct Inbound {
    buf: Vec<u8>,
    frames: Vec<(u8, Vec<u8>)>,
}

impl Inbound {
    /// Reads messages until a whole RTSP response is buffered; returns it.
    fn response(&mut self, ws: &mut WebSocket<TcpStream>) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.cut_frames();
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).to_string();
                let len = header(&head, "Content-Length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let all: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    return String::from_utf8_lossy(&all).to_string();
                }
            }
            assert!(Instant::now() < deadline, "no RTSP response; have {:?}", self.buf);
            self.read_one(ws);
        }
    }

    fn read_one(&mut self, ws: &mut WebSocket<TcpStream>) {
        match ws.read().expect("websocket read") {
            Message::Binary(b) => self.buf.extend_from_slice(&b),
            other => panic!("unexpected message {:?}", other),
        }
    }

    /// Moves complete `$` frames at the start of the buffer into `frames`.
    fn cut_frames(&mut self) {
        while self.buf.len() >= 4 && self.buf[0] == b'$' {
            let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            if self.buf.len() < 4 + len {
                return;
            }
            let f: Vec<u8> = self.buf.drain(..4 + len).collect();
            self.frames.push((f[1], f[4..].to_vec()));
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn send(ws: &mut WebSocket<TcpStream>, req: String) {
    ws.send(Message::Binary(req.into_bytes().into()))
        .expect("websocket send");
}

#[test]
fn a_reader_plays_through_the_websocket_tunnel() {
    require_ffmpeg();
    let (h, dir) = start("ws-read");
    let url = format!("{}/ws", h.rtsp_url());
    let _p = publish(&h, &dir, "ws");

    let (tcp, head) = upgrade(h.rtsp_port, &onvif_headers("13"));
    // gorilla's answer: no subprotocol chosen (gortsplib's Upgrader names none)
    let accept = tungstenite::handshake::derive_accept_key(KEY.as_bytes());
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept
        )
    );
    let mut ws = WebSocket::from_raw_socket(tcp, Role::Client, None);
    let mut inb = Inbound {
        buf: Vec::new(),
        frames: Vec::new(),
    };

    send(&mut ws, format!("OPTIONS {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url));
    let r = inb.response(&mut ws);
    assert!(r.starts_with("RTSP/1.0 200 OK\r\n"), "{}", r);
    assert!(header(&r, "Public").unwrap_or_default().contains("DESCRIBE"), "{}", r);

    // a DESCRIBE split over two messages: the tunnel is a byte stream
    let describe = format!(
        "DESCRIBE {} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
        url
    );
    let (a, b) = describe.split_at(10);
    send(&mut ws, a.to_string());
    send(&mut ws, b.to_string());
    let r = inb.response(&mut ws);
    assert!(r.starts_with("RTSP/1.0 200 OK\r\n"), "{}", r);
    assert!(r.contains("H264/90000"), "{}", r);
    let control = r
        .lines()
        .find_map(|l| l.strip_prefix("a=control:").filter(|c| *c != "*").map(str::to_string))
        .expect("a media control attribute");
    let track = if control.starts_with("rtsp://") {
        control
    } else {
        format!("{}/{}", url, control)
    };

    send(
        &mut ws,
        format!(
            "SETUP {} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            track
        ),
    );
    let r = inb.response(&mut ws);
    assert!(r.starts_with("RTSP/1.0 200 OK\r\n"), "{}", r);
    let session = rtsp::session_of(&r).expect("Session");
    send(
        &mut ws,
        format!("PLAY {} RTSP/1.0\r\nCSeq: 4\r\nSession: {}\r\n\r\n", url, session),
    );
    let r = inb.response(&mut ws);
    assert!(r.starts_with("RTSP/1.0 200 OK\r\n"), "{}", r);

    // RTP arrives on channel 0 through the tunnel
    let deadline = Instant::now() + Duration::from_secs(15);
    while inb.frames.iter().filter(|(c, _)| *c == 0).count() < 30 {
        assert!(Instant::now() < deadline, "{} RTP packets", inb.frames.len());
        inb.read_one(&mut ws);
        inb.cut_frames();
    }
    let rtp: Vec<&Vec<u8>> = inb.frames.iter().filter(|(c, _)| *c == 0).map(|(_, p)| p).collect();
    assert!(rtp.iter().all(|p| p.len() > 12 && p[0] >> 6 == 2), "not RTP v2");

    // listed as MediaMTX lists it: tunnel websocket, its session reading over TCP
    let list = |p: &str| items(&h, p);
    let conn = list("/v3/rtspconns/list")
        .into_iter()
        .find(|c| c["tunnel"] == "websocket")
        .expect("a connection with tunnel websocket");
    let sess = list("/v3/rtspsessions/list")
        .into_iter()
        .find(|s| s["id"] == conn["session"])
        .expect("its session");
    assert_eq!(sess["state"], "read");
    assert_eq!(sess["transport"], "TCP");

    // a ping is answered with its payload, between the media
    ws.send(Message::Ping(b"are you there".to_vec().into())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no pong");
        match ws.read().unwrap() {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"are you there");
                break;
            }
            Message::Binary(_) => {}
            other => panic!("unexpected {:?}", other),
        }
    }

    // closing the WebSocket ends the RTSP connection and its session
    ws.close(None).unwrap();
    wait_until(Duration::from_secs(10), "the tunnelled connection gone", || {
        !list("/v3/rtspconns/list").iter().any(|c| c["tunnel"] == "websocket")
            && !list("/v3/rtspsessions/list").iter().any(|s| s["id"] == conn["session"])
    });
}

/// Reads until the peer closes; everything received.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    all
}

#[test]
fn the_websocket_tunnel_refuses_like_gorilla() {
    let (h, _dir) = start("ws-refuse");
    let port = h.rtsp_port;

    // an upgrade without the ONVIF subprotocol is no tunnel: gortsplib's plain 400
    let (mut s, head) = upgrade(
        port,
        &format!(
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {}\r\n",
            KEY
        ),
    );
    assert_eq!(head, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    assert!(read_to_close(&mut s).is_empty());

    // a version other than 13, or a key that is not 16 bytes in base64: gorilla's 400
    for headers in [onvif_headers("8"), onvif_headers("13").replace(KEY, "c2hvcnQ=")] {
        let (mut s, head) = upgrade(port, &headers);
        assert_eq!(
            head,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n\r\n"
        );
        assert_eq!(read_to_close(&mut s), b"Bad Request\n");
    }

    // after the upgrade, an unmasked frame: a close frame 1002 with gorilla's reason
    let (mut s, head) = upgrade(port, &onvif_headers("13"));
    assert!(head.starts_with("HTTP/1.1 101 "), "{}", head);
    s.write_all(&[0x82, 0x01, b'x']).unwrap();
    let mut close = vec![0x88, 21, 0x03, 0xEA];
    close.extend_from_slice(b"incorrect mask flag");
    assert_eq!(read_to_close(&mut s), close);

    // a text message: gortsplib's reader fails, the connection closes
    let (tcp, _) = upgrade(port, &onvif_headers("13"));
    let mut ws = WebSocket::from_raw_socket(tcp, Role::Client, None);
    ws.send(Message::Text("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".into()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "still open after a text message");
        match ws.read() {
            Ok(Message::Binary(b)) => panic!("answered a text message: {:?}", b),
            Ok(_) => {}
            Err(_) => break,
        }
    }
}
