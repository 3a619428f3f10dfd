//! The handoffs a node has been told to make and has not started yet.
//!
//! A view change can move thousands of birds off a node at once (a leave
//! moves all of them). Stopping a bird and taking its state is a message to
//! its arbiter; doing all of them in one turn of the Registry held every
//! state back until the last bird was asked (30–100 ms for 1,700 birds on a
//! loaded 2-vCPU machine) and the Registry answered nothing meanwhile. So
//! the shell works them off in slices, oldest first, and a bird the new
//! owner has a message waiting for ([`crate::core::lifecycle::Effect::Want`]
//! on that side) is taken out of the queue and handed over at once.
//!
//! Pure: no actix, no time; the Registry owns one and performs what it
//! returns.

use super::{BirdSpec, Name};
use std::collections::{HashMap, VecDeque};

/// One handoff to make: stop `instance` (if any) of the bird, take its state
/// and send it to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The bird.
    pub name: Name,
    /// The instance running here, if any.
    pub instance: Option<u64>,
    /// Its new owner.
    pub to: String,
    /// Its kind and start arguments, announced to the new owner first.
    pub spec: Option<BirdSpec>,
}

/// Handoffs not started yet, in the order they were decided.
#[derive(Debug, Default)]
pub struct OutgoingQueue {
    order: VecDeque<Name>,
    due: HashMap<Name, (Option<u64>, String, Option<BirdSpec>)>,
}

impl OutgoingQueue {
    /// Queues a handoff. A later one for the same bird replaces it (the
    /// lifecycle core decided again; the last decision stands), keeping
    /// its place.
    pub fn push(&mut self, name: Name, instance: Option<u64>, to: String, spec: Option<BirdSpec>) {
        if self
            .due
            .insert(name.clone(), (instance, to, spec))
            .is_none()
        {
            self.order.push_back(name);
        }
    }

    /// Takes `name`'s handoff out of the queue, if it is queued: it is made
    /// now (asked for by its new owner, or another effect for that bird
    /// must follow it).
    pub fn take(&mut self, name: &str) -> Option<Outgoing> {
        let (name, (instance, to, spec)) = self.due.remove_entry(name)?;
        Some(Outgoing {
            name,
            instance,
            to,
            spec,
        })
    }

    /// The next `n` handoffs, oldest first.
    pub fn next_slice(&mut self, n: usize) -> Vec<Outgoing> {
        let mut slice = Vec::with_capacity(n.min(self.due.len()));
        while slice.len() < n {
            let Some(name) = self.order.pop_front() else {
                break;
            };
            // Names taken out of turn leave a stale entry in `order`.
            if let Some(out) = self.take(&name) {
                slice.push(out);
            }
        }
        if self.due.is_empty() {
            self.order.clear();
        }
        slice
    }

    /// Handoffs not started yet.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> Name {
        Name::from(s)
    }

    fn names(slice: &[Outgoing]) -> Vec<&str> {
        slice.iter().map(|o| &*o.name).collect()
    }

    #[test]
    fn handoffs_come_out_in_slices_oldest_first() {
        let mut q = OutgoingQueue::default();
        for b in ["a", "b", "c", "d", "e"] {
            q.push(n(b), Some(1), "n2".into(), None);
        }
        assert_eq!(names(&q.next_slice(2)), ["a", "b"]);
        assert_eq!(names(&q.next_slice(2)), ["c", "d"]);
        assert_eq!(names(&q.next_slice(2)), ["e"]);
        assert!(q.next_slice(2).is_empty() && q.is_empty());
    }

    #[test]
    fn a_wanted_bird_is_taken_out_of_turn_and_not_handed_off_twice() {
        let mut q = OutgoingQueue::default();
        for b in ["a", "b", "c"] {
            q.push(n(b), Some(7), "n2".into(), None);
        }
        let wanted = q.take("c").expect("queued");
        assert_eq!((wanted.instance, wanted.to.as_str()), (Some(7), "n2"));
        assert!(q.take("c").is_none(), "taken once");
        assert_eq!(names(&q.next_slice(10)), ["a", "b"]);
        assert!(q.take("zzz").is_none(), "a name never queued");
    }

    #[test]
    fn a_second_decision_for_a_queued_bird_replaces_the_first_in_its_place() {
        let mut q = OutgoingQueue::default();
        q.push(n("a"), Some(1), "n2".into(), None);
        q.push(n("b"), Some(1), "n2".into(), None);
        q.push(n("a"), None, "n3".into(), None);
        let slice = q.next_slice(10);
        assert_eq!(names(&slice), ["a", "b"]);
        assert_eq!((slice[0].instance, slice[0].to.as_str()), (None, "n3"));
    }

    proptest! {
        /// Against a model (a map of what is queued): every queued handoff
        /// comes out exactly once, with the last decision made for it, and
        /// a slice is as long as it can be.
        #[test]
        fn every_queued_handoff_comes_out_exactly_once_with_its_last_decision(
            ops in proptest::collection::vec((0u8..3, 0u8..8, 1usize..4), 1..80),
        ) {
            let mut q = OutgoingQueue::default();
            let mut model: HashMap<String, (Option<u64>, String)> = HashMap::new();
            let check = |o: Outgoing, model: &mut HashMap<_, _>| {
                let want = model.remove(&*o.name);
                prop_assert_eq!(want, Some((o.instance, o.to)));
                Ok(())
            };
            for (i, (op, bird, k)) in ops.into_iter().enumerate() {
                let name = format!("b{bird}");
                match op {
                    0 => {
                        let decision = (Some(i as u64), format!("n{k}"));
                        model.insert(name.clone(), decision.clone());
                        q.push(n(&name), decision.0, decision.1, None);
                    }
                    1 => match q.take(&name) {
                        Some(o) => check(o, &mut model)?,
                        None => prop_assert!(!model.contains_key(&name)),
                    },
                    _ => {
                        let slice = q.next_slice(k);
                        prop_assert_eq!(slice.len(), k.min(model.len()));
                        for o in slice {
                            check(o, &mut model)?;
                        }
                    }
                }
                prop_assert_eq!(q.len(), model.len());
            }
            for o in q.next_slice(usize::MAX) {
                check(o, &mut model)?;
            }
            prop_assert!(model.is_empty() && q.is_empty());
        }
    }
}
