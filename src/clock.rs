//! Time: RFC 3339 UTC formatting for the API, and a clock that tests can drive.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2026-11-24T10:15:30.123Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(RFC3339_MILLIS)
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Wall clock in whole seconds; `Clock::manual` lets tests move time without sleeping.
#[derive(Clone, Debug)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Clock {
        Clock(None)
    }
    pub fn manual(start_unix: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(start_unix))))
    }
    pub fn unix(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => unix_now(),
        }
    }
    pub fn advance(&self, secs: i64) {
        if let Some(t) = &self.0 {
            t.fetch_add(secs, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_utc_with_millis_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_515_330_123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2026-11-24T10:15:30.123Z");
    }
    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(100);
        assert_eq!(c.unix(), 100);
        c.advance(50);
        assert_eq!(c.unix(), 150);
    }
}
