//! Node errors, each with its FCP code.

use fcp_core::{ErrorCode, HasErrorCode};

/// Errors of the node's local operations (home, enrollment).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Reading or writing the home directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The home holds no initialised node (run `fcp init`).
    #[error("no node in {0}; run `fcp --home {0} init --node-id NAME --listen IP:PORT` first")]
    NotInitialised(String),
    /// The home already holds a node / owner.
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(String),
    /// This device holds no owner key.
    #[error("no owner key in {0}; run `fcp owner init` on the owner's device")]
    NotOwner(String),
    /// A file's content is malformed.
    #[error("{path} is malformed: {why}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A bad argument (node id, address, zone list).
    #[error("{0}")]
    InvalidArgument(String),
    /// A signature, key or wrap check failed.
    #[error(transparent)]
    Crypto(#[from] fcp_crypto::CryptoError),
    /// An identifier was invalid.
    #[error(transparent)]
    Id(#[from] fcp_core::IdError),
    /// Encoding failed.
    #[error(transparent)]
    Cbor(#[from] fcp_core::CborError),
    /// The bundle is not for this node, or not from the owner it names.
    #[error("enrollment bundle rejected: {0}")]
    BundleRejected(String),
    /// The node's store could not be opened (held by another process, a
    /// damaged file, an IO error): its code is the store's.
    #[error("{path}: {source}{hint}", hint = store_hint(source))]
    Store {
        /// The store file.
        path: String,
        /// What the store said.
        source: fcp_store::StoreError,
    },
}

/// What to do about a store error, where there is something to say.
fn store_hint(e: &fcp_store::StoreError) -> &'static str {
    match e {
        fcp_store::StoreError::Locked => {
            " (another `fcp node run` is using this home; stop it first)"
        }
        _ => "",
    }
}

impl HasErrorCode for NodeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } => ErrorCode::LocalIo,
            Self::NotInitialised(_) | Self::NotOwner(_) | Self::AlreadyExists(_) => {
                ErrorCode::InvalidArgument
            }
            Self::Malformed { .. } => ErrorCode::LocalStateCorrupt,
            Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::Crypto(e) => e.error_code(),
            Self::Id(e) => e.error_code(),
            Self::Cbor(e) => e.error_code(),
            Self::BundleRejected(_) => ErrorCode::EnrollmentRejected,
            Self::Store { source, .. } => source.error_code(),
        }
    }
}

/// Attach a path to an IO error.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.display().to_string(),
        source,
    }
}
