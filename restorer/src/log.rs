//! Log lines and the one rule that decides which are shown.
//!
//! Both binaries (and every long job in the libraries) report as they go through lines that
//! carry a [`Level`]; the binaries' edges decide with one [`Threshold`] which reach stderr.
//! Before this, each filter matched prefixes of the text ("warning", "deleted", ...), and the
//! interactive filter and the daemon's disagreed: a catalog line saying a bundle was missing
//! had no prefix either knew, so a cron run never showed it.

use std::fmt;

/// How much a line matters, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for whoever is debugging (`-v`): commands run, sizes, timings.
    Debug,
    /// Progress narrative ("dumping PostgreSQL database n8n ..."): on a terminal.
    Info,
    /// Something changed that the record must hold (a bundle deleted, an orphan removed, a bundle
    /// indexed): shown even in logs and with `-q`.
    Notice,
    /// Something is wrong but the work went on: always shown.
    Warning,
    /// The work failed: always shown.
    Error,
}

impl Level {
    /// The prefix a rendered line carries ("warning: ..."); empty for the others, whose text
    /// speaks for itself.
    pub fn prefix(self) -> &'static str {
        match self {
            Level::Warning => "warning: ",
            Level::Error => "error: ",
            Level::Debug | Level::Info | Level::Notice => "",
        }
    }
}

/// A line with its level, rendered with the level's prefix.
pub struct Line<'a>(pub Level, pub &'a str);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.0.prefix(), self.1)
    }
}

/// The least level shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(pub Level);

impl Threshold {
    /// The one rule: `-v` shows everything; otherwise a terminal sees the narrative (Info) and a
    /// log or pipe only what the record must hold (Notice and up); `-q` is the log's view on a
    /// terminal. Warnings and errors are never hidden.
    pub fn new(quiet: bool, verbose: bool, terminal: bool) -> Threshold {
        Threshold(match (verbose, quiet, terminal) {
            (true, _, _) => Level::Debug,
            (false, true, _) | (false, false, false) => Level::Notice,
            (false, false, true) => Level::Info,
        })
    }

    /// Whether a line of `level` is shown.
    pub fn shows(self, level: Level) -> bool {
        level >= self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_errors_are_never_hidden() {
        for quiet in [false, true] {
            for verbose in [false, true] {
                for terminal in [false, true] {
                    let t = Threshold::new(quiet, verbose, terminal);
                    assert!(t.shows(Level::Warning) && t.shows(Level::Error) && t.shows(Level::Notice), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn the_narrative_is_for_terminals_and_detail_for_verbose() {
        assert!(Threshold::new(false, false, true).shows(Level::Info));
        assert!(!Threshold::new(false, false, true).shows(Level::Debug));
        assert!(!Threshold::new(false, false, false).shows(Level::Info));
        assert!(!Threshold::new(true, false, true).shows(Level::Info));
        // -v wins over -q and over a pipe: who asks for detail gets it.
        assert!(Threshold::new(true, true, false).shows(Level::Debug));
    }

    #[test]
    fn lines_carry_their_prefix() {
        assert_eq!(Line(Level::Warning, "disk almost full").to_string(), "warning: disk almost full");
        assert_eq!(Line(Level::Notice, "deleted x").to_string(), "deleted x");
        assert_eq!(Line(Level::Error, "backup failed").to_string(), "error: backup failed");
    }
}
