//! When to ask the registry again: capped exponential backoff with jitter for a missing tag
//! or a failing registry, and the server's own `Retry-After` for a 429. Pure functions.

use std::time::{Duration, SystemTime};

/// First wait: short, because read-after-push lag is usually well under a second.
const BASE: Duration = Duration::from_millis(200);
/// Longest wait between two attempts.
const CAP: Duration = Duration::from_secs(5);

/// The wait before attempt `attempt + 1` (attempts count from 1), with `jitter` in `[0, 1)`:
/// half the exponential step is fixed, the other half random ("equal jitter"), so concurrent
/// CI jobs spread out without ever retrying immediately.
pub fn delay(attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let step = BASE.saturating_mul(1 << exponent).min(CAP);
    let jitter = jitter.clamp(0.0, 1.0);
    step / 2 + step.mul_f64(jitter / 2.0)
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steps double from 200 ms and stop at 5 s.
    #[test]
    fn delays_grow_and_cap() {
        let fixed: Vec<u128> = (1..=8).map(|n| delay(n, 0.0).as_millis()).collect();
        assert_eq!(fixed, [100, 200, 400, 800, 1600, 2500, 2500, 2500]);
        assert_eq!(delay(1, 0.999_999).as_millis(), 199);
        assert_eq!(delay(100, 1.0), CAP);
    }

    /// Jitter outside [0, 1] cannot produce a wait beyond the step.
    #[test]
    fn jitter_is_clamped() {
        assert_eq!(delay(3, 7.0), Duration::from_millis(800));
        assert_eq!(delay(3, -1.0), Duration::from_millis(400));
    }

    /// Both forms of Retry-After; garbage is ignored.
    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:40:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }
}
