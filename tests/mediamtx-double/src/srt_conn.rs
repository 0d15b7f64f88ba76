//! One accepted SRT connection: the live-mode receiver (publisher) or sender (reader)
//! state machine, and its ffmpeg relay to or from the double's RTSP server.

use crate::core::{ChildKind, Shared};
use crate::srt::{add, ConnInfo, Ev, StreamId, MAX_BUFFERED};
use crate::srt_packet as pk;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACK_PERIOD: Duration = Duration::from_millis(10);
const KEEPALIVE: Duration = Duration::from_secs(1);

/// mpegts's errNoSupportedCodecs: a reader of a stream without any track MPEG-TS takes.
const NO_SUPPORTED_CODECS: &str = "the stream doesn't contain any supported codec, which are currently \
     H265, H264, MPEG-4 Video, MPEG-1/2 Video, Opus, MPEG-4 Audio, MPEG-1/2 Audio, AC-3";

/// a gap older than this is skipped (TLPKTDROP)
const GAP_DROP: Duration = Duration::from_millis(500);
/// per data packet, what the counters add for the IPv4, UDP and SRT headers
const HEADERS: u64 = 44;

/// One accepted connection: the SRT state machine of a live-mode sender or receiver.
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) sock: Arc<UdpSocket>,
    pub(crate) peer: SocketAddr,
    pub(crate) peer_id: u32,
    pub(crate) info: Arc<ConnInfo>,
    pub(crate) keys: Option<pk::Sek>,
    pub(crate) isn: u32,
    pub(crate) peer_window: usize,
    pub(crate) start: Instant,
    pub(crate) last_sent: Instant,
}

fn seq_add(a: u32, n: u32) -> u32 {
    a.wrapping_add(n) & 0x7FFF_FFFF
}

/// b - a in 31-bit sequence space, negative when b is before a
fn seq_diff(a: u32, b: u32) -> i32 {
    let d = b.wrapping_sub(a) & 0x7FFF_FFFF;
    if d >= 0x4000_0000 {
        (i64::from(d) - (1i64 << 31)) as i32
    } else {
        d as i32
    }
}

impl Conn {
    fn ts(&self) -> u32 {
        self.start.elapsed().as_micros() as u32
    }

    fn send_ctrl(&mut self, kind: u16, info: u32, cif: &[u8]) {
        let p = pk::control(kind, info, self.ts(), self.peer_id, cif);
        let _ = self.sock.send_to(&p, self.peer);
        self.last_sent = Instant::now();
    }

    /// Runs the accepted connection; returns why it ended.
    pub(crate) fn run(mut self, sid: StreamId, tx: SyncSender<Ev>, rx: Receiver<Ev>) -> String {
        let path = sid.path.clone();
        let role = if sid.publish {
            // `publish` once the relay publishes (srt::publishing)
            self.start_publish(&path)
        } else {
            self.start_read(&sid, tx).map(|c| {
                let mut m = self.info.info.lock().unwrap();
                (m.state, m.user) = ("read", sid.user.clone());
                c
            })
        };
        let (mut child, stdin) = match role {
            Ok(c) => c,
            Err(e) => {
                self.send_ctrl(pk::CTRL_SHUTDOWN, 0, &[0, 0, 0, 0]);
                return e;
            }
        };
        let reason = if sid.publish {
            self.receive_loop(&rx, stdin, &mut child)
        } else {
            self.send_loop(&rx, &mut child)
        };
        if reason != "peer closed the connection" {
            self.send_ctrl(pk::CTRL_SHUTDOWN, 0, &[0, 0, 0, 0]);
        }
        if !sid.publish {
            self.remove_reader(&path);
        }
        crate::procs::stop_in_background(&self.shared, child, Duration::from_secs(3));
        reason
    }

