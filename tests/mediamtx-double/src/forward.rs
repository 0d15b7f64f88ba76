//! `forward` (MediaMTX's internal/forward): while a path's stream is available, every
//! `forward` destination gets it pushed by an ffmpeg child (`-c copy`) that reads the
//! double's own RTSP relay as a hidden reader (no reader, no maxReaders, no runOnRead).
//! A failed push is retried after MediaMTX's retryPause (5 s); a destination whose
//! configuration changes is replaced (with a new id) without recreating the path.

use crate::core::{PathRt, Shared};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// DestHandler's retryPause.
const RETRY_PAUSE: Duration = Duration::from_secs(5);

/// One forward destination (DestHandler).
pub struct Dest {
    pub id: String,
    /// 1-based position in `forward`
    pub pos: usize,
    pub created: SystemTime,
    /// conf.ForwardDest: dest, destFingerprint, whipBearerToken
    pub conf: Value,
    pub protocol: &'static str,
    pub state: &'static str,
    pub last_error: String,
    pub pid: Option<i32>,
    stream_id: u64,
    stopping: bool,
    retry_at: Option<Instant>,
    /// outboundBytes: what the relay sent to this destination's ffmpeg, all attempts
    bytes: Arc<AtomicU64>,
    /// told apart from a replacement at the same position
    uid: u64,
}

fn dest_conf(v: &Value) -> Value {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    json!({"dest": s("dest"), "destFingerprint": s("destFingerprint"), "whipBearerToken": s("whipBearerToken")})
}

/// destProtocol: the URL scheme (validated by conf.rs).
fn protocol_of(dest: &str) -> &'static str {
    for p in ["rtmps", "rtmp", "rtsps", "rtsp", "srt", "whips", "whip"] {
        if dest.starts_with(&format!("{}://", p)) {
            return p;
        }
    }
    "rtsp"
}

fn new_dest(shared: &Shared, pos: usize, conf: &Value) -> Dest {
    let conf = dest_conf(conf);
    Dest {
        id: crate::util::uuid(),
        pos,
        created: SystemTime::now(),
        protocol: protocol_of(conf["dest"].as_str().unwrap_or("")),
        conf,
        state: "idle",
        last_error: String::new(),
        pid: None,
        stream_id: 0,
        stopping: false,
        retry_at: None,
        bytes: Arc::new(AtomicU64::new(0)),
        uid: shared.id(),
    }
}

fn configured(conf: &serde_json::Map<String, Value>) -> Vec<Value> {
    conf.get("forward")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(dest_conf).collect())
        .unwrap_or_default()
}

/// Manager.Initialize: one idle destination per entry.
pub fn init(shared: &Shared, conf: &serde_json::Map<String, Value>) -> Vec<Dest> {
    configured(conf)
        .iter()
        .enumerate()
        .map(|(i, c)| new_dest(shared, i + 1, c))
        .collect()
}

/// Manager.ReloadConf: destinations equal at the same position are kept, others replaced.
pub fn reload(shared: &Shared, p: &mut PathRt) {
    let wanted = configured(&p.conf);
    let old = std::mem::take(&mut p.forward);
    let mut kept = Vec::new();
    for (i, mut d) in old.into_iter().enumerate() {
        if wanted.get(i) == Some(&d.conf) {
            kept.push(d);
        } else {
            stop(&mut d);
        }
    }
    for (i, c) in wanted.iter().enumerate().skip(kept.len()) {
        kept.push(new_dest(shared, i + 1, c));
    }
    p.forward = kept;
}

fn stop(d: &mut Dest) {
    if let Some(pid) = d.pid {
        d.stopping = true;
        crate::procs::interrupt(pid);
    }
}

/// Stops every destination (path closed).
pub fn stop_all(p: &mut PathRt) {
    for d in p.forward.iter_mut() {
        stop(d);
    }
}

