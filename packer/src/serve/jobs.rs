//! The console's one background job at a time (back up now, verify): its state, shared with the
//! page that polls it, and the [`Progress`] the library reports into.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use restorer::log::Level;
use restorer::progress::Progress;
use serde::Serialize;

/// Log lines kept for the page (the journal has them all).
const KEEP_LINES: usize = 200;

/// What `/api/job` returns and the job page shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobView {
    /// Increases with every job this console started (0: none yet).
    pub id: u64,
    /// backup, verify or verify --deep.
    pub kind: String,
    /// The bundle it works on (verify).
    pub target: Option<String>,
    /// Still working.
    pub running: bool,
    /// When it started.
    pub started: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished: Option<DateTime<Utc>>,
    /// The current step (what `Progress::begin` named).
    pub step: String,
    /// The current item within it.
    pub item: String,
    /// Bytes done in the step.
    pub done: u64,
    /// The step's total bytes, when known.
    pub total: Option<u64>,
    /// The job's log lines, oldest first (the last 200).
    pub log: Vec<String>,
    /// Passed, once finished.
    pub ok: Option<bool>,
    /// One line saying how it ended.
    pub outcome: Option<String>,
    /// The bundle it made or checked.
    pub bundle_id: Option<i64>,
}

/// The job slot.
#[derive(Default)]
pub struct Jobs {
    view: Mutex<JobView>,
}

/// How a finished job ended: its line, and the bundle it concerns.
pub struct Ended {
    /// Passed.
    pub ok: bool,
    /// One line for the page.
    pub outcome: String,
    /// The bundle.
    pub bundle_id: Option<i64>,
}

impl Jobs {
    /// A copy of the current state.
    pub fn view(&self) -> JobView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn with(&self, f: impl FnOnce(&mut JobView)) {
        f(&mut self.view.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Starts `work` on its own thread unless a job is running (then Err names it). `work` gets
    /// a progress and a log that feed the view; returns the new job's id.
    pub fn start(
        self: &Arc<Self>,
        kind: &str,
        target: Option<String>,
        work: impl FnOnce(&Reporter, &mut dyn FnMut(Level, &str)) -> anyhow::Result<Ended> + Send + 'static,
    ) -> Result<u64, String> {
        let id = {
            let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
            if v.running {
                return Err(format!(
                    "{} is still running (started {})",
                    v.kind,
                    v.started.map(|t| t.format("%H:%M:%S UTC").to_string()).unwrap_or_default()
                ));
            }
            *v = JobView {
                id: v.id + 1,
                kind: kind.into(),
                target,
                running: true,
                started: Some(Utc::now()),
                ..Default::default()
            };
            v.id
        };
        let jobs = Arc::clone(self);
        std::thread::spawn(move || {
            let reporter = Reporter(Arc::clone(&jobs));
            let mut log = |level: Level, line: &str| reporter.line(level, line);
            let r = work(&reporter, &mut log);
            jobs.with(|v| {
                v.running = false;
                v.finished = Some(Utc::now());
                match r {
                    Ok(e) => {
                        v.ok = Some(e.ok);
                        v.outcome = Some(e.outcome);
                        v.bundle_id = e.bundle_id;
                    }
                    Err(e) => {
                        v.ok = Some(false);
                        v.outcome = Some(crate::error_text::chain(&e));
                    }
                }
            });
        });
        Ok(id)
    }
}

/// The [`Progress`] of the running job.
pub struct Reporter(Arc<Jobs>);

impl Reporter {
    /// A log line; debug detail stays out of the page.
    pub fn line(&self, level: Level, line: &str) {
        if level == Level::Debug {
            return;
        }
        self.0.with(|v| {
            if v.log.len() >= KEEP_LINES {
                v.log.remove(0);
            }
            v.log.push(format!("{}{line}", if level == Level::Warning { "warning: " } else { "" }));
        });
    }
}

impl Progress for Reporter {
    fn begin(&self, what: &str, total: Option<u64>) {
        self.0.with(|v| {
            v.step = what.into();
            v.item.clear();
            v.done = 0;
            v.total = total;
        });
    }
    fn item(&self, name: &str) {
        self.0.with(|v| v.item = name.into());
    }
    fn advance(&self, bytes: u64) {
        self.0.with(|v| v.done += bytes);
    }
    fn end(&self) {
        self.0.with(|v| {
            if let Some(t) = v.total {
                v.done = t;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's progress and log reach the view; a second job is refused while the first runs;
    /// the outcome is recorded when it ends.
    #[test]
    fn one_job_at_a_time_with_its_progress() {
        let jobs = Arc::new(Jobs::default());
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let id = jobs
            .start("backup", None, move |p, log| {
                p.begin("writing", Some(100));
                p.advance(40);
                log(Level::Info, "dumping app");
                log(Level::Debug, "noise");
                go_rx.recv().unwrap();
                Ok(Ended { ok: true, outcome: "bundle written".into(), bundle_id: Some(7) })
            })
            .unwrap();
        assert_eq!(id, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while jobs.view().done < 40 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let v = jobs.view();
        assert!(v.running && v.step == "writing" && v.total == Some(100) && v.log == ["dumping app"]);
        assert!(jobs.start("verify", None, |_, _| unreachable!()).unwrap_err().contains("backup is still running"));
        go_tx.send(()).unwrap();
        while jobs.view().running {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let v = jobs.view();
        assert_eq!((v.ok, v.bundle_id, v.outcome.as_deref()), (Some(true), Some(7), Some("bundle written")));
        assert_eq!(jobs.start("verify", None, |_, _| anyhow::bail!("no")).unwrap(), 2);
    }
}
