//! The handoff side of the lifecycle: which node a moved bird's state is
//! waited from, for how long, and what happens when it comes.
//!
//! A fresh start of a kind with a state waits (`State::Awaiting`) while a
//! node that may still run the old instance is up: the node this one handed
//! the bird to (`sent_to`), the owner in the previous view, and, while this
//! node is joining, the owner in the current view without this node. The
//! last one matters because a joining node's first views do not hold every
//! member yet: in them it may own a bird whose real owner it has not heard
//! of, and its previous view says "here" (the bug the real-TCP join test
//! found). The wait ends with the state (`HandedOff`), or at `until_ms`.

use super::{Awaiting, BirdSpec, Effect, Lifecycle, MAX_STASHED, Name, Owners, State, Timer};

/// Where this node is in joining a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Join {
    /// No view so far had another member hosting birds: no bird can have
    /// moved here from elsewhere.
    Alone,
    /// Views are still filling in (a member appeared less than the handoff
    /// wait ago): moved birds are waited for from the owner without us.
    Until(u64),
    /// Views settled once; later moves are told by the previous view.
    Joined,
}

impl<V: Owners> Lifecycle<V> {
    /// Names waiting for their handed-over state.
    pub fn awaiting(&self) -> usize {
        self.birds
            .values()
            .filter(|l| matches!(l.state, State::Awaiting(_)))
            .count()
    }

    /// Called on every view: the join window opens at the first view with
    /// another member and stays open while views keep changing within it.
    pub(super) fn track_join(&mut self, now_ms: u64) {
        let window = now_ms.saturating_add(self.handoff_wait_ms);
        self.join = match self.join {
            Join::Alone if self.view.others_host(&self.me) => Join::Until(window),
            Join::Until(until) if now_ms < until => Join::Until(window),
            Join::Until(_) => Join::Joined,
            join => join,
        };
    }

    fn joining(&self, now_ms: u64) -> bool {
        matches!(self.join, Join::Until(until) if now_ms < until)
    }

    /// The live node `name`'s old instance may still run on, if its kind
    /// hands state over: the new instance waits for that node.
    pub(super) fn previous_owner(
        &mut self,
        name: &str,
        spec: &BirdSpec,
        now_ms: u64,
    ) -> Option<String> {
        let sent_to = self.sent_to.remove(name);
        if !self.handoff_kinds.contains(&spec.kind) {
            return None;
        }
        let without_me = self
            .joining(now_ms)
            .then(|| self.view.owner_without(&spec.kind, name, &self.me))
            .flatten();
        let before = (self.prev_view.as_ref()).and_then(|v| v.owner_of_kind(&spec.kind, name));
        [sent_to.as_deref(), without_me, before]
            .into_iter()
            .flatten()
            .find(|n| *n != self.me && self.view.is_up(n))
            .map(str::to_owned)
    }

    /// `name` (just told to start, not spawned) waits for its state from
    /// `from`, for at most the handoff wait.
    pub(super) fn await_state(
        &mut self,
        name: Name,
        from: String,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let until_ms = now_ms.saturating_add(self.handoff_wait_ms);
        let Some(local) = self.birds.get_mut(&name) else {
            return;
        };
        local.state = State::Awaiting(Box::new(Awaiting {
            from,
            until_ms,
            wanted: false,
        }));
        let instance = local.instance;
        out.push(Effect::Timer {
            at_ms: until_ms,
            timer: Timer::Handoff {
                name: name.clone(),
                instance,
            },
        });
        // Messages already wait (a retargeted wait): ask the new source now.
        if self.waiting.get(&name).is_some_and(|w| !w.is_empty()) {
            self.want(&name, out);
        }
    }

    /// A view changed while birds wait: one whose old owner is now known
    /// better (a member this joining node had not heard of yet) waits for
    /// that node, with a fresh wait.
    pub(super) fn retarget_awaiting(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        if !self.joining(now_ms) {
            return;
        }
        let moved: Vec<(Name, String)> = self
            .birds
            .iter()
            .filter_map(|(name, local)| {
                let State::Awaiting(awaiting) = &local.state else {
                    return None;
                };
                let from = &awaiting.from;
                let now_from = self.view.owner_without(local.spec.kind(), name, &self.me)?;
                (now_from != from && now_from != self.me && self.view.is_up(now_from))
                    .then(|| (name.clone(), now_from.to_owned()))
            })
            .collect();
        for (name, from) in moved {
            self.await_state(name, from, now_ms, out);
        }
    }

    /// The wait for `instance`'s state may be over: if its last wait
    /// passed, it is hatched from its start arguments.
    pub(super) fn on_handoff_timer(
        &mut self,
        name: Name,
        instance: u64,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(local) = self.instance_mut(&name, instance) else {
            return;
        };
        let State::Awaiting(awaiting) = &local.state else {
            return;
        };
        let until_ms = awaiting.until_ms;
        if now_ms >= until_ms {
            let spec = local.spec.to_spec();
            return self.launch(name, spec, instance, None, now_ms, out);
        }
        // Early (a retargeted wait, or a timer that fired a tick early):
        // armed again for the wait's end, so the bird never waits forever.
        out.push(Effect::Timer {
            at_ms: until_ms,
            timer: Timer::Handoff { name, instance },
        });
    }