/// Supervisor tick: push while the stream is there, stop when it goes or changes.
pub fn tick(shared: &Arc<Shared>, p: &mut PathRt, now: Instant, g: crate::source_input::Globals) {
    let cur = p.stream.as_ref().map(|s| s.id);
    for i in 0..p.forward.len() {
        let d = &mut p.forward[i];
        match (d.pid, cur) {
            (Some(_), _) if d.stopping => {}
            (Some(_), c) if c != Some(d.stream_id) => stop(d),
            (Some(_), _) => {}
            (None, None) => {
                d.state = "idle";
                d.retry_at = None;
            }
            (None, Some(sid)) => {
                if d.retry_at.is_some_and(|t| now < t) {
                    continue;
                }
                d.retry_at = None;
                start(shared, p, i, sid, g);
            }
        }
    }
}

/// resolveDest: `$MTX_PATH` and `$G1`.. (regexp submatches, highest first).
fn resolve(shared: &Shared, p: &PathRt, dest: &str) -> String {
    let mut out = dest.replace("$MTX_PATH", &p.name);
    let env = crate::hooks::path_env(shared, &p.name, &p.conf_name);
    let mut groups: Vec<&(String, String)> = env.iter().filter(|(k, _)| k.starts_with('G')).collect();
    groups.sort_by_key(|(k, _)| std::cmp::Reverse(k[1..].parse::<usize>().unwrap_or(0)));
    for (k, v) in groups {
        out = out.replace(&format!("${}", k), v);
    }
    out
}

fn start(shared: &Arc<Shared>, p: &mut PathRt, i: usize, stream_id: u64, g: crate::source_input::Globals) {
    let dest = resolve(shared, p, p.forward[i].conf["dest"].as_str().unwrap_or(""));
    let (name, path_gen) = (p.name.clone(), p.gen);
    let d = &mut p.forward[i];
    // run(): forwarding, lastError cleared, at the start of each attempt
    d.state = "forwarding";
    d.last_error.clear();
    d.stream_id = stream_id;
    d.stopping = false;
    let format: &[&str] = match d.protocol {
        "rtsp" | "rtsps" => &["-f", "rtsp", "-rtsp_transport", "tcp"],
        "rtmp" | "rtmps" => &["-f", "flv"],
        "srt" => &["-f", "mpegts"],
        _ => {
            fail(d, "WHIP forwarding is not supported by the double".into());
            return;
        }
    };
    let mut args: Vec<String> = [
        shared.ffmpeg.as_str(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // the query tells the relay whose byte counter this reader feeds (counter_for)
    args.push(format!(
        "rtsp://127.0.0.1:{}/{}{}?forward={}",
        shared.internal_rtsp_port,
        shared.internal_prefix(),
        name,
        d.uid
    ));
    args.extend(["-map", "0", "-c", "copy"].iter().map(|s| s.to_string()));
    args.extend(format.iter().map(|s| s.to_string()));
    // TLS destinations go through a bridge that verifies or pins as MediaMTX's
    // tls.MakeConfig does (ffmpeg's TLS verifies nothing)
    let tls = match d.protocol {
        "rtsps" => Some(("rtsp", 322)),
        "rtmps" => Some(("rtmp", 443)),
        _ => None,
    };
    let mut bridge_error = None;
    match tls {
        Some((plain, default_port)) => {
            let rest = dest.split_once("://").map(|(_, r)| r).unwrap_or("");
            let up = |host| crate::source_bridge::Upstream {
                host,
                default_port,
                carrier: crate::source_bridge::Carrier::Tls,
                fingerprint: d.conf["destFingerprint"].as_str().unwrap_or("").to_string(),
                timeout: g.read_timeout,
                log_scope: None,
            };
            let Some((url, b)) = crate::source_bridge::open_for_url(shared, rest, up, 1) else {
                fail(d, "cannot open a loopback port".into());
                return;
            };
            args.push(format!("{}://{}", plain, url));
            bridge_error = Some(b.error);
        }
        None => args.push(dest.clone()),
    }
    let log_tag = format!("forward{}", d.pos);
    let Some(child) = crate::procs::spawn_forwarder(shared, &args, &name, &log_tag) else {
        fail(d, "cannot start ffmpeg".into());
        return;
    };
    shared.log(&format!(
        "path {}: [{} dest {}] forwarding to '{}'",
        name,
        d.protocol.to_uppercase(),
        d.pos,
        sanitize(&dest)
    ));
    d.pid = Some(child.id() as i32);
    let uid = d.uid;
    let log = shared
        .dir
        .join("logs")
        .join(format!("{}-{}.log", name.replace('/', "_"), log_tag));
    crate::procs::watch(shared, child, move |sh, _| {
        let mut st = sh.lock();
        let Some(p) = st.paths.get_mut(&name).filter(|p| p.gen == path_gen) else {
            return;
        };
        let cur = p.stream.as_ref().map(|s| s.id);
        let Some(d) = p.forward.iter_mut().find(|d| d.uid == uid) else {
            return;
        };
        d.pid = None;
        if d.stopping || cur != Some(d.stream_id) {
            // stopped, or the stream went away first (MediaMTX stops forwarding before
            // closing the stream): back to idle
            d.stopping = false;
            d.state = "idle";
        } else {
            // a TLS refusal in the bridge is the error MediaMTX reports; ffmpeg only sees
            // its connection closed
            let refused = bridge_error.and_then(|e| e.lock().unwrap().take());
            let err = refused.unwrap_or_else(|| last_error(&log, &dest));
            sh.log(&format!(
                "path {}: [{} dest {}] {}",
                name,
                d.protocol.to_uppercase(),
                d.pos,
                err
            ));
            fail(d, err);
        }
    });
}

fn fail(d: &mut Dest, err: String) {
    d.state = "error";
    d.last_error = err;
    d.retry_at = Some(Instant::now() + RETRY_PAUSE);
}

/// sanitizeDestURL: without credentials and fragment.
fn sanitize(dest: &str) -> String {
    let no_frag = dest.split('#').next().unwrap_or("");
    match no_frag.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth);
            format!("{}://{}{}", scheme, host, tail)
        }
        None => no_frag.to_string(),
    }
}

