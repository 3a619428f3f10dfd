//! The handoff of a moved bird's state: scenarios and the two-node property.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Names listed go to their node, the rest stay at `home`; node "dead" is
/// not up, every other node is.
#[derive(Debug, Clone)]
struct View {
    home: &'static str,
    moved: BTreeMap<String, String>,
}

impl Owners for View {
    fn owner_of(&self, name: &str) -> Option<&str> {
        Some(self.moved.get(name).map_or(self.home, String::as_str))
    }
    fn is_up(&self, node: &str) -> bool {
        node != "dead"
    }
}

fn all_on(node: &'static str) -> View {
    View {
        home: node,
        moved: BTreeMap::new(),
    }
}

fn spec() -> BirdSpec {
    BirdSpec {
        kind: "counter".into(),
        args: vec![0],
    }
}

fn core(me: &str, view: View) -> Lifecycle<View> {
    Lifecycle::new(me, view, Backoff::default()).with_handoff(["counter".to_owned()], 2_000)
}

fn b() -> Name {
    Name::from("b")
}

/// `me` hears of `view` and of the owned set read under it.
fn move_to(c: &mut Lifecycle<View>, view: View, now: u64) -> Vec<Effect> {
    let mut out = c.handle(Input::View(view.clone()), now);
    let owned = if view.owner_of("b") == Some(c.me.as_str()) {
        vec![(b(), spec())]
    } else {
        vec![]
    };
    out.extend(c.handle(Input::Owned(owned), now));
    out.extend(c.handle(Input::StartSlice, now));
    out
}

#[test]
fn a_moved_bird_is_hatched_from_its_handed_over_state() {
    let mut new = core("me", all_on("other"));
    let effects = move_to(&mut new, all_on("me"), 10);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Spawn { .. } | Effect::Resume { .. })),
        "started before the old owner handed over: {effects:?}"
    );
    assert_eq!(new.awaiting(), 1);
    // A call arriving meanwhile waits, and goes to the resumed instance.
    let parked = new.handle(
        Input::Message {
            waiter: 1,
            name: b(),
            kind: "counter".into(),
            deadline_ms: 5_000,
        },
        20,
    );
    assert!(!parked.iter().any(|e| matches!(e, Effect::Deliver { .. })));
    let effects = new.handle(
        Input::HandedOff {
            name: b(),
            state: Some(vec![42]),
        },
        30,
    );
    assert!(
        matches!(&effects[..], [Effect::Resume { state, instance, .. }, Effect::Deliver { waiter: 1, instance: to, .. }] if *state == vec![42] && instance == to),
        "{effects:?}"
    );
}

#[test]
fn a_bird_whose_old_owner_died_is_hatched_from_args_after_the_wait() {
    // The old owner is down in the new view: no wait at all.
    let mut new = core("me", all_on("dead"));
    let effects = move_to(&mut new, all_on("me"), 10);
    assert!(
        matches!(&effects[..], [.., Effect::Spawn { .. }]),
        "{effects:?}"
    );

    // The old owner is up but never answers: hatched when the wait ends.
    let mut new = core("me", all_on("other"));
    let effects = move_to(&mut new, all_on("me"), 10);
    let Some(Effect::Timer { at_ms, timer }) = effects.last().cloned() else {
        panic!("no handoff timer: {effects:?}");
    };
    assert_eq!(at_ms, 2_010);
    let effects = new.handle(Input::Timer(timer.clone()), at_ms);
    assert!(
        matches!(&effects[..], [Effect::Spawn { .. }]),
        "{effects:?}"
    );
    // A late state does not start another instance: the bird runs once,
    // and the running instance gets it for its kind's conflict hook.
    let late = new.handle(
        Input::HandedOff {
            name: b(),
            state: Some(vec![1]),
        },
        at_ms + 1,
    );
    assert!(
        matches!(&late[..], [Effect::Merge { state, .. }] if *state == vec![1]),
        "{late:?}"
    );
    assert!(new.handle(Input::Timer(timer), at_ms + 2).is_empty());
}

