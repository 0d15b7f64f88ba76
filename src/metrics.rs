//! Request counters and latency figures kept in memory (no I/O on the request path).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets (ms) shared by the API histogram.
pub const LATENCY_BUCKETS_MS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

#[derive(Default)]
pub struct ApiMetrics {
    requests_total: AtomicU64,
    errors_total: AtomicU64,
    /// (method, code) → count; code 0 = success. Methods come from the static method table.
    by_method: Mutex<HashMap<(&'static str, i32), u64>>,
    /// Cumulative bucket counts plus (+Inf count, sum ms).
    histogram: Mutex<([u64; LATENCY_BUCKETS_MS.len()], u64, f64)>,
}

impl ApiMetrics {
    pub fn record(&self, method: &'static str, code: i32, latency: Duration) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if code != 0 {
            self.errors_total.fetch_add(1, Ordering::Relaxed);
        }
        *self.by_method.lock().unwrap().entry((method, code)).or_insert(0) += 1;
        let ms = latency.as_secs_f64() * 1000.0;
        let mut h = self.histogram.lock().unwrap();
        for (i, b) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                h.0[i] += 1;
            }
        }
        h.1 += 1;
        h.2 += ms;
    }

    pub fn requests_total(&self) -> u64 {
        self.requests_total.load(Ordering::Relaxed)
    }
    pub fn errors_total(&self) -> u64 {
        self.errors_total.load(Ordering::Relaxed)
    }
    pub fn by_method(&self) -> Vec<((&'static str, i32), u64)> {
        let mut v: Vec<_> = self.by_method.lock().unwrap().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    /// Quantile estimate (upper bucket bound) from the histogram, in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let h = self.histogram.lock().unwrap();
        if h.1 == 0 {
            return 0.0;
        }
        let target = (q * h.1 as f64).ceil() as u64;
        for (i, b) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if h.0[i] >= target {
                return *b;
            }
        }
        LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1]
    }
}
