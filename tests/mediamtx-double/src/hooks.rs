//! MediaMTX's hooks other than runOnDemand (internal/hooks, externalcmd): runOnInit,
//! runOnAvailable/runOnUnavailable (runOnReady/runOnNotReady), runOnOnline/runOnOffline,
//! runOnRead/runOnUnread, runOnUnDemand, runOnRecordSegmentCreate/Complete and the
//! global runOnConnect/runOnDisconnect, with their environment variables.
//!
//! Like externalcmd.Cmd: the command line is split shell-style, then `$VAR`/`${VAR}` are
//! expanded in every part from the hook's environment (else the process environment); the
//! child runs in its own process group; closing it sends SIGINT to the group; with
//! `restart` it is started again 5 s after it exits.
//!
//! Logged like MediaMTX, with the logger of what the hook belongs to (`[path P]`,
//! `[RTSP] [conn IP:P]`, `[RTSP] [session ID]`...): `runOnX command started` and
//! `stopped` around a running hook, `runOnUnX command launched` for one-shot ones, and
//! `exited: ERR` when externalcmd reports an exit: a command that cannot be split or
//! started, or any exit of a restarting one, which v1.20.1 always reports as
//! `command exited with code 0` (its exit code is read and dropped).

use crate::core::Shared;
use crate::logger::Scope;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Env = Vec<(String, String)>;

/// Called by the recorders: (segment path, None) when created, (path, Some(duration))
/// when completed.
pub type SegmentFn = Box<dyn Fn(&str, Option<Duration>) + Send>;

/// What a hook belongs to: its log lines carry that logger's scope, and the double
/// writes the command's output to `logs/<files>-<tag>.log`.
#[derive(Clone)]
pub struct Owner {
    scope: Scope,
    files: String,
}

impl Owner {
    /// A path's hooks (`[path NAME]`, output in `logs/NAME-<tag>.log`).
    pub fn path(name: &str) -> Owner {
        Owner {
            scope: Scope::path(name),
            files: name.to_string(),
        }
    }

    /// A connection's or session's hooks, e.g. `[RTSP] [conn 127.0.0.1:4000]`.
    pub fn of(scope: Scope, files: &str) -> Owner {
        Owner {
            scope,
            files: files.to_string(),
        }
    }

    /// Logs `INF SCOPE TEXT`.
    pub fn log(&self, shared: &Shared, text: &str) {
        shared.log_as(&self.scope, "INF", text);
    }
}

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

/// A running hook and what it is logged as: closing it logs `TAG command stopped`.
pub struct Running {
    cmd: Cmd,
    owner: Owner,
    tag: &'static str,
}

impl Running {
    pub fn close(self, shared: &Shared) {
        self.cmd.close();
        self.owner.log(shared, &format!("{} command stopped", self.tag));
    }
}

/// Go's error for a command that exec cannot start: a bare name is looked up in PATH
/// first (exec.LookPath), a path is run as is (fork/exec).
pub fn go_exec_error(program: &str, e: &std::io::Error) -> String {
    if !program.contains('/')
        && matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
        )
    {
        return format!("exec: \"{}\": executable file not found in $PATH", program);
    }
    format!("fork/exec {}: {}", program, crate::conf::go_io_error(e))
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

/// hooks.OnX's start: `TAG command started`, then the command, restarted 5 s after each
/// exit with `restart` (nothing if `cmdstr` is empty).
pub fn start(
    shared: &Arc<Shared>,
    owner: &Owner,
    tag: &'static str,
    cmdstr: &str,
    env: Env,
    restart: bool,
) -> Option<Running> {
    if cmdstr.is_empty() {
        return None;
    }
    owner.log(shared, &format!("{} command started", tag));
    Some(Running {
        cmd: run(shared, owner, tag, cmdstr, env, restart),
        owner: owner.clone(),
        tag,
    })
}

/// A one-shot hook (runOnUnX, runOnRecordSegmentX): `TAG command launched`, then the
/// command once (nothing if `cmdstr` is empty).
pub fn launch(shared: &Arc<Shared>, owner: &Owner, tag: &'static str, cmdstr: &str, env: Env) {
    if !cmdstr.is_empty() {
        owner.log(shared, &format!("{} command launched", tag));
        run(shared, owner, tag, cmdstr, env, false);
    }
}

/// externalcmd.Cmd.run: the command until it is closed; an exit is reported (`TAG
/// command exited: ERR`) as externalcmd's OnExit reports it.
fn run(shared: &Arc<Shared>, owner: &Owner, tag: &'static str, cmdstr: &str, env: Env, restart: bool) -> Cmd {
    let stop = Arc::new(AtomicBool::new(false));
    let pid = Arc::new(Mutex::new(None));
    let cmd = Cmd {
        stop: stop.clone(),
        pid: pid.clone(),
    };
    let (sh, owner, cmdstr) = (shared.clone(), owner.clone(), cmdstr.to_string());
    std::thread::spawn(move || loop {
        let exited = |e: &str| owner.log(&sh, &format!("{} command exited: {}", tag, e));
        let args: Result<Vec<String>, String> =
            crate::util::shell_split(&cmdstr).map(|a| a.iter().map(|p| expand(p, &env)).collect());
        match args {
            Err(e) => exited(&e),
            Ok(args) => match crate::procs::spawn_hook(&sh, &args, &env, &owner.files, tag) {
                Err(e) => exited(&go_exec_error(args.first().map_or("", |a| a.as_str()), &e)),
                Ok(mut child) => {
                    let p = child.id() as i32;
                    *pid.lock().unwrap() = Some(p);
                    // Close() may have come before the pid was known
                    if stop.load(Ordering::SeqCst) {
                        crate::procs::interrupt(p);
                    }
                    let status = child.wait();
                    *pid.lock().unwrap() = None;
                    sh.children.lock().unwrap().remove(&p);
                    sh.log(&format!(
                        "{}: {} command pid {} exited: {:?}",
                        owner.files, tag, p, status
                    ));
                    if stop.load(Ordering::SeqCst) || sh.shutdown.load(Ordering::SeqCst) {
                        return;
                    }
                    // v1.20.1 reads the exit code and drops it: every exit is a clean one
                    if restart {
                        exited("command exited with code 0");
                    }
                }
            },
        }
        if !restart {
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
    cmd
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
/// is set. `scope` is the connection's logger (`[RTSP] [conn IP:P]`).
pub fn on_connect(shared: &Arc<Shared>, scope: Scope, conn_type: &str, id: &str) -> Option<Pair> {
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
        &Owner::of(scope, "conn"),
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
    running: Option<Running>,
    end: Option<(String, Env)>,
    owner: Owner,
    end_tag: &'static str,
}

impl Pair {
    pub fn start(
        shared: &Arc<Shared>,
        owner: &Owner,
        on: (&'static str, &str, bool),
        off: (&'static str, &str),
        env: Env,
    ) -> Pair {
        Pair {
            running: start(shared, owner, on.0, on.1, env.clone(), on.2),
            end: (!off.1.is_empty()).then(|| (off.1.to_string(), env)),
            owner: owner.clone(),
            end_tag: off.0,
        }
    }

    /// The state ended: `runOnX command stopped`, then `runOnUnX command launched`.
    pub fn end(self, shared: &Arc<Shared>) {
        if let Some(r) = self.running {
            r.close(shared);
        }
        if let Some((cmdstr, env)) = self.end {
            launch(shared, &self.owner, self.end_tag, &cmdstr, env);
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
