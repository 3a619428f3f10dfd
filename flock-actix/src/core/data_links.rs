//! Data links: which connection carries a call or cast to a peer
//! (docs/ARCHITECTURE.md §26).
//!
//! Beside the control link (handshake, heartbeats, gossip, sync) a node may
//! open *data links* to a peer: one per *lane* of the peer, a lane being one
//! of its bird arbiters. A bird runs on the arbiter of its lane
//! ([`lane_of`] its shard), and the peer runs the data link of that lane on
//! the same arbiter, so an inbound call reaches its bird and its reply
//! leaves without crossing a thread.
//!
//! [`DataLanes`] is the sender's side of that decision for one peer, with no
//! I/O: it is told what happens (a message to route, a link up, failed or
//! idle) with the time, and answers with [`Effect`]s the shell carries out.
//! Its rules:
//!
//! - A link opens on demand, when the first message for its lane is routed.
//!   The peer's lane count is learnt from the first link's answer; until
//!   then every message to the peer waits behind that one opening link.
//! - A message whose lane is opening waits in order; the queue is flushed in
//!   order once the link is up. So messages to one bird never overtake each
//!   other on the way to a link.
//! - A lane whose link cannot be opened (an older peer, a refused or
//!   timed-out handshake) is served by the control link for the rest of the
//!   session; it never goes back to a data link, which could overtake
//!   messages still travelling on the control link.
//! - A link that dies after it was up is forgotten: the next message opens a
//!   new one (the messages it carried are lost with it, as on a control link).
//! - A link is closed when it reports itself idle (no call in flight) and
//!   nothing was routed to it for `idle_ms`.
//! - At most `max_queued_bytes` of messages wait for links (the bound a
//!   link puts on its unsent bytes); past that a message is
//!   failed at once ([`Effect::Fail`]).

pub mod age;
#[cfg(test)]
mod age_tests;
pub mod auth;
pub mod direct;
#[cfg(test)]
mod direct_tests;
pub mod flow;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

/// The lane (bird arbiter index) of a shard on a node with `lanes` lanes.
///
/// Shards come from the name hash that placement uses (XXH3, stable across
/// processes and builds), so every node agrees on a bird's lane once it
/// knows the owner's lane count. `lanes == 0` (no bird arbiters) is lane 0.
pub fn lane_of(shard: u32, lanes: u32) -> u32 {
    shard.checked_rem(lanes).unwrap_or(0)
}

/// Tuning of [`DataLanes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanesConfig {
    /// An up link that reports itself idle is closed if nothing was routed
    /// to it for this long.
    pub idle_ms: u64,
    /// Bytes of messages that may wait for links to open, per peer.
    pub max_queued_bytes: usize,
}

