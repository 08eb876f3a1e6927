//! Retention: which bundles to keep and why. Pure: bundles and a policy in, one decision per
//! bundle out, so every rule is tested from tables and generated cases, never from a disk.
//!
//! Keep rules have restic's meaning (`forget --keep-*`): `keep_last` keeps the N newest;
//! `keep_hourly/daily/weekly/monthly/yearly` keep the newest bundle of each of the last N
//! periods that have a bundle (calendar buckets in UTC, ISO weeks); `keep_within` keeps every
//! bundle created within that duration of the newest bundle. A bundle kept by any rule is kept.
//! With no keep rule configured, every bundle matches "no keep rule configured" and is kept.
//!
//! Then the limits remove, oldest first, bundles that only keep rules were keeping:
//! `max_age_days` (older than that at evaluation time), `max_total_size` (until the kept total
//! fits) and `min_free_space_percent` (until the disk would have that much free).
//!
//! Never removed, whatever the rules say: protected bundles, the newest bundle whose last
//! verification passed, the newest bundle at all, and pre-restore checkpoints whose restore was
//! not confirmed. So the kept set is never empty while a bundle exists.
//!
//! Remote copies (`[retention] remote = true`, [`evaluate_remote`]) follow the local decisions
//! and make none of their own: a copy goes only when local retention deleted its bundle, and
//! never the newest verified copy (nor the newest copy at all) of a destination.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::Serialize;

crate::words! {
    /// Where a bundle came from (the catalog's `source` column, `--json`'s `source`).
    pub enum Source("bundle source") {
        /// `packer create` by hand.
        Manual = "manual",
        /// The daemon or timer.
        Scheduled = "scheduled",
        /// Taken before a restore.
        Checkpoint = "checkpoint",
    }
}

/// What retention needs to know of one bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Catalog id.
    pub id: i64,
    /// Creation time (UTC).
    pub created: DateTime<Utc>,
    /// Size in bytes.
    pub size: u64,
    /// Protected by the operator.
    pub protected: bool,
    /// The last verification of this bundle passed.
    pub verified_ok: bool,
    /// Where it came from.
    pub source: Source,
    /// For checkpoints: the restore it guards was confirmed.
    pub confirmed: bool,
}

/// The retention policy (`[retention]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Keep the N newest.
    pub keep_last: u32,
    /// Newest of each of the last N hours.
    pub keep_hourly: u32,
    /// Newest of each of the last N days.
    pub keep_daily: u32,
    /// Newest of each of the last N ISO weeks.
    pub keep_weekly: u32,
    /// Newest of each of the last N months.
    pub keep_monthly: u32,
    /// Newest of each of the last N years.
    pub keep_yearly: u32,
    /// Everything within this duration of the newest bundle.
    pub keep_within: Option<Duration>,
    /// Remove bundles older than this at evaluation time.
    pub max_age: Option<Duration>,
    /// Remove oldest bundles until the kept total is at most this.
    pub max_total_size: Option<u64>,
    /// Remove oldest bundles until this much of the disk would be free.
    pub min_free_space_percent: Option<f64>,
}

impl Policy {
    fn has_keep_rule(&self) -> bool {
        self.keep_last + self.keep_hourly + self.keep_daily + self.keep_weekly + self.keep_monthly + self.keep_yearly
            > 0
            || self.keep_within.is_some()
    }
}

/// The file system holding the bundles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disk {
    /// Size in bytes.
    pub total: u64,
    /// Free bytes now.
    pub free: u64,
}

/// The decision for one bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Catalog id.
    pub id: i64,
    /// Kept or removed.
    pub keep: bool,
    /// Why: every rule that keeps it, or the one reason it goes.
    pub reasons: Vec<String>,
    /// True when a safety rule keeps it (no limit may remove it).
    pub safe: bool,
}

type Bucket = (i32, u32, u32, u32);

