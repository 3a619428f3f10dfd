//! Validation: turns the parsed [`Input`] into a [`Bird`], or reports every
//! mistake at once, each spanned at the tokens to fix.

use crate::ast::{Bird, Input, Msg};
use crate::attr::{KindArg, MessageEntry};
use quote::ToTokens;
use std::collections::HashMap;
use syn::{Expr, ExprLit, Lit, LitStr, Type};

impl<'a> Input<'a> {
    pub(crate) fn validate(&self) -> syn::Result<Bird<'a>> {
        let mut errors = Errors::default();

        if !self.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                self.generics,
                "flock birds cannot be generic: each kind needs one wire tag; \
                 put #[flock_bird] on a concrete type instead (e.g. a struct wrapping the generic one)",
            ));
        }

        let kind = self.kind(&mut errors);
        let messages = self.messages(&mut errors);
        for again in self.args.handoffs.iter().skip(1) {
            errors.push(syn::Error::new_spanned(
                again,
                "`handoff` is given twice: keep one",
            ));
        }

        for again in self.args.activates.iter().skip(1) {
            errors.push(syn::Error::new_spanned(
                again,
                "`activate` is given twice: keep one",
            ));
        }
        let passivate_after_ms = self.passivate_after(&mut errors);

        errors.finish()?;
        Ok(Bird {
            ident: self.ident,
            kind,
            messages,
            handoff: !self.args.handoffs.is_empty(),
            activate: !self.args.activates.is_empty(),
            passivate_after_ms,
        })
    }

    fn passivate_after(&self, errors: &mut Errors) -> Option<u64> {
        let (first, rest) = self.args.passivate_after.split_first()?;
        for again in rest {
            errors.push(syn::Error::new_spanned(
                again.key.clone().into_token_stream(),
                "`passivate_after` is given twice: keep one",
            ));
        }
        let parsed = string_literal(&first.value).map(|lit| (lit, idle_ms(&lit.value())));
        match parsed {
            Some((_, Some(ms))) => Some(ms),
            Some((lit, None)) => {
                errors.push(syn::Error::new_spanned(
                    lit,
                    "`passivate_after` must be a positive idle time with a unit: \
                     \"500ms\", \"30s\", \"5m\" or \"1h\"",
                ));
                None
            }
            None => {
                errors.push(syn::Error::new_spanned(
                    &first.value,
                    "`passivate_after` must be a string literal, e.g. passivate_after = \"5m\"",
                ));
                None
            }
        }
    }

    fn kind(&self, errors: &mut Errors) -> Option<LitStr> {
        let (first, rest) = self.args.kinds.split_first()?;
        for again in rest {
            errors.push(syn::Error::new_spanned(
                again.key.clone().into_token_stream(),
                "`kind` is given twice: keep one",
            ));
        }
        kind_literal(first, errors)
    }

    fn messages(&self, errors: &mut Errors) -> Vec<Msg> {
        for again in self.args.messages.iter().skip(1) {
            errors.push(syn::Error::new_spanned(
                &again.key,
                "`messages(...)` is given twice: list all the messages in one",
            ));
        }
        let entries = self.args.messages.iter().flat_map(|m| &m.entries);

        let mut msgs: Vec<Msg> = Vec::new();
        // Message type as written → its position in `msgs`.
        let mut seen_types: HashMap<String, usize> = HashMap::new();
        // Tag → its position in `msgs`.
        let mut seen_tags: HashMap<String, usize> = HashMap::new();
        for entry in entries {
            let Some(tag) = message_tag(entry, errors) else {
                continue;
            };
            let ty_text = entry.ty.to_token_stream().to_string();
            if seen_types.contains_key(&ty_text) {
                errors.push(syn::Error::new_spanned(
                    &entry.ty,
                    format!(
                        "`{}` is listed twice in messages(...): remove one",
                        plain(&ty_text)
                    ),
                ));
                continue;
            }
            if let Some(&first) = seen_tags.get(&tag.value()) {
                let other = msgs[first].ty.to_token_stream().to_string();
                errors.push(syn::Error::new_spanned(
                    &entry.ty,
                    format!(
                        "message tag \"{}\" is used twice in this bird, by `{}` and `{}`: \
                         pin distinct tags, e.g. messages({} = \"{}.v2\")",
                        tag.value(),
                        plain(&other),
                        plain(&ty_text),
                        plain(&ty_text),
                        tag.value(),
                    ),
                ));
                continue;
            }
            seen_types.insert(ty_text, msgs.len());
            seen_tags.insert(tag.value(), msgs.len());
            msgs.push(Msg {
                ty: entry.ty.clone(),
                tag,
            });
        }
        msgs
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"` in ms; `None` unless positive.
fn idle_ms(text: &str) -> Option<u64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit_ms: u64 = match &text[digits.len()..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

fn kind_literal(arg: &KindArg, errors: &mut Errors) -> Option<LitStr> {
    match string_literal(&arg.value) {
        Some(lit) if lit.value().is_empty() => {
            errors.push(syn::Error::new_spanned(
                lit,
                "`kind` must not be empty: it is the wire tag nodes find this bird kind by",
            ));
            None
        }
        Some(lit) => Some(lit.clone()),
        None => {
            errors.push(syn::Error::new_spanned(
                &arg.value,
                "`kind` must be a string literal, e.g. kind = \"my_app.Counter\"",
            ));
            None
        }
    }
}

/// The entry's pinned tag, or the last segment of its type path.
fn message_tag(entry: &MessageEntry, errors: &mut Errors) -> Option<LitStr> {
    let path = match &entry.ty {
        Type::Path(p) if p.qself.is_none() => Some(&p.path),
        _ => None,
    };
    let Some(path) = path else {
        errors.push(syn::Error::new_spanned(
            &entry.ty,
            "expected a message type by name, like `Ping` or `crate::msgs::Ping`",
        ));
        return None;
    };
    match &entry.tag {
        None => {
            let last = &path.segments.last()?.ident;
            Some(LitStr::new(&last.to_string(), last.span()))
        }
        Some(expr) => match string_literal(expr) {
            Some(lit) if lit.value().is_empty() => {
                errors.push(syn::Error::new_spanned(
                    lit,
                    "a message tag must not be empty: it names the message on the wire",
                ));
                None
            }
            Some(lit) => Some(lit.clone()),
            None => {
                errors.push(syn::Error::new_spanned(
                    expr,
                    "a message tag must be a string literal, e.g. messages(Ping = \"ping.v1\")",
                ));
                None
            }
        },
    }
}

fn string_literal(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        _ => None,
    }
}

/// Token text as a user would write it: `crate :: a :: B < u8 >` → `crate::a::B<u8>`.
fn plain(tokens: &str) -> String {
    tokens
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
}

#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use crate::ast::Input;
    use crate::attr;
    use quote::{ToTokens, quote};
    use syn::Item;

    fn validate(
        args: proc_macro2::TokenStream,
        item: Item,
    ) -> Result<Vec<(String, String)>, String> {
        let input = Input::from_syn(&item, attr::parse(args)).map_err(|e| e.to_string())?;
        let bird = input.validate().map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        Ok(bird
            .messages
            .iter()
            .map(|m| (m.ty.to_token_stream().to_string(), m.tag.value()))
            .collect())
    }

    #[test]
    fn idle_times_parse_with_their_unit_and_must_be_positive() {
        let table = [
            ("500ms", Some(500)),
            ("30s", Some(30_000)),
            ("5m", Some(300_000)),
            ("1h", Some(3_600_000)),
            ("0s", None),
            ("5", None),
            ("5d", None),
            ("m", None),
            ("-1s", None),
        ];
        for (text, ms) in table {
            assert_eq!(super::idle_ms(text), ms, "{text}");
        }
        let err = validate(quote!(passivate_after = "soon"), bird()).unwrap_err();
        assert!(
            err.contains("\"500ms\", \"30s\", \"5m\" or \"1h\""),
            "{err}"
        );
        let err = validate(quote!(passivate_after = 5), bird()).unwrap_err();
        assert!(err.contains("must be a string literal"), "{err}");
    }

    fn bird() -> Item {
        syn::parse_quote!(
            struct B;
        )
    }

    #[test]
    fn default_tag_is_the_last_path_segment_and_a_pinned_tag_wins() {
        let tags = validate(quote!(messages(a::b::Ping, Bye = "bye.v1")), bird()).unwrap();
        assert_eq!(tags[0].1, "Ping");
        assert_eq!(tags[1].1, "bye.v1");
    }

    #[test]
    fn generic_message_takes_the_type_name_as_tag() {
        let tags = validate(quote!(messages(Get<u8>)), bird()).unwrap();
        assert_eq!(tags, [("Get < u8 >".to_owned(), "Get".to_owned())]);
    }

    #[test]
    fn same_type_under_two_paths_is_caught_as_a_duplicate_tag() {
        let err = validate(quote!(messages(Ping, crate::Ping)), bird()).unwrap_err();
        assert!(err.contains("message tag \"Ping\" is used twice"), "{err}");
        assert!(err.contains("`Ping` and `crate::Ping`"), "{err}");
    }

    #[test]
    fn a_pinned_tag_can_resolve_a_clash() {
        let tags = validate(quote!(messages(v1::Ping, v2::Ping = "Ping.v2")), bird()).unwrap();
        assert_eq!(tags.len(), 2);
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let err = validate(
            quote!(kind = "", messages(A, A, B = 1), kind = "x"),
            syn::parse_quote!(
                struct G<T>(T);
            ),
        )
        .unwrap_err();
        for expected in [
            "cannot be generic",
            "`kind` must not be empty",
            "`kind` is given twice",
            "`A` is listed twice",
            "must be a string literal",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn wrong_item_and_bad_arguments_are_reported_together() {
        let err = validate(
            quote!(bogus),
            syn::parse_quote!(
                fn f() {}
            ),
        )
        .unwrap_err();
        assert!(err.contains("not on a function"), "{err}");
        // `to_string` shows the first error; the second is combined into it.
        let item: Item = syn::parse_quote!(
            fn f() {}
        );
        let e = Input::from_syn(&item, attr::parse(quote!(bogus)))
            .err()
            .unwrap();
        assert_eq!(e.into_iter().count(), 2);
    }
}
