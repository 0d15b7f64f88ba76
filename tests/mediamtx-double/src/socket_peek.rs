//! Waiting for bytes on a TCP socket without consuming them (MSG_PEEK), for what reads
//! the first bytes of a connection before its protocol does: a PROXY header, the record
//! header that tells a plain HTTP request from a TLS one.

use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq)]
pub enum Wait {
    Ready,
    TimedOut,
    /// the peer ended its side before that many bytes came
    Ended,
}

/// The bytes waiting on the socket, peeked (not consumed), up to a capacity.
pub struct Peek<'a> {
    tcp: &'a TcpStream,
    deadline: Instant,
    buf: Vec<u8>,
    len: usize,
}

impl<'a> Peek<'a> {
    /// Waits for at most `timeout` in all, for at most `capacity` bytes.
    pub fn new(tcp: &'a TcpStream, timeout: Duration, capacity: usize) -> Peek<'a> {
        Peek {
            tcp,
            deadline: Instant::now() + timeout,
            buf: vec![0u8; capacity],
            len: 0,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        self.tcp
    }

    /// What was there at the last wait.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Waits until `n` bytes are there (or the deadline, or the peer's end).
    pub fn wait(&mut self, n: usize) -> Wait {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.tcp.set_read_timeout(Some(left)).is_err() {
                return Wait::TimedOut;
            }
            // blocks until something is there; returns what is there now
            let got = self.tcp.peek(&mut self.buf);
            let _ = self.tcp.set_read_timeout(None);
            match got {
                Ok(0) => return Wait::Ended,
                Ok(k) => self.len = k,
                Err(_) => return Wait::TimedOut,
            }
            if self.len >= n {
                return Wait::Ready;
            }
            if peer_ended(self.tcp) {
                // what came before the end may have just arrived
                self.len = self.tcp.peek(&mut self.buf).unwrap_or(self.len);
                return if self.len >= n { Wait::Ready } else { Wait::Ended };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Whether the peer shut its sending side (POLLRDHUP), even with data still queued.
fn peer_ended(tcp: &TcpStream) -> bool {
    let mut fd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(tcp),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}
