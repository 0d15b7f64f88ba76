//! `unix+rtp://` sources (deprecated in MediaMTX "due to intrinsic instability"): MediaMTX
//! listens on a unix stream socket, takes one connection (within `readTimeout`) and treats
//! each read of up to 1500 bytes as one RTP packet (internal/protocols/unix). ffmpeg cannot
//! read RTP from a unix socket, so the double does that reading and sends each packet as a
//! datagram to the loopback UDP port where ffmpeg reads the `rtpSDP` media.

use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// MediaMTX's read buffer: a read longer than a packet is cut here.
const MAX_PACKET: usize = 1500;

/// Listens on `path` and relays its first connection's reads to a loopback UDP port
/// (returned, for ffmpeg's SDP). Ends when the connection ends, is silent for
/// `read_timeout`, or none comes within it; the socket file is removed then, as Go's
/// listener does on close.
pub fn relay(path: &str, read_timeout: Duration) -> std::io::Result<u16> {
    crate::source_input::remove_stale_socket(path);
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    // ffmpeg's port (and the RTCP one above it): free now, taken by ffmpeg right after
    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let path = path.to_string();
    std::thread::spawn(move || {
        let deadline = Instant::now() + read_timeout;
        let conn = loop {
            match l.accept() {
                Ok((c, _)) => break Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => break None,
            }
        };
        if let Some(mut c) = conn {
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(read_timeout));
            let mut buf = [0u8; MAX_PACKET];
            while let Ok(n) = c.read(&mut buf) {
                // before ffmpeg listens a datagram is refused: lost, as on a real network
                if n == 0 {
                    break;
                }
                let _ = udp.send_to(&buf[..n], ("127.0.0.1", port));
            }
        }
        drop(l);
        crate::source_input::remove_stale_socket(&path);
    });
    Ok(port)
}
