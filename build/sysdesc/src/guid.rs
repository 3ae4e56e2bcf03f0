//! GUIDs as validated text (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), kept in canonical lowercase.
//!
//! The description compares and prints GUIDs as text; [`Guid::bytes`] gives the VMBus wire form
//! (that of `vmbus_driver::guid::Guid`) for the generated PD configuration.

use core::fmt;

/// A GUID in canonical lowercase text form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(String);

/// Why a GUID string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuidError {
    /// Not 36 characters long (braces are not accepted).
    Length(usize),
    /// A `-` is missing at this character offset.
    Dash(usize),
    /// The character at this offset is not a hexadecimal digit.
    NotHex(usize),
}

impl fmt::Display for GuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuidError::Length(n) => write!(
                f,
                "is {n} characters long, expected 36 (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
            ),
            GuidError::Dash(i) => write!(f, "needs '-' at offset {i}"),
            GuidError::NotHex(i) => write!(f, "has a non-hexadecimal character at offset {i}"),
        }
    }
}

impl Guid {
    /// Parses `8-4-4-4-12` hexadecimal text (either case).
    pub fn parse(s: &str) -> Result<Guid, GuidError> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(GuidError::Length(s.chars().count()));
        }
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(GuidError::Dash(i));
                }
            } else if !c.is_ascii_hexdigit() {
                return Err(GuidError::NotHex(i));
            }
        }
        Ok(Guid(s.to_ascii_lowercase()))
    }

    /// The canonical lowercase text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 16 bytes in VMBus wire order: the first three fields little-endian, the last eight
    /// bytes as written (the layout of `vmbus_driver::guid::Guid`).
    pub fn bytes(&self) -> [u8; 16] {
        let hex: Vec<u8> = self
            .0
            .bytes()
            .filter(|&c| c != b'-')
            .map(|c| match c {
                b'0'..=b'9' => c - b'0',
                _ => c - b'a' + 10,
            })
            .collect();
        let mut text = [0u8; 16];
        for (i, b) in text.iter_mut().enumerate() {
            *b = hex[2 * i] << 4 | hex[2 * i + 1];
        }
        let mut out = text;
        out[..4].copy_from_slice(&[text[3], text[2], text[1], text[0]]);
        out[4..6].copy_from_slice(&[text[5], text[4]]);
        out[6..8].copy_from_slice(&[text[7], text[6]]);
        out
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mixed_case_and_canonicalises() {
        let g = Guid::parse("57164F39-9115-4E78-AB55-382F3BD5422D").unwrap();
        assert_eq!(g.as_str(), "57164f39-9115-4e78-ab55-382f3bd5422d");
    }

    #[test]
    fn bytes_are_in_wire_order() {
        let g = Guid::parse("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        assert_eq!(
            g.bytes(),
            [
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
    }

    #[test]
    fn refuses_malformed_text() {
        assert_eq!(
            Guid::parse("{57164f39-9115-4e78-ab55-382f3bd5422d}"),
            Err(GuidError::Length(38))
        );
        assert_eq!(
            Guid::parse("57164f39x9115-4e78-ab55-382f3bd5422d"),
            Err(GuidError::Dash(8))
        );
        assert_eq!(
            Guid::parse("57164f39-9115-4e78-ab55-382f3bd5422g"),
            Err(GuidError::NotHex(35))
        );
    }
}
