//! Handing an inbound call or cast to its bird: shared by the control link
//! (`Peer`) and the accepting end of a data link (`DataIn`).
//!
//! The frame arrives as a [`UserIn`] (`wire::user`): its names and payload
//! are slices of the frame, so a call or cast to a running bird allocates
//! nothing here until the bird's own message is decoded (issue #12, §37).
//! Only a call or cast the Registry must take (its bird is not running)
//! gets owned strings, as the Registry's messages carry them.

use super::super::directory::Directory;
use super::super::messages::{CallReply, InboundCall, InboundCast};
use super::super::node::Actors;
use super::Frame;
use crate::wire::message::RemoteError;
use crate::wire::user::{CallIn, CastIn, UserIn};
use actix::Recipient;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The answer to call `id`: the encoded reply, or why there is none.
pub(crate) type Reply = (u64, Result<Vec<u8>, RemoteError>);

/// What became of an inbound call.
pub(crate) enum Dispatched {
    /// Answer this at once.
    Reply(Reply),
    /// The bird runs here: its reply comes from this future, polled on the
    /// thread that received the call. It has no timer of its own: the link
    /// that polls it ends it at `due` (`core::deadlines`).
    Pending {
        reply: Pin<Box<dyn Future<Output = Reply>>>,
        /// When the caller stops waiting (ms of the node's clock).
        due_ms: u64,
        id: u64,
    },
    /// Nothing to answer here: a cast, or a call the Registry answers
    /// through the link itself (its bird is not running yet).
    Done,
}

/// An inbound reply: the call's id, and its `Ok` bytes in the frame.
pub(crate) type ReplyIn = (u64, Result<bytes::Bytes, RemoteError>);

/// Hands an inbound `Call` or `Cast` to its bird; a reply is given back.
pub(crate) fn user_message(
    directory: &Directory,
    actors: &Actors,
    msg: UserIn,
    now_ms: impl FnOnce() -> u64,
    reply_to: impl FnOnce() -> Recipient<Frame>,
) -> Result<Dispatched, ReplyIn> {
    match msg {
        // The clock is read for calls only (their deadline), not casts.
        UserIn::Call(c) => Ok(call(directory, actors, c, now_ms(), reply_to)),
        UserIn::Cast(c) => {
            cast(directory, actors, c);
            Ok(Dispatched::Done)
        }
        UserIn::Reply { id, result } => Err((id, result)),
    }
}

/// Straight to the bird if it runs here, else to the Registry (which
/// answers on `reply_to`).
fn call(
    directory: &Directory,
    actors: &Actors,
    c: CallIn,
    now_ms: u64,
    reply_to: impl FnOnce() -> Recipient<Frame>,
) -> Dispatched {
    let timeout = Duration::from_millis(u64::from(c.timeout_ms));
    let id = c.id;
    match directory.get_named(c.bird.as_str(), c.kind.as_str()) {
        Some((bird, running)) => {
            match running
                .bird
                .call_untimed(c.msg.as_str(), &c.payload, timeout)
            {
                Err(e) => Dispatched::Reply((id, Err(named(e, &bird)))),
                Ok(reply) => Dispatched::Pending {
                    reply: Box::pin(async move { (id, reply.await.map_err(|e| named(e, &bird))) }),
                    due_ms: now_ms.saturating_add(u64::from(c.timeout_ms)),
                    id,
                },
            }
        }
        None => {
            actors.registry.do_send(InboundCall {
                bird: c.bird.as_str().into(),
                kind: c.kind.as_str().to_owned(),
                tag: c.msg.as_str().to_owned(),
                payload: c.payload.to_vec(),
                timeout,
                reply: CallReply::Link {
                    to: reply_to(),
                    id,
                    forwarded: c.forwarded,
                },
            });
            Dispatched::Done
        }
    }
}

/// The bird's errors name it (its handle does not know its name).
fn named(e: RemoteError, bird: &Arc<str>) -> RemoteError {
    match e {
        RemoteError::BirdPanicked { .. } => RemoteError::BirdPanicked {
            bird: bird.to_string(),
        },
        RemoteError::NotRunning { .. } => RemoteError::NotRunning {
            bird: bird.to_string(),
        },
        other => other,
    }
}

/// Straight to the bird if it runs here, else to the Registry.
fn cast(directory: &Directory, actors: &Actors, c: CastIn) {
    match directory.get(c.bird.as_str(), c.kind.as_str()) {
        Some(running) => {
            if let Err(e) = running.bird.cast(c.msg.as_str(), &c.payload) {
                tracing::warn!("cast to bird {} dropped: {e}", c.bird);
            }
        }
        None => actors.registry.do_send(InboundCast {
            bird: c.bird.as_str().into(),
            kind: c.kind.as_str().to_owned(),
            tag: c.msg.as_str().to_owned(),
            payload: c.payload.to_vec(),
        }),
    }
}
