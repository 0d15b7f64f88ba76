//! The MAVLink link: one reader and one writer thread per endpoint (blocking sockets), bridged
//! to the smol side with bounded channels. Frames are cut out of datagrams/streams here, so a
//! malformed or foreign-dialect frame is dropped and counted (never a crash, never a stall);
//! `mavlink` parses and writes the common dialect.

use super::config::Endpoint;
use mavlink::common::MavMessage;
use mavlink::{MavHeader, MavlinkVersion};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Inbound messages waiting for the front end; beyond this they are dropped and counted.
const INBOUND_QUEUE: usize = 256;
/// Outbound frames per endpoint.
const OUTBOUND_QUEUE: usize = 256;
/// How often blocked reads look at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// A `udpin` peer not heard from for this long gets no more frames.
const PEER_TTL: Duration = Duration::from_secs(60);
const MAX_PEERS: usize = 8;

#[derive(Default, Debug)]
pub struct Counters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Malformed, foreign-dialect or CRC-failing frames and garbage runs.
    pub rx_dropped: AtomicU64,
    /// Inbound messages dropped because the front end was behind, or frames the writer could
    /// not take.
    pub queue_dropped: AtomicU64,
    pub tx_errors: AtomicU64,
}

pub struct Inbound {
    pub header: MavHeader,
    pub msg: MavMessage,
}

