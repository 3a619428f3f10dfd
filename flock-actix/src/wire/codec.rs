//! The length-delimited frame codec.

/// The frame codec (implementation pending).
#[derive(Debug)]
pub struct FrameCodec;
