//! Membership events for applications: what changed between two snapshots
//! of one node's view of the members.
//!
//! Pure: the Ring takes a [`Snapshot`] after everything that can change a
//! member's state and publishes [`changes`] from the previous one; a new
//! subscriber first gets [`initial`] (the current state as events), so that
//! what it sees is always the same sequence a subscriber from the start saw,
//! compressed.

use std::collections::BTreeMap;

/// Something that happened to the members, as one node sees it
/// ([`Flock::events`](crate::Flock::events)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// A member is up: linked and heard from (this node, a new node, or one
    /// that came back).
    Up {
        /// Its name.
        name: String,
        /// The address it listens on.
        addr: String,
        /// Its placement weight (0: a client node, hosting no birds).
        weight: u32,
    },
    /// A member that was up is unreachable: crashed, partitioned or paused.
    /// Its birds restart on the other members.
    Down {
        /// Its name.
        name: String,
    },
    /// A member left gracefully (its birds were handed over first).
    Left {
        /// Its name.
        name: String,
    },
    /// The set of members that host birds changed: placement was rebuilt.
    ViewChanged {
        /// The hosting members, sorted by name.
        hosts: Vec<String>,
    },
    /// This subscriber fell behind and the `missed` oldest events were
    /// dropped for it (the node never waits for a subscriber); what follows
    /// is current. Re-read [`Flock::members`](crate::Flock::members) if the
    /// full state matters.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// Where a member stands, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Up.
    Up,
    /// Known, unreachable.
    Down,
    /// Leaving or left gracefully.
    Left,
}

/// One member in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Where it stands.
    pub presence: Presence,
    /// Its address.
    pub addr: String,
    /// Its weight.
    pub weight: u32,
}

/// The members and the hosting set as one node sees them at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every known member (this node included), by name.
    pub members: BTreeMap<String, Seen>,
    /// The members hosting birds, sorted.
    pub hosts: Vec<String>,
}

/// The events that lead from `before` to `after`: member events by name,
/// then `ViewChanged` if the hosting set changed.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<MemberEvent> {
    let mut out = Vec::new();
    for (name, seen) in &after.members {
        let was = before.members.get(name).map(|s| s.presence);
        let event = match (was, seen.presence) {
            (Some(Presence::Up), Presence::Up) => None,
            (_, Presence::Up) => Some(up(name, seen)),
            (Some(Presence::Up), Presence::Down) => Some(MemberEvent::Down { name: name.clone() }),
            // Down before, or never up as far as subscribers know.
            (_, Presence::Down) => None,
            (Some(Presence::Left), Presence::Left) => None,
            (Some(_), Presence::Left) => Some(MemberEvent::Left { name: name.clone() }),
            // Left before this node ever saw it: nothing to tell.
            (None, Presence::Left) => None,
        };
        out.extend(event);
    }
    for (name, seen) in &before.members {
        // Forgotten while up (only after a long silence, but possible).
        if seen.presence == Presence::Up && !after.members.contains_key(name) {
            out.push(MemberEvent::Down { name: name.clone() });
        }
    }
    if before.hosts != after.hosts {
        out.push(MemberEvent::ViewChanged {
            hosts: after.hosts.clone(),
        });
    }
    out
}

/// The current state as events, for a new subscriber: every member up,
/// then the hosting set.
pub fn initial(now: &Snapshot) -> Vec<MemberEvent> {
    changes(&Snapshot::default(), now)
}