/// The calendar periods of the `keep_<period>` rules: a type, so that a rule the match below
/// does not know fails to compile instead of counting as yearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    /// The period `t` falls in (ISO weeks, UTC).
    fn bucket(self, t: DateTime<Utc>) -> Bucket {
        match self {
            Period::Hourly => (t.year(), t.ordinal(), t.hour(), 0),
            Period::Daily => (t.year(), t.ordinal(), 0, 0),
            Period::Weekly => (t.iso_week().year(), t.iso_week().week(), 0, 0),
            Period::Monthly => (t.year(), t.month(), 0, 0),
            Period::Yearly => (t.year(), 0, 0, 0),
        }
    }
}

/// Per candidate (by index): the rules that keep it.
type Reasons = HashMap<usize, Vec<String>>;

/// Decides, for every candidate, whether it stays. The result is in the same order as
/// `candidates`; it does not depend on that order.
pub fn evaluate(policy: &Policy, candidates: &[Candidate], at: DateTime<Utc>, disk: Option<Disk>) -> Vec<Decision> {
    // Newest first; ties broken by id so the order of the input never matters.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        candidates[b].created.cmp(&candidates[a].created).then(candidates[b].id.cmp(&candidates[a].id))
    });
    // Checkpoints are not part of the backup series: only safety rules keep them.
    let regular: Vec<usize> = order.iter().copied().filter(|&i| candidates[i].source != Source::Checkpoint).collect();
    let safe = safety_rules(candidates, &order, &regular, at);
    let reasons = keep_rules(policy, candidates, &regular);

    let mut keep: Vec<bool> =
        (0..candidates.len()).map(|i| safe.contains_key(&i) || reasons.contains_key(&i)).collect();
    let mut removed_why: HashMap<usize, String> =
        keep.iter().enumerate().filter(|(_, k)| !**k).map(|(i, _)| (i, "matched no keep rule".to_string())).collect();
    // Limits, oldest first, never touching safe bundles.
    let oldest_first: Vec<usize> = order.iter().rev().copied().filter(|i| !safe.contains_key(i)).collect();
    let mut limits = Limits { candidates, oldest_first: &oldest_first, keep: &mut keep, removed_why: &mut removed_why };
    if let Some(max_age) = policy.max_age {
        limits.max_age(max_age, at);
    }
    if let Some(max) = policy.max_total_size {
        limits.max_total_size(max);
    }
    if let (Some(pct), Some(disk)) = (policy.min_free_space_percent, disk) {
        limits.min_free_space(pct, disk);
    }

    (0..candidates.len())
        .map(|i| {
            let is_safe = safe.contains_key(&i);
            let mut why: Vec<String> = safe.get(&i).cloned().unwrap_or_default();
            if keep[i] {
                why.extend(reasons.get(&i).cloned().unwrap_or_default());
            } else {
                why = vec![removed_why.get(&i).cloned().unwrap_or_else(|| "matched no keep rule".into())];
            }
            Decision { id: candidates[i].id, keep: keep[i], reasons: why, safe: is_safe }
        })
        .collect()
}

/// The safety rules: what no limit may remove (the newest bundle, the newest verified one,
/// protected ones, unconfirmed checkpoints, bundles newer than the evaluation time).
fn safety_rules(candidates: &[Candidate], order: &[usize], regular: &[usize], at: DateTime<Utc>) -> Reasons {
    let mut safe = Reasons::new();
    if let Some(&newest) = regular.first() {
        safe.entry(newest).or_default().push("newest bundle".into());
    }
    if let Some(&v) = regular.iter().find(|&&i| candidates[i].verified_ok) {
        safe.entry(v).or_default().push("newest verified bundle".into());
    }
    for &i in order {
        let c = &candidates[i];
        if c.protected {
            safe.entry(i).or_default().push("protected".into());
        }
        if c.source == Source::Checkpoint && !c.confirmed {
            safe.entry(i).or_default().push("pre-restore checkpoint, restore not confirmed".into());
        }
        if c.created > at {
            safe.entry(i).or_default().push("newer than the evaluation time".into());
        }
    }
    safe
}

