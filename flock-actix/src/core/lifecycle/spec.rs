//! A bird's spec as the lifecycle keeps it for every bird of the node.
//!
//! The set hands the core [`BirdSpec`]s: an owned `String` kind and a `Vec`
//! of arguments, 48 bytes inline plus two heap blocks per bird. A node that
//! hosts many birds keeps one spec per bird for their whole life (to restart
//! one, to hand it over, to tell a changed spec from the same), so the core
//! keeps [`Spec`] instead: the kind shared with every bird of that kind (one
//! `Arc<String>` per kind registered on the node, a fixed set: a thin
//! pointer, where an `Arc<str>` would take two words), the arguments as a
//! boxed slice; 24 bytes and one heap block (docs/ARCHITECTURE.md §36).
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
    args: Box<[u8]>,
}

impl Spec {
    pub(super) fn new(spec: &BirdSpec, kinds: &Kinds) -> Self {
        Spec {
            kind: kinds.share(&spec.kind),
            args: spec.args.as_slice().into(),
        }
    }

    /// The kind's wire tag.
    pub(super) fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether `spec` is this spec.
    pub(super) fn is(&self, spec: &BirdSpec) -> bool {
        *self.kind == spec.kind && *self.args == *spec.args
    }

    /// The spec as effects carry it.
    pub(super) fn to_spec(&self) -> BirdSpec {
        BirdSpec {
            kind: self.kind.to_string(),
            args: self.args.to_vec(),
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
