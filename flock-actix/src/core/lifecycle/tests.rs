use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// A view as a table: names listed go to their node, the rest stay here.
#[derive(Debug, Clone, Default)]
pub(super) struct View(pub(super) BTreeMap<String, String>);

impl Owners for View {
    fn owner_of(&self, name: &str) -> Option<&str> {
        Some(self.0.get(name).map_or(ME, String::as_str))
    }
}

pub(super) const ME: &str = "me";

pub(super) fn view(moved: &[&str]) -> View {
    View(
        moved
            .iter()
            .map(|n| ((*n).to_owned(), "other".to_owned()))
            .collect(),
    )
}

pub(super) fn spec(v: u8) -> BirdSpec {
    BirdSpec {
        kind: "k".into(),
        args: vec![v],
    }
}

pub(super) fn name(n: &str) -> Name {
    Name::from(n)
}

pub(super) fn core() -> Lifecycle<View> {
    Lifecycle::new(ME, View::default(), Backoff::default())
}

pub(super) fn upsert(names: &[&str]) -> Input<View> {
    Input::SetChanged {
        upserts: names.iter().map(|n| (name(n), spec(0))).collect(),
        removed: vec![],
    }
}

pub(super) fn message(waiter: WaiterId, n: &str, deadline_ms: u64) -> Input<View> {
    Input::Message {
        waiter,
        name: name(n),
        kind: "k".into(),
        deadline_ms,
    }
}

pub(super) fn exited(n: &str, instance: u64, exit: Exit) -> Input<View> {
    Input::Exited {
        name: name(n),
        instance,
        exit,
    }
}

fn restart(n: &str, instance: u64) -> Input<View> {
    Input::Timer(Timer::Restart {
        name: name(n),
        instance,
    })
}

pub(super) fn spawned(effects: &[Effect]) -> Vec<(String, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { name, instance, .. } => Some((name.to_string(), *instance)),
            _ => None,
        })
        .collect()
}

/// Starts `names` here and returns their instances.
pub(super) fn running(c: &mut Lifecycle<View>, names: &[&str]) -> Vec<u64> {
    c.handle(upsert(names), 0);
    let started = spawned(&c.handle(Input::StartSlice, 0));
    assert_eq!(started.len(), names.len());
    started.into_iter().map(|(_, i)| i).collect()
}

#[test]
fn a_view_change_cancels_queued_starts_this_node_no_longer_owns() {
    let mut c = core();
    c.handle(upsert(&["a", "b"]), 0);
    c.handle(message(1, "a", 1_000), 0);
    let effects = c.handle(Input::View(view(&["a"])), 0);
    assert!(effects.contains(&Effect::Reply {
        waiter: 1,
        error: RemoteError::Moved {
            bird: "a".into(),
            owner: "other".into()
        }
    }));
    assert_eq!(spawned(&c.handle(Input::StartSlice, 0)), [("b".into(), 1)]);
}

#[test]
fn a_reconcile_from_an_older_view_starts_nothing_this_node_no_longer_owns() {
    let mut c = core();
    c.handle(Input::View(view(&["a"])), 0);
    c.handle(Input::Owned(vec![(name("a"), spec(0))]), 0);
    assert!(spawned(&c.handle(Input::StartSlice, 0)).is_empty());
}

#[test]
fn a_view_change_stops_running_birds_this_node_no_longer_owns() {
    let mut c = core();
    let [a] = running(&mut c, &["a"])[..] else {
        unreachable!()
    };
    let effects = c.handle(Input::View(view(&["a"])), 0);
    assert_eq!(
        effects,
        [Effect::Stop {
            name: name("a"),
            instance: a
        }]
    );
    // Its exit report ends it without removal or restart.
    let exit = exited("a", a, Exit::Completed);
    assert_eq!(c.handle(exit, 5), []);
}

