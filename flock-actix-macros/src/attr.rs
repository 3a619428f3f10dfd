//! Parsing the attribute's arguments: `kind = "..."`, `messages(M, N = "tag")`.
//!
//! Parsing keeps every occurrence as written; [`crate::valid`] decides what is
//! allowed (one `kind`, string literals, no duplicates).

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token, Type};

/// The arguments of one `#[flock_bird(...)]`, in source order.
#[derive(Default)]
pub(crate) struct Args {
    /// Every `kind = <expr>`.
    pub kinds: Vec<KindArg>,
    /// Every `messages(...)`.
    pub messages: Vec<MessagesArg>,
    /// Every bare `handoff` (the kind implements `Handoff`).
    pub handoffs: Vec<Ident>,
    /// Every `passivate_after = <expr>`.
    pub passivate_after: Vec<KindArg>,
    /// Every bare `activate` (the kind overrides `Bird::activate`).
    pub activates: Vec<Ident>,
}

/// `kind = <expr>` (also `passivate_after = <expr>`).
pub(crate) struct KindArg {
    pub key: Ident,
    pub value: Expr,
}

/// `messages(<entry>, ...)`.
pub(crate) struct MessagesArg {
    pub key: Ident,
    pub entries: Vec<MessageEntry>,
}

/// `Type` or `Type = <expr>` inside `messages(...)`.
pub(crate) struct MessageEntry {
    pub ty: Type,
    pub tag: Option<Expr>,
}

const EXPECTED: &str = "expected `kind = \"...\"`, `messages(Type, ...)`, `handoff`, \
                        `activate` or `passivate_after = \"...\"`";

pub(crate) fn parse(args: TokenStream) -> syn::Result<Args> {
    Parser::parse2(parse_args, args)
}

