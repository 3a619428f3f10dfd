//! A bird's spec as the lifecycle keeps it for every bird of the node.
//!
//! The set hands the core [`BirdSpec`]s: an owned `String` kind and a `Vec`
//! of arguments, 48 bytes inline plus two heap blocks per bird. A node that
//! hosts many birds keeps one spec per bird for their whole life (to restart
//! one, to hand it over, to tell a changed spec from the same), so the core
//! keeps [`Spec`] instead: the kind shared with every bird of that kind (one
//! `Arc<String>` per kind registered on the node, a fixed set: a thin
//! pointer, where an `Arc<str>` would take two words), the arguments in
//! [`Args`]: up to 7 bytes inline, a boxed slice beyond; 24 bytes, and no
//! heap block for the common small arguments (docs/ARCHITECTURE.md §36).
//! A `BirdSpec` is made again only for an effect that carries one (a start,
//! a handoff), as before.

use crate::core::crdt::BirdSpec;
use std::collections::HashMap;
use std::sync::Arc;

/// The kind tags registered on this node, shared by their birds' specs.
///
/// Fixed when the core is built: kinds named by the network and not
/// registered here (their birds cannot run here) get a string of their own,
/// so nothing from the network grows this set.
#[derive(Debug, Default)]
pub(super) struct Kinds(HashMap<String, Arc<String>>);

impl Kinds {
    pub(super) fn new(tags: impl IntoIterator<Item = String>) -> Self {
        Kinds(tags.into_iter().map(|t| (t.clone(), Arc::new(t))).collect())
    }

    fn share(&self, kind: &str) -> Arc<String> {
        (self.0.get(kind).cloned()).unwrap_or_else(|| Arc::new(kind.to_owned()))
    }
}

/// A [`BirdSpec`], compact: see the module's documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    kind: Arc<String>,
    args: Args,
}

/// A bird's encoded arguments, inline when short.
///
/// Most birds start with small arguments (a unit `()` encodes as one byte,
/// a small integer as one to nine), and a boxed slice of one byte still
/// costs a 32-byte chunk of the allocator's (measured with `heaptrack` on a
/// host of 10k birds: one such block per bird). The inline variant sits
/// beside the box's non-null pointer, so `Args` stays the box's 16 bytes
/// (a test holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Args {
    /// `len` bytes of `bytes`, `len` ≤ [`Args::INLINE`].
    Inline {
        bytes: [u8; Args::INLINE],
        len: u8,
    },
    Heap(Box<[u8]>),
}

impl Args {
    /// The most bytes kept inline: what fits beside the box's pointer.
    const INLINE: usize = 7;

    fn new(args: &[u8]) -> Self {
        if args.len() <= Self::INLINE {
            let mut bytes = [0; Self::INLINE];
            bytes[..args.len()].copy_from_slice(args);
            Args::Inline {
                bytes,
                len: args.len() as u8,
            }
        } else {
            Args::Heap(args.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Args::Inline { bytes, len } => &bytes[..usize::from(*len)],
            Args::Heap(b) => b,
        }
    }
}

impl Spec {
    pub(super) fn new(spec: &BirdSpec, kinds: &Kinds) -> Self {
        Spec {
            kind: kinds.share(&spec.kind),
            args: Args::new(&spec.args),
        }
    }

    /// The kind's wire tag.
    pub(super) fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether `spec` is this spec.
    pub(super) fn is(&self, spec: &BirdSpec) -> bool {
        *self.kind == spec.kind && self.args.as_slice() == spec.args.as_slice()
    }

    /// The spec as effects carry it.
    pub(super) fn to_spec(&self) -> BirdSpec {
        BirdSpec {
            kind: self.kind.to_string(),
            args: self.args.as_slice().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, args: &[u8]) -> BirdSpec {
        BirdSpec {
            kind: kind.into(),
            args: args.to_vec(),
        }
    }

    #[test]
    fn a_compact_spec_gives_back_the_spec_it_was_made_from_and_tells_it_from_others() {
        let kinds = Kinds::new(["k".to_string()]);
        let s = Spec::new(&spec("k", &[1, 2]), &kinds);
        assert_eq!(s.to_spec(), spec("k", &[1, 2]));
        assert!(s.is(&spec("k", &[1, 2])));
        assert!(!s.is(&spec("k", &[1])));
        assert!(!s.is(&spec("j", &[1, 2])));
        // A kind not registered here still works, with a string of its own.
        let other = Spec::new(&spec("unknown", &[]), &kinds);
        assert_eq!(other.to_spec(), spec("unknown", &[]));
    }

    #[test]
    fn arguments_of_every_length_round_trip_and_short_ones_stay_inline() {
        let kinds = Kinds::new(["k".to_string()]);
        for n in 0..=20u8 {
            let args: Vec<u8> = (0..n).collect();
            let s = Spec::new(&spec("k", &args), &kinds);
            assert_eq!(s.to_spec(), spec("k", &args), "{n} bytes");
            assert!(s.is(&spec("k", &args)));
            let inline = matches!(s.args, Args::Inline { .. });
            assert_eq!(inline, usize::from(n) <= Args::INLINE, "{n} bytes");
        }
        // Same bytes, different lengths, are different arguments.
        assert!(!Spec::new(&spec("k", &[0]), &kinds).is(&spec("k", &[0, 0])));
        assert_eq!(
            std::mem::size_of::<Args>(),
            std::mem::size_of::<Box<[u8]>>()
        );
        assert_eq!(std::mem::size_of::<Spec>(), 24);
    }

    #[test]
    fn birds_of_a_registered_kind_share_one_kind_string() {
        let kinds = Kinds::new(["k".to_string()]);
        let a = Spec::new(&spec("k", &[1]), &kinds);
        let b = Spec::new(&spec("k", &[2]), &kinds);
        assert!(Arc::ptr_eq(&a.kind, &b.kind));
        let c = Spec::new(&spec("x", &[1]), &kinds);
        let d = Spec::new(&spec("x", &[1]), &kinds);
        assert!(
            !Arc::ptr_eq(&c.kind, &d.kind),
            "unregistered kinds are not interned"
        );
    }
}
