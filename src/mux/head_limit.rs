//! How many STREAM_RESPONSE_HEADs one stream takes. Heads cost no flow-control credit, so
//! without a bound a peer answering one stream with heads forever (while the reader is slow)
//! would grow the stream's queue without end. A stream takes interim heads up to
//! [`MAX_HEADS_PER_STREAM`] and one final head; past that it is reset.

use super::stream_slot::StreamSlot;
use crate::proto::ErrorCode;

/// Response heads one stream takes, interim and final together. Well above the 16 interim
/// heads the edge relays to a visitor, so a chatty app is cut only when it is plainly looping.
pub const MAX_HEADS_PER_STREAM: u8 = 64;

impl StreamSlot {
    /// Counts a head; `Err` is the RESET the stream gets instead.
    pub fn admit_head(&mut self, is_final: bool) -> Result<(), (ErrorCode, &'static str)> {
        if self.final_head {
            return Err((ErrorCode::PROTOCOL, "response head after the final one"));
        }
        if self.heads >= MAX_HEADS_PER_STREAM {
            return Err((
                ErrorCode::ENHANCE_YOUR_CALM,
                "more than 64 response heads on one stream",
            ));
        }
        self.heads += 1;
        self.final_head = is_final;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interim_heads_up_to_the_limit_then_one_final() {
        let mut slot = StreamSlot::new(0, 1024, 1);
        for _ in 0..MAX_HEADS_PER_STREAM - 1 {
            assert!(slot.admit_head(false).is_ok());
        }
        assert!(slot.admit_head(true).is_ok());
        assert_eq!(slot.admit_head(true).unwrap_err().0, ErrorCode::PROTOCOL);
        let mut chatty = StreamSlot::new(0, 1024, 1);
        for _ in 0..MAX_HEADS_PER_STREAM {
            assert!(chatty.admit_head(false).is_ok());
        }
        assert_eq!(
            chatty.admit_head(false).unwrap_err().0,
            ErrorCode::ENHANCE_YOUR_CALM
        );
    }
}
