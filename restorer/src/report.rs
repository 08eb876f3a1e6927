//! `restore-report.json` and the human summary printed from the very same struct.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::steps::validate::Check;

/// How a restore ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything restored and every check passed.
    Restored,
    /// Restored, but at least one validation check failed (the checkpoint allows undoing it).
    ValidationFailed,
    /// A step failed and every change was undone.
    FailedRolledBack,
    /// A step failed and the rollback itself could not undo everything (the report lists what).
    FailedRollbackIncomplete,
}

/// How one step ended: `"ok"`, `"failed"` or `"skipped"` in `restore-report.json` and the
/// summary (the words the report always had).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// It did what it was for.
    Ok,
    /// It failed (the detail says why); the restore rolled back.
    Failed,
    /// Not run (the detail says why: a flag, nothing to do).
    Skipped,
}

impl StepStatus {
    /// The word in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so the summary's column widths apply.
        f.pad(self.as_str())
    }
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Step name (`verify`, `files`, `postgres n8n`, ...).
    pub step: String,
    /// ok, failed or skipped.
    pub result: StepStatus,
    /// Wall time in milliseconds.
    pub duration_ms: u128,
    /// What it did or why it failed.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The bundle's directory.
    pub bundle_dir: PathBuf,
    /// When the bundle was made.
    pub bundle_created_at: DateTime<Utc>,
    /// Restore root.
    pub root: PathBuf,
    /// `--database NAME=NEWNAME`: a databases-only restore of these databases under their new
    /// names (absent for a full restore).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<crate::select::Rename>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: DateTime<Utc>,
    /// Every step, in order.
    pub steps: Vec<StepResult>,
    /// Every validation check.
    pub validation: Vec<Check>,
    /// Every health check after the services started.
    pub health: Vec<crate::steps::system::Health>,
    /// Where what was replaced is kept.
    pub checkpoint: Option<PathBuf>,
    /// How to undo this restore.
    pub undo: String,
    /// Warnings from packing and restoring.
    pub warnings: Vec<String>,
    /// What failed, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// The human summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        if !self.databases.is_empty() {
            let list: Vec<String> = self.databases.iter().map(|r| format!("{} as {}", r.from, r.to)).collect();
            let _ = writeln!(
                s,
                "\nDatabases only (--database): {}; nothing else was touched, the live deployment is as it was.",
                list.join(", ")
            );
        }
        let _ = writeln!(s, "\nSteps:");
        for st in &self.steps {
            let _ = writeln!(s, "  {:<8} {:<28} {:>7} ms  {}", st.result, st.step, st.duration_ms, st.detail);
        }
        if !self.validation.is_empty() {
            let passed = self.validation.iter().filter(|c| c.ok).count();
            let _ = writeln!(s, "\nValidation: {passed}/{} checks passed", self.validation.len());
            for c in self.validation.iter().filter(|c| !c.ok) {
                let _ = writeln!(s, "  FAIL {}: expected {}, found {}", c.check, c.expected, c.actual);
            }
        }
        if !self.health.is_empty() {
            let _ = writeln!(s, "\nHealth checks:");
            for h in &self.health {
                let _ = writeln!(
                    s,
                    "  {:<6} {} ({}, {} tries)",
                    if h.ok { "ok" } else { "FAIL" },
                    h.target,
                    h.detail,
                    h.attempts
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "\nerror: {e}");
        }
        let verdict = match self.outcome {
            Outcome::Restored => "RESTORED: every check passed.",
            Outcome::ValidationFailed => {
                "RESTORED WITH FAILED CHECKS: the target does not match the manifest (see above)."
            }
            Outcome::FailedRolledBack => "FAILED: every change was rolled back; the target is as it was before.",
            Outcome::FailedRollbackIncomplete => {
                "FAILED, AND THE ROLLBACK IS INCOMPLETE: see the errors above; the checkpoint holds what was replaced."
            }
        };
        let _ = writeln!(s, "\n{verdict}");
        if let Some(cp) = &self.checkpoint {
            let _ = writeln!(s, "Checkpoint: {}", cp.display());
        }
        if !self.undo.is_empty() {
            let _ = writeln!(s, "To undo: {}", self.undo);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report keeps its words (scripts read `steps[].result`), and the summary its columns.
    #[test]
    fn step_status_words_and_columns() {
        for (s, w) in [(StepStatus::Ok, "ok"), (StepStatus::Failed, "failed"), (StepStatus::Skipped, "skipped")] {
            assert_eq!(serde_json::to_value(s).unwrap(), w);
            assert_eq!(serde_json::from_value::<StepStatus>(w.into()).unwrap(), s);
            assert_eq!(s.to_string(), w);
        }
        assert_eq!(format!("[{:<8}]", StepStatus::Ok), "[ok      ]");
        assert!(serde_json::from_value::<StepStatus>("OK".into()).is_err());
    }
}
