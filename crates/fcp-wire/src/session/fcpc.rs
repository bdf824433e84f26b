//! FCPC control frames over a reliable stream (profile §4.3, spec §9.3).
//!
//! Frame = `u32le(len) || ciphertext || tag[16]`, `len = len(ciphertext) + 16`,
//! bounded by `max_frame` (default 1 MiB). ChaCha20-Poly1305 with `k_ctx`,
//! nonce `u32le(direction) || u64le(seq)`, AAD = the 16-byte session id. Each
//! direction numbers its frames from 0; the stream is reliable and in order, so
//! the receiver expects exactly the next seq. The plaintext is exactly one
//! canonical CBOR data item (a control-plane object, spec §9.3).
//!
//! [`FcpcReceiver`] is a streaming decoder: it accepts any split of the input,
//! returns [`FcpcRead::NeedMore`] until a frame is complete, and never buffers
//! more than the bound. After any failure the stream is closed (the sequence
//! can no longer be trusted).

use fcp_crypto::FcpcCipher;

use super::counters::SessionCounters;
use super::{Result, SessionError};

/// Default bound of `len` (ciphertext + tag), 1 MiB.
pub const DEFAULT_MAX_FCPC_FRAME: usize = 1 << 20;
const TAG_LEN: usize = 16;

fn check_max(max_frame: usize) -> Result<()> {
    if max_frame <= TAG_LEN || u32::try_from(max_frame).is_err() {
        return Err(SessionError::InvalidConfig(
            "FCPC max_frame outside 17..=u32::MAX",
        ));
    }
    Ok(())
}

fn check_payload(p: &[u8]) -> Result<()> {
    fcp_core::cbor::check_canonical(p)
        .map_err(|_| SessionError::FcpcMalformed("payload is not one canonical CBOR item"))
}

/// Sending half of an FCPC stream.
pub struct FcpcSender {
    cipher: FcpcCipher,
    session_id: [u8; 16],
    direction: u8,
    seq: u64,
    max_frame: usize,
}

impl core::fmt::Debug for FcpcSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FcpcSender")
            .field("direction", &self.direction)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl FcpcSender {
    /// A sender for `direction` under `k_ctx`.
    pub fn new(
        k_ctx: &[u8; 32],
        session_id: [u8; 16],
        direction: u8,
        max_frame: usize,
    ) -> Result<Self> {
        check_max(max_frame)?;
        Ok(Self {
            cipher: FcpcCipher::new(k_ctx).map_err(SessionError::Crypto)?,
            session_id,
            direction,
            seq: 0,
            max_frame,
        })
    }

    /// Next seq to send.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Seal a serde value as canonical CBOR. The canonical encoder's output
    /// is one canonical item by construction, so it is not decoded again.
    pub fn seal_value<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<Vec<u8>> {
        let cbor = fcp_core::cbor::to_canonical(value)
            .map_err(|_| SessionError::InvalidConfig("value is not CBOR-encodable"))?;
        self.seal_item(&cbor)
    }

    /// Seal one canonical CBOR item (checked) into a frame.
    pub fn seal_cbor(&mut self, cbor: &[u8]) -> Result<Vec<u8>> {
        check_payload(cbor)?;
        self.seal_item(cbor)
    }

    /// Seal bytes known to be one canonical CBOR item.
    fn seal_item(&mut self, cbor: &[u8]) -> Result<Vec<u8>> {
        let len = cbor.len().saturating_add(TAG_LEN);
        if len > self.max_frame {
            return Err(SessionError::FcpcOversized {
                len,
                max: self.max_frame,
            });
        }
        if self.seq == u64::MAX {
            return Err(SessionError::SequenceExhausted);
        }
        let len32 = u32::try_from(len).map_err(|_| SessionError::FcpcOversized {
            len,
            max: self.max_frame,
        })?;
        let mut out = Vec::with_capacity(4 + len);
        out.extend_from_slice(&len32.to_le_bytes());
        out.extend_from_slice(cbor);
        let tag = self
            .cipher
            .seal_in_place(self.direction, self.seq, &self.session_id, &mut out[4..])
            .map_err(SessionError::Crypto)?;
        out.extend_from_slice(&tag);
        self.seq += 1;
        Ok(out)
    }
}

