//! Many timers behind one: the deadlines an actor asked for, kept in order,
//! so that the actor arms a single runtime timer for the earliest.
//!
//! Why: an actix `run_later` is an item of the actor's context, and the
//! context polls every item each time it wakes. The Registry asked for one
//! timer per bird awaiting its state (and per parked message, per idle
//! bird); a node receiving 1,600 moved birds then polled 1,600 timers for
//! every message it handled, and measured its own thread blocked for
//! 110–130 ms while its callers waited. With this queue the context holds
//! one timer whatever the number of deadlines.
//!
//! Pure: times are milliseconds passed in; the shell arms and fires.

use std::collections::BTreeMap;

/// Deadlines in time order; timers of one instant in the order they were
/// scheduled.
#[derive(Debug)]
pub struct TimerQueue<T> {
    due: BTreeMap<(u64, u64), T>,
    next_seq: u64,
    /// The instant the shell's one timer is armed for, if any.
    armed: Option<u64>,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            due: BTreeMap::new(),
            next_seq: 0,
            armed: None,
        }
    }
}

impl<T> TimerQueue<T> {
    /// Adds `timer` due at `at_ms`. Returns the instant to (re)arm the
    /// shell's timer for, when it must change: nothing armed yet, or this
    /// one is earlier than the armed one.
    #[must_use]
    pub fn schedule(&mut self, at_ms: u64, timer: T) -> Option<u64> {
        self.due.insert((at_ms, self.next_seq), timer);
        self.next_seq += 1;
        match self.armed {
            Some(armed) if armed <= at_ms => None,
            _ => {
                self.armed = Some(at_ms);
                Some(at_ms)
            }
        }
    }

    /// The shell's timer fired at `now_ms`: every timer due by then, in
    /// time order, and the instant to arm for next (the earliest left).
    pub fn fire(&mut self, now_ms: u64) -> (Vec<T>, Option<u64>) {
        let later = self.due.split_off(&(now_ms.saturating_add(1), 0));
        let fired = std::mem::replace(&mut self.due, later);
        self.armed = self.due.keys().next().map(|(at, _)| *at);
        (fired.into_values().collect(), self.armed)
    }

    /// Timers not fired yet.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether no timer waits.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_an_earlier_timer_rearms_the_shell() {
        let mut q = TimerQueue::default();
        assert_eq!(q.schedule(100, "a"), Some(100), "nothing armed yet");
        assert_eq!(q.schedule(150, "b"), None, "later than the armed one");
        assert_eq!(q.schedule(100, "c"), None, "same instant as the armed one");
        assert_eq!(q.schedule(40, "d"), Some(40), "earlier: rearmed");
        assert_eq!(q.fire(39), (vec![], Some(40)), "a shell timer a tick early");
        assert_eq!(q.fire(120), (vec!["d", "a", "c"], Some(150)));
        assert_eq!(q.fire(150), (vec!["b"], None));
        assert_eq!(
            q.schedule(10, "e"),
            Some(10),
            "nothing armed after the last"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule(u64),
        Fire(u64),
    }

    proptest! {
        /// Against a model: every timer fires exactly once, never before
        /// its instant, in time order (ties in schedule order), and the
        /// shell is always armed for the earliest waiting timer.
        #[test]
        fn every_timer_fires_once_in_order_and_never_early(
            ops in prop::collection::vec(
                prop_oneof![(0u64..500).prop_map(Op::Schedule), (0u64..50).prop_map(Op::Fire)],
                1..200,
            )
        ) {
            let mut q = TimerQueue::default();
            let mut model: Vec<(u64, usize)> = Vec::new();
            let (mut now, mut armed, mut next_id) = (0u64, None::<u64>, 0usize);
            for op in ops {
                match op {
                    Op::Schedule(delay) => {
                        let at = now + delay;
                        if let Some(rearm) = q.schedule(at, next_id) {
                            prop_assert!(armed.is_none_or(|a| rearm < a));
                            armed = Some(rearm);
                        }
                        model.push((at, next_id));
                        next_id += 1;
                    }
                    Op::Fire(step) => {
                        now += step;
                        let (fired, next) = q.fire(now);
                        let mut want: Vec<(u64, usize)> =
                            model.iter().copied().filter(|(at, _)| *at <= now).collect();
                        want.sort();
                        model.retain(|(at, _)| *at > now);
                        prop_assert_eq!(fired, want.iter().map(|(_, id)| *id).collect::<Vec<_>>());
                        prop_assert_eq!(next, model.iter().map(|(at, _)| *at).min());
                        armed = next;
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(armed, model.iter().map(|(at, _)| *at).min());
            }
        }
    }
}