/// The keep rules over the backup series (`regular`, newest first): keep_last, one per period
/// for each `keep_<period>`, keep_within; everything when no keep rule is configured.
fn keep_rules(policy: &Policy, candidates: &[Candidate], regular: &[usize]) -> Reasons {
    let mut reasons = Reasons::new();
    if !policy.has_keep_rule() {
        for &i in regular {
            reasons.entry(i).or_default().push("no keep rule configured".into());
        }
    }
    for (n, &i) in regular.iter().enumerate() {
        if n < policy.keep_last as usize {
            reasons.entry(i).or_default().push(format!("keep_last {}", policy.keep_last));
        }
    }
    for (rule, count) in [
        (Period::Hourly, policy.keep_hourly),
        (Period::Daily, policy.keep_daily),
        (Period::Weekly, policy.keep_weekly),
        (Period::Monthly, policy.keep_monthly),
        (Period::Yearly, policy.keep_yearly),
    ] {
        let mut left = count;
        let mut last: Option<Bucket> = None;
        for &i in regular {
            if left == 0 {
                break;
            }
            let b = rule.bucket(candidates[i].created);
            if last != Some(b) {
                reasons.entry(i).or_default().push(format!("keep_{} {count}", rule.name()));
                last = Some(b);
                left -= 1;
            }
        }
    }
    if let (Some(within), Some(&newest)) = (policy.keep_within, regular.first()) {
        let since = candidates[newest].created - within;
        for &i in regular {
            if candidates[i].created >= since {
                reasons.entry(i).or_default().push(format!("keep_within {}", crate::units::human_duration(within)));
            }
        }
    }
    reasons
}

/// The limits, applied in turn to what the rules kept: each removes the oldest unsafe bundles
/// until it holds.
struct Limits<'a> {
    candidates: &'a [Candidate],
    /// Indexes of the bundles a limit may remove, oldest first.
    oldest_first: &'a [usize],
    keep: &'a mut Vec<bool>,
    /// Why each removed bundle goes (the last rule that removed it).
    removed_why: &'a mut HashMap<usize, String>,
}

impl Limits<'_> {
    fn max_age(&mut self, max_age: Duration, at: DateTime<Utc>) {
        for &i in self.oldest_first {
            if self.keep[i] && self.candidates[i].created < at - max_age {
                self.keep[i] = false;
                self.removed_why
                    .insert(i, format!("older than max_age_days ({})", crate::units::human_duration(max_age)));
            }
        }
    }

    fn max_total_size(&mut self, max: u64) {
        let mut total: u64 =
            (0..self.candidates.len()).filter(|&i| self.keep[i]).map(|i| self.candidates[i].size).sum();
        for &i in self.oldest_first {
            if total <= max {
                break;
            }
            if self.keep[i] {
                self.keep[i] = false;
                total -= self.candidates[i].size;
                self.removed_why
                    .insert(i, format!("max_total_size {}: kept bundles exceed it", crate::units::human_size(max)));
            }
        }
    }

    fn min_free_space(&mut self, pct: f64, disk: Disk) {
        let freed: u64 = (0..self.candidates.len()).filter(|&i| !self.keep[i]).map(|i| self.candidates[i].size).sum();
        let mut free = disk.free.saturating_add(freed);
        let need = (disk.total as f64 * pct / 100.0) as u64;
        for &i in self.oldest_first {
            if free >= need {
                break;
            }
            if self.keep[i] {
                self.keep[i] = false;
                free = free.saturating_add(self.candidates[i].size);
                self.removed_why.insert(i, format!("min_free_space_percent {pct}: disk too full"));
            }
        }
    }
}

/// What remote retention needs to know of one copy on object storage.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCandidate {
    /// Row id of the copy.
    pub id: i64,
    /// Its destination (`s3://bucket/prefix`): each destination keeps its own newest copies.
    pub destination: String,
    /// Its bundle's creation time.
    pub created: DateTime<Utc>,
    /// Its last read-back matched.
    pub verified_ok: bool,
    /// Local retention deleted its bundle (not a deletion by hand or for space).
    pub deleted_by_retention: bool,
}

