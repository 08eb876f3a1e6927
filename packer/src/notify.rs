//! Notifications: an event becomes a webhook POST (slack, discord or generic JSON) and/or a
//! command run with the event as JSON on stdin. A notification that fails is logged and never
//! fails or blocks the backup: it runs with a timeout and its errors are returned, not raised.
//!
//! The webhook goes through the system's `curl` (HTTPS, proxies and CA certificates as the host
//! has them, without an HTTPS client in this binary).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Webhook body shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The event as JSON.
    #[default]
    Generic,
    /// `{"text": ...}`.
    Slack,
    /// `{"content": ...}`.
    Discord,
}

/// Which events are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every event.
    Info,
    /// Failures and warnings only.
    #[default]
    Error,
}

/// `[notify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// URL to POST events to.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Shape of the webhook body.
    #[serde(default)]
    pub format: Format,
    /// Command run with the event as JSON on stdin (`sh -c`).
    #[serde(default)]
    pub command: Option<String>,
    /// error: only failures and warnings; info: every event.
    #[serde(default)]
    pub level: Level,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A bundle was written.
    BackupSucceeded,
    /// A backup failed.
    BackupFailed,
    /// A verification failed.
    VerificationFailed,
    /// Bundles were marked for deletion.
    PendingDeletion,
    /// The disk is too full for the next backup.
    CriticalSpace,
    /// A lock left by a dead process was taken over.
    StaleLockTakenOver,
    /// Bundles were deleted by retention.
    Pruned,
    /// A bundle could not be shipped off the machine.
    ShipFailed,
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// info or error.
    pub level: Level,
    /// When.
    pub time: DateTime<Utc>,
    /// This host.
    pub host: String,
    /// One-line summary.
    pub summary: String,
    /// The bundle concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Its size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the operator should do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what_to_do: Option<String>,
}

impl Event {
    /// A new event for this host.
    pub fn new(kind: Kind, summary: impl Into<String>) -> Event {
        let level = match kind {
            Kind::BackupSucceeded | Kind::Pruned => Level::Info,
            _ => Level::Error,
        };
        Event {
            kind,
            level,
            time: Utc::now(),
            host: sysinfo::System::host_name().unwrap_or_default(),
            summary: summary.into(),
            bundle: None,
            size_bytes: None,
            error: None,
            what_to_do: None,
        }
    }

    fn text(&self) -> String {
        let mut s = format!(
            "[{}] {}: {}",
            self.host,
            match self.level {
                Level::Error => "PROBLEM",
                Level::Info => "ok",
            },
            self.summary
        );
        if let Some(e) = &self.error {
            s += &format!("\nError: {e}");
        }
        if let Some(w) = &self.what_to_do {
            s += &format!("\nWhat to do: {w}");
        }
        s
    }

    /// The webhook body for a format.
    pub fn body(&self, format: Format) -> String {
        match format {
            Format::Generic => serde_json::to_string(self).expect("serialises"),
            Format::Slack => serde_json::json!({ "text": self.text() }).to_string(),
            Format::Discord => serde_json::json!({ "content": self.text() }).to_string(),
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// Sends an event everywhere configured, if its level passes. Returns the failures (for the
/// log); never an error.
pub fn send(cfg: &NotifySection, event: &Event) -> Vec<String> {
    let mut failures = Vec::new();
    if event.level < cfg.level {
        return failures;
    }
    if let Some(url) = &cfg.webhook {
        if let Err(e) = post(url, &event.body(cfg.format)) {
            failures.push(format!("webhook: {e}"));
        }
    }
    if let Some(cmd) = &cfg.command {
        if let Err(e) = run_command(cmd, &serde_json::to_string(event).expect("serialises")) {
            failures.push(format!("command: {e}"));
        }
    }
    failures
}

fn post(url: &str, body: &str) -> Result<(), String> {
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--max-time",
            "15",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run curl ({e}); install curl to use [notify] webhook"))?;
    child.stdin.take().expect("piped").write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    let out = wait(child)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("curl {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn run_command(cmd: &str, json: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    // A command that does not read stdin must not make us fail: ignore EPIPE.
    let _ = child.stdin.take().expect("piped").write_all(json.as_bytes());
    let out = wait(child)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn wait(mut child: std::process::Child) -> Result<std::process::Output, String> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s; abandoned", TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_each_format_shape() {
        let mut e = Event::new(Kind::BackupFailed, "backup failed");
        e.error = Some("disk full".into());
        let slack: serde_json::Value = serde_json::from_str(&e.body(Format::Slack)).unwrap();
        assert!(slack["text"].as_str().unwrap().contains("disk full"));
        let discord: serde_json::Value = serde_json::from_str(&e.body(Format::Discord)).unwrap();
        assert!(discord["content"].as_str().unwrap().contains("PROBLEM"));
        let generic: serde_json::Value = serde_json::from_str(&e.body(Format::Generic)).unwrap();
        assert_eq!(generic["kind"], "backup_failed");
        assert_eq!(generic["level"], "error");
    }

    /// A failing or hanging-free command is reported, not raised; info events are filtered at
    /// level error.
    #[test]
    fn failures_are_returned_and_levels_filter() {
        let cfg =
            NotifySection { command: Some("cat >/dev/null; exit 3".into()), level: Level::Info, ..Default::default() };
        let f = send(&cfg, &Event::new(Kind::BackupSucceeded, "ok"));
        assert_eq!(f.len(), 1, "{f:?}");
        let cfg = NotifySection { command: Some("exit 3".into()), level: Level::Error, ..Default::default() };
        assert!(send(&cfg, &Event::new(Kind::BackupSucceeded, "ok")).is_empty());
    }
}
