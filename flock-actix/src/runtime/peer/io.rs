//! A link's byte-level plumbing: the frame decoder with a raisable limit,
//! the frame encoder with a bound on unsent bytes, and the write half that
//! half-closes the stream once a closing link has flushed.

use super::super::telemetry;
use crate::error::Error;
use crate::net::BoxStream;
use crate::wire::codec::FrameCodec;
use crate::wire::message::{Message, RemoteError};
use crate::wire::user::{self, UserIn};
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, WriteHalf};
use tokio_util::codec::{Decoder, Encoder};

/// Buffers above this size are released once they are mostly empty.
const SHRINK_ABOVE: usize = 1 << 20;

/// How often an oversized outgoing frame is logged at error level per link
/// (the anti-entropy layer retries, so the same frame comes back).
const OVERSIZE_LOG_EVERY: Duration = Duration::from_secs(60);

/// A link's read or write buffer grows to its largest frame (a full registry
/// state can be megabytes) and would keep that capacity for the link's
/// lifetime; give it back once the big frame is gone.
fn shrink(buf: &mut BytesMut) {
    if buf.capacity() > SHRINK_ABOVE && buf.len() < SHRINK_ABOVE / 16 {
        *buf = BytesMut::from(&buf[..]);
    }
}

/// What the read side yields.
pub(crate) enum Inbound {
    /// A well-formed frame.
    Frame(Message),
    /// A call, cast or reply, read without copies (`wire::user`).
    User(UserIn),
    /// A registry transfer frame (see [`Message::is_bulk_sync`]), not
    /// decoded yet: the replica decodes it on its own arbiter, so a
    /// megabyte of sync never holds up the heartbeats read on this one.
    Sync(Bytes),
    /// The peer sent a frame that is too large or not a valid message. The
    /// decoder discards everything after it, so the link can still deliver a
    /// `Reject` and close without resetting the connection.
    Broken(Error),
}

/// The frame decoder with a limit the actor can raise after authentication
/// (the `FramedRead` owns its decoder once it is a stream of the actor).
pub(crate) struct ReadCodec {
    inner: FrameCodec,
    limit: Arc<AtomicUsize>,
    broken: bool,
}

impl ReadCodec {
    pub(crate) fn new(limit: Arc<AtomicUsize>) -> Self {
        ReadCodec {
            inner: FrameCodec::connection(),
            limit,
            broken: false,
        }
    }

    /// For a connection whose first frame was already read (a data link:
    /// the accept path read its `DataHello`).
    pub(crate) fn after_first(limit: Arc<AtomicUsize>) -> Self {
        ReadCodec {
            inner: FrameCodec::new(),
            limit,
            broken: false,
        }
    }

    fn sync_limit(&mut self) {
        let limit = self.limit.load(Ordering::Relaxed);
        if self.inner.max_frame() != limit {
            // The limit is validated by the config; a refused value keeps
            // the old (smaller) one, which only makes us stricter.
            let _ = self.inner.set_max_frame(limit);
        }
    }

    fn result(
        &mut self,
        frame: Result<Option<Message>, Error>,
        src: &mut BytesMut,
    ) -> Option<Inbound> {
        match frame {
            Ok(frame) => frame.map(Inbound::Frame),
            Err(e) => {
                // Once framing is lost nothing after it can be trusted; keep
                // reading (so closing does not reset the connection and drop
                // our Reject) but throw it away.
                self.broken = true;
                src.clear();
                Some(Inbound::Broken(e))
            }
        }
    }
}

