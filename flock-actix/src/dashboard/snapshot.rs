//! One sample of a node's view, as the page and `api/state` show it.
//!
//! Pure: the sampler hands in what the `Flock` answered and a function that
//! places a bird; nothing here talks to actors or reads a clock.

use super::diff::Observation;
use crate::runtime::MemberView;
use serde::Serialize;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// How much one sample keeps and shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bird names listed per node (the smallest names; counts are exact).
    pub(crate) names_per_node: usize,
    /// Above this many birds, moves are no longer tracked bird by bird.
    pub(crate) track_limit: usize,
}

/// A member row: its status, weight and the birds placed on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) addr: String,
    pub(crate) weight: u32,
    /// `up`, `down`, `leaving`, `left`; `unknown` for a node that owns
    /// birds but is not in the member list.
    pub(crate) status: String,
    pub(crate) this_node: bool,
    /// Birds placed on it in this node's view.
    pub(crate) birds: usize,
    /// `birds` as a fraction of every placed bird.
    pub(crate) share: f64,
    /// What its weight entitles it to among the members that are up.
    pub(crate) weight_share: f64,
    /// The first `names_per_node` of its birds, by name.
    pub(crate) names: Vec<String>,
}

/// Birds of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KindCount {
    pub(crate) kind: String,
    pub(crate) count: usize,
}

/// What one sample found, without the events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Sample {
    pub(crate) members: Vec<Member>,
    /// Birds in this node's replica of the registry.
    pub(crate) birds: usize,
    /// Birds no member can host (no node up with a weight).
    pub(crate) unplaced: usize,
    /// Birds actually running on this node.
    pub(crate) running_here: usize,
    /// Birds passivated on this node (idle, stopped, kept in the registry).
    pub(crate) passivated_here: usize,
    pub(crate) kinds: Vec<KindCount>,
    /// Whether moves are tracked bird by bird (see [`Limits::track_limit`]).
    pub(crate) tracking: bool,
}

/// A member status as the page names it. Derived from the variant's name,
/// so a status added to the library later shows up rather than breaking
/// this crate's build.
pub(crate) fn status_name(m: &MemberView) -> String {
    format!("{:?}", m.status).to_lowercase()
}

/// Per-node tallies while walking the registry.
#[derive(Default)]
struct Tally {
    count: usize,
    /// The smallest names seen, as a max-heap so the largest is dropped.
    names: BinaryHeap<String>,
}