#[test]
fn a_state_that_arrives_before_the_view_is_used_when_the_view_comes() {
    let mut new = core("me", all_on("other"));
    assert!(
        new.handle(
            Input::HandedOff {
                name: b(),
                state: Some(vec![7]),
            },
            5
        )
        .is_empty()
    );
    let effects = move_to(&mut new, all_on("me"), 10);
    assert!(
        matches!(&effects[..], [.., Effect::Resume { state, .. }] if *state == vec![7]),
        "{effects:?}"
    );
}

#[test]
fn the_old_owner_hands_off_instead_of_a_plain_stop_and_kinds_without_state_stop_as_before() {
    let mut old = core("me", all_on("me"));
    move_to(&mut old, all_on("me"), 0);
    let effects = move_to(&mut old, all_on("other"), 10);
    assert!(
        matches!(&effects[..], [Effect::HandOff { instance: Some(1), to, .. }] if to == "other"),
        "{effects:?}"
    );

    let mut plain = Lifecycle::new("me", all_on("me"), Backoff::default());
    move_to(&mut plain, all_on("me"), 0);
    let effects = move_to(&mut plain, all_on("other"), 10);
    assert!(
        matches!(&effects[..], [Effect::Stop { instance: 1, .. }]),
        "{effects:?}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    /// Node 0 or 1 hears that the bird lives on node `to`.
    View { node: usize, to: usize },
    /// The oldest ordered stop on `node` completes (its exit report).
    Exit { node: usize },
    /// The oldest handoff in flight to `node` arrives.
    Arrive { node: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..2usize).prop_map(|(node, to)| Op::View { node, to }),
        (0..2usize).prop_map(|node| Op::Exit { node }),
        (0..2usize).prop_map(|node| Op::Arrive { node }),
    ]
}

const NODES: [&str; 2] = ["a", "b"];

proptest! {
    /// Two live nodes whose views flip the bird between them in any order:
    /// as long as handoffs arrive within the wait (no handoff timer fires),
    /// at no time do both run an instance (an instance runs from its spawn
    /// until its exit report).
    #[test]
    fn no_two_instances_of_one_name_run_on_two_live_nodes_during_a_handoff(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let mut cores = [core("a", all_on("a")), core("b", all_on("a"))];
        let mut alive: [Option<u64>; 2] = [None, None];
        let mut stops: [VecDeque<(u64, Option<String>)>; 2] = Default::default();
        let mut wire: [VecDeque<Option<Vec<u8>>>; 2] = Default::default();
        let mut effects = vec![(0, move_to(&mut cores[0], all_on("a"), 0))];
        let mut now = 0;
        let mut ops = ops.into_iter();
        loop {
            for (node, list) in std::mem::take(&mut effects) {
                for e in list {
                    match e {
                        Effect::Spawn { instance, .. } | Effect::Resume { instance, .. } => {
                            alive[node] = Some(instance);
                        }
                        Effect::Stop { instance, .. } => stops[node].push_back((instance, None)),
                        Effect::HandOff { instance: Some(i), to, .. } => {
                            stops[node].push_back((i, Some(to)));
                        }
                        Effect::HandOff { instance: None, to, .. } => {
                            wire[NODES.iter().position(|n| *n == to).unwrap()].push_back(None);
                        }
                        _ => {}
                    }
                }
            }
            prop_assert!(alive[0].is_none() || alive[1].is_none(), "both run: {alive:?}");
            let Some(op) = ops.next() else { break };
            now += 10;
            let produced = match op {
                Op::View { node, to } => (node, move_to(&mut cores[node], all_on(NODES[to]), now)),
                Op::Exit { node } => {
                    let Some((instance, to)) = stops[node].pop_front() else { continue };
                    if alive[node] == Some(instance) {
                        alive[node] = None;
                    }
                    if let Some(to) = to {
                        // The state leaves only once the instance stopped.
                        wire[NODES.iter().position(|n| *n == to).unwrap()]
                            .push_back(Some(vec![instance as u8]));
                    }
                    (node, cores[node].handle(Input::Exited { name: b(), instance, exit: Exit::Completed }, now))
                }
                Op::Arrive { node } => {
                    let Some(state) = wire[node].pop_front() else { continue };
                    (node, cores[node].handle(Input::HandedOff { name: b(), state }, now))
                }
            };
            effects = vec![produced];
        }
    }
}

