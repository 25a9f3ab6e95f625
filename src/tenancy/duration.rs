//! LiteLLM's durations (`budget_duration`, `duration`): `30s`, `30m`, `30h`, `30d`, `1w`,
//! `1mo` (30 days), `1y` (365 days), and when a budget period that long ends.

use std::time::Duration;

/// The duration `text` names, or why it names none.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let (n, unit) = split(text)?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => 30 * 86_400,
        _ => 365 * 86_400,
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// The count and the unit of a duration (one of s, m, h, d, w, mo, y), or why it is none.
fn split(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    let n: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration such as `30s`, `30m`, `30h`, `30d`, `1mo`")
    })?;
    if !["s", "m", "h", "d", "w", "mo", "y"].contains(&unit) {
        return Err(format!(
            "`{text}` has no known unit: use s, m, h, d, w, mo or y (`30d`)"
        ));
    }
    if n == 0 {
        return Err(format!("`{text}` must be longer than 0"));
    }
    Ok((n, unit))
}

/// When a budget period of `text` that is running at `now_ms` ends, on LiteLLM's calendar
/// (UTC): `1d` at the next midnight, `7d` and `1w` next Monday at midnight, `30d` and
/// `1mo` on the 1st of next month; other day counts that many days after today's
/// midnight; `Nh`, `Nm` and `Ns` at the next multiple of N hours of the day, minutes of
/// the hour, seconds of the minute; `Nmo` and `Ny` on the 1st of the month N months or
/// years ahead.
pub(crate) fn period_end(text: &str, now_ms: i64) -> Result<i64, String> {
    let (n, unit) = split(text)?;
    let n = i64::try_from(n).map_err(|_| format!("`{}` is too long", text.trim()))?;
    const SECOND: i64 = 1_000;
    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    // The next multiple of `step` within the enclosing `span` (a minute, hour or day).
    let aligned = |step: i64, span: i64| {
        let start = now_ms.div_euclid(span) * span;
        let into = (now_ms - start) / step;
        start.saturating_add((into.saturating_add(1)).saturating_mul(step))
    };
    let today = now_ms.div_euclid(DAY);
    let midnight = today * DAY;
    let months_ahead = |months: i64| {
        let (year, month, _) = civil_from_days(today);
        let index = year * 12 + (month - 1) + months;
        days_from_civil(index.div_euclid(12), index.rem_euclid(12) + 1, 1).saturating_mul(DAY)
    };
    let days = |days: i64| match days {
        1 => midnight + DAY,
        // 1970-01-01 was a Thursday: Monday is 0 in (days + 3) % 7.
        7 => midnight + (7 - (today + 3).rem_euclid(7)) * DAY,
        30 => months_ahead(1),
        _ => midnight.saturating_add(days.saturating_mul(DAY)),
    };
    Ok(match unit {
        "s" => aligned(n.saturating_mul(SECOND), MINUTE),
        "m" => aligned(n.saturating_mul(MINUTE), HOUR),
        "h" => aligned(n.saturating_mul(HOUR), DAY),
        "d" => days(n),
        "w" => days(n.saturating_mul(7)),
        "mo" => months_ahead(n),
        _ => months_ahead(n.saturating_mul(12)),
    })
}

/// Days since 1970-01-01 of a date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms since the epoch of a UTC time.
    fn at(year: i64, month: i64, day: i64, h: i64, m: i64, s: i64) -> i64 {
        ((days_from_civil(year, month, day) * 24 + h) * 60 + m) * 60_000 + s * 1_000
    }

    #[test]
    fn budget_periods_end_on_litellm_s_calendar() {
        // Wednesday 2026-12-02 13:47:25 UTC.
        let now = at(2026, 12, 2, 13, 47, 25) + 500;
        let end = |text| period_end(text, now).unwrap();
        assert_eq!(end("1d"), at(2026, 12, 3, 0, 0, 0));
        assert_eq!(end("7d"), at(2026, 12, 7, 0, 0, 0), "next Monday");
        assert_eq!(end("1w"), at(2026, 12, 7, 0, 0, 0));
        assert_eq!(
            end("30d"),
            at(2027, 1, 1, 0, 0, 0),
            "the 1st, over a year's end"
        );
        assert_eq!(end("1mo"), at(2027, 1, 1, 0, 0, 0));
        assert_eq!(end("3mo"), at(2027, 3, 1, 0, 0, 0));
        assert_eq!(end("1y"), at(2027, 12, 1, 0, 0, 0));
        assert_eq!(end("10d"), at(2026, 12, 12, 0, 0, 0));
        assert_eq!(end("2w"), at(2026, 12, 16, 0, 0, 0));
        assert_eq!(end("1h"), at(2026, 12, 2, 14, 0, 0));
        assert_eq!(end("6h"), at(2026, 12, 2, 18, 0, 0));
        assert_eq!(end("5h"), at(2026, 12, 2, 15, 0, 0));
        assert_eq!(
            period_end("5h", at(2026, 12, 2, 21, 3, 0)).unwrap(),
            at(2026, 12, 3, 1, 0, 0),
            "past midnight"
        );
        assert_eq!(end("15m"), at(2026, 12, 2, 14, 0, 0));
        assert_eq!(end("30m"), at(2026, 12, 2, 14, 0, 0));
        assert_eq!(end("1m"), at(2026, 12, 2, 13, 48, 0));
        assert_eq!(end("2s"), at(2026, 12, 2, 13, 47, 26));
        assert_eq!(end("30s"), at(2026, 12, 2, 13, 47, 30));
        // On a Monday, `7d` is the Monday after; on the 1st, `30d` the next month's 1st.
        assert_eq!(
            period_end("7d", at(2026, 12, 7, 0, 0, 0)).unwrap(),
            at(2026, 12, 14, 0, 0, 0)
        );
        assert_eq!(
            period_end("30d", at(2027, 2, 1, 9, 0, 0)).unwrap(),
            at(2027, 3, 1, 0, 0, 0)
        );
        assert!(period_end("0d", now).is_err());
        for day in [-1, 0, 59, 10_957, 20_789] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn reads_litellm_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse("1mo"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "d", "30", "30x", "-1d", "0d", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
