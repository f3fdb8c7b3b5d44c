//! The command line's reporter: progress bars on a terminal, `WARNING:` and
//! `VERBOSE:` lines on standard error, as PowerShell shows them.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use containerimage_provider::progress::Reporter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct CliReporter {
    verbose: bool,
    /// Bars only when standard error is a terminal.
    bars: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl CliReporter {
    pub fn new(verbose: bool) -> CliReporter {
        CliReporter {
            verbose,
            bars: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// Prints a line on standard error, above any progress bar.
    pub fn line(&self, text: &str) {
        let guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(bar) => bar.println(text),
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }
}

impl Reporter for CliReporter {
    fn on_start(&self, task: &str, total: Option<u64>) {
        if self.verbose {
            self.line(&format!("VERBOSE: {task}"));
        }
        if !self.bars {
            return;
        }
        let bar = match total {
            Some(n) => {
                let b = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b
            }
            None => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            }
        };
        bar.set_message(task.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = guard.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn on_progress(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            bar.inc(bytes);
        }
    }

    fn on_complete(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn warn(&self, message: &str) {
        self.line(&format!("WARNING: {message}"));
    }

    fn verbose(&self, message: &str) {
        if self.verbose {
            self.line(&format!("VERBOSE: {message}"));
        }
    }
}
