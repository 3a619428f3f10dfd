//! Node-local context for hatching birds: the [`Nest`].
//!
//! A bird's start arguments travel between nodes, so they must be
//! serializable; a database pool, a configuration or an actix `Addr` cannot
//! be. What a bird needs from the node it runs on goes in the node's nest
//! instead: a typed map, one value per type, filled through
//! [`FlockBuilder::nest`](crate::FlockBuilder::nest) and handed to every
//! [`Bird::hatch`](crate::Bird::hatch) on that node (like actix-web's
//! `app_data`).

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Node-local values birds read when they hatch: one value per type.
///
/// ```
/// use flock_actix::prelude::*;
/// use std::sync::Arc;
///
/// struct Db { url: String } // e.g. a connection pool: anything Send + Sync
///
/// #[flock_bird]
/// struct Account { db: Arc<Db> }
/// impl Actor for Account { type Context = Context<Self>; }
/// impl Bird for Account {
///     type Args = ();
///     fn hatch(_name: &str, _: (), nest: &Nest) -> Result<Self, HatchError> {
///         // Missing context is an error the callers see, never a panic.
///         let db = nest.require::<Arc<Db>>()?.clone();
///         Ok(Account { db })
///     }
/// }
///
/// # #[actix::main] async fn main() -> Result<()> {
/// let flock = Flock::builder("node1")
///     .nest(Arc::new(Db { url: "sqlite://accounts.db".into() }))
///     .bird::<Account>()
///     .start()
///     .await?;
/// assert!(flock.nest().get::<Arc<Db>>().is_some()); // HTTP handlers can read it too
/// # flock.shutdown(); Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Nest {
    values: HashMap<TypeId, (&'static str, Arc<dyn Any + Send + Sync>)>,
}

impl Nest {
    /// An empty nest.
    pub fn new() -> Self {
        Nest::default()
    }

    /// Puts `value` in the nest, replacing the value of the same type (if
    /// any). Wrap shared handles in an `Arc`, or give a type that is cheap
    /// to clone (most pools are).
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values
            .insert(TypeId::of::<T>(), (type_name::<T>(), Arc::new(value)));
    }

    /// The value of type `T`, if the node was given one.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// The value of type `T`, or a [`HatchError`] that names the type and
    /// says how to provide it: for `hatch`, with `?`.
    ///
    /// # Errors
    /// The node's builder was not given a `T` (note that `T` and `Arc<T>`
    /// are different types).
    pub fn require<T: 'static>(&self) -> Result<&T, HatchError> {
        self.get::<T>().ok_or_else(|| {
            HatchError::new(format_args!(
                "this node has no `{}` in its nest: give it to the node's builder with \
                 `.nest(value)` on every node that hosts this bird kind",
                type_name::<T>()
            ))
        })
    }

    /// How many values the nest holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the nest holds nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Nest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&str> = self.values.values().map(|(name, _)| *name).collect();
        types.sort_unstable();
        f.debug_struct("Nest").field("types", &types).finish()
    }
}

/// Why a bird could not hatch: returned by [`Bird::hatch`](crate::Bird::hatch).
///
/// The bird does not run on this node: messages to it are answered
/// [`Error::HatchFailed`](crate::Error::HatchFailed) with this message
/// (never a panic, never a restart loop), and the node logs it at ERROR. It
/// is hatched again when its start arguments change or it moves to another
/// node. Any error type converts with `?`; [`HatchError::new`] takes any
/// message.
///
/// It deliberately does not implement `std::error::Error`, so that the
/// blanket conversion from every error type can exist (as `anyhow::Error`
/// does).
pub struct HatchError {
    message: String,
}

impl HatchError {
    /// A hatch failure explained by `message`.
    pub fn new(message: impl fmt::Display) -> Self {
        HatchError {
            message: message.to_string(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for HatchError {
    fn from(e: E) -> Self {
        HatchError::new(e)
    }
}

impl fmt::Display for HatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HatchError").field(&self.message).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Pool(u32);

    #[test]
    fn a_value_is_found_by_its_type_and_replaced_by_a_later_one() {
        let mut nest = Nest::new();
        assert!(nest.get::<Pool>().is_none());
        nest.insert(Pool(1));
        nest.insert(Pool(2));
        nest.insert("config");
        assert_eq!(nest.get::<Pool>(), Some(&Pool(2)));
        assert_eq!(nest.get::<&str>(), Some(&"config"));
        assert_eq!(nest.len(), 2);
    }

    #[test]
    fn a_missing_value_is_an_error_naming_the_type_and_the_fix() {
        let nest = Nest::new();
        let err = nest.require::<Arc<Pool>>().unwrap_err().to_string();
        assert!(err.contains("Arc<flock_actix::nest::tests::Pool>"), "{err}");
        assert!(err.contains(".nest(value)"), "{err}");
    }

    #[test]
    fn any_error_converts_into_a_hatch_error() {
        fn open() -> Result<(), HatchError> {
            Err(std::io::Error::other("database is locked"))?;
            Ok(())
        }
        assert_eq!(open().unwrap_err().message(), "database is locked");
    }
}
