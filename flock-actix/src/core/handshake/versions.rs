//! Which protocol version a link speaks: the pure N/N−1 policy
//! (docs/ARCHITECTURE.md §13.1, §27).
//!
//! A node speaks a contiguous range of versions, normally
//! [`MIN_PROTOCOL_VERSION`]`..=`[`PROTOCOL_VERSION`] (N−1 and N). The
//! initiator offers its newest version in `Hello`; the acceptor takes the
//! offer if it speaks it and echoes it in `Challenge`, or refuses with
//! `Reject { Version { ours: its newest } }`. A refused initiator that
//! speaks the acceptor's version (older than its offer) dials again
//! offering that one: so a link between N and N−1 speaks N−1, with one
//! extra connection when the N node dials. Offers only go down, so this
//! ends after at most one retry per link.

use crate::error::{Error, Result};
use crate::wire::message::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// The first protocol version whose handshake ends with both sides
/// announcing their kinds ([`crate::wire::Message::Kinds`]).
pub const KINDS_SINCE: u32 = 2;

/// The contiguous range of protocol versions a node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// The oldest version spoken.
    pub min: u32,
    /// The newest version spoken: the one offered first, and the one named
    /// in a refusal.
    pub max: u32,
}

impl Default for Versions {
    fn default() -> Self {
        Versions::CURRENT
    }
}

impl Versions {
    /// What this build speaks: N−1 and N.
    pub const CURRENT: Versions = Versions {
        min: MIN_PROTOCOL_VERSION,
        max: PROTOCOL_VERSION,
    };

    /// Exactly one version (a test seam: a node that behaves like a build of
    /// that version, e.g. a v1 node in a mixed-version cluster test).
    pub fn exactly(version: u32) -> Versions {
        Versions {
            min: version,
            max: version,
        }
    }

    /// Whether `version` is spoken.
    pub fn speaks(&self, version: u32) -> bool {
        (self.min..=self.max).contains(&version)
    }

    /// Checks the range is one this build can speak.
    ///
    /// Errors: [`Error::InvalidConfig`] if it is empty or reaches outside
    /// [`Versions::CURRENT`].
    pub fn validate(&self) -> Result<()> {
        if self.min > self.max || !Versions::CURRENT.speaks(self.min) || self.max > PROTOCOL_VERSION
        {
            return Err(Error::InvalidConfig(format!(
                "protocol versions {}..={} are not within what this build speaks ({}..={})",
                self.min, self.max, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
            )));
        }
        Ok(())
    }

    /// The acceptor's decision on an initiator that offered `theirs`: the
    /// link's version (the offer itself).
    ///
    /// Errors: [`crate::error::LinkError::VersionMismatch`] naming our newest version and
    /// theirs, if we do not speak it.
    pub fn accept(&self, theirs: u32) -> Result<u32> {
        if self.speaks(theirs) {
            Ok(theirs)
        } else {
            Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours: self.max,
                theirs,
            }))
        }
    }

    /// After a peer refused our offer `offered`, saying it speaks `theirs`:
    /// the version to offer on a new connection, if there is one (an older
    /// version we speak too). `None`: the nodes cannot talk; the refusal
    /// stands.
    pub fn fallback(&self, offered: u32, theirs: u32) -> Option<u32> {
        (theirs < offered && self.speaks(theirs)).then_some(theirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_and_n_minus_one_interoperate_and_nothing_else() {
        // (ours, initiator's offer, acceptor's decision)
        let v12 = Versions { min: 1, max: 2 };
        let v1 = Versions::exactly(1);
        let v23 = Versions { min: 2, max: 3 };
        let mismatch = |ours, theirs| {
            Err(Error::Link(crate::error::LinkError::VersionMismatch {
                ours,
                theirs,
            }))
        };
        let table: [(Versions, u32, Result<u32>); 10] = [
            (v12, 2, Ok(2)),
            (v12, 1, Ok(1)),
            (v12, 0, mismatch(2, 0)),
            (v12, 3, mismatch(2, 3)),
            (v12, u32::MAX, mismatch(2, u32::MAX)),
            (v1, 1, Ok(1)),
            (v1, 2, mismatch(1, 2)),
            (v23, 2, Ok(2)),
            (v23, 1, mismatch(3, 1)),
            (Versions::CURRENT, PROTOCOL_VERSION, Ok(PROTOCOL_VERSION)),
        ];
        for (ours, offer, expected) in table {
            assert_eq!(ours.accept(offer), expected, "{ours:?} offered v{offer}");
        }
    }

    #[test]
    fn a_refused_offer_falls_back_only_to_an_older_version_both_speak() {
        let v12 = Versions { min: 1, max: 2 };
        // (ours, offered, the refuser's newest, the next offer)
        let table: [(Versions, u32, u32, Option<u32>); 6] = [
            (v12, 2, 1, Some(1)), // N meets N−1: speak N−1
            (v12, 1, 1, None),    // refused at the same version: no loop
            (v12, 2, 0, None),    // N−2: two versions apart
            (v12, 2, 3, None),    // a newer peer falls back itself, not us
            (v12, 1, 2, None),    // offers only go down
            (Versions::exactly(1), 1, 2, None),
        ];
        for (ours, offered, theirs, next) in table {
            assert_eq!(
                ours.fallback(offered, theirs),
                next,
                "{ours:?} offered v{offered}, peer speaks v{theirs}"
            );
        }
    }

    #[test]
    fn only_ranges_this_build_speaks_are_valid() {
        assert_eq!(Versions::CURRENT.validate(), Ok(()));
        assert_eq!(Versions::exactly(MIN_PROTOCOL_VERSION).validate(), Ok(()));
        assert_eq!(Versions::exactly(PROTOCOL_VERSION).validate(), Ok(()));
        for bad in [
            Versions::exactly(PROTOCOL_VERSION + 1),
            Versions::exactly(MIN_PROTOCOL_VERSION - 1),
            Versions { min: 2, max: 1 },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidConfig(_))),
                "{bad:?}"
            );
        }
    }
}
