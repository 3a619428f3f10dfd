//! The few MessagePack forms the hand-written readers need: the frozen
//! handshake prefix ([`peek_version`](super::message::peek_version)), the
//! zero-copy user frames (`wire::user`) and the registry sync frames
//! (`wire::sync`). Independent of serde, so that the
//! frozen prefix stays readable whatever the rest of the encoding becomes.
//! Every step answers `None` on a truncated input or an unexpected marker:
//! it never panics and never allocates.

use std::ops::Range;

/// A read position in a byte slice.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    /// Whether everything was read.
    #[inline]
    pub(super) fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// Steps over `p` if the input goes on with it.
    #[inline]
    pub(super) fn prefix(&mut self, p: &[u8]) -> bool {
        let ok = self.bytes.get(self.at..self.at + p.len()) == Some(p);
        if ok {
            self.at += p.len();
        }
        ok
    }

    /// The range of the next `n` bytes (a hostile length is refused here,
    /// bounded by the input).
    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Option<Range<usize>> {
        let end = self.at.checked_add(n)?;
        if end > self.bytes.len() {
            return None;
        }
        let range = self.at..end;
        self.at = end;
        Some(range)
    }

    /// The next `n` bytes.
    #[inline]
    pub(super) fn bytes(&mut self, n: u64) -> Option<&'a [u8]> {
        let r = self.take(usize::try_from(n).ok()?)?;
        Some(&self.bytes[r])
    }

    #[inline]
    pub(super) fn byte(&mut self) -> Option<u8> {
        let r = self.take(1)?;
        Some(self.bytes[r.start])
    }

    #[inline]
    fn be(&mut self, n: usize) -> Option<u64> {
        let r = self.take(n)?;
        Some(
            self.bytes[r]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    #[inline]
    pub(super) fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0x00..=0x7f => Some(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    #[inline]
    pub(super) fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0xc2 => Some(false),
            0xc3 => Some(true),
            _ => None,
        }
    }

    /// The length of a `str` (its bytes follow).
    #[inline]
    pub(super) fn str_len(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0xa0..=0xbf => Some(u64::from(m & 0x1f)),
            0xd9 => self.be(1),
            0xda => self.be(2),
            0xdb => self.be(4),
            _ => None,
        }
    }

    /// The length of a `bin` (its bytes follow).
    #[inline]
    pub(super) fn bin_len(&mut self) -> Option<u64> {
        match self.byte()? {
            0xc4 => self.be(1),
            0xc5 => self.be(2),
            0xc6 => self.be(4),
            _ => None,
        }
    }

    /// A `str`, UTF-8 checked, borrowed from the input.
    #[inline]
    pub(super) fn str(&mut self) -> Option<&'a str> {
        let len = self.str_len()?;
        std::str::from_utf8(self.bytes(len)?).ok()
    }

    /// A `bin`, borrowed from the input.
    #[inline]
    pub(super) fn bin(&mut self) -> Option<&'a [u8]> {
        let len = self.bin_len()?;
        self.bytes(len)
    }

    /// The number of entries of a map (its keys and values follow).
    #[inline]
    pub(super) fn map_len(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0x80..=0x8f => Some(u64::from(m & 0x0f)),
            0xde => self.be(2),
            0xdf => self.be(4),
            _ => None,
        }
    }

    /// The length of an array (its items follow).
    #[inline]
    pub(super) fn array_len(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0x90..=0x9f => Some(u64::from(m & 0x0f)),
            0xdc => self.be(2),
            0xdd => self.be(4),
            _ => None,
        }
    }
}