/// A view as a joining node "me" sees it: `b` is placed on `owner`, and on
/// `without` if "me" were not a member; node "dead" is not up.
#[derive(Debug, Clone)]
struct JoinView {
    owner: &'static str,
    without: Option<&'static str>,
}

impl Owners for JoinView {
    fn owner_of(&self, _: &str) -> Option<&str> {
        Some(self.owner)
    }
    fn is_up(&self, node: &str) -> bool {
        node != "dead"
    }
    fn owner_without(&self, _: &str, _: &str, node: &str) -> Option<&str> {
        self.without.filter(|_| node == "me")
    }
    fn others_host(&self, _: &str) -> bool {
        self.without.is_some()
    }
}

fn alone() -> JoinView {
    JoinView {
        owner: "me",
        without: None,
    }
}

fn joined(without: &'static str) -> JoinView {
    JoinView {
        owner: "me",
        without: Some(without),
    }
}

fn join_core() -> Lifecycle<JoinView> {
    Lifecycle::new("me", alone(), Backoff::default()).with_handoff(["counter".to_owned()], 2_000)
}

fn own_b(c: &mut Lifecycle<JoinView>, now: u64) -> Vec<Effect> {
    let mut out = c.handle(Input::Owned(vec![(b(), spec())]), now);
    out.extend(c.handle(Input::StartSlice, now));
    out
}

fn started(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Spawn { .. } | Effect::Resume { .. }))
}

#[test]
fn a_joining_node_waits_for_the_owner_without_it_though_its_previous_view_said_here() {
    let mut new = join_core();
    // The first view with another member already places `b` here, and the
    // view before (alone) said "here" too: only the owner without this
    // node tells where the old instance runs.
    new.handle(Input::View(joined("old")), 10);
    let effects = own_b(&mut new, 10);
    assert!(
        !started(&effects),
        "hatched while the old owner runs it: {effects:?}"
    );
    assert_eq!(new.awaiting(), 1);
    let effects = new.handle(
        Input::HandedOff {
            name: b(),
            state: Some(vec![9]),
        },
        50,
    );
    assert!(
        matches!(&effects[..], [Effect::Resume { state, .. }] if *state == vec![9]),
        "{effects:?}"
    );
}

#[test]
fn the_wait_moves_to_a_member_the_joining_node_learns_of_later_with_a_fresh_bound() {
    let mut new = join_core();
    // Partial view: the owner without this node is "seed", which never ran it.
    new.handle(Input::View(joined("seed")), 0);
    let first = own_b(&mut new, 0);
    assert!(
        matches!(first.last(), Some(Effect::Timer { at_ms: 2_000, .. })),
        "{first:?}"
    );
    // The full view: the real old owner appears; the wait restarts for it.
    let retarget = new.handle(Input::View(joined("old")), 1_500);
    let Some(Effect::Timer { at_ms, timer }) = retarget.last().cloned() else {
        panic!("the wait was not moved to the new old owner: {retarget:?}");
    };
    assert_eq!(at_ms, 3_500);
    // The first timer is stale: nothing hatches while "old" may run it.
    let Some(Effect::Timer { timer: stale, .. }) = first.last().cloned() else {
        unreachable!()
    };
    let early = new.handle(Input::Timer(stale), 2_000);
    assert!(
        matches!(&early[..], [Effect::Timer { at_ms: 3_500, .. }]),
        "{early:?}"
    );
    // "old" never answers: hatched from the arguments at the bound.
    let effects = new.handle(Input::Timer(timer), at_ms);
    assert!(
        matches!(&effects[..], [Effect::Spawn { .. }]),
        "{effects:?}"
    );
}

#[test]
fn a_joining_node_hatches_at_once_when_the_owner_without_it_is_down() {
    let mut new = join_core();
    new.handle(Input::View(joined("dead")), 10);
    let effects = own_b(&mut new, 10);
    assert!(
        matches!(&effects[..], [.., Effect::Spawn { .. }]),
        "{effects:?}"
    );
}