/// How one instance ends, and what the core does about it.
#[test]
fn exit_reasons_decide_between_removal_restart_and_nothing() {
    // (exit, asked to stop first, expected effects)
    let table: [(Exit, bool, &[&str]); 6] = [
        (Exit::Completed, false, &["RemoveFromSet"]),
        (Exit::TornDown, false, &["Timer"]),
        (Exit::Panicked, false, &["Timer"]),
        (Exit::Completed, true, &[]),
        (Exit::TornDown, true, &[]),
        (Exit::Panicked, true, &[]),
    ];
    for (exit, ordered, expected) in table {
        let mut c = core();
        let instance = running(&mut c, &["a"])[0];
        if ordered {
            c.handle(
                Input::SetChanged {
                    upserts: vec![],
                    removed: vec![name("a")],
                },
                0,
            );
        }
        let effects = c.handle(exited("a", instance, exit), 0);
        let kinds: Vec<&str> = effects
            .iter()
            .map(|e| match e {
                Effect::RemoveFromSet { .. } => "RemoveFromSet",
                Effect::Timer { .. } => "Timer",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, expected, "{exit:?}, ordered stop: {ordered}");
    }
}

#[test]
fn a_torn_down_bird_restarts_after_the_backoff_delay() {
    let mut c = core();
    let a = running(&mut c, &["a"])[0];
    let exit = exited("a", a, Exit::TornDown);
    let timer = Timer::Restart {
        name: name("a"),
        instance: a,
    };
    assert_eq!(
        c.handle(exit, 100),
        [Effect::Timer {
            at_ms: 100 + Backoff::default().min_ms,
            timer: timer.clone()
        }]
    );
    assert_eq!(
        spawned(&c.handle(Input::Timer(timer), 110)),
        [("a".into(), 2)]
    );
}

#[test]
fn a_restart_of_a_bird_that_moved_away_sends_its_waiters_after_it() {
    let mut c = core();
    let a = running(&mut c, &["a"])[0];
    c.handle(exited("a", a, Exit::Panicked), 0);
    c.handle(message(7, "a", 1_000), 1);
    // The view moves `a` away and its restart timer fires afterwards.
    c.handle(Input::View(view(&["a"])), 2);
    let effects = c.handle(restart("a", a), 20);
    let moved = RemoteError::Moved {
        bird: "a".into(),
        owner: "other".into(),
    };
    let all: Vec<Effect> = effects;
    assert!(spawned(&all).is_empty());
    // Answered once: on the view change (the restart found nothing to do).
    assert!(!all.iter().any(|e| matches!(e, Effect::Reply { .. })));
    let mut c = core();
    let a = running(&mut c, &["a"])[0];
    c.handle(exited("a", a, Exit::Panicked), 0);
    c.handle(message(7, "a", 1_000), 1);
    // Here the view changes without the core hearing of it before the
    // timer (a shell feeding views lazily): the restart itself redirects.
    c.view = view(&["a"]);
    let effects = c.handle(restart("a", a), 20);
    assert_eq!(
        effects,
        [Effect::Reply {
            waiter: 7,
            error: moved
        }]
    );
}

#[test]
fn a_message_for_a_queued_bird_waits_and_is_delivered_once_it_starts() {
    let mut c = core();
    c.handle(upsert(&["a"]), 0);
    let parked = c.handle(message(1, "a", 500), 0);
    assert!(matches!(parked[..], [Effect::Timer { at_ms: 500, .. }]));
    let effects = c.handle(Input::StartSlice, 1);
    assert_eq!(
        effects[1],
        Effect::Deliver {
            waiter: 1,
            name: name("a"),
            instance: 1
        }
    );
    // The deadline timer then finds nothing to answer.
    let late = Input::Timer(Timer::Deadline {
        name: name("a"),
        waiter: 1,
    });
    assert_eq!(c.handle(late, 500), []);
}

#[test]
fn a_waiter_past_its_deadline_is_answered_timeout() {
    let mut c = core();
    c.handle(upsert(&["a"]), 0);
    c.handle(message(1, "a", 500), 0);
    let effects = c.handle(
        Input::Timer(Timer::Deadline {
            name: name("a"),
            waiter: 1,
        }),
        500,
    );
    assert_eq!(
        effects,
        [Effect::Reply {
            waiter: 1,
            error: RemoteError::Timeout
        }]
    );
}

#[test]
fn a_message_to_an_instance_whose_mailbox_closed_waits_for_its_successor() {
    let mut c = core();
    let a = running(&mut c, &["a"])[0];
    let undeliverable = Input::Undeliverable {
        waiter: 3,
        name: name("a"),
        instance: a,
        kind: "k".into(),
        deadline_ms: 1_000,
    };
    assert!(matches!(
        c.handle(undeliverable, 0)[..],
        [Effect::Timer { .. }]
    ));
    // Also a new message waits rather than going to the closing instance.
    assert!(matches!(
        c.handle(message(4, "a", 1_000), 0)[..],
        [Effect::Timer { .. }]
    ));
    c.handle(exited("a", a, Exit::Panicked), 1);
    let effects = c.handle(restart("a", a), 11);
    let delivered: Vec<WaiterId> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { waiter, .. } => Some(*waiter),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [3, 4]);
}

