//! How long-running operations report progress, warnings and verbose detail.
//!
//! The provider calls these hooks; the command line decides what a person
//! sees (an indicatif bar on a terminal, nothing on a pipe, `-Verbose` lines).

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
    /// The current task has finished (successfully or not).
    fn on_complete(&self) {}
    /// Something the user should know about that does not stop the operation.
    fn warn(&self, _message: &str) {}
    /// Detail shown only with `-Verbose` (URLs, paths, timings, retries).
    fn verbose(&self, _message: &str) {}
}

/// A reporter that drops everything.
pub struct Silent;

impl Reporter for Silent {}
