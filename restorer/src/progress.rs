//! Progress of long work (create, verify, restore, ship), and the terminal that shows it.
//!
//! The libraries report through [`Progress`], knowing nothing of terminals; the binaries' edges
//! pass a [`Terminal`]: on a terminal a bar per long step (bytes, rate, ETA; a spinner with the
//! time spent when the size is not known ahead, as for a database dump), nothing at all when
//! stderr is not a terminal or with `-q`, as restic and cargo do. Log lines go through the same
//! [`Terminal`], which lifts the bar while a line is printed, so the two never garble each other.
//! The bars are indicatif's (the crate cargo-binstall, uv and rustic use): rate and ETA
//! smoothing, redraw throttling and terminal detection are not worth writing again.

use std::io::{self, IsTerminal, Read, Write};

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::log::{Level, Line, Threshold};

/// What long work reports as it goes. Every method has a default that does nothing, so
/// [`Silent`] is the whole of a progress that shows nothing.
pub trait Progress {
    /// A long step begins: `what` it is, and its `total` bytes when known ahead.
    fn begin(&self, what: &str, total: Option<u64>) {
        let _ = (what, total);
    }
    /// Within the step, work on `name` (an entry, a file) begins.
    fn item(&self, name: &str) {
        let _ = name;
    }
    /// `bytes` more of the step are done.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }
    /// The step is over (its bar goes away).
    fn end(&self) {}
}

/// Shows nothing: JSON output, tests, and library callers that do not care.
pub struct Silent;

impl Progress for Silent {}

/// A reader that reports the bytes read through it.
pub struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<'a, R: Read> Counting<'a, R> {
    /// Wraps `inner`.
    pub fn new(inner: R, progress: &'a dyn Progress) -> Self {
        Counting { inner, progress }
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// A writer that reports the bytes written through it.
pub struct CountingWriter<'a, W> {
    inner: W,
    progress: &'a dyn Progress,
}

impl<'a, W: Write> CountingWriter<'a, W> {
    /// Wraps `inner`.
    pub fn new(inner: W, progress: &'a dyn Progress) -> Self {
        CountingWriter { inner, progress }
    }
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// stderr as a person sees it: log lines filtered by one [`Threshold`], and bars when drawing
/// them makes sense.
pub struct Terminal {
    threshold: Threshold,
    bars: bool,
    /// A prefix for every log line (the daemon's time stamp), computed per line.
    stamp: Option<fn() -> String>,
    bar: Mutex<Option<ProgressBar>>,
}

impl Terminal {
    /// For a command run by a person or a script: the lines `threshold` shows, and bars unless
    /// `no_bars` (`-q`, JSON output) or stderr is not a terminal.
    pub fn new(threshold: Threshold, no_bars: bool) -> Terminal {
        Terminal { threshold, bars: !no_bars && Self::is_terminal(), stamp: None, bar: Mutex::new(None) }
    }

    /// Whether stderr, where lines and bars go, is a terminal.
    pub fn is_terminal() -> bool {
        io::stderr().is_terminal()
    }

    /// For a service's log (the daemon, the timer's run): every shown line stamped, never a bar.
    pub fn service(verbose: bool, stamp: fn() -> String) -> Terminal {
        Terminal {
            threshold: Threshold::new(false, verbose, false),
            bars: false,
            stamp: Some(stamp),
            bar: Mutex::new(None),
        }
    }

    /// Whether a line of `level` would be shown.
    pub fn shows(&self, level: Level) -> bool {
        self.threshold.shows(level)
    }

    /// Prints a log line on stderr when its level passes, lifting the bar while it does.
    #[allow(clippy::print_stderr, reason = "the Terminal is the binaries' stderr")]
    pub fn log(&self, level: Level, text: &str) {
        if !self.threshold.shows(level) {
            return;
        }
        let line = match self.stamp {
            Some(stamp) => format!("{} {}", stamp(), Line(level, text)),
            None => Line(level, text).to_string(),
        };
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match bar.as_ref() {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f(b);
        }
    }
}

/// The bar's look: what, bytes done of total, rate, time left (cargo's and rustic's layout).
fn style(total: Option<u64>) -> ProgressStyle {
    let template = match total {
        Some(_) => "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
        None => "{prefix} {spinner} {elapsed} {wide_msg}",
    };
    ProgressStyle::with_template(template).expect("a fixed, valid template").progress_chars("=> ")
}

impl Progress for Terminal {
    fn begin(&self, what: &str, total: Option<u64>) {
        if !self.bars {
            return;
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(style(total))
            .with_prefix(what.to_string());
        if total.is_none() {
            // A spinner moves by itself: the time spent is the news while a dump runs.
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        if let Some(old) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).replace(bar) {
            old.finish_and_clear();
        }
    }

    fn item(&self, name: &str) {
        // The end of a long path is the part that tells files apart.
        let short: String = name.chars().rev().take(50).collect::<Vec<_>>().into_iter().rev().collect();
        self.with_bar(|b| b.set_message(short));
    }

    fn advance(&self, bytes: u64) {
        self.with_bar(|b| b.inc(bytes));
    }

    fn end(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Tally(Cell<u64>);
    impl Progress for Tally {
        fn advance(&self, bytes: u64) {
            self.0.set(self.0.get() + bytes);
        }
    }

    #[test]
    fn counting_reports_every_byte_read_and_written() {
        let t = Tally(Cell::new(0));
        let mut r = Counting::new(&[7u8; 100_000][..], &t);
        let mut sink = Vec::new();
        io::copy(&mut r, &mut CountingWriter::new(&mut sink, &t)).unwrap();
        assert_eq!(sink.len(), 100_000);
        assert_eq!(t.0.get(), 200_000);
    }

    #[test]
    fn no_bars_off_a_terminal_or_when_quiet() {
        // Under `cargo test` stderr is captured, not a terminal: never a bar.
        let t = Terminal::new(Threshold::new(false, false, Terminal::is_terminal()), false);
        t.begin("writing", Some(10));
        assert!(t.bar.lock().unwrap().is_none());
        let t = Terminal::service(false, || "T".into());
        assert!(!t.shows(Level::Info) && t.shows(Level::Notice));
    }
}
