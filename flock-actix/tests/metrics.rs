//! The metrics flock-actix records through the `metrics` facade, read back
//! with metrics-util's DebuggingRecorder (installed once for this test
//! binary, so it holds one test: the recorder is process-global).

use flock_actix::prelude::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[flock_bird(messages(Greet))]
struct Greeter;

impl Actor for Greeter {
    type Context = Context<Self>;
}

impl Bird for Greeter {
    type Args = ();
    fn hatch(_name: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Greeter)
    }
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Greet(String);

impl Handler<Greet> for Greeter {
    type Result = String;
    fn handle(&mut self, Greet(who): Greet, _: &mut Context<Self>) -> String {
        format!("hello, {who}")
    }
}

/// What the recorder saw so far. A DebuggingRecorder snapshot resets what
/// it reads (counters to 0, gauges to 0, histograms emptied), so every
/// snapshot is folded in here: counters and histogram sample counts add up,
/// a gauge keeps its last non-zero value.
struct Seen {
    snap: Snapshotter,
    totals: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Seen {
    /// The metric `name` over every series whose labels include all of
    /// `labels`, summed.
    fn value(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        for (key, _, _, value) in self.snap.snapshot().into_vec() {
            let key = key.key();
            let id = (
                key.name().to_owned(),
                key.labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
            );
            let total = self.totals.entry(id).or_default();
            match value {
                DebugValue::Counter(n) => *total += n as f64,
                DebugValue::Histogram(samples) => *total += samples.len() as f64,
                DebugValue::Gauge(g) if g.into_inner() != 0.0 => *total = g.into_inner(),
                DebugValue::Gauge(_) => {}
            }
        }
        self.totals
            .iter()
            .filter(|((n, ls), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

async fn node(name: &str, seeds: Vec<String>) -> Flock {
    Flock::builder(name)
        .listen("127.0.0.1:0")
        .seeds(seeds)
        .cookie("metrics-test")
        .arbiters(1)
        .call_timeout(Duration::from_secs(3))
        .bird::<Greeter>()
        .start()
        .await
        .expect("a node starts")
}

async fn eventually(seen: &mut Seen, what: &str, cond: impl Fn(&mut Seen) -> bool) {
    let start = Instant::now();
    while !cond(seen) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix::test]
async fn starting_and_calling_birds_moves_the_counters_gauges_and_latency_histogram() {
    // flock-actix logs through tracing; with no tracing subscriber its lines
    // reach env_logger through tracing's `log` feature (RUST_LOG=info shows
    // them, "left gracefully" among them).
    let _ = env_logger::builder().is_test(true).try_init();
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen {
        snap: recorder.snapshotter(),
        totals: HashMap::new(),
    };
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let a = node("metrics-a@127.0.0.1", vec![]).await;
    let b = node("metrics-b@127.0.0.1", vec![a.listen_addr().to_owned()]).await;
    eventually(&mut seen, "both nodes to see each other", |seen| {
        seen.value("flock_member_events_total", &[("event", "up")]) >= 2.0
    })
    .await;

    let names: Vec<String> = (0..16).map(|i| format!("greeter-{i}")).collect();
    for name in &names {
        a.start::<Greeter>(name, ())
            .await
            .expect("the name is free");
    }
    for name in &names {
        let reply = a.addr::<Greeter>(name).send(Greet("ada".into())).await;
        assert_eq!(reply, Ok("hello, ada".to_owned()));
        a.addr::<Greeter>(name).do_send(Greet("cast".into()));
    }
    let missing = a.addr::<Greeter>("nobody").send(Greet("x".into())).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );

    // 16 birds over two nodes: some calls stay local, some go remote.
    let ok_local = seen.value("flock_calls_total", &[("path", "local"), ("outcome", "ok")]);
    let ok_remote = seen.value(
        "flock_calls_total",
        &[("path", "remote"), ("outcome", "ok")],
    );
    assert_eq!(ok_local + ok_remote, 16.0);
    assert!(
        ok_local > 0.0 && ok_remote > 0.0,
        "local {ok_local}, remote {ok_remote}"
    );
    assert_eq!(
        seen.value("flock_calls_total", &[("outcome", "not_found")]),
        1.0
    );
    assert_eq!(seen.value("flock_casts_total", &[]), 16.0);
    assert_eq!(seen.value("flock_call_duration_seconds", &[]), 17.0);
    assert!(seen.value("flock_bird_starts_total", &[]) >= 16.0);
    // Both nodes set the (unlabelled, per-process) gauges; the last writer
    // wins, so only bounds hold here.
    eventually(&mut seen, "the hosted gauge to count birds", |seen| {
        seen.value("flock_birds_hosted", &[]) > 0.0
    })
    .await;
    eventually(
        &mut seen,
        "the registry gauge to see the 16 birds",
        |seen| seen.value("flock_registry_birds", &[]) == 16.0,
    )
    .await;
    assert_eq!(seen.value("flock_members", &[("status", "up")]), 2.0);
    assert!(seen.value("flock_sync_bytes_total", &[("direction", "out")]) > 0.0);
    assert!(seen.value("flock_sync_deltas_total", &[("direction", "in")]) > 0.0);

    // A graceful leave is counted apart from a crash ("down").
    b.leave().await.expect("b leaves");
    eventually(
        &mut seen,
        "the survivor to count the graceful leave",
        |seen| seen.value("flock_member_events_total", &[("event", "left")]) >= 1.0,
    )
    .await;
    assert_eq!(
        seen.value("flock_member_events_total", &[("event", "down")]),
        0.0
    );
    b.shutdown();
    a.shutdown();
}