pub struct Link {
    writers: Vec<async_channel::Sender<Arc<Vec<u8>>>>,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    sequence: AtomicU8,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Link {
    /// Opens every endpoint (a `udpin` that cannot bind is an error; `tcpout` connects in the
    /// background and keeps retrying).
    pub fn open(endpoints: &[Endpoint]) -> Result<(Link, async_channel::Receiver<Inbound>), String> {
        let (in_tx, in_rx) = async_channel::bounded(INBOUND_QUEUE);
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        let mut threads = Vec::new();
        for ep in endpoints {
            let (out_tx, out_rx) = async_channel::bounded::<Arc<Vec<u8>>>(OUTBOUND_QUEUE);
            writers.push(out_tx);
            let ctx = Ctx {
                inbound: in_tx.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
            };
            match ep {
                Endpoint::UdpIn(addr) | Endpoint::UdpOut(addr) => {
                    let server = matches!(ep, Endpoint::UdpIn(_));
                    let (socket, dest) = if server {
                        (UdpSocket::bind(addr).map_err(|e| format!("udpin:{addr}: {e}"))?, None)
                    } else {
                        let dest = resolve(addr).map_err(|e| format!("udpout:{addr}: {e}"))?;
                        let any = if dest.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                        (
                            UdpSocket::bind(any).map_err(|e| format!("udpout:{addr}: {e}"))?,
                            Some(dest),
                        )
                    };
                    socket.set_read_timeout(Some(POLL)).map_err(|e| e.to_string())?;
                    let peers = Arc::new(Mutex::new(Peers::new(dest)));
                    let rs = socket.try_clone().map_err(|e| e.to_string())?;
                    let p = peers.clone();
                    threads.push(spawn("mavlink-udp-rx", move || udp_reader(rs, p, server, ctx)));
                    let c = counters.clone();
                    threads.push(spawn("mavlink-udp-tx", move || udp_writer(socket, peers, out_rx, c)));
                }
                Endpoint::TcpOut(addr) => {
                    let current: Arc<Mutex<Option<TcpStream>>> = Arc::default();
                    let (a, cur) = (addr.clone(), current.clone());
                    threads.push(spawn("mavlink-tcp-rx", move || tcp_reader(a, cur, ctx)));
                    let c = counters.clone();
                    threads.push(spawn("mavlink-tcp-tx", move || tcp_writer(current, out_rx, c)));
                }
            }
        }
        Ok((
            Link {
                writers,
                counters,
                stop,
                sequence: AtomicU8::new(0),
                threads: Mutex::new(threads),
            },
            in_rx,
        ))
    }

    /// Encodes once (MAVLink 2) and queues the frame on every endpoint; never blocks.
    pub fn send(&self, system_id: u8, component_id: u8, msg: &MavMessage) {
        let header = MavHeader {
            system_id,
            component_id,
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed),
        };
        let mut buf = Vec::with_capacity(64);
        if let Err(e) = mavlink::write_versioned_msg(&mut buf, MavlinkVersion::V2, header, msg) {
            log::warn!("mavlink: cannot encode {}: {e}", msg_name(msg));
            self.counters.tx_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let frame = Arc::new(buf);
        for w in &self.writers {
            if w.try_send(frame.clone()).is_err() {
                self.counters.queue_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops the threads and waits for them (they look at the flag every 200 ms).
    pub fn close(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.writers {
            w.close();
        }
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}

fn msg_name(msg: &MavMessage) -> &'static str {
    use mavlink::Message;
    msg.message_name()
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(128 * 1024)
        .spawn(f)
        .expect("spawn a MAVLink link thread")
}

fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

struct Ctx {
    inbound: async_channel::Sender<Inbound>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Ctx {
    fn deliver(&self, frames: Vec<Inbound>, dropped: u64) {
        self.counters.rx_dropped.fetch_add(dropped, Ordering::Relaxed);
        for f in frames {
            self.counters.rx.fetch_add(1, Ordering::Relaxed);
            if self.inbound.try_send(f).is_err() {
                self.counters.queue_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Where a UDP endpoint sends: its fixed destination (`udpout`) or the peers heard from
/// (`udpin`, newest first, bounded).
struct Peers {
    fixed: Option<SocketAddr>,
    heard: Vec<(SocketAddr, Instant)>,
}

impl Peers {
    fn new(fixed: Option<SocketAddr>) -> Peers {
        Peers {
            fixed,
            heard: Vec::new(),
        }
    }
    fn heard(&mut self, from: SocketAddr) {
        self.heard.retain(|(a, _)| *a != from);
        self.heard.insert(0, (from, Instant::now()));
        self.heard.truncate(MAX_PEERS);
    }
    fn targets(&mut self) -> Vec<SocketAddr> {
        if let Some(f) = self.fixed {
            return vec![f];
        }
        self.heard.retain(|(_, t)| t.elapsed() < PEER_TTL);
        self.heard.iter().map(|(a, _)| *a).collect()
    }
}

fn udp_reader(socket: UdpSocket, peers: Arc<Mutex<Peers>>, server: bool, ctx: Ctx) {
    let mut buf = vec![0u8; 2048];
    while !ctx.stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if server {
                    peers.lock().unwrap().heard(from);
                }
                let mut data = buf[..n].to_vec();
                let (frames, dropped) = split_frames(&mut data, false);
                ctx.deliver(frames, dropped);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => {
                // e.g. ECONNREFUSED reported for an earlier send to a closed port
                log::debug!("mavlink: udp receive: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn udp_writer(
    socket: UdpSocket,
    peers: Arc<Mutex<Peers>>,
    out: async_channel::Receiver<Arc<Vec<u8>>>,
    counters: Arc<Counters>,
) {
    while let Ok(frame) = out.recv_blocking() {
        let targets = peers.lock().unwrap().targets();
        for t in targets {
            match socket.send_to(&frame, t) {
                Ok(_) => {
                    counters.tx.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.tx_errors.fetch_add(1, Ordering::Relaxed);
                    log::debug!("mavlink: udp send to {t}: {e}");
                }
            }
        }
    }
}

fn tcp_reader(addr: String, current: Arc<Mutex<Option<TcpStream>>>, ctx: Ctx) {
    let mut backoff = Duration::from_millis(500);
    while !ctx.stop.load(Ordering::Relaxed) {
        let stream = resolve(&addr).and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)));
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::debug!("mavlink: tcpout:{addr}: {e}");
                let until = Instant::now() + backoff;
                while Instant::now() < until && !ctx.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL);
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        log::info!("mavlink: connected to tcpout:{addr}");
        let _ = stream.set_read_timeout(Some(POLL));
        let _ = stream.set_nodelay(true);
        *current.lock().unwrap() = stream.try_clone().ok();
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !ctx.stop.load(Ordering::Relaxed) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    let (frames, dropped) = split_frames(&mut pending, true);
                    ctx.deliver(frames, dropped);
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        *current.lock().unwrap() = None;
        log::info!("mavlink: tcpout:{addr} closed; reconnecting");
    }
}

fn tcp_writer(
    current: Arc<Mutex<Option<TcpStream>>>,
    out: async_channel::Receiver<Arc<Vec<u8>>>,
    counters: Arc<Counters>,
) {
    while let Ok(frame) = out.recv_blocking() {
        let mut cur = current.lock().unwrap();
        if let Some(s) = cur.as_mut() {
            let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
            match s.write_all(&frame) {
                Ok(()) => {
                    counters.tx.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.tx_errors.fetch_add(1, Ordering::Relaxed);
                    *cur = None;
                }
            }
        }
    }
}

const STX_V1: u8 = 0xFE;
const STX_V2: u8 = 0xFD;

/// Cuts complete frames out of `buf` and parses them. Garbage runs and frames that do not
/// parse (bad CRC, a message id outside the common dialect, a bad payload) count as
/// dropped. `stream`: an incomplete frame at the end stays in `buf` for the next read;
/// otherwise (a datagram) it is dropped.
pub(crate) fn split_frames(buf: &mut Vec<u8>, stream: bool) -> (Vec<Inbound>, u64) {
    let mut frames = Vec::new();
    let mut dropped = 0u64;
    let mut i = 0;
    loop {
        let Some(off) = buf[i..].iter().position(|&b| b == STX_V1 || b == STX_V2) else {
            if i < buf.len() {
                dropped += 1;
            }
            i = buf.len();
            break;
        };
        if off > 0 {
            dropped += 1;
        }
        let j = i + off;
        let total = match buf[j] {
            STX_V2 if buf.len() > j + 2 => {
                let signed = buf[j + 2] & 0x01 != 0;
                12 + buf[j + 1] as usize + if signed { 13 } else { 0 }
            }
            STX_V1 if buf.len() > j + 1 => 8 + buf[j + 1] as usize,
            _ => usize::MAX,
        };
        if total == usize::MAX || buf.len() < j + total {
            // incomplete
            if stream {
                i = j;
            } else {
                dropped += 1;
                i = buf.len();
            }
            break;
        }
        let frame = &buf[j..j + total];
        let mut reader = mavlink::peek_reader::PeekReader::<_, 280>::new(frame);
        match mavlink::read_versioned_msg::<MavMessage, _>(&mut reader, mavlink::ReadVersion::Any) {
            Ok((header, msg)) => frames.push(Inbound { header, msg }),
            Err(_) => dropped += 1,
        }
        i = j + total;
    }
    buf.drain(..i);
    (frames, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mavlink::common::*;

    fn frame(msg: &MavMessage, version: MavlinkVersion) -> Vec<u8> {
        let mut buf = Vec::new();
        let h = MavHeader {
            system_id: 7,
            component_id: 1,
            sequence: 3,
        };
        mavlink::write_versioned_msg(&mut buf, version, h, msg).unwrap();
        buf
    }

    fn heartbeat() -> MavMessage {
        MavMessage::HEARTBEAT(HEARTBEAT_DATA {
            custom_mode: 0,
            mavtype: MavType::MAV_TYPE_QUADROTOR,
            autopilot: MavAutopilot::MAV_AUTOPILOT_PX4,
            base_mode: MavModeFlag::empty(),
            system_status: MavState::MAV_STATE_ACTIVE,
            mavlink_version: 3,
        })
    }

    #[test]
    fn frames_garbage_and_foreign_dialects_are_split_and_counted() {
        let hb2 = frame(&heartbeat(), MavlinkVersion::V2);
        let hb1 = frame(&heartbeat(), MavlinkVersion::V1);
        let mut foreign = hb2.clone();
        foreign[7] = 0xC8; // message id 200 (an ArduPilot-only id): CRC extra unknown
        let mut bad_crc = hb2.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xFF;
        let mut data = Vec::new();
        data.extend_from_slice(b"junk");
        data.extend_from_slice(&hb2);
        data.extend_from_slice(&foreign);
        data.extend_from_slice(&hb1);
        data.extend_from_slice(&bad_crc);
        data.extend_from_slice(&hb2[..5]);
        let mut d = data.clone();
        let (frames, dropped) = split_frames(&mut d, false);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].header.system_id, 7);
        // junk, foreign, bad crc, truncated tail
        assert_eq!(dropped, 4);
        assert!(d.is_empty());

        // a stream keeps the incomplete tail and completes it with the next read
        let mut s = data.clone();
        let (frames, dropped) = split_frames(&mut s, true);
        assert_eq!((frames.len(), dropped), (2, 3));
        assert_eq!(s.len(), 5);
        s.extend_from_slice(&hb2[5..]);
        let (frames, dropped) = split_frames(&mut s, true);
        assert_eq!((frames.len(), dropped), (1, 0));
        assert!(s.is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..2000 {
            let mut data: Vec<u8> = (0..(seed % 300) as usize)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if seed % 7 == 0 {
                        STX_V2
                    } else {
                        seed as u8
                    }
                })
                .collect();
            let _ = split_frames(&mut data, seed % 2 == 0);
        }
    }
}
