//! Forgiving supervision: when to restart a bird that panicked.
//!
//! A bird that panics (or is torn down with its arbiter while the node
//! runs) is hatched again from its start arguments after a
//! delay that doubles with every panic in a row, from
//! [`Backoff::min_ms`] up to [`Backoff::max_ms`]. A bird that ran for
//! [`Backoff::stable_after_ms`] since its last start counts as healthy again
//! and its next panic restarts it after the minimum delay. There is no limit
//! on restarts: flock-actix never gives up on a bird that is supposed to be
//! alive (its owner node may only stop hosting it, or a `stop` may remove it).

use crate::error::{Error, Result};

/// The restart delay policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart after a healthy run.
    pub min_ms: u64,
    /// The largest delay.
    pub max_ms: u64,
    /// A run at least this long resets the delay to `min_ms`.
    pub stable_after_ms: u64,
}

impl Default for Backoff {
    /// 10 ms doubling to 5 s; a run of 10 s resets it.
    fn default() -> Self {
        Backoff {
            min_ms: 10,
            max_ms: 5_000,
            stable_after_ms: 10_000,
        }
    }
}

impl Backoff {
    /// Checks `0 < min_ms <= max_ms`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the values.
    pub fn validate(&self) -> Result<()> {
        if self.min_ms == 0 || self.max_ms < self.min_ms {
            return Err(Error::InvalidConfig(format!(
                "restart backoff must satisfy 0 < min ({}) <= max ({})",
                self.min_ms, self.max_ms
            )));
        }
        Ok(())
    }
}

/// The restart history of one bird on this node, in one word: every
/// hosted bird has one (in its `core::lifecycle` entry), and two fields
/// padded to 16 bytes made that entry 8 bytes larger (issue #10 target 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restarts {
    /// When the bird was last (re)started, in the high 56 bits (ms: more
    /// than two million years), and its panics in a row without a stable
    /// run in between, in the low 8 (saturating: the delay is capped long
    /// before 255 doublings).
    bits: u64,
}

const STREAK_BITS: u32 = 8;
const STREAK_MAX: u64 = (1 << STREAK_BITS) - 1;

impl Restarts {
    /// A bird started at `now_ms` with a clean history.
    pub fn started(now_ms: u64) -> Self {
        Restarts {
            bits: now_ms << STREAK_BITS,
        }
    }

    /// Panics in a row without a stable run in between.
    pub fn streak(&self) -> u32 {
        (self.bits & STREAK_MAX) as u32
    }

    /// When the bird was last (re)started.
    pub fn started_ms(&self) -> u64 {
        self.bits >> STREAK_BITS
    }

    fn set(&mut self, started_ms: u64, streak: u32) {
        self.bits = (started_ms << STREAK_BITS) | u64::from(streak).min(STREAK_MAX);
    }

    /// The bird panicked at `now_ms`: returns the delay before its restart.
    pub fn on_panic(&mut self, policy: &Backoff, now_ms: u64) -> u64 {
        let started_ms = self.started_ms();
        let mut streak = self.streak();
        if now_ms.saturating_sub(started_ms) >= policy.stable_after_ms {
            streak = 0;
        }
        let factor = 1u64.checked_shl(streak.min(63)).unwrap_or(u64::MAX);
        let delay = policy.min_ms.saturating_mul(factor).min(policy.max_ms);
        self.set(started_ms, streak.saturating_add(1));
        delay
    }

    /// The bird was restarted at `now_ms`.
    pub fn restarted(&mut self, now_ms: u64) {
        let streak = self.streak();
        self.set(now_ms, streak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_its_start_time_and_saturates_its_streak() {
        let policy = Backoff::default();
        let mut r = Restarts::started(1 << 50);
        for _ in 0..300 {
            r.on_panic(&policy, 1 << 50);
        }
        assert_eq!(r.streak(), 255);
        assert_eq!(r.started_ms(), 1 << 50);
        r.restarted((1 << 50) + 7);
        assert_eq!((r.started_ms(), r.streak()), ((1 << 50) + 7, 255));
        assert_eq!(r.on_panic(&policy, (1 << 50) + 7), policy.max_ms);
    }

    #[test]
    fn restart_delay_doubles_with_each_panic_in_a_row() {
        let policy = Backoff::default();
        let mut r = Restarts::started(0);
        let delays: Vec<u64> = (0..12)
            .map(|i| {
                let d = r.on_panic(&policy, i * 10);
                r.restarted(i * 10 + d);
                d
            })
            .collect();
        assert_eq!(&delays[..5], &[10, 20, 40, 80, 160]);
        assert_eq!(*delays.last().unwrap(), 5_000, "capped at max");
    }

    #[test]
    fn a_stable_run_resets_the_delay() {
        let policy = Backoff::default();
        let mut r = Restarts::started(0);
        for _ in 0..5 {
            r.on_panic(&policy, 0);
        }
        r.restarted(1_000);
        assert_eq!(
            r.on_panic(&policy, 1_000 + policy.stable_after_ms),
            policy.min_ms
        );
    }

    #[test]
    fn never_gives_up_and_never_overflows() {
        let policy = Backoff::default();
        let mut r = Restarts::started(0);
        for _ in 0..10_000 {
            assert!(r.on_panic(&policy, 0) <= policy.max_ms);
        }
    }

    #[test]
    fn an_inverted_policy_is_rejected() {
        let bad = Backoff {
            min_ms: 100,
            max_ms: 10,
            ..Backoff::default()
        };
        assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
    }
}
