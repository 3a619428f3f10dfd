//! Events from successive observations: the dashboard's pure core.
//!
//! The library has no event feed, so the dashboard samples a node's view
//! (members, and the owner of every bird) about once a second and names
//! what changed between two samples. No actix, no clock: the caller passes
//! the time in when it records the changes in an [`EventLog`].

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// What one sample saw. The default is what the dashboard knows before its
/// first sample: no members, and birds untracked, so the first sample
/// reports every member as joined but not the birds already running (they
/// did not start then).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observation {
    /// Member name → status (`up`, `down`, `leaving`, `left`, …).
    pub(crate) members: BTreeMap<String, String>,
    /// Bird name → the node that owns it (`None`: no node can host it).
    /// `None` as a whole when the registry was too big to track bird by
    /// bird: then only member events are derived.
    pub(crate) owners: Option<HashMap<Box<str>, Option<Arc<str>>>>,
}

/// The kind of an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EventKind {
    /// A member appeared in the view.
    Joined,
    /// A member came up (again).
    Up,
    /// A member went down: unreachable, crashed or cut off.
    Down,
    /// A member is leaving or left gracefully.
    Left,
    /// A member changed to a status this dashboard has no name for.
    Status,
    /// A member is no longer listed at all.
    Removed,
    /// Birds moved off a member that is down.
    Failover,
    /// Birds moved between members that are up (a join, a leave).
    Moved,
    /// Birds appeared in the registry.
    Started,
    /// Birds left the registry.
    Stopped,
}

/// One change between two observations, before it is numbered and dated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Change {
    /// What happened.
    pub(crate) kind: EventKind,
    /// The member concerned, or where birds were.
    pub(crate) node: Option<String>,
    /// Where birds went.
    pub(crate) to: Option<String>,
    /// How many birds (0 for member events).
    pub(crate) count: usize,
    /// The first few of those birds by name.
    pub(crate) birds: Vec<String>,
    /// One line for people.
    pub(crate) text: String,
}

/// A numbered, dated [`Change`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Event {
    /// Increases by one per event, from 1; never reused.
    pub(crate) seq: u64,
    /// Wall-clock time of the sample that saw it (ms since the epoch).
    pub(crate) at_ms: u64,
    /// The change itself.
    #[serde(flatten)]
    pub(crate) change: Change,
}

/// The changes from `prev` to `next`: member events first (by name), then
/// bird moves, starts and stops grouped by node, each naming at most
/// `sample` birds.
pub(crate) fn diff(prev: &Observation, next: &Observation, sample: usize) -> Vec<Change> {
    let mut out = member_changes(prev, next);
    if let (Some(before), Some(after)) = (&prev.owners, &next.owners) {
        out.extend(bird_changes(before, after, &next.members, sample));
    }
    out
}

fn member(kind: EventKind, node: &str, text: String) -> Change {
    Change {
        kind,
        node: Some(node.to_owned()),
        to: None,
        count: 0,
        birds: Vec::new(),
        text,
    }
}

fn member_changes(prev: &Observation, next: &Observation) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, status) in &next.members {
        match prev.members.get(name) {
            None => out.push(member(
                EventKind::Joined,
                name,
                format!("{name} joined ({status})"),
            )),
            Some(was) if was == status => {}
            Some(was) => {
                let (kind, text) = match status.as_str() {
                    "up" => (EventKind::Up, format!("{name} is up (was {was})")),
                    "down" => (EventKind::Down, format!("{name} is down (was {was})")),
                    "leaving" => (EventKind::Left, format!("{name} is leaving")),
                    "left" => (EventKind::Left, format!("{name} left")),
                    other => (EventKind::Status, format!("{name} is {other} (was {was})")),
                };
                out.push(member(kind, name, text));
            }
        }
    }
    for name in prev.members.keys() {
        if !next.members.contains_key(name) {
            out.push(member(
                EventKind::Removed,
                name,
                format!("{name} is no longer listed"),
            ));
        }
    }
    out
}

type Node = Option<Arc<str>>;

