//! When the Registry's periodic reconciliation reads the owned list.
//!
//! Every [`RECONCILE_EVERY_MS`] the Registry reads from the replica the
//! birds this node owns and settles what runs here against it: a scan of
//! the whole registry on the replica's arbiter and a pass over every
//! hosted bird on the Registry's. It is a safety net: births, stops and
//! moves arrive as set changes and view changes, which act at once. While
//! a bulk recording streams in (a client starting a million birds), every
//! name it reads has just come as a set change, and at 1 M birds on three
//! hosts the scans were a fifth of each host's replica arbiter
//! (docs/BENCHMARKS.md, stop 20). So a periodic read is put off while many
//! names changed since the last tick, for at most [`MAX_DEFER_MS`]; a view
//! change still reads at once (that is not paced here).
//!
//! A *settled* node is put off the same way (stop 22): no set change has
//! been fed since the last complete read, and no bird started from a
//! handoff's announce waits for the set to confirm it. A read then would
//! list what the last complete one listed, less what view changes moved
//! away (the core stopped those on the view input) plus the gained shards'
//! names (read when they were gained): the core would find nothing to do.
//! It cost a host of 333k birds ≈ 0.2 s of CPU on two arbiters every 5 s
//! (docs/BENCHMARKS.md, stop 22), and on the seed of a joining node it
//! fell in the middle of the joiner's transfer. The bound still forces a
//! read every [`MAX_DEFER_MS`]: the net stays for what nothing announced.

/// The period of the reconciliation.
pub const RECONCILE_EVERY_MS: u64 = 5_000;

/// Names changed since the last tick above which the set counts as busy.
/// Far above what a service starts or stops in 5 s in steady state, or a
/// test does; a bulk `start_many` crosses it.
pub const BUSY_NAMES: usize = 10_000;

/// The longest a periodic read is put off.
pub const MAX_DEFER_MS: u64 = 6 * RECONCILE_EVERY_MS;

/// Counts set changes between ticks and answers each tick.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    changed: usize,
    held_since: Option<u64>,
}

impl Pace {
    /// `names` names were added, changed or removed.
    pub fn changed(&mut self, names: usize) {
        self.changed = self.changed.saturating_add(names);
    }

    /// On a periodic tick at `now_ms`: whether to read the owned list now.
    /// `settled`: no set change was fed since the last complete read and
    /// no announced bird awaits confirmation (see the module docs).
    pub fn due(&mut self, now_ms: u64, settled: bool) -> bool {
        let busy = std::mem::take(&mut self.changed) >= BUSY_NAMES;
        if !busy && !settled {
            self.held_since = None;
            return true;
        }
        let since = *self.held_since.get_or_insert(now_ms);
        if now_ms >= since.saturating_add(MAX_DEFER_MS) {
            self.held_since = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (names changed before the tick, tick time, read now?)
    fn run(steps: &[(usize, u64, bool)]) {
        let mut pace = Pace::default();
        for (i, &(names, at, want)) in steps.iter().enumerate() {
            pace.changed(names);
            assert_eq!(
                pace.due(at, false),
                want,
                "step {i}: {names} names at {at} ms"
            );
        }
    }

    #[test]
    fn a_settled_node_is_read_only_at_the_bound_and_at_once_when_unsettled() {
        let mut pace = Pace::default();
        let tick = |i: u64| i * RECONCILE_EVERY_MS;
        // Settled from the first tick: put off until the bound.
        for i in 1..=6 {
            assert!(!pace.due(tick(i), true), "tick {i}");
        }
        assert!(pace.due(tick(7), true), "the bound forces a read");
        assert!(!pace.due(tick(8), true));
        // A set change (not settled): read at the next tick.
        pace.changed(1);
        assert!(pace.due(tick(9), false));
        assert!(!pace.due(tick(10), true), "settled again");
    }

    #[test]
    fn a_quiet_or_lightly_changing_set_is_read_every_tick() {
        run(&[
            (0, 5_000, true),
            (3, 10_000, true),
            (BUSY_NAMES - 1, 15_000, true),
        ]);
    }

    #[test]
    fn a_bulk_recording_puts_reads_off_until_it_ends() {
        run(&[
            (BUSY_NAMES, 5_000, false),
            (300_000, 10_000, false),
            (300_000, 15_000, false),
            // The recording ended: read at the next tick.
            (40, 20_000, true),
            (BUSY_NAMES, 25_000, false),
        ]);
    }

    #[test]
    fn a_read_is_never_put_off_longer_than_the_bound() {
        let mut steps: Vec<(usize, u64, bool)> = (1..=6)
            .map(|i| (100_000, i * RECONCILE_EVERY_MS, false))
            .collect();
        // Held since 5 s: due again at 35 s, then held anew.
        steps.push((100_000, 7 * RECONCILE_EVERY_MS, true));
        steps.push((100_000, 8 * RECONCILE_EVERY_MS, false));
        run(&steps);
    }
}
