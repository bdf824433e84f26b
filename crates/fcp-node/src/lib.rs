//! The FCP mesh node.
//!
//! - [`home`]: the node's home directory (keys with 0600 permissions, config,
//!   owner material on the owner's device, imported trust), written atomically.
//! - [`enroll`]: owner-rooted membership (spec §2.2, §5.2, §19.4): `fcp init`,
//!   `fcp owner init`, `fcp owner enroll`, `fcp join`, and the trust anchors a
//!   node derives from owner-signed attestations.
//! - [`daemon`]: the running node (`fcp node run`), and [`net`]: its
//!   transport and clock seam (real sockets, or a simulated network in tests).
//!
//! Time and randomness are parameters of everything here; the CLI passes the
//! system clock and the OS RNG.
#![forbid(unsafe_code)]

pub mod admin;
pub mod budget;
pub mod daemon;
pub mod enroll;
pub mod error;
pub mod home;
pub mod net;
mod pacing;
pub mod placement;
pub mod proto;

pub use error::NodeError;
