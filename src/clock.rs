//! Wall-clock time in milliseconds, and its RFC 3339 / HTTP-date forms. The clock can be moved
//! forward in tests (session expiry, throttling windows, trash purges) instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// A clock shared by everything in one server; `advance` shifts it for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        system_now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock forward by `ms` (tests only need forward).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch by the system clock.
pub fn system_now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-24T19:40:28.123Z`
pub fn rfc3339(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    datetime(ms).format(&format).unwrap_or_default()
}

/// Parses any RFC 3339 timestamp (any offset) into milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// `Tue, 24 Nov 2026 19:40:28 GMT`, for Last-Modified.
pub fn http_date(ms: i64) -> String {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    datetime(ms).format(&format).unwrap_or_default()
}

/// Seconds-resolution parse of an HTTP date, for If-Range.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    let t = time::PrimitiveDateTime::parse(text.trim(), &format).ok()?;
    Some(t.assume_utc().unix_timestamp() * 1000)
}

/// `2026-11-24 19-40-28`, for default recording names.
pub fn name_stamp(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]-[minute]-[second]");
    datetime(ms).format(&format).unwrap_or_default()
}

/// `2026-11-24`, as the original app's API wrote dates.
pub fn date_only(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]");
    datetime(ms).format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let ms = 1_795_549_228_123;
        let text = rfc3339(ms);
        assert!(text.ends_with(".123Z"), "{text}");
        assert_eq!(parse_rfc3339(&text), Some(ms));
        assert_eq!(parse_rfc3339("2026-11-24T20:40:28.123+01:00"), parse_rfc3339("2026-11-24T19:40:28.123Z"));
        assert_eq!(parse_http_date(&http_date(ms)), Some(ms / 1000 * 1000));
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn advancing_moves_now() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(86_400_000);
        assert!(clock.now_ms() >= before + 86_400_000);
    }
}
