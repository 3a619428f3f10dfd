use super::age::*;
use proptest::prelude::*;

/// The sender's clock is the receiver's minus this (any constant will do).
const OFFSET: i128 = -3_000_000_000;

fn local(sender_us: u64) -> u64 {
    u64::try_from(i128::from(sender_us) - OFFSET).unwrap()
}

#[test]
fn a_stamp_is_written_when_the_link_opens_and_then_at_most_every_millisecond() {
    let mut s = Stamper::default();
    assert_eq!(s.before_call(5), Some(5), "no stamp yet: one is due");
    assert_eq!(s.before_call(5 + STAMP_EVERY_US - 1), None);
    assert_eq!(s.before_call(5 + STAMP_EVERY_US), Some(5 + STAMP_EVERY_US));
    assert_eq!(s.opened(9_000), 9_000);
    assert_eq!(s.before_call(9_500), None);
}

#[test]
fn stamps_round_trip_and_a_malformed_one_is_not_read() {
    assert_eq!(
        decode_stamp(&encode_stamp(0x0102_0304_0506_0708)),
        Some(0x0102_0304_0506_0708)
    );
    assert_eq!(decode_stamp(&[1, 2, 3]), None);
    assert_eq!(decode_stamp(&[0; 9]), None);
    assert_eq!(decode_stamp(&[]), None);
}

/// One step: a stamp `(sent, read)` in µs (sender's clock, receiver's
/// clock), or a call of deadline `timeout_ms` read at `read` and the
/// expected verdict.
enum Step {
    Stamp(u64, u64),
    Call(u32, u64, Verdict),
}
use Step::*;

#[test]
fn scenarios() {
    let ms = 1_000;
    let table: Vec<(&str, Vec<Step>)> = vec![
        (
            "without a stamp (a sender of an earlier build) a call keeps its whole deadline",
            vec![Call(200, 5_000, Verdict::Run { timeout_ms: 200 })],
        ),
        (
            "the owner's thread was blocked: a call read 800 ms late is answered as timed out",
            vec![
                // The link came up, its stamp read 50 µs after it was sent.
                Stamp(1_000, local(1_050)),
                // 10 s later a call is written after a stamp; both are read
                // 800 ms late.
                Stamp(10_000_000, local(10_800_000)),
                Call(
                    200,
                    local(10_800_000),
                    Verdict::Late {
                        waited_ms: (800 * ms - 50 - STAMP_EVERY_US) / ms,
                    },
                ),
            ],
        ),
        (
            "a call read at once keeps its deadline, less the error bound",
            vec![
                Stamp(1_000, local(1_050)),
                Stamp(5_000_000, local(5_000_060)),
                Call(200, local(5_000_060), Verdict::Run { timeout_ms: 200 }),
            ],
        ),
        (
            "a call read 150 ms late runs with what is left of its deadline",
            vec![
                Stamp(1_000, local(1_050)),
                Stamp(5_000_000, local(5_150_000)),
                // 150 ms − 50 µs − 1 ms of age: 51 ms left, rounded up.
                Call(200, local(5_150_000), Verdict::Run { timeout_ms: 52 }),
            ],
        ),
        (
            "if every stamp was read late the age looks smaller: the call runs (as before), never dropped early",
            vec![
                Stamp(1_000, local(901_000)),
                Call(200, local(901_000), Verdict::Run { timeout_ms: 200 }),
            ],
        ),
        (
            "the minimum forgets samples two windows old (a drifting clock)",
            vec![
                // A prompt sample, then the sender's clock falls 5 ms behind.
                Stamp(1_000, local(1_000)),
                Stamp(WINDOW_US + 2_000, local(WINDOW_US + 7_000)),
                Stamp(2 * WINDOW_US + 3_000, local(2 * WINDOW_US + 8_000)),
                // Three windows on, only the drifted samples count: a call
                // read 300 ms late (in the drifted clocks) is late.
                Stamp(3 * WINDOW_US, local(3 * WINDOW_US + 305_000)),
                Call(
                    200,
                    local(3 * WINDOW_US + 305_000),
                    Verdict::Late {
                        waited_ms: (300 * ms - STAMP_EVERY_US) / ms,
                    },
                ),
            ],
        ),
    ];
    for (name, steps) in table {
        let mut ages = Ages::default();
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Stamp(sent, read) => ages.stamped(sent, read),
                Call(timeout, read, want) => {
                    assert_eq!(ages.call(timeout, read), want, "{name}: step {i}");
                }
            }
        }
    }
}

/// One frame of a simulated link: the sender's clock advances by `gap`
/// before it, the network takes `latency`, and the reader is blocked for
/// `blocked` more before it reads it; `call` says whether it is a call
/// (else the sender has nothing to write and only time passes).
#[derive(Debug, Clone)]
struct Event {
    gap: u64,
    latency: u64,
    blocked: u64,
    call: bool,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = (
        0u64..3_000,
        0u64..500,
        prop_oneof![Just(0u64), 0u64..1_000_000],
        any::<bool>(),
    )
        .prop_map(|(gap, latency, blocked, call)| Event {
            gap,
            latency,
            blocked,
            call,
        });
    proptest::collection::vec(event, 1..60)
}

proptest! {
    /// Whatever the clocks' offset, the latencies and the blocking, the
    /// estimated age of a call is never more than the time since it was
    /// written (so a call is never dropped while its caller still waits),
    /// and never less than that minus the error bound: the smallest delay
    /// among the stamps read plus the stamping interval.
    #[test]
    fn the_estimated_age_is_never_more_than_the_real_one_and_short_by_at_most_the_bound(
        offset in -(1i128 << 62)..(1i128 << 62),
        start in 0u64..(1 << 40),
        opening_latency in 0u64..500,
        events in events(),
        timeout_ms in 1u32..2_000,
    ) {
        // Receiver's clock for a sender time (both clocks stay positive).
        let base = (1i128 << 63) + offset;
        let recv = |sender: u64| u64::try_from(i128::from(sender) + base).unwrap();
        let mut stamper = Stamper::default();
        let mut ages = Ages::default();
        let mut sender = start;
        // The reader reads in order, so never before the previous frame.
        let mut read_at = 0u64;
        let opened = stamper.opened(sender);
        read_at = read_at.max(recv(opened + opening_latency));
        ages.stamped(opened, read_at);
        let mut min_delay = read_at - recv(opened);
        for e in events {
            sender += e.gap;
            if !e.call {
                continue;
            }
            let arrives = recv(sender + e.latency);
            read_at = read_at.max(arrives) + e.blocked;
            if let Some(stamp) = stamper.before_call(sender) {
                ages.stamped(stamp, read_at);
                min_delay = min_delay.min(read_at - recv(stamp));
            }
            let real = read_at - recv(sender);
            let estimated = ages.age_us(read_at);
            prop_assert!(estimated <= real, "estimated {estimated} µs, waited {real} µs");
            prop_assert!(
                estimated + min_delay + STAMP_EVERY_US >= real,
                "estimated {estimated} µs, waited {real} µs, bound {min_delay} + {STAMP_EVERY_US}"
            );
            if let Verdict::Late { .. } = ages.call(timeout_ms, read_at) {
                prop_assert!(real >= u64::from(timeout_ms) * 1_000, "dropped on time: {real} µs");
            }
        }
    }
}
