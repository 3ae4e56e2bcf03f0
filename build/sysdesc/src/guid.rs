//! GUIDs as validated text (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), kept in canonical lowercase.
//!
//! The description only needs to compare and print GUIDs; byte order on the wire is the driver's
//! business, so no binary form is fixed here.

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