#[test]
fn the_start_queue_is_worked_off_in_slices() {
    let mut c = core();
    let names: Vec<String> = (0..600).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(c.handle(upsert(&refs), 0), [Effect::StartSliceLater]);
    let sizes: Vec<usize> = (0..3)
        .map(|_| spawned(&c.handle(Input::StartSlice, 0)).len())
        .collect();
    assert_eq!(
        sizes,
        [
            STARTS_PER_SLICE,
            STARTS_PER_SLICE,
            600 - 2 * STARTS_PER_SLICE
        ]
    );
    assert_eq!(c.queued(), 0);
}

#[test]
fn a_new_spec_replaces_the_running_instance_after_its_exit() {
    let mut c = core();
    let a = running(&mut c, &["a"])[0];
    c.handle(
        Input::SetChanged {
            upserts: vec![(name("a"), spec(9))],
            removed: vec![],
        },
        0,
    );
    let effects = c.handle(Input::StartSlice, 0);
    assert_eq!(
        effects,
        [Effect::Stop {
            name: name("a"),
            instance: a
        }]
    );
    let effects = c.handle(exited("a", a, Exit::Completed), 1);
    assert!(matches!(&effects[..], [Effect::Spawn { spec: s, .. }] if *s == spec(9)));
}

#[test]
fn shutdown_stops_every_instance_and_removes_nothing() {
    let mut c = core();
    running(&mut c, &["a", "b"]);
    c.handle(upsert(&["c"]), 0);
    c.handle(message(1, "c", 1_000), 0);
    let effects = c.handle(Input::Shutdown, 0);
    let stops = effects
        .iter()
        .filter(|e| matches!(e, Effect::Stop { .. }))
        .count();
    assert_eq!(stops, 2);
    assert!(effects.contains(&shutting_down(1)));
    let exit = exited("a", 1, Exit::Completed);
    assert_eq!(c.handle(exit, 1), []);
}

// ---- properties over random input sequences ----

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Move the names whose bit is set away from this node.
    View(u8),
    Owned(u8, u8),
    Upsert(usize, u8),
    Remove(usize),
    Message(usize, u16),
    StartSlice,
    /// Exit the n-th live instance.
    Exit(usize, u8),
    /// An exit report for an instance that is not live.
    StaleExit(usize, u8),
    SpawnFailed(usize),
    /// Hand back the n-th delivered, unanswered message.
    Undeliverable(usize),
    /// Fire the n-th armed timer that is due by `now + advance`.
    Fire(usize, u16),
    /// Hand back the state of the n-th instance told to passivate.
    StateSaved(usize),
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::View),
        (any::<u8>(), 0u8..3).prop_map(|(m, s)| Op::Owned(m, s)),
        (0..NAMES.len(), 0u8..3).prop_map(|(n, s)| Op::Upsert(n, s)),
        (0..NAMES.len()).prop_map(Op::Remove),
        (0..NAMES.len(), 0u16..2_000).prop_map(|(n, d)| Op::Message(n, d)),
        Just(Op::StartSlice),
        Just(Op::StartSlice),
        (any::<usize>(), 0u8..3).prop_map(|(i, e)| Op::Exit(i, e)),
        (0..NAMES.len(), 0u8..20).prop_map(|(n, i)| Op::StaleExit(n, i)),
        any::<usize>().prop_map(Op::SpawnFailed),
        any::<usize>().prop_map(Op::Undeliverable),
        (any::<usize>(), 0u16..3_000).prop_map(|(i, a)| Op::Fire(i, a)),
        any::<usize>().prop_map(Op::StateSaved),
    ]
}

