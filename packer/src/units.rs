//! Human units in the configuration: durations ("14d", "26h", "90m", "2w") and sizes ("100GB",
//! "1.5TiB"). Decimal prefixes are powers of 1000, binary ones (KiB, MiB, ...) of 1024.

use anyhow::{bail, Result};
use chrono::Duration;

/// Parses `<number><unit>` with unit s, m, h, d, w.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 =
        num.parse().map_err(|_| anyhow::anyhow!("{text:?}: expected a number then s, m, h, d or w (e.g. \"14d\")"))?;
    Ok(match unit.trim() {
        "s" => Duration::seconds(n),
        "m" | "min" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        _ => bail!("{text:?}: unknown unit {unit:?}; use s, m, h, d or w (e.g. \"14d\")"),
    })
}

/// Parses a size such as `100GB`, `1.5 TiB`, `512MiB`, `1000` (bytes).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow::anyhow!("{text:?}: expected a size like \"100GB\" or \"1.5TiB\""))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => bail!("{text:?}: unknown size unit {u:?}; use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB"),
    };
    Ok((n * mult).round() as u64)
}

/// `1.5 GiB`-style rendering (the inventory's own, so both binaries print sizes alike).
pub use restorer::inventory::human_size;

/// `3d 4h`-style rendering of a duration (for ages).
pub fn human_duration(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else {
        format!("{mins}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("14d").unwrap(), Duration::days(14));
        assert_eq!(parse_duration("26h").unwrap(), Duration::hours(26));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        assert!(parse_duration("14").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3y").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100GB").unwrap(), 100_000_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("42").unwrap(), 42);
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_duration(Duration::hours(27)), "1d 3h");
    }
}
