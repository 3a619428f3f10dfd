//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! flock-actix records; the application chooses the exporter (Prometheus,
//! StatsD, …) by installing a `metrics` recorder. Without one every call
//! here is a no-op costing an atomic load. Metrics are per process: a
//! process runs one node in production, so no `node` label is added (which
//! would cost an allocation per recorded call).
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `flock_birds_hosted` | gauge | | birds running on this node |
//! | `flock_registry_birds` | gauge | | birds in this node's replica of the registry |
//! | `flock_bird_starts_total` | counter | | bird instances hatched here (first starts, moves in) |
//! | `flock_bird_restarts_total` | counter | | restarts after a panic |
//! | `flock_bird_stops_total` | counter | `reason` = `asked` (removed, moved away, or stopped at shutdown), `passivated`, `hatch_failed`, `completed`, `panicked`, `torn_down` | instances stopped here |
//! | `flock_calls_total` | counter | `path` = `local`/`remote`, `outcome` = `ok` or an error kind | calls made through a `FlockAddr` on this node |
//! | `flock_call_duration_seconds` | histogram | `path` | time from `send` to the answer, retries included |
//! | `flock_casts_total` | counter | `path` | casts sent |
//! | `flock_casts_dropped_total` | counter | `reason` = `link_closed`, `refused`, `oversize` | casts to a remote bird dropped by this node's links (the link closed or was not up; its data link held too much, §26; too large) |
//! | `flock_moved_retries_total` | counter | | calls retried because the callee had moved |
//! | `flock_sync_bytes_total` | counter | `direction` = `out`/`in` | registry sync bytes |
//! | `flock_sync_deltas_total` | counter | `direction` | registry deltas and full states |
//! | `flock_members` | gauge | `status` = `up`/`down` | members in this node's view |
//! | `flock_member_events_total` | counter | `event` = `up`/`down`/`left` | membership changes seen |

use crate::core::lifecycle::Exit;
use crate::error::Error;
use crate::wire::message::Message;
use metrics::{Key, Label, Level, Metadata, counter, gauge, histogram};

/// Where a call or cast went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path {
    /// To a bird on this node, without serialization.
    Local,
    /// Over a link.
    Remote,
}

impl Path {
    /// `Local` when the bird's owner is this node.
    pub(crate) fn of(local: bool) -> Self {
        if local { Path::Local } else { Path::Remote }
    }

    fn label(self) -> &'static str {
        match self {
            Path::Local => "local",
            Path::Remote => "remote",
        }
    }
}

/// Registers the descriptions of every metric with the installed recorder
/// (once per process; later nodes skip it).
pub(crate) fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_gauge!("flock_birds_hosted", "birds running on this node");
        describe_gauge!(
            "flock_registry_birds",
            "birds in this node's replica of the registry"
        );
        describe_counter!("flock_bird_starts_total", "bird instances hatched here");
        describe_counter!("flock_bird_restarts_total", "bird restarts after a panic");
        describe_counter!(
            "flock_bird_stops_total",
            "bird instances stopped here, by reason"
        );
        describe_counter!(
            "flock_calls_total",
            "calls through a FlockAddr, by path and outcome"
        );
        describe_histogram!(
            "flock_call_duration_seconds",
            Unit::Seconds,
            "time from send to answer"
        );
        describe_counter!("flock_casts_total", "casts sent, by path");
        describe_counter!(
            "flock_casts_dropped_total",
            "casts to remote birds dropped by this node's links, by reason"
        );
        describe_counter!(
            "flock_moved_retries_total",
            "calls retried because the bird had moved"
        );
        describe_counter!("flock_sync_bytes_total", Unit::Bytes, "registry sync bytes");
        describe_counter!("flock_sync_deltas_total", "registry deltas and full states");
        describe_gauge!("flock_members", "members in this node's view, by status");
        describe_counter!("flock_member_events_total", "membership changes seen");
    });
}

/// A call started at `started` finished now, with `error` or not.
pub(crate) fn call_done(path: Path, error: Option<&Error>, started: tokio::time::Instant) {
    // The clock is read only if a recorder takes the value (see `Since`).
    let seconds = Since(started);
    // Literal labels make static metric keys: a label computed at run time
    // costs a `Vec` of labels per call (issue #12), so the answered calls,
    // nearly all of them, take these arms.
    match (path, error) {
        (Path::Local, None) => answered(&LOCAL_OK, &LOCAL_DURATION, seconds),
        (Path::Remote, None) => answered(&REMOTE_OK, &REMOTE_DURATION, seconds),
        (path, Some(e)) => {
            let outcome = e.kind_label();
            counter!("flock_calls_total", "path" => path.label(), "outcome" => outcome)
                .increment(1);
            histogram!("flock_call_duration_seconds", "path" => path.label()).record(seconds);
        }
    }
}

/// The keys of an answered call's two metrics, built at compile time as
/// `counter!`/`histogram!` build them from literal labels.
static LOCAL_OK: Key = Key::from_static_parts("flock_calls_total", &LOCAL_OK_LABELS);
static REMOTE_OK: Key = Key::from_static_parts("flock_calls_total", &REMOTE_OK_LABELS);
static LOCAL_DURATION: Key =
    Key::from_static_parts("flock_call_duration_seconds", &LOCAL_DURATION_LABELS);
static REMOTE_DURATION: Key =
    Key::from_static_parts("flock_call_duration_seconds", &REMOTE_DURATION_LABELS);
