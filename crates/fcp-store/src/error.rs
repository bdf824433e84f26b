//! Store errors and their FCP codes.

use fcp_core::{ErrorCode, HasErrorCode, ZoneId};

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every error the store returns.
///
/// Local faults (IO, a damaged file) are separated from misuse (an invalid
/// record) and from policy (a quota).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be read or written (IO error, disk full).
    #[error("store IO error: {0}")]
    Io(String),
    /// The database file is held open by another process or handle.
    #[error("store database is already open elsewhere")]
    Locked,
    /// A stored value failed to decode, or the file is damaged.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// A record handed to the store cannot be stored (field out of range,
    /// zone mismatch, encoding failure).
    #[error("invalid store record: {0}")]
    InvalidRecord(String),
    /// The write would take `zone` over its quota; nothing was written.
    #[error(
        "zone {zone} quota exceeded: {used} bytes used + {requested} requested > {limit} allowed"
    )]
    QuotaExceeded {
        /// The zone whose quota would be exceeded.
        zone: ZoneId,
        /// Bytes in use before the write.
        used: u64,
        /// Bytes the write would add to this zone.
        requested: u64,
        /// The zone's quota.
        limit: u64,
    },
}

impl HasErrorCode for StoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Io(_) | Self::Locked => ErrorCode::StoreIo,
            Self::Corrupt(_) => ErrorCode::StoreCorrupt,
            Self::InvalidRecord(_) => ErrorCode::StoreInvalidRecord,
            Self::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        use redb::Error as E;
        match e {
            E::DatabaseAlreadyOpen => Self::Locked,
            E::Corrupted(m) => Self::Corrupt(m),
            E::UpgradeRequired(v) => Self::Corrupt(format!("unsupported redb file format {v}")),
            E::TableTypeMismatch { .. }
            | E::TableIsMultimap(_)
            | E::TableIsNotMultimap(_)
            | E::TypeDefinitionChanged { .. } => Self::Corrupt(e.to_string()),
            E::ValueTooLarge(n) => Self::InvalidRecord(format!("value of {n} bytes is too large")),
            other => Self::Io(other.to_string()),
        }
    }
}

/// Implements `From<redb::X> for StoreError` through `redb::Error`.
macro_rules! via_redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                redb::Error::from(e).into()
            }
        }
    )*};
}

via_redb_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
