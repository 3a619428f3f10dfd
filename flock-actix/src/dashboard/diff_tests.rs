use super::*;

/// An observation from `(member, status)` and `(bird, owner)` pairs; an
/// empty owner means no node can host the bird.
fn obs(members: &[(&str, &str)], birds: &[(&str, &str)]) -> Observation {
    Observation {
        members: members
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect(),
        owners: Some(
            birds
                .iter()
                .map(|(b, o)| ((*b).into(), (!o.is_empty()).then(|| Arc::<str>::from(*o))))
                .collect(),
        ),
    }
}

/// A change as `(kind, node, to, count, birds)`, easy to compare.
type Row<'a> = (
    EventKind,
    Option<&'a str>,
    Option<&'a str>,
    usize,
    Vec<&'a str>,
);

fn rows(changes: &[Change]) -> Vec<Row<'_>> {
    changes
        .iter()
        .map(|c| {
            (
                c.kind,
                c.node.as_deref(),
                c.to.as_deref(),
                c.count,
                c.birds.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

use EventKind::*;

#[test]
fn the_differ_names_each_membership_change() {
    let up3 = [("a", "up"), ("b", "up"), ("c", "up")];
    let cases: Vec<(&str, Observation, Observation, Vec<Row<'static>>)> = vec![
        ("no change", obs(&up3, &[]), obs(&up3, &[]), vec![]),
        (
            "a first sample reports every member as joined",
            Observation::default(),
            obs(&[("a", "up"), ("b", "down")], &[]),
            vec![
                (Joined, Some("a"), None, 0, vec![]),
                (Joined, Some("b"), None, 0, vec![]),
            ],
        ),
        (
            "a first sample does not report the birds already there",
            Observation::default(),
            obs(&[("a", "up")], &[("x1", "a")]),
            vec![(Joined, Some("a"), None, 0, vec![])],
        ),
        (
            "a crash",
            obs(&up3, &[]),
            obs(&[("a", "up"), ("b", "down"), ("c", "up")], &[]),
            vec![(Down, Some("b"), None, 0, vec![])],
        ),
        (
            "a return",
            obs(&[("a", "up"), ("b", "down")], &[]),
            obs(&[("a", "up"), ("b", "up")], &[]),
            vec![(Up, Some("b"), None, 0, vec![])],
        ),
        (
            "a graceful leave, in two steps",
            obs(&[("a", "up"), ("b", "leaving")], &[]),
            obs(&[("a", "up"), ("b", "left")], &[]),
            vec![(Left, Some("b"), None, 0, vec![])],
        ),
        (
            "a status without a name of its own",
            obs(&[("a", "up")], &[]),
            obs(&[("a", "joining")], &[]),
            vec![(Status, Some("a"), None, 0, vec![])],
        ),
        (
            "a member dropped from the view",
            obs(&up3, &[]),
            obs(&[("a", "up"), ("c", "up")], &[]),
            vec![(Removed, Some("b"), None, 0, vec![])],
        ),
    ];
    for (name, prev, next, want) in cases {
        assert_eq!(rows(&diff(&prev, &next, 5)), want, "{name}");
    }
}

#[test]
fn the_differ_groups_bird_changes_by_node_and_names_the_failover() {
    let up3 = [("a", "up"), ("b", "up"), ("c", "up")];
    let b_down = [("a", "up"), ("b", "down"), ("c", "up")];
    let placed = [("x1", "a"), ("x2", "b"), ("x3", "b"), ("x4", "c")];
    let cases: Vec<(&str, Observation, Observation, Vec<Row<'static>>)> = vec![
        (
            "birds of a crashed node fail over to the survivors",
            obs(&up3, &placed),
            obs(
                &b_down,
                &[("x1", "a"), ("x2", "c"), ("x3", "a"), ("x4", "c")],
            ),
            vec![
                (Down, Some("b"), None, 0, vec![]),
                (Failover, Some("b"), Some("a"), 1, vec!["x3"]),
                (Failover, Some("b"), Some("c"), 1, vec!["x2"]),
            ],
        ),
        (
            "birds moving between live nodes are a move",
            obs(&up3, &placed),
            obs(&up3, &[("x1", "c"), ("x2", "b"), ("x3", "b"), ("x4", "c")]),
            vec![(Moved, Some("a"), Some("c"), 1, vec!["x1"])],
        ),
        (
            "birds leaving a node that leaves are handed over, not failed over",
            obs(&up3, &placed),
            obs(
                &[("a", "up"), ("b", "leaving"), ("c", "up")],
                &[("x1", "a"), ("x2", "a"), ("x3", "a"), ("x4", "c")],
            ),
            vec![
                (Left, Some("b"), None, 0, vec![]),
                (Moved, Some("b"), Some("a"), 2, vec!["x2", "x3"]),
            ],
        ),
        (
            "birds of a node no longer listed failed over",
            obs(&up3, &placed),
            obs(
                &[("a", "up"), ("c", "up")],
                &[("x1", "a"), ("x2", "a"), ("x3", "a"), ("x4", "c")],
            ),
            vec![
                (Removed, Some("b"), None, 0, vec![]),
                (Failover, Some("b"), Some("a"), 2, vec!["x2", "x3"]),
            ],
        ),
        (
            "new and removed birds are started and stopped where they are placed",
            obs(&up3, &placed),
            obs(&up3, &[("x1", "a"), ("x2", "b"), ("y1", "b"), ("y2", "")]),
            vec![
                (Started, None, None, 1, vec!["y2"]),
                (Started, Some("b"), None, 1, vec!["y1"]),
                (Stopped, Some("b"), None, 1, vec!["x3"]),
                (Stopped, Some("c"), None, 1, vec!["x4"]),
            ],
        ),
        (
            "a bird nobody can host gets a node again",
            obs(&[("a", "up")], &[("x1", "")]),
            obs(&[("a", "up")], &[("x1", "a")]),
            vec![(Moved, None, Some("a"), 1, vec!["x1"])],
        ),
    ];
    for (name, prev, next, want) in cases {
        assert_eq!(rows(&diff(&prev, &next, 5)), want, "{name}");
    }
}

#[test]
fn a_big_group_names_only_the_first_birds_but_counts_them_all() {
    let names: Vec<String> = (0..100).map(|i| format!("bird-{i:03}")).collect();
    let before: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "b")).collect();
    let after: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "a")).collect();
    let prev = obs(&[("a", "up"), ("b", "up")], &before);
    let next = obs(&[("a", "up"), ("b", "down")], &after);
    let changes = diff(&prev, &next, 3);
    assert_eq!(
        rows(&changes)[1],
        (
            Failover,
            Some("b"),
            Some("a"),
            100,
            vec!["bird-000", "bird-001", "bird-002"]
        )
    );
    assert_eq!(changes[1].text, "100 birds failed over from b to a");
}

