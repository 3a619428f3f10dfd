//! Code generation for `#[flock_bird]`.

use crate::ast::{Bird, Input};
use crate::attr;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Item;
use syn::spanned::Spanned;

/// The whole macro: the item unchanged, then either the generated impls or,
/// on any mistake, `compile_error!`s (and no impls, to avoid cascades).
pub(crate) fn flock_bird(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_errors(input, e),
    };
    match Input::from_syn(&item, attr::parse(args)).and_then(|input| input.validate()) {
        Ok(bird) => {
            let impls = impls(&bird);
            quote!(#item #impls)
        }
        Err(e) => with_errors(quote!(#item), e),
    }
}

fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote!(#item #errors)
}

fn impls(bird: &Bird) -> TokenStream {
    let ident = bird.ident;
    let p = quote!(::flock_actix::__private);
    // Local names no user item can capture: a `const addr` in scope would turn
    // a plain `addr` parameter into a constant pattern (items are not hygienic).
    let [addr, tag, payload, other, ctx, name, args, state, due] = [
        "addr", "tag", "payload", "other", "ctx", "name", "args", "state", "due",
    ]
    .map(|n| Ident::new(&format!("__flock_{n}"), Span::mixed_site()));

    let kind = match &bird.kind {
        Some(lit) => quote!(#lit),
        None => {
            let name = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #name))
        }
    };

    let tags: Vec<_> = bird.messages.iter().map(|m| &m.tag).collect();
    let types: Vec<_> = bird.messages.iter().map(|m| &m.ty).collect();
    // With no messages the parameters would be unused.
    let touch = bird
        .messages
        .is_empty()
        .then(|| quote!(let _ = (#addr, #payload);));
    let touch_call = bird
        .messages
        .is_empty()
        .then(|| quote!(let _ = (#addr, #payload, #due);));

    let accepts = bird.messages.iter().map(|m| {
        let (ty, tag) = (&m.ty, &m.tag);
        // Every token spanned at the message, so that trait-bound errors (not
        // `Wire`, no `Handler<M>`) point at its entry in messages(...).
        let span = ty.span();
        let bird = Ident::new(&ident.to_string(), span);
        quote_spanned! {span=>
            impl ::flock_actix::__private::Accepts<#ty> for #bird {
                const TAG: &'static str = #tag;
            }
        }
    });

    // A kind with a state takes it when it is stopped for a move, and is
    // started from it on its new owner (bounded by `Handoff`, so a missing
    // impl is one error at the attribute's bird).
    let handoff = bird.handoff.then(|| {
        quote! {
            impl #p::actix::Handler<#p::TakeState> for #ident {
                type Result = ::core::option::Option<::std::vec::Vec<u8>>;

                fn handle(
                    &mut self,
                    _: #p::TakeState,
                    #ctx: &mut #p::actix::Context<Self>,
                ) -> Self::Result {
                    #p::take_state(self, #ctx)
                }
            }

            impl #p::actix::Handler<#p::MergeState> for #ident {
                type Result = ();

                fn handle(
                    &mut self,
                    #state: #p::MergeState,
                    _: &mut #p::actix::Context<Self>,
                ) {
                    #p::merge_state(self, &#state.0)
                }
            }
        }
    });
    let handoff_fns = bird.handoff.then(|| {
        quote! {
            const HANDS_OFF: bool = true;

            fn dispatch_hand_off(#addr: &#p::actix::Addr<Self>) -> #p::StateFuture {
                #p::hand_off(#addr)
            }

            fn dispatch_merge(#addr: &#p::actix::Addr<Self>, #state: ::std::vec::Vec<u8>) {
                #p::merge(#addr, #state)
            }

            fn resume_from(
                #name: &str,
                #args: Self::Args,
                #state: &[u8],
                nest: &#p::Nest,
            ) -> ::std::result::Result<Self, #p::HatchError> {
                #p::resume::<Self>(#name, #args, #state, nest)
            }
        }
    });

    let passivate = bird.passivate_after_ms.map(|ms| {
        quote! {
            const PASSIVATE_AFTER: ::core::option::Option<::core::time::Duration> =
                ::core::option::Option::Some(::core::time::Duration::from_millis(#ms));
        }
    });
    let activates = bird.activate.then(|| {
        quote!(
            const ACTIVATES: bool = true;
        )
    });

    quote! {
        #handoff

        impl #p::actix::Handler<#p::StopBird> for #ident {
            type Result = ();

            fn handle(&mut self, _: #p::StopBird, #ctx: &mut #p::actix::Context<Self>) {
                #p::stop_bird(#ctx)
            }
        }

        // The typed local fast path sends a message in a slot, so that one
        // cut by an ordered stop can be sent again (see `Slot`).
        impl<__FlockM> #p::actix::Handler<#p::Slot<__FlockM>> for #ident
        where
            Self: #p::actix::Handler<__FlockM>,
            __FlockM: #p::actix::Message,
        {
            type Result = #p::SlotResponse<<Self as #p::actix::Handler<__FlockM>>::Result>;

            fn handle(
                &mut self,
                slot: #p::Slot<__FlockM>,
                #ctx: &mut #p::actix::Context<Self>,
            ) -> Self::Result {
                #p::handle_slot(self, slot, #ctx)
            }
        }

        impl #p::BirdKind for #ident {
            const KIND: &'static str = #kind;

            #handoff_fns
            #passivate
            #activates

            fn dispatch_call(
                #addr: &#p::actix::Addr<Self>,
                #tag: &str,
                #payload: &[u8],
                #due: ::std::time::Instant,
            ) -> #p::CallFuture {
                #touch_call
                match #tag {
                    #( #tags => #p::call::<Self, #types>(#addr, #payload, #due), )*
                    #other => ::core::result::Result::Err(#p::unknown_message::<Self>(#other)),
                }
            }

            fn dispatch_cast(
                #addr: &#p::actix::Addr<Self>,
                #tag: &str,
                #payload: &[u8],
            ) -> ::core::result::Result<(), #p::RemoteError> {
                #touch
                match #tag {
                    #( #tags => #p::cast::<Self, #types>(#addr, #payload), )*
                    #other => ::core::result::Result::Err(#p::unknown_message::<Self>(#other)),
                }
            }
        }

        #( #accepts )*
    }
}

#[cfg(test)]
mod tests {
    use super::flock_bird;
    use quote::quote;

    #[test]
    fn a_mistake_emits_the_item_unchanged_and_no_impls() {
        let out = flock_bird(
            quote!(messages(A, A)),
            quote!(
                struct B;
            ),
        )
        .to_string();
        assert!(out.starts_with("struct B ;"), "{out}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("impl"), "{out}");
    }

    #[test]
    fn a_bird_gets_stop_handler_kind_and_one_accepts_per_message() {
        let out = flock_bird(
            quote!(messages(A, m::C = "c")),
            quote!(
                struct B;
            ),
        )
        .to_string();
        assert!(out.starts_with("struct B ;"), "{out}");
        assert!(out.contains("Handler < :: flock_actix :: __private :: StopBird > for B"));
        assert!(out.contains(":: flock_actix :: __private :: BirdKind for B"));
        assert!(out.contains("Accepts < A > for B"));
        assert!(out.contains("Accepts < m :: C > for B"));
        assert!(out.contains("\"c\" =>"), "{out}");
        assert!(out.contains("module_path"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn a_handoff_bird_gets_the_take_state_handler_and_resume() {
        let out = flock_bird(
            quote!(handoff),
            quote!(
                struct B;
            ),
        )
        .to_string();
        assert!(
            out.contains("Handler < :: flock_actix :: __private :: TakeState > for B"),
            "{out}"
        );
        assert!(out.contains("const HANDS_OFF : bool = true"), "{out}");
        assert!(out.contains("resume :: < Self >"), "{out}");
        let plain = flock_bird(
            quote!(),
            quote!(
                struct B;
            ),
        )
        .to_string();
        assert!(!plain.contains("TakeState"), "{plain}");
    }

    #[test]
    fn a_pinned_kind_replaces_the_module_path() {
        let out = flock_bird(
            quote!(kind = "k.v1"),
            quote!(
                enum E {
                    X,
                }
            ),
        )
        .to_string();
        assert!(
            out.contains("const KIND : & 'static str = \"k.v1\""),
            "{out}"
        );
        assert!(!out.contains("module_path"), "{out}");
    }

    #[test]
    fn unparsable_input_is_passed_through_with_the_error() {
        let out = flock_bird(quote!(), quote!(struct)).to_string();
        assert!(out.starts_with("struct"), "{out}");
        assert!(out.contains("compile_error"), "{out}");
    }
}
