//! Idle passivation: scenarios and the laws over random input sequences.

use super::tests::{
    Harness, ME, View, exited, message, name, op, running, spawned, spec, upsert, view,
};
use super::*;
use proptest::prelude::*;

const IDLE: u64 = 100;

fn sleepy(hands_off: bool) -> Lifecycle<View> {
    let c = Lifecycle::new(ME, View::default(), Backoff::default())
        .with_passivation([("k".to_owned(), IDLE)]);
    if hands_off {
        c.with_handoff(["k".to_owned()], 2_000)
    } else {
        c
    }
}

fn idle(n: &str, instance: u64) -> Input<View> {
    Input::Timer(Timer::Idle {
        name: name(n),
        instance,
    })
}

fn saved(n: &str, instance: u64, state: &[u8]) -> Input<View> {
    Input::StateSaved {
        name: name(n),
        instance,
        state: Some(state.to_vec()),
    }
}

fn asleep(c: &Lifecycle<View>) -> Vec<String> {
    let mut names: Vec<String> = c.passivated_only().map(|n| n.to_string()).collect();
    names.sort();
    names
}

/// Runs `a` (instance 1), lets it idle out and finish passivating, with
/// state `[7]` for a kind with a state.
fn passivated(c: &mut Lifecycle<View>, hands_off: bool) {
    running(c, &["a"]);
    assert_eq!(
        c.handle(idle("a", 1), IDLE),
        [Effect::Passivate {
            name: name("a"),
            instance: 1,
            take_state: hands_off
        }]
    );
    if hands_off {
        c.handle(saved("a", 1, &[7]), IDLE);
    }
    c.handle(exited("a", 1, Exit::Completed), IDLE);
    assert_eq!(asleep(c), ["a"]);
}

#[test]
fn a_start_arms_the_idle_timer_of_a_kind_that_passivates() {
    let mut c = sleepy(false);
    c.handle(upsert(&["a"]), 0);
    let effects = c.handle(Input::StartSlice, 5);
    assert!(effects.contains(&Effect::Timer {
        at_ms: 5 + IDLE,
        timer: Timer::Idle {
            name: name("a"),
            instance: 1
        }
    }));
    // Kinds that do not passivate arm nothing.
    let mut c = core_without_passivation();
    c.handle(upsert(&["a"]), 0);
    let effects = c.handle(Input::StartSlice, 5);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Timer { .. })));
}

fn core_without_passivation() -> Lifecycle<View> {
    super::tests::core()
}

#[test]
fn a_message_before_the_idle_time_postpones_passivation() {
    let mut c = sleepy(false);
    running(&mut c, &["a"]);
    c.handle(message(1, "a", 10_000), 60);
    assert_eq!(
        c.handle(idle("a", 1), IDLE),
        [Effect::Timer {
            at_ms: 60 + IDLE,
            timer: Timer::Idle {
                name: name("a"),
                instance: 1
            }
        }]
    );
    assert!(matches!(
        c.handle(idle("a", 1), 60 + IDLE)[..],
        [Effect::Passivate { .. }]
    ));
}

/// The exit report and the state come in either order; the bird is asleep
/// once both are in, and a message that came meanwhile wakes it then.
#[test]
fn passivation_completes_once_exit_and_state_are_both_in() {
    // (state first, a message while passivating)
    for (state_first, message_meanwhile) in
        [(true, false), (false, false), (true, true), (false, true)]
    {
        let mut c = sleepy(true);
        running(&mut c, &["a"]);
        c.handle(idle("a", 1), IDLE);
        if message_meanwhile {
            let parked = c.handle(message(1, "a", 10_000), IDLE);
            assert!(!parked.iter().any(|e| matches!(e, Effect::Deliver { .. })));
        }
        let first = if state_first {
            saved("a", 1, &[7])
        } else {
            exited("a", 1, Exit::Completed)
        };
        assert!(spawned(&c.handle(first, IDLE)).is_empty());
        assert!(asleep(&c).is_empty(), "asleep before both are in");
        let second = if state_first {
            exited("a", 1, Exit::Completed)
        } else {
            saved("a", 1, &[7])
        };
        let effects = c.handle(second, IDLE);
        if message_meanwhile {
            assert_eq!(
                effects[..2],
                [
                    Effect::Resume {
                        name: name("a"),
                        spec: spec(0),
                        instance: 2,
                        state: vec![7]
                    },
                    Effect::Timer {
                        at_ms: 2 * IDLE,
                        timer: Timer::Idle {
                            name: name("a"),
                            instance: 2
                        }
                    },
                ]
            );
            assert!(effects.contains(&Effect::Deliver {
                waiter: 1,
                name: name("a"),
                instance: 2
            }));
        } else {
            assert_eq!(effects, []);
            assert_eq!(asleep(&c), ["a"]);
        }
    }
}

/// What wakes a passivated bird (only a message, once) and from what.
#[test]
fn a_message_wakes_a_passivated_bird_exactly_once_from_its_saved_state() {
    // (kind hands its state over, expected start)
    for hands_off in [true, false] {
        let mut c = sleepy(hands_off);
        passivated(&mut c, hands_off);
        let effects = c.handle(message(1, "a", 10_000), 500);
        let start = if hands_off {
            Effect::Resume {
                name: name("a"),
                spec: spec(0),
                instance: 2,
                state: vec![7],
            }
        } else {
            Effect::Spawn {
                name: name("a"),
                spec: spec(0),
                instance: 2,
            }
        };
        assert_eq!(effects[0], start);
        assert!(effects.contains(&Effect::Deliver {
            waiter: 1,
            name: name("a"),
            instance: 2
        }));
        // The next message finds it running: no second start.
        assert_eq!(
            c.handle(message(2, "a", 10_000), 501),
            [Effect::Deliver {
                waiter: 2,
                name: name("a"),
                instance: 2
            }]
        );
    }
}

