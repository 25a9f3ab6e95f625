//! LiteLLM's durations (`budget_duration`, `duration`): `30s`, `30m`, `30h`, `30d`, `1w`,
//! `1mo` (30 days), `1y` (365 days).

use std::time::Duration;

/// The duration `text` names, or why it names none.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration such as `30s`, `30m`, `30h`, `30d`, `1mo`")
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "`{text}` has no known unit: use s, m, h, d, w, mo or y (`30d`)"
            ))
        }
    };
    if n == 0 {
        return Err(format!("`{text}` must be longer than 0"));
    }
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
