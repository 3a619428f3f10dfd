//! The application-facing life of birds: start-or-get (`Flock::ensure`),
//! readiness (`Flock::ready`), on-demand activation (`Bird::activate`) and
//! node-local context for `hatch` (`FlockBuilder::nest`).

mod support;

use flock_actix::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::*;

/// Another kind, to take a name away from `Echo`.
#[flock_bird(kind = "test.Other", messages(Ping))]
struct Other;

impl Actor for Other {
    type Context = Context<Self>;
}

impl Bird for Other {
    type Args = ();
    fn hatch(_: &str, (): (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Other)
    }
}

impl Handler<Ping> for Other {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        "other".into()
    }
}

#[actix_rt::test]
async fn ensure_starts_a_bird_once_and_then_gets_it() {
    init_logs();
    let node = TestNode::start("ensure@127.0.0.1", vec![], |b| b.bird::<Other>());
    let flock = &node.flock;
    flock.ensure::<Echo>("room", 7).await.unwrap();
    flock.ensure::<Echo>("room", 99).await.unwrap();
    let room = flock.addr::<Echo>("room");
    // The first start's arguments hold: the second call only got it.
    assert_eq!(room.send(Get).await, Ok(7));
    assert_eq!(
        flock.ensure::<Other>("room", ()).await,
        Err(Error::AlreadyExists {
            name: "room".into()
        })
    );
}

#[actix_rt::test]
async fn ready_waits_for_the_hosts_asked_for() {
    init_logs();
    let first = TestNode::start("ready1@127.0.0.1", vec![], |b| b);
    assert_eq!(first.flock.ready(1, Duration::ZERO).await, Ok(true));
    assert_eq!(
        first.flock.ready(2, Duration::from_millis(50)).await,
        Ok(false)
    );
    let _second = TestNode::start("ready2@127.0.0.1", vec![first.addr()], |b| b);
    assert_eq!(
        first.flock.ready(2, Duration::from_secs(10)).await,
        Ok(true)
    );
}

/// Node-local context: a greeting only this node's builder knows.
struct Greeting(String);

/// Counts the lobbies hatched on one node (context too: no global static).
#[derive(Clone, Default)]
struct Hatched(Arc<AtomicU64>);

/// A kind that activates on demand: `lobby:<topic>` starts on its first
/// message, about `<topic>`; reads its greeting from the node's nest.
#[flock_bird(kind = "test.Lobby", activate, messages(Topic, Say, Heard))]
struct Lobby {
    topic: String,
    greeting: String,
    said: Vec<String>,
}

impl Actor for Lobby {
    type Context = Context<Self>;
}

impl Bird for Lobby {
    type Args = String;
    fn hatch(_: &str, topic: String, nest: &Nest) -> Result<Self, HatchError> {
        let Greeting(greeting) = nest.require::<Greeting>()?;
        if let Some(Hatched(n)) = nest.get::<Hatched>() {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Lobby {
            topic,
            greeting: greeting.clone(),
            said: Vec::new(),
        })
    }
    fn activate(name: &str) -> Option<String> {
        name.strip_prefix("lobby:").map(str::to_owned)
    }
}

/// Answered with the greeting and the topic.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Topic;

impl Handler<Topic> for Lobby {
    type Result = String;
    fn handle(&mut self, _: Topic, _: &mut Context<Self>) -> String {
        format!("{} {}", self.greeting, self.topic)
    }
}

/// Says something (a cast).
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Say(String);

impl Handler<Say> for Lobby {
    type Result = ();
    fn handle(&mut self, Say(s): Say, _: &mut Context<Self>) {
        self.said.push(s);
    }
}

/// Answered with everything said.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "Vec<String>")]
struct Heard;

impl Handler<Heard> for Lobby {
    type Result = Vec<String>;
    fn handle(&mut self, _: Heard, _: &mut Context<Self>) -> Vec<String> {
        self.said.clone()
    }
}

fn with_lobbies(b: FlockBuilder) -> FlockBuilder {
    b.bird::<Lobby>()
        .nest(Greeting("hello".into()))
        .nest(Hatched::default())
}

#[actix_rt::test]
async fn hatch_reads_the_context_given_to_the_node() {
    init_logs();
    let node = TestNode::start("nest@127.0.0.1", vec![], with_lobbies);
    node.flock
        .start::<Lobby>("plain", "cats".into())
        .await
        .unwrap();
    let lobby = node.flock.addr::<Lobby>("plain");
    assert_eq!(lobby.send(Topic).await, Ok("hello cats".into()));
    let Hatched(n) = node.flock.nest().get::<Hatched>().unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 1);
}

