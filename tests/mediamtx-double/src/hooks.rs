//! MediaMTX's hooks other than runOnDemand (internal/hooks, externalcmd): runOnInit,
//! runOnAvailable/runOnUnavailable (runOnReady/runOnNotReady), runOnOnline/runOnOffline,
//! runOnRead/runOnUnread, runOnUnDemand, runOnRecordSegmentCreate/Complete and the
//! global runOnConnect/runOnDisconnect, with their environment variables.
//!
//! Like externalcmd.Cmd: the command line is split shell-style, then `$VAR`/`${VAR}` are
//! expanded in every part from the hook's environment (else the process environment); the
//! child runs in its own process group; closing it sends SIGINT to the group; with
//! `restart` it is started again 5 s after it exits.

use crate::core::Shared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Env = Vec<(String, String)>;

/// Called by the recorders: (segment path, None) when created, (path, Some(duration))
/// when completed.
pub type SegmentFn = Box<dyn Fn(&str, Option<Duration>) + Send>;

/// A running hook command (externalcmd.Cmd).
pub struct Cmd {
    stop: Arc<AtomicBool>,
    pid: Arc<Mutex<Option<i32>>>,
}

impl Cmd {
    /// Cmd.Close: SIGINT to the running command, no restart.
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(pid) = *self.pid.lock().unwrap() {
            crate::procs::interrupt(pid);
        }
    }
}

/// os.Expand with the hook's environment first, then the process environment.
pub fn expand(s: &str, env: &Env) -> String {
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| std::env::var(k).unwrap_or_default())
    };
    let b: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != '$' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        if c == '{' {
            match b[i + 2..].iter().position(|&x| x == '}') {
                // "${}" and a missing brace: Go drops the bad syntax
                Some(0) => i += 3,
                Some(n) => {
                    let name: String = b[i + 2..i + 2 + n].iter().collect();
                    out.push_str(&get(&name));
                    i += 3 + n;
                }
                // no closing brace: Go eats "${" only
                None => i += 2,
            }
        } else if "*#$@!?-".contains(c) || c.is_ascii_digit() {
            out.push_str(&get(&c.to_string()));
            i += 2;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            let name: String = b[i + 1..j].iter().collect();
            out.push_str(&get(&name));
            i = j;
        } else {
            // "$" not followed by a name stays
            out.push('$');
            i += 1;
        }
    }
    out
}

