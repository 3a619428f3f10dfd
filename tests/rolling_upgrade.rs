//! A rolling upgrade: two nodes run two releases of one bird kind, whose
//! message, reply and start arguments gained a `#[serde(default)]` field.
//! Calls, casts and starts work both ways over real TCP.

mod support;

use flock_actix::prelude::*;
use std::time::Duration;
use support::*;

/// The room as the old release has it.
#[flock_bird(kind = "test.Room", messages(JoinV1 = "room.join"))]
struct RoomV1 {
    room: String,
}

impl Actor for RoomV1 {
    type Context = Context<Self>;
}

impl Bird for RoomV1 {
    type Args = ArgsV1;
    fn hatch(_: &str, args: ArgsV1, _nest: &Nest) -> Result<Self, HatchError> {
        Ok(RoomV1 { room: args.room })
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct ArgsV1 {
    room: String,
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "JoinedV1")]
struct JoinV1 {
    user: String,
}

#[derive(Serialize, Deserialize, MessageResponse)]
struct JoinedV1 {
    room: String,
    user: String,
}

impl Handler<JoinV1> for RoomV1 {
    type Result = JoinedV1;
    fn handle(&mut self, m: JoinV1, _: &mut Context<Self>) -> JoinedV1 {
        JoinedV1 {
            room: self.room.clone(),
            user: m.user,
        }
    }
}

/// The same room after the upgrade: each type gained an optional field.
#[flock_bird(kind = "test.Room", messages(JoinV2 = "room.join"))]
struct RoomV2 {
    room: String,
    topic: Option<String>,
}

impl Actor for RoomV2 {
    type Context = Context<Self>;
}

impl Bird for RoomV2 {
    type Args = ArgsV2;
    fn hatch(_: &str, args: ArgsV2, _nest: &Nest) -> Result<Self, HatchError> {
        Ok(RoomV2 {
            room: args.room,
            topic: args.topic,
        })
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct ArgsV2 {
    room: String,
    #[serde(default)]
    topic: Option<String>,
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "JoinedV2")]
struct JoinV2 {
    user: String,
    #[serde(default)]
    nick: Option<String>,
}

#[derive(Serialize, Deserialize, MessageResponse, Debug, PartialEq)]
struct JoinedV2 {
    room: String,
    user: String,
    #[serde(default)]
    nick: Option<String>,
    #[serde(default)]
    topic: Option<String>,
}

impl Handler<JoinV2> for RoomV2 {
    type Result = JoinedV2;
    fn handle(&mut self, m: JoinV2, _: &mut Context<Self>) -> JoinedV2 {
        JoinedV2 {
            room: self.room.clone(),
            user: m.user,
            nick: m.nick,
            topic: self.topic.clone(),
        }
    }
}

/// An old node and a new node, meshed; each hosts its release of the kind.
async fn mixed_pair() -> (TestNode, TestNode) {
    init_logs();
    let old = TestNode::start("old@127.0.0.1", vec![], |b| b.bird::<RoomV1>());
    let new = TestNode::start("new@127.0.0.1", vec![old.addr()], |b| b.bird::<RoomV2>());
    for f in [&old.flock, &new.flock] {
        let f = f.clone();
        wait_until(Duration::from_secs(10), "both nodes up", || {
            let f = f.clone();
            async move { f.up_count().await.unwrap_or(0) == 2 }
        })
        .await;
    }
    (old, new)
}

/// A bird name that `owner` owns in `via`'s view.
fn name_owned_by(via: &Flock, owner: &str, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| via.owner_of(n).unwrap() == owner)
        .unwrap()
}

#[actix_rt::test]
async fn an_old_node_calls_a_new_bird_which_fills_the_added_fields_with_defaults() {
    let (old, new) = mixed_pair().await;
    let name = name_owned_by(&old.flock, &new.name(), "on-new");
    // The old node encodes its arguments and message; the new bird reads
    // them with the added fields at their defaults.
    old.flock
        .start::<RoomV1>(
            &name,
            ArgsV1 {
                room: "lobby".into(),
            },
        )
        .await
        .unwrap();
    let joined = old
        .flock
        .addr::<RoomV1>(&name)
        .send(JoinV1 { user: "ann".into() })
        .await
        .unwrap();
    assert_eq!(
        (joined.room.as_str(), joined.user.as_str()),
        ("lobby", "ann")
    );
    // The new node sees the bird's state as the old node's start set it.
    let full = new
        .flock
        .addr::<RoomV2>(&name)
        .send(JoinV2 {
            user: "bob".into(),
            nick: Some("b".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        full,
        JoinedV2 {
            room: "lobby".into(),
            user: "bob".into(),
            nick: Some("b".into()),
            topic: None
        }
    );
}

#[actix_rt::test]
async fn a_new_node_calls_an_old_bird_which_skips_the_fields_it_does_not_know() {
    let (old, new) = mixed_pair().await;
    let name = name_owned_by(&new.flock, &old.name(), "on-old");
    new.flock
        .start::<RoomV2>(
            &name,
            ArgsV2 {
                room: "attic".into(),
                topic: Some("ignored by the old release".into()),
            },
        )
        .await
        .unwrap();
    let joined = new
        .flock
        .addr::<RoomV2>(&name)
        .send(JoinV2 {
            user: "cy".into(),
            nick: Some("c".into()),
        })
        .await
        .unwrap();
    // The old bird's reply lacks the new fields: they decode as defaults.
    assert_eq!(
        joined,
        JoinedV2 {
            room: "attic".into(),
            user: "cy".into(),
            nick: None,
            topic: None
        }
    );
}
