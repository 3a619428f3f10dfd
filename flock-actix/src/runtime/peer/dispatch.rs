//! Handing an inbound call or cast to its bird: shared by the control link
//! (`Peer`) and the accepting end of a data link (`DataIn`).

use super::super::directory::Directory;
use super::super::messages::{CallReply, InboundCall, InboundCast};
use super::super::node::Actors;
use super::Frame;
use crate::wire::message::{Message, RemoteError};
use actix::Recipient;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What became of an inbound call.
pub(crate) enum Dispatched {
    /// Answer this at once.
    Reply(Message),
    /// The bird runs here: its reply (a `Reply` frame) comes from this
    /// future, polled on the thread that received the call.
    Pending(Pin<Box<dyn Future<Output = Message>>>),
    /// Nothing to answer here: a cast, or a call the Registry answers
    /// through the link itself (its bird is not running yet).
    Done,
}

/// Hands an inbound `Call` or `Cast` to its bird; any other message is
/// given back.
pub(crate) fn user_message(
    directory: &Directory,
    actors: &Actors,
    msg: Message,
    reply_to: impl FnOnce() -> Recipient<Frame>,
) -> Result<Dispatched, Message> {
    match msg {
        Message::Call {
            id,
            bird,
            kind,
            msg,
            payload,
            timeout_ms,
            forwarded,
        } => {
            let c = Call {
                id,
                bird,
                kind,
                msg,
                payload,
                timeout_ms,
                forwarded,
            };
            Ok(call(directory, actors, c, reply_to()))
        }
        Message::Cast {
            bird,
            kind,
            msg,
            payload,
        } => {
            cast(directory, actors, bird, kind, msg, payload);
            Ok(Dispatched::Done)
        }
        other => Err(other),
    }
}

/// An inbound `Call` frame, unpacked.
struct Call {
    id: u64,
    bird: String,
    kind: String,
    msg: String,
    payload: Vec<u8>,
    timeout_ms: u32,
    forwarded: bool,
}

/// Straight to the bird if it runs here, else to the Registry (which
/// answers on `reply_to`).
fn call(directory: &Directory, actors: &Actors, c: Call, reply_to: Recipient<Frame>) -> Dispatched {
    let timeout = Duration::from_millis(u64::from(c.timeout_ms));
    let id = c.id;
    match directory.get(&c.bird, &c.kind) {
        Some(running) => match running.bird.call(&c.bird, &c.msg, &c.payload, timeout) {
            Err(e) => Dispatched::Reply(Message::Reply { id, result: Err(e) }),
            Ok(reply) => {
                let bird = c.bird;
                Dispatched::Pending(Box::pin(async move {
                    let result = reply.await.map_err(|e| match e {
                        RemoteError::BirdPanicked { .. } => RemoteError::BirdPanicked { bird },
                        other => other,
                    });
                    Message::Reply { id, result }
                }))
            }
        },
        None => {
            actors.registry.do_send(InboundCall {
                bird: c.bird.into(),
                kind: c.kind,
                tag: c.msg,
                payload: c.payload,
                timeout,
                reply: CallReply::Link {
                    to: reply_to,
                    id,
                    forwarded: c.forwarded,
                },
            });
            Dispatched::Done
        }
    }
}

/// Straight to the bird if it runs here, else to the Registry.
fn cast(
    directory: &Directory,
    actors: &Actors,
    bird: String,
    kind: String,
    msg: String,
    payload: Vec<u8>,
) {
    match directory.get(&bird, &kind) {
        Some(running) => {
            if let Err(e) = running.bird.cast(&msg, &payload) {
                tracing::warn!("cast to bird {bird} dropped: {e}");
            }
        }
        None => actors.registry.do_send(InboundCast {
            bird: bird.into(),
            kind,
            tag: msg,
            payload,
        }),
    }
}