#[test]
fn once_the_views_settled_a_new_bird_starts_without_waiting() {
    let mut node = join_core();
    node.handle(Input::View(joined("other")), 0);
    // A later view change, past the join window, ends the join.
    node.handle(Input::View(joined("other")), 5_000);
    let effects = own_b(&mut node, 5_000);
    assert!(
        matches!(&effects[..], [.., Effect::Spawn { .. }]),
        "{effects:?}"
    );
    // A node that never saw another member has nothing to wait for.
    let mut lone = join_core();
    assert!(started(&own_b(&mut lone, 0)));
}

#[test]
fn after_a_partition_heals_the_losers_state_reaches_the_surviving_instance() {
    // "me" ran b alone while the other side was cut off (seen down).
    let mut me = core("me", all_on("dead"));
    let effects = move_to(&mut me, all_on("me"), 10);
    let Some(Effect::Spawn { instance, .. }) = effects.last().cloned() else {
        panic!("{effects:?}");
    };
    // Healed: the other side's instance lost, stopped, and handed its state.
    let merged = me.handle(
        Input::HandedOff {
            name: b(),
            state: Some(vec![9, 9]),
        },
        20,
    );
    assert_eq!(
        merged,
        [Effect::Merge {
            name: b(),
            instance,
            state: vec![9, 9],
        }]
    );
    // A loser that had no instance to hand over changes nothing.
    let nothing = me.handle(
        Input::HandedOff {
            name: b(),
            state: None,
        },
        30,
    );
    assert!(nothing.is_empty(), "{nothing:?}");
}

/// A joining view with roles: only "old" hosts kind `counter`; without
/// "me", a kind-blind table would place `b` on "dead" (a member that does
/// not host counters, and is down).
#[derive(Debug, Clone)]
struct RolesView;

impl Owners for RolesView {
    fn owner_of(&self, _: &str) -> Option<&str> {
        Some("me")
    }
    fn is_up(&self, node: &str) -> bool {
        node != "dead"
    }
    fn owner_without(&self, kind: &str, _: &str, node: &str) -> Option<&str> {
        (node == "me").then_some(if kind == "counter" { "old" } else { "dead" })
    }
    fn others_host(&self, _: &str) -> bool {
        true
    }
}

#[test]
fn a_joining_node_waits_for_the_node_that_hosts_the_birds_kind_not_the_kind_blind_owner() {
    let mut new = Lifecycle::new("me", RolesView, Backoff::default())
        .with_handoff(["counter".to_owned()], 2_000);
    new.handle(Input::View(RolesView), 10);
    let mut effects = new.handle(Input::Owned(vec![(b(), spec())]), 10);
    effects.extend(new.handle(Input::StartSlice, 10));
    assert!(
        !started(&effects),
        "hatched from its arguments while the counter host runs it: {effects:?}"
    );
    assert_eq!(new.awaiting(), 1);
}

fn message(waiter: WaiterId) -> Input<View> {
    Input::Message {
        waiter,
        name: b(),
        kind: "counter".into(),
        deadline_ms: 5_000,
    }
}

