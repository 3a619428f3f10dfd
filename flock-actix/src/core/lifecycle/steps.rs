//! A host's reaction to a joiner, timed step by step in this process: the
//! replica's owned-set scan (what `OwnedBy` does) and the core's steps, on
//! a host of a million-bird cluster of three that a fourth node joins:
//! `cargo test --release -p flock-actix --lib -- --ignored --nocapture
//! a_hosts_reaction_to_a_joiner_step_by_step` (`FLOCK_STEP_NAMES`, default
//! 1 M). Figures: docs/BENCHMARKS.md "Stop 22: the seed's hand-off".
//! Ignored: a measurement, not a check.

use crate::core::crdt::{BirdSpec, Replica, ReplicaId};
use crate::core::lifecycle::{Effect, Input, Lifecycle, Name, Owners};
use crate::core::placement::{HostedMember, KindPlacement, Member};
use crate::core::supervision::Backoff;
use std::time::Instant;

use super::reads::tests::Kp;

const KIND: &str = "flock_bench::birds::Sink";
const ME: &str = "mb1@127.0.0.1";

fn view(nodes: usize) -> KindPlacement {
    KindPlacement::new(
        crate::core::placement::DEFAULT_SHARDS,
        (1..=nodes)
            .map(|i| HostedMember::hosting(Member::new(format!("mb{i}@127.0.0.1"), 1), [KIND])),
    )
    .expect("valid placement")
}

/// What the replica's `OwnedBy` handler does: every name's owner, a copy
/// of each owned one's spec.
fn scan(state: &crate::core::crdt::BirdMap, p: &KindPlacement) -> Vec<(Name, BirdSpec)> {
    let t = p.for_kind(KIND);
    state
        .specs()
        .filter(|&(name, _, _)| t.owner(name).is_ok_and(|o| **o == *ME))
        .map(BirdSpec::named)
        .collect()
}

/// `Lifecycle::on_owned` before stop 22, kept here: the set of kept names
/// built for every complete list, and a lookup per listed name.
fn old_on_owned(core: &mut Lifecycle<Kp>, owned: Vec<(Name, BirdSpec)>, out: &mut Vec<Effect>) {
    core.reading_owned = false;
    for (name, _) in &owned {
        core.unconfirmed.remove(name);
    }
    let keep: std::collections::HashSet<&Name> = owned.iter().map(|(n, _)| n).collect();
    let spare = core.handoff_wait_ms.saturating_mul(5);
    let mut gone: Vec<Name> = core
        .birds
        .keys()
        .filter(|n| !keep.contains(n))
        .filter(|n| {
            core.unconfirmed
                .get(*n)
                .is_none_or(|at| 0u64.saturating_sub(*at) > spare)
        })
        .cloned()
        .collect();
    gone.sort_unstable();
    for name in gone {
        core.stop(&name, false, out);
    }
    for (name, spec) in owned {
        if core.told_to_run(&name, &spec) {
            continue;
        }
        if core.owned_here_as(&spec.kind, &name) {
            core.enqueue(name, spec, out);
        }
    }
    core.redirect_stale_waiters(0, out);
}

/// The names a view input stops, before stop 22 (each bird's kind looked up
/// again by name) and now (read from its entry).
fn lost(core: &Lifecycle<Kp>, view: &Kp, old: bool) -> usize {
    let mine = |kind: &str, n: &str| view.owner_of_kind(kind, n) == Some(ME);
    if old {
        core.pending
            .keys()
            .chain(core.birds.keys())
            .filter(|n| {
                let kind = core.birds.get(*n).map(|l| l.spec.kind()).unwrap_or(KIND);
                !mine(kind, n)
            })
            .count()
    } else {
        core.birds
            .iter()
            .filter(|(n, l)| !mine(l.spec.kind(), n))
            .count()
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn a_hosts_reaction_to_a_joiner_step_by_step() {
    let n: usize = std::env::var("FLOCK_STEP_NAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut client = Replica::new(ReplicaId {
        node: "mbclient@127.0.0.1".into(),
        incarnation: 1,
    });
    let spec = BirdSpec {
        kind: KIND.into(),
        args: vec![0],
    };
    let names: Vec<String> = (0..n).map(|i| format!("mb{n}-{i}")).collect();
    for batch in names.chunks(10_000) {
        client.add_new(batch.iter().map(|name| (name.as_str(), &spec)), 1);
    }
    let state = client.state();
    let (three, four) = (view(3), view(4));
    let mut core =
        Lifecycle::new(ME, Kp(three.clone()), Backoff::default()).with_kinds([KIND.to_owned()]);
    core.handle(Input::Owned(scan(state, &three)), 0);
    while core.queued() > 0 {
        core.handle(Input::StartSlice, 0);
    }
    let hosted = core.running().count();
    println!("{n} names, {hosted} run here; step: ms");

    // The periodic read (every 5 s; now put off while settled), and what
    // every view change cost before stop 22.
    let t = Instant::now();
    let list = scan(state, &three);
    println!("  periodic: the replica's scan        {:8.1}", ms(t));
    let again = list.clone();
    let t = Instant::now();
    let mut effects = Vec::new();
    old_on_owned(&mut core, list, &mut effects);
    println!("  periodic: the core's reconcile, before {:8.1}", ms(t));
    assert!(effects.is_empty(), "nothing to do: {}", effects.len());
    let t = Instant::now();
    let effects = core.handle(Input::Owned(again), 0);
    println!("  periodic: the core's reconcile, now {:8.1}", ms(t));
    assert!(effects.is_empty(), "nothing to do: {}", effects.len());
    let kp4 = Kp(four.clone());
    let t = Instant::now();
    let n_old = lost(&core, &kp4, true);
    println!(
        "  view change: lost names, before     {:8.1} ({n_old})",
        ms(t)
    );
    let t = Instant::now();
    let n_new = lost(&core, &kp4, false);
    println!(
        "  view change: lost names, now        {:8.1} ({n_new})",
        ms(t)
    );
    assert_eq!(n_old, n_new);

    // The joiner arrives.
    let t = Instant::now();
    let gained = four.gained(&three, ME);
    println!("  view change: the shards gained      {:8.1}", ms(t));
    assert!(gained.is_empty());
    let t = Instant::now();
    let effects = core.handle(Input::View(Kp(four.clone())), 0);
    println!(
        "  view change: the core's view input  {:8.1} ({} effects)",
        ms(t),
        effects.len()
    );
    let t = Instant::now();
    let list = scan(state, &four);
    println!("  view change, before: the scan       {:8.1}", ms(t));
    let again = list.clone();
    let t = Instant::now();
    let mut effects = Vec::new();
    old_on_owned(&mut core, list, &mut effects);
    println!("  view change, before: the reconcile  {:8.1}", ms(t));
    let t = Instant::now();
    core.handle(Input::Owned(again), 0);
    println!(
        "  view change, (not done now) the reconcile as now {:8.1}",
        ms(t)
    );
}
