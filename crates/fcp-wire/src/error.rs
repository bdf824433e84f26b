//! Typed errors of the wire layer, each with its stable FCP code.

use fcp_core::{ErrorCode, HasErrorCode};

/// FCPS frame decoding/encoding failures (profile §4.2). All are peer faults
/// except [`FrameError::FrameTooSmall`] (local misuse).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than the header, checksum and declared records need.
    #[error("frame truncated at {0} bytes")]
    Truncated(usize),
    /// Magic is not "FCPS".
    #[error("bad frame magic")]
    BadMagic,
    /// Unsupported version.
    #[error("unsupported frame version {0}")]
    BadVersion(u16),
    /// Flag bits outside spec §4.4.
    #[error("unknown frame flag bits {0:#06x}")]
    UnknownFlags(u16),
    /// `symbol_count` is 0 or above the bound.
    #[error("bad symbol count {0}")]
    BadSymbolCount(u32),
    /// `symbol_size` outside 256..=16384.
    #[error("bad symbol size {0}")]
    BadSymbolSize(u16),
    /// Declared payload length disagrees with count and symbol size.
    #[error("payload length {declared} does not match records ({expected})")]
    LengthMismatch {
        /// Declared in the header.
        declared: usize,
        /// Implied by count and symbol size.
        expected: usize,
    },
    /// Bytes after the checksum.
    #[error("{0} trailing bytes after the frame")]
    TrailingBytes(usize),
    /// XXH3-64 mismatch.
    #[error("frame checksum mismatch")]
    Checksum,
    /// The configured maximum frame size cannot hold one record.
    #[error("maximum frame size {0} cannot hold one record")]
    FrameTooSmall(usize),
}

impl HasErrorCode for FrameError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Truncated(_) => ErrorCode::FrameTruncated,
            Self::BadMagic | Self::BadVersion(_) => ErrorCode::FrameBadMagic,
            Self::UnknownFlags(_) => ErrorCode::FrameUnknownFlags,
            Self::BadSymbolCount(_) | Self::BadSymbolSize(_) | Self::LengthMismatch { .. } => {
                ErrorCode::FrameBadLength
            }
            Self::TrailingBytes(_) => ErrorCode::FrameTrailingBytes,
            Self::Checksum => ErrorCode::FrameChecksum,
            Self::FrameTooSmall(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// Symbol-layer failures: RaptorQ objects, envelopes, chunking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Symbol size outside 256..=16384.
    #[error("symbol size {0} outside 256..=16384")]
    SymbolSize(u16),
    /// Object too large for one source block.
    #[error("object of {0} bytes is too large for one source block")]
    ObjectTooLarge(usize),
    /// `k` is 0 or above RFC 6330's bound.
    #[error("bad source symbol count k = {0}")]
    BadK(u16),
    /// A symbol's `k` differs from the object's.
    #[error("symbol k {got} does not match object k {expected}")]
    KMismatch {
        /// The object's k.
        expected: u16,
        /// The symbol's k.
        got: u16,
    },
    /// ESI above 2^24 - 1.
    #[error("bad encoding symbol id {0}")]
    BadEsi(u32),
    /// Symbol payload of the wrong length.
    #[error("symbol of {got} bytes, expected {expected}")]
    SymbolLength {
        /// Symbol size.
        expected: u16,
        /// Received length.
        got: usize,
    },
    /// More distinct repair symbols than any decode needs.
    #[error("too many symbols for one object")]
    TooManySymbols,
    /// Not enough symbols yet.
    #[error("object incomplete: {received} of {required} symbols")]
    Incomplete {
        /// Unique symbols received.
        received: u32,
        /// Symbols needed.
        required: u32,
    },
    /// The rebuilt block's length prefix or padding is invalid.
    #[error("rebuilt object has an invalid length prefix or padding")]
    BadLengthPrefix,
    /// A frame problem.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl HasErrorCode for WireError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::SymbolSize(_)
            | Self::BadK(_)
            | Self::KMismatch { .. }
            | Self::BadEsi(_)
            | Self::SymbolLength { .. } => ErrorCode::SymbolInvalid,
            Self::ObjectTooLarge(_) | Self::TooManySymbols => ErrorCode::ResourceLimit,
            Self::Incomplete { .. } => ErrorCode::DecodeIncomplete,
            Self::BadLengthPrefix => ErrorCode::ObjectCorrupt,
            Self::Frame(f) => f.error_code(),
        }
    }
}