#[actix_rt::test]
async fn a_bird_without_its_context_fails_to_hatch_and_callers_are_told_why() {
    init_logs();
    // This node hosts lobbies but was given no Greeting.
    let node = TestNode::start("nonest@127.0.0.1", vec![], |b| b.bird::<Lobby>());
    node.flock
        .start::<Lobby>("bare", "cats".into())
        .await
        .unwrap();
    let lobby = node.flock.addr::<Lobby>("bare");
    // A call taking the local fast path while the hatch is still under way
    // can see the mailbox close (BirdPanicked); once the failure is known,
    // every call is told why at once, not after its deadline.
    wait_until(Duration::from_secs(5), "the hatch failure", || {
        let lobby = lobby.clone();
        async move {
            matches!(
                lobby.send_timeout(Topic, Duration::from_secs(3)).await,
                Err(Error::HatchFailed { .. })
            )
        }
    })
    .await;
    let asked = std::time::Instant::now();
    match lobby.send_timeout(Topic, Duration::from_secs(3)).await {
        Err(Error::HatchFailed { name, node, reason }) => {
            assert_eq!(name, "bare");
            assert_eq!(node, "nonest@127.0.0.1");
            assert!(reason.contains("Greeting"), "{reason}");
            assert!(reason.contains(".nest(value)"), "{reason}");
        }
        other => panic!("expected HatchFailed, got {other:?}"),
    }
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "answered at its deadline"
    );
    // The node itself is fine: other kinds run, the bird stays registered.
    node.flock.start::<Echo>("fine", 3).await.unwrap();
    assert_eq!(node.flock.addr::<Echo>("fine").send(Get).await, Ok(3));
    assert!(
        node.flock
            .birds()
            .await
            .unwrap()
            .iter()
            .any(|(n, _)| n == "bare")
    );
}

#[actix_rt::test]
async fn a_call_to_an_activating_kind_starts_the_bird_from_its_name() {
    init_logs();
    let node = TestNode::start("activate@127.0.0.1", vec![], with_lobbies);
    let lobby = node.flock.addr::<Lobby>("lobby:rust");
    assert_eq!(lobby.send(Topic).await, Ok("hello rust".into()));
    let birds = node.flock.birds().await.unwrap();
    assert!(
        birds
            .iter()
            .any(|(n, k)| n == "lobby:rust" && k == "test.Lobby")
    );
    // A name the kind derives no arguments from is not activated.
    assert_eq!(
        node.flock.addr::<Lobby>("elsewhere").send(Topic).await,
        Err(Error::NotFound {
            name: "elsewhere".into()
        })
    );
}

#[actix_rt::test]
async fn a_cast_to_an_activating_kind_starts_the_bird_and_is_delivered() {
    init_logs();
    let node = TestNode::start("activate-cast@127.0.0.1", vec![], with_lobbies);
    let lobby = node.flock.addr::<Lobby>("lobby:casts");
    lobby.do_send(Say("first".into()));
    wait_until(Duration::from_secs(5), "the cast to be delivered", || {
        let lobby = lobby.clone();
        async move { lobby.send(Heard).await == Ok(vec!["first".to_owned()]) }
    })
    .await;
}

#[actix_rt::test]
async fn first_calls_from_every_node_at_once_end_with_one_instance_each() {
    init_logs();
    let nodes = cluster_with(3, with_lobbies).await;
    let flocks: Vec<Flock> = nodes.iter().map(|n| n.flock.clone()).collect();
    let names: Vec<String> = (0..12).map(|i| format!("lobby:t{i}")).collect();
    // Every node calls every name at the same moment.
    let mut calls = Vec::new();
    for f in &flocks {
        for name in &names {
            let lobby = f.addr::<Lobby>(name);
            calls.push(actix_rt::spawn(async move { lobby.send(Topic).await }));
        }
    }
    for (call, name) in calls.into_iter().zip(names.iter().cycle()) {
        let topic = name.strip_prefix("lobby:").unwrap();
        assert_eq!(call.await.unwrap(), Ok(format!("hello {topic}")));
    }
    let refs: Vec<&Flock> = flocks.iter().collect();
    wait_until(
        Duration::from_secs(10),
        "exactly one instance of every lobby",
        || {
            let (refs, names) = (refs.clone(), names.clone());
            async move {
                let mut running = Vec::new();
                for f in &refs {
                    running.extend(f.local_birds().await.unwrap_or_default());
                }
                running.sort();
                running
                    == names
                        .iter()
                        .cloned()
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
            }
        },
    )
    .await;
    // One hatch per name in the whole cluster: no duplicate ever ran.
    let hatched: u64 = flocks
        .iter()
        .map(|f| f.nest().get::<Hatched>().unwrap().0.load(Ordering::Relaxed))
        .sum();
    assert_eq!(hatched, names.len() as u64);
}
