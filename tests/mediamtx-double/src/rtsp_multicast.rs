//! RTSP over UDP multicast for readers (`multicastIPRange`, `multicastRTPPort`,
//! `multicastRTCPPort`): each stream's medias get group addresses the first time a reader
//! asks for multicast (gortsplib hands out the range's addresses in turn, from its
//! second one); the stream is sent once to the groups while multicast readers play.

use crate::core::{Shared, Sink, Stream};
use crate::rtsp_udp::UdpSink;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

struct Group {
    addrs: Vec<(SocketAddr, SocketAddr)>,
    readers: usize,
    sink_id: Option<u64>,
}

#[derive(Default)]
pub struct Multicast {
    /// the last address handed out
    last_ip: Mutex<Option<u32>>,
    /// stream id → its groups
    groups: Mutex<HashMap<u64, Group>>,
    socket: Mutex<Option<Arc<UdpSocket>>>,
}

/// (network, mask) of an IPv4 CIDR.
fn parse_range(s: &str) -> Option<(u32, u32)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    Some((u32::from(ip) & mask, mask))
}

impl Multicast {
    fn socket(&self) -> std::io::Result<Arc<UdpSocket>> {
        let mut s = self.socket.lock().unwrap();
        if let Some(s) = s.as_ref() {
            return Ok(s.clone());
        }
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        // keep the packets on this link (and looped back to local readers)
        sock.set_multicast_ttl_v4(1)?;
        sock.set_multicast_loop_v4(true)?;
        let sock = Arc::new(sock);
        *s = Some(sock.clone());
        Ok(sock)
    }

    /// The groups of a stream's medias, made on first use. None = no valid range.
    pub fn groups(&self, global: &Map<String, Value>, stream: &Stream) -> Option<Vec<(SocketAddr, SocketAddr)>> {
        let mut groups = self.groups.lock().unwrap();
        if let Some(g) = groups.get(&stream.id) {
            return Some(g.addrs.clone());
        }
        let range = global.get("multicastIPRange").and_then(|v| v.as_str()).unwrap_or("");
        let (net, mask) = parse_range(range)?;
        let port = |k: &str| global.get(k).and_then(|v| v.as_u64()).unwrap_or(0) as u16;
        let (rtp, rtcp) = (port("multicastRTPPort"), port("multicastRTCPPort"));
        let mut last = self.last_ip.lock().unwrap();
        let mut addrs = Vec::new();
        for _ in &stream.sdp.medias {
            let cur = last.unwrap_or(net);
            let next = (cur & mask) | (cur.wrapping_add(1) & !mask);
            *last = Some(next);
            let ip = std::net::IpAddr::V4(Ipv4Addr::from(next));
            addrs.push((SocketAddr::new(ip, rtp), SocketAddr::new(ip, rtcp)));
        }
        groups.insert(
            stream.id,
            Group {
                addrs: addrs.clone(),
                readers: 0,
                sink_id: None,
            },
        );
        Some(addrs)
    }

    /// A multicast reader starts playing: the first one starts the sending.
    pub fn join(&self, shared: &Shared, stream: &Stream, template: Sink) -> std::io::Result<()> {
        let sock = self.socket()?;
        let mut groups = self.groups.lock().unwrap();
        let Some(g) = groups.get_mut(&stream.id) else {
            return Ok(());
        };
        g.readers += 1;
        if g.sink_id.is_none() {
            let id = shared.id();
            let addrs = g.addrs.iter().map(|a| Some(*a)).collect();
            stream.sinks.lock().unwrap().push(Sink {
                id,
                udp: Some(UdpSink {
                    rtp: sock.clone(),
                    rtcp: sock,
                    addrs,
                }),
                ..template
            });
            g.sink_id = Some(id);
        }
        Ok(())
    }

    /// A multicast reader leaves: the last one stops the sending.
    pub fn leave(&self, stream: &Stream) {
        let mut groups = self.groups.lock().unwrap();
        if let Some(g) = groups.get_mut(&stream.id) {
            g.readers = g.readers.saturating_sub(1);
            if g.readers == 0 {
                if let Some(id) = g.sink_id.take() {
                    stream.remove_sink(id);
                }
            }
        }
    }
}