/// Builds the sample and the observation the differ compares.
///
/// `birds` is consumed so its names move into the observation instead of
/// being copied; `owner` places one bird (`None`: no node can host it).
pub(crate) fn build(
    members: &[MemberView],
    birds: Vec<(String, String)>,
    running_here: usize,
    mut owner: impl FnMut(&str, &str) -> Option<String>,
    limits: Limits,
) -> (Sample, Observation) {
    let total = birds.len();
    let tracking = total <= limits.track_limit;
    let mut owners = tracking.then(|| HashMap::with_capacity(total));
    // One shared string per node rather than one per bird.
    let mut interned: HashMap<String, Arc<str>> = HashMap::new();
    let mut tallies: BTreeMap<Arc<str>, Tally> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut unplaced = 0;
    for (name, kind) in birds {
        let node = owner(&kind, &name).map(|o| {
            interned
                .entry(o)
                .or_insert_with_key(|o| Arc::from(o.as_str()))
                .clone()
        });
        *kinds.entry(kind).or_default() += 1;
        match &node {
            Some(node) => {
                let tally = tallies.entry(node.clone()).or_default();
                tally.count += 1;
                if limits.names_per_node > 0
                    && (tally.names.len() < limits.names_per_node
                        || tally.names.peek().is_some_and(|max| name < *max))
                {
                    tally.names.push(name.clone());
                    if tally.names.len() > limits.names_per_node {
                        tally.names.pop();
                    }
                }
            }
            None => unplaced += 1,
        }
        if let Some(owners) = &mut owners {
            owners.insert(name.into_boxed_str(), node);
        }
    }

    let placed = total - unplaced;
    let up_weight: u64 = members
        .iter()
        .filter(|m| status_name(m) == "up")
        .map(|m| u64::from(m.weight))
        .sum();
    let fraction = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
    let mut rows: Vec<Member> = members
        .iter()
        .map(|m| {
            let status = status_name(m);
            let tally = tallies.remove(m.name.as_str()).unwrap_or_default();
            let weight = if status == "up" { m.weight } else { 0 };
            Member {
                name: m.name.clone(),
                addr: m.addr.clone(),
                weight: m.weight,
                status,
                this_node: m.this_node,
                birds: tally.count,
                share: fraction(tally.count as f64, placed as f64),
                weight_share: fraction(f64::from(weight), up_weight as f64),
                names: tally.names.into_sorted_vec(),
            }
        })
        .collect();
    // Owners the member list does not know (views race): still shown.
    rows.extend(tallies.into_iter().map(|(name, tally)| Member {
        name: name.to_string(),
        addr: String::new(),
        weight: 0,
        status: "unknown".to_owned(),
        this_node: false,
        birds: tally.count,
        share: fraction(tally.count as f64, placed as f64),
        weight_share: 0.0,
        names: tally.names.into_sorted_vec(),
    }));

    let observation = Observation {
        members: rows
            .iter()
            .filter(|r| r.status != "unknown")
            .map(|r| (r.name.clone(), r.status.clone()))
            .collect(),
        owners,
    };
    let sample = Sample {
        members: rows,
        birds: total,
        unplaced,
        running_here,
        passivated_here: 0,
        kinds: kinds
            .into_iter()
            .map(|(kind, count)| KindCount { kind, count })
            .collect(),
        tracking,
    };
    (sample, observation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::MemberState;

    fn view(name: &str, weight: u32, status: MemberState, this_node: bool) -> MemberView {
        MemberView {
            name: name.to_owned(),
            addr: format!("{name}:1"),
            weight,
            status,
            this_node,
        }
    }

    fn birds(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("b{i:02}"), "k".to_owned()))
            .collect()
    }

    /// Even-numbered birds on `a`, odd ones on `b`, `b13` nowhere.
    fn place(_kind: &str, name: &str) -> Option<String> {
        let i: usize = name[1..].parse().expect("bNN");
        match i {
            13 => None,
            i if i % 2 == 0 => Some("a".to_owned()),
            _ => Some("b".to_owned()),
        }
    }

    #[test]
    fn a_sample_counts_birds_per_node_and_lists_only_the_first_names() {
        let members = [
            view("a", 1, MemberState::Up, true),
            view("b", 3, MemberState::Up, false),
            view("c", 4, MemberState::Down, false),
        ];
        let limits = Limits {
            names_per_node: 3,
            track_limit: 100,
        };
        let (sample, obs) = build(&members, birds(20), 7, place, limits);
        assert_eq!(sample.birds, 20);
        assert_eq!(sample.unplaced, 1);
        assert_eq!(sample.running_here, 7);
        assert!(sample.tracking);
        let row = |n: &str| sample.members.iter().find(|m| m.name == n).expect(n);
        assert_eq!(row("a").birds, 10);
        assert_eq!(row("a").names, ["b00", "b02", "b04"]);
        assert_eq!(row("b").birds, 9);
        assert_eq!(row("b").names, ["b01", "b03", "b05"]);
        assert_eq!(row("c").birds, 0);
        assert_eq!(row("c").status, "down");
        // Shares of the 19 placed birds; weights count only members up.
        assert!((row("a").share - 10.0 / 19.0).abs() < 1e-9);
        assert!((row("a").weight_share - 0.25).abs() < 1e-9);
        assert!((row("b").weight_share - 0.75).abs() < 1e-9);
        assert_eq!(row("c").weight_share, 0.0);
        assert_eq!(
            sample.kinds,
            [KindCount {
                kind: "k".into(),
                count: 20
            }]
        );
        let owners = obs.owners.expect("tracked");
        assert_eq!(owners.len(), 20);
        assert_eq!(owners["b13"], None);
        assert_eq!(owners["b04"].as_deref(), Some("a"));
        assert_eq!(obs.members["c"], "down");
    }

    #[test]
    fn past_the_track_limit_a_sample_keeps_counts_but_no_owners() {
        let members = [view("a", 1, MemberState::Up, true)];
        let limits = Limits {
            names_per_node: 0,
            track_limit: 5,
        };
        let (sample, obs) = build(&members, birds(6), 0, |_, _| Some("a".into()), limits);
        assert!(!sample.tracking);
        assert_eq!(obs.owners, None);
        assert_eq!(sample.members[0].birds, 6);
        assert!(sample.members[0].names.is_empty());
    }

    #[test]
    fn an_owner_missing_from_the_member_list_still_gets_a_row() {
        let members = [view("a", 1, MemberState::Up, true)];
        let limits = Limits {
            names_per_node: 5,
            track_limit: 5,
        };
        let (sample, obs) = build(&members, birds(2), 0, |_, _| Some("z".into()), limits);
        assert_eq!(sample.members[1].name, "z");
        assert_eq!(sample.members[1].status, "unknown");
        assert_eq!(sample.members[1].birds, 2);
        assert!(!obs.members.contains_key("z"));
    }

    /// With roles, a bird is placed by its kind's table: the sampler is
    /// handed each bird's kind with its name (a kind-blind owner counted
    /// tiles on a node that hosts no tiles).
    #[test]
    fn a_sample_places_each_bird_by_its_kind() {
        let members = [
            view("a", 1, MemberState::Up, true),
            view("b", 1, MemberState::Up, false),
        ];
        let limits = Limits {
            names_per_node: 10,
            track_limit: 100,
        };
        let birds = vec![
            ("t1".to_owned(), "tile".to_owned()),
            ("t2".to_owned(), "tile".to_owned()),
            ("c1".to_owned(), "chat".to_owned()),
        ];
        let by_kind = |kind: &str, _: &str| Some(if kind == "tile" { "b" } else { "a" }.to_owned());
        let (sample, _) = build(&members, birds, 0, by_kind, limits);
        let row = |n: &str| sample.members.iter().find(|m| m.name == n).expect(n);
        assert_eq!(row("b").birds, 2);
        assert_eq!(row("a").birds, 1);
    }
}
