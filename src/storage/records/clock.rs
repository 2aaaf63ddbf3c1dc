//! [`Clock`]: "now" on both clocks, to convert between the Unix-millisecond times stored in
//! rows and the `Instant`s of kad's records. Used by the row codecs, the value and provider
//! tables and the expiry sweep.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// "Now" on both clocks, to convert between stored Unix milliseconds and `Instant`s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    instant: Instant,
    unix_ms: u64,
}

impl Clock {
    pub(super) fn now() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, millis);
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    pub(super) fn to_unix_ms(self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(ahead) => self.unix_ms.saturating_add(millis(ahead)),
            None => self
                .unix_ms
                .saturating_sub(millis(self.instant.duration_since(at))),
        }
    }

    /// The `Instant` of a stored time; times in the past give an already-expired `Instant`.
    pub(super) fn to_instant(self, unix_ms: u64) -> Instant {
        if unix_ms > self.unix_ms {
            let ahead = Duration::from_millis(unix_ms - self.unix_ms);
            self.instant
                .checked_add(ahead)
                .or_else(|| {
                    self.instant
                        .checked_add(Duration::from_secs(100 * 365 * 86_400))
                })
                .unwrap_or(self.instant)
        } else {
            let behind = Duration::from_millis(self.unix_ms - unix_ms);
            self.instant.checked_sub(behind).unwrap_or(self.instant)
        }
    }

    /// Same rule as `Record::is_expired`: expired once now >= expiry.
    pub(super) fn is_expired(self, unix_ms: u64) -> bool {
        self.unix_ms >= unix_ms
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
