//! User payloads: the bytes of a bird's messages, replies and start
//! arguments, inside the `Call`, `Cast`, `Reply` frames and the registry.
//!
//! They are encoded with field names (a struct becomes a MessagePack map,
//! not an array), so a message type can evolve during a rolling upgrade:
//!
//! - adding a field with `#[serde(default)]` is compatible both ways: a new
//!   node fills the default when an old node's message lacks it, and an old
//!   node skips the field it does not know;
//! - so is removing a field that had `#[serde(default)]` on the old side;
//! - renaming a field (without `#[serde(alias)]`), changing its type, or
//!   `#[serde(deny_unknown_fields)]` are breaking changes;
//! - enums are encoded by variant name: adding a variant is compatible as
//!   long as old nodes are never sent it.
//!
//! Payloads written positionally (arrays, as releases before this one did)
//! still decode, and a trailing `#[serde(default)]` field may be missing
//! from them, so a node of this release understands the previous one.

use serde::{Serialize, de::DeserializeOwned};

/// Encodes a user value with field names, into a buffer sized for small
/// messages.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(64);
    let mut ser = rmp_serde::Serializer::new(&mut buf).with_struct_map();
    value.serialize(&mut ser).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Payloads up to this many bytes stay inside an outgoing call or cast: a
/// small message costs no allocation on the caller's thread and no free on
/// the link's (the payload's `Vec`, allocated on one thread and freed on
/// another, was most of a cast's allocator time, issue #12). 48 covers a
/// message of a few fields, and keeps a queued cast within the size of a
/// queued call.
pub(crate) const INLINE: usize = 48;

/// An encoded payload, inline up to [`INLINE`] bytes.
pub(crate) type Payload = smallvec::SmallVec<[u8; INLINE]>;

/// [`encode`] into a [`Payload`].
pub(crate) fn encode_small<T: Serialize + ?Sized>(value: &T) -> Result<Payload, String> {
    let mut buf = Payload::new();
    let mut ser = rmp_serde::Serializer::new(&mut buf).with_struct_map();
    value.serialize(&mut ser).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Decodes a user value written by [`encode`] or positionally.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A message as an old node knows it.
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct JoinV1 {
        room: String,
        user: u64,
    }

    /// The same message after an upgrade added an optional field.
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct JoinV2 {
        room: String,
        user: u64,
        #[serde(default)]
        nickname: Option<String>,
    }

    #[test]
    fn a_small_payload_stays_inline_and_encodes_as_the_heap_one_does() {
        let small = JoinV1 {
            room: "r".into(),
            user: 7,
        };
        let inline = encode_small(&small).unwrap();
        assert!(!inline.spilled(), "{} bytes went to the heap", inline.len());
        assert_eq!(&inline[..], &encode(&small).unwrap()[..]);
        let large = JoinV1 {
            room: "r".repeat(INLINE * 2),
            user: 7,
        };
        let spilled = encode_small(&large).unwrap();
        assert!(spilled.spilled());
        assert_eq!(&spilled[..], &encode(&large).unwrap()[..]);
    }

    #[test]
    fn an_old_message_decodes_on_a_new_node_with_the_default() {
        let old = encode(&JoinV1 {
            room: "r".into(),
            user: 7,
        })
        .unwrap();
        let new: JoinV2 = decode(&old).unwrap();
        assert_eq!(
            new,
            JoinV2 {
                room: "r".into(),
                user: 7,
                nickname: None
            }
        );
    }

    #[test]
    fn a_new_message_decodes_on_an_old_node_which_skips_the_new_field() {
        let new = encode(&JoinV2 {
            room: "r".into(),
            user: 7,
            nickname: Some("ann".into()),
        })
        .unwrap();
        let old: JoinV1 = decode(&new).unwrap();
        assert_eq!(
            old,
            JoinV1 {
                room: "r".into(),
                user: 7
            }
        );
    }

    #[test]
    fn a_positional_payload_from_the_previous_release_still_decodes() {
        let legacy = rmp_serde::to_vec(&JoinV1 {
            room: "r".into(),
            user: 7,
        })
        .unwrap();
        let new: JoinV2 = decode(&legacy).unwrap();
        assert_eq!(new.nickname, None);
        assert_eq!(new.user, 7);
    }

    #[test]
    fn a_positional_payload_breaks_when_a_field_is_added_without_names() {
        // Why the encoding carries names: positionally, the old node cannot
        // read the new layout (this is the failure the names avoid).
        let positional = rmp_serde::to_vec(&JoinV2 {
            room: "r".into(),
            user: 7,
            nickname: None,
        })
        .unwrap();
        assert!(decode::<JoinV1>(&positional).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<JoinV2>(&[0xc1, 0xff, 0x00]).is_err());
        assert!(decode::<JoinV2>(&[]).is_err());
    }
}
