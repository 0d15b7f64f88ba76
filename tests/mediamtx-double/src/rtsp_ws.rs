//! RTSP tunnelled in WebSocket on the RTSP/RTSPS port (gortsplib's server_conn_reader.go and
//! server_tunnel_websocket.go, with gorilla/websocket's server rules): a GET with
//! `Connection: Upgrade`, `Upgrade: websocket` and `Sec-WebSocket-Protocol: rtsp.onvif.org`
//! is upgraded, then the RTSP bytes travel in binary messages both ways. The RTSP connection
//! is served as any other (through a loopback socket, as the HTTP tunnel is) with
//! `tunnel: websocket`. The `rtsp+ws://`/`rtsps+ws://` static sources use the client side
//! (through `source_bridge`).

use crate::core::Shared;
use crate::rtsp_tunnel::Head;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;
/// RFC 6455's GUID for `Sec-WebSocket-Accept`.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// gortsplib's isWebSocketTunnel: exact header values (Go's Header.Get, no token lists).
pub fn is_upgrade(h: &Head) -> bool {
    h.method == "GET"
        && h.get("Connection") == "Upgrade"
        && h.get("Upgrade") == "websocket"
        && h.get("Sec-WebSocket-Protocol") == "rtsp.onvif.org"
}

/// gorilla's Upgrader.Upgrade checks, in its order; Err = the 400's text.
fn check_handshake(h: &Head) -> Result<String, &'static str> {
    if !h.get("Sec-WebSocket-Version").split(',').any(|v| v.trim() == "13") {
        return Err("websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header");
    }
    let key = h.get("Sec-WebSocket-Key");
    // Go's isValidChallengeKey: strict standard base64 of 16 bytes
    let valid = BASE64.decode(key).map(|k| k.len() == 16).unwrap_or(false);
    if !valid {
        return Err(
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte length",
        );
    }
    Ok(accept_key(key))
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key + GUID)).
fn accept_key(key: &str) -> String {
    let digest = openssl::sha::sha1(format!("{}{}", key, ACCEPT_GUID).as_bytes());
    BASE64.encode(digest)
}

/// Serves an upgrade request whose head was read from `rd` (`w`: the same socket).
/// `leg`: the ServerConn, kept by the upgraded connection.
pub fn serve(
    shared: Arc<Shared>,
    rd: BufReader<TcpStream>,
    mut w: TcpStream,
    h: &Head,
    peer: SocketAddr,
    tls: bool,
    leg: crate::rtsp_tunnel::Leg,
) {
    let accept = match check_handshake(h) {
        Ok(a) => a,
        Err(text) => {
            // gorilla's returnError through http.Error, written by gortsplib's response
            // writer as Go's Response.Write does for a GET: sorted headers, no length
            let _ = write!(
                w,
                "HTTP/1.{} 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nSec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n\r\nBad Request\n",
                h.minor
            );
            return leg.close(text);
        }
    };
    // gorilla refuses a client that sent data before the handshake's answer
    if !rd.buffer().is_empty() {
        return leg.close("websocket: client sent data before handshake is complete");
    }
    let ok = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept
    );
    if w.write_all(ok.as_bytes()).is_err() {
        return;
    }
    let _ = rd.get_ref().set_read_timeout(None);
    let carried = leg.carry_on();
    let Some((outer, server)) = crate::rtsp_tunnel::rtsp_behind(&shared, peer, tls, "websocket", carried) else {
        return;
    };
    // the WebSocket's error if it broke, else the RTSP connection's
    let broken = carry(rd, w, outer, Role::Server).err().map(|e| e.to_string());
    let ended = server.join().ok().flatten();
    if let Some(e) = broken.or(ended) {
        shared.log_as(&crate::rtsp::conn_scope(tls, peer), "INF", &format!("closed: {}", e));
    }
}

/// Which end of the WebSocket the double is: a client masks its frames, a server never does.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Server,
    Client,
}