/// What [`FcpcReceiver::read`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FcpcRead {
    /// All input consumed; the frame in progress is incomplete.
    NeedMore,
    /// One decrypted control message (one canonical CBOR item).
    Message(Vec<u8>),
}

/// Receiving half of an FCPC stream: a streaming, bounded decoder.
pub struct FcpcReceiver {
    cipher: FcpcCipher,
    session_id: [u8; 16],
    direction: u8,
    next_seq: u64,
    max_frame: usize,
    header: [u8; 4],
    header_len: usize,
    /// `Some(len)` once the header is complete.
    body_len: Option<usize>,
    body: Vec<u8>,
    closed: bool,
    counters: SessionCounters,
}

impl core::fmt::Debug for FcpcReceiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FcpcReceiver")
            .field("direction", &self.direction)
            .field("next_seq", &self.next_seq)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl FcpcReceiver {
    /// A receiver for frames sent in `direction` under `k_ctx`.
    pub fn new(
        k_ctx: &[u8; 32],
        session_id: [u8; 16],
        direction: u8,
        max_frame: usize,
    ) -> Result<Self> {
        check_max(max_frame)?;
        Ok(Self {
            cipher: FcpcCipher::new(k_ctx).map_err(SessionError::Crypto)?,
            session_id,
            direction,
            next_seq: 0,
            max_frame,
            header: [0; 4],
            header_len: 0,
            body_len: None,
            body: Vec::new(),
            closed: false,
            counters: SessionCounters::default(),
        })
    }

    /// Rejection counters.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Whether an earlier failure closed the stream.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes currently buffered (never more than `4 + max_frame`).
    pub fn buffered(&self) -> usize {
        self.header_len + self.body.len()
    }

    fn fail(&mut self, e: SessionError) -> SessionError {
        self.closed = true;
        self.body = Vec::new();
        self.counters.reject(e)
    }

    /// Consume bytes from the front of `input` until one frame is complete
    /// (returns it; the rest of `input` is left for the next call) or `input`
    /// is exhausted ([`FcpcRead::NeedMore`]).
    pub fn read(&mut self, input: &mut &[u8]) -> Result<FcpcRead> {
        if self.closed {
            return Err(SessionError::FcpcClosed);
        }
        let len = match self.body_len {
            Some(l) => l,
            None => {
                let want = 4 - self.header_len;
                let take = want.min(input.len());
                let (h, rest) = input.split_at(take);
                self.header[self.header_len..self.header_len + take].copy_from_slice(h);
                self.header_len += take;
                *input = rest;
                if self.header_len < 4 {
                    return Ok(FcpcRead::NeedMore);
                }
                let l = u32::from_le_bytes(self.header) as usize;
                if l > self.max_frame {
                    return Err(self.fail(SessionError::FcpcOversized {
                        len: l,
                        max: self.max_frame,
                    }));
                }
                if l <= TAG_LEN {
                    return Err(
                        self.fail(SessionError::FcpcMalformed("frame shorter than tag + 1"))
                    );
                }
                self.body_len = Some(l);
                self.body = Vec::with_capacity(l);
                l
            }
        };
        let want = len - self.body.len();
        let take = want.min(input.len());
        let (b, rest) = input.split_at(take);
        self.body.extend_from_slice(b);
        *input = rest;
        if self.body.len() < len {
            return Ok(FcpcRead::NeedMore);
        }
        // A complete frame.
        let mut body = core::mem::take(&mut self.body);
        self.body_len = None;
        self.header_len = 0;
        let ct_len = len - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&body[ct_len..]);
        body.truncate(ct_len);
        if self
            .cipher
            .open_in_place(
                self.direction,
                self.next_seq,
                &self.session_id,
                &mut body,
                &tag,
            )
            .is_err()
        {
            return Err(self.fail(SessionError::FcpcDecrypt));
        }
        if let Err(e) = check_payload(&body) {
            return Err(self.fail(e));
        }
        self.next_seq = self.next_seq.saturating_add(1);
        Ok(FcpcRead::Message(body))
    }
}