    /// A message parked for `name`, which awaits its state: the node it is
    /// awaited from is asked to hand it over first, once per wait.
    pub(super) fn want(&mut self, name: &Name, out: &mut Vec<Effect>) {
        let Some(local) = self.birds.get_mut(name) else {
            return;
        };
        if let State::Awaiting(awaiting) = &mut local.state
            && !awaiting.wanted
        {
            awaiting.wanted = true;
            out.push(Effect::Want {
                name: name.clone(),
                from: awaiting.from.clone(),
            });
        }
    }

    pub(super) fn on_handed_off(
        &mut self,
        name: Name,
        state: Option<Vec<u8>>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        if let Some(local) = self.birds.get(&name) {
            if matches!(local.state, State::Awaiting(_)) {
                let (spec, instance) = (local.spec.to_spec(), local.instance);
                self.launch(name, spec, instance, state, now_ms, out);
            } else if let (State::Running { closed: false }, Some(state)) = (&local.state, state) {
                // Another instance ran meanwhile (a partition, or a state
                // later than the wait): this one survives, and its kind's
                // conflict hook sees the other's state.
                out.push(Effect::Merge {
                    name,
                    instance: local.instance,
                    state,
                });
            }
            return;
        }
        // Arrived before the view that moves the bird here, or before its
        // slice of the start queue.
        let wait = self.handoff_wait_ms;
        if !keep_bounded(&mut self.stashed, name.clone(), state, now_ms, wait) {
            return;
        }
        // Queued to start here: it starts now, from the state (a move
        // queues thousands at once, and the slices would hold its callers
        // back for as long as the queue is).
        if let Some(spec) = self.pending.remove(&name) {
            return self.ensure(name, spec, now_ms, out);
        }
        self.start_announced(name, now_ms, out);
    }

    /// The old owner said what `name` is. Kept (bounded, like the stash)
    /// for a name this node does not know; if its state is already here,
    /// it starts now.
    pub(super) fn on_announced(
        &mut self,
        name: Name,
        spec: BirdSpec,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        if self.birds.contains_key(&name) || self.pending.contains_key(&name) {
            return;
        }
        let wait = self.handoff_wait_ms;
        if keep_bounded(&mut self.announced, name.clone(), spec, now_ms, wait)
            && self.stashed.contains_key(&name)
        {
            self.start_announced(name, now_ms, out);
        }
    }

    /// A bird this node does not know, whose state is here and whose old
    /// owner announced it: resumed now if this node owns it. Safe without
    /// the set: the old owner stopped its instance before it sent the
    /// state, and if the set says otherwise later (removed, another spec),
    /// the set change stops or restarts it like any bird.
    fn start_announced(&mut self, name: Name, now_ms: u64, out: &mut Vec<Effect>) {
        let Some((spec, at)) = self.announced.remove(&name) else {
            return;
        };
        if now_ms.saturating_sub(at) > self.handoff_wait_ms.saturating_mul(5)
            || !self.owned_here_as(&spec.kind, &name)
            || !self.handoff_kinds.contains(&spec.kind)
        {
            return;
        }
        if self.unconfirmed.len() >= MAX_STASHED {
            // A bound, not a policy: forgetting only ends a protection early.
            self.unconfirmed.clear();
        }
        self.unconfirmed.insert(name.clone(), now_ms);
        self.ensure(name, spec, now_ms, out);
    }

    /// A state handed over for `name` not long ago, if any.
    pub(super) fn take_stashed(&mut self, name: &str, now_ms: u64) -> Option<Option<Vec<u8>>> {
        let (state, at) = self.stashed.remove(name)?;
        (now_ms.saturating_sub(at) <= self.handoff_wait_ms.saturating_mul(5)).then_some(state)
    }

    /// The new owner to hand `name`'s state to, if it moves (not removed)
    /// to another node and its kind has a state.
    pub(super) fn hand_to(&self, name: &str, removed: bool) -> Option<String> {
        let local = self.birds.get(name);
        let kind = local
            .map(|l| l.spec.kind())
            .or_else(|| self.pending.get(name).map(|s| s.kind.as_str()))?;
        if removed || !self.handoff_kinds.contains(kind) {
            return None;
        }
        self.owner(name)
            .filter(|o| *o != self.me)
            .map(str::to_owned)
    }
}

/// Keeps `value` for `name` with its arrival time in a table of at most
/// [`MAX_STASHED`] entries, making room by dropping those older than
/// `wait`; `false` (and nothing kept) if the table is full of recent ones.
fn keep_bounded<T>(
    table: &mut std::collections::HashMap<Name, (T, u64)>,
    name: Name,
    value: T,
    now_ms: u64,
    wait: u64,
) -> bool {
    if table.len() >= MAX_STASHED {
        table.retain(|_, (_, at)| now_ms.saturating_sub(*at) <= wait);
        if table.len() >= MAX_STASHED {
            return false;
        }
    }
    table.insert(name, (value, now_ms));
    true
}
