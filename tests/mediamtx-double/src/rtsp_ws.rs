//! RTSP tunnelled in WebSocket on the RTSP/RTSPS port (gortsplib's server_conn_reader.go and
//! server_tunnel_websocket.go, with gorilla/websocket's server rules): a GET with
//! `Connection: Upgrade`, `Upgrade: websocket` and `Sec-WebSocket-Protocol: rtsp.onvif.org`
//! is upgraded, then the RTSP bytes travel in binary messages both ways. The RTSP connection
//! is served as any other (through a loopback socket, as the HTTP tunnel is) with
//! `tunnel: websocket`.

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
pub fn serve(shared: Arc<Shared>, rd: BufReader<TcpStream>, mut w: TcpStream, h: &Head, peer: SocketAddr, tls: bool) {
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
            shared.log(&format!("INF [RTSP] [conn {}] closed: {}", peer, text));
            return;
        }
    };
    // gorilla refuses a client that sent data before the handshake's answer
    if !rd.buffer().is_empty() {
        shared.log(&format!(
            "INF [RTSP] [conn {}] closed: websocket: client sent data before handshake is complete",
            peer
        ));
        return;
    }
    let ok = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept
    );
    if w.write_all(ok.as_bytes()).is_err() {
        return;
    }
    let _ = rd.get_ref().set_read_timeout(None);
    let Ok((inner, outer)) = crate::rtsps::loopback_pair() else {
        return;
    };
    let sh = shared.clone();
    let server = std::thread::spawn(move || crate::rtsp::conn(sh, inner, Some(peer), tls, "websocket"));
    let (Ok(outer_r), Ok(client_raw)) = (outer.try_clone(), w.try_clone()) else {
        return;
    };
    // one writer for data (server -> client) and the control answers of the reader
    let client_w = Arc::new(Mutex::new(w));
    // server -> client: each chunk the RTSP side writes becomes one binary message
    let down = std::thread::spawn({
        let client_w = client_w.clone();
        move || {
            let mut outer_r = outer_r;
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = outer_r.read(&mut buf) {
                if n == 0 || write_frame(&client_w, OP_BINARY, &buf[..n]).is_err() {
                    break;
                }
            }
            let _ = client_raw.shutdown(Shutdown::Both);
        }
    });
    if let Err(e) = read_messages(rd, &outer, &client_w) {
        shared.log(&format!("INF [RTSP] [conn {}] closed: {}", peer, e));
    }
    let _ = outer.shutdown(Shutdown::Both);
    if let Ok(c) = client_w.lock() {
        let _ = c.shutdown(Shutdown::Both);
    }
    let _ = down.join();
    let _ = server.join();
}

/// Writes one unmasked, final frame (server frames are never masked).
fn write_frame(w: &Mutex<TcpStream>, op: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | op);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    w.lock().map_err(|_| std::io::ErrorKind::Other)?.write_all(&f)
}

/// gorilla's handleProtocolError: a close frame with 1002 and the reason, then the error.
fn protocol_error(w: &Mutex<TcpStream>, reason: &str) -> String {
    let mut p = 1002u16.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p.truncate(125);
    let _ = write_frame(w, OP_CLOSE, &p);
    format!("websocket: {}", reason)
}

/// Reads the client's frames until the connection ends: binary payloads go to the RTSP side
/// as they arrive (gorilla has no message size limit by default, so nothing is buffered
/// whole); pings are answered, a close is echoed; a text message ends the tunnel as it does
/// gortsplib's wsReader.
fn read_messages(mut rd: BufReader<TcpStream>, mut out: &TcpStream, w: &Mutex<TcpStream>) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut in_message = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut h = [0u8; 2];
        rd.read_exact(&mut h).map_err(io)?;
        let (fin, rsv, op) = (h[0] & 0x80 != 0, h[0] & 0x70, h[0] & 0x0F);
        let masked = h[1] & 0x80 != 0;
        if rsv != 0 {
            return Err(protocol_error(w, &format!("unexpected reserved bits 0x{:x}", rsv)));
        }
        let mut len = u64::from(h[1] & 0x7F);
        match op {
            OP_CLOSE | OP_PING | OP_PONG => {
                if len > 125 {
                    return Err(protocol_error(w, "control frame length > 125"));
                }
                if !fin {
                    return Err(protocol_error(w, "control frame not final"));
                }
            }
            OP_TEXT | OP_BINARY if in_message => {
                return Err(protocol_error(w, "message start before final message frame"));
            }
            OP_CONTINUATION if !in_message => {
                return Err(protocol_error(w, "continuation after final message frame"));
            }
            OP_TEXT => return Err(format!("unxpected message type {}", OP_TEXT)),
            OP_BINARY | OP_CONTINUATION => in_message = !fin,
            _ => return Err(protocol_error(w, &format!("unknown opcode {}", op))),
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
        if !masked {
            return Err(protocol_error(w, "incorrect mask flag"));
        }
        let mut key = [0u8; 4];
        rd.read_exact(&mut key).map_err(io)?;
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
            OP_PING => write_frame(w, OP_PONG, &control).map_err(io)?,
            OP_CLOSE => {
                // gorilla's default close handler echoes the code (no text); no code, no payload
                let echo = if control.len() >= 2 { &control[..2] } else { &[][..] };
                let _ = write_frame(w, OP_CLOSE, echo);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc6455() {
        // RFC 6455 section 1.3's example
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
