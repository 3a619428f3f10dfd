//! Which part of the owned set the Registry reads next (stop 22).
//!
//! A view change can make this node the owner of names only in the shards
//! it gains ([`crate::core::placement::KindPlacement::gained`]): a name's
//! shard never changes, and the names it loses are stopped by the core's
//! view input without any read. So after a view change only the names of
//! the gained shards are read, and nothing at all when none is gained (a
//! host that hands a quarter of its shards to a joiner). The periodic read
//! stays whole: it is the safety net for notifications that raced.
//!
//! Gains accumulate until a read takes them: views that come while a read
//! is in flight, or between two reads, add theirs, so a shard lost and won
//! back between two reads is read again.

use crate::core::placement::ShardSet;

/// What the next owned-set read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedRead {
    /// Every name: the list is complete (it may stop what it does not list).
    Full,
    /// Only the names of these shards: it starts what it lists and stops
    /// nothing.
    Shards(ShardSet),
}

/// The reads owed, until one is made.
#[derive(Debug, Clone)]
pub struct OwnedReads {
    full: bool,
    shards: Option<ShardSet>,
}

impl Default for OwnedReads {
    /// Nothing has been read yet: the first read is whole.
    fn default() -> Self {
        OwnedReads {
            full: true,
            shards: None,
        }
    }
}

impl OwnedReads {
    /// A view change gave this node `shards` it did not own in the view
    /// before.
    pub fn gained(&mut self, shards: &ShardSet) {
        if shards.is_empty() {
            return;
        }
        match &mut self.shards {
            Some(owed) => owed.extend(shards),
            None => self.shards = Some(shards.clone()),
        }
    }

    /// The periodic safety net: the next read is whole.
    pub fn whole(&mut self) {
        self.full = true;
    }

