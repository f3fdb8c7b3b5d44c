//! Says so while a server sends nothing: a stalled transfer or a server that
//! accepted the connection but does not answer is reported while waiting,
//! not only when the read timeout finally gives up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::progress::Reporter;

/// When the current HTTP attempt last received anything.
pub(super) struct Watch {
    started: Instant,
    /// Milliseconds since `started` of the last sign of life.
    last: AtomicU64,
    /// An HTTP attempt is waiting on the server (not pausing between retries).
    active: AtomicBool,
    /// Who is being waited for, e.g. `127.0.0.1:8080`.
    host: Mutex<String>,
    done: Mutex<bool>,
    wake: Condvar,
}

impl Watch {
    pub(super) fn new() -> Watch {
        Watch {
            started: Instant::now(),
            last: AtomicU64::new(0),
            active: AtomicBool::new(false),
            host: Mutex::new(String::new()),
            done: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Something arrived (or an attempt started): the silence starts over.
    pub(super) fn alive(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// An attempt on `host` starts waiting for the server.
    pub(super) fn begin(&self, host: &str) {
        if let Ok(mut h) = self.host.lock() {
            host.clone_into(&mut h);
        }
        self.alive();
        self.active.store(true, Ordering::Relaxed);
    }

    /// The attempt is over (finished, failed, or pausing before a retry).
    pub(super) fn end(&self) {
        self.active.store(false, Ordering::Relaxed);
    }

    /// Runs `work` while a second thread reports every `notice` of silence
    /// (up to `limit`, the read timeout, when the attempt gives up).
    pub(super) fn around<T>(
        &self,
        label: &str,
        notice: Duration,
        limit: Duration,
        reporter: &dyn Reporter,
        work: impl FnOnce() -> T,
    ) -> T {
        std::thread::scope(|scope| {
            scope.spawn(|| self.watch(label, notice, limit, reporter));
            let result = work();
            if let Ok(mut done) = self.done.lock() {
                *done = true;
            }
            self.wake.notify_all();
            result
        })
    }

    fn watch(&self, label: &str, notice: Duration, limit: Duration, reporter: &dyn Reporter) {
        let tick = (notice / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let notice_ms = u64::try_from(notice.as_millis()).unwrap_or(u64::MAX).max(1);
        // The silence (as a multiple of `notice`) last reported.
        let mut reported = 0u64;
        let mut last_seen = u64::MAX;
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        while !*done {
            done = match self.wake.wait_timeout(done, tick) {
                Ok((guard, _)) => guard,
                Err(_) => return,
            };
            if *done {
                break;
            }
            let last = self.last.load(Ordering::Relaxed);
            if last != last_seen {
                last_seen = last;
                reported = 0;
            }
            if !self.active.load(Ordering::Relaxed) {
                continue;
            }
            let silent = self.now_ms().saturating_sub(last);
            let step = silent / notice_ms;
            if step > reported {
                reported = step;
                let host = self.host.lock().map(|h| h.clone()).unwrap_or_default();
                reporter.note(&format!(
                    "{label}: nothing received from {host} for {} s; still waiting (gives up and retries after {} s of silence)",
                    silent / 1000,
                    limit.as_secs_f64().ceil() as u64
                ));
            }
        }
    }
}