fn exit_of(e: u8) -> Exit {
    [Exit::Completed, Exit::TornDown, Exit::Panicked][usize::from(e) % 3]
}

/// A shell that checks every effect against the laws.
#[derive(Default)]
pub(super) struct Harness {
    /// Whether the kind hands its state over (else `Resume` and `HandOff`
    /// break a law).
    pub(super) hands_off: bool,
    /// Instances told to passivate whose state was not handed back yet.
    passivating: Vec<(Name, u64)>,
    /// The state last handed back for each name: a woken bird resumes
    /// from it.
    saved: BTreeMap<Name, Vec<u8>>,
    /// The instance each `saved` state came from: the state of an older
    /// instance that arrives late (its passivation was overtaken by an
    /// exit, a wake and a newer passivation) replaces nothing.
    saved_from: BTreeMap<Name, u64>,
    pub(super) now: u64,
    view: View,
    /// Instances told to run whose exit was not reported yet.
    live: Vec<(Name, u64)>,
    /// Messages without an answer yet (id → name, kind, deadline).
    open: BTreeMap<WaiterId, (Name, u64)>,
    /// Delivered, answered messages (may be handed back once).
    delivered: Vec<(WaiterId, Name, u64, u64)>,
    answered: HashSet<WaiterId>,
    timers: Vec<(u64, Timer)>,
    next_waiter: WaiterId,
    /// Woken birds (passivated, started by a message), for the tests to
    /// see that the laws were exercised.
    pub(super) woken: usize,
}

impl Harness {
    pub(super) fn new(hands_off: bool) -> Self {
        Harness {
            hands_off,
            ..Harness::default()
        }
    }