/// Starts `cmdstr` (nothing if empty). `tag` names the log file `logs/<path>-<tag>.log`.
pub fn start(shared: &Arc<Shared>, path: &str, tag: &str, cmdstr: &str, env: Env, restart: bool) -> Option<Cmd> {
    if cmdstr.is_empty() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pid = Arc::new(Mutex::new(None));
    let cmd = Cmd {
        stop: stop.clone(),
        pid: pid.clone(),
    };
    let (sh, path, tag, cmdstr) = (shared.clone(), path.to_string(), tag.to_string(), cmdstr.to_string());
    shared.log(&format!("path {}: {} command started", path, tag));
    std::thread::spawn(move || loop {
        let args: Vec<String> = match crate::util::shell_split(&cmdstr) {
            Ok(a) => a.iter().map(|p| expand(p, &env)).collect(),
            Err(e) => {
                sh.log(&format!("path {}: {} command: {}", path, tag, e));
                return;
            }
        };
        let Some(mut child) = crate::procs::spawn_hook(&sh, &args, &env, &path, &tag) else {
            return;
        };
        let p = child.id() as i32;
        *pid.lock().unwrap() = Some(p);
        // Close() may have come before the pid was known
        if stop.load(Ordering::SeqCst) {
            crate::procs::interrupt(p);
        }
        let status = child.wait();
        *pid.lock().unwrap() = None;
        sh.children.lock().unwrap().remove(&p);
        sh.log(&format!("path {}: {} command exited: {:?}", path, tag, status));
        if stop.load(Ordering::SeqCst) || !restart || sh.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) || sh.shutdown.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    Some(cmd)
}

/// path.ExternalCmdEnv: MTX_PATH, RTSP_PATH (deprecated), RTSP_PORT, and G1.. with the
/// submatches of a regexp configuration.
pub fn path_env(shared: &Shared, name: &str, conf_name: &str) -> Env {
    let mut env = vec![
        ("MTX_PATH".to_string(), name.to_string()),
        ("RTSP_PATH".to_string(), name.to_string()),
        ("RTSP_PORT".to_string(), shared.rtsp_port_env()),
    ];
    if crate::conf::is_regex_conf(conf_name) {
        if let Ok(re) = crate::conf::conf_regex(conf_name) {
            if let Some(c) = re.captures(name) {
                for i in 1..c.len() {
                    env.push((
                        format!("G{}", i),
                        c.get(i).map(|m| m.as_str()).unwrap_or("").to_string(),
                    ));
                }
            }
        }
    }
    env
}

/// hooks.OnConnect: runOnConnect (restarted with runOnConnectRestart) while a connection
/// of `conn_type` (`rtmpConn`, `srtConn`...) lasts, runOnDisconnect when it ends (see
/// `on_disconnect`), with RTSP_PORT, MTX_CONN_TYPE and MTX_CONN_ID. None when neither
/// is set.
pub fn on_connect(shared: &Arc<Shared>, conn_type: &str, id: &str) -> Option<Pair> {
    let g = shared.lock().global.clone();
    let s = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let (a, b) = (s("runOnConnect"), s("runOnDisconnect"));
    if a.is_empty() && b.is_empty() {
        return None;
    }
    let restart = g.get("runOnConnectRestart").and_then(|v| v.as_bool()).unwrap_or(false);
    let env = vec![
        ("RTSP_PORT".to_string(), shared.rtsp_port_env()),
        ("MTX_CONN_TYPE".to_string(), conn_type.to_string()),
        ("MTX_CONN_ID".to_string(), id.to_string()),
    ];
    Some(Pair::start(
        shared,
        "conn",
        ("runOnConnect", &a, restart),
        ("runOnDisconnect", &b),
        env,
    ))
}

/// The connection has closed: runOnConnect is stopped and runOnDisconnect started,
/// unless the whole double is shutting down.
pub fn on_disconnect(shared: &Arc<Shared>, hooks: Option<Pair>) {
    if let Some(h) = hooks {
        if !shared.shutdown.load(Ordering::SeqCst) {
            h.end(shared);
        }
    }
}

/// url.QueryEscape.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{:02X}", b)),
        }
    }
    out
}

/// A hook pair (runOnX / runOnUnX): the first runs while the state lasts, the second is
/// launched once when it ends.
pub struct Pair {
    cmd: Option<Cmd>,
    end: Option<(String, Env)>,
    path: String,
    end_tag: &'static str,
}

impl Pair {
    pub fn start(
        shared: &Arc<Shared>,
        path: &str,
        on: (&'static str, &str, bool),
        off: (&'static str, &str),
        env: Env,
    ) -> Pair {
        Pair {
            cmd: start(shared, path, on.0, on.1, env.clone(), on.2),
            end: (!off.1.is_empty()).then(|| (off.1.to_string(), env)),
            path: path.to_string(),
            end_tag: off.0,
        }
    }

    pub fn end(self, shared: &Arc<Shared>) {
        if let Some(c) = &self.cmd {
            c.close();
        }
        if let Some((cmdstr, env)) = self.end {
            start(shared, &self.path, self.end_tag, &cmdstr, env, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_expand() {
        let env: Env = vec![("MTX_PATH".into(), "cam".into()), ("G1".into(), "1".into())];
        for (i, o) in [
            ("$MTX_PATH", "cam"),
            ("${MTX_PATH}.mp4", "cam.mp4"),
            ("a-$MTX_PATH-b", "a-cam-b"),
            ("$MTX_PATHx", ""),
            ("x$", "x$"),
            ("$$", ""),
            ("${}", ""),
            ("$%", "$%"),
            ("${x", "x"),
            ("p$G1", "p1"),
            ("no vars", "no vars"),
        ] {
            assert_eq!(expand(i, &env), o, "{}", i);
        }
        assert_eq!(query_escape("a=1&b=x y"), "a%3D1%26b%3Dx+y");
    }
}
