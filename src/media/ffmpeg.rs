//! Supervised FFmpeg children: each runs in its own process group; stop = SIGINT to the group,
//! then SIGKILL after a timeout; always reaped; restarted with exponential backoff; stderr
//! goes to the log at debug level; a progress watchdog (`-progress pipe:1`) restarts a child
//! that stalls without exiting (e.g. SIGSTOPped, or a hung input).

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Spec {
    /// Name used in logs and events (e.g. `keepalive:camera1`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Restart after any exit until stopped.
    pub restart: bool,
    /// Restart when no progress report arrives for this long (adds `-progress pipe:1`).
    pub stall_timeout: Option<Duration>,
    /// SIGINT → SIGKILL escalation delay.
    pub stop_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Takes the child's stdout (a media pipe) on a thread of its own; the data it reads
    /// is the progress the stall watchdog watches (no `-progress` then).
    pub stdout: Option<StdoutSink>,
}

/// Reads a child's stdout until EOF; calls [`Progress::mark`] as data flows. Joined by the
/// supervisor once the child is reaped.
#[derive(Clone)]
pub struct StdoutSink(pub Arc<dyn Fn(std::process::ChildStdout, Progress) + Send + Sync>);

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdoutSink")
    }
}

/// Marks the child as making progress (for the stall watchdog).
pub struct Progress {
    shared: Arc<Shared>,
    origin: Instant,
}

impl Progress {
    pub fn mark(&self) {
        self.shared
            .last_progress_ms
            .store(now_ms(self.origin), Ordering::SeqCst);
    }
}

impl Spec {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, args: Vec<String>) -> Spec {
        Spec {
            name: name.into(),
            program: program.into(),
            args,
            restart: true,
            stall_timeout: None,
            stop_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stdout: None,
        }
    }
}

/// What happened to a supervised child, for the owner (e.g. to publish `recording.error`).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Started { pid: i32 },
    Exited { code: Option<i32>, signal: Option<i32> },
    Stalled,
    SpawnFailed(String),
}

pub type EventSink = Arc<dyn Fn(&str, Event) + Send + Sync>;

struct Shared {
    pid: AtomicI32,
    starts: AtomicU64,
    last_progress_ms: AtomicU64,
    last_exit: Mutex<Option<Event>>,
}

/// Handle to a supervised child; `stop` (or drop) terminates it.
pub struct Supervised {
    name: String,
    shared: Arc<Shared>,
    stop_tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Supervised {
    pub fn start(spec: Spec, events: EventSink) -> Supervised {
        let shared = Arc::new(Shared {
            pid: AtomicI32::new(0),
            starts: AtomicU64::new(0),
            last_progress_ms: AtomicU64::new(0),
            last_exit: Mutex::new(None),
        });
        let (stop_tx, stop_rx) = mpsc::channel();
        let name = spec.name.clone();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sup-{}", spec.name))
            .spawn(move || supervise(spec, sh, stop_rx, events))
            .expect("spawn supervisor thread");
        Supervised {
            name,
            shared,
            stop_tx: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Current child pid (0 while none runs).
    pub fn pid(&self) -> i32 {
        self.shared.pid.load(Ordering::SeqCst)
    }

    /// How many times a child was started.
    pub fn starts(&self) -> u64 {
        self.shared.starts.load(Ordering::SeqCst)
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().map_or(true, |t| t.is_finished())
    }

    pub fn last_exit(&self) -> Option<Event> {
        self.shared.last_exit.lock().unwrap().clone()
    }

    /// Stops the child (SIGINT to its group, SIGKILL after the stop timeout) and waits for
    /// it to be reaped. Blocking: call from the blocking pool. Idempotent.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        log::debug!("{}: supervisor stopped", self.name);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_ms(origin: Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

/// Sends `sig` to the child's process group.
fn signal_group(child: &Child, sig: Signal) {
    let _ = killpg(Pid::from_raw(child.id() as i32), sig);
}

/// SIGINT to the group, wait up to `timeout`, then SIGKILL; always reaps.
pub fn terminate(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    // A stopped process would never act on SIGINT.
    signal_group(child, Signal::SIGCONT);
    signal_group(child, Signal::SIGINT);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(child, Signal::SIGKILL);
    child.wait().expect("wait for a killed child")
}

/// What a bounded run of a one-shot FFmpeg child left behind.
pub struct Finished<T> {
    pub status: std::process::ExitStatus,
    /// The deadline came first; the child's group was terminated.
    pub timed_out: bool,
    pub output: T,
    pub stderr: String,
}

impl<T> Finished<T> {
    /// The last non-empty stderr line, cut to 200 characters: FFmpeg's reason for failing.
    pub fn last_error_line(&self) -> String {
        let line = self.stderr.lines().rev().find(|l| !l.trim().is_empty());
        line.unwrap_or("").chars().take(200).collect()
    }
}

/// Runs a one-shot child (stdout and stderr piped, stdin piped when `input` is given) until it
/// exits or `timeout` passes, then terminates its group. `input` is written and stdout is
/// consumed by `read_output` on threads of their own, because either pipe can fill up first.
/// The child is always reaped and every thread joined.
pub fn run_bounded<T: Send + 'static>(
    mut child: Child,
    input: Option<Vec<u8>>,
    timeout: Duration,
    read_output: impl FnOnce(std::process::ChildStdout) -> T + Send + 'static,
) -> std::io::Result<Finished<T>> {
    let deadline = Instant::now() + timeout;
    let missing = |what| std::io::Error::other(format!("no {what} pipe"));
    let (Some(out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        terminate(&mut child, Duration::from_secs(1));
        return Err(missing("stdout/stderr"));
    };
    let feeder = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => Some(std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        })),
        (Some(_), None) => {
            terminate(&mut child, Duration::from_secs(1));
            return Err(missing("stdin"));
        }
        (None, _) => None,
    };
    let reader = std::thread::spawn(move || read_output(out));
    let err_reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let waited = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(Some(s)),
            Ok(None) if Instant::now() >= deadline => break Ok(None),
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => break Err(e),
        }
    };
    let status = match &waited {
        Ok(Some(s)) => *s,
        _ => terminate(&mut child, Duration::from_secs(1)),
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let output = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let timed_out = waited?.is_none();
    let output = output.map_err(|_| std::io::Error::other("output reader panicked"))?;
    Ok(Finished {
        status,
        timed_out,
        output,
        stderr,
    })
}

