//! Metrics kept in memory: JSON-RPC requests by method and code and their latency histogram
//! (prometheus types, exported on /metrics), and a background sampler of this process's
//! CPU, memory, threads and file descriptors from /proc (so `get_metrics` never blocks).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latency buckets (seconds) of the request histogram.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: Histogram,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "camera_service_rpc_requests_total",
                "JSON-RPC requests by method and result code (0 = success)",
            ),
            &["method", "code"],
        )
        .expect("valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "camera_service_rpc_request_duration_seconds",
                "JSON-RPC request handling time",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("unique");
        registry.register(Box::new(latency.clone())).expect("unique");
        ApiMetrics {
            registry,
            requests,
            latency,
        }
    }
}

impl ApiMetrics {
    pub fn record(&self, method: &'static str, code: i32, latency: Duration) {
        // Most calls succeed: no string built for their label.
        let code = match code {
            0 => std::borrow::Cow::Borrowed("0"),
            c => std::borrow::Cow::Owned(c.to_string()),
        };
        self.requests.with_label_values(&[method, &code]).inc();
        self.latency.observe(latency.as_secs_f64());
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// (requests, errors) over all methods.
    pub fn totals(&self) -> (u64, u64) {
        let mut total = 0;
        let mut errors = 0;
        for family in self
            .registry
            .gather()
            .iter()
            .filter(|f| f.get_name() == "camera_service_rpc_requests_total")
        {
            for m in family.get_metric() {
                let v = m.get_counter().get_value() as u64;
                total += v;
                if m.get_label()
                    .iter()
                    .any(|l| l.get_name() == "code" && l.get_value() != "0")
                {
                    errors += v;
                }
            }
        }
        (total, errors)
    }

    /// Quantile estimate in ms: the upper bound of the bucket holding it.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let m = prometheus::core::Collector::collect(&self.latency);
        let Some(h) = m
            .first()
            .and_then(|f| f.get_metric().first())
            .map(|m| m.get_histogram().clone())
        else {
            return 0.0;
        };
        let count = h.get_sample_count();
        if count == 0 {
            return 0.0;
        }
        let target = (q * count as f64).ceil() as u64;
        h.get_bucket()
            .iter()
            .find(|b| b.get_cumulative_count() >= target)
            .map_or(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1], |b| b.get_upper_bound())
            * 1000.0
    }
}

/// One reading of this process and the machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SysSample {
    /// Process CPU use over the last sampling period, percent of one core.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    /// RSS as a percentage of the machine's memory.
    pub memory_percent: f64,
    pub threads: u64,
    pub open_fds: u64,
}

fn proc_cpu_ticks() -> Option<u64> {
    // /proc/self/stat: fields 14 and 15 (utime, stime) after the ")" of the command name.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn mem_total_kib() -> Option<u64> {
    status_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")
}

/// Reads /proc in a background thread every `period` and keeps the latest sample. `stop`
/// ends the thread at once and joins it.
pub struct Sampler {
    latest: Arc<Mutex<SysSample>>,
    stop: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl Sampler {
    pub fn start(period: Duration) -> Sampler {
        let latest = Arc::new(Mutex::new(SysSample::default()));
        let out = latest.clone();
        let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("sys-sampler".into()).spawn(move || {
            let mut last = (Instant::now(), proc_cpu_ticks().unwrap_or(0));
            let mem_total = mem_total_kib().unwrap_or(0) * 1024;
            // A message or a dropped sender ends the loop; a timeout is the next tick.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(period) {
                let now = (Instant::now(), proc_cpu_ticks().unwrap_or(last.1));
                let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
                let cpu = (now.1.saturating_sub(last.1)) as f64 / ticks_per_sec / secs * 100.0;
                last = now;
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let rss = status_field(&status, "VmRSS:").unwrap_or(0) * 1024;
                let sample = SysSample {
                    cpu_percent: (cpu * 10.0).round() / 10.0,
                    rss_bytes: rss,
                    memory_percent: if mem_total > 0 {
                        (rss as f64 / mem_total as f64 * 10000.0).round() / 100.0
                    } else {
                        0.0
                    },
                    threads: status_field(&status, "Threads:").unwrap_or(0),
                    open_fds: std::fs::read_dir("/proc/self/fd")
                        .map(|d| d.count() as u64)
                        .unwrap_or(0),
                };
                *out.lock().unwrap() = sample;
            }
        });
        Sampler {
            latest,
            stop: Mutex::new(thread.ok().map(|t| (stop_tx, t))),
        }
    }

    /// Stops and joins the sampling thread. Idempotent.
    pub fn stop(&self) {
        if let Some((tx, thread)) = self.stop.lock().unwrap().take() {
            drop(tx);
            let _ = thread.join();
        }
    }

    pub fn latest(&self) -> SysSample {
        self.latest.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_quantiles() {
        let m = ApiMetrics::default();
        for _ in 0..98 {
            m.record("ping", 0, Duration::from_micros(300));
        }
        m.record("get_metrics", -32002, Duration::from_millis(20));
        m.record("get_metrics", -32002, Duration::from_millis(200));
        assert_eq!(m.totals(), (100, 2));
        assert_eq!(m.quantile_ms(0.5), 0.5);
        assert_eq!(m.quantile_ms(0.99), 25.0);
        assert_eq!(m.quantile_ms(1.0), 250.0);
    }

    #[test]
    fn sampler_reads_this_process() {
        let s = Sampler::start(Duration::from_millis(50));
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.latest().rss_bytes == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let v = s.latest();
        let t0 = Instant::now();
        s.stop();
        s.stop(); // idempotent
        assert!(t0.elapsed() < Duration::from_secs(1), "stop wakes the thread at once");
        assert!(v.rss_bytes > 1024 * 1024 && v.threads >= 2 && v.open_fds >= 3, "{v:?}");
    }
}
