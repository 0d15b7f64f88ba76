//! The RTSP server's connections and sessions as the API shows them
//! (`/v3/rtspconns/*`, `/v3/rtspsessions/*` and their RTSPS twins).

use crate::http::{Request, Response};
use crate::logger::Scope;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Packet and byte counters of a session (gortsplib's ServerSession stats).
#[derive(Default)]
pub struct Counters {
    pub in_bytes: AtomicU64,
    pub in_rtp: AtomicU64,
    pub in_rtcp: AtomicU64,
    pub in_rtp_err: AtomicU64,
    pub in_rtcp_err: AtomicU64,
    pub out_bytes: AtomicU64,
    pub out_rtp: AtomicU64,
    pub out_rtcp: AtomicU64,
    pub out_discarded: AtomicU64,
    /// a publisher's receivers, per media it set up (losses, jitter, reordering)
    pub receivers: Mutex<Vec<Option<crate::rtp_stats::Receiver>>>,
    /// a reader's losses as its receiver reports give them, per media
    pub reported_lost: Mutex<Vec<u64>>,
    /// a reader's stream SSRCs, per media: what its report blocks must name
    pub local_ssrc: Mutex<Vec<u32>>,
}

impl Counters {
    /// An RTCP payload from the client: its packets counted one by one (a compound that
    /// does not parse is one packet in error); a reader's receiver reports give the
    /// losses it saw on `media` (readPacketRTCPPlay).
    pub fn rtcp_in(&self, media: usize, payload: &[u8], reader: bool) {
        self.in_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
        let Some(pkts) = crate::rtp_stats::rtcp_packets(payload) else {
            self.in_rtcp_err.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.in_rtcp.fetch_add(pkts.len() as u64, Ordering::Relaxed);
        if !reader {
            return;
        }
        let Some(ssrc) = self.local_ssrc.lock().unwrap().get(media).copied() else {
            return;
        };
        for (_, rr) in pkts.iter().filter(|(t, _)| *t == 201) {
            // the blocks about the stream's SSRC of this media (readPacketRTCPPlay)
            let reports = crate::rtp_stats::reception_reports(rr);
            if let Some((_, lost)) = reports.iter().rfind(|(s, _)| *s == ssrc) {
                let mut r = self.reported_lost.lock().unwrap();
                if r.len() <= media {
                    r.resize(media + 1, 0);
                }
                r[media] = u64::from(*lost);
            }
        }
    }

    /// (packets lost summed, jitter averaged) over a publisher's media, as gortsplib's
    /// sessionStatsFromMedias does.
    fn receiver_stats(&self) -> (u64, f64) {
        let r = self.receivers.lock().unwrap();
        let set: Vec<&crate::rtp_stats::Receiver> = r.iter().flatten().collect();
        let lost = set.iter().map(|x| x.lost).sum();
        let jitter = set.iter().map(|x| x.jitter).sum::<f64>() / set.len().max(1) as f64;
        (lost, jitter)
    }
    pub fn sent(&self, rtcp: bool, len: usize) {
        self.out_bytes.fetch_add(len as u64, Ordering::Relaxed);
        let n = if rtcp { &self.out_rtcp } else { &self.out_rtp };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct ConnEntry {
    pub uuid: String,
    pub created: SystemTime,
    pub remote: String,
    pub tls: bool,
    /// "none", "http" (RTSP tunnelled in HTTP) or "websocket" (set on the upgrade)
    pub tunnel: Mutex<&'static str>,
    /// a connection of the double's own recorder or pulled source (not listed)
    pub internal: std::sync::atomic::AtomicBool,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub session: Mutex<Option<String>>,
}

impl ConnEntry {
    /// The server's log tag (`RTSP` or `RTSPS`).
    pub fn server(&self) -> &'static str {
        if self.tls {
            "RTSPS"
        } else {
            "RTSP"
        }
    }

    /// The connection's logger (`[RTSP] [conn IP:P]`).
    pub fn scope(&self) -> Scope {
        Scope::conn(self.server(), &self.remote)
    }

    /// The logger of its session `uuid`: MediaMTX names a session by the first four
    /// bytes of its UUID, in hex (`[RTSP] [session 1a2b3c4d]`).
    pub fn session_scope(&self, uuid: &str) -> Scope {
        let id: String = uuid.chars().filter(|c| *c != '-').take(8).collect();
        Scope::new(format!("[{}] [session {}]", self.server(), id))
    }
}

#[derive(Clone, Default)]
pub struct SessionProps {
    /// "idle", "read" or "publish"
    pub state: &'static str,
    pub path: String,
    pub query: String,
    pub user: String,
    pub user_agent: String,
    /// "UDP", "UDP-multicast" or "TCP", once a media is set up
    pub transport: Option<&'static str>,
}

pub struct SessionEntry {
    pub uuid: String,
    pub created: SystemTime,
    pub remote: String,
    pub conn_uuid: String,
    pub tls: bool,
    pub props: Mutex<SessionProps>,
    pub counters: Arc<Counters>,
    /// closing it ends the session (kick)
    pub tcp: TcpStream,
    /// why it ends, once known (`torn down by IP:P`, `session timed out`, `terminated`);
    /// none when its connection just closed (`not in use`)
    pub end: Mutex<Option<String>>,
}

impl SessionEntry {
    /// Takes note of why the session ends (the first reason stays).
    pub fn ending(&self, why: String) {
        self.end.lock().unwrap().get_or_insert(why);
    }
}

#[derive(Default)]
pub struct Registry {
    /// keyed by (created, uuid): lists are sorted by creation like MediaMTX's
    conns: Mutex<BTreeMap<(SystemTime, String), Arc<ConnEntry>>>,
    sessions: Mutex<BTreeMap<(SystemTime, String), Arc<SessionEntry>>>,
}

impl Registry {
    pub fn add_conn(&self, c: Arc<ConnEntry>) {
        self.conns.lock().unwrap().insert((c.created, c.uuid.clone()), c);
    }
    pub fn remove_conn(&self, c: &ConnEntry) {
        self.conns.lock().unwrap().remove(&(c.created, c.uuid.clone()));
    }
    pub fn add_session(&self, s: Arc<SessionEntry>) {
        self.sessions.lock().unwrap().insert((s.created, s.uuid.clone()), s);
    }
    pub fn remove_session(&self, s: &SessionEntry) {
        self.sessions.lock().unwrap().remove(&(s.created, s.uuid.clone()));
    }

    pub fn conn_items(&self, tls: bool) -> Vec<Value> {
        let conns = self.conns.lock().unwrap();
        conns
            .values()
            .filter(|c| c.tls == tls && !c.internal.load(Ordering::Relaxed))
            .map(|c| conn_json(c))
            .collect()
    }

    pub fn session_items(&self, tls: bool) -> Vec<Value> {
        let sessions = self.sessions.lock().unwrap();
        sessions
            .values()
            .filter(|s| s.tls == tls)
            .map(|s| session_json(s))
            .collect()
    }

    fn find_session(&self, tls: bool, id: &str) -> Option<Arc<SessionEntry>> {
        let sessions = self.sessions.lock().unwrap();
        sessions.values().find(|s| s.tls == tls && s.uuid == id).cloned()
    }
}

fn rfc3339(t: SystemTime) -> String {
    crate::util::rfc3339_nano(t)
}

fn conn_json(c: &ConnEntry) -> Value {
    let (i, o) = (c.bytes_in.load(Ordering::Relaxed), c.bytes_out.load(Ordering::Relaxed));
    json!({
        "id": c.uuid,
        "created": rfc3339(c.created),
        "remoteAddr": c.remote,
        "session": c.session.lock().unwrap().clone(),
        "tunnel": *c.tunnel.lock().unwrap(),
        "inboundBytes": i,
        "outboundBytes": o,
        "bytesReceived": i,
        "bytesSent": o,
    })
}

fn session_json(s: &SessionEntry) -> Value {
    let p = s.props.lock().unwrap().clone();
    let c = &s.counters;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (ib, irtp, irtcp) = (g(&c.in_bytes), g(&c.in_rtp), g(&c.in_rtcp));
    let (ob, ortp, ortcp) = (g(&c.out_bytes), g(&c.out_rtp), g(&c.out_rtcp));
    let (lost, jitter) = c.receiver_stats();
    let reported: u64 = c.reported_lost.lock().unwrap().iter().sum();
    json!({
        "id": s.uuid,
        "created": rfc3339(s.created),
        "remoteAddr": s.remote,
        "state": p.state,
        "path": p.path,
        "query": p.query,
        "user": p.user,
        "userAgent": p.user_agent,
        "transport": p.transport,
        "profile": p.transport.map(|_| "AVP"),
        "conns": [s.conn_uuid],
        "inboundBytes": ib,
        "inboundRTPPackets": irtp,
        "inboundRTPPacketsLost": lost,
        "inboundRTPPacketsInError": g(&c.in_rtp_err),
        "inboundRTPPacketsJitter": jitter,
        "inboundRTCPPackets": irtcp,
        "inboundRTCPPacketsInError": g(&c.in_rtcp_err),
        "outboundBytes": ob,
        "outboundRTPPackets": ortp,
        "outboundRTPPacketsReportedLost": reported,
        "outboundRTPPacketsDiscarded": g(&c.out_discarded),
        "outboundRTCPPackets": ortcp,
        "bytesReceived": ib,
        "bytesSent": ob,
        "rtpPacketsReceived": irtp,
        "rtpPacketsSent": ortp,
        "rtpPacketsLost": lost,
        "rtpPacketsInError": g(&c.in_rtp_err),
        "rtpPacketsJitter": jitter,
        "rtcpPacketsReceived": irtcp,
        "rtcpPacketsSent": ortcp,
        "rtcpPacketsInError": g(&c.in_rtcp_err),
    })
}

/// google/uuid's Parse: the 36-character form (plus the urn:uuid:, braced and bare-hex
/// forms), with its error texts. Works on bytes like Go (ids may hold any bytes).
pub fn parse_uuid(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let hex = |b: &[u8]| b.iter().all(|c| c.is_ascii_hexdigit());
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_ascii_lowercase();
    let inner: &[u8] = match bytes.len() {
        36 => bytes,
        45 => {
            if !bytes[..9].eq_ignore_ascii_case(b"urn:uuid:") {
                return Err(format!(
                    "invalid urn prefix: {:?}",
                    String::from_utf8_lossy(&bytes[..9])
                ));
            }
            &bytes[9..]
        }
        // Go skips the first byte only: the braces themselves are not checked
        38 => &bytes[1..],
        32 => {
            if !hex(bytes) {
                return Err("invalid UUID format".into());
            }
            let l = text(bytes);
            return Ok(format!(
                "{}-{}-{}-{}-{}",
                &l[..8],
                &l[8..12],
                &l[12..16],
                &l[16..20],
                &l[20..]
            ));
        }
        n => return Err(format!("invalid UUID length: {}", n)),
    };
    let dashes_ok = [8, 13, 18, 23].iter().all(|&i| inner[i] == b'-');
    let digits = [0..8, 9..13, 14..18, 19..23, 24..36];
    if !dashes_ok || !digits.iter().all(|r| hex(&inner[r.clone()])) {
        return Err("invalid UUID format".into());
    }
    Ok(text(&inner[..36]))
}

/// Routes of one server (`rtsp` or `rtsps` prefix); None = not one of them.
pub fn handle(reg: &Registry, req: &Request, tls: bool) -> Option<Response> {
    let (conns, sessions) = if tls {
        ("/v3/rtspsconns/", "/v3/rtspssessions/")
    } else {
        ("/v3/rtspconns/", "/v3/rtspsessions/")
    };
    let m = req.method.as_str();
    let p = req.path.as_str();
    let id_of = |rest: &str| parse_uuid(rest).map_err(|e| Response::error(400, &e));
    if let Some(rest) = p.strip_prefix(conns) {
        if m == "GET" && rest == "list" {
            return Some(crate::api::list_json(req, reg.conn_items(tls)));
        }
        let id = rest
            .strip_prefix("get/")
            .filter(|r| !r.is_empty() && !r.contains('/') && m == "GET")?;
        let id = match id_of(id) {
            Ok(id) => id,
            Err(r) => return Some(r),
        };
        let c = reg.conns.lock().unwrap();
        let found = c
            .values()
            .find(|c| c.tls == tls && !c.internal.load(Ordering::Relaxed) && c.uuid == id);
        return Some(match found {
            Some(c) => Response::json(200, &conn_json(c)),
            None => Response::error(404, "connection not found"),
        });
    }
    let rest = p.strip_prefix(sessions)?;
    if m == "GET" && rest == "list" {
        return Some(crate::api::list_json(req, reg.session_items(tls)));
    }
    let (op, id) = rest.split_once('/')?;
    if id.is_empty() || id.contains('/') || !matches!((m, op), ("GET", "get") | ("POST", "kick")) {
        return None;
    }
    let id = match id_of(id) {
        Ok(id) => id,
        Err(r) => return Some(r),
    };
    let Some(s) = reg.find_session(tls, &id) else {
        return Some(Response::error(404, "session not found"));
    };
    if op == "get" {
        return Some(Response::json(200, &session_json(&s)));
    }
    s.ending("terminated".into());
    let _ = s.tcp.shutdown(Shutdown::Both);
    reg.remove_session(&s);
    Some(Response::ok())
}
