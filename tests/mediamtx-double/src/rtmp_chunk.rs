//! The RTMP chunk stream: messages reassembled from a client's chunks (bounded) and
//! written as chunks, plus the connection's byte counters.

use crate::amf0::{self, Value as Amf};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A client controls message lengths and chunk stream ids: both are bounded.
pub const MAX_MESSAGE: usize = 8 << 20;
const MAX_CHUNK_STREAMS: usize = 16;
/// gortmplib's chunk size for what it sends (AcceptConn)
pub const OUT_CHUNK: usize = 65536;

/// Counts every byte read from the connection (gortmplib's bytecounter).
pub struct Counting {
    pub tcp: TcpStream,
    pub n: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.tcp.read(buf)?;
        self.n.fetch_add(r as u64, Ordering::Relaxed);
        Ok(r)
    }
}

pub struct Msg {
    pub typ: u8,
    pub ts: u32,
    pub payload: Vec<u8>,
}

#[derive(Default)]
struct ChunkState {
    ts: u32,
    delta: u32,
    len: usize,
    typ: u8,
    ext: bool,
    buf: Vec<u8>,
}

/// Reassembles messages from the client's chunk stream.
pub struct ChunkReader<R: Read> {
    pub rd: R,
    /// set by the client (Set Chunk Size)
    pub chunk_size: usize,
    streams: HashMap<u32, ChunkState>,
}

pub fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

impl<R: Read> ChunkReader<R> {
    pub fn new(rd: R) -> ChunkReader<R> {
        ChunkReader {
            rd,
            chunk_size: 128,
            streams: HashMap::new(),
        }
    }

    fn u(&mut self, n: usize) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.rd.read_exact(&mut b[4 - n..])?;
        Ok(u32::from_be_bytes(b))
    }

    pub fn read_message(&mut self) -> std::io::Result<Msg> {
        loop {
            let b0 = self.u(1)?;
            let fmt = b0 >> 6;
            let csid = match b0 & 0x3f {
                0 => 64 + self.u(1)?,
                1 => {
                    let lo = self.u(1)?;
                    64 + lo + self.u(1)? * 256
                }
                c => c,
            };
            if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
                return Err(bad("too many chunk streams"));
            }
            let mut st = self.streams.remove(&csid).unwrap_or_default();
            if fmt <= 2 {
                // a full header starts a new message: an unfinished one is dropped
                st.buf.clear();
            }
            let starting = st.buf.is_empty();
            if fmt <= 2 {
                let t = self.u(3)?;
                if fmt <= 1 {
                    st.len = self.u(3)? as usize;
                    st.typ = self.u(1)? as u8;
                    if fmt == 0 {
                        self.u(4)?; // message stream id (little endian), not needed
                    }
                }
                st.ext = t == 0xff_ffff;
                let t = if st.ext { self.u(4)? } else { t };
                if fmt == 0 {
                    st.ts = t;
                    st.delta = t;
                } else {
                    st.delta = t;
                    st.ts = st.ts.wrapping_add(t);
                }
            } else {
                if st.ext {
                    self.u(4)?;
                }
                if starting {
                    st.ts = st.ts.wrapping_add(st.delta);
                }
            }
            if st.len > MAX_MESSAGE {
                return Err(bad("message too big"));
            }
            let n = st.len.saturating_sub(st.buf.len()).min(self.chunk_size);
            let start = st.buf.len();
            st.buf.resize(start + n, 0);
            self.rd.read_exact(&mut st.buf[start..])?;
            let done = st.buf.len() == st.len;
            let msg = done.then(|| Msg {
                typ: st.typ,
                ts: st.ts,
                payload: std::mem::take(&mut st.buf),
            });
            self.streams.insert(csid, st);
            if let Some(m) = msg {
                return Ok(m);
            }
        }
    }
}

/// Serializes messages onto the connection (fmt 0, then fmt 3 continuation chunks).
pub struct Writer {
    pub tcp: Mutex<TcpStream>,
    pub sent: Arc<AtomicU64>,
}

impl Writer {
    pub fn send(&self, csid: u8, typ: u8, stream: u32, ts: u32, payload: &[u8]) -> std::io::Result<()> {
        let ext = ts >= 0xff_ffff;
        let mut b = Vec::with_capacity(payload.len() + 32);
        b.push(csid & 0x3f);
        b.extend_from_slice(&(if ext { 0xff_ffff } else { ts }).to_be_bytes()[1..]);
        b.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        b.push(typ);
        b.extend_from_slice(&stream.to_le_bytes());
        if ext {
            b.extend_from_slice(&ts.to_be_bytes());
        }
        for (i, piece) in payload.chunks(OUT_CHUNK).enumerate() {
            if i > 0 {
                b.push(0xc0 | (csid & 0x3f));
                if ext {
                    b.extend_from_slice(&ts.to_be_bytes());
                }
            }
            b.extend_from_slice(piece);
        }
        self.sent.fetch_add(b.len() as u64, Ordering::Relaxed);
        self.tcp.lock().unwrap().write_all(&b)
    }

    pub fn control(&self, typ: u8, payload: &[u8]) -> std::io::Result<()> {
        self.send(2, typ, 0, 0, payload)
    }

    pub fn command(&self, csid: u8, stream: u32, values: &[Amf]) -> std::io::Result<()> {
        let mut b = Vec::new();
        for v in values {
            amf0::encode(v, &mut b);
        }
        self.send(csid, 20, stream, 0, &b)
    }

    pub fn on_status(&self, txid: f64, level: &str, code: &str, description: &str) -> std::io::Result<()> {
        let status = amf0::obj(&[
            ("level", amf0::s(level)),
            ("code", amf0::s(code)),
            ("description", amf0::s(description)),
        ]);
        self.command(5, 1, &[amf0::s("onStatus"), Amf::Number(txid), Amf::Null, status])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassembled() {
        // a 200-byte video message in 128-byte chunks (fmt 0 then fmt 3), then fmt 2
        let payload: Vec<u8> = (0..200).map(|i| i as u8).collect();
        let mut b = vec![0x06, 0, 0, 10, 0, 0, 200, 9, 1, 0, 0, 0];
        b.extend_from_slice(&payload[..128]);
        b.push(0xc6);
        b.extend_from_slice(&payload[128..]);
        b.extend_from_slice(&[0x86, 0, 0, 5]);
        b.extend_from_slice(&payload[..128]);
        b.push(0xc6);
        b.extend_from_slice(&payload[128..]);
        let mut r = ChunkReader::new(&b[..]);
        let m = r.read_message().unwrap();
        assert_eq!((m.typ, m.ts, m.payload.len()), (9, 10, 200));
        let m = r.read_message().unwrap();
        assert_eq!((m.ts, &m.payload), (15, &payload));
        // a new header in the middle of a message: no panic, the new message wins
        let mut b = vec![0x06, 0, 0, 1, 0, 0, 200, 9, 1, 0, 0, 0];
        b.extend_from_slice(&payload[..128]);
        b.extend_from_slice(&[0x46, 0, 0, 1, 0, 0, 2, 8, 7, 7]);
        let mut r = ChunkReader::new(&b[..]);
        let m = r.read_message().unwrap();
        assert_eq!((m.typ, m.ts, m.payload), (8, 2, vec![7, 7]));
        // hostile: too long
        let mut r = ChunkReader::new(&[0x06u8, 0, 0, 0, 0xff, 0xff, 0xff, 9, 0, 0, 0, 0][..]);
        assert!(r.read_message().is_err());
    }
}
