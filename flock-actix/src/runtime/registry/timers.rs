//! The core's timers behind one actix timer (`core::timers` says why: a
//! context polls each of its `run_later`s every time it wakes).

use super::Registry;
use crate::core::lifecycle::{Input, Timer};
use crate::core::timers::TimerQueue;
use actix::prelude::*;
use std::time::Duration;

/// The core's pending timers and the one actix timer armed for them.
#[derive(Default)]
pub(super) struct Timers {
    queue: TimerQueue<Timer>,
    armed: Option<SpawnHandle>,
}

impl Registry {
    /// Feeds `timer` back to the core at `at_ms`.
    pub(super) fn schedule(&mut self, at_ms: u64, timer: Timer, ctx: &mut Context<Self>) {
        if let Some(at_ms) = self.timers.queue.schedule(at_ms, timer) {
            self.arm(at_ms, ctx);
        }
    }

    fn arm(&mut self, at_ms: u64, ctx: &mut Context<Self>) {
        if let Some(old) = self.timers.armed.take() {
            ctx.cancel_future(old);
        }
        let after = Duration::from_millis(at_ms.saturating_sub(self.node.now_ms()));
        self.timers.armed = Some(ctx.run_later(after, |act, ctx| act.fire_timers(ctx)));
    }

    fn fire_timers(&mut self, ctx: &mut Context<Self>) {
        self.timers.armed = None;
        let (due, next) = self.timers.queue.fire(self.node.now_ms());
        if let Some(at_ms) = next {
            // The next one at least a millisecond on: a timer that fired
            // early on the millisecond clock must not spin.
            self.arm(at_ms.max(self.node.now_ms() + 1), ctx);
        }
        if !due.is_empty() {
            let mut inputs = self.view_if_new();
            inputs.extend(due.into_iter().map(Input::Timer));
            self.run(inputs, ctx);
        }
    }
}
