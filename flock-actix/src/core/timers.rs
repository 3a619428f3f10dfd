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

/// One scheduled timer, to cancel it or reach it ([`TimerQueue::schedule_keyed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey(u64, u64);

impl<T> TimerQueue<T> {
    /// Adds `timer` due at `at_ms`. Returns the instant to (re)arm the
    /// shell's timer for, when it must change: nothing armed yet, or this
    /// one is earlier than the armed one.
    #[must_use]
    pub fn schedule(&mut self, at_ms: u64, timer: T) -> Option<u64> {
        self.schedule_keyed(at_ms, timer).1
    }

    /// As [`TimerQueue::schedule`], with the timer's key: a timer that is
    /// no longer needed (the call it bounds was answered) is cancelled with
    /// it rather than left to fire.
    #[must_use]
    pub fn schedule_keyed(&mut self, at_ms: u64, timer: T) -> (TimerKey, Option<u64>) {
        let key = (at_ms, self.next_seq);
        self.due.insert(key, timer);
        self.next_seq += 1;
        let rearm = match self.armed {
            Some(armed) if armed <= at_ms => None,
            _ => {
                self.armed = Some(at_ms);
                Some(at_ms)
            }
        };
        (TimerKey(key.0, key.1), rearm)
    }

    /// Takes timer `key` out unfired, if it is still waiting. The shell's
    /// timer stays armed: at worst it fires once for nothing and is armed
    /// for the next (never later than a waiting timer's instant).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.due.remove(&(key.0, key.1))
    }

    /// Timer `key`, if it is still waiting.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.due.get_mut(&(key.0, key.1))
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

    #[test]
    fn a_cancelled_timer_never_fires_and_the_shell_stays_armed_for_no_later() {
        let mut q = TimerQueue::default();
        let (a, arm) = q.schedule_keyed(100, "a");
        assert_eq!(arm, Some(100));
        let (b, _) = q.schedule_keyed(200, "b");
        assert_eq!(q.cancel(a), Some("a"));
        assert_eq!(q.cancel(a), None, "only once");
        *q.get_mut(b).unwrap() = "b2";
        assert_eq!(
            q.fire(100),
            (vec![], Some(200)),
            "fires for nothing, rearms"
        );
        assert_eq!(q.fire(200), (vec!["b2"], None));
        assert_eq!(q.get_mut(b), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule(u64),
        Fire(u64),
        /// Cancels the n-th timer scheduled so far (modulo), if waiting.
        Cancel(usize),
    }

    proptest! {
        /// Against a model: every timer fires exactly once, never before
        /// its instant, in time order (ties in schedule order), and the
        /// shell is always armed for the earliest waiting timer.
        #[test]
        fn every_timer_fires_once_in_order_and_never_early(
            ops in prop::collection::vec(
                prop_oneof![
                    (0u64..500).prop_map(Op::Schedule),
                    (0u64..50).prop_map(Op::Fire),
                    any::<usize>().prop_map(Op::Cancel),
                ],
                1..200,
            )
        ) {
            let mut q = TimerQueue::default();
            let mut model: Vec<(u64, usize)> = Vec::new();
            let (mut now, mut armed, mut next_id) = (0u64, None::<u64>, 0usize);
            let mut keys = Vec::new();
            for op in ops {
                match op {
                    Op::Schedule(delay) => {
                        let at = now + delay;
                        let (key, rearm) = q.schedule_keyed(at, next_id);
                        keys.push(key);
                        if let Some(rearm) = rearm {
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
                    Op::Cancel(n) if !keys.is_empty() => {
                        let n = n % keys.len();
                        let waiting = model.iter().position(|(_, id)| *id == n);
                        prop_assert_eq!(q.cancel(keys[n]), waiting.map(|_| n));
                        if let Some(i) = waiting {
                            model.remove(i);
                        }
                    }
                    Op::Cancel(_) => {}
                }
                prop_assert_eq!(q.len(), model.len());
                // Armed for no later than the earliest waiting timer (a
                // cancelled one may leave it armed earlier: a fire for
                // nothing, never a late one).
                let earliest = model.iter().map(|(at, _)| *at).min();
                prop_assert!(earliest.is_none_or(|e| armed.is_some_and(|a| a <= e)));
            }
        }
    }
}
