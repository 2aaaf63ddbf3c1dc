//! Unix-seconds helpers: the current time and a readable UTC rendering for messages.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in unix seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Renders unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn format_unix(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = date_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01, using 400-year cycles
/// (146 097 days) counted from 0000-03-01 so that the leap day ends each year.
fn date_from_days(days: u64) -> (u64, u64, u64) {
    const CYCLE: u64 = 146_097;
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let cycle = shifted / CYCLE;
    let day_of_cycle = shifted % CYCLE;
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524
        - day_of_cycle / (CYCLE - 1))
        / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = cycle * 400 + year_of_cycle + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix(1_709_251_199), "2024-02-29 23:59:59 UTC");
        assert_eq!(format_unix(4_102_444_800), "2100-01-01 00:00:00 UTC");
        // Never panics, even at the end of the range.
        assert!(format_unix(u64::MAX).ends_with("UTC"));
    }
}
