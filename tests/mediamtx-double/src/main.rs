//! CLI: `mediamtx-double --api-port P --rtsp-port R --dir DIR [--control-port C]`.
//! Prints `READY api=... rtsp=... control=... playback=... metrics=... pprof=...` on stdout
//! when ready (log lines for stdout follow it); runs until SIGINT/SIGTERM.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn usage() -> ! {
    eprintln!(
        "usage: mediamtx-double [--api-port P] [--rtsp-port R] [--control-port C] [--playback-port P] [--metrics-port P] [--pprof-port P] [--srt-port S] [--rtmp-port M] [--rtmps-port N]\n\
         [--rtsps-port S] [--rtp-port U] [--rtcp-port V] --dir DIR [--no-all-others] [--ffmpeg PATH]\n\
         port 0 (default) picks a free port"
    );
    std::process::exit(2);
}

fn main() {
    let mut opts = mediamtx_double::Options::new("");
    let mut dir: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("missing value for {}", name);
                usage()
            })
        };
        match a.as_str() {
            "--api-port" => opts.api_port = val("--api-port").parse().unwrap_or_else(|_| usage()),
            "--rtsp-port" => opts.rtsp_port = val("--rtsp-port").parse().unwrap_or_else(|_| usage()),
            "--rtmp-port" => opts.rtmp_port = val("--rtmp-port").parse().unwrap_or_else(|_| usage()),
            "--rtmps-port" => opts.rtmps_port = val("--rtmps-port").parse().unwrap_or_else(|_| usage()),
            "--rtsps-port" => opts.rtsps_port = val("--rtsps-port").parse().unwrap_or_else(|_| usage()),
            "--rtp-port" => opts.rtp_port = val("--rtp-port").parse().unwrap_or_else(|_| usage()),
            "--rtcp-port" => opts.rtcp_port = val("--rtcp-port").parse().unwrap_or_else(|_| usage()),
            "--control-port" => opts.control_port = val("--control-port").parse().unwrap_or_else(|_| usage()),
            "--playback-port" => opts.playback_port = val("--playback-port").parse().unwrap_or_else(|_| usage()),
            "--metrics-port" => opts.metrics_port = val("--metrics-port").parse().unwrap_or_else(|_| usage()),
            "--pprof-port" => opts.pprof_port = val("--pprof-port").parse().unwrap_or_else(|_| usage()),
            "--srt-port" => opts.srt_port = val("--srt-port").parse().unwrap_or_else(|_| usage()),
            "--dir" => dir = Some(val("--dir")),
            "--ffmpeg" => opts.ffmpeg = val("--ffmpeg"),
            "--no-all-others" => opts.all_others = false,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {}", other);
                usage()
            }
        }
    }
    let Some(dir) = dir else { usage() };
    opts.hold_log_stdout = true;
    opts.dir = dir.into();
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut h = match mediamtx_double::start(opts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("mediamtx-double: cannot start: {}", e);
            std::process::exit(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", h.ready_line());
        let _ = out.flush();
    }
    h.release_log_stdout();
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("mediamtx-double: shutting down");
    h.shutdown();
}