    /// A publisher: the path must take publishers; the relay's RTSP publication
    /// becomes the path's source (`srtConn`).
    fn start_publish(&mut self, path: &str) -> Result<(Child, Option<std::process::ChildStdin>), String> {
        {
            let mut st = self.shared.lock();
            let p = crate::core::get_or_create_path(&self.shared, &mut st, path)?;
            if p.s("source") != "publisher" {
                return Err("can't publish since 'source' is not 'publisher'".into());
            }
        }
        // MPEG-TS can announce streams late: ffmpeg waits 5 s by default, MediaMTX
        // publishes once it has the PMT and the codec parameters
        let args = crate::procs::relay_in_args(
            &self.shared,
            &["-analyzeduration", "1000000", "-f", "mpegts"],
            &format!(
                "{}?srtconn={}",
                crate::procs::internal_url(&self.shared, path),
                self.info.id
            ),
        );
        let mut child = crate::procs::spawn_relay(&self.shared, &args, path, ChildKind::SrtRelay, true)
            .ok_or("cannot start ffmpeg")?;
        let stdin = child.stdin.take();
        Ok((child, stdin))
    }

    /// A reader: counted by the path (maxReaders, runOnRead), fed by a hidden relay.
    fn start_read(
        &mut self,
        sid: &StreamId,
        tx: SyncSender<Ev>,
    ) -> Result<(Child, Option<std::process::ChildStdin>), String> {
        let path = &sid.path;
        let tracks: Vec<usize>;
        {
            let mut st = self.shared.lock();
            let p = st
                .paths
                .get_mut(path)
                .filter(|p| p.stream.is_some())
                .ok_or_else(|| format!("no stream is available on path '{}'", path))?;
            // mpegts.FromStream: the tracks MPEG-TS takes, the others skipped
            let medias = p.stream.as_ref().map(|s| s.sdp.medias.clone()).unwrap_or_default();
            tracks = crate::media::tracks_of(&medias, crate::procs::MPEGTS_CODECS);
            if tracks.is_empty() {
                return Err(NO_SUPPORTED_CODECS.into());
            }
            let scope = self.info.scope();
            let info = crate::core::log_track_choice(&self.shared, &scope, &medias, &tracks);
            self.shared
                .log_as(&scope, "INF", &format!("is reading from path '{}', {}", path, info));
            p.readers.push((self.conn_key(), self.info.id.clone(), "srtConn"));
            p.demand += 1;
            let reader = (self.info.id.as_str(), "srtConn", self.info.scope());
            crate::core::reader_added(&self.shared, p, self.conn_key(), reader, &sid.query);
        }
        let args = crate::procs::relay_out_args(
            &self.shared,
            &crate::procs::internal_url(&self.shared, path),
            Some(&tracks),
            &["-f", "mpegts"],
        );
        let mut child = crate::procs::spawn_relay(&self.shared, &args, path, ChildKind::SrtRelay, false)
            .ok_or("cannot start ffmpeg")?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Ev::Media(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Ev::MediaEnd);
        });
        Ok((child, None))
    }

    /// The key of this connection among the path's readers (never an RTSP conn id:
    /// those are small counters).
    fn conn_key(&self) -> u64 {
        (1u64 << 63) | u64::from(self.peer_id)
    }

    fn remove_reader(&self, path: &str) {
        let mut st = self.shared.lock();
        if let Some(p) = st.paths.get_mut(path) {
            let key = self.conn_key();
            let before = p.readers.len();
            p.readers.retain(|(c, _, _)| *c != key);
            crate::core::reader_removed(&self.shared, p, key);
            if p.readers.len() != before {
                p.demand = p.demand.saturating_sub(1);
                if p.demand == 0 {
                    p.idle_since = Instant::now();
                }
            }
        }
    }

    /// Common control handling; Some(reason) = the connection ends.
    fn should_end(&self, child: &mut Child, last_recv: Instant) -> Option<String> {
        if self.info.kick.load(Ordering::SeqCst) || self.shared.shutdown.load(Ordering::SeqCst) {
            return Some("terminated".into());
        }
        // MediaMTX sets the listener's PeerIdleTimeout to readTimeout
        let peer_timeout = crate::conf::duration_of(&self.shared.lock().global, "readTimeout");
        if last_recv.elapsed() > peer_timeout.max(ACK_PERIOD) {
            return Some("peer timed out".into());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Some(format!("relay exited ({})", st));
        }
        None
    }

    /// Publisher side: data in order to the relay's stdin, ACK every 10 ms, NAK on gaps.
    fn receive_loop(
        &mut self,
        rx: &Receiver<Ev>,
        stdin: Option<std::process::ChildStdin>,
        child: &mut Child,
    ) -> String {
        // a writer thread so that a slow relay never stalls the protocol
        let (wtx, wrx) = sync_channel::<Vec<u8>>(1024);
        if let Some(mut stdin) = stdin {
            std::thread::spawn(move || {
                for b in wrx {
                    if stdin.write_all(&b).is_err() {
                        break;
                    }
                }
            });
        }
        let mut next = self.isn;
        // out-of-order packets by sequence number
        let mut held: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut gap_since: Option<Instant> = None;
        let mut last_ack = Instant::now();
        let mut acked = next.wrapping_sub(1);
        let mut ack_no: u32 = 0;
        // recent full ACKs (number, sent at): the peer's ACKACK gives the RTT
        let mut acks_sent: VecDeque<(u32, Instant)> = VecDeque::new();
        let mut last_recv = Instant::now();
        loop {
            if let Some(r) = self.should_end(child, last_recv) {
                return r;
            }
            match rx.recv_timeout(ACK_PERIOD) {
                Ok(Ev::Net(b)) => {
                    last_recv = Instant::now();
                    if let Some(d) = pk::parse_data(&b) {
                        add(&self.info.stats.pkt_recv, 1);
                        add(&self.info.stats.byte_recv, d.payload.len() as u64 + HEADERS);
                        let ahead = seq_diff(next, d.seq);
                        if ahead < 0 || held.contains_key(&d.seq) {
                            continue; // duplicate
                        }
                        add(&self.info.stats.pkt_recv_unique, 1);
                        add(&self.info.stats.byte_recv_unique, d.payload.len() as u64 + HEADERS);
                        let Some(payload) = self.decrypt(&d) else {
                            add(&self.info.stats.pkt_recv_undecrypt, 1);
                            continue;
                        };
                        if ahead > 0 {
                            if held.is_empty() {
                                // report the gap once; the sender retransmits
                                let lost = (ahead as u64).min(MAX_BUFFERED as u64);
                                add(&self.info.stats.pkt_recv_loss, lost);
                                self.nak(next, seq_add(d.seq, 0x7FFF_FFFF));
                                gap_since = Some(Instant::now());
                            }
                            if held.len() < MAX_BUFFERED {
                                held.insert(d.seq, payload);
                            }
                            continue;
                        }
                        let _ = wtx.try_send(payload);
                        next = seq_add(next, 1);
                        release(&mut held, &mut next, &wtx);
                        if held.is_empty() {
                            gap_since = None;
                        }
                    } else if let Some(c) = pk::parse_control(&b) {
                        match c.kind {
                            pk::CTRL_SHUTDOWN => return "peer closed the connection".into(),
                            pk::CTRL_ACKACK => {
                                if let Some((_, t)) = acks_sent.iter().find(|(n, _)| *n == c.info) {
                                    let rtt = t.elapsed().as_micros() as u64;
                                    self.info.stats.rtt_us.store(rtt, Ordering::Relaxed);
                                }
                            }
                            // keepalives only count as signs of life
                            _ => {}
                        }
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return "terminated".into(),
            }
            // TLPKTDROP: a gap not filled in time is skipped
            if gap_since.is_some_and(|t| t.elapsed() > GAP_DROP) {
                if let Some(first) = held.keys().copied().min_by_key(|s| seq_diff(next, *s)) {
                    next = first;
                    release(&mut held, &mut next, &wtx);
                }
                gap_since = if held.is_empty() { None } else { Some(Instant::now()) };
            }
            if last_ack.elapsed() >= ACK_PERIOD {
                last_ack = Instant::now();
                if next != acked {
                    acked = next;
                    ack_no = ack_no.wrapping_add(1);
                    self.ack(ack_no, next);
                    if acks_sent.len() >= 64 {
                        acks_sent.pop_front();
                    }
                    acks_sent.push_back((ack_no, Instant::now()));
                } else if self.last_sent.elapsed() >= KEEPALIVE {
                    self.send_ctrl(pk::CTRL_KEEPALIVE, 0, &[0, 0, 0, 0]);
                }
            }
        }
    }

    fn decrypt(&self, d: &pk::Data) -> Option<Vec<u8>> {
        match (&self.keys, d.kk) {
            (_, 0) => Some(d.payload.to_vec()),
            (Some(sek), kk) if kk == sek.kk => pk::crypt(sek, d.seq, d.payload),
            _ => None,
        }
    }

    /// A full ACK: next expected sequence, RTT, RTT variance, free buffer, rates.
    fn ack(&mut self, no: u32, next: u32) {
        let mut cif = Vec::with_capacity(28);
        for w in [next, 10_000, 5_000, MAX_BUFFERED as u32, 1000, 10_000, 10_000_000] {
            cif.extend_from_slice(&w.to_be_bytes());
        }
        self.send_ctrl(pk::CTRL_ACK, no, &cif);
        add(&self.info.stats.pkt_sent_ack, 1);
    }

    /// A NAK for the range [from, to].
    fn nak(&mut self, from: u32, to: u32) {
        let mut cif = Vec::with_capacity(8);
        if from == to {
            cif.extend_from_slice(&from.to_be_bytes());
        } else {
            cif.extend_from_slice(&(from | 0x8000_0000).to_be_bytes());
            cif.extend_from_slice(&to.to_be_bytes());
        }
        self.send_ctrl(pk::CTRL_NAK, 0, &cif);
        add(&self.info.stats.pkt_sent_nak, 1);
    }

    /// Reader side: the relay's MPEG-TS in 1316-byte packets within the peer's window,
    /// ACKs answered with ACKACK, NAKed packets retransmitted.
    fn send_loop(&mut self, rx: &Receiver<Ev>, child: &mut Child) -> String {
        let mut next_seq = self.isn;
        let mut msgno: u32 = 1;
        let mut unacked: VecDeque<(u32, Vec<u8>)> = VecDeque::new();
        let mut waiting: VecDeque<Vec<u8>> = VecDeque::new();
        let mut partial: Vec<u8> = Vec::new();
        let mut window = self.peer_window;
        let mut last_recv = Instant::now();
        let mut media_done = false;
        loop {
            if let Some(r) = self.should_end(child, last_recv) {
                return r;
            }
            if media_done && waiting.is_empty() {
                return "stream ended".into();
            }
            match rx.recv_timeout(ACK_PERIOD) {
                Ok(Ev::Media(b)) => {
                    partial.extend_from_slice(&b);
                    while partial.len() >= pk::LIVE_PAYLOAD {
                        let rest = partial.split_off(pk::LIVE_PAYLOAD);
                        waiting.push_back(std::mem::replace(&mut partial, rest));
                    }
                }
                Ok(Ev::MediaEnd) => {
                    if !partial.is_empty() {
                        waiting.push_back(std::mem::take(&mut partial));
                    }
                    media_done = true;
                }
                Ok(Ev::Net(b)) => {
                    last_recv = Instant::now();
                    let Some(c) = pk::parse_control(&b) else { continue };
                    match c.kind {
                        pk::CTRL_SHUTDOWN => return "peer closed the connection".into(),
                        pk::CTRL_ACK => {
                            add(&self.info.stats.pkt_recv_ack, 1);
                            if c.cif.len() >= 4 {
                                let upto = u32::from_be_bytes([c.cif[0], c.cif[1], c.cif[2], c.cif[3]]) & 0x7FFF_FFFF;
                                while unacked.front().is_some_and(|(s, _)| seq_diff(*s, upto) > 0) {
                                    unacked.pop_front();
                                }
                            }
                            if c.cif.len() >= 16 {
                                let rtt = u32::from_be_bytes([c.cif[4], c.cif[5], c.cif[6], c.cif[7]]);
                                self.info.stats.rtt_us.store(rtt as u64, Ordering::Relaxed);
                                let avail = u32::from_be_bytes([c.cif[12], c.cif[13], c.cif[14], c.cif[15]]);
                                window = (avail as usize).clamp(32, self.peer_window);
                                self.info.stats.flow_window.store(window as u64, Ordering::Relaxed);
                                // full ACKs are acknowledged
                                self.send_ctrl(pk::CTRL_ACKACK, c.info, &[0, 0, 0, 0]);
                            }
                        }
                        pk::CTRL_NAK => {
                            add(&self.info.stats.pkt_recv_nak, 1);
                            self.retransmit(c.cif, &unacked);
                        }
                        _ => {}
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    // a short tail (the relay is between writes) goes out as it is
                    if !partial.is_empty() && partial.len() % 188 == 0 {
                        waiting.push_back(std::mem::take(&mut partial));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return "terminated".into(),
            }
            if waiting.len() > MAX_BUFFERED {
                let excess = waiting.len() - MAX_BUFFERED;
                waiting.drain(..excess);
            }
            while unacked.len() < window.min(MAX_BUFFERED) {
                let Some(payload) = waiting.pop_front() else { break };
                let seq = next_seq;
                next_seq = seq_add(next_seq, 1);
                let (kk, body) = self.encrypt(seq, payload);
                let pkt = pk::data(seq, msgno, kk, false, self.ts(), self.peer_id, &body);
                msgno = (msgno + 1) & 0x03FF_FFFF;
                let _ = self.sock.send_to(&pkt, self.peer);
                self.last_sent = Instant::now();
                let n = body.len() as u64 + HEADERS;
                for c in [&self.info.stats.pkt_sent, &self.info.stats.pkt_sent_unique] {
                    add(c, 1);
                }
                add(&self.info.stats.byte_sent, n);
                add(&self.info.stats.byte_sent_unique, n);
                unacked.push_back((seq, pkt));
            }
            if self.last_sent.elapsed() >= KEEPALIVE {
                self.send_ctrl(pk::CTRL_KEEPALIVE, 0, &[0, 0, 0, 0]);
            }
        }
    }

    fn encrypt(&self, seq: u32, payload: Vec<u8>) -> (u8, Vec<u8>) {
        match &self.keys {
            Some(sek) => match pk::crypt(sek, seq, &payload) {
                Some(b) => (sek.kk, b),
                None => (0, payload),
            },
            None => (0, payload),
        }
    }

    /// Resends the packets of a NAK's loss list that are still kept.
    fn retransmit(&mut self, cif: &[u8], unacked: &VecDeque<(u32, Vec<u8>)>) {
        let words: Vec<u32> = cif
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let mut i = 0;
        let mut budget = MAX_BUFFERED;
        while i < words.len() && budget > 0 {
            let (from, to) = if words[i] & 0x8000_0000 != 0 && i + 1 < words.len() {
                i += 2;
                (words[i - 2] & 0x7FFF_FFFF, words[i - 1] & 0x7FFF_FFFF)
            } else {
                i += 1;
                (words[i - 1] & 0x7FFF_FFFF, words[i - 1] & 0x7FFF_FFFF)
            };
            add(&self.info.stats.pkt_send_loss, (seq_diff(from, to).max(0) + 1) as u64);
            for (seq, pkt) in unacked.iter() {
                if seq_diff(from, *seq) >= 0 && seq_diff(*seq, to) >= 0 && budget > 0 {
                    budget -= 1;
                    let mut p = pkt.clone();
                    p[4] |= 0x04; // R: retransmitted
                    let _ = self.sock.send_to(&p, self.peer);
                    add(&self.info.stats.pkt_retrans, 1);
                    add(&self.info.stats.pkt_sent, 1);
                    add(
                        &self.info.stats.byte_retrans,
                        (p.len() - pk::HEADER_LEN) as u64 + HEADERS,
                    );
                    add(&self.info.stats.byte_sent, (p.len() - pk::HEADER_LEN) as u64 + HEADERS);
                }
            }
        }
        self.last_sent = Instant::now();
    }
}

/// Delivers the held packets that now follow in order.
fn release(held: &mut HashMap<u32, Vec<u8>>, next: &mut u32, wtx: &SyncSender<Vec<u8>>) {
    while let Some(p) = held.remove(next) {
        let _ = wtx.try_send(p);
        *next = seq_add(*next, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_arithmetic() {
        assert_eq!(seq_diff(0x7FFF_FFFF, 0), 1);
        assert_eq!(seq_diff(0, 0x7FFF_FFFF), -1);
        assert_eq!(seq_add(0x7FFF_FFFF, 1), 0);
    }
}
