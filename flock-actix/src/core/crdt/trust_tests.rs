//! What a peer can and cannot make a replica accept (the trust rule), and
//! the folding of dead incarnations.

use super::tests::{NODES, Op, Sim, checked_join, op, rid, spec, visible};
use super::*;
use proptest::prelude::*;

/// A peer that holds the cluster cookie but lies.
fn liar() -> ReplicaId {
    rid("liar", 1)
}

/// A delta whose context claims every dot of `about` up to `counter`.
fn claim(about: &ReplicaId, counter: u64) -> BirdMap {
    let mut forged = BirdMap::new();
    forged.ctx.vv.insert(about.clone(), counter);
    forged
}

#[test]
fn a_claim_about_this_replicas_own_future_dots_is_refused_and_its_next_add_still_counts() {
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    let add = a.add("x", spec(1), 1).unwrap();
    b.join(a.id(), &add).unwrap();
    let before = a.state().clone();
    assert_eq!(
        a.join(&liar(), &claim(a.id(), u64::MAX)),
        Err(ForgedOwnDots {
            from: liar(),
            claimed: u64::MAX,
            minted: 1,
        })
    );
    let mut floor = BirdMap::new();
    floor.ctx.floors.insert("n1".into(), 2);
    assert!(
        a.join(&liar(), &floor).is_err(),
        "a floor over this incarnation"
    );
    assert_eq!(a.state(), &before, "nothing of a refused message applies");
    // The next add mints dot 2, not a wrapped 0 that every peer has seen.
    let delta = a.add("y", spec(2), 2).unwrap();
    assert_eq!(
        delta.get_entry("y").unwrap().0,
        super::tests::dot("n1", 1, 2)
    );
    b.join(a.id(), &delta).unwrap();
    assert_eq!(b.state().get("y"), Some(spec(2)));
}

#[test]
fn an_exhausted_dot_counter_is_an_error_not_a_wrap() {
    let mut a = Replica::new(rid("n1", 1));
    a.set_minted(u64::MAX - 1);
    a.add("last", spec(1), 1).unwrap();
    let before = a.state().clone();
    assert_eq!(a.add("one-too-many", spec(1), 2), Err(CounterExhausted));
    assert_eq!(a.state(), &before);
}

#[test]
fn a_claim_about_a_live_replicas_future_dots_drops_none_of_its_next_adds() {
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    let add = a.add("x", spec(1), 1).unwrap();
    b.join(a.id(), &add).unwrap();
    let changes = b.join(&liar(), &claim(a.id(), 1 << 40)).unwrap();
    assert!(changes.clipped_claims());
    // What a claim can do is what any peer's stop can do: x, which a had
    // shown b, goes.
    assert_eq!(changes.removed, vec!["x".to_owned()]);
    // What it cannot do: reach past what a has shown b.
    assert_eq!(b.state().context().max_counter(a.id()), 1);
    let delta = a.add("y", spec(2), 2).unwrap();
    let changes = checked_join(&mut b, &a.id().clone(), &delta);
    assert_eq!(changes.added, vec!["y".to_owned()]);
    assert!(!changes.clipped_claims());
}

#[test]
fn claims_about_a_replica_never_heard_from_are_accepted_so_a_new_node_learns_its_birds() {
    // A client started x and exited before n3 existed.
    let mut client = Replica::new(rid("client", 1));
    let mut n2 = Replica::new(rid("n2", 1));
    let add = client.add("x", spec(1), 1).unwrap();
    n2.join(client.id(), &add).unwrap();
    let mut n3 = Replica::new(rid("n3", 1));
    let changes = checked_join(&mut n3, &n2.id().clone(), &n2.state().clone());
    assert_eq!(changes.added, vec!["x".to_owned()]);
    assert!(!changes.clipped_claims());
    // Once a replica has spoken (here: its link came up), it is protected.
    n3.saw(&rid("n4", 1));
    assert!(
        n3.join(&liar(), &claim(&rid("n4", 1), 5))
            .unwrap()
            .clipped_claims()
    );
}

#[test]
fn a_removal_that_overtakes_the_add_it_removes_applies_when_sent_again() {
    let mut a = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    let mut c = Replica::new(rid("n3", 1));
    let add = a.add("x", spec(1), 1).unwrap();
    b.join(a.id(), &add).unwrap();
    let removal = b.remove("x");
    c.saw(a.id());
    // b's removal reaches c before a's add: a has not shown c that dot yet.
    let changes = checked_join(&mut c, &b.id().clone(), &removal);
    assert!(changes.clipped_claims(), "left unacknowledged");
    assert!(changes.is_empty());
    checked_join(&mut c, &a.id().clone(), &add);
    assert!(c.state().contains("x"));
    // b sends its unacknowledged delta again.
    let changes = checked_join(&mut c, &b.id().clone(), &removal);
    assert_eq!(changes.removed, vec!["x".to_owned()]);
    assert!(!changes.clipped_claims());
    a.join(b.id(), &removal).unwrap();
    assert_eq!(c.state(), b.state());
    assert_eq!(a.state(), b.state());
}