    pub(super) fn feed(&mut self, c: &mut Lifecycle<View>, input: Input<View>) {
        if let Input::View(v) = &input {
            self.view = v.clone();
        }
        let asleep: HashSet<Name> = c.passivated_only().cloned().collect();
        let woken_by = match &input {
            Input::Message { name, .. } | Input::Undeliverable { name, .. } => Some(name.clone()),
            _ => None,
        };
        let effects = c.handle(input, self.now);
        // A passivated bird starts again only on a message to it, exactly
        // once; a reconciliation, a view or a timer never starts it.
        let woken: Vec<&Name> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Spawn { name, .. } | Effect::Resume { name, .. } => Some(name),
                _ => None,
            })
            .filter(|n| asleep.contains(*n))
            .collect();
        assert!(woken.len() <= 1, "woken more than once: {woken:?}");
        if let Some(n) = woken.first() {
            assert_eq!(woken_by.as_ref(), Some(*n), "{n} woken without a message");
            self.woken += 1;
        }
        for effect in effects {
            if let Effect::Resume { name, state, .. } = &effect
                && asleep.contains(name)
            {
                assert_eq!(
                    self.saved.get(name),
                    Some(state),
                    "{name} woke from another state"
                );
            }
            self.check(effect);
        }
        // After every input: nothing is queued that this node does not own.
        for n in c.pending.keys() {
            assert_eq!(
                self.view.owner_of(n),
                Some(ME),
                "{n} queued, owned elsewhere"
            );
        }
    }

    fn check(&mut self, effect: Effect) {
        let resume = matches!(effect, Effect::Resume { .. });
        match effect {
            Effect::Spawn { name, instance, .. } | Effect::Resume { name, instance, .. } => {
                assert!(
                    self.hands_off || !resume,
                    "no kind hands its state over here: {name} resumed"
                );
                assert!(
                    !self.live.iter().any(|(n, _)| *n == name),
                    "{name} told to run twice"
                );
                assert_eq!(
                    self.view.owner_of(&name),
                    Some(ME),
                    "{name} started, not owned"
                );
                self.live.push((name.clone(), instance));
            }
            Effect::Deliver {
                waiter,
                name,
                instance,
            } => {
                assert!(
                    self.live.contains(&(name.clone(), instance)),
                    "delivered to a dead instance"
                );
                let (_, deadline) = self.answer(waiter);
                self.delivered.push((waiter, name, instance, deadline));
            }
            Effect::Reply { waiter, .. } => {
                self.answer(waiter);
            }
            Effect::Timer { at_ms, timer } => self.timers.push((at_ms, timer)),
            Effect::Stop { .. } | Effect::RemoveFromSet { .. } | Effect::StartSliceLater => {}
            Effect::Merge { .. } => {
                assert!(self.hands_off, "no kind merges states here: {effect:?}");
            }
            Effect::HandOff { .. } => {
                assert!(
                    self.hands_off,
                    "no kind hands its state over here: {effect:?}"
                );
            }
            Effect::Want { name, from } => {
                assert!(self.hands_off, "no kind awaits a state here: {name}");
                assert_ne!(from, ME, "{name} wanted from this node itself");
                assert!(
                    !self.live.iter().any(|(n, _)| *n == name),
                    "{name} wanted while it runs here"
                );
            }
            Effect::Passivate {
                name,
                instance,
                take_state,
            } => {
                assert!(
                    self.live.contains(&(name.clone(), instance)),
                    "passivated a dead instance"
                );
                assert_eq!(take_state, self.hands_off);
                if take_state {
                    self.passivating.push((name, instance));
                }
            }
            Effect::SendState { name, .. } => {
                assert!(self.hands_off, "no kind hands its state over here");
                assert_ne!(
                    self.view.owner_of(&name),
                    Some(ME),
                    "{name} sent away, owned here"
                );
                assert!(
                    !self.live.iter().any(|(n, _)| *n == name),
                    "{name} sent away, running"
                );
            }
        }
    }

    fn answer(&mut self, waiter: WaiterId) -> (Name, u64) {
        assert!(
            self.answered.insert(waiter),
            "message {waiter} answered twice"
        );
        self.open.remove(&waiter).expect("answered a known message")
    }

    pub(super) fn apply(&mut self, c: &mut Lifecycle<View>, op: Op) {
        let input = match op {
            Op::View(bits) => Input::View(moved(bits)),
            Op::Owned(bits, s) => Input::Owned(
                names(!bits)
                    .into_iter()
                    .filter(|n| self.view.owner_of(n) == Some(ME))
                    .map(|n| (name(n), spec(s)))
                    .collect(),
            ),
            Op::Upsert(n, s) => Input::SetChanged {
                upserts: vec![(name(NAMES[n]), spec(s))],
                removed: vec![],
            },
            Op::Remove(n) => Input::SetChanged {
                upserts: vec![],
                removed: vec![name(NAMES[n])],
            },
            Op::Message(n, d) => {
                self.next_waiter += 1;
                let deadline = self.now + u64::from(d);
                self.open
                    .insert(self.next_waiter, (name(NAMES[n]), deadline));
                message(self.next_waiter, NAMES[n], deadline)
            }
            Op::StartSlice => Input::StartSlice,
            Op::Exit(i, e) if !self.live.is_empty() => {
                let (name, instance) = self.live.remove(i % self.live.len());
                Input::Exited {
                    name,
                    instance,
                    exit: exit_of(e),
                }
            }
            Op::StaleExit(n, i) => {
                let (name, instance) = (name(NAMES[n]), u64::from(i));
                if self.live.contains(&(name.clone(), instance)) {
                    return;
                }
                Input::Exited {
                    name,
                    instance,
                    exit: exit_of(i),
                }
            }
            Op::SpawnFailed(i) if !self.live.is_empty() => {
                let (name, instance) = self.live.remove(i % self.live.len());
                Input::SpawnFailed {
                    name,
                    instance,
                    error: RemoteError::UnknownKind { kind: "k".into() },
                }
            }
            Op::Undeliverable(i) if !self.delivered.is_empty() => {
                let (waiter, name, instance, deadline) =
                    self.delivered.remove(i % self.delivered.len());
                self.answered.remove(&waiter);
                self.open.insert(waiter, (name.clone(), deadline));
                Input::Undeliverable {
                    waiter,
                    name,
                    instance,
                    kind: "k".into(),
                    deadline_ms: deadline,
                }
            }
            Op::StateSaved(i) if !self.passivating.is_empty() => {
                let (name, instance) = self.passivating.remove(i % self.passivating.len());
                let state = vec![u8::try_from(instance % 256).unwrap_or(0)];
                if self
                    .saved_from
                    .get(&name)
                    .is_none_or(|&from| from < instance)
                {
                    self.saved_from.insert(name.clone(), instance);
                    self.saved.insert(name.clone(), state.clone());
                }
                Input::StateSaved {
                    name,
                    instance,
                    state: Some(state),
                }
            }
            Op::Fire(i, advance) if !self.timers.is_empty() => {
                let (at, timer) = self.timers.remove(i % self.timers.len());
                self.now = self.now.max(at).max(self.now + u64::from(advance) / 10);
                Input::Timer(timer)
            }
            _ => return,
        };
        self.feed(c, input);
    }

    /// Fires every timer in time order until none is left.
    pub(super) fn run_out_the_clock(&mut self, c: &mut Lifecycle<View>) {
        while !self.timers.is_empty() {
            self.timers.sort_by_key(|(at, _)| *at);
            let (at, timer) = self.timers.remove(0);
            self.now = self.now.max(at);
            self.feed(c, Input::Timer(timer));
        }
    }
}