fn up(name: &str, seen: &Seen) -> MemberEvent {
    MemberEvent::Up {
        name: name.to_owned(),
        addr: seen.addr.clone(),
        weight: seen.weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn snap(members: &[(&str, Presence)], hosts: &[&str]) -> Snapshot {
        Snapshot {
            members: members
                .iter()
                .map(|(n, p)| {
                    let seen = Seen {
                        presence: *p,
                        addr: format!("{n}:1"),
                        weight: 1,
                    };
                    ((*n).to_owned(), seen)
                })
                .collect(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    fn up(name: &str) -> MemberEvent {
        MemberEvent::Up {
            name: name.into(),
            addr: format!("{name}:1"),
            weight: 1,
        }
    }

    fn view(hosts: &[&str]) -> MemberEvent {
        MemberEvent::ViewChanged {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    use Presence::{Down, Left, Up};

    #[test]
    fn scenarios() {
        let down = |n: &str| MemberEvent::Down { name: n.into() };
        let left = |n: &str| MemberEvent::Left { name: n.into() };
        #[rustfmt::skip]
        let table: Vec<(&str, Snapshot, Snapshot, Vec<MemberEvent>)> = vec![
            ("a join is an up and a view change",
             snap(&[("a", Up)], &["a"]), snap(&[("a", Up), ("b", Up)], &["a", "b"]),
             vec![up("b"), view(&["a", "b"])]),
            ("a crash is a down and a view change",
             snap(&[("a", Up), ("b", Up)], &["a", "b"]), snap(&[("a", Up), ("b", Down)], &["a"]),
             vec![down("b"), view(&["a"])]),
            ("a graceful leave is a left, not a down",
             snap(&[("a", Up), ("b", Up)], &["a", "b"]), snap(&[("a", Up), ("b", Left)], &["a"]),
             vec![left("b"), view(&["a"])]),
            ("a client joining changes no view",
             snap(&[("a", Up)], &["a"]), snap(&[("a", Up), ("c", Up)], &["a"]),
             vec![up("c")]),
            ("a node coming back is up again",
             snap(&[("a", Up), ("b", Down)], &["a"]), snap(&[("a", Up), ("b", Up)], &["a", "b"]),
             vec![up("b"), view(&["a", "b"])]),
            ("a down node forgotten says nothing more",
             snap(&[("a", Up), ("b", Down)], &["a"]), snap(&[("a", Up)], &["a"]),
             vec![]),
            ("an up node forgotten is down",
             snap(&[("a", Up), ("b", Up)], &["a"]), snap(&[("a", Up)], &["a"]),
             vec![down("b")]),
            ("a down node that left is left",
             snap(&[("b", Down)], &[]), snap(&[("b", Left)], &[]),
             vec![left("b")]),
            ("nothing changed, nothing said",
             snap(&[("a", Up), ("b", Down)], &["a"]), snap(&[("a", Up), ("b", Down)], &["a"]),
             vec![]),
        ];
        for (case, before, after, expected) in table {
            assert_eq!(changes(&before, &after), expected, "{case}");
        }
    }

    #[test]
    fn a_new_subscriber_sees_the_members_up_then_the_hosts() {
        let now = snap(&[("a", Up), ("b", Down), ("c", Up)], &["a", "c"]);
        assert_eq!(initial(&now), vec![up("a"), up("c"), view(&["a", "c"])]);
    }

    fn presence() -> impl Strategy<Value = Option<Presence>> {
        prop_oneof![
            Just(None),
            Just(Some(Up)),
            Just(Some(Down)),
            Just(Some(Left))
        ]
    }

    fn snapshots() -> impl Strategy<Value = Snapshot> {
        (
            prop::collection::vec(presence(), 4),
            prop::collection::vec(any::<bool>(), 4),
        )
            .prop_map(|(ps, hosting)| {
                let names = ["a", "b", "c", "d"];
                let members: Vec<(&str, Presence)> = names
                    .iter()
                    .zip(&ps)
                    .filter_map(|(n, p)| p.map(|p| (*n, p)))
                    .collect();
                let hosts: Vec<&str> = names
                    .iter()
                    .zip(&ps)
                    .zip(&hosting)
                    .filter(|((_, p), h)| **p == Some(Up) && **h)
                    .map(|((n, _), _)| *n)
                    .collect();
                snap(&members, &hosts)
            })
    }

    /// Which members a subscriber believes up after replaying `events`.
    fn believed_up(events: &[MemberEvent]) -> Vec<String> {
        let mut up = std::collections::BTreeSet::new();
        for e in events {
            match e {
                MemberEvent::Up { name, .. } => {
                    up.insert(name.clone());
                }
                MemberEvent::Down { name } | MemberEvent::Left { name } => {
                    up.remove(name);
                }
                _ => {}
            }
        }
        up.into_iter().collect()
    }

    fn up_in(s: &Snapshot) -> Vec<String> {
        s.members
            .iter()
            .filter(|(_, m)| m.presence == Up)
            .map(|(n, _)| n.clone())
            .collect()
    }

    proptest! {
        /// A subscriber that replays the initial events and every change
        /// since believes exactly the members up that are up, and knows the
        /// current hosts: the same as one that subscribed last.
        #[test]
        fn replaying_the_changes_tracks_the_members_up(steps in prop::collection::vec(snapshots(), 1..12)) {
            let mut events = Vec::new();
            let mut hosts = Vec::new();
            let mut prev = Snapshot::default();
            for s in &steps {
                for e in changes(&prev, s) {
                    if let MemberEvent::ViewChanged { hosts: h } = &e {
                        hosts.clone_from(h);
                    }
                    events.push(e);
                }
                prev = s.clone();
            }
            prop_assert_eq!(believed_up(&events), up_in(&prev));
            prop_assert_eq!(&hosts, &prev.hosts);
            prop_assert_eq!(believed_up(&initial(&prev)), up_in(&prev));
        }

        /// Nothing changed, nothing is said.
        #[test]
        fn a_snapshot_compared_with_itself_is_silent(s in snapshots()) {
            prop_assert!(changes(&s, &s).is_empty());
        }
    }
}
