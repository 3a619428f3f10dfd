//! Flow control of a data link's sending end (docs/ARCHITECTURE.md §26).
//!
//! The receiving end of a data link reads on the thread that runs the birds
//! it feeds, so under a burst it can read slower than the sender writes.
//! A link used to close once its unsent bytes passed its bound, losing what
//! it held. [`Flow`] decides instead, with no I/O, what happens to each
//! message the link is given:
//!
//! - written at once while the writer's unsent bytes are below `high` and
//!   nothing is held (nothing may overtake a held message);
//! - otherwise *held*, in order, until the writer has drained to `low`;
//!   then held messages are written again, in order, one at a time against
//!   the writer's real count, until the unsent bytes reach `high`
//!   (hysteresis, so a link near its mark does not switch on every frame);
//! - refused only when what is held would pass `max_held_bytes`: the shell
//!   fails a refused call with a clear error, and counts and logs (rate
//!   limited, see [`Throttle`]) a refused cast.
//!
//! The writer's unsent bytes thus stay below `high` plus one frame, and what
//! is held below `max_held_bytes`.

use std::collections::VecDeque;

/// Tuning of a [`Flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Unsent bytes at or above which new messages are held.
    pub high: usize,
    /// Unsent bytes at or below which held messages are written again.
    pub low: usize,
    /// Estimated bytes of held messages past which a message is refused.
    pub max_held_bytes: usize,
}

impl FlowConfig {
    /// The marks for a link whose peer accepts frames of `max_frame` bytes,
    /// holding at most `max_held_bytes`: `high` is at most `max_frame` (so
    /// unsent bytes stay under the link's hard bound of two frames) and at
    /// most 1 MiB (more buffered bytes add latency, not throughput).
    pub fn for_link(max_frame: usize, max_held_bytes: usize) -> Self {
        let high = max_frame.clamp(1, 1 << 20);
        FlowConfig {
            high,
            low: high / 4,
            max_held_bytes,
        }
    }
}

/// What becomes of a message offered to a [`Flow`].
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// Write it now.
    Write(T),
    /// Held; [`Flow::drained`] gives it back when the writer has room.
    Held,
    /// Too much is held already: fail it.
    Refused(T),
}

/// The sending end's flow control, for one data link.
#[derive(Debug)]
pub struct Flow<T> {
    config: FlowConfig,
    /// `(estimated bytes, message)`, in the order they were offered.
    held: VecDeque<(usize, T)>,
    held_bytes: usize,
    /// Between reaching `low` and reaching `high` again.
    releasing: bool,
}

impl<T> Flow<T> {
    /// Nothing held.
    pub fn new(config: FlowConfig) -> Self {
        Flow {
            config,
            held: VecDeque::new(),
            held_bytes: 0,
            releasing: false,
        }
    }

    /// The marks.
    pub fn config(&self) -> FlowConfig {
        self.config
    }

    /// A message of about `bytes`, while the writer has `unsent` bytes.
    pub fn offer(&mut self, bytes: usize, item: T, unsent: usize) -> Admit<T> {
        if self.held.is_empty() && unsent < self.config.high {
            return Admit::Write(item);
        }
        if self.held_bytes.saturating_add(bytes) > self.config.max_held_bytes {
            return Admit::Refused(item);
        }
        self.held.push_back((bytes, item));
        self.held_bytes += bytes;
        Admit::Held
    }

    /// The writer has `unsent` bytes left: the next held message to write
    /// now, if any. Releasing starts once `unsent` is at or below `low` and
    /// goes on, one message at a time with the writer's real count after
    /// each (estimates may be off), until `unsent` reaches `high` or
    /// nothing is held; the shell then waits for `low` again.
    pub fn drained(&mut self, unsent: usize) -> Option<T> {
        if !self.releasing {
            if unsent > self.config.low {
                return None;
            }
            self.releasing = true;
        }
        if unsent >= self.config.high {
            self.releasing = false;
            return None;
        }
        let Some((bytes, item)) = self.held.pop_front() else {
            self.releasing = false;
            return None;
        };
        self.held_bytes -= bytes;
        Some(item)
    }

    /// Whether messages are held (the shell then waits for the writer to
    /// drain to `low` and calls [`Flow::drained`] until it says `None`).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Estimated bytes held.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The link is closing: everything held, in order, to be failed.
    pub fn close(&mut self) -> Vec<T> {
        self.held_bytes = 0;
        self.releasing = false;
        self.held.drain(..).map(|(_, item)| item).collect()
    }
}

/// Rate-limits a repeated log line: at most one per `every_ms`, saying how
/// many occurrences it covers.
#[derive(Debug, Clone)]
pub struct Throttle {
    every_ms: u64,
    last_ms: Option<u64>,
    pending: u64,
}

impl Throttle {
    /// At most one report per `every_ms`.
    pub fn new(every_ms: u64) -> Self {
        Throttle {
            every_ms,
            last_ms: None,
            pending: 0,
        }
    }

    /// One more occurrence at `now_ms`: `Some(n)` if it is time to log,
    /// `n` occurrences (this one included) since the last report.
    pub fn hit(&mut self, now_ms: u64) -> Option<u64> {
        self.pending += 1;
        let due = self
            .last_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= self.every_ms);
        due.then(|| {
            self.last_ms = Some(now_ms);
            std::mem::take(&mut self.pending)
        })
    }
}