fn spawn(spec: &Spec, shared: &Arc<Shared>, origin: Instant) -> std::io::Result<(Child, Option<JoinHandle<()>>)> {
    let mut cmd = Command::new(&spec.program);
    let progress_pipe = spec.stall_timeout.is_some() && spec.stdout.is_none();
    if progress_pipe {
        cmd.args(["-nostats", "-progress", "pipe:1", "-stats_period", "0.5"]);
    }
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd.stdout(if progress_pipe || spec.stdout.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn()?;
    shared.last_progress_ms.store(now_ms(origin), Ordering::SeqCst);
    let mut sink_thread = None;
    if let (Some(sink), Some(out)) = (&spec.stdout, child.stdout.take()) {
        let (sink, progress) = (
            sink.clone(),
            Progress {
                shared: shared.clone(),
                origin,
            },
        );
        sink_thread = Some(
            std::thread::Builder::new()
                .name(format!("out-{}", spec.name))
                .spawn(move || (sink.0)(out, progress))
                .expect("spawn stdout reader thread"),
        );
    }
    if let Some(out) = child.stdout.take() {
        let sh = shared.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("progress=") {
                    sh.last_progress_ms.store(now_ms(origin), Ordering::SeqCst);
                }
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let name = spec.name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                log::debug!("ffmpeg[{name}]: {line}");
            }
        });
    }
    Ok((child, sink_thread))
}

fn exit_event(status: std::process::ExitStatus) -> Event {
    use std::os::unix::process::ExitStatusExt;
    Event::Exited {
        code: status.code(),
        signal: status.signal(),
    }
}

