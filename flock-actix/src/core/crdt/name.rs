//! The rules for bird names, checked before a name enters the registry.
//!
//! A name is the key of the registry CRDT and the input of placement, and it
//! travels in every call frame and in every full state, so it is bounded.
//! Control characters are refused because names end up in logs and
//! operator tools, where they would forge or hide lines.

use crate::error::{Error, Result};

/// The longest bird name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// How much of an invalid name [`Error::InvalidName`] repeats.
const SHOWN_CHARS: usize = 64;

/// Checks `name` against the naming rules: not empty, at most
/// [`MAX_NAME_BYTES`] bytes, no control characters (`char::is_control`:
/// C0, DEL and C1, so no newline or tab either).
///
/// # Errors
/// [`Error::InvalidName`] saying which rule the name breaks.
pub fn check_bird_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty".to_owned()
    } else if name.len() > MAX_NAME_BYTES {
        format!(
            "it is {} bytes long, above the limit of {MAX_NAME_BYTES}",
            name.len()
        )
    } else if let Some((at, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        format!("it contains the control character {c:?} at byte {at}")
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.chars().take(SHOWN_CHARS).collect(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_against_each_rule() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let at_limit = "é".repeat(MAX_NAME_BYTES / 2);
        let table: [(&str, Option<&str>); 8] = [
            ("", Some("it is empty")),
            (&long, Some("it is 256 bytes long, above the limit of 255")),
            (
                "a\nb",
                Some("it contains the control character '\\n' at byte 1"),
            ),
            (
                "tab\t",
                Some("it contains the control character '\\t' at byte 3"),
            ),
            (
                "del\u{7f}",
                Some("it contains the control character '\\u{7f}' at byte 3"),
            ),
            ("counter:42", None),
            ("ünïcødé 名前 with spaces", None),
            (&at_limit, None),
        ];
        for (name, want) in table {
            let got = check_bird_name(name);
            match want {
                None => assert_eq!(got, Ok(()), "{name:?}"),
                Some(reason) => assert_eq!(
                    got,
                    Err(Error::InvalidName {
                        name: name.chars().take(SHOWN_CHARS).collect(),
                        reason: reason.into(),
                    }),
                    "{name:?}"
                ),
            }
        }
    }
}