/// The decision for one remote copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteDecision {
    /// Row id of the copy.
    pub id: i64,
    /// Delete it from the store.
    pub delete: bool,
    /// Why.
    pub reason: String,
}

/// Decides which remote copies go: those whose bundle local retention deleted, except, per
/// destination, the newest verified copy and the newest copy at all. The result is in the order
/// of `copies` and does not depend on it.
pub fn evaluate_remote(copies: &[RemoteCandidate]) -> Vec<RemoteDecision> {
    let newest = |pred: &dyn Fn(&RemoteCandidate) -> bool, dest: &str| {
        copies.iter().filter(|c| c.destination == dest && pred(c)).max_by_key(|c| (c.created, c.id)).map(|c| c.id)
    };
    copies
        .iter()
        .map(|c| {
            let (delete, reason) = if newest(&|x| x.verified_ok, &c.destination) == Some(c.id) {
                (false, format!("the newest verified copy on {}", c.destination))
            } else if newest(&|_| true, &c.destination) == Some(c.id) {
                (false, format!("the newest copy on {}", c.destination))
            } else if c.deleted_by_retention {
                (true, "local retention deleted its bundle".to_string())
            } else {
                (false, "local retention keeps its bundle (or it was deleted by hand)".to_string())
            };
            RemoteDecision { id: c.id, delete, reason }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn c(id: i64, created: &str) -> Candidate {
        Candidate {
            id,
            created: at(created),
            size: 100,
            protected: false,
            verified_ok: false,
            source: Source::Scheduled,
            confirmed: false,
        }
    }

    fn kept(d: &[Decision]) -> Vec<i64> {
        let mut v: Vec<i64> = d.iter().filter(|d| d.keep).map(|d| d.id).collect();
        v.sort();
        v
    }

    /// Daily bundles over 10 days, two a day.
    fn series() -> Vec<Candidate> {
        (0..20)
            .map(|i| c(i, &format!("2027-01-{:02}T{:02}:00:00Z", 1 + i / 2, if i % 2 == 0 { 2 } else { 14 })))
            .collect()
    }

    const NOW: &str = "2027-01-11T00:00:00Z";

    #[test]
    fn keep_rules_table() {
        let cases: Vec<(Policy, Vec<i64>)> = vec![
            (Policy { keep_last: 3, ..Default::default() }, vec![17, 18, 19]),
            // Newest of each of the last 3 days: the 14:00 bundle of days 10, 9, 8.
            (Policy { keep_daily: 3, ..Default::default() }, vec![15, 17, 19]),
            (Policy { keep_last: 1, keep_daily: 2, ..Default::default() }, vec![17, 19]),
            // 2027-01-04 is a Monday: ISO weeks (..01-03), (01-04..01-10).
            (Policy { keep_weekly: 2, ..Default::default() }, vec![5, 19]),
            (Policy { keep_monthly: 5, ..Default::default() }, vec![19]),
            (Policy { keep_within: Some(Duration::hours(24)), ..Default::default() }, vec![17, 18, 19]),
            // No keep rule: everything stays.
            (Policy::default(), (0..20).collect()),
        ];
        for (policy, want) in cases {
            assert_eq!(kept(&evaluate(&policy, &series(), at(NOW), None)), want, "{policy:?}");
        }
    }

    #[test]
    fn limits_remove_oldest_first_but_never_safe_ones() {
        let mut s = series();
        s[0].protected = true;
        s[4].verified_ok = true;
        let p = Policy { max_age: Some(Duration::days(3)), ..Default::default() };
        // Older than 2027-01-08T00:00 goes, except protected 0 and newest verified 4.
        assert_eq!(kept(&evaluate(&p, &s, at(NOW), None)), vec![0, 4, 14, 15, 16, 17, 18, 19]);
        let p = Policy { max_total_size: Some(500), ..Default::default() };
        let d = evaluate(&p, &s, at(NOW), None);
        assert_eq!(kept(&d), vec![0, 4, 17, 18, 19]);
        assert!(d[1].reasons[0].starts_with("max_total_size"), "{:?}", d[1]);
        let p = Policy { min_free_space_percent: Some(20.0), ..Default::default() };
        // 10000 bytes disk, 1700 free: need 2000, i.e. three more removals (1, 2, 3).
        let d = evaluate(&p, &s, at(NOW), Some(Disk { total: 10_000, free: 1_700 }));
        assert_eq!(kept(&d).len(), 17);
        assert!(!d[1].keep && !d[2].keep && !d[3].keep && d[0].keep && d[4].keep);
    }

    #[test]
    fn checkpoints_are_kept_until_confirmed() {
        let mut s = series();
        s.push(Candidate { source: Source::Checkpoint, ..c(100, "2026-01-01T00:00:00Z") });
        s.push(Candidate { source: Source::Checkpoint, confirmed: true, ..c(101, "2026-01-01T00:00:00Z") });
        let d = evaluate(&Policy { keep_last: 1, ..Default::default() }, &s, at(NOW), None);
        assert_eq!(kept(&d), vec![19, 100]);
    }

    #[test]
    fn reasons_name_every_keeping_rule() {
        let d = evaluate(&Policy { keep_last: 1, keep_daily: 1, ..Default::default() }, &series(), at(NOW), None);
        let newest = d.iter().find(|d| d.id == 19).unwrap();
        assert_eq!(newest.reasons, vec!["newest bundle", "keep_last 1", "keep_daily 1"]);
        assert_eq!(d[0].reasons, vec!["matched no keep rule"]);
    }

    /// A tiny deterministic generator: no dependency, reproducible failures (the seed is printed).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn random_case(rng: &mut Rng) -> (Policy, Vec<Candidate>, Option<Disk>) {
        let base = at("2027-06-01T00:00:00Z");
        let n = rng.below(40) as i64;
        let cands = (0..n)
            .map(|id| Candidate {
                id,
                created: base - Duration::minutes(rng.below(60 * 24 * 400) as i64),
                size: 1 + rng.below(1000),
                protected: rng.below(8) == 0,
                verified_ok: rng.below(4) == 0,
                source: match rng.below(10) {
                    0 => Source::Checkpoint,
                    1..=3 => Source::Manual,
                    _ => Source::Scheduled,
                },
                confirmed: rng.below(2) == 0,
            })
            .collect();
        let opt = |rng: &mut Rng, max: u64| if rng.below(2) == 0 { 0 } else { rng.below(max) as u32 };
        let policy = Policy {
            keep_last: opt(rng, 5),
            keep_hourly: opt(rng, 30),
            keep_daily: opt(rng, 10),
            keep_weekly: opt(rng, 6),
            keep_monthly: opt(rng, 12),
            keep_yearly: opt(rng, 3),
            keep_within: (rng.below(3) == 0).then(|| Duration::days(rng.below(30) as i64)),
            max_age: (rng.below(3) == 0).then(|| Duration::days(rng.below(300) as i64)),
            max_total_size: (rng.below(3) == 0).then(|| rng.below(20_000)),
            min_free_space_percent: (rng.below(3) == 0).then(|| rng.below(60) as f64),
        };
        let disk = (rng.below(2) == 0).then(|| Disk { total: 100_000, free: rng.below(100_000) });
        (policy, cands, disk)
    }

    /// Generated cases: protected bundles and unconfirmed checkpoints always survive; while any
    /// regular bundle exists the newest one is kept; the result does not depend on input order;
    /// every decision has a reason.
    #[test]
    fn properties_hold_for_generated_cases() {
        let now = at("2027-06-01T00:00:00Z");
        for seed in 1..=2000u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (policy, cands, disk) = random_case(&mut rng);
            let d = evaluate(&policy, &cands, now, disk);
            assert_eq!(d.len(), cands.len());
            for (c, d) in cands.iter().zip(&d) {
                assert_eq!(c.id, d.id);
                assert!(!d.reasons.is_empty(), "seed {seed}: no reason for {}", c.id);
                if c.protected || (c.source == Source::Checkpoint && !c.confirmed) {
                    assert!(d.keep, "seed {seed}: protected/checkpoint {} removed", c.id);
                }
            }
            let regular: Vec<&Candidate> = cands.iter().filter(|c| c.source != Source::Checkpoint).collect();
            if let Some(newest) = regular.iter().max_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id))) {
                assert!(d.iter().find(|x| x.id == newest.id).unwrap().keep, "seed {seed}: newest removed");
            }
            if let Some(v) =
                regular.iter().filter(|c| c.verified_ok).max_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)))
            {
                assert!(d.iter().find(|x| x.id == v.id).unwrap().keep, "seed {seed}: newest verified removed");
            }
            let mut shuffled = cands.clone();
            shuffled.reverse();
            let k = shuffled.len();
            if k > 2 {
                shuffled.swap(0, k / 2);
            }
            let mut a: Vec<(i64, bool)> = d.iter().map(|d| (d.id, d.keep)).collect();
            let mut b: Vec<(i64, bool)> =
                evaluate(&policy, &shuffled, now, disk).iter().map(|d| (d.id, d.keep)).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "seed {seed}: order changed the result");
        }
    }

    fn remote(id: i64, dest: &str, created: &str, verified_ok: bool, deleted: bool) -> RemoteCandidate {
        RemoteCandidate {
            id,
            destination: dest.into(),
            created: at(created),
            verified_ok,
            deleted_by_retention: deleted,
        }
    }

    /// Remote copies follow local retention only; each destination keeps its newest verified
    /// copy even when local retention deleted that bundle, and its newest copy at all.
    #[test]
    fn remote_copies_follow_local_deletions_but_keep_the_newest_verified() {
        let a = "s3://a/p";
        let b = "s3://b";
        let copies = vec![
            remote(1, a, "2026-01-01T00:00:00Z", true, true), // deleted locally, older: goes
            remote(2, a, "2026-01-02T00:00:00Z", true, true), // deleted locally, but newest verified on a
            remote(3, a, "2026-01-03T00:00:00Z", false, true), // newest on a (failed read-back): kept
            remote(4, a, "2025-12-01T00:00:00Z", true, false), // kept locally: kept
            remote(5, b, "2026-01-01T00:00:00Z", true, true), // the only copy on b: kept
        ];
        let d = evaluate_remote(&copies);
        let del: Vec<i64> = d.iter().filter(|x| x.delete).map(|x| x.id).collect();
        assert_eq!(del, vec![1]);
        assert!(d[1].reason.contains("newest verified"), "{:?}", d[1]);
        assert!(d[2].reason.contains("newest copy"), "{:?}", d[2]);
        // Order does not matter.
        let mut rev = copies.clone();
        rev.reverse();
        let mut d2 = evaluate_remote(&rev);
        d2.reverse();
        assert_eq!(d, d2);
        assert!(evaluate_remote(&[]).is_empty());
    }

    /// Whatever the copies, the newest verified one of every destination survives.
    #[test]
    fn remote_retention_never_deletes_the_newest_verified_copy() {
        let dests = ["s3://a", "s3://b"];
        for seed in 0u64..200 {
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let copies: Vec<_> = (0..(next() % 8) as i64)
                .map(|id| RemoteCandidate {
                    id,
                    destination: dests[(next() % 2) as usize].into(),
                    created: at("2026-01-01T00:00:00Z") + Duration::hours((next() % 50) as i64),
                    verified_ok: next() % 3 != 0,
                    deleted_by_retention: next() % 4 != 0,
                })
                .collect();
            let d = evaluate_remote(&copies);
            for dest in dests {
                let newest =
                    copies.iter().filter(|c| c.destination == dest && c.verified_ok).max_by_key(|c| (c.created, c.id));
                if let Some(n) = newest {
                    assert!(!d.iter().find(|x| x.id == n.id).unwrap().delete, "seed {seed}");
                }
            }
            for (c, dec) in copies.iter().zip(&d) {
                assert!(!dec.delete || c.deleted_by_retention, "seed {seed}: only what local retention deleted");
            }
        }
    }
}