static LOCAL_OK_LABELS: [Label; 2] = [
    Label::from_static_parts("path", "local"),
    Label::from_static_parts("outcome", "ok"),
];
static REMOTE_OK_LABELS: [Label; 2] = [
    Label::from_static_parts("path", "remote"),
    Label::from_static_parts("outcome", "ok"),
];
static LOCAL_DURATION_LABELS: [Label; 1] = [Label::from_static_parts("path", "local")];
static REMOTE_DURATION_LABELS: [Label; 1] = [Label::from_static_parts("path", "remote")];
/// What the macros give a metric of this module.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// An answered call: its counter and its duration, under one look-up of
/// the recorder (the two macros look it up once each; issue #12).
fn answered(calls: &'static Key, duration: &'static Key, seconds: Since) {
    metrics::with_recorder(|recorder| {
        recorder.register_counter(calls, &METADATA).increment(1);
        recorder
            .register_histogram(duration, &METADATA)
            .record(seconds);
    });
}

/// The seconds since an instant, read from the clock only when converted:
/// a histogram converts its value only if a recorder is installed, so
/// without one a call reads the clock once (for its deadline), not twice
/// (a clock read is ≈ 25 ns of a ≈ 700 ns local call; issue #12).
struct Since(tokio::time::Instant);

impl metrics::IntoF64 for Since {
    fn into_f64(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// A cast was sent.
pub(crate) fn cast_sent(path: Path) {
    match path {
        Path::Local => counter!("flock_casts_total", "path" => "local").increment(1),
        Path::Remote => counter!("flock_casts_total", "path" => "remote").increment(1),
    }
}

/// A cast to a remote bird was dropped by a link, for `reason`.
pub(crate) fn cast_dropped(reason: &'static str) {
    counter!("flock_casts_dropped_total", "reason" => reason).increment(1);
}

/// A call is retried because the bird moved.
pub(crate) fn moved_retry() {
    counter!("flock_moved_retries_total").increment(1);
}

/// A call for a bird that moved was passed on to its new owner.
pub(crate) fn call_forwarded() {
    counter!("flock_calls_forwarded_total").increment(1);
}

/// A bird instance hatched here (a first start, a restart or a move in);
/// `hosted` run here now.
pub(crate) fn bird_started(hosted: usize) {
    counter!("flock_bird_starts_total").increment(1);
    gauge!("flock_birds_hosted").set(hosted as f64);
}

/// A bird instance stopped here, for `reason` (`"asked"`: removed or moved
/// away; or its exit's label); `hosted` run here now. A panic or a torn-down
/// arbiter also counts as a restart: the lifecycle restarts it.
pub(crate) fn bird_stopped(reason: &'static str, hosted: usize) {
    counter!("flock_bird_stops_total", "reason" => reason).increment(1);
    if matches!(reason, "panicked" | "torn_down") {
        counter!("flock_bird_restarts_total").increment(1);
    }
    gauge!("flock_birds_hosted").set(hosted as f64);
}

/// The label of a bird's exit, for `flock_bird_stops_total`.
pub(crate) fn exit_label(exit: &Exit) -> &'static str {
    match exit {
        Exit::Completed => "completed",
        Exit::TornDown => "torn_down",
        Exit::Panicked => "panicked",
    }
}

/// The registry replica holds `registered` birds.
pub(crate) fn registry_size(registered: usize) {
    gauge!("flock_registry_birds").set(registered as f64);
}

/// Which way a sync frame went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    /// Sent by this node.
    Out,
    /// Received by this node.
    In,
}

/// A frame went over a link: if it is registry sync traffic, count its
/// `bytes` (encoded size, header included; 0 when unknown) and, for a frame
/// carrying deltas or state, one delta batch. Other frames are ignored.
pub(crate) fn sync_frame(direction: Direction, msg: &Message, bytes: usize) {
    let batch = match msg {
        Message::SyncDeltas { .. } | Message::SyncFull { .. } | Message::SyncChunk { .. } => 1,
        Message::SyncAck { .. } | Message::SyncChunkAck { .. } => 0,
        _ => return,
    };
    let direction = match direction {
        Direction::Out => "out",
        Direction::In => "in",
    };
    if bytes > 0 {
        counter!("flock_sync_bytes_total", "direction" => direction).increment(bytes as u64);
    }
    if batch > 0 {
        counter!("flock_sync_deltas_total", "direction" => direction).increment(batch);
    }
}

/// The view now has `up` members up and `down` down.
pub(crate) fn members(up: usize, down: usize) {
    gauge!("flock_members", "status" => "up").set(up as f64);
    gauge!("flock_members", "status" => "down").set(down as f64);
}

/// A member changed state (`"up"`, `"down"`, `"left"`).
pub(crate) fn member_event(event: &'static str) {
    counter!("flock_member_events_total", "event" => event).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use std::time::Duration;

    /// The durations recorded for `flock_call_duration_seconds`.
    fn durations(recorder: &DebuggingRecorder) -> Vec<f64> {
        recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "flock_call_duration_seconds")
            .flat_map(|(.., value)| match value {
                DebugValue::Histogram(samples) => samples,
                _ => vec![],
            })
            .map(|s| s.into_inner())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_duration_is_read_from_the_clock_when_a_recorder_takes_it() {
        let recorder = DebuggingRecorder::new();
        let started = tokio::time::Instant::now();
        tokio::time::advance(Duration::from_millis(30)).await;
        metrics::with_local_recorder(&recorder, || {
            call_done(Path::Local, None, started);
            call_done(Path::Remote, Some(&Error::Stopped), started);
        });
        assert_eq!(durations(&recorder), vec![0.03, 0.03]);
    }
}
