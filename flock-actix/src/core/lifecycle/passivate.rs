//! Idle passivation: a bird of a kind that passivates, to which no message
//! was handed for its kind's idle time, is stopped here but keeps its entry
//! in the set and in this core; the next message starts it again.
//!
//! The steps, all driven by inputs with the time passed in:
//! 1. Every start (`launch`) arms a `Timer::Idle` at `now + idle`; every
//!    `Deliver` moves `last_active_ms`. One timer per instance: when it
//!    fires early (a message came in between) it is armed again for the
//!    new deadline, never one timer per message.
//! 2. When it fires on a running instance idle long enough, the core says
//!    `Effect::Passivate` (taking the state for a kind with one) and the
//!    bird is `Passivating` until its exit report and its state are in.
//! 3. Then it is `Passivated`, its state kept in `Local::saved`. A message
//!    to it (`wake`) starts a new instance from that state (`Resume`) or
//!    from its arguments (`Spawn`), exactly once: the next messages find it
//!    running. A reconciliation finds its entry and starts nothing.
//! 4. A move sends the saved state to the new owner (`SendState`, the
//!    ordinary handoff), waiting for it first if the bird is still
//!    passivating; a removal from the set just forgets it.

use super::{Effect, Lifecycle, Name, Owners, Passivating, State, Timer, Waiter};

impl<V: Owners> Lifecycle<V> {
    /// Birds of `kinds` are passivated after their idle time (ms).
    pub fn with_passivation(mut self, kinds: impl IntoIterator<Item = (String, u64)>) -> Self {
        self.passivate_after = kinds.into_iter().collect();
        self
    }

    /// Names passivated here (stopped while idle, started by their next
    /// message).
    pub fn passivated(&self) -> impl Iterator<Item = &Name> {
        self.birds
            .iter()
            .filter(|(_, l)| matches!(l.state, State::Passivated | State::Passivating(_)))
            .map(|(n, _)| n)
    }

    /// Names fully passivated (not still passivating).
    #[cfg(test)]
    pub(super) fn passivated_only(&self) -> impl Iterator<Item = &Name> {
        self.birds
            .iter()
            .filter(|(_, l)| l.state == State::Passivated)
            .map(|(n, _)| n)
    }

    fn idle_ms(&self, name: &str) -> Option<u64> {
        let local = self.birds.get(name)?;
        self.passivate_after.get(local.spec.kind()).copied()
    }

    /// A started instance: its idle time starts now.
    pub(super) fn arm_idle(&mut self, name: &Name, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(idle) = self.idle_ms(name) else {
            return;
        };
        let Some(local) = self.birds.get_mut(name) else {
            return;
        };
        local.last_active_ms = now_ms;
        out.push(Effect::Timer {
            at_ms: now_ms.saturating_add(idle),
            timer: Timer::Idle {
                name: name.clone(),
                instance: local.instance,
            },
        });
    }

    /// A message was handed to `name`: it is not idle.
    pub(super) fn touch(&mut self, name: &str, now_ms: u64) {
        if let Some(local) = self.birds.get_mut(name) {
            local.last_active_ms = now_ms;
        }
    }

    pub(super) fn on_idle_timer(
        &mut self,
        name: Name,
        instance: u64,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(idle) = self.idle_ms(&name) else {
            return;
        };
        let take_state = self
            .birds
            .get(&name)
            .is_some_and(|l| self.handoff_kinds.contains(l.spec.kind()));
        let Some(local) = self.instance_mut(&name, instance) else {
            return;
        };
        // Only a running instance sleeps; a closed one is ending anyway.
        if local.state != (State::Running { closed: false }) {
            return;
        }
        let due = local.last_active_ms.saturating_add(idle);
        if now_ms < due {
            return out.push(Effect::Timer {
                at_ms: due,
                timer: Timer::Idle { name, instance },
            });
        }
        local.state = State::Passivating(Box::new(Passivating {
            exited: false,
            state_due: take_state,
            hand_to: None,
        }));
        out.push(Effect::Passivate {
            name,
            instance,
            take_state,
        });
    }

