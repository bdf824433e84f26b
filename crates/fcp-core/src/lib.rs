//! FCP core: identifiers and their derivations, canonical CBOR, object headers,
//! provenance and taint, zone policy, and the error registry.
//!
//! No IO, no clock, no RNG: time and randomness are parameters.
#![forbid(unsafe_code)]

pub mod error;

pub use error::{ErrorCode, FcpError, HasErrorCode};
