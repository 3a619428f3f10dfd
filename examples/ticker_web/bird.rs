//! The `Ticker` bird: one per user, counting ticks and saving each one.

use crate::store::TickStore;
use flock_actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The store every `Ticker` on this server reads and writes: given to the
/// node's builder (`.nest(Store(..))`), found by type in `hatch`.
#[derive(Clone)]
pub(crate) struct Store(pub(crate) Arc<dyn TickStore>);

/// The most ticks one reply carries: a caller further behind skips ahead.
pub(crate) const MAX_BATCH: u64 = 100;

/// How long a `NextTicks` waits for a new tick before answering empty.
const LONG_POLL: Duration = Duration::from_secs(1);

/// The bird name of `user`'s ticker.
pub(crate) fn bird_name(user: &str) -> String {
    format!("ticker:{user}")
}

/// How a ticker ticks; the same for every incarnation of one user's bird.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TickerArgs {
    /// The user, also the store key.
    pub(crate) user: String,
    /// Time between ticks (and between saves).
    pub(crate) period_ms: u64,
    /// The bird stops (and leaves the registry) after this long without a
    /// caller; 0 keeps it forever.
    pub(crate) idle_secs: u64,
}

/// Counts ticks for one user. Each tick is saved to the store *before* any
/// caller can see it, so an incarnation hatched elsewhere after a crash
/// starts from at least the last tick anyone was shown: streams never go
/// backwards.
#[flock_bird(kind = "ticker.Ticker", messages(NextTicks))]
pub(crate) struct Ticker {
    args: TickerArgs,
    store: Arc<dyn TickStore>,
    tick: u64,
    waiters: Vec<(Option<u64>, oneshot::Sender<Ticks>)>,
    last_call: Instant,
}

impl Bird for Ticker {
    type Args = TickerArgs;

    fn hatch(_name: &str, args: TickerArgs, nest: &Nest) -> Result<Self, HatchError> {
        // A server without a store cannot run tickers: its callers are told
        // so (Error::HatchFailed) instead of seeing counters restart at 0.
        let Store(store) = nest.require::<Store>()?.clone();
        let tick = match store.load(&args.user) {
            Ok(tick) => tick,
            Err(e) => {
                log::error!("ticker {}: cannot load its counter: {e}", args.user);
                0
            }
        };
        log::info!(
            "ticker {} hatched on {} at tick {tick}",
            args.user,
            node_name()
        );
        Ok(Ticker {
            args,
            store,
            tick,
            waiters: Vec::new(),
            last_call: Instant::now(),
        })
    }
}

impl Actor for Ticker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let period = Duration::from_millis(self.args.period_ms.max(1));
        ctx.run_interval(period, |bird, ctx| bird.on_tick(ctx));
    }
}

impl Ticker {
    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let idle = self.args.idle_secs;
        if idle > 0 && self.last_call.elapsed() > Duration::from_secs(idle) {
            log::info!("ticker {} idle for {idle} s: stopping", self.args.user);
            // A bird that stops itself is removed cluster-wide; the next
            // viewer starts it again, from the store.
            ctx.stop();
            return;
        }
        let next = self.tick + 1;
        if let Err(e) = self.store.save(&self.args.user, next) {
            // Keep ticking: the stream stays up, but a failover may now
            // repeat ticks since the last successful save.
            log::warn!("ticker {}: cannot save tick {next}: {e}", self.args.user);
        }
        self.tick = next;
        for (after, waiter) in std::mem::take(&mut self.waiters) {
            let _ = waiter.send(self.ticks_after(after));
        }
    }

    fn ticks_after(&self, after: Option<u64>) -> Ticks {
        let first = match after {
            // A newcomer gets the current tick only.
            None => self.tick.max(1),
            Some(after) => (after + 1).max(self.tick.saturating_sub(MAX_BATCH - 1)),
        };
        Ticks {
            node: node_name(),
            ticks: (first..=self.tick).collect(),
            latest: self.tick,
        }
    }
}

fn node_name() -> String {
    current_node().map(|n| n.to_string()).unwrap_or_default()
}

/// Asks for the ticks after `after` (`None`: the latest one), waiting up to
/// a second for the next tick if there is none yet.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "Ticks")]
pub(crate) struct NextTicks {
    /// The last tick the caller has, if any.
    pub(crate) after: Option<u64>,
}

/// The reply to [`NextTicks`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ticks {
    /// The node the bird runs on.
    pub(crate) node: String,
    /// Consecutive ticks, oldest first; empty if none came within a second.
    pub(crate) ticks: Vec<u64>,
    /// The bird's current tick (lets a caller that is ahead notice it).
    pub(crate) latest: u64,
}

impl Handler<NextTicks> for Ticker {
    type Result = ResponseFuture<Ticks>;

    fn handle(&mut self, msg: NextTicks, _: &mut Context<Self>) -> Self::Result {
        self.last_call = Instant::now();
        let ready = self.ticks_after(msg.after);
        if !ready.ticks.is_empty() {
            return Box::pin(async move { ready });
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push((msg.after, tx));
        let empty = ready;
        Box::pin(async move {
            match tokio::time::timeout(LONG_POLL, rx).await {
                Ok(Ok(ticks)) => ticks,
                _ => empty,
            }
        })
    }
}
