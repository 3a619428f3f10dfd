//! Membership events for applications: the hub the Ring publishes to and
//! the [`Events`] receiver a [`Flock`](super::Flock) hands out.
//!
//! A tokio broadcast channel: bounded, and a subscriber that falls behind
//! loses the oldest events (told as [`MemberEvent::Lagged`]) instead of
//! slowing the node or growing its memory. What changed is decided by the
//! pure [`crate::core::events`].

use crate::core::events::{MemberEvent, Snapshot, changes, initial};
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Events kept for the slowest subscriber; older ones are dropped for it.
pub(crate) const EVENT_BUFFER: usize = 256;

/// The node's side: the channel and the state last published.
pub(crate) struct EventHub {
    /// `None` once the node stopped (receivers then end).
    inner: Mutex<Option<Hub>>,
}

struct Hub {
    tx: broadcast::Sender<MemberEvent>,
    last: Snapshot,
}

impl Default for EventHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(EVENT_BUFFER);
        EventHub {
            inner: Mutex::new(Some(Hub {
                tx,
                last: Snapshot::default(),
            })),
        }
    }
}

impl EventHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Hub>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes what changed since the last snapshot.
    pub(crate) fn publish(&self, now: Snapshot) {
        let mut inner = self.lock();
        let Some(hub) = inner.as_mut() else { return };
        if hub.last == now {
            return;
        }
        for event in changes(&hub.last, &now) {
            // No subscriber is not an error.
            let _ = hub.tx.send(event);
        }
        hub.last = now;
    }

    /// A receiver that starts with the current state as events; under the
    /// same lock as `publish`, so nothing is missed or told twice.
    pub(crate) fn subscribe(&self) -> Events {
        let inner = self.lock();
        match inner.as_ref() {
            Some(hub) => Events {
                backlog: initial(&hub.last).into(),
                rx: Some(hub.tx.subscribe()),
            },
            None => Events {
                backlog: VecDeque::new(),
                rx: None,
            },
        }
    }

    /// The node stopped: receivers end after the events already sent.
    pub(crate) fn close(&self) {
        self.lock().take();
    }
}

/// A subscription to one node's membership events
/// ([`Flock::events`](super::Flock::events)).
///
/// It starts with the current state (every member up, then the hosting
/// set), then follows changes. Bounded: a subscriber that does not keep up
/// gets [`MemberEvent::Lagged`] in place of the oldest events it missed.
#[derive(Debug)]
pub struct Events {
    backlog: VecDeque<MemberEvent>,
    rx: Option<broadcast::Receiver<MemberEvent>>,
}

impl Events {
    /// The next event, or `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<MemberEvent> {
        if let Some(event) = self.backlog.pop_front() {
            return Some(event);
        }
        let rx = self.rx.as_mut()?;
        match rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Some(MemberEvent::Lagged { missed })
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.rx = None;
                None
            }
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_next(&mut self) -> Option<MemberEvent> {
        if let Some(event) = self.backlog.pop_front() {
            return Some(event);
        }
        match self.rx.as_mut()?.try_recv() {
            Ok(event) => Some(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Some(MemberEvent::Lagged { missed })
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::{Presence, Seen};

    fn with(names: &[&str]) -> Snapshot {
        Snapshot {
            members: names
                .iter()
                .map(|n| {
                    let seen = Seen {
                        presence: Presence::Up,
                        addr: String::new(),
                        weight: 0,
                    };
                    ((*n).to_owned(), seen)
                })
                .collect(),
            hosts: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_events_and_is_told_how_many() {
        let hub = EventHub::default();
        let mut slow = hub.subscribe();
        // Each publish adds one member: one Up event each.
        let names: Vec<String> = (0..EVENT_BUFFER + 10).map(|i| format!("n{i:04}")).collect();
        for i in 1..=names.len() {
            let now: Vec<&str> = names[..i].iter().map(String::as_str).collect();
            hub.publish(with(&now));
        }
        assert_eq!(slow.next().await, Some(MemberEvent::Lagged { missed: 10 }));
        let Some(MemberEvent::Up { name, .. }) = slow.next().await else {
            panic!("expected the oldest event still kept");
        };
        assert_eq!(name, names[10]);
        let mut rest = 1;
        while slow.try_next().is_some() {
            rest += 1;
        }
        assert_eq!(rest, EVENT_BUFFER);
    }

    #[tokio::test]
    async fn a_subscriber_starts_from_the_current_state_and_ends_with_the_node() {
        let hub = EventHub::default();
        hub.publish(with(&["a"]));
        let mut late = hub.subscribe();
        hub.publish(with(&["a", "b"]));
        hub.close();
        let mut seen = Vec::new();
        while let Some(e) = late.next().await {
            seen.push(e);
        }
        let ups: Vec<_> = seen
            .iter()
            .map(|e| match e {
                MemberEvent::Up { name, .. } => name.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ups, ["a", "b"]);
        assert!(hub.subscribe().next().await.is_none());
    }
}