/// The writing half: frames are written whole under the lock (data and control answers
/// come from two threads).
struct Writer {
    sock: Mutex<TcpStream>,
    role: Role,
}

impl Writer {
    /// Writes one final frame, masked with a fresh key when the double is the client.
    fn frame(&self, op: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut f = Vec::with_capacity(payload.len() + 14);
        f.push(0x80 | op);
        let mask_bit = if self.role == Role::Client { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                f.push(mask_bit | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(mask_bit | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if self.role == Role::Client {
            let key = crate::util::random_bytes(4);
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        } else {
            f.extend_from_slice(payload);
        }
        self.sock.lock().map_err(|_| std::io::ErrorKind::Other)?.write_all(&f)
    }

    fn shutdown(&self) {
        if let Ok(s) = self.sock.lock() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// gorilla's handleProtocolError: a close frame with 1002 and the reason, then the error.
    fn protocol_error(&self, reason: &str) -> String {
        let mut p = 1002u16.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        p.truncate(125);
        let _ = self.frame(OP_CLOSE, &p);
        format!("websocket: {}", reason)
    }
}

/// Carries a plain RTSP byte stream (`rtsp`) over an upgraded WebSocket (`ws_rd` and
/// `ws_w`: the two halves of its socket) until either side ends; the error that ended the
/// WebSocket side, if any.
fn carry(ws_rd: BufReader<TcpStream>, ws_w: TcpStream, rtsp: TcpStream, role: Role) -> Result<(), String> {
    let (Ok(rtsp_r), Ok(ws_raw)) = (rtsp.try_clone(), ws_w.try_clone()) else {
        return Err("cannot clone a socket".into());
    };
    let w = Arc::new(Writer {
        sock: Mutex::new(ws_w),
        role,
    });
    // RTSP -> WebSocket: each chunk read becomes one binary message
    let down = std::thread::spawn({
        let w = w.clone();
        move || {
            let mut rtsp_r = rtsp_r;
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = rtsp_r.read(&mut buf) {
                if n == 0 || w.frame(OP_BINARY, &buf[..n]).is_err() {
                    break;
                }
            }
            let _ = ws_raw.shutdown(Shutdown::Both);
        }
    });
    let res = read_messages(ws_rd, &rtsp, &w);
    let _ = rtsp.shutdown(Shutdown::Both);
    w.shutdown();
    let _ = down.join();
    res
}

/// Reads the peer's frames until the connection ends: binary payloads go to the RTSP side
/// as they arrive (gorilla has no message size limit by default, so nothing is buffered
/// whole); pings are answered, a close is echoed; a text message ends the tunnel as it does
/// gortsplib's wsReader.
fn read_messages(mut rd: BufReader<TcpStream>, mut out: &TcpStream, w: &Writer) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut in_message = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut h = [0u8; 2];
        rd.read_exact(&mut h).map_err(io)?;
        let (fin, rsv, op) = (h[0] & 0x80 != 0, h[0] & 0x70, h[0] & 0x0F);
        let masked = h[1] & 0x80 != 0;
        if rsv != 0 {
            return Err(w.protocol_error(&format!("unexpected reserved bits 0x{:x}", rsv)));
        }
        let mut len = u64::from(h[1] & 0x7F);
        match op {
            OP_CLOSE | OP_PING | OP_PONG => {
                if len > 125 {
                    return Err(w.protocol_error("control frame length > 125"));
                }
                if !fin {
                    return Err(w.protocol_error("control frame not final"));
                }
            }
            OP_TEXT | OP_BINARY if in_message => {
                return Err(w.protocol_error("message start before final message frame"));
            }
            OP_CONTINUATION if !in_message => {
                return Err(w.protocol_error("continuation after final message frame"));
            }
            OP_TEXT => return Err(format!("unxpected message type {}", OP_TEXT)),
            OP_BINARY | OP_CONTINUATION => in_message = !fin,
            _ => return Err(w.protocol_error(&format!("unknown opcode {}", op))),
        }
        if len == 126 {
            let mut b = [0u8; 2];
            rd.read_exact(&mut b).map_err(io)?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            rd.read_exact(&mut b).map_err(io)?;
            len = u64::from_be_bytes(b);
            if len > i64::MAX as u64 {
                return Err("websocket: invalid frame length".into());
            }
        }
        // clients mask every frame, servers none
        if masked != (w.role == Role::Server) {
            return Err(w.protocol_error("incorrect mask flag"));
        }
        let mut key = [0u8; 4];
        if masked {
            rd.read_exact(&mut key).map_err(io)?;
        }
        let mut pos = 0usize;
        let mut left = len;
        let mut control = Vec::new();
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            rd.read_exact(&mut buf[..n]).map_err(io)?;
            for b in &mut buf[..n] {
                *b ^= key[pos & 3];
                pos += 1;
            }
            if op == OP_BINARY || op == OP_CONTINUATION {
                out.write_all(&buf[..n]).map_err(io)?;
            } else {
                control.extend_from_slice(&buf[..n]);
            }
            left -= n as u64;
        }
        match op {
            OP_PING => w.frame(OP_PONG, &control).map_err(io)?,
            OP_CLOSE => {
                // gorilla's default close handler echoes the code (no text); no code, no payload
                let echo = if control.len() >= 2 { &control[..2] } else { &[][..] };
                let _ = w.frame(OP_CLOSE, echo);
                let code = if control.len() >= 2 {
                    u16::from_be_bytes([control[0], control[1]])
                } else {
                    1005
                };
                return Err(format!("websocket: close {}", code));
            }
            _ => {}
        }
    }
}

/// Longest answer head read from a server.
const MAX_HEAD: u64 = 16 * 1024;

/// The client side, for the `rtsp+ws://`/`rtsps+ws://` sources: upgrades `sock` (already
/// connected, TLS already terminated) like gorilla's Dialer as gortsplib's client uses it
/// (`GET /`, subprotocol `rtsp.onvif.org`), then carries the plain RTSP connection `rtsp`
/// through it until either side ends.
pub fn carry_as_client(mut sock: TcpStream, host: &str, rtsp: TcpStream) -> Result<(), String> {
    let key = BASE64.encode(crate::util::random_bytes(16));
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Protocol: rtsp.onvif.org\r\nSec-WebSocket-Version: 13\r\n\
         Upgrade: websocket\r\n\r\n",
        host, key
    );
    sock.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let w = sock.try_clone().map_err(|e| e.to_string())?;
    let mut rd = BufReader::new(sock);
    let head = read_answer_head(&mut rd)?;
    // gorilla's Dialer: 101 and the accept key, else ErrBadHandshake
    let status = head.lines().next().unwrap_or("");
    let accept = format!("sec-websocket-accept: {}", accept_key(&key)).to_lowercase();
    let ok = status.split_whitespace().nth(1) == Some("101") && head.lines().any(|l| l.to_lowercase() == accept);
    if !ok {
        return Err("websocket: bad handshake".into());
    }
    let _ = rd.get_ref().set_read_timeout(None);
    let _ = w.set_write_timeout(None);
    carry(rd, w, rtsp, Role::Client)
}

/// The status line and headers of an HTTP answer (bounded), without the empty line.
fn read_answer_head(rd: &mut BufReader<TcpStream>) -> Result<String, String> {
    use std::io::BufRead;
    let mut head = String::new();
    let mut lim = rd.by_ref().take(MAX_HEAD);
    loop {
        let mut line = String::new();
        let n = lim.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 || !line.ends_with('\n') {
            return Err("websocket: bad handshake".into());
        }
        if line.trim_end().is_empty() {
            return Ok(head);
        }
        head.push_str(line.trim_end());
        head.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc6455() {
        // RFC 6455 section 1.3's example
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
