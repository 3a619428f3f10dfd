//! Authenticating a data link with the session of its control link.
//!
//! A data link does not run the cookie handshake of §7 again, and does not
//! change it: it proves that both ends took part in one authenticated
//! control-link handshake. Both ends of that handshake derive, from the
//! cookie and the two nonces they exchanged in it, a *session*: a public id
//! (announced in [`Message::DataHello`](crate::wire::message::Message)) and
//! a secret key. A data link then runs three steps:
//!
//! 1. initiator → acceptor `DataHello { session, shard, nonce_i }`;
//! 2. acceptor → initiator `DataChallenge { lanes, lane, nonce_a,
//!    mac_a = HMAC(key, ACCEPTOR ‖ nonce_i ‖ nonce_a ‖ shard ‖ lanes ‖ lane) }`;
//! 3. initiator → acceptor `DataProof { mac_i = HMAC(key, INITIATOR ‖
//!    nonce_i ‖ nonce_a ‖ shard) }`, then calls and casts.
//!
//! Both nonces are fresh, so a recorded link cannot be replayed; the role
//! labels differ, so a proof cannot be reflected; the key needs the cookie,
//! so an eavesdropper of the control handshake cannot derive it. A session
//! ends with its control link: the acceptor forgets it then and closes its
//! data links. Like the control link, a data link is not encrypted unless
//! the node's network is TLS (§10).

use crate::error::{Error, Result};
use crate::wire::message::{MacTag, Nonce};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

const SESSION_ID_LABEL: &[u8] = b"flock/v1/data-session-id";
const SESSION_KEY_LABEL: &[u8] = b"flock/v1/data-session-key";
const INITIATOR_LABEL: &[u8] = b"flock/v1/data-initiator";
const ACCEPTOR_LABEL: &[u8] = b"flock/v1/data-acceptor";

/// The data-link session of one authenticated control link.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Public: names the session in a `DataHello`.
    pub id: MacTag,
    key: MacTag,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn hmac(key: &[u8], label: &[u8]) -> Result<HmacSha256> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .map_err(|e| Error::InvalidConfig(format!("data link key: {e}")))?;
    mac.update(&(label.len() as u64).to_be_bytes());
    mac.update(label);
    Ok(mac)
}

impl Session {
    /// The session of a control link whose handshake exchanged
    /// `hello_nonce` (the initiator's) and `challenge_nonce` (the
    /// acceptor's); both ends derive the same.
    pub fn derive(cookie: &[u8], hello_nonce: &Nonce, challenge_nonce: &Nonce) -> Result<Self> {
        let tag = |label| -> Result<MacTag> {
            let mut mac = hmac(cookie, label)?;
            mac.update(hello_nonce);
            mac.update(challenge_nonce);
            Ok(mac.finalize().into_bytes().into())
        };
        Ok(Session {
            id: tag(SESSION_ID_LABEL)?,
            key: tag(SESSION_KEY_LABEL)?,
        })
    }

    fn acceptor(
        &self,
        nonce_i: &Nonce,
        nonce_a: &Nonce,
        shard: u32,
        lanes: u32,
        lane: u32,
    ) -> Result<HmacSha256> {
        let mut mac = hmac(&self.key, ACCEPTOR_LABEL)?;
        mac.update(nonce_i);
        mac.update(nonce_a);
        mac.update(&shard.to_be_bytes());
        mac.update(&lanes.to_be_bytes());
        mac.update(&lane.to_be_bytes());
        Ok(mac)
    }

    fn initiator(&self, nonce_i: &Nonce, nonce_a: &Nonce, shard: u32) -> Result<HmacSha256> {
        let mut mac = hmac(&self.key, INITIATOR_LABEL)?;
        mac.update(nonce_i);
        mac.update(nonce_a);
        mac.update(&shard.to_be_bytes());
        Ok(mac)
    }

    /// Step 2's MAC, by the acceptor.
    pub fn acceptor_mac(
        &self,
        nonce_i: &Nonce,
        nonce_a: &Nonce,
        shard: u32,
        lanes: u32,
        lane: u32,
    ) -> Result<MacTag> {
        Ok(self
            .acceptor(nonce_i, nonce_a, shard, lanes, lane)?
            .finalize()
            .into_bytes()
            .into())
    }

    /// Checks step 2's MAC, by the initiator (constant time).
    ///
    /// Errors: [`crate::error::LinkError::WrongCookie`] if it does not verify.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_acceptor(
        &self,
        nonce_i: &Nonce,
        nonce_a: &Nonce,
        shard: u32,
        lanes: u32,
        lane: u32,
        mac: &MacTag,
    ) -> Result<()> {
        self.acceptor(nonce_i, nonce_a, shard, lanes, lane)?
            .verify_slice(mac)
            .map_err(|_| Error::Link(crate::error::LinkError::WrongCookie))
    }

    /// Step 3's MAC, by the initiator.
    pub fn initiator_mac(&self, nonce_i: &Nonce, nonce_a: &Nonce, shard: u32) -> Result<MacTag> {
        Ok(self
            .initiator(nonce_i, nonce_a, shard)?
            .finalize()
            .into_bytes()
            .into())
    }

    /// Checks step 3's MAC, by the acceptor (constant time).
    ///
    /// Errors: [`crate::error::LinkError::WrongCookie`] if it does not verify.
    pub fn verify_initiator(
        &self,
        nonce_i: &Nonce,
        nonce_a: &Nonce,
        shard: u32,
        mac: &MacTag,
    ) -> Result<()> {
        self.initiator(nonce_i, nonce_a, shard)?
            .verify_slice(mac)
            .map_err(|_| Error::Link(crate::error::LinkError::WrongCookie))
    }
}