fn parse_args(input: ParseStream) -> syn::Result<Args> {
    let mut args = Args::default();
    while !input.is_empty() {
        let key: Ident = input
            .call(syn::ext::IdentExt::parse_any)
            .map_err(|e| syn::Error::new(e.span(), format!("{EXPECTED} in #[flock_bird(...)]")))?;
        if key == "kind" {
            if !input.peek(Token![=]) {
                return Err(syn::Error::new_spanned(
                    &key,
                    "expected `kind = \"...\"`: the kind's wire tag as a string literal",
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            args.kinds.push(KindArg { key, value });
        } else if key == "handoff" {
            if !input.is_empty() && !input.peek(Token![,]) {
                return Err(syn::Error::new_spanned(
                    &key,
                    "`handoff` takes no value: write `handoff` and implement `Handoff` for the bird",
                ));
            }
            args.handoffs.push(key);
        } else if key == "activate" {
            if !input.is_empty() && !input.peek(Token![,]) {
                return Err(syn::Error::new_spanned(
                    &key,
                    "`activate` takes no value: write `activate` and implement \
                     `Bird::activate` for the bird",
                ));
            }
            args.activates.push(key);
        } else if key == "passivate_after" {
            if !input.peek(Token![=]) {
                return Err(syn::Error::new_spanned(
                    &key,
                    "expected `passivate_after = \"...\"`: an idle time such as \"30s\" or \"5m\"",
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            args.passivate_after.push(KindArg { key, value });
        } else if key == "messages" {
            if !input.peek(syn::token::Paren) {
                return Err(syn::Error::new_spanned(
                    &key,
                    "expected `messages(Type, ...)`: a parenthesized list of message types",
                ));
            }
            let content;
            syn::parenthesized!(content in input);
            let entries = Punctuated::<MessageEntry, Token![,]>::parse_terminated(&content)?;
            args.messages.push(MessagesArg {
                key,
                entries: entries.into_iter().collect(),
            });
        } else {
            return Err(syn::Error::new_spanned(
                &key,
                format!("unknown #[flock_bird] argument `{key}`: {EXPECTED}"),
            ));
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

impl Parse for MessageEntry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let ty: Type = input.parse()?;
        let tag = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(MessageEntry { ty, tag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{ToTokens, quote};

    fn text(t: &impl ToTokens) -> String {
        t.to_token_stream().to_string()
    }

    #[test]
    fn no_arguments_mean_no_kind_and_no_messages() {
        let args = parse(quote!()).unwrap();
        assert!(args.kinds.is_empty());
        assert!(args.messages.is_empty());
    }

    #[test]
    fn messages_keep_paths_and_pinned_tags_in_order() {
        let args = parse(quote!(messages(Ping, crate::msgs::Bye = "bye.v1", Get<u32>,))).unwrap();
        assert_eq!(args.messages.len(), 1);
        let entries = &args.messages[0].entries;
        assert_eq!(entries.len(), 3);
        assert_eq!(text(&entries[0].ty), "Ping");
        assert!(entries[0].tag.is_none());
        assert_eq!(text(&entries[1].ty), "crate :: msgs :: Bye");
        assert_eq!(text(entries[1].tag.as_ref().unwrap()), "\"bye.v1\"");
        assert_eq!(text(&entries[2].ty), "Get < u32 >");
    }

    #[test]
    fn kind_and_messages_parse_in_either_order() {
        let a = parse(quote!(kind = "k", messages(A))).unwrap();
        let b = parse(quote!(messages(A), kind = "k")).unwrap();
        for args in [a, b] {
            assert_eq!(args.kinds.len(), 1);
            assert_eq!(text(&args.kinds[0].value), "\"k\"");
            assert_eq!(args.messages[0].entries.len(), 1);
        }
    }

    #[test]
    fn repeated_keys_are_kept_for_validation() {
        let args = parse(quote!(kind = "a", kind = "b", messages(), messages(X))).unwrap();
        assert_eq!(args.kinds.len(), 2);
        assert_eq!(args.messages.len(), 2);
        assert_eq!(args.messages[0].key, "messages");
    }

    #[test]
    fn unknown_key_is_rejected_with_the_expected_forms() {
        let err = parse(quote!(mesages(Ping))).err().unwrap().to_string();
        assert!(
            err.contains("unknown #[flock_bird] argument `mesages`"),
            "{err}"
        );
        assert!(err.contains("messages(Type, ...)"), "{err}");
    }

    #[test]
    fn kind_without_value_and_messages_without_list_are_rejected() {
        let err = parse(quote!(kind)).err().unwrap().to_string();
        assert!(err.contains("expected `kind = \"...\"`"), "{err}");
        let err = parse(quote!(messages = Ping)).err().unwrap().to_string();
        assert!(err.contains("expected `messages(Type, ...)`"), "{err}");
    }

    #[test]
    fn handoff_is_a_bare_flag_in_any_position() {
        let args = parse(quote!(handoff, messages(A), handoff)).unwrap();
        assert_eq!(args.handoffs.len(), 2);
        let err = parse(quote!(handoff = true)).err().unwrap().to_string();
        assert!(err.contains("`handoff` takes no value"), "{err}");
    }

    #[test]
    fn passivate_after_takes_a_value_and_activate_none() {
        let args = parse(quote!(activate, passivate_after = "5m", messages(A))).unwrap();
        assert_eq!(args.activates.len(), 1);
        assert_eq!(text(&args.passivate_after[0].value), "\"5m\"");
        let err = parse(quote!(passivate_after)).err().unwrap().to_string();
        assert!(
            err.contains("expected `passivate_after = \"...\"`"),
            "{err}"
        );
        let err = parse(quote!(activate = true)).err().unwrap().to_string();
        assert!(err.contains("`activate` takes no value"), "{err}");
    }

    #[test]
    fn missing_comma_between_arguments_is_a_syntax_error() {
        assert!(parse(quote!(kind = "a" messages(X))).is_err());
    }
}
