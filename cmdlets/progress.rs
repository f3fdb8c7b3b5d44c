//! The command line's reporter: progress bars on a terminal, `WARNING:` and
//! `VERBOSE:` lines on standard error, as PowerShell shows them.
//!
//! A download's bar shows this run's rate and time left: bytes kept from an
//! earlier run count towards the bar but not towards the rate. A finished
//! download leaves its bar at 100%. Ctrl-C during a download says that the
//! partial file is kept and that running the same command resumes.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerimage_provider::progress::{human_bytes, Reporter};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The partial file of the download in progress, for the Ctrl-C message.
static PARTIAL: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes Ctrl-C (SIGINT) say what happens to a download in progress before
/// the process ends with status 130, as a shell reports an interrupted command.
pub fn handle_interrupt() {
    let _ = ctrlc::set_handler(|| {
        let partial = PARTIAL.lock().ok().and_then(|p| p.clone());
        let mut err = std::io::stderr().lock();
        // The bar's line is overwritten: start on a fresh line.
        let _ = write!(err, "\r\x1b[2K");
        if let Some(path) = partial {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let _ = writeln!(
                err,
                "Interrupted. The partial download ({}) is kept in {}; running the same command again resumes it.",
                human_bytes(size),
                path.display()
            );
        } else {
            let _ = writeln!(err, "Interrupted.");
        }
        let _ = err.flush();
        std::process::exit(130);
    });
}

struct Bar {
    bar: ProgressBar,
    /// A download's bar (left at 100% when it completes).
    download: bool,
}

pub struct CliReporter {
    verbose: bool,
    /// Bars only when standard error is a terminal.
    bars: bool,
    bar: Mutex<Option<Bar>>,
    /// Bytes of the current task done before this run (not part of the rate).
    resumed: Arc<AtomicU64>,
    /// The next bar belongs to a download.
    downloading: Mutex<bool>,
}

impl CliReporter {
    pub fn new(verbose: bool) -> CliReporter {
        CliReporter {
            verbose,
            bars: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            resumed: Arc::new(AtomicU64::new(0)),
            downloading: Mutex::new(false),
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// Prints a line on standard error, above any progress bar.
    pub fn line(&self, text: &str) {
        let guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(b) => b.bar.println(text),
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    fn bar_style(&self, known_total: bool) -> ProgressStyle {
        let resumed = Arc::clone(&self.resumed);
        let rate_of = move |state: &ProgressState| -> f64 {
            let done = state.pos().saturating_sub(resumed.load(Ordering::Relaxed));
            run_rate(done, state.elapsed())
        };
        let rate_for_eta = rate_of.clone();
        let template = if known_total {
            "{msg} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {run_rate} ETA {run_eta}"
        } else {
            "{spinner} {msg} {bytes} {run_rate}"
        };
        let style = if known_total {
            ProgressStyle::with_template(template).map(|s| s.progress_chars("=> "))
        } else {
            ProgressStyle::with_template(template)
        };
        style
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "run_rate",
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", HumanBytes(rate_of(state) as u64));
                },
            )
            .with_key(
                "run_eta",
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let left = state.len().unwrap_or(0).saturating_sub(state.pos());
                    let _ = write!(w, "{}", eta_text(left, rate_for_eta(state)));
                },
            )
    }
}

/// Bytes per second over this run: `done` bytes in `elapsed`.
pub fn run_rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs < 0.05 {
        return 0.0;
    }
    done as f64 / secs
}

/// The time left at `rate`, as `1h02m`, `3m05s` or `12s`; `?` when unknown.
pub fn eta_text(left: u64, rate: f64) -> String {
    if rate <= 0.0 {
        return if left == 0 { "0s".into() } else { "?".into() };
    }
    let secs = (left as f64 / rate).ceil() as u64;
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl Reporter for CliReporter {
    fn on_start(&self, task: &str, total: Option<u64>) {
        if self.verbose {
            self.line(&format!("VERBOSE: {task}"));
        }
        self.resumed.store(0, Ordering::Relaxed);
        if !self.bars {
            return;
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(self.bar_style(total.is_some()));
        bar.set_message(task.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        let download = *self.downloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = guard.replace(Bar { bar, download }) {
            old.bar.finish_and_clear();
        }
    }

    fn on_progress(&self, bytes: u64) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            b.bar.inc(bytes);
        }
    }

    fn on_resume(&self, bytes: u64) {
        self.resumed.fetch_add(bytes, Ordering::Relaxed);
        self.on_progress(bytes);
    }

    fn on_complete(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let complete = b.bar.length().is_some_and(|len| b.bar.position() >= len);
            if b.download && complete {
                // Drawn once more at 100%, and left on the screen; what
                // follows starts on the next line.
                b.bar.finish();
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err);
            } else {
                b.bar.finish_and_clear();
            }
        }
    }

    fn on_partial_file(&self, path: Option<&Path>) {
        *self.downloading.lock().unwrap_or_else(|p| p.into_inner()) = path.is_some();
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            b.download |= path.is_some();
        }
        if let Ok(mut p) = PARTIAL.lock() {
            *p = path.map(Path::to_path_buf);
        }
    }

    fn warn(&self, message: &str) {
        self.line(&format!("WARNING: {message}"));
    }

    fn note(&self, message: &str) {
        self.line(message);
    }

    fn verbose(&self, message: &str) {
        if self.verbose {
            self.line(&format!("VERBOSE: {message}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_count_this_run_only() {
        // 40 MiB kept from an earlier run, 4 MiB more in 2 s: 2 MiB/s.
        let rate = run_rate(4 << 20, Duration::from_secs(2));
        assert_eq!(rate, (2 << 20) as f64);
        assert_eq!(eta_text(60 << 20, rate), "30s");
        assert_eq!(eta_text(300 << 20, rate), "2m30s");
        assert_eq!(eta_text(10, 0.0), "?");
    }
}
