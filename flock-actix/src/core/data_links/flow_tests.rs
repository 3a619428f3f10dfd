use super::flow::*;
use proptest::prelude::*;

fn flow() -> Flow<u32> {
    Flow::new(FlowConfig {
        high: 100,
        low: 25,
        max_held_bytes: 60,
    })
}

/// One step of a scenario: offer `(bytes, item)` with the writer's unsent
/// bytes and the expected answer, or the writer at `unsent` and the item
/// expected back.
enum Step {
    Offer(usize, u32, usize, Admit<u32>),
    Drained(usize, Option<u32>),
}
use Step::*;

#[test]
fn scenarios() {
    let table: Vec<(&str, Vec<Step>)> = vec![
        (
            "below the high mark everything is written at once",
            vec![
                Offer(10, 1, 0, Admit::Write(1)),
                Offer(10, 2, 99, Admit::Write(2)),
            ],
        ),
        (
            "at the high mark a message is held, and so is every later one",
            vec![
                Offer(10, 1, 100, Admit::Held),
                // The writer drained, but 1 is held: 2 must not overtake it.
                Offer(10, 2, 0, Admit::Held),
                Drained(0, Some(1)),
                Drained(10, Some(2)),
                Drained(20, None),
                Offer(10, 3, 20, Admit::Write(3)),
            ],
        ),
        (
            "held messages wait until the writer is down to the low mark",
            vec![
                Offer(10, 1, 120, Admit::Held),
                Drained(60, None),
                Drained(26, None),
                Drained(25, Some(1)),
            ],
        ),
        (
            "once at the low mark, released until the writer's real count reaches the high mark",
            vec![
                Offer(10, 1, 100, Admit::Held),
                Offer(10, 2, 100, Admit::Held),
                Offer(10, 3, 100, Admit::Held),
                Drained(20, Some(1)),
                // The estimate was 10, the frame took 70: above low, still
                // below high, so releasing goes on.
                Drained(90, Some(2)),
                // At high: stop, and wait for low again.
                Drained(100, None),
                Drained(50, None),
                Drained(25, Some(3)),
            ],
        ),
        (
            "a message larger than the room is still released first",
            vec![Offer(60, 1, 100, Admit::Held), Drained(25, Some(1))],
        ),
        (
            "refused once what is held would pass its bound; room again once drained",
            vec![
                Offer(30, 1, 100, Admit::Held),
                Offer(30, 2, 100, Admit::Held),
                Offer(1, 3, 100, Admit::Refused(3)),
                Drained(0, Some(1)),
                Offer(30, 4, 100, Admit::Held),
            ],
        ),
    ];
    for (name, steps) in table {
        let mut f = flow();
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Offer(bytes, item, unsent, want) => {
                    assert_eq!(f.offer(bytes, item, unsent), want, "{name}: step {i}");
                }
                Drained(unsent, want) => {
                    assert_eq!(f.drained(unsent), want, "{name}: step {i}");
                }
            }
        }
    }
}

#[test]
fn closing_gives_back_what_is_held_in_order() {
    let mut f = flow();
    f.offer(10, 1, 100);
    f.offer(10, 2, 100);
    assert_eq!(f.close(), vec![1, 2]);
    assert!(!f.holding());
    assert_eq!(f.held_bytes(), 0);
}

#[test]
fn the_marks_of_a_link_stay_under_its_hard_bound() {
    for max_frame in [1, 64 << 10, 1 << 20, 32 << 20] {
        let c = FlowConfig::for_link(max_frame, 7);
        assert!(c.low < c.high && c.high <= max_frame && c.high <= 1 << 20);
        assert_eq!(c.max_held_bytes, 7);
    }
}

#[test]
fn a_throttle_reports_at_most_once_per_period_and_counts_what_it_covered() {
    let mut t = Throttle::new(1000);
    assert_eq!(t.hit(0), Some(1));
    assert_eq!(t.hit(10), None);
    assert_eq!(t.hit(999), None);
    assert_eq!(t.hit(1000), Some(3));
    assert_eq!(t.hit(1001), None);
    assert_eq!(t.hit(5000), Some(2));
}

/// What a random run does: offer a message of some bytes, or let the
/// socket take some bytes.
#[derive(Debug, Clone)]
enum Op {
    Offer(usize),
    Socket(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..50).prop_map(Op::Offer),
        1 => (1usize..400).prop_map(Op::Socket),
    ]
}

proptest! {
    /// A writer modelled as a byte count the shell fills and the socket
    /// drains, each message taking between half and three times its
    /// estimate, with the shell's loop (released one at a time whenever
    /// the writer is at or below low while holding): messages leave in the
    /// order they were offered, none twice; the unsent bytes stay below
    /// high plus one message; what is held stays within its bound; a
    /// refusal happens only when the bound is reached; and once the socket
    /// takes everything, nothing stays held.
    #[test]
    fn messages_leave_in_order_within_bounds_and_none_is_lost(
        ops in prop::collection::vec(op(), 1..300),
        factor in prop::collection::vec(1usize..=6, 1..20),
    ) {
        let config = FlowConfig { high: 100, low: 25, max_held_bytes: 200 };
        let mut f: Flow<(u32, usize)> = Flow::new(config);
        let mut unsent = 0usize;
        let mut written: Vec<u32> = Vec::new();
        let mut refused: Vec<u32> = Vec::new();
        let mut next = 0u32;
        // Real size: the estimate times factor/2 (half to three times).
        let real = |id: u32, bytes: usize| (bytes * factor[id as usize % factor.len()]).div_ceil(2);
        let largest = 3 * 50;
        for op in ops {
            match op {
                Op::Offer(bytes) => {
                    let id = next;
                    next += 1;
                    let held_before = f.held_bytes();
                    match f.offer(bytes, (id, bytes), unsent) {
                        Admit::Write((id, bytes)) => {
                            unsent += real(id, bytes);
                            written.push(id);
                        }
                        Admit::Held => {}
                        Admit::Refused((id, _)) => {
                            prop_assert!(held_before + bytes > config.max_held_bytes);
                            refused.push(id);
                        }
                    }
                }
                Op::Socket(n) => unsent = unsent.saturating_sub(n),
            }
            if f.holding() && unsent <= config.low {
                let mut released = 0;
                while let Some((id, bytes)) = f.drained(unsent) {
                    unsent += real(id, bytes);
                    written.push(id);
                    released += 1;
                }
                prop_assert!(released > 0, "at low with messages held, one leaves");
            }
            prop_assert!(unsent < config.high + largest, "unsent {}", unsent);
            prop_assert!(f.held_bytes() <= config.max_held_bytes);
        }
        while f.holding() {
            unsent = 0;
            while let Some((id, _)) = f.drained(unsent) {
                unsent += 1;
                written.push(id);
            }
        }
        prop_assert!(written.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
        let mut all: Vec<u32> = written.iter().chain(&refused).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..next).collect::<Vec<_>>(), "each written or refused");
    }
}
