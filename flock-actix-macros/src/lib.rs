//! Procedural macros for [flock-actix](https://docs.rs/flock-actix).
//!
//! The one macro is `#[flock_bird]`; see its documentation, re-exported as
//! `flock_actix::flock_bird`.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Turns an actix actor that implements `Bird` into a flock bird: a kind with
/// a stable wire tag and a table of the messages other nodes may send it.
///
/// ```ignore
/// #[flock_bird(messages(Ping, crate::msgs::Bye))]
/// struct MyBird { /* ... */ }
///
/// #[flock_bird(kind = "shop.cart.v1", messages(AddItem = "add", Checkout))]
/// struct Cart { /* ... */ }
///
/// #[flock_bird] // a bird that accepts no remote messages
/// struct Quiet;
/// ```
///
/// Arguments, all optional, in any order:
///
/// - `kind = "..."`: pins the kind's wire tag. The default is
///   `concat!(module_path!(), "::", "TypeName")`, which changes when the type
///   moves to another module; pin it before doing that in a rolling upgrade.
/// - `messages(M, N = "tag", ...)`: the messages the bird accepts from other
///   nodes. Each needs `Handler<M>` and serializable `M` and `M::Result`. A
///   message's wire tag is the last segment of its path (`a::b::Ping` is
///   `"Ping"`) unless pinned with `= "tag"`.
/// - `handoff`: the kind implements `Handoff`; its state moves with it.
/// - `activate`: the kind implements `Bird::activate`; a message to a name
///   nobody started starts it first (virtual-actor style).
/// - `passivate_after = "5m"` (`ms`, `s`, `m` or `h`): a bird of the kind
///   that got no message for that long is stopped on its node but stays in
///   the registry; its next message starts it again (from its handed-over
///   state with `handoff`). A node's builder can override it per kind.
///
/// The item is emitted unchanged, followed by `Handler<StopBird>`,
/// `BirdKind` and one `Accepts<M>` impl per listed message. The item must be
/// a struct or enum without generic parameters.
#[proc_macro_attribute]
pub fn flock_bird(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::flock_bird(args.into(), input.into()).into()
}
