//! How long-running operations report progress, warnings and verbose detail.
//!
//! The provider calls these hooks; the command line decides what a person
//! sees (an indicatif bar on a terminal, nothing on a pipe, `-Verbose` lines).

use std::path::Path;
use std::time::Duration;

/// Receives progress and messages from provider operations.
///
/// Every method has an empty default so a caller implements only what it shows.
/// Implementations must be cheap: `on_progress` is called from hot loops and
/// from several threads at once.
pub trait Reporter: Sync {
    /// A task starts; `total` is its size in bytes when known.
    fn on_start(&self, _task: &str, _total: Option<u64>) {}
    /// `bytes` more bytes of the current task are done.
    fn on_progress(&self, _bytes: u64) {}
    /// `bytes` of the current task were done before it started (a download
    /// resumed after an earlier run): they count as done but not towards
    /// this run's rate.
    fn on_resume(&self, bytes: u64) {
        self.on_progress(bytes);
    }
    /// The current task has finished (successfully or not).
    fn on_complete(&self) {}
    /// A download writes into this partial file from now on (`Some`), or
    /// no longer does (`None`): what an interrupted run leaves to resume.
    fn on_partial_file(&self, _path: Option<&Path>) {}
    /// Something the user should know about that does not stop the operation.
    fn warn(&self, _message: &str) {}
    /// A line the user sees without asking (a download resumes, retries or
    /// waits for a silent server).
    fn note(&self, _message: &str) {}
    /// Detail shown only with `-Verbose` (URLs, paths, timings, retries).
    fn verbose(&self, _message: &str) {}
}

/// A reporter that drops everything.
pub struct Silent;

impl Reporter for Silent {}

/// `1 hour, 2 minutes, 1 second`: a duration in words, singular and plural right.
pub fn duration_words(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    format!(
        "{}, {}, {}",
        unit(s / 3600, "hour"),
        unit((s / 60) % 60, "minute"),
        unit(s % 60, "second")
    )
}

/// The line the original cmdlets printed after a download:
/// `Downloaded in 0 hours, 0 minutes, 10 seconds.`
pub fn downloaded_line(elapsed: Duration) -> String {
    format!("Downloaded in {}.", duration_words(elapsed))
}

/// A byte count for people: `47 MiB`, `3.2 GiB`, `512 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words_are_singular_and_plural() {
        assert_eq!(
            downloaded_line(Duration::from_secs(10)),
            "Downloaded in 0 hours, 0 minutes, 10 seconds."
        );
        assert_eq!(
            duration_words(Duration::from_secs(3600 + 60 + 1)),
            "1 hour, 1 minute, 1 second"
        );
        assert_eq!(
            duration_words(Duration::from_secs(2 * 3600 + 120)),
            "2 hours, 2 minutes, 0 seconds"
        );
    }

    #[test]
    fn byte_counts_for_people() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(47 << 20), "47 MiB");
        assert_eq!(human_bytes(3 << 20 | 200 << 10), "3.2 MiB");
    }
}
