//! The caller's direct path to a data link (docs/ARCHITECTURE.md §35).
//!
//! A call or cast for a peer used to reach its data link through the
//! control `Peer` on the links thread. Now a caller hands it straight to
//! the [`LaneQueue`] of the data link that serves the bird's lane, which
//! the link drains on its own thread; the `Peer` is only taken while a
//! lane's link is not up, or while anything still waits in the `Peer`.
//!
//! Two things keep a sender's messages in order:
//!
//! - **Everything for a link passes one queue.** What the `Peer` routes to
//!   an up link is pushed into the same [`LaneQueue`] the callers push into,
//!   so the link writes in push order, whoever pushed.
//! - **The direct path waits for the `Peer` to be empty.** A message sent
//!   to the `Peer` takes a *ticket* (a count per peer) that the
//!   `Peer` returns only once it has pushed the message into its link's
//!   queue (or written it on the control link, or failed it). A caller goes
//!   direct only while no ticket is out ([`may_go_direct`]) *and* the
//!   lane's queue is open. A message that waits in the `Peer`'s mailbox or
//!   in its queue for an opening link thus holds every later message of
//!   every sender on the `Peer`'s path behind it, whatever thread the
//!   sender runs on (a task on a multi-thread runtime may move).
//!
//! A queue is *waiting* while its link opens, *open* once the `Peer`
//! published it, and *closed* for good when the link goes (a new link gets
//! a new queue). A push into a closed queue is refused, so a caller that
//! loaded an address just before the link went falls back to the `Peer`
//! rather than losing its message in a dead queue. What a closing link
//! leaves in its queue fails exactly as what it held (`LinkClosed`). A link
//! is closed for idleness only if nothing was pushed since it reported
//! itself idle ([`LaneQueue::quiet_since`]), so an idle close never
//! strands a message.

use std::collections::VecDeque;

/// Whether a caller may push into an open lane queue, given the tickets out
/// for its peer (messages sent to the `Peer` that it has not yet handed to
/// a link, written or failed): only while no message sent to the `Peer`
/// before it is still on the `Peer`'s side. The shell keeps the count in an
/// atomic; the rule is here so that the tests run it.
pub fn may_go_direct(tickets_out: usize) -> bool {
    tickets_out == 0
}

/// Where a lane queue is in its link's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The link opens; only the `Peer` knows.
    Waiting,
    /// The link is up and published: callers push here.
    Open,
    /// The link is gone; nothing is accepted again.
    Closed,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    /// Queued; `wake` says the link must be told (it was not already
    /// scheduled to drain).
    Queued {
        /// Tell the link to drain.
        wake: bool,
    },
    /// Not open (or closed): the caller takes the `Peer`'s path, the `Peer`
    /// fails it as sent to a closed link.
    NotOpen(T),
    /// The queue holds its bound of bytes: refused (a call fails, safe to
    /// retry; a cast is dropped and counted).
    Full(T),
}

/// The queue of one data link, shared by the callers, the control `Peer` and
/// the link that drains it (behind one lock in the shell).
#[derive(Debug)]
pub struct LaneQueue<T> {
    phase: Phase,
    queue: VecDeque<(usize, T)>,
    bytes: usize,
    max_bytes: usize,
    /// The link was told to drain and has not emptied the queue since.
    scheduled: bool,
    /// Pushes so far (an idle link reports the count it saw).
    pushes: u64,
}

impl<T> LaneQueue<T> {
    /// A queue for a link that opens, holding at most `max_bytes`
    /// (estimated) bytes.
    pub fn new(max_bytes: usize) -> Self {
        LaneQueue {
            phase: Phase::Waiting,
            queue: VecDeque::new(),
            bytes: 0,
            max_bytes,
            scheduled: false,
            pushes: 0,
        }
    }

    /// Where the queue is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes queued (estimated).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Pushes so far.
    pub fn pushes(&self) -> u64 {
        self.pushes
    }

    /// The link is up and the `Peer` publishes it: callers may push. A
    /// closed queue stays closed.
    pub fn open(&mut self) {
        if self.phase == Phase::Waiting {
            self.phase = Phase::Open;
        }
    }

    /// A caller's push (it checked [`may_go_direct`]), or the
    /// `Peer`'s for a message it routed to this (up) link: accepted only
    /// while open, and within the bound.
    pub fn push(&mut self, bytes: usize, item: T) -> Pushed<T> {
        if self.phase != Phase::Open {
            return Pushed::NotOpen(item);
        }
        // An empty queue always takes one message, however large (the link
        // then judges its size against the frame limit).
        if !self.queue.is_empty() && self.bytes.saturating_add(bytes) > self.max_bytes {
            return Pushed::Full(item);
        }
        self.queue.push_back((bytes, item));
        self.bytes += bytes;
        self.pushes += 1;
        let wake = !std::mem::replace(&mut self.scheduled, true);
        Pushed::Queued { wake }
    }

    /// The link takes up to `max` messages, oldest first. It stays
    /// scheduled (it drains again without being told) while anything is
    /// left; an empty queue needs a wake for the next push.
    pub fn take(&mut self, max: usize, into: &mut Vec<T>) -> bool {
        let n = max.min(self.queue.len());
        for (bytes, item) in self.queue.drain(..n) {
            self.bytes -= bytes;
            into.push(item);
        }
        let more = !self.queue.is_empty();
        self.scheduled = more;
        more
    }

    /// The link is gone: nothing is accepted again; what was queued is
    /// returned, oldest first, to be failed.
    pub fn close(&mut self) -> Vec<T> {
        self.phase = Phase::Closed;
        self.bytes = 0;
        self.scheduled = false;
        self.queue.drain(..).map(|(_, item)| item).collect()
    }

    /// Whether nothing was pushed since the link saw `pushes` (when it
    /// reported itself idle): then the queue is empty, and closing it for
    /// idleness strands no message. The shell asks under the same lock as
    /// it closes, so no push slips in between.
    pub fn quiet_since(&self, pushes: u64) -> bool {
        self.pushes == pushes && self.queue.is_empty()
    }
}
