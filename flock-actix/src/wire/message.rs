//! The wire messages.

/// The wire message (implementation pending).
#[derive(Debug)]
pub enum Message {}
