//! crypto/tls's words for a failed server handshake, read from OpenSSL's: what MediaMTX
//! logs when an RTSPS or RTMPS client's handshake fails (`closed: ...`), and what a
//! plain HTTP request to an HTTPS server gets from net/http.

use openssl::ssl::{ErrorCode, HandshakeError};
use std::net::TcpStream;

/// A received alert's OpenSSL reason code is this plus the alert's number.
const ALERT_REASON_OFFSET: i32 = 1000;

/// crypto/tls's alert texts (alert.go), by alert number.
fn alert_text(alert: i32) -> Option<&'static str> {
    Some(match alert {
        0 => "close notify",
        10 => "unexpected message",
        20 => "bad record MAC",
        21 => "decryption failed",
        22 => "record overflow",
        30 => "decompression failure",
        40 => "handshake failure",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "revoked certificate",
        45 => "expired certificate",
        46 => "unknown certificate",
        47 => "illegal parameter",
        48 => "unknown certificate authority",
        49 => "access denied",
        50 => "error decoding message",
        51 => "error decrypting message",
        60 => "export restriction",
        70 => "protocol version not supported",
        71 => "insufficient security level",
        80 => "internal error",
        86 => "inappropriate fallback",
        90 => "user canceled",
        100 => "no renegotiation",
        109 => "missing extension",
        110 => "unsupported extension",
        111 => "certificate unobtainable",
        112 => "unrecognized name",
        113 => "bad certificate status response",
        114 => "bad certificate hash value",
        115 => "unknown PSK identity",
        116 => "certificate required",
        120 => "no application protocol",
        121 => "encrypted client hello required",
        _ => return None,
    })
}

/// The error Go's tls.Conn gives for a server handshake that OpenSSL failed: the
/// first record not a handshake (OpenSSL: a wrong version, an HTTP request...), the
/// client's alert (`remote error: tls: ...`), no shared cipher, the connection's end
/// (`EOF`) or a read error (`read tcp L->R: i/o timeout`); OpenSSL's text otherwise.
pub fn go_handshake_error(e: &HandshakeError<TcpStream>) -> String {
    let HandshakeError::Failure(mid) = e else {
        return e.to_string();
    };
    let err = mid.error();
    let tcp = mid.get_ref();
    if let Some(io) = err.io_error() {
        return crate::util::go_read_error(io, tcp.local_addr().ok(), tcp.peer_addr().ok());
    }
    if err.code() == ErrorCode::SYSCALL || err.code() == ErrorCode::ZERO_RETURN {
        return "EOF".into();
    }
    for e in err.ssl_error().map(|s| s.errors()).unwrap_or_default() {
        if let Some(text) = alert_text(e.reason_code() - ALERT_REASON_OFFSET) {
            return format!("remote error: tls: {}", text);
        }
        match e.reason().unwrap_or("") {
            "wrong version number" | "http request" | "https proxy request" | "packet length too long" => {
                return "tls: first record does not look like a TLS handshake".into()
            }
            "unexpected eof while reading" => return "EOF".into(),
            "no shared cipher" => return "tls: no cipher suite supported by both client and server".into(),
            _ => {}
        }
    }
    e.to_string()
}

/// net/http's tlsRecordHeaderLooksLikeHTTP: the first five bytes of a plain request.
pub fn looks_like_http(first: &[u8]) -> bool {
    matches!(first, b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO")
}

/// What net/http answers (then closes) to a plain HTTP request on an HTTPS server.
pub const PLAIN_HTTP_ANSWER: &str = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