pub(super) fn names(bits: u8) -> Vec<&'static str> {
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

pub(super) fn moved(bits: u8) -> View {
    view(&names(bits))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Checked on every effect by the harness: no two instances of one name
    /// are ever told to run, only owned names start, deliveries go to live
    /// instances, no queued start survives a view that moved it, and every
    /// message is answered at most once; after the clock runs out, exactly
    /// once.
    #[test]
    fn the_lifecycle_laws_hold_for_any_input_sequence(ops in proptest::collection::vec(op(), 0..80)) {
        let mut c = core();
        let mut h = Harness::default();
        for op in ops {
            h.apply(&mut c, op);
        }
        h.run_out_the_clock(&mut c);
        prop_assert!(h.open.is_empty(), "messages never answered: {:?}", h.open);
    }
}

#[test]
fn a_queued_bird_of_a_handoff_kind_a_message_waits_for_starts_before_its_slice() {
    let mut c = core().with_handoff(["k".to_owned()], 2_000);
    // More than one slice of starts queued at once.
    let names: Vec<String> = (0..STARTS_PER_SLICE + 10)
        .map(|i| format!("q{i:04}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let queued = c.handle(upsert(&refs), 0);
    assert!(
        !queued.iter().any(|e| matches!(e, Effect::Spawn { .. })),
        "{queued:?}"
    );
    let last = name(refs[refs.len() - 1]);
    let effects = c.handle(message(9, &last, 5_000), 1);
    assert!(
        matches!(&effects[..], [.., Effect::Spawn { name, instance: a, .. }, Effect::Deliver { waiter: 9, instance: b, .. }] if *name == last && a == b),
        "{effects:?}"
    );
    // Its slice does not start it again.
    let spawned: usize = (0..2)
        .map(|_| {
            c.handle(Input::StartSlice, 2)
                .iter()
                .filter(|e| matches!(e, Effect::Spawn { name, .. } if *name == last))
                .count()
        })
        .sum();
    assert_eq!(spawned, 0);
}

#[test]
fn an_owned_list_read_before_a_later_change_starts_what_it_lists_and_stops_nothing() {
    let mut c = core();
    running(&mut c, &["a"]);
    // Read before "a" was added: a complete list would stop "a".
    let stale = c.handle(Input::OwnedStale(vec![(name("b"), spec(0))]), 1);
    assert!(
        !stale.iter().any(|e| matches!(e, Effect::Stop { .. })),
        "{stale:?}"
    );
    let started = spawned(&c.handle(Input::StartSlice, 1));
    assert_eq!(started, [("b".to_owned(), 2)]);
    // A complete list does settle what runs here.
    let complete = c.handle(Input::Owned(vec![(name("b"), spec(0))]), 2);
    assert!(
        complete.contains(&Effect::Stop {
            name: name("a"),
            instance: 1
        }),
        "{complete:?}"
    );
}

#[test]
fn a_reconciliation_queues_only_what_would_change() {
    let mut c = core();
    running(&mut c, &["same", "respec", "stopping"]);
    // "stopping" is told to stop (a new spec arrived): the list's spec
    // for it is not what runs once it is gone, so it is queued again.
    c.handle(
        Input::SetChanged {
            upserts: vec![(name("stopping"), spec(7))],
            removed: vec![],
        },
        1,
    );
    c.handle(Input::StartSlice, 1);
    assert_eq!(c.queued(), 0);
    let table: [(&str, u8, bool); 4] = [
        // (name, spec in the list, queued by the reconciliation)
        ("same", 0, false),
        ("respec", 1, true),
        ("stopping", 0, true),
        ("new", 0, true),
    ];
    let owned = table.iter().map(|(n, s, _)| (name(n), spec(*s))).collect();
    let effects = c.handle(Input::Owned(owned), 2);
    let want = table.iter().filter(|(_, _, q)| *q).count();
    assert_eq!(c.queued(), want, "{effects:?}");
    // Only "same" is left alone: nothing at all queued for it.
    let mut quiet = core();
    running(&mut quiet, &["same"]);
    let effects = quiet.handle(Input::Owned(vec![(name("same"), spec(0))]), 2);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(quiet.queued(), 0);
}

#[test]
fn a_message_for_an_unknown_name_waits_for_the_owned_list_being_read() {
    let mut c = core();
    c.handle(Input::ReadingOwned, 0);
    let parked = c.handle(message(1, "a", 1_000), 1);
    assert!(
        !parked.iter().any(|e| matches!(e, Effect::Reply { .. })),
        "{parked:?}"
    );
    // The list holds it: it starts and gets the message.
    let effects = c.handle(Input::Owned(vec![(name("a"), spec(0))]), 2);
    assert!(effects.is_empty() || !effects.iter().any(|e| matches!(e, Effect::Reply { .. })));
    let started = c.handle(Input::StartSlice, 3);
    assert!(
        started
            .iter()
            .any(|e| matches!(e, Effect::Deliver { waiter: 1, .. })),
        "{started:?}"
    );
    // Without a read in progress, an unknown name is not found at once.
    let effects = c.handle(message(2, "zz", 1_000), 4);
    assert!(
        matches!(
            &effects[..],
            [Effect::Reply {
                waiter: 2,
                error: RemoteError::NotFound { .. }
            }]
        ),
        "{effects:?}"
    );
}

/// Every bird of a node has one entry for its whole life: a field added
/// inline grows every hosting node by that much per bird (stop 19 took the
/// entry from 225 to 80 bytes, stop 21 to 72; docs/BENCHMARKS.md, "Stop 19").
#[test]
fn a_birds_entry_stays_small() {
    let local = std::mem::size_of::<super::Local>();
    let state = std::mem::size_of::<super::State>();
    assert!(
        state <= 16,
        "State is {state} bytes: box the new variant's data"
    );
    assert!(
        local <= 72,
        "Local is {local} bytes: box what few birds need"
    );
}
