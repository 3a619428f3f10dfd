//! How long a call waited before the data link that carries it was read
//! (docs/ARCHITECTURE.md §32).
//!
//! The accepting end of a data link reads on the thread of the birds it
//! feeds. While one of them blocks that thread, calls wait unread in the
//! socket, and a call's deadline (`timeout_ms`, relative) used to start only
//! when it was read: a call whose caller had long given up then ran late.
//! A control link does not have the problem (its reader has a thread of its
//! own), so data links could not be the default.
//!
//! The fix measures the wait. The opening end writes a *stamp* (its own
//! monotonic clock, in µs) when the link comes up and before a call
//! whenever [`STAMP_EVERY_US`] has passed since its last one, so a call is
//! written at most that long after the stamp before it. The accepting end
//! keeps, per link, an estimate of the offset between the two clocks: the
//! minimum over stamps of `received − sent` (NTP's minimum filter, over two
//! windows so that it follows a slow drift). That minimum is the true offset
//! plus the smallest delay seen, never less; so the estimated age of a call,
//! `received − offset − stamp − STAMP_EVERY_US`, is never more than the
//! time since it was written, whatever the clocks, the latency or the
//! blocking (the proptest in `age_tests`). It is short of it by at most the
//! smallest one-way delay plus [`STAMP_EVERY_US`], a millisecond or two,
//! far below deadlines of hundreds of milliseconds. A call whose estimated
//! age already reaches its deadline is answered with a timeout and never
//! reaches its bird; any other runs with what is left of its deadline.
//!
//! Every error goes one way: a stamp read late, a link that saw no prompt
//! stamp, a call that waited in the sender's own queues, all make the age
//! look smaller, so a call is at worst run late as before, never dropped
//! while its caller still waits.
//!
//! The stamp travels as a `Cast` of the reserved kind [`SYSTEM_KIND`]
//! (ARCHITECTURE §31): a node of an earlier build (with data links switched
//! on) hands it to its Registry, which drops an unknown system cast, so no
//! frame variant is added and no link closes in a rolling upgrade.

/// The kind of the flock's own casts (no bird kind starts with a NUL byte).
pub const SYSTEM_KIND: &str = "\0flock";

/// The tag of a stamp; the payload is the sender's clock in µs, 8 bytes
/// big-endian.
pub const SENT_AT_TAG: &str = "sent-at";

/// The most time between a stamp and a call written after it: a call is
/// preceded by a fresh stamp once this has passed since the last.
pub const STAMP_EVERY_US: u64 = 1_000;

/// How long one window of the offset's minimum filter lasts: the estimate
/// is the minimum over the current window and the previous one, so it
/// forgets samples at most two windows old (a drift of 100 ppm moves the
/// offset by 2 ms in that time).
pub const WINDOW_US: u64 = 10_000_000;

/// The stamp's payload.
pub fn encode_stamp(sent_us: u64) -> Vec<u8> {
    sent_us.to_be_bytes().to_vec()
}

/// The sender's clock in a stamp's payload, if it is one.
pub fn decode_stamp(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.try_into().ok()?))
}

/// The opening end: when to write a stamp.
#[derive(Debug, Default, Clone)]
pub struct Stamper {
    last: Option<u64>,
}

impl Stamper {
    /// The link is up at `now_us`: the stamp to write at once.
    pub fn opened(&mut self, now_us: u64) -> u64 {
        self.last = Some(now_us);
        now_us
    }

    /// A call is about to be written at `now_us`: the stamp to write before
    /// it, if the last one is [`STAMP_EVERY_US`] old or more (or none was
    /// written).
    pub fn before_call(&mut self, now_us: u64) -> Option<u64> {
        match self.last {
            Some(last) if now_us.saturating_sub(last) < STAMP_EVERY_US => None,
            _ => Some(self.opened(now_us)),
        }
    }
}

/// What to do with a call read from a data link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to its bird, with this deadline (what is left of its own).
    Run {
        /// Milliseconds left, rounded up.
        timeout_ms: u32,
    },
    /// Its caller has given up already: answer with a timeout, do not run it.
    Late {
        /// How long it has waited at least, in milliseconds.
        waited_ms: u64,
    },
}

/// The accepting end: the clock offset of one link and its last stamp.
#[derive(Debug, Clone, Default)]
pub struct Ages {
    /// Start (local µs) and minimum of the current window.
    current: Option<(u64, i128)>,
    /// Minimum of the last window that had samples before the current one.
    previous: Option<i128>,
    /// The sender's clock in the last stamp read.
    last_stamp: Option<u64>,
}

impl Ages {
    /// A stamp `sent_us` (sender's clock) was read at `now_us` (ours).
    pub fn stamped(&mut self, sent_us: u64, now_us: u64) {
        let sample = i128::from(now_us) - i128::from(sent_us);
        self.current = Some(match self.current {
            Some((start, best)) if now_us.saturating_sub(start) < WINDOW_US => {
                (start, best.min(sample))
            }
            Some((_, best)) => {
                self.previous = Some(best);
                (now_us, sample)
            }
            None => (now_us, sample),
        });
        self.last_stamp = Some(sent_us);
    }

    /// The estimated offset (our clock minus the sender's, plus the
    /// smallest delay seen), if a stamp was read.
    pub fn offset(&self) -> Option<i128> {
        let (_, best) = self.current?;
        Some(self.previous.map_or(best, |p| p.min(best)))
    }

    /// How long, at least, a call read at `now_us` has waited since it was
    /// written, in µs (0 without a stamp).
    pub fn age_us(&self, now_us: u64) -> u64 {
        let (Some(offset), Some(stamp)) = (self.offset(), self.last_stamp) else {
            return 0;
        };
        let age = i128::from(now_us) - offset - i128::from(stamp) - i128::from(STAMP_EVERY_US);
        u64::try_from(age.max(0)).unwrap_or(u64::MAX)
    }

    /// The verdict on a call of deadline `timeout_ms` read at `now_us`.
    pub fn call(&self, timeout_ms: u32, now_us: u64) -> Verdict {
        let age = self.age_us(now_us);
        let deadline = u64::from(timeout_ms) * 1_000;
        if age == 0 {
            Verdict::Run { timeout_ms }
        } else if age >= deadline {
            Verdict::Late {
                waited_ms: age / 1_000,
            }
        } else {
            let left_ms = (deadline - age).div_ceil(1_000);
            Verdict::Run {
                timeout_ms: u32::try_from(left_ms).unwrap_or(timeout_ms),
            }
        }
    }
}