fn wants(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Want { name, from } if **name == *"b" => Some(from.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_for_a_bird_awaiting_its_state_asks_the_old_owner_for_it_once() {
    let mut new = core("me", all_on("other"));
    let moved = move_to(&mut new, all_on("me"), 10);
    assert!(wants(&moved).is_empty(), "no message waits yet: {moved:?}");
    let first = new.handle(message(1), 20);
    assert_eq!(wants(&first), ["other"], "{first:?}");
    let second = new.handle(message(2), 21);
    assert!(wants(&second).is_empty(), "asked once per wait: {second:?}");
    // The state comes: both messages go to the resumed instance.
    let effects = new.handle(
        Input::HandedOff {
            name: b(),
            state: Some(vec![1]),
        },
        30,
    );
    let delivered = effects
        .iter()
        .filter(|e| matches!(e, Effect::Deliver { .. }))
        .count();
    assert_eq!(delivered, 2, "{effects:?}");
}

#[test]
fn a_running_bird_or_one_started_from_its_arguments_is_never_wanted() {
    // Running here: delivered, nothing asked.
    let mut home = core("me", all_on("me"));
    move_to(&mut home, all_on("me"), 10);
    let effects = home.handle(message(1), 20);
    assert!(wants(&effects).is_empty(), "{effects:?}");
    // Its old owner is down: started from its arguments, nothing asked.
    let mut new = core("me", all_on("dead"));
    move_to(&mut new, all_on("me"), 10);
    let effects = new.handle(message(1), 20);
    assert!(wants(&effects).is_empty(), "{effects:?}");
}

#[test]
fn a_state_handed_over_for_a_queued_bird_starts_it_before_its_slice() {
    let mut new = core("me", all_on("other"));
    // Moved here with many others: queued, not started yet.
    new.handle(Input::View(all_on("me")), 10);
    let mut owned: Vec<(Name, BirdSpec)> = (0..STARTS_PER_SLICE + 5)
        .map(|i| (Name::from(format!("x{i:04}")), spec()))
        .collect();
    owned.push((b(), spec()));
    let queued = new.handle(Input::Owned(owned), 10);
    assert!(!started(&queued), "{queued:?}");
    let effects = new.handle(
        Input::HandedOff {
            name: b(),
            state: Some(vec![5]),
        },
        20,
    );
    assert!(
        matches!(&effects[..], [Effect::Resume { name, state, .. }] if *name == b() && *state == vec![5]),
        "{effects:?}"
    );
}

fn announced() -> Input<View> {
    Input::Announced {
        name: b(),
        spec: spec(),
    }
}

fn handed(state: u8) -> Input<View> {
    Input::HandedOff {
        name: b(),
        state: Some(vec![state]),
    }
}

#[test]
fn an_announced_bird_is_resumed_from_its_state_before_the_set_is_known() {
    // Either order of the two frames: announce then state, or the reverse.
    for announce_first in [true, false] {
        let mut new = core("me", all_on("other"));
        new.handle(Input::View(all_on("me")), 10);
        let (first, second) = if announce_first {
            (announced(), handed(3))
        } else {
            (handed(3), announced())
        };
        let before = new.handle(first, 20);
        assert!(
            !before.iter().any(|e| matches!(e, Effect::Resume { .. })),
            "{before:?}"
        );
        let effects = new.handle(second, 21);
        assert!(
            matches!(&effects[..], [Effect::Resume { name, state, .. }] if *name == b() && *state == vec![3]),
            "announce first: {announce_first}: {effects:?}"
        );
        // The set, when it comes, changes nothing.
        let later = new.handle(Input::Owned(vec![(b(), spec())]), 30);
        assert!(
            !later.iter().any(|e| matches!(
                e,
                Effect::Spawn { .. } | Effect::Resume { .. } | Effect::Stop { .. }
            )),
            "{later:?}"
        );
        let slice = new.handle(Input::StartSlice, 31);
        assert!(!started(&slice), "{slice:?}");
    }
}

#[test]
fn an_announced_bird_this_node_does_not_own_is_not_started() {
    let mut new = core("me", all_on("other"));
    new.handle(Input::View(all_on("third")), 10);
    new.handle(announced(), 20);
    let effects = new.handle(handed(3), 21);
    assert!(!started(&effects), "{effects:?}");
}

#[test]
fn an_owned_list_read_before_the_set_arrived_does_not_stop_an_announced_bird() {
    let mut new = core("me", all_on("other"));
    new.handle(Input::View(all_on("me")), 10);
    new.handle(announced(), 20);
    new.handle(handed(3), 21);
    // A complete list read before the registry reached this node: empty.
    let effects = new.handle(Input::Owned(vec![]), 30);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Stop { .. } | Effect::HandOff { .. })),
        "an announced bird was stopped: {effects:?}"
    );
    // Once the set named it, a list that leaves it out does stop it.
    new.handle(Input::Owned(vec![(b(), spec())]), 40);
    let effects = new.handle(Input::Owned(vec![]), 50);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Stop { .. })),
        "{effects:?}"
    );
}

#[test]
fn an_announced_bird_the_set_never_names_loses_its_protection_after_a_while() {
    let mut new = core("me", all_on("other"));
    new.handle(Input::View(all_on("me")), 10);
    new.handle(announced(), 20);
    new.handle(handed(3), 21);
    // Five handoff waits later (2 s each), an empty complete list stops it.
    let effects = new.handle(Input::Owned(vec![]), 21 + 5 * 2_000 + 1);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Stop { .. })),
        "{effects:?}"
    );
}