#[test]
fn without_bird_tracking_only_members_are_diffed() {
    let prev = obs(&[("a", "up")], &[("x", "a")]);
    let mut next = obs(&[("a", "down")], &[]);
    next.owners = None;
    assert_eq!(
        rows(&diff(&prev, &next, 5)),
        vec![(Down, Some("a"), None, 0, vec![])]
    );
}

fn joined(name: &str) -> Change {
    member(EventKind::Joined, name, format!("{name} joined"))
}

#[test]
fn the_event_log_numbers_events_and_keeps_only_the_newest() {
    let mut log = EventLog::new(3);
    assert_eq!(log.last_seq(), 0);
    log.record(vec![joined("a"), joined("b")], 10);
    log.record(vec![], 20);
    log.record(vec![joined("c"), joined("d")], 30);
    assert_eq!(log.last_seq(), 4);
    let seqs = |it: &mut dyn Iterator<Item = &Event>| it.map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&mut log.after(0)), vec![2, 3, 4], "1 fell out");
    assert_eq!(seqs(&mut log.after(2)), vec![3, 4]);
    assert_eq!(seqs(&mut log.after(4)), Vec::<u64>::new());
    assert_eq!(seqs(&mut log.after(u64::MAX)), Vec::<u64>::new());
    assert_eq!(seqs(&mut log.recent(2)), vec![3, 4]);
    assert_eq!(seqs(&mut log.recent(10)), vec![2, 3, 4]);
    let times: Vec<u64> = log.after(0).map(|e| e.at_ms).collect();
    assert_eq!(times, vec![10, 30, 30]);
}

#[test]
fn an_event_serializes_flat_with_a_snake_case_kind() {
    let mut log = EventLog::new(1);
    log.record(vec![joined("a")], 7);
    let json = serde_json::to_value(log.after(0).next().expect("one event")).expect("json");
    assert_eq!(json["seq"], 1);
    assert_eq!(json["at_ms"], 7);
    assert_eq!(json["kind"], "joined");
    assert_eq!(json["node"], "a");
    assert_eq!(json["text"], "a joined");
}