    /// The read to make now, if any is owed; it takes what it covers (a
    /// whole read covers every gained shard).
    pub fn take(&mut self) -> Option<OwnedRead> {
        if std::mem::take(&mut self.full) {
            self.shards = None;
            return Some(OwnedRead::Full);
        }
        self.shards.take().map(OwnedRead::Shards)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn set(shards: &[u32]) -> ShardSet {
        let mut s = ShardSet::new(64);
        for &x in shards {
            s.insert(x);
        }
        s
    }

    /// (step, what the next `take` gives) in order.
    enum Step<'a> {
        Gained(&'a [u32]),
        Whole,
        Take(Option<OwnedRead>),
    }

    fn run(steps: &[Step]) {
        let mut reads = OwnedReads::default();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Gained(s) => reads.gained(&set(s)),
                Step::Whole => reads.whole(),
                Step::Take(want) => assert_eq!(&reads.take(), want, "step {i}"),
            }
        }
    }

    #[test]
    fn the_first_read_is_whole_and_then_nothing_is_owed() {
        run(&[Step::Take(Some(OwnedRead::Full)), Step::Take(None)]);
    }

    #[test]
    fn a_view_change_that_gains_nothing_owes_no_read() {
        run(&[
            Step::Take(Some(OwnedRead::Full)),
            Step::Gained(&[]),
            Step::Take(None),
        ]);
    }

    #[test]
    fn gains_of_several_views_are_read_together_once() {
        run(&[
            Step::Take(Some(OwnedRead::Full)),
            Step::Gained(&[1, 2]),
            Step::Gained(&[2, 9]),
            Step::Take(Some(OwnedRead::Shards(set(&[1, 2, 9])))),
            Step::Take(None),
            // Gained again after the read: read again.
            Step::Gained(&[2]),
            Step::Take(Some(OwnedRead::Shards(set(&[2])))),
        ]);
    }

    #[test]
    fn a_whole_read_covers_the_gains_owed_before_it() {
        run(&[
            Step::Take(Some(OwnedRead::Full)),
            Step::Gained(&[3]),
            Step::Whole,
            Step::Take(Some(OwnedRead::Full)),
            Step::Take(None),
        ]);
    }

    use crate::core::crdt::BirdSpec;
    use crate::core::lifecycle::{Input, Lifecycle, Owners};
    use crate::core::placement::{HostedMember, KindPlacement, Member};
    use crate::core::supervision::Backoff;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A placement as the core sees it (what the Registry's `ViewRef` is);
    /// the step timing (`lifecycle/steps.rs`) uses it too.
    #[derive(Debug, Clone)]
    pub(in crate::core::lifecycle) struct Kp(pub(in crate::core::lifecycle) KindPlacement);

    impl Owners for Kp {
        fn owner_of(&self, name: &str) -> Option<&str> {
            self.0.all().owner(name).ok().map(|n| &**n)
        }
        fn owner_of_kind(&self, kind: &str, name: &str) -> Option<&str> {
            self.0.owner(kind, name).ok().map(|n| &**n)
        }
    }

    const ME: &str = "node0@x";

    fn placement(members: &[(u8, u32, u8)]) -> KindPlacement {
        let hosted = members.iter().map(|&(n, w, k)| {
            let m = Member::new(format!("node{n}@x"), w);
            match k {
                0 => HostedMember::all_kinds(m),
                1 => HostedMember::hosting(m, ["a"]),
                _ => HostedMember::hosting(m, ["a", "b"]),
            }
        });
        KindPlacement::new(128, hosted).expect("valid placement")
    }

    fn owned(
        set: &[(String, BirdSpec)],
        p: &KindPlacement,
        only: Option<&ShardSet>,
    ) -> Vec<(crate::core::lifecycle::Name, BirdSpec)> {
        set.iter()
            .filter(|(n, s)| {
                only.is_none_or(|o| o.contains(p.shard_of(n)))
                    && p.owner(&s.kind, n).is_ok_and(|o| **o == *ME)
            })
            .map(|(n, s)| (n.as_str().into(), s.clone()))
            .collect()
    }

    /// Feeds `input`, then works off every queued start.
    fn settle(core: &mut Lifecycle<Kp>, input: Input<Kp>) {
        core.handle(input, 0);
        while core.queued() > 0 {
            core.handle(Input::StartSlice, 0);
        }
    }

    fn running(core: &Lifecycle<Kp>) -> BTreeSet<String> {
        core.running().map(|(n, _)| n.to_string()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After a view change, reading only the gained shards leaves the
        /// core running exactly what a whole read leaves it running, for
        /// any two member sets (this node in either, both or neither) and
        /// birds of kinds announced or not.
        #[test]
        fn an_incremental_read_after_a_view_change_runs_what_a_whole_read_runs(
            before in prop::collection::vec((0u8..5, 0u32..3, 0u8..3), 0..5),
            after in prop::collection::vec((0u8..5, 0u32..3, 0u8..3), 0..5),
            kinds in prop::collection::vec(0u8..3, 120),
        ) {
            let set: Vec<(String, BirdSpec)> = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let kind = ["a", "b", "c"][usize::from(*k)];
                    (format!("bird:{i}"), BirdSpec { kind: kind.into(), args: vec![*k] })
                })
                .collect();
            let (old, new) = (placement(&before), placement(&after));
            let mut whole = Lifecycle::new(ME, Kp(old.clone()), Backoff::default());
            settle(&mut whole, Input::Owned(owned(&set, &old, None)));
            let mut part = Lifecycle::new(ME, Kp(old.clone()), Backoff::default());
            settle(&mut part, Input::Owned(owned(&set, &old, None)));

            settle(&mut whole, Input::View(Kp(new.clone())));
            settle(&mut whole, Input::Owned(owned(&set, &new, None)));

            settle(&mut part, Input::View(Kp(new.clone())));
            let gained = new.gained(&old, ME);
            let mut reads = OwnedReads::default();
            reads.take();
            reads.gained(&gained);
            match reads.take() {
                Some(OwnedRead::Shards(s)) => {
                    settle(&mut part, Input::OwnedStale(owned(&set, &new, Some(&s))));
                }
                None => prop_assert!(gained.is_empty()),
                Some(OwnedRead::Full) => prop_assert!(false, "a whole read owed"),
            }
            prop_assert_eq!(running(&part), running(&whole));
            prop_assert_eq!(
                running(&whole),
                owned(&set, &new, None).iter().map(|(n, _)| n.to_string()).collect::<BTreeSet<_>>()
            );
        }
    }
}
