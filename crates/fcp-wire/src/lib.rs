//! FCP wire layer (sans-IO): RaptorQ objects, chunked objects, FCPS frames,
//! symbol envelopes and flow-control objects.
//!
//! Nothing here touches a socket or a clock; the node drives it.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod control;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod object;
pub mod objectid;
pub mod pipeline;
pub mod session;

pub use error::{FrameError, WireError};