/// The error of a failed attempt: a refused connection in Go's words (what MediaMTX's
/// clients report), else ffmpeg's last message.
fn last_error(log: &std::path::Path, dest: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.iter().any(|l| l.contains("Connection refused")) {
        let hostport = sanitize(dest)
            .split_once("://")
            .map(|(_, r)| r.split('/').next().unwrap_or("").to_string())
            .unwrap_or_default();
        return format!("dial tcp {}: connect: connection refused", hostport);
    }
    match lines.iter().find(|l| !l.trim().is_empty()) {
        Some(l) => l.trim().to_string(),
        None => "terminated".into(),
    }
}

/// The byte counter of the forwarder reading with this query (`forward=<uid>`).
pub fn counter_for(p: &PathRt, query: &str) -> Option<Arc<AtomicU64>> {
    let uid: u64 = query.strip_prefix("forward=")?.parse().ok()?;
    p.forward.iter().find(|d| d.uid == uid).map(|d| d.bytes.clone())
}

/// defs.APIForwardDest.
pub fn item_json(d: &Dest) -> Value {
    json!({
        "id": d.id,
        "pos": d.pos,
        "created": crate::util::rfc3339_nano(d.created),
        "conf": d.conf,
        "protocol": d.protocol,
        "state": d.state,
        "lastError": d.last_error,
        "outboundBytes": d.bytes.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_texts() {
        assert_eq!(crate::util::parse_uuid("").unwrap_err(), "invalid UUID length: 0");
        assert_eq!(crate::util::parse_uuid("zz").unwrap_err(), "invalid UUID length: 2");
        let ok = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(crate::util::parse_uuid(ok), crate::util::parse_uuid(&ok.to_uppercase()));
        assert_eq!(
            crate::util::parse_uuid(ok),
            crate::util::parse_uuid(&format!("{{{}}}", ok))
        );
        assert_eq!(
            crate::util::parse_uuid(ok),
            crate::util::parse_uuid(&ok.replace('-', ""))
        );
        assert_eq!(
            crate::util::parse_uuid("0f8fad5bxd9cb-469f-a165-70867728950e").unwrap_err(),
            "invalid UUID format"
        );
        assert_eq!(sanitize("rtmp://u:p@h:1/a#x"), "rtmp://h:1/a");
    }
}
