//! The annotated item and the bird model the expansion works from.

use crate::attr::Args;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Generics, Ident, Item, LitStr, Type};

/// The item under `#[flock_bird]` with its parsed, not yet validated,
/// arguments.
pub(crate) struct Input<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub args: Args,
}

/// A validated bird: what [`crate::expand`] generates code for.
pub(crate) struct Bird<'a> {
    pub ident: &'a Ident,
    /// The pinned kind tag; `None` means `module_path!() :: Type`.
    pub kind: Option<LitStr>,
    pub messages: Vec<Msg>,
    /// The kind hands its state over when it moves (`Handoff`).
    pub handoff: bool,
    /// The kind activates on its first message (`Bird::activate`).
    pub activate: bool,
    /// Idle time in ms after which its birds are passivated.
    pub passivate_after_ms: Option<u64>,
}

/// One accepted message and its wire tag.
pub(crate) struct Msg {
    pub ty: Type,
    /// Pinned or derived from the last path segment; spanned at the message.
    pub tag: LitStr,
}

impl<'a> Input<'a> {
    /// Accepts a struct or enum; anything else is an error pointing at the
    /// item's keyword and name, reported together with any error in `args`.
    pub(crate) fn from_syn(item: &'a Item, args: syn::Result<Args>) -> syn::Result<Self> {
        let target = match item {
            Item::Struct(s) => Ok((&s.ident, &s.generics)),
            Item::Enum(e) => Ok((&e.ident, &e.generics)),
            other => {
                let (what, tokens) = describe(other);
                Err(syn::Error::new_spanned(
                    tokens,
                    format!(
                        "#[flock_bird] goes on the struct or enum that implements `Bird`, not on {what}"
                    ),
                ))
            }
        };
        match (target, args) {
            (Ok((ident, generics)), Ok(args)) => Ok(Input {
                ident,
                generics,
                args,
            }),
            (Err(mut e), Err(more)) => {
                e.combine(more);
                Err(e)
            }
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        }
    }
}

/// What the item is, in words, and the tokens an error should point at.
fn describe(item: &Item) -> (&'static str, TokenStream) {
    match item {
        Item::Fn(f) => {
            let (fn_token, ident) = (&f.sig.fn_token, &f.sig.ident);
            ("a function", quote!(#fn_token #ident))
        }
        Item::Trait(t) => {
            let (trait_token, ident) = (&t.trait_token, &t.ident);
            ("a trait", quote!(#trait_token #ident))
        }
        Item::Impl(i) => {
            let impl_token = &i.impl_token;
            ("an impl block", quote!(#impl_token))
        }
        Item::Union(u) => {
            let (union_token, ident) = (&u.union_token, &u.ident);
            ("a union", quote!(#union_token #ident))
        }
        Item::Mod(m) => {
            let (mod_token, ident) = (&m.mod_token, &m.ident);
            ("a module", quote!(#mod_token #ident))
        }
        Item::Type(t) => {
            let (type_token, ident) = (&t.type_token, &t.ident);
            ("a type alias", quote!(#type_token #ident))
        }
        Item::Const(c) => {
            let (const_token, ident) = (&c.const_token, &c.ident);
            ("a constant", quote!(#const_token #ident))
        }
        Item::Static(s) => {
            let (static_token, ident) = (&s.static_token, &s.ident);
            ("a static", quote!(#static_token #ident))
        }
        other => ("this item", quote!(#other)),
    }
}
