//! What the nodes log at error level, per scenario: the simulation's
//! invariants about loud failures (a twin process refused with an error,
//! issue #9 item 6) read it.
//!
//! flock-actix logs through `tracing`, whose `log` feature forwards every
//! event to the `log` crate when no tracing subscriber is installed (the
//! simulation installs none). Every scenario runs all its nodes on its own
//! thread, so a thread-local buffer holds exactly that scenario's lines.
#![allow(unreachable_pub)]

use std::cell::RefCell;
use std::sync::Once;

/// Most error lines kept per scenario (the oldest are dropped).
const MAX_LINES: usize = 1_000;

/// Lines logged on this thread: how many in all, and the last
/// [`MAX_LINES`].
#[derive(Default)]
struct Lines {
    count: usize,
    last: std::collections::VecDeque<String>,
}

thread_local! {
    static ERRORS: RefCell<Lines> = RefCell::new(Lines::default());
}

struct Capture {
    /// `FLOCK_SIM_LOG`'s logger, if asked for.
    forward: Option<env_logger::Logger>,
}

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() == log::Level::Error
            || self.forward.as_ref().is_some_and(|f| f.enabled(metadata))
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() == log::Level::Error {
            let line = record.args().to_string();
            ERRORS.with(|e| {
                let mut e = e.borrow_mut();
                if e.last.len() >= MAX_LINES {
                    e.last.pop_front();
                }
                e.last.push_back(line);
                e.count += 1;
            });
        }
        if let Some(forward) = &self.forward
            && forward.matches(record)
        {
            forward.log(record);
        }
    }

    fn flush(&self) {
        if let Some(forward) = &self.forward {
            forward.flush();
        }
    }
}

/// Installs the capture once per process (and `FLOCK_SIM_LOG`'s filter).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let forward = std::env::var("FLOCK_SIM_LOG").ok().map(|level| {
            env_logger::Builder::new()
                .parse_filters(&level)
                .is_test(true)
                .build()
        });
        let max = forward.as_ref().map_or(log::LevelFilter::Error, |f| {
            f.filter().max(log::LevelFilter::Error)
        });
        if log::set_boxed_logger(Box::new(Capture { forward })).is_ok() {
            log::set_max_level(max);
        }
    });
}

/// How many error lines this thread's scenario has logged so far.
pub fn mark() -> usize {
    ERRORS.with(|e| e.borrow().count)
}

/// The error lines logged on this thread since `mark` (at most the last
/// [`MAX_LINES`]).
pub fn since(mark: usize) -> Vec<String> {
    ERRORS.with(|e| {
        let e = e.borrow();
        let new = e.count.saturating_sub(mark).min(e.last.len());
        e.last.iter().skip(e.last.len() - new).cloned().collect()
    })
}
