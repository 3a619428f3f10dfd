//! Procedural macros for [flock-actix](https://docs.rs/flock-actix).
//!
//! The `#[flock_bird]` attribute arrives with the cluster runtime; this crate is
//! the home it will live in.
