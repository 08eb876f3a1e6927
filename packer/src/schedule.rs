//! The schedule: standard 5-field cron expressions (minute hour day-of-month month day-of-week),
//! evaluated in UTC. Supports `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`,
//! month and weekday names (`jan`, `mon`), and 7 for Sunday. As in Vixie cron, when both the
//! day of month and the day of week are restricted, a day matching either runs.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    dom_restricted: bool,
    dow_restricted: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32) -> Option<u32> {
    s.parse().ok().or_else(|| names.iter().position(|n| s.eq_ignore_ascii_case(n)).map(|i| i as u32 + offset))
}

fn field(text: &str, min: u32, max: u32, names: &[&str], offset: u32, what: &str) -> Result<(u64, bool)> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>().ok().filter(|&s| s > 0).with_context(|| format!("{what}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(a, names, offset).with_context(|| format!("{what}: {a:?} is not a value"))?;
            let b = value(b, names, offset).with_context(|| format!("{what}: {b:?} is not a value"))?;
            (a, b)
        } else {
            let v = value(range, names, offset).with_context(|| format!("{what}: {range:?} is not a value"))?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            bail!("{what}: {part:?} is outside {min}-{max}");
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text != "*"))
}

/// What a parsed expression allows, field by field, for rendering the same schedule in another
/// syntax (systemd's `OnCalendar`): each list ascending, weekdays 0 = Sunday (cron's 7 folded
/// into 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Minutes, 0-59.
    pub minutes: Vec<u32>,
    /// Hours, 0-23.
    pub hours: Vec<u32>,
    /// Days of the month, 1-31.
    pub days_of_month: Vec<u32>,
    /// Months, 1-12.
    pub months: Vec<u32>,
    /// Weekdays, 0-6 (Sunday is 0).
    pub weekdays: Vec<u32>,
    /// The day-of-month field was not `*`.
    pub days_of_month_restricted: bool,
    /// The day-of-week field was not `*` (both restricted: a day matching either runs).
    pub weekdays_restricted: bool,
}

fn values(bits: u64, min: u32, max: u32) -> Vec<u32> {
    (min..=max).filter(|v| bits & (1 << v) != 0).collect()
}

impl Cron {
    /// The values every field allows.
    pub fn fields(&self) -> Fields {
        Fields {
            minutes: values(self.minutes, 0, 59),
            hours: values(self.hours, 0, 23),
            days_of_month: values(self.dom, 1, 31),
            months: values(self.months, 1, 12),
            weekdays: values(self.dow, 0, 6),
            days_of_month_restricted: self.dom_restricted,
            weekdays_restricted: self.dow_restricted,
        }
    }

    /// Parses `"0 2 * * *"`.
    pub fn parse(text: &str) -> Result<Cron> {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 5 {
            bail!("{text:?}: a cron expression has 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\"");
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0, "minute")?;
        let (hours, _) = field(f[1], 0, 23, &[], 0, "hour")?;
        let (dom, dom_restricted) = field(f[2], 1, 31, &[], 0, "day of month")?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1, "month")?;
        let (mut dow, dow_restricted) = field(f[4], 0, 7, &DAYS, 0, "day of week")?;
        if dow & (1 << 7) != 0 {
            dow |= 1; // 7 is Sunday too
        }
        Ok(Cron { minutes, hours, dom, months, dow, dom_restricted, dow_restricted })
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.dom & (1 << t.day()) != 0;
        let dow = self.dow & (1 << t.weekday().num_days_from_sunday()) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first matching minute strictly after `t`, within the next five years.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut c = t.duration_trunc(Duration::minutes(1)).ok()? + Duration::minutes(1);
        let end = t + Duration::days(5 * 366);
        while c < end {
            if self.months & (1 << c.month()) == 0 {
                // First minute of the next month.
                let (y, m) = if c.month() == 12 { (c.year() + 1, 1) } else { (c.year(), c.month() + 1) };
                c = c.with_day(1)?.with_hour(0)?.with_minute(0)?.with_year(y)?.with_month(m)?;
                continue;
            }
            if !self.day_matches(c) {
                c = (c + Duration::days(1)).with_hour(0)?.with_minute(0)?;
                continue;
            }
            if self.hours & (1 << c.hour()) == 0 {
                c = (c + Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if self.minutes & (1 << c.minute()) == 0 {
                c += Duration::minutes(1);
                continue;
            }
            return Some(c);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_runs_table() {
        let cases = [
            ("0 2 * * *", "2027-03-01T01:59:00Z", "2027-03-01T02:00:00Z"),
            ("0 2 * * *", "2027-03-01T02:00:00Z", "2027-03-02T02:00:00Z"),
            ("*/15 * * * *", "2027-03-01T10:07:30Z", "2027-03-01T10:15:00Z"),
            ("30 4 1 * *", "2027-03-01T05:00:00Z", "2027-04-01T04:30:00Z"),
            ("0 0 * * sun", "2027-03-01T00:00:00Z", "2027-03-07T00:00:00Z"), // 2027-03-01 is a Monday
            ("0 0 * * 7", "2027-03-01T00:00:00Z", "2027-03-07T00:00:00Z"),
            ("0 12 * feb mon-fri", "2027-03-01T00:00:00Z", "2028-02-01T12:00:00Z"),
            ("0 0 29 2 *", "2027-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            // Both day fields restricted: the 15th or any Friday (2027-03-05).
            ("0 6 15 * fri", "2027-03-01T00:00:00Z", "2027-03-05T06:00:00Z"),
            ("0 23 31 12 *", "2027-12-31T23:30:00Z", "2028-12-31T23:00:00Z"),
        ];
        for (expr, from, want) in cases {
            assert_eq!(Cron::parse(expr).unwrap().next_after(at(from)), Some(at(want)), "{expr} after {from}");
        }
    }

    #[test]
    fn bad_expressions_say_why() {
        for (expr, needle) in [
            ("0 2 * *", "5 fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * foo *", "month"),
            ("*/0 * * * *", "step"),
        ] {
            let e = format!("{:#}", Cron::parse(expr).unwrap_err());
            assert!(e.contains(needle), "{expr}: {e}");
        }
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(at("2027-01-01T00:00:00Z")), None);
    }
}
