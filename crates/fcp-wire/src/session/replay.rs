//! The 128-frame anti-replay window (profile §4.4, review 002 #3).
//!
//! Per session and receive direction: `highest` accepted seq plus a bitmap of
//! the 128 seqs `highest-127 ..= highest`. A frame at or below `highest - 128`
//! or already seen is dropped and counted. The window is updated only after the
//! frame's MAC verified ([`ReplayWindow::check`] then [`ReplayWindow::update`]).

/// Window size in frames (profile §4.4; spec `max_reorder_window` default).
pub const REPLAY_WINDOW: u64 = 128;

/// Why [`ReplayWindow::check`] refused a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowReject {
    /// Already accepted.
    Replayed,
    /// At or below `highest - 128`; carries `highest`.
    Outside(u64),
}

/// Sliding bitmap window over `seq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `i` set = `highest - i` accepted.
    bitmap: u128,
}

impl ReplayWindow {
    /// An empty window: every seq is acceptable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest accepted seq, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `seq` may be accepted (no state change).
    pub fn check(&self, seq: u64) -> Result<(), WindowReject> {
        let Some(h) = self.highest else {
            return Ok(());
        };
        if seq > h {
            return Ok(());
        }
        let diff = h - seq;
        if diff >= REPLAY_WINDOW {
            return Err(WindowReject::Outside(h));
        }
        if self.bitmap & (1u128 << diff) != 0 {
            return Err(WindowReject::Replayed);
        }
        Ok(())
    }

    /// Record `seq` as accepted (call after the MAC verified and `check` passed).
    pub fn update(&mut self, seq: u64) {
        match self.highest {
            None => {
                self.highest = Some(seq);
                self.bitmap = 1;
            }
            Some(h) if seq > h => {
                let shift = seq - h;
                self.bitmap = if shift >= REPLAY_WINDOW {
                    0
                } else {
                    self.bitmap << shift
                };
                self.bitmap |= 1;
                self.highest = Some(seq);
            }
            Some(h) => {
                let diff = h - seq;
                if diff < REPLAY_WINDOW {
                    self.bitmap |= 1u128 << diff;
                }
            }
        }
    }

    /// `check` then `update`.
    pub fn accept(&mut self, seq: u64) -> Result<(), WindowReject> {
        self.check(seq)?;
        self.update(seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_semantics() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(5), Ok(()));
        assert_eq!(w.accept(5), Err(WindowReject::Replayed));
        assert_eq!(w.accept(3), Ok(()));
        assert_eq!(w.accept(200), Ok(()));
        // 200 - 128 = 72 is outside; 73 is the oldest inside.
        assert_eq!(w.check(72), Err(WindowReject::Outside(200)));
        assert_eq!(w.accept(73), Ok(()));
        assert_eq!(w.accept(73), Err(WindowReject::Replayed));
        assert_eq!(w.accept(u64::MAX), Ok(()));
        assert_eq!(w.check(200), Err(WindowReject::Outside(u64::MAX)));
    }
}
