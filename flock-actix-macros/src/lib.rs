//! Procedural macros for [flock-actix](https://docs.rs/flock-actix).
//!
//! The `#[flock_bird]` attribute arrives with the cluster runtime; this crate is
//! the home it will live in.

use proc_macro::TokenStream;

/// Turns an actix actor into a flock bird (implementation pending).
#[proc_macro_attribute]
pub fn flock_bird(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