fn bird_changes(
    before: &HashMap<Box<str>, Node>,
    after: &HashMap<Box<str>, Node>,
    members: &BTreeMap<String, String>,
    sample: usize,
) -> Vec<Change> {
    let mut moved: BTreeMap<(Node, Node), Vec<&str>> = BTreeMap::new();
    let mut started: BTreeMap<Node, Vec<&str>> = BTreeMap::new();
    let mut stopped: BTreeMap<Node, Vec<&str>> = BTreeMap::new();
    for (name, owner) in after {
        match before.get(name) {
            None => started.entry(owner.clone()).or_default().push(name),
            Some(was) if was != owner => moved
                .entry((was.clone(), owner.clone()))
                .or_default()
                .push(name),
            Some(_) => {}
        }
    }
    for (name, owner) in before {
        if !after.contains_key(name) {
            stopped.entry(owner.clone()).or_default().push(name);
        }
    }
    let label = |n: &Node| n.as_deref().unwrap_or("no node").to_owned();
    let mut out = Vec::new();
    for ((from, to), names) in moved {
        let from_status = from.as_deref().and_then(|f| members.get(f));
        let (kind, verb) = match from_status.map(String::as_str) {
            Some("up") => (EventKind::Moved, "moved"),
            Some("leaving" | "left") => (EventKind::Moved, "handed over"),
            // Down, or gone from the view: its birds were taken over.
            _ if from.is_some() => (EventKind::Failover, "failed over"),
            _ => (EventKind::Moved, "placed"),
        };
        let text = format!(
            "{} {verb} from {} to {}",
            birds_phrase(names.len()),
            label(&from),
            label(&to)
        );
        out.push(group(
            kind,
            from.as_deref(),
            to.as_deref(),
            names,
            sample,
            text,
        ));
    }
    for (kind, verb, groups) in [
        (EventKind::Started, "started", started),
        (EventKind::Stopped, "stopped", stopped),
    ] {
        for (node, names) in groups {
            let text = format!("{} {verb} on {}", birds_phrase(names.len()), label(&node));
            out.push(group(kind, node.as_deref(), None, names, sample, text));
        }
    }
    out
}

fn birds_phrase(n: usize) -> String {
    if n == 1 {
        "1 bird".to_owned()
    } else {
        format!("{n} birds")
    }
}

fn group(
    kind: EventKind,
    node: Option<&str>,
    to: Option<&str>,
    mut names: Vec<&str>,
    sample: usize,
    text: String,
) -> Change {
    let count = names.len();
    names.sort_unstable();
    names.truncate(sample);
    Change {
        kind,
        node: node.map(str::to_owned),
        to: to.map(str::to_owned),
        count,
        birds: names.into_iter().map(str::to_owned).collect(),
        text,
    }
}

/// The most recent events, oldest first, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct EventLog {
    events: VecDeque<Event>,
    capacity: usize,
    last_seq: u64,
}

impl EventLog {
    /// An empty log keeping at most `capacity` events (at least one).
    pub(crate) fn new(capacity: usize) -> EventLog {
        let capacity = capacity.max(1);
        EventLog {
            events: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            last_seq: 0,
        }
    }

    /// Numbers and dates `changes`, dropping the oldest events over capacity.
    pub(crate) fn record(&mut self, changes: Vec<Change>, at_ms: u64) {
        for change in changes {
            self.last_seq += 1;
            if self.events.len() == self.capacity {
                self.events.pop_front();
            }
            self.events.push_back(Event {
                seq: self.last_seq,
                at_ms,
                change,
            });
        }
    }

    /// The events numbered after `seq`, oldest first.
    pub(crate) fn after(&self, seq: u64) -> impl Iterator<Item = &Event> {
        // Numbers are consecutive, so the first wanted one is at a known index.
        let first = self.events.front().map_or(0, |e| e.seq);
        let skip = seq.saturating_add(1).saturating_sub(first);
        self.events
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    /// The `n` most recent events, oldest first.
    pub(crate) fn recent(&self, n: usize) -> impl Iterator<Item = &Event> {
        self.events.iter().skip(self.events.len().saturating_sub(n))
    }

    /// The number of the newest event (0: none yet).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