impl Decoder for ReadCodec {
    type Item = Inbound;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, Error> {
        if self.broken {
            src.clear();
            return Ok(None);
        }
        self.sync_limit();
        let item = if self.inner.expects_first() {
            let frame = self.inner.decode(src);
            self.result(frame, src)
        } else {
            match self.inner.decode_frame(src) {
                Ok(Some(body)) if Message::is_bulk_sync(&body) => {
                    Some(Inbound::Sync(body.freeze()))
                }
                Ok(Some(body)) => match user::decode(body.freeze()) {
                    Ok(Ok(user)) => Some(Inbound::User(user)),
                    Ok(Err(msg)) => Some(Inbound::Frame(msg)),
                    Err(e) => self.result(Err(e), src),
                },
                Ok(None) => None,
                Err(e) => self.result(Err(e), src),
            }
        };
        shrink(src);
        Ok(item)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, Error> {
        if self.broken {
            src.clear();
            return Ok(None);
        }
        self.sync_limit();
        let frame = self.inner.decode_eof(src);
        Ok(self.result(frame, src))
    }
}

/// Frame overhead allowance when checking payload sizes against the limit.
const ENVELOPE_SLACK: usize = 1024;

/// Why `msg` must not be sent, if its payload is above what the peer
/// accepts (`max_frame`): the link stays up and the sender gets an error.
pub(crate) fn oversize(msg: &Message, max_frame: usize) -> Option<String> {
    let payload_len = match msg {
        Message::Call { payload, .. } | Message::Cast { payload, .. } => payload.len(),
        Message::Reply { result: Ok(b), .. } => b.len(),
        _ => 0,
    };
    oversize_payload(msg.name(), payload_len, max_frame)
}

/// Why a call, cast or reply (`what`) of `payload_len` bytes must not be
/// sent, as [`oversize`] says it.
pub(crate) fn oversize_payload(what: &str, payload_len: usize, max_frame: usize) -> Option<String> {
    let max = max_frame.saturating_sub(ENVELOPE_SLACK);
    (payload_len > max).then(|| format!("a {what} of {payload_len} bytes exceeds max_frame {max}"))
}

/// What a link writes: a message it encodes, or a frame encoded elsewhere
/// (registry transfers are encoded by the replica, on its own arbiter).
pub(crate) enum Outbound {
    Msg(Message),
    /// A whole frame, length header included (see [`encode_frame`]).
    Raw(Bytes),
    /// A call, written from its parts (no envelope strings, `wire::user`).
    Call(super::outgoing::CallFrame),
    /// A cast, written from its parts.
    Cast(super::outgoing::CastFrame),
    /// The answer to call `id`.
    Reply(u64, Result<Vec<u8>, RemoteError>),
}

/// Encodes `msg` as one frame of at most `max_frame` bytes (header
/// excluded), for [`Outbound::Raw`].
pub(crate) fn encode_frame(msg: &Message, max_frame: usize) -> Result<Bytes, Error> {
    let mut codec = FrameCodec::new();
    codec.set_max_frame(max_frame)?;
    let mut buf = BytesMut::new();
    codec.encode(msg, &mut buf)?;
    Ok(buf.freeze())
}

/// The bytes a link's writer holds unsent, seen by the actor: the encoder
/// sets them (its buffer's length) and the write half takes away what the
/// socket accepted. A data link's flow control (`core::data_links::flow`)
/// reads them and waits for them to drain.
#[derive(Clone, Default)]
pub(crate) struct Backlog(Rc<BacklogState>);

#[derive(Default)]
struct BacklogState {
    unsent: Cell<usize>,
    /// Wake `waker` once `unsent` is at or below this.
    low: Cell<usize>,
    waker: RefCell<Option<Waker>>,
}

impl Backlog {
    /// Bytes encoded and not yet taken by the socket.
    pub(crate) fn unsent(&self) -> usize {
        self.0.unsent.get()
    }

    fn encoded(&self, len: usize) {
        self.0.unsent.set(len);
    }

    fn wrote(&self, n: usize) {
        let left = self.0.unsent.get().saturating_sub(n);
        self.0.unsent.set(left);
        if left <= self.0.low.get()
            && let Some(waker) = self.0.waker.borrow_mut().take()
        {
            waker.wake();
        }
    }

