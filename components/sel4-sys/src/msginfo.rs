//! The message-info word (`seL4_MessageInfo`): label, unwrapped-caps mask, extra caps, length.

use crate::Word;

/// A message-info word: `label << 12 | caps_unwrapped << 9 | extra_caps << 7 | length`
/// (`libsel4/include/sel4/shared_types_64.bf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageInfo(pub Word);

impl MessageInfo {
    /// Packs the four fields; each is truncated to its width (20, 3, 2 and 7 bits).
    pub const fn new(label: Word, caps_unwrapped: Word, extra_caps: Word, length: Word) -> Self {
        MessageInfo(
            (label & 0xf_ffff) << 12
                | (caps_unwrapped & 0x7) << 9
                | (extra_caps & 0x3) << 7
                | (length & 0x7f),
        )
    }

    /// The label: an invocation label on the way in, an error code (0: none) in a reply, or a
    /// fault type in a fault message.
    pub const fn label(self) -> Word {
        (self.0 >> 12) & 0xf_ffff
    }

    /// Bit mask of extra capabilities that were unwrapped to their badges.
    pub const fn caps_unwrapped(self) -> Word {
        (self.0 >> 9) & 0x7
    }

    /// Number of extra capabilities.
    pub const fn extra_caps(self) -> Word {
        (self.0 >> 7) & 0x3
    }

    /// Number of message registers.
    pub const fn length(self) -> Word {
        self.0 & 0x7f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_land_at_the_bit_offsets_of_the_bitfield_file() {
        // Written from shared_types_64.bf: length bits 0-6, extraCaps 7-8, capsUnwrapped 9-11,
        // label 12-31.
        let m = MessageInfo::new(47, 5, 2, 3);
        assert_eq!(m.0, (47 << 12) | (5 << 9) | (2 << 7) | 3);
        assert_eq!(
            (m.label(), m.caps_unwrapped(), m.extra_caps(), m.length()),
            (47, 5, 2, 3)
        );
    }

    #[test]
    fn oversized_fields_do_not_spill_into_neighbours() {
        let m = MessageInfo::new(0, 0, 7, 200);
        assert_eq!(m.extra_caps(), 3);
        assert_eq!(m.length(), 200 & 0x7f);
        assert_eq!(m.label(), 0);
    }
}
