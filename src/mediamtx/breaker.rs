//! Circuit breaker for MediaMTX calls: after `threshold` consecutive failures the circuit
//! opens and calls fail fast; after `reset` one probe call is let through (half-open): its
//! success closes the circuit, its failure opens it again. Time is passed in for tests.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

pub struct Breaker {
    threshold: u32,
    reset: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn new(threshold: u32, reset: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            reset,
            failures: 0,
            opened_at: None,
            probing: false,
        }
    }

    pub fn state(&self, now: Instant) -> State {
        match self.opened_at {
            None => State::Closed,
            Some(t) if now.saturating_duration_since(t) >= self.reset => State::HalfOpen,
            Some(_) => State::Open,
        }
    }

    /// May a call go out now? In half-open state only one probe at a time.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen if self.probing => false,
            State::HalfOpen => {
                self.probing = true;
                true
            }
        }
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
        self.probing = false;
    }

    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.probing || self.failures >= self.threshold {
            self.opened_at = Some(now);
        }
        self.probing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_fails_fast_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.allow(t0));
            b.failure(t0);
        }
        assert_eq!(b.state(t0), State::Closed);
        assert!(b.allow(t0));
        b.failure(t0);
        assert_eq!(b.state(t0), State::Open);
        assert!(!b.allow(t0 + Duration::from_secs(5)));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state(t1), State::HalfOpen);
        assert!(b.allow(t1), "one probe");
        assert!(!b.allow(t1), "only one probe at a time");
        b.failure(t1);
        assert_eq!(b.state(t1), State::Open, "a failed probe reopens");
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.allow(t2));
        b.success();
        assert_eq!(b.state(t2), State::Closed);
        assert!(b.allow(t2));
    }
}