    /// Resolves once at most `low` bytes are unsent (one waiter at a time).
    pub(crate) fn drained_to(&self, low: usize) -> impl std::future::Future<Output = ()> + use<> {
        let this = self.clone();
        std::future::poll_fn(move |cx| {
            if this.unsent() <= low {
                return Poll::Ready(());
            }
            this.0.low.set(low);
            *this.0.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// The frame encoder of a link's writer.
///
/// It bounds the bytes waiting to be sent: a peer that stays connected but
/// does not read would otherwise grow this node's memory without limit. Past
/// the bound the encoder fails, and the writer's error handler closes the
/// link. A frame above the frame cap is dropped with an error log instead of
/// failing the link: resending it on a new link would fail the same way.
pub(crate) struct WriteCodec {
    inner: FrameCodec,
    max_unsent: usize,
    /// Who is at the other end, for logs.
    peer: Rc<RefCell<String>>,
    last_oversize_log: Option<Instant>,
    oversize_dropped: u64,
    backlog: Backlog,
}

impl WriteCodec {
    pub(crate) fn new(max_frame: usize, max_unsent: usize, peer: Rc<RefCell<String>>) -> Self {
        let mut inner = FrameCodec::new();
        // Our own frames are bounded by what an authenticated peer accepts;
        // the handshake frames are tiny anyway. The value is validated by
        // the config; a refused one keeps the smaller default.
        let _ = inner.set_max_frame(max_frame);
        WriteCodec {
            inner,
            max_unsent,
            peer,
            last_oversize_log: None,
            oversize_dropped: 0,
            backlog: Backlog::default(),
        }
    }

    /// Tells `backlog` the unsent bytes after each frame (it must be the
    /// one of the writer's [`WriteSide`]).
    pub(crate) fn with_backlog(mut self, backlog: Backlog) -> Self {
        self.backlog = backlog;
        self
    }

    fn oversized(&mut self, what: &'static str, e: &Error) {
        self.oversize_dropped += 1;
        let now = Instant::now();
        if self
            .last_oversize_log
            .is_none_or(|t| now.duration_since(t) >= OVERSIZE_LOG_EVERY)
        {
            self.last_oversize_log = Some(now);
            tracing::error!(
                "dropped a {what} frame to {}: {e} ({} dropped on this link so far); \
                 the link stays up. Raise max_frame on every node, or keep the registry smaller",
                self.peer.borrow(),
                self.oversize_dropped
            );
        }
    }
}

impl Encoder<Outbound> for WriteCodec {
    type Error = Error;

    fn encode(&mut self, out: Outbound, dst: &mut BytesMut) -> Result<(), Error> {
        let result = self.encode_frame(out, dst);
        self.backlog.encoded(dst.len());
        result
    }
}

impl WriteCodec {
    fn encode_frame(&mut self, out: Outbound, dst: &mut BytesMut) -> Result<(), Error> {
        shrink(dst);
        if dst.len() > self.max_unsent {
            return Err(Error::Io {
                kind: io::ErrorKind::WouldBlock,
                message: format!(
                    "the peer does not read: {} bytes wait to be sent, above the bound of {} \
                     (twice max_frame)",
                    dst.len(),
                    self.max_unsent
                ),
            });
        }
        let written = match &out {
            Outbound::Msg(_) => None,
            Outbound::Raw(frame) => {
                // Sized by the replica against the same cap.
                dst.extend_from_slice(frame);
                return Ok(());
            }
            Outbound::Call(call) => Some(("Call", self.inner.encode_with(dst, |b| call.write(b)))),
            Outbound::Cast(cast) => Some(("Cast", self.inner.encode_with(dst, |b| cast.write(b)))),
            Outbound::Reply(id, Ok(reply)) => Some((
                "Reply",
                self.inner
                    .encode_with(dst, |b| user::write_reply_ok(*id, reply, b)),
            )),
            Outbound::Reply(..) => None,
        };
        if let Some((what, result)) = written {
            return match result {
                Err(e @ Error::Link(crate::error::LinkError::FrameTooLarge { .. })) => {
                    self.oversized(what, &e);
                    Ok(())
                }
                other => other,
            };
        }
        let msg = match out {
            Outbound::Msg(msg) => msg,
            Outbound::Reply(id, result) => Message::Reply { id, result },
            _ => return Ok(()),
        };
        let before = dst.len();
        match self.inner.encode(&msg, dst) {
            Ok(()) => {
                telemetry::sync_frame(telemetry::Direction::Out, &msg, dst.len() - before);
                Ok(())
            }
            Err(e @ Error::Link(crate::error::LinkError::FrameTooLarge { .. })) => {
                self.oversized(msg.name(), &e);
                Ok(())
            }
            other => other,
        }
    }
}

/// The write half of a link. Once the link is closing, a completed flush
/// also shuts the stream down for writing, so the peer reads our last
/// frames and then end-of-stream (and closes its side) instead of waiting.
pub(crate) struct WriteSide {
    io: WriteHalf<BoxStream>,
    closing: Rc<Cell<bool>>,
    shut: bool,
    backlog: Backlog,
}

impl WriteSide {
    pub(crate) fn new(io: WriteHalf<BoxStream>, closing: Rc<Cell<bool>>) -> Self {
        WriteSide {
            io,
            closing,
            shut: false,
            backlog: Backlog::default(),
        }
    }

    /// Takes what the socket accepts off `backlog` (the one of the
    /// writer's [`WriteCodec`]).
    pub(crate) fn with_backlog(mut self, backlog: Backlog) -> Self {
        self.backlog = backlog;
        self
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        self.backlog.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        if self.closing.get() && !self.shut {
            ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
            self.shut = true;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
