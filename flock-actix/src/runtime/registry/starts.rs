//! Bird starts handed to their arbiters in batches, one wake-up per
//! arbiter per turn of the Registry.
//!
//! A bird is prepared on the Registry's thread (its address works at once:
//! messages queue in its mailbox) and hatched on its lane's arbiter. Handing
//! each start over on its own (`ArbiterHandle::spawn_fn`) woke an idle bird
//! thread once per bird: measured during a rolling restart, 40 µs of the
//! Registry's time per resumed bird on a loaded 2-vCPU machine (against
//! 1.5 µs when the arbiter was busy anyway), so a node receiving 1,600 birds
//! kept its Registry busy for ≈ 100 ms, and every call for a bird still in
//! its mailbox waited that long.
//!
//! Now starts wait in one list per lane until the Registry's mailbox is
//! drained (a `ctx.notify` runs after every message already queued), then
//! each lane's list goes over in one `spawn_fn`. The order of starts on one
//! lane is kept, so two instances of one name still start in the order
//! they were decided.

use super::Registry;
use crate::runtime::kinds::Start;
use actix::prelude::*;

/// Starts waiting to be handed over, by lane.
#[derive(Default)]
pub(super) struct Starts {
    by_lane: Vec<Vec<Start>>,
    /// A `FlushStarts` is queued.
    queued: bool,
}

/// Hands the waiting starts to their arbiters.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushStarts;

impl Registry {
    /// Queues `start` (of bird `name`) for its lane's arbiter.
    pub(super) fn queue_start(&mut self, name: &str, start: Start, ctx: &mut Context<Self>) {
        let lane = self.lane(name);
        if self.starts.by_lane.len() <= lane {
            self.starts.by_lane.resize_with(lane + 1, Vec::new);
        }
        self.starts.by_lane[lane].push(start);
        if ctx.state() != ActorState::Running {
            // No later turn to flush in (the Registry is stopping).
            return self.flush_starts(ctx);
        }
        if !self.starts.queued {
            self.starts.queued = true;
            ctx.notify(FlushStarts);
        }
    }

    fn flush_starts(&mut self, ctx: &mut Context<Self>) {
        self.starts.queued = false;
        let mut gone = false;
        for (lane, starts) in self.starts.by_lane.iter_mut().enumerate() {
            if starts.is_empty() {
                continue;
            }
            let batch = std::mem::take(starts);
            let run = move || batch.into_iter().for_each(|start| start());
            // With no bird arbiters (`arbiters(0)`), birds run on this one.
            let handed = match self.arbiters.get(lane) {
                Some(arbiter) => arbiter.spawn_fn(run),
                None => Arbiter::current().spawn_fn(run),
            };
            // Not handed: the batch was dropped unrun, and each bird's exit
            // guard reported it `TornDown`.
            gone |= !handed;
        }
        if gone {
            self.arbiters_gone(ctx);
        }
    }
}

impl Handler<FlushStarts> for Registry {
    type Result = ();

    fn handle(&mut self, _: FlushStarts, ctx: &mut Context<Self>) {
        self.flush_starts(ctx);
    }
}
