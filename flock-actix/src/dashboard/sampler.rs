//! The sampler task and the state it publishes: a thin shell around the
//! pure `snapshot` and `diff` modules.

use super::DashboardConfig;
use super::diff::{Event, EventLog, Observation, diff};
use super::snapshot::{Limits, Sample, build};
use crate::error::Result;
use crate::runtime::Flock;
use actix_web::web::Bytes;
use serde::Serialize;
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A sample that takes longer than this fraction of the pause after it
/// stretches the pause, so a huge registry is not copied back to back.
const MAX_BUSY_FRACTION: u32 = 4;

/// What the sampler publishes and the handlers read.
pub(crate) struct Shared {
    pub(crate) config: DashboardConfig,
    node: String,
    published: Mutex<Published>,
}

struct Published {
    /// The latest `api/state` body, serialized once per sample.
    state: Bytes,
    events: EventLog,
}

/// The `api/state` body.
#[derive(Serialize)]
struct StateJson<'a> {
    node: &'a str,
    /// Wall-clock time of the sample (ms since the epoch; 0: none yet).
    sampled_at_ms: u64,
    /// How long the sample took.
    sample_ms: u64,
    /// How often the page should refresh.
    interval_ms: u64,
    /// Why the latest sample failed (the data is then the last good one).
    error: Option<&'a str>,
    #[serde(flatten)]
    sample: &'a Sample,
    /// The number of the newest event (for `api/events?after=`).
    last_event: u64,
    /// The newest events, oldest first.
    events: Vec<&'a Event>,
}

/// The `api/events` body.
#[derive(Serialize)]
struct EventsJson<'a> {
    node: &'a str,
    last_event: u64,
    events: Vec<&'a Event>,
}

impl Shared {
    pub(crate) fn new(node: &str, config: DashboardConfig) -> Shared {
        let shared = Shared {
            node: node.to_owned(),
            published: Mutex::new(Published {
                state: Bytes::new(),
                events: EventLog::new(config.events),
            }),
            config,
        };
        shared.publish(&Sample::default(), Some("no sample yet"), 0, Duration::ZERO);
        shared
    }

    fn lock(&self) -> MutexGuard<'_, Published> {
        // A panic while holding the lock leaves consistent data behind:
        // every write replaces a whole value.
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest `api/state` body.
    pub(crate) fn state(&self) -> Bytes {
        self.lock().state.clone()
    }

    /// The `api/events` body: every kept event numbered after `after`.
    pub(crate) fn events_after(&self, after: u64) -> Vec<u8> {
        let published = self.lock();
        let body = EventsJson {
            node: &self.node,
            last_event: published.events.last_seq(),
            events: published.events.after(after).collect(),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn record(&self, changes: Vec<super::diff::Change>, at_ms: u64) {
        if !changes.is_empty() {
            self.lock().events.record(changes, at_ms);
        }
    }

    fn publish(&self, sample: &Sample, error: Option<&str>, at_ms: u64, took: Duration) {
        let mut published = self.lock();
        let body = StateJson {
            node: &self.node,
            sampled_at_ms: at_ms,
            sample_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            interval_ms: u64::try_from(self.config.interval.as_millis()).unwrap_or(u64::MAX),
            error,
            sample,
            last_event: published.events.last_seq(),
            events: published.events.recent(self.config.recent_events).collect(),
        };
        match serde_json::to_vec(&body) {
            Ok(bytes) => published.state = Bytes::from(bytes),
            Err(e) => tracing::warn!("dashboard: cannot serialize the state: {e}"),
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Asks the node what it sees now.
async fn sample(flock: &Flock, limits: Limits) -> Result<(Sample, Observation)> {
    let members = flock.members().await?;
    let birds = flock.birds().await?;
    let running_here = flock.local_birds().await?.len();
    let passivated_here = flock.passivated_birds().await?.len();
    let (mut sample, observation) = build(
        &members,
        birds,
        running_here,
        |kind, name| flock.owner_of_kind(kind, name).ok(),
        limits,
    );
    sample.passivated_here = passivated_here;
    Ok((sample, observation))
}

/// Samples `flock` until the dashboard is dropped.
pub(crate) async fn run(flock: Flock, shared: Weak<Shared>) {
    let mut previous = Observation::default();
    let mut last = Sample::default();
    loop {
        let Some(config) = shared.upgrade().map(|s| s.config.clone()) else {
            return;
        };
        let limits = Limits {
            names_per_node: config.names_per_node,
            track_limit: config.track_limit,
        };
        let started = Instant::now();
        let result = sample(&flock, limits).await;
        let took = started.elapsed();
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let error = match result {
            Ok((sample, observation)) => {
                shared.record(
                    diff(&previous, &observation, config.birds_per_event),
                    wall_ms(),
                );
                previous = observation;
                last = sample;
                None
            }
            // Keep showing the last good sample, marked stale.
            Err(e) => Some(format!("sampling {} failed: {e}", flock.name())),
        };
        shared.publish(&last, error.as_deref(), wall_ms(), took);
        drop(shared);
        actix_rt::time::sleep(config.interval.max(took * MAX_BUSY_FRACTION)).await;
    }
}
