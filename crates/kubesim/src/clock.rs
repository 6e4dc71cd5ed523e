//! Time for the simulator: the wall clock for the demo, or a manual clock that tests advance,
//! so a 600 s progress deadline passes in milliseconds.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, with sub-second precision.
pub type Instant = Duration;

/// A clock, real or manual.
#[derive(Debug)]
pub struct Clock {
    manual: Option<Mutex<Instant>>,
}

impl Clock {
    /// The wall clock.
    pub fn real() -> Self {
        Self { manual: None }
    }

    /// A clock that starts at the current wall time and moves only by [`Clock::advance`].
    pub fn manual() -> Self {
        Self { manual: Some(Mutex::new(wall())) }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Now.
    pub fn now(&self) -> Instant {
        match &self.manual {
            Some(now) => *now.lock().unwrap_or_else(|e| e.into_inner()),
            None => wall(),
        }
    }

    /// Moves a manual clock forward (no effect on the real clock).
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            *now.lock().unwrap_or_else(|e| e.into_inner()) += by;
        }
    }

    /// Now in RFC 3339 with seconds, as `metav1.Time` serializes.
    pub fn timestamp(&self) -> String {
        rfc3339(self.now())
    }
}

fn wall() -> Instant {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `2026-11-27T07:00:00Z`.
pub fn rfc3339(at: Instant) -> String {
    let secs = at.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-27T07:00:00.123456Z`, as `metav1.MicroTime` serializes (events.k8s.io's
/// `eventTime`).
pub fn rfc3339_micros(at: Instant) -> String {
    let seconds = rfc3339(at);
    let micros = at.subsec_micros();
    format!("{}.{micros:06}Z", seconds.trim_end_matches('Z'))
}

/// Parses what [`rfc3339`] writes (and any `…Z` timestamp with optional fraction).
pub fn parse_rfc3339(text: &str) -> Option<Instant> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<u64>());
    let (h, m, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // days_from_civil
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Duration::from_secs(u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known dates, both ways.
    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Duration::from_secs(1_795_849_200)), "2026-11-28T07:00:00Z");
        assert_eq!(rfc3339(Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        for secs in [0, 951_782_400, 1_795_849_200, 4_102_444_799] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&rfc3339(d)), Some(d));
        }
        let micro = Duration::from_micros(1_795_849_200_000_042);
        assert_eq!(rfc3339_micros(micro), "2026-11-28T07:00:00.000042Z");
        assert_eq!(parse_rfc3339(&rfc3339_micros(micro)), Some(Duration::from_secs(1_795_849_200)));
    }

    /// A manual clock moves only when told.
    #[test]
    fn manual_clock_advances() {
        let c = Clock::manual();
        let t0 = c.now();
        c.advance(Duration::from_secs(600));
        assert_eq!(c.now() - t0, Duration::from_secs(600));
    }
}
