//! The double's log, honouring MediaMTX's log settings (internal/logger): `logLevel`
//! filters, `logDestinations` picks stdout (`YYYY/MM/DD HH:MM:SS LVL message`, or JSON
//! lines with `logStructured`), `file` (`logFile`, relative to the working directory) and
//! `syslog` (LOG_DAEMON, `sysLogPrefix`). The double's own `mediamtx-double.log` in its
//! working directory is always written (filtered by `logLevel` too): tests read it.
//! Messages start with MediaMTX's level tag (`ERR `, `WAR `, `INF `, `DEB `); untagged
//! ones are the double's notes, logged as INF.

use serde_json::{Map, Value};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// The log settings in force (a copy of the global configuration's, kept apart so that
/// logging never needs the state lock).
#[derive(Clone, Debug)]
pub struct LogConf {
    /// 1 debug, 2 info, 3 warn, 4 error
    pub level: u8,
    pub stdout: bool,
    pub file: Option<String>,
    pub syslog: Option<String>,
    pub structured: bool,
    /// stdout lines held back (the CLI prints its READY line first); None = not held
    pub held: Option<Vec<String>>,
    /// the CLI writes to its stdout ignoring errors (its reader may be gone); the
    /// library uses print! so that libtest captures the lines of a test's double
    pub raw_stdout: bool,
}

impl Default for LogConf {
    fn default() -> Self {
        LogConf {
            level: 2,
            stdout: false,
            file: None,
            syslog: None,
            structured: false,
            held: None,
            raw_stdout: false,
        }
    }
}

/// Most stdout lines kept while held.
const MAX_HELD: usize = 1000;

fn level_of(name: &str) -> u8 {
    match name {
        "debug" => 1,
        "warn" => 3,
        "error" => 4,
        _ => 2,
    }
}

/// Takes the log settings of a global configuration (after start, PATCH, restart).
/// Applies the log settings of a global configuration; returns the settings they
/// replace (servers closed by the change log their closing with those).
pub fn configure(conf: &Mutex<LogConf>, g: &Map<String, Value>) -> LogConf {
    let s = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let dests: Vec<String> = g
        .get("logDestinations")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut c = conf.lock().unwrap_or_else(|e| e.into_inner());
    let previous = LogConf {
        held: None,
        ..c.clone()
    };
    c.level = level_of(&s("logLevel"));
    c.stdout = dests.iter().any(|d| d == "stdout");
    c.file = dests.iter().any(|d| d == "file").then(|| s("logFile"));
    c.syslog = dests.iter().any(|d| d == "syslog").then(|| s("sysLogPrefix"));
    c.structured = g.get("logStructured").and_then(|v| v.as_bool()) == Some(true);
    previous
}

/// Splits `LVL message` into (level, tag, message).
fn split_level(msg: &str) -> (u8, &'static str, &str) {
    for (tag, level) in [("DEB", 1), ("INF", 2), ("WAR", 3), ("ERR", 4)] {
        if let Some(rest) = msg.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            return (level, tag, rest);
        }
    }
    (2, "INF", msg)
}

fn line(structured: bool, now: SystemTime, tag: &str, text: &str) -> String {
    if structured {
        let v = serde_json::json!({"timestamp": crate::util::rfc3339_nano(now), "level": tag, "message": text});
        return v.to_string();
    }
    let tm = crate::util::local_tm(now);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02} {} {}",
        tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec, tag, text
    )
}

pub fn write(dir: &Path, conf: &Mutex<LogConf>, msg: &str) {
    let (level, tag, text) = split_level(msg);
    let mut c = conf.lock().unwrap_or_else(|e| e.into_inner());
    if level < c.level {
        return;
    }
    let now = SystemTime::now();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mediamtx-double.log"))
    {
        let _ = writeln!(f, "{} {}", crate::util::rfc3339_nano(now), msg);
    }
    if c.stdout {
        let l = line(c.structured, now, tag, text);
        let raw = c.raw_stdout;
        match c.held.as_mut() {
            Some(held) if held.len() < MAX_HELD => held.push(l),
            Some(_) => {}
            None if raw => print_line(&l),
            None => println!("{}", l),
        }
    }
    if let Some(file) = &c.file {
        let path = dir.join(file);
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{}", line(c.structured, now, tag, text));
        }
    }
    if let Some(prefix) = &c.syslog {
        syslog(prefix, level, text);
    }
}

/// Prints the held stdout lines and stops holding.
pub fn release_stdout(conf: &Mutex<LogConf>) {
    let mut c = conf.lock().unwrap_or_else(|e| e.into_inner());
    for l in c.held.take().unwrap_or_default() {
        print_line(&l);
    }
}

/// One stdout line; errors ignored (println! would panic once the reader is gone).
fn print_line(l: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", l);
    let _ = out.flush();
}

fn syslog(prefix: &str, level: u8, text: &str) {
    static IDENT: Mutex<Option<std::ffi::CString>> = Mutex::new(None);
    let priority = match level {
        1 => libc::LOG_DEBUG,
        2 => libc::LOG_INFO,
        3 => libc::LOG_WARNING,
        _ => libc::LOG_ERR,
    };
    let Ok(msg) = std::ffi::CString::new(text.replace('\0', " ")) else {
        return;
    };
    let mut ident = IDENT.lock().unwrap_or_else(|e| e.into_inner());
    if ident.as_ref().map(|i| i.to_bytes()) != Some(prefix.as_bytes()) {
        let Ok(new) = std::ffi::CString::new(prefix.replace('\0', " ")) else {
            return;
        };
        // SAFETY: openlog keeps the ident pointer; the CString is kept in IDENT until the
        // next openlog replaces it.
        unsafe { libc::openlog(new.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        *ident = Some(new);
    }
    // SAFETY: a constant format string with one C string argument.
    unsafe { libc::syslog(priority, b"%s\0".as_ptr() as *const libc::c_char, msg.as_ptr()) };
}

/// A MediaMTX logger: the scope its lines carry (`[path cam]`, `[path cam] [recorder]`,
/// `[RTSP] [conn 127.0.0.1:4000]`, `[RTSP] [session 1a2b3c4d]`). One type for all of
/// them, so that every line of an owner reads `LVL SCOPE TEXT` the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    /// A logger named by its tags, e.g. `[SRT] [conn 127.0.0.1:4000]`.
    pub fn new(tags: String) -> Scope {
        Scope(tags)
    }

    /// A connection's logger (`[RTSP] [conn 127.0.0.1:4000]`).
    pub fn conn(server: &str, remote: impl std::fmt::Display) -> Scope {
        Scope(format!("[{}] [conn {}]", server, remote))
    }

    /// A path's logger (`[path NAME]`).
    pub fn path(name: &str) -> Scope {
        Scope(format!("[path {}]", name))
    }

    /// A part of this logger's owner, e.g. the path's `[recorder]`.
    pub fn child(&self, tag: &str) -> Scope {
        Scope(format!("{} [{}]", self.0, tag))
    }

    /// The line `LVL SCOPE TEXT`.
    pub fn line(&self, level: &str, text: &str) -> String {
        format!("{} {} {}", level, self.0, text)
    }
}