impl Default for LanesConfig {
    fn default() -> Self {
        LanesConfig {
            idle_ms: 30_000,
            max_queued_bytes: 64 << 20,
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<T> {
    /// Open data link `link` to the peer, announcing `shard` (the peer runs
    /// it on the arbiter of that shard's lane).
    Open {
        /// The new link's id (unique within this `DataLanes`).
        link: u64,
        /// The shard of the message that asked for it.
        shard: u32,
    },
    /// Write `item` on data link `link`, which is up.
    Send {
        /// The link.
        link: u64,
        /// The message.
        item: T,
    },
    /// Write `item` on the control link.
    Control(T),
    /// Close data link `link`.
    Close {
        /// The link.
        link: u64,
    },
    /// `item` cannot be sent (too many waiting, or the peer is gone): fail it.
    Fail(T),
}

struct Opening<T> {
    link: u64,
    /// `(shard, bytes, message)` in routing order.
    queue: VecDeque<(u32, usize, T)>,
}

enum Slot<T> {
    Opening(Opening<T>),
    Up {
        link: u64,
        last_routed_ms: u64,
    },
    /// Served by the control link for the rest of the session.
    Control,
}

/// The data links to one peer, seen from the sending side.
pub struct DataLanes<T> {
    config: LanesConfig,
    /// The peer's lane count, once its first link answered.
    lanes: Option<u32>,
    /// The first link, opening while the lane count is unknown; every
    /// message to the peer waits in its queue.
    probe: Option<Opening<T>>,
    slots: BTreeMap<u32, Slot<T>>,
    /// The peer does not do data links (its first link failed).
    control_only: bool,
    next_link: u64,
    queued: usize,
    queued_bytes: usize,
}

impl<T> DataLanes<T> {
    /// No links yet.
    pub fn new(config: LanesConfig) -> Self {
        DataLanes {
            config,
            lanes: None,
            probe: None,
            slots: BTreeMap::new(),
            control_only: false,
            next_link: 1,
            queued: 0,
            queued_bytes: 0,
        }
    }

    /// A peer that never gets data links: everything on the control link.
    pub fn control_only(config: LanesConfig) -> Self {
        DataLanes {
            control_only: true,
            ..Self::new(config)
        }
    }

    /// The peer's lane count, once known.
    pub fn lanes(&self) -> Option<u32> {
        self.lanes
    }

    /// How many messages wait for links to open.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The lane link `link` serves, if it is up.
    pub fn up_lane(&self, link: u64) -> Option<u32> {
        self.slots.iter().find_map(|(lane, s)| match s {
            Slot::Up { link: l, .. } if *l == link => Some(*lane),
            _ => None,
        })
    }

    /// The links opening or up.
    pub fn links(&self) -> Vec<u64> {
        let mut links: Vec<u64> = self.probe.iter().map(|p| p.link).collect();
        links.extend(self.slots.values().filter_map(|s| match s {
            Slot::Opening(o) => Some(o.link),
            Slot::Up { link, .. } => Some(*link),
            Slot::Control => None,
        }));
        links
    }

    fn open(&mut self, shard: u32, bytes: usize, item: T, out: &mut Vec<Effect<T>>) -> Opening<T> {
        let link = self.next_link;
        self.next_link += 1;
        out.push(Effect::Open { link, shard });
        self.queued += 1;
        self.queued_bytes += bytes;
        Opening {
            link,
            queue: VecDeque::from([(shard, bytes, item)]),
        }
    }

    fn full(&self, bytes: usize) -> bool {
        self.queued_bytes.saturating_add(bytes) > self.config.max_queued_bytes
    }

    fn dequeued(&mut self, queue: &VecDeque<(u32, usize, T)>) {
        self.queued -= queue.len();
        self.queued_bytes -= queue.iter().map(|(_, b, _)| *b).sum::<usize>();
    }

    /// Routes a message of `bytes` for a bird of `shard`.
    pub fn route(&mut self, shard: u32, bytes: usize, item: T, now_ms: u64) -> Vec<Effect<T>> {
        let mut out = Vec::with_capacity(1);
        self.route_into(shard, bytes, item, now_ms, &mut out);
        out
    }

    fn route_into(
        &mut self,
        shard: u32,
        bytes: usize,
        item: T,
        now_ms: u64,
        out: &mut Vec<Effect<T>>,
    ) {
        if self.control_only {
            return out.push(Effect::Control(item));
        }
        let full = self.full(bytes);
        let Some(lanes) = self.lanes else {
            match &mut self.probe {
                _ if full => out.push(Effect::Fail(item)),
                Some(probe) => {
                    probe.queue.push_back((shard, bytes, item));
                    self.queued += 1;
                    self.queued_bytes += bytes;
                }
                None => self.probe = Some(self.open(shard, bytes, item, out)),
            }
            return;
        };
        let lane = lane_of(shard, lanes);
        match self.slots.get_mut(&lane) {
            Some(Slot::Up {
                link,
                last_routed_ms,
            }) => {
                *last_routed_ms = now_ms;
                out.push(Effect::Send { link: *link, item });
            }
            Some(Slot::Control) => out.push(Effect::Control(item)),
            _ if full => out.push(Effect::Fail(item)),
            Some(Slot::Opening(o)) => {
                o.queue.push_back((shard, bytes, item));
                self.queued += 1;
                self.queued_bytes += bytes;
            }
            None => {
                let opening = self.open(shard, bytes, item, out);
                self.slots.insert(lane, Slot::Opening(opening));
            }
        }
    }

    /// Link `link` is up and serves `lane` of the peer's `lanes`. A link
    /// whose answer contradicts what is known (another lane count, or a lane
    /// that is not its shard's) is closed and treated as failed.
    pub fn up(&mut self, link: u64, lanes: u32, lane: u32, now_ms: u64) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        if self.probe.as_ref().is_some_and(|p| p.link == link) {
            let Some(probe) = self.probe.take() else {
                return out;
            };
            let shard = probe.queue.front().map_or(0, |(s, _, _)| *s);
            if lanes == 0 || lane != lane_of(shard, lanes) {
                self.probe = Some(probe);
                out.push(Effect::Close { link });
                out.extend(self.failed(link, now_ms));
                return out;
            }
            self.lanes = Some(lanes);
            self.slots.insert(
                lane,
                Slot::Up {
                    link,
                    last_routed_ms: now_ms,
                },
            );
            self.dequeued(&probe.queue);
            for (shard, bytes, item) in probe.queue {
                self.route_into(shard, bytes, item, now_ms, &mut out);
            }
            return out;
        }
        match self.slots.get(&lane) {
            Some(Slot::Opening(o)) if o.link == link && self.lanes == Some(lanes) => {}
            // Told twice: nothing new.
            Some(Slot::Up { link: l, .. }) if *l == link => return out,
            // Another lane count or lane than asked for, or a link this
            // state no longer knows: close it, and fail its lane if any.
            _ => {
                out.push(Effect::Close { link });
                out.extend(self.failed(link, now_ms));
                return out;
            }
        }
        let Some(Slot::Opening(o)) = self.slots.insert(
            lane,
            Slot::Up {
                link,
                last_routed_ms: now_ms,
            },
        ) else {
            return out;
        };
        self.dequeued(&o.queue);
        out.extend(
            o.queue
                .into_iter()
                .map(|(_, _, item)| Effect::Send { link, item }),
        );
        out
    }

    /// Link `link` could not be opened, or closed. Its waiting messages go
    /// on the control link, in order; the lane (or, for the first link, the
    /// whole peer) stays on the control link. An up link that closed is
    /// just forgotten.
    pub fn failed(&mut self, link: u64, _now_ms: u64) -> Vec<Effect<T>> {
        if let Some(probe) = self.probe.take_if(|p| p.link == link) {
            self.control_only = true;
            self.dequeued(&probe.queue);
            return probe
                .queue
                .into_iter()
                .map(|(_, _, item)| Effect::Control(item))
                .collect();
        }
        let Some((&lane, _)) = self.slots.iter().find(|(_, s)| match s {
            Slot::Opening(o) => o.link == link,
            Slot::Up { link: l, .. } => *l == link,
            Slot::Control => false,
        }) else {
            return Vec::new();
        };
        match self.slots.remove(&lane) {
            Some(Slot::Opening(o)) => {
                self.slots.insert(lane, Slot::Control);
                self.dequeued(&o.queue);
                o.queue
                    .into_iter()
                    .map(|(_, _, item)| Effect::Control(item))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Link `link` says it has nothing in flight: close it if nothing was
    /// routed to it for `idle_ms`.
    pub fn idle(&mut self, link: u64, now_ms: u64) -> Vec<Effect<T>> {
        let idle = self.slots.iter().find_map(|(lane, s)| match s {
            Slot::Up {
                link: l,
                last_routed_ms,
            } if *l == link && now_ms.saturating_sub(*last_routed_ms) >= self.config.idle_ms => {
                Some(*lane)
            }
            _ => None,
        });
        match idle {
            Some(lane) => {
                self.slots.remove(&lane);
                vec![Effect::Close { link }]
            }
            None => Vec::new(),
        }
    }

    /// The control link is gone: every link closes and every waiting
    /// message fails, in routing order per link.
    pub fn close_all(&mut self) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        let openings = self.probe.take().into_iter().chain(
            std::mem::take(&mut self.slots)
                .into_values()
                .filter_map(|s| match s {
                    Slot::Opening(o) => Some(o),
                    Slot::Up { link, .. } => {
                        out.push(Effect::Close { link });
                        None
                    }
                    Slot::Control => None,
                })
                .collect::<Vec<_>>(),
        );
        for o in openings {
            out.push(Effect::Close { link: o.link });
            out.extend(o.queue.into_iter().map(|(_, _, item)| Effect::Fail(item)));
        }
        self.queued = 0;
        self.queued_bytes = 0;
        self.control_only = true;
        out
    }
}