#[test]
fn what_a_sender_shows_of_its_own_dots_in_a_part_vouches_for_others_claims_before_its_transfer_completes()
 {
    // A client minted two birds; host b holds them; joiner c links to the
    // client (so trusts claims about it only as far as it has shown them).
    let mut client = Replica::new(rid("client", 1));
    let mut b = Replica::new(rid("n2", 1));
    let mut c = Replica::new(rid("n3", 1));
    for (i, name) in ["x", "y"].into_iter().enumerate() {
        let add = client.add(name, spec(1), i as u64 + 1).unwrap();
        b.join(&client.id().clone(), &add).unwrap();
    }
    c.saw(client.id());
    let host_state = b.state().clone();
    assert!(c.join(b.id(), &host_state).unwrap().clipped_claims());
    assert!(!c.state().contains("x"));
    // The first part of the client's own transfer: its context alone.
    let mut first_part = BirdMap::new();
    first_part.ctx = client.state().context().clone();
    assert!(c.vouch(client.id(), &first_part), "trust grew");
    assert!(!c.vouch(client.id(), &first_part), "nothing new shown");
    assert!(c.state().is_empty(), "a part alone is never joined");
    // The host's parked state now applies in full.
    let changes = checked_join(&mut c, &b.id().clone(), &host_state);
    assert!(!changes.clipped_claims());
    assert_eq!(changes.added, vec!["x".to_owned(), "y".to_owned()]);
    // A liar's part vouches only for the liar.
    assert!(!c.vouch(&liar(), &claim(client.id(), 1 << 40)));
    assert!(
        c.join(&liar(), &claim(client.id(), 1 << 40))
            .unwrap()
            .clipped_claims()
    );
}

#[test]
fn a_relayed_delta_of_a_restarted_node_applies_in_full() {
    let mut old = Replica::new(rid("n1", 1));
    let mut b = Replica::new(rid("n2", 1));
    let mut c = Replica::new(rid("n3", 1));
    let add = old.add("x", spec(1), 1).unwrap();
    b.join(old.id(), &add).unwrap();
    c.saw(old.id());
    // n1 crashes before reaching c; b relays its delta.
    assert!(c.join(b.id(), &add).unwrap().clipped_claims());
    assert!(!c.state().contains("x"));
    // n1 restarts: its old incarnation is dead, so it mints nothing more
    // and every claim about it is accepted.
    c.saw(&rid("n1", 2));
    let changes = checked_join(&mut c, &b.id().clone(), &add);
    assert_eq!(changes.added, vec!["x".to_owned()]);
    assert!(!changes.clipped_claims());
}

#[test]
fn a_floor_never_covers_a_live_incarnation() {
    let mut b = Replica::new(rid("n2", 1));
    let mut n1 = Replica::new(rid("n1", 5));
    let add = n1.add("x", spec(1), 1).unwrap();
    b.join(n1.id(), &add).unwrap();
    let mut forged = BirdMap::new();
    forged.ctx.floors.insert("n1".into(), u64::MAX);
    assert!(b.join(&liar(), &forged).unwrap().clipped_claims());
    // Accepted up to the live incarnation 5, which it does not cover.
    assert_eq!(b.state().context().floor("n1"), 5);
    let add = n1.add("y", spec(2), 2).unwrap();
    let changes = checked_join(&mut b, &n1.id().clone(), &add);
    assert_eq!(changes.added, vec!["y".to_owned()]);
    assert!(b.state().contains("x"));
}

/// A cluster where node n1 restarts `restarts` times, adding one bird per
/// incarnation and stopping the previous incarnation's bird half of the
/// time. Returns the stable replicas (n2 compacting, n3 learning only
/// through n2's full states) and the last n1.
fn churn(restarts: u64, fold_after: u64, mut check: impl FnMut(&Replica)) -> [Replica; 3] {
    let mut n2 = Replica::new(rid("n2", 1)).with_fold_after(fold_after);
    let mut n3 = Replica::new(rid("n3", 1)).with_fold_after(fold_after);
    let mut n1 = Replica::new(rid("n1", 1));
    for incarnation in 1..=restarts {
        let now = incarnation * 1_000;
        n1 = Replica::new(rid("n1", incarnation)).with_fold_after(fold_after);
        n1.join(n2.id(), n2.state()).unwrap();
        let mut delta = n1.add(&format!("bird{incarnation}"), spec(1), now).unwrap();
        if incarnation % 2 == 0 {
            delta.join_delta(&n1.remove(&format!("bird{}", incarnation - 1)));
        }
        n2.join(n1.id(), &delta).unwrap();
        let fold = n1.compact(now);
        n2.join(n1.id(), &fold).unwrap();
        let fold = n2.compact(now);
        n3.join(n2.id(), &fold).unwrap();
        if incarnation % 100 == 0 {
            n3.join(n2.id(), n2.state()).unwrap();
            n3.compact(now);
        }
        check(&n2);
    }
    n3.join(n1.id(), n1.state()).unwrap();
    n3.join(n2.id(), n2.state()).unwrap();
    n2.join(n3.id(), n3.state()).unwrap();
    n1.join(n2.id(), n2.state()).unwrap();
    [n1, n2, n3]
}

