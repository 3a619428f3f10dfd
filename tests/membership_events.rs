//! Membership events (`Flock::events`) over real TCP nodes: joins, a client,
//! a graceful leave, a crash, and the end of the subscription.

mod support;

use flock_actix::{Events, MemberEvent};
use std::time::Duration;
use support::*;

/// Reads events until one matches `want`, failing after `limit`; returns
/// everything read, the match last.
async fn expect(
    events: &mut Events,
    limit: Duration,
    what: &str,
    want: impl Fn(&MemberEvent) -> bool,
) -> Vec<MemberEvent> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(limit, async {
        while let Some(e) = events.next().await {
            let done = want(&e);
            seen.push(e);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {what}; saw {seen:?}");
    seen
}

fn up(name: &str) -> impl Fn(&MemberEvent) -> bool + '_ {
    move |e| matches!(e, MemberEvent::Up { name: n, .. } if n == name)
}

fn hosts<'a>(want: &'a [&'a str]) -> impl Fn(&MemberEvent) -> bool + 'a {
    move |e| matches!(e, MemberEvent::ViewChanged { hosts } if hosts == want)
}

const LIMIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn a_subscriber_hears_joins_a_leave_a_crash_and_the_end() {
    init_logs();
    let first = TestNode::start("ev1@127.0.0.1", vec![], |b| b);
    let mut events = first.flock.events();
    // The current state first: this node up, hosting alone.
    let start = expect(
        &mut events,
        LIMIT,
        "the initial state",
        hosts(&["ev1@127.0.0.1"]),
    )
    .await;
    assert!(start.iter().any(up("ev1@127.0.0.1")), "{start:?}");

    let second = TestNode::start("ev2@127.0.0.1", vec![first.addr()], |b| b);
    expect(&mut events, LIMIT, "ev2 up", up("ev2@127.0.0.1")).await;
    expect(
        &mut events,
        LIMIT,
        "ev2 hosting",
        hosts(&["ev1@127.0.0.1", "ev2@127.0.0.1"]),
    )
    .await;

    // A client node is a member but hosts nothing: no view change.
    let client = TestNode::start("evc@127.0.0.1", vec![first.addr()], |b| b.weight(0));
    let joined = expect(&mut events, LIMIT, "the client up", up("evc@127.0.0.1")).await;
    let weight = joined.iter().find_map(|e| match e {
        MemberEvent::Up { name, weight, .. } if name == "evc@127.0.0.1" => Some(*weight),
        _ => None,
    });
    assert_eq!(weight, Some(0));

    // A graceful leave is Left, not Down, and the hosts shrink.
    second.flock.leave().await.unwrap();
    let left = expect(
        &mut events,
        LIMIT,
        "ev2 hosting no more",
        hosts(&["ev1@127.0.0.1"]),
    )
    .await;
    assert!(
        left.iter()
            .any(|e| matches!(e, MemberEvent::Left { name } if name == "ev2@127.0.0.1")),
        "{left:?}"
    );
    assert!(
        !left
            .iter()
            .any(|e| matches!(e, MemberEvent::ViewChanged { .. }) && !hosts(&["ev1@127.0.0.1"])(e)),
        "the client must not change the view: {left:?}"
    );
    second.kill();

    // A crash is Down.
    client.kill();
    expect(
        &mut events,
        LIMIT,
        "the client down",
        |e| matches!(e, MemberEvent::Down { name } if name == "evc@127.0.0.1"),
    )
    .await;

    // A subscription ends with its node.
    first.flock.shutdown();
    let end = tokio::time::timeout(LIMIT, async { while events.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "the subscription did not end with the node");
}

#[actix_rt::test]
async fn a_late_subscriber_starts_from_the_formed_cluster() {
    init_logs();
    let nodes = cluster(3).await;
    let mut events = nodes[2].flock.events();
    let mut up_names = Vec::new();
    let mut initial = Vec::new();
    while let Some(e) = events.try_next() {
        if let MemberEvent::Up { name, .. } = &e {
            up_names.push(name.clone());
        }
        initial.push(e);
    }
    up_names.sort();
    assert_eq!(
        up_names,
        ["node1@127.0.0.1", "node2@127.0.0.1", "node3@127.0.0.1"],
        "{initial:?}"
    );
    assert_eq!(
        initial.last(),
        Some(&MemberEvent::ViewChanged {
            hosts: vec![
                "node1@127.0.0.1".into(),
                "node2@127.0.0.1".into(),
                "node3@127.0.0.1".into()
            ]
        })
    );
}
