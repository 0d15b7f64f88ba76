//! RTSP over UDP (unicast): the server's RTP and RTCP sockets (`rtpAddress`,
//! `rtcpAddress`). Packets are matched to sessions by source address (the client's IP
//! and the `client_port` pair of its SETUP), like gortsplib's UDP listeners.

use crate::core::Shared;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a UDP source address belongs to.
#[derive(Clone)]
pub enum Target {
    /// a publisher's media (RTP or RTCP)
    Publisher(Arc<crate::rtsp::PubIn>, usize),
    /// a reader's media: only its RTCP receiver reports, which keep the session alive
    /// and are counted in its session
    Reader(Arc<Activity>, Arc<crate::rtsp_registry::Counters>, usize),
}

/// Last time something was received for a session (milliseconds since the epoch).
#[derive(Default)]
pub struct Activity(AtomicU64);

impl Activity {
    pub fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The server's RTP and RTCP sockets (on the ports of `rtpAddress` and `rtcpAddress`).
#[derive(Clone)]
pub struct Sockets {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub rtp_port: u16,
    pub rtcp_port: u16,
}

impl Sockets {
    fn bind(rtp_port: u16, rtcp_port: u16) -> std::io::Result<Sockets> {
        let bind = |port: u16| {
            let s = UdpSocket::bind(("127.0.0.1", port))?;
            // short timeouts so the receiving threads notice a shutdown or a move
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            let port = s.local_addr()?.port();
            Ok::<_, std::io::Error>((Arc::new(s), port))
        };
        let (rtp, rtp_port) = bind(rtp_port)?;
        let (rtcp, rtcp_port) = bind(rtcp_port)?;
        Ok(Sockets {
            rtp,
            rtcp,
            rtp_port,
            rtcp_port,
        })
    }
}

pub struct UdpServer {
    /// those in use (the start's, parked, while there are no UDP listeners)
    current: RwLock<Sockets>,
    /// whether `current` listens: MediaMTX has UDP listeners only while its RTSP server
    /// runs with UDP among `rtspTransports`
    listening: AtomicBool,
    /// those bound at start, kept for the whole run so that their ports stay ours;
    /// parked while not in use
    initial: Sockets,
    /// how many times `current` moved (the receiving threads compare, not lock, per packet)
    moves: AtomicU64,
    /// (source address, is RTCP) → owner
    targets: Mutex<HashMap<(SocketAddr, bool), Target>>,
}

/// gortsplib's udpMaxPayloadSize constant: larger datagrams are packets in error
/// (the `udpMaxPayloadSize` setting only sizes the packets MediaMTX itself makes).
pub const MAX_PAYLOAD: usize = 1472;

/// The RTP and RTCP ports MediaMTX listens on for a global configuration, if any.
fn wanted_ports(g: &serde_json::Map<String, serde_json::Value>) -> Option<(u16, u16)> {
    if !(crate::api::rtsp_servers_on(g).0 && crate::rtsp::udp_is_transport(g)) {
        return None;
    }
    let port = |k: &str| crate::conf::port_of(g.get(k).and_then(|v| v.as_str()).unwrap_or(""));
    Some((port("rtpAddress")?, port("rtcpAddress")?))
}

/// Parks a socket on `port`, or takes it out of parking: connected to itself it
/// receives nothing any peer sends, so the kernel answers datagrams to its port with
/// ICMP port unreachable as if nothing were bound there, while the port stays ours.
fn park(s: &UdpSocket, port: u16, parked: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if parked {
        return s.connect(("127.0.0.1", port));
    }
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: a valid socket and an address of the size given (connect to AF_UNSPEC
    // dissolves a UDP socket's association).
    let rc = unsafe {
        libc::connect(
            s.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if s.local_addr()?.port() != 0 {
        return Ok(());
    }
    // a socket bound to port 0 loses the port it was given when dissolved: bound again
    // at once (the port is free for that instant)
    crate::util::bind_loopback(s.as_raw_fd(), port)
}

impl UdpServer {
    pub fn bind(rtp_port: u16, rtcp_port: u16) -> std::io::Result<UdpServer> {
        let initial = Sockets::bind(rtp_port, rtcp_port)?;
        Ok(UdpServer {
            current: RwLock::new(initial.clone()),
            listening: AtomicBool::new(true),
            initial,
            moves: AtomicU64::new(0),
            targets: Mutex::new(HashMap::new()),
        })
    }

    /// The sockets in use.
    pub fn sockets(&self) -> Sockets {
        self.current.read().unwrap().clone()
    }

    /// The ports bound at start.
    pub fn initial_ports(&self) -> (u16, u16) {
        (self.initial.rtp_port, self.initial.rtcp_port)
    }

    fn park_initial(&self, parked: bool) -> std::io::Result<()> {
        park(&self.initial.rtp, self.initial.rtp_port, parked)?;
        park(&self.initial.rtcp, self.initial.rtcp_port, parked)
    }

    /// Follows the configuration when the RTSP server (re)starts, as MediaMTX creates
    /// its UDP listeners with it: none unless the server runs with UDP among its
    /// transports, else on the ports of `rtpAddress`/`rtcpAddress` (the start's sockets
    /// when they are those). A port that cannot be bound is logged and nothing moves.
    pub fn follow(&self, shared: &Shared) {
        let wanted = wanted_ports(&shared.lock().global);
        let cur = self.sockets();
        let listening = self.listening.load(Ordering::Acquire);
        let moved = match wanted {
            None if !listening => return,
            None => self.park_initial(true).map(|_| (self.initial.clone(), false)),
            Some(ports) if listening && (cur.rtp_port, cur.rtcp_port) == ports => return,
            Some(ports) if ports == self.initial_ports() => {
                self.park_initial(false).map(|_| (self.initial.clone(), true))
            }
            Some((rtp, rtcp)) => Sockets::bind(rtp, rtcp).and_then(|s| {
                self.park_initial(true)?;
                Ok((s, true))
            }),
        };
        match moved {
            Ok((s, listening)) => {
                *self.current.write().unwrap() = s;
                self.listening.store(listening, Ordering::Release);
                self.moves.fetch_add(1, Ordering::Release);
            }
            Err(e) => shared.log(&format!(
                "ERR listen udp :{}: bind: {}",
                wanted.map_or(0, |(rtp, _)| rtp),
                crate::conf::go_io_error(&e)
            )),
        }
    }

    pub fn register(&self, from: SocketAddr, rtcp: bool, t: Target) {
        self.targets.lock().unwrap().insert((from, rtcp), t);
    }

    pub fn unregister(&self, from: SocketAddr, rtcp: bool) {
        self.targets.lock().unwrap().remove(&(from, rtcp));
    }
}

/// Receives on one of the two sockets until shutdown.
pub fn serve(shared: Arc<Shared>, rtcp: bool) {
    let Some(udp) = shared.udp.clone() else {
        return;
    };
    // like gortsplib: one byte more than the limit, so that a filled buffer means too big
    let mut buf = vec![0u8; MAX_PAYLOAD + 1];
    let pick = |s: Sockets| if rtcp { s.rtcp } else { s.rtp };
    let (mut sock, mut seen) = (pick(udp.sockets()), udp.moves.load(Ordering::Acquire));
    while !shared.shutdown.load(Ordering::SeqCst) {
        // the sockets move with the RTSP server's addresses: fetched again only then
        let moves = udp.moves.load(Ordering::Acquire);
        if moves != seen {
            (sock, seen) = (pick(udp.sockets()), moves);
        }
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let target = udp.targets.lock().unwrap().get(&(from, rtcp)).cloned();
        match target {
            Some(Target::Publisher(p, _)) if n > MAX_PAYLOAD => p.too_big(rtcp, n),
            Some(Target::Publisher(p, media)) => p.receive(media, rtcp, buf[..n].to_vec()),
            Some(Target::Reader(a, c, media)) => {
                a.touch();
                if n > MAX_PAYLOAD {
                    c.in_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    c.in_rtcp_err.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.rtcp_in(media, &buf[..n], true);
                }
            }
            None => {}
        }
    }
}

/// A reader's UDP destinations, per media: (RTP address, RTCP address), and the sockets
/// they are sent from.
pub struct UdpSink {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub addrs: Vec<Option<(SocketAddr, SocketAddr)>>,
}

impl UdpSink {
    /// false if the media is not set up or the packet could not be sent
    pub fn send(&self, media: usize, rtcp: bool, data: &[u8]) -> bool {
        let Some(Some((a, b))) = self.addrs.get(media) else {
            return false;
        };
        let (sock, to) = if rtcp { (&self.rtcp, b) } else { (&self.rtp, a) };
        sock.send_to(data, to).is_ok()
    }
}
