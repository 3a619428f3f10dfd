use super::*;
use proptest::prelude::*;

fn config() -> DiscoveryConfig {
    DiscoveryConfig {
        interval_ms: 5_000,
        max_backoff_ms: 40_000,
        max_addrs: 3,
    }
}

fn addrs(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

#[test]
fn a_scaled_up_answer_reports_only_the_new_address() {
    let mut d = Discovery::new(config()).unwrap();
    let first = d.resolved(addrs(&["10.0.0.2:4001", "10.0.0.1:4001"]), 0);
    assert_eq!(first.added, addrs(&["10.0.0.1:4001", "10.0.0.2:4001"]));
    assert_eq!(first.next_ms, 5_000);
    let second = d.resolved(
        addrs(&["10.0.0.1:4001", "10.0.0.3:4001", "10.0.0.2:4001"]),
        5_000,
    );
    assert_eq!(second.added, addrs(&["10.0.0.3:4001"]));
    assert!(second.removed.is_empty());
    assert_eq!(second.current.len(), 3);
}

#[test]
fn an_address_gone_from_the_answer_is_reported_removed() {
    let mut d = Discovery::new(config()).unwrap();
    d.resolved(addrs(&["10.0.0.1:4001", "10.0.0.2:4001"]), 0);
    let r = d.resolved(addrs(&["10.0.0.1:4001"]), 5_000);
    assert_eq!(r.removed, addrs(&["10.0.0.2:4001"]));
    assert!(r.added.is_empty());
}

#[test]
fn an_empty_answer_is_an_answer_not_a_failure() {
    let mut d = Discovery::new(config()).unwrap();
    assert_eq!(d.failed(0), 5_000);
    let r = d.resolved(Vec::new(), 5_000);
    assert_eq!(r.next_ms, 10_000);
    // The backoff starts over after any answer.
    assert_eq!(d.failed(10_000), 15_000);
}

#[test]
fn failures_in_a_row_back_off_from_the_interval_to_the_cap() {
    let mut d = Discovery::new(config()).unwrap();
    let delays: Vec<u64> = (0..6).map(|_| d.failed(1_000) - 1_000).collect();
    assert_eq!(delays, [5_000, 10_000, 20_000, 40_000, 40_000, 40_000]);
}

#[test]
fn a_failure_keeps_the_last_answer() {
    let mut d = Discovery::new(config()).unwrap();
    d.resolved(addrs(&["10.0.0.1:4001"]), 0);
    d.failed(5_000);
    assert_eq!(d.addresses().collect::<Vec<_>>(), ["10.0.0.1:4001"]);
    let r = d.resolved(addrs(&["10.0.0.1:4001"]), 15_000);
    assert!(r.added.is_empty() && r.removed.is_empty());
}

#[test]
fn a_huge_answer_is_capped_to_the_lowest_addresses() {
    let mut d = Discovery::new(config()).unwrap();
    let r = d.resolved(
        addrs(&[
            "10.0.0.5:1",
            "10.0.0.4:1",
            "10.0.0.3:1",
            "10.0.0.2:1",
            "10.0.0.1:1",
        ]),
        0,
    );
    assert_eq!(
        r.current,
        addrs(&["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"])
    );
    assert_eq!(r.truncated, 2);
}

#[test]
fn inconsistent_configurations_are_refused_naming_the_value() {
    let bad = [
        DiscoveryConfig {
            interval_ms: 0,
            ..config()
        },
        DiscoveryConfig {
            max_backoff_ms: 1_000,
            ..config()
        },
        DiscoveryConfig {
            max_addrs: 0,
            ..config()
        },
    ];
    for (c, word) in bad.iter().zip(["interval", "max_backoff_ms", "max_addrs"]) {
        match Discovery::new(*c) {
            Err(Error::InvalidConfig(m)) => assert!(m.contains(word), "{m}"),
            other => panic!("{c:?} gave {other:?}"),
        }
    }
}

proptest! {
    /// Across any sequence of answers, added and removed are exactly the
    /// difference between consecutive (capped) answers, and the next
    /// resolution is always in the future and never later than the cap.
    #[test]
    fn added_and_removed_are_the_difference_of_consecutive_answers(
        answers in prop::collection::vec(
            prop::option::of(prop::collection::btree_set(0u8..8, 0..6)), 1..12),
    ) {
        let mut d = Discovery::new(config()).unwrap();
        let mut before: BTreeSet<String> = BTreeSet::new();
        let mut now = 0;
        for answer in answers {
            let next = match answer {
                None => d.failed(now),
                Some(set) => {
                    let r = d.resolved(set.iter().map(|i| format!("10.0.0.{i}:1")), now);
                    let after: BTreeSet<String> = r.current.iter().cloned().collect();
                    prop_assert!(after.len() <= 3);
                    let added: Vec<String> = after.difference(&before).cloned().collect();
                    let removed: Vec<String> = before.difference(&after).cloned().collect();
                    prop_assert_eq!(&r.added, &added);
                    prop_assert_eq!(&r.removed, &removed);
                    before = after;
                    r.next_ms
                }
            };
            prop_assert!(next > now && next <= now + 40_000);
            now = next;
        }
    }
}