fn supervise(spec: Spec, shared: Arc<Shared>, stop: mpsc::Receiver<()>, events: EventSink) {
    let origin = Instant::now();
    let mut backoff = spec.backoff_min;
    loop {
        let started = Instant::now();
        let (mut child, sink_thread) = match spawn(&spec, &shared, origin) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{}: cannot start {}: {e}", spec.name, spec.program.display());
                events(&spec.name, Event::SpawnFailed(e.to_string()));
                if !spec.restart || stop.recv_timeout(backoff) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                backoff = (backoff * 2).min(spec.backoff_max);
                continue;
            }
        };
        let pid = child.id() as i32;
        shared.pid.store(pid, Ordering::SeqCst);
        shared.starts.fetch_add(1, Ordering::SeqCst);
        log::debug!("{}: started pid {pid}", spec.name);
        events(&spec.name, Event::Started { pid });
        let ended: Option<Event> = loop {
            match stop.recv_timeout(Duration::from_millis(100)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    let status = terminate(&mut child, spec.stop_timeout);
                    shared.pid.store(0, Ordering::SeqCst);
                    *shared.last_exit.lock().unwrap() = Some(exit_event(status));
                    // the child is gone, so its stdout is at EOF: the reader ends
                    if let Some(t) = sink_thread {
                        let _ = t.join();
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Some(exit_event(status));
            }
            if let Some(stall) = spec.stall_timeout {
                let idle = now_ms(origin).saturating_sub(shared.last_progress_ms.load(Ordering::SeqCst));
                if idle > stall.as_millis() as u64 {
                    log::warn!("{}: no progress for {idle} ms; restarting pid {pid}", spec.name);
                    signal_group(&child, Signal::SIGKILL);
                    let _ = child.wait();
                    break Some(Event::Stalled);
                }
            }
        };
        shared.pid.store(0, Ordering::SeqCst);
        if let Some(t) = sink_thread {
            let _ = t.join();
        }
        if let Some(ev) = ended {
            log::info!("{}: child pid {pid} ended: {ev:?}", spec.name);
            *shared.last_exit.lock().unwrap() = Some(ev.clone());
            events(&spec.name, ev);
        }
        if !spec.restart {
            return;
        }
        // A child that ran a while starts the backoff afresh.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = spec.backoff_min;
        }
        if stop.recv_timeout(backoff) != Err(RecvTimeoutError::Timeout) {
            return;
        }
        backoff = (backoff * 2).min(spec.backoff_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |_: &str, e: Event| s.lock().unwrap().push(e)), seen)
    }

    fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn restarts_after_exit_with_backoff_and_stops_cleanly() {
        let (sink, seen) = collect();
        let mut spec = Spec::new("t-exit", "sh", vec!["-c".into(), "exit 3".into()]);
        spec.backoff_min = Duration::from_millis(50);
        let mut s = Supervised::start(spec, sink);
        assert!(wait_until(Duration::from_secs(5), || s.starts() >= 3), "restarted");
        s.stop();
        assert!(seen.lock().unwrap().contains(&Event::Exited {
            code: Some(3),
            signal: None
        }));
    }

    #[test]
    fn stop_escalates_to_sigkill_for_the_whole_group() {
        let (sink, _) = collect();
        // The shell ignores SIGINT, and so does its background child: only SIGKILL ends them.
        let script = "trap '' INT; sleep 30 & echo $! > \"$0\"; wait";
        let pidfile = std::env::temp_dir().join(format!("sup-grandchild-{}", std::process::id()));
        let mut spec = Spec::new(
            "t-kill",
            "sh",
            vec!["-c".into(), script.into(), pidfile.to_str().unwrap().into()],
        );
        spec.stop_timeout = Duration::from_millis(300);
        let mut s = Supervised::start(spec, sink);
        assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&pidfile)
            .is_ok_and(|t| !t.trim().is_empty())));
        let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let t = Instant::now();
        s.stop();
        assert!(t.elapsed() >= Duration::from_millis(300), "waited for SIGINT first");
        assert!(
            matches!(s.last_exit(), Some(Event::Exited { signal: Some(9), .. })),
            "{:?}",
            s.last_exit()
        );
        // the grandchild in the same group is gone too (kill(pid, 0) fails; it was reaped by init)
        assert!(
            wait_until(Duration::from_secs(2), || nix::sys::signal::kill(
                Pid::from_raw(grandchild),
                None
            )
            .is_err()),
            "group killed"
        );
        let _ = std::fs::remove_file(pidfile);
    }

    #[test]
    fn watchdog_restarts_a_stopped_ffmpeg() {
        let (sink, seen) = collect();
        let args = [
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-f",
            "null",
            "-",
        ]
        .map(String::from)
        .to_vec();
        let mut spec = Spec::new("t-ffmpeg", "ffmpeg", args);
        spec.stall_timeout = Some(Duration::from_secs(2));
        spec.backoff_min = Duration::from_millis(100);
        let mut s = Supervised::start(spec, sink);
        assert!(wait_until(Duration::from_secs(10), || s.pid() > 0));
        std::thread::sleep(Duration::from_millis(1500));
        let first = s.pid();
        nix::sys::signal::kill(Pid::from_raw(first), Signal::SIGSTOP).unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || s.starts() >= 2
                && s.pid() > 0
                && s.pid() != first),
            "watchdog restarted ffmpeg"
        );
        assert!(seen.lock().unwrap().contains(&Event::Stalled));
        assert!(
            nix::sys::signal::kill(Pid::from_raw(first), None).is_err(),
            "stalled child reaped"
        );
        s.stop();
        assert_eq!(s.pid(), 0);
    }
}