#[test]
fn a_message_of_the_wrong_kind_does_not_wake_a_passivated_bird() {
    let mut c = sleepy(false);
    passivated(&mut c, false);
    let effects = c.handle(
        Input::Message {
            waiter: 1,
            name: name("a"),
            kind: "other".into(),
            deadline_ms: 10_000,
        },
        500,
    );
    assert!(matches!(
        effects[..],
        [Effect::Reply {
            error: RemoteError::WrongKind { .. },
            ..
        }]
    ));
    assert_eq!(asleep(&c), ["a"]);
}

#[test]
fn a_passivated_bird_is_never_counted_as_lost_by_reconciliation() {
    let mut c = sleepy(true);
    passivated(&mut c, true);
    // The periodic reconcile and a set change that repeats its spec.
    // (Nothing even queued: the list repeats the spec it sleeps with.)
    let owned = c.handle(Input::Owned(vec![(name("a"), spec(0))]), 500);
    assert_eq!(owned, []);
    assert_eq!(c.handle(Input::StartSlice, 500), []);
    assert_eq!(c.handle(upsert(&["a"]), 600), [Effect::StartSliceLater]);
    assert_eq!(c.handle(Input::StartSlice, 600), []);
    assert_eq!(asleep(&c), ["a"]);
    // A new spec (a concurrent start elsewhere won) keeps it asleep, and it
    // wakes as that one, from its arguments.
    let new_spec = Input::SetChanged {
        upserts: vec![(name("a"), spec(1))],
        removed: vec![],
    };
    c.handle(new_spec, 700);
    assert_eq!(c.handle(Input::StartSlice, 700), []);
    let effects = c.handle(message(1, "a", 10_000), 800);
    assert_eq!(
        effects[0],
        Effect::Spawn {
            name: name("a"),
            spec: spec(1),
            instance: 2
        }
    );
}

#[test]
fn a_passivated_bird_that_moves_sends_its_saved_state_to_the_new_owner() {
    let mut c = sleepy(true);
    passivated(&mut c, true);
    let effects = c.handle(Input::View(view(&["a"])), 500);
    assert_eq!(
        effects,
        [Effect::SendState {
            name: name("a"),
            kind: "k".into(),
            state: Some(vec![7]),
            to: "other".into()
        }]
    );
    assert!(asleep(&c).is_empty());
}

#[test]
fn a_bird_that_moves_while_it_passivates_sends_its_state_once_taken() {
    let mut c = sleepy(true);
    running(&mut c, &["a"]);
    c.handle(idle("a", 1), IDLE);
    // Moved before its state is in: nothing to send yet.
    assert_eq!(c.handle(Input::View(view(&["a"])), IDLE), []);
    assert_eq!(c.handle(exited("a", 1, Exit::Completed), IDLE), []);
    assert_eq!(
        c.handle(saved("a", 1, &[9]), IDLE),
        [Effect::SendState {
            name: name("a"),
            kind: "k".into(),
            state: Some(vec![9]),
            to: "other".into()
        }]
    );
    // Forgotten here: a message is sent after it.
    assert!(matches!(
        c.handle(message(1, "a", 10_000), IDLE)[..],
        [Effect::Reply {
            error: RemoteError::Moved { .. },
            ..
        }]
    ));
}

#[test]
fn a_stop_of_a_passivated_bird_forgets_it() {
    for hands_off in [true, false] {
        let mut c = sleepy(hands_off);
        passivated(&mut c, hands_off);
        let removed = Input::SetChanged {
            upserts: vec![],
            removed: vec![name("a")],
        };
        assert_eq!(c.handle(removed, 500), []);
        assert!(asleep(&c).is_empty());
        assert!(matches!(
            c.handle(message(1, "a", 10_000), 500)[..],
            [Effect::Reply {
                error: RemoteError::NotFound { .. },
                ..
            }]
        ));
    }
}

#[test]
fn a_stop_while_passivating_ends_with_the_exit_report() {
    let mut c = sleepy(true);
    running(&mut c, &["a"]);
    c.handle(idle("a", 1), IDLE);
    let removed = Input::SetChanged {
        upserts: vec![],
        removed: vec![name("a")],
    };
    assert_eq!(c.handle(removed, IDLE), []);
    assert_eq!(c.handle(exited("a", 1, Exit::Completed), IDLE), []);
    assert_eq!(c.handle(saved("a", 1, &[7]), IDLE), []);
    assert!(asleep(&c).is_empty());
    assert_eq!(c.running().count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The lifecycle laws (see `tests.rs`) with birds that passivate, and
    /// those of passivation, checked on every input by the harness: a
    /// passivated bird starts again only on a message to it and once per
    /// message (so reconciliations, views and timers never count it as
    /// lost and restart it), from the state it saved; no two instances.
    #[test]
    fn the_laws_hold_with_passivation(
        hands_off in any::<bool>(),
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let mut c = sleepy(hands_off);
        let mut h = Harness::new(hands_off);
        for op in ops {
            h.apply(&mut c, op);
        }
        h.run_out_the_clock(&mut c);
    }
}

/// The random sequences do reach the interesting states (a law never
/// checked proves nothing).
#[test]
fn random_sequences_do_wake_passivated_birds() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut woken = 0;
    for _ in 0..300 {
        let ops = proptest::collection::vec(op(), 0..120)
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let mut c = sleepy(true);
        let mut h = Harness::new(true);
        for op in ops {
            h.apply(&mut c, op);
        }
        woken += h.woken;
    }
    assert!(woken > 0, "no sequence woke a passivated bird");
}
