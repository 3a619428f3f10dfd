//! An accepted connection: a control link or a data link?
//!
//! With data links on (docs/ARCHITECTURE.md §26), the accept path reads the
//! connection's first frame before it starts anything: a `DataHello` naming
//! a live session starts a [`DataIn`] on the bird arbiter of its lane;
//! anything else starts a control-link `Peer` with the frame put back, so
//! the Peer sees the connection exactly as it arrived (and answers a
//! stranger as before). While the frame is read the connection counts among
//! the handshakes under way, bounded by `MAX_UNAUTHENTICATED`, and it is
//! dropped if the frame does not come within the handshake timeout.

use super::super::directory::Directory;
use super::super::node::{Handshaking, Node};
use super::data::{DataIn, Hello};
use super::{NEXT_LINK, Peer};
use crate::net::{BoxStream, Prefixed};
use crate::wire::codec::{HEADER_LEN, PRE_AUTH_MAX_FRAME};
use crate::wire::message::Message;
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncReadExt;

/// Starts whatever link `stream` opens.
pub(crate) fn accept(node: Arc<Node>, directory: Directory, stream: BoxStream) {
    if !accepts_data_links(&node, &directory) {
        Peer::start(node, directory, stream, None, None);
        return;
    }
    let link = stranger(&node);
    actix::spawn(async move {
        let timeout = node.config.handshake_timeout;
        let mut stream = stream;
        let first = tokio::time::timeout(timeout, read_first(&mut stream)).await;
        node.handshake_ended(link);
        let Ok(Ok(first)) = first else {
            return tracing::debug!("an accepted connection sent no first frame in time");
        };
        match classify(&directory, &first) {
            First::Data(hello) => DataIn::accept(node, directory, stream, hello),
            First::Stale => {}
            First::Control => {
                let stream: BoxStream = Box::new(Prefixed::new(first, stream));
                Peer::start(node, directory, stream, None, None);
            }
        }
    });
}

/// Counts an accepted connection not authenticated yet among the
/// handshakes under way (bounded by `MAX_UNAUTHENTICATED`); the id to end it.
pub(super) fn stranger(node: &Node) -> u64 {
    let link = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    node.handshake_started(
        link,
        Handshaking {
            accepted: true,
            dialed: None,
            claimed: None,
        },
    );
    link
}

/// Whether this node runs the accepting end of data links.
pub(crate) fn accepts_data_links(node: &Node, directory: &Directory) -> bool {
    node.config.data_links && !directory.arbiters().is_empty()
}

/// The first frame, header included; only the header if it announces a
/// frame above the pre-authentication limit (the Peer refuses it).
async fn read_first(stream: &mut BoxStream) -> std::io::Result<Bytes> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let len = u32::from_be_bytes(header) as usize;
    let mut frame = BytesMut::with_capacity(HEADER_LEN + len.min(PRE_AUTH_MAX_FRAME));
    frame.put_slice(&header);
    if len <= PRE_AUTH_MAX_FRAME {
        frame.resize(HEADER_LEN + len, 0);
        stream.read_exact(&mut frame[HEADER_LEN..]).await?;
    }
    Ok(frame.freeze())
}

enum First {
    Data(Hello),
    /// A `DataHello` naming no live session: dropped (the connection
    /// closes). A session ends with its control link, and the opening end
    /// then falls back to its control link or gives up.
    Stale,
    Control,
}

fn classify(directory: &Directory, frame: &[u8]) -> First {
    let Some(Ok(Message::DataHello {
        session,
        shard,
        nonce,
    })) = frame.get(HEADER_LEN..).map(Message::decode)
    else {
        return First::Control;
    };
    match directory.session(&session) {
        Some(session) => First::Data(Hello {
            session,
            shard,
            nonce,
        }),
        None => {
            tracing::debug!("a data link names no live session; closing it");
            First::Stale
        }
    }
}