#[test]
fn two_thousand_restarts_of_one_node_keep_the_context_bounded_and_replicas_converge() {
    // A dead incarnation folds 10 s after it is seen dead; one restart a
    // second, so at most ~10 dead incarnations wait at any time.
    let mut peak = 0;
    let [n1, n2, n3] = churn(2_000, 10_000, |n2| {
        peak = peak.max(n2.state().size().vv_entries);
    });
    assert!(peak <= 13, "peak of {peak} version-vector entries");
    let size = n2.state().size();
    assert!(size.vv_entries <= 13, "{size:?}");
    assert_eq!(size.floors, 1);
    assert_eq!(n2.state(), n3.state());
    assert_eq!(n1.state(), n2.state());
    // Folding forgot nothing visible: every odd incarnation's bird was
    // stopped by the next, the last one's is alive.
    let birds: Vec<String> = visible(n2.state()).into_keys().collect();
    let mut expected: Vec<String> = (1..=2_000u64)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("bird{i}"))
        .collect();
    expected.sort();
    assert_eq!(birds, expected);
}

#[test]
fn without_folding_every_restart_would_keep_an_entry() {
    let [_, n2, _] = churn(200, u64::MAX, |_| {});
    assert_eq!(n2.state().size().vv_entries, 200);
    assert_eq!(n2.state().size().floors, 0);
}

/// One sim step, plus the operations of a lying peer and of restarts.
#[derive(Debug, Clone)]
enum Step {
    Honest(Op),
    /// The liar claims every dot of replica `about` up to what `to` has
    /// seen of it plus `ahead`.
    Lie {
        to: usize,
        about: usize,
        ahead: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => op().prop_map(Step::Honest),
        1 => (0..3usize, 0..3usize, 1..1_000u64)
            .prop_map(|(to, about, ahead)| Step::Lie { to, about, ahead }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a lying peer claims, an add made after its claims reaches
    /// every replica, and the replicas still converge.
    #[test]
    fn a_lying_peer_cannot_drop_adds_made_after_its_claims(
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let mut sim = Sim::new();
        // Every replica has spoken to every other (a claim about a replica
        // never heard from is accepted in full: see `trust`).
        sim.full_sync();
        for step in &steps {
            match step {
                Step::Honest(op) => sim.apply(op),
                Step::Lie { to, about, ahead } => {
                    let about_id = sim.replicas[*about].id().clone();
                    let seen = sim.replicas[*to].state().context().max_counter(&about_id);
                    let lie = claim(&about_id, seen + ahead);
                    // A claim about the receiver itself beyond its own
                    // dots is refused whole; others are cut off.
                    let _ = sim.replicas[*to].join(&liar(), &lie);
                }
            }
        }
        for r in 0..NODES.len() {
            let delta = sim.replicas[r].add(&format!("after{r}"), spec(9), 1_000).unwrap();
            sim.mutate(r, delta);
        }
        sim.full_sync();
        let first = sim.replicas[0].state().clone();
        for replica in &sim.replicas {
            prop_assert_eq!(replica.state(), &first);
            for r in 0..NODES.len() {
                prop_assert_eq!(replica.state().get(&format!("after{r}")), Some(spec(9)));
            }
        }
    }

    /// Folding dead incarnations changes nothing visible and keeps the
    /// replicas converging, given its assumption: by the time a dead
    /// incarnation folds, everything it sent has been delivered.
    #[test]
    fn folding_dead_incarnations_keeps_the_visible_map_and_convergence(
        before in prop::collection::vec(op(), 0..40),
        after in prop::collection::vec(op(), 0..40),
        restarted in 0..3usize,
    ) {
        let mut sim = Sim::restarted_between(&before, restarted, &after);
        while let Some((from, to, delta)) = sim.in_flight.pop() {
            sim.deliver(from, to, &delta);
        }
        sim.full_sync();
        let unfolded = visible(sim.replicas[0].state());
        for r in 0..NODES.len() {
            sim.replicas[r] = sim.replicas[r].clone().with_fold_after(0);
            let fold = sim.replicas[r].compact(1);
            prop_assert_eq!(visible(sim.replicas[r].state()), unfolded.clone());
            if !fold.is_empty() {
                sim.mutate(r, fold);
            }
        }
        sim.full_sync();
        let first = sim.replicas[0].state().clone();
        prop_assert_eq!(visible(&first), unfolded);
        let old = rid(NODES[restarted], 1);
        for replica in &sim.replicas {
            prop_assert_eq!(replica.state(), &first);
            prop_assert!(!replica.state().context().vv.contains_key(&old), "folded");
        }
    }
}