    pub(super) fn on_state_saved(
        &mut self,
        name: &Name,
        instance: u64,
        state: Option<Vec<u8>>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(local) = self.instance_mut(name, instance) else {
            return;
        };
        if let State::Passivating(passivating) = &mut local.state {
            passivating.state_due = false;
            local.set_saved(state);
            self.passivation_done(name, now_ms, out);
        }
    }

    /// The exit report of a passivating instance.
    pub(super) fn passivate_exited(&mut self, name: Name, now_ms: u64, out: &mut Vec<Effect>) {
        if let Some(local) = self.birds.get_mut(&name)
            && let State::Passivating(passivating) = &mut local.state
        {
            passivating.exited = true;
            self.passivation_done(&name, now_ms, out);
        }
    }

    /// Once both the exit and the state are in: asleep, or (moved while it
    /// passivated) handed to its new owner. Messages that came meanwhile
    /// wake it at once.
    fn passivation_done(&mut self, name: &Name, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(local) = self.birds.get_mut(name) else {
            return;
        };
        let State::Passivating(passivating) = &mut local.state else {
            return;
        };
        if !passivating.exited || passivating.state_due {
            return;
        }
        let moved = passivating.hand_to.take().is_some();
        // Where it goes now: it may have moved on, or back here, meanwhile.
        let to = moved.then(|| self.owner(name)).flatten().map(str::to_owned);
        match to.filter(|to| *to != self.me) {
            Some(to) => {
                let Some(local) = self.birds.get_mut(name) else {
                    return;
                };
                let kind = local.spec.kind().to_owned();
                let state = local.take_saved();
                self.birds.remove(name);
                out.push(Effect::SendState {
                    name: name.clone(),
                    kind,
                    state,
                    to,
                });
                self.serve_waiters(name, now_ms, out);
            }
            None => {
                if moved {
                    self.sent_to.remove(name);
                }
                if let Some(local) = self.birds.get_mut(name) {
                    local.state = State::Passivated;
                }
                self.serve_waiters(name, now_ms, out);
            }
        }
    }

    /// `name` (passivated or passivating) stops here because flock-actix
    /// says so: moved to `hand_to` (a kind with a state), moved, or removed.
    pub(super) fn stop_passivated(
        &mut self,
        name: &Name,
        hand_to: Option<String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(local) = self.birds.get_mut(name) else {
            return;
        };
        match (&mut local.state, hand_to) {
            (State::Passivated, to) => {
                let kind = local.spec.kind().to_owned();
                let state = local.take_saved();
                self.birds.remove(name);
                if let Some(to) = to {
                    out.push(Effect::SendState {
                        name: name.clone(),
                        kind,
                        state,
                        to,
                    });
                }
            }
            // Its state is on its way here: it goes on to the new owner.
            (State::Passivating(passivating), Some(to)) => passivating.hand_to = Some(to),
            // Nothing to hand over: its exit report ends it.
            (state, None) => *state = State::Stopping,
            (_, Some(_)) => {}
        }
    }

    /// A message for passivated `name`: it starts again, from its saved
    /// state if it has one, and the message is handed to the new instance.
    pub(super) fn wake(&mut self, name: &Name, waiter: Waiter, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(local) = self.birds.get_mut(name) else {
            return;
        };
        if waiter.kind != local.spec.kind() {
            // Not worth a start: the sender is told at once.
            return out.push(super::wrong_kind(name, &waiter, local.spec.kind()));
        }
        let state = local.take_saved();
        let spec = local.spec.to_spec();
        let instance = self.next_instance;
        self.next_instance += 1;
        local.instance = instance;
        self.waiting.entry(name.clone()).or_default().push(waiter);
        self.launch(name.clone(), spec, instance, state, now_ms, out);
    }
}
