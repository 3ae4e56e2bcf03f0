//! Diagnostics: one problem in a description, with the file and line it is about.

use core::fmt;

/// What class of problem a diagnostic reports (lets tests and tools match without parsing text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file is not well-formed XML, or could not be read.
    Xml,
    /// An element Microkit (or the VMBus companion's format) does not know, or one in the wrong
    /// place.
    UnknownElement,
    /// An attribute the element does not have.
    UnknownAttribute,
    /// A required attribute is absent.
    MissingAttribute,
    /// An attribute value is malformed or out of range.
    BadValue,
    /// Elements in the wrong number (two `program_image`, a channel without two ends, ...).
    Structure,
    /// Two PDs, regions, virtual machines or domains share a name.
    DuplicateName,
    /// A reference to a PD, region or domain that does not exist.
    UnknownName,
    /// Two mappings (or a window and a mapping) overlap in one address space.
    Overlap,
    /// A size or address that is not a page multiple.
    Alignment,
    /// A channel, interrupt or child id that is reused in one PD.
    DuplicateId,
    /// A protected call to a PD of lower or equal priority.
    Priority,
    /// The VMBus wiring does not fit the description or itself (driver, pool, host, clients,
    /// windows, control pages, classes).
    Vmbus,
}

/// One problem: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to the parser.
    pub file: String,
    /// 1-based line the problem is about (0 when no line applies).
    pub line: u32,
    /// The class of problem.
    pub kind: ErrorKind,
    /// What is wrong, naming the element and the values involved.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub(crate) struct Sink {
    pub file: String,
    pub diags: Vec<Diagnostic>,
}

impl Sink {
    pub fn new(file: &str) -> Self {
        Sink {
            file: file.to_string(),
            diags: Vec::new(),
        }
    }

    pub fn push(&mut self, line: u32, kind: ErrorKind, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            kind,
            message: message.into(),
        });
    }
}

/// At most this many bytes of a value taken from the description appear in a message.
pub const MAX_SHOWN: usize = 64;

/// A value from the description as a message shows it: cut after [`MAX_SHOWN`] bytes (at a
/// character boundary) with the full length noted, control characters escaped, so that one
/// problem stays one short line however large or odd the value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a> {
    s: &'a str,
    max: usize,
}

/// `s` as a message shows it (see [`Shown`]).
pub(crate) fn shown(s: &str) -> Shown<'_> {
    Shown { s, max: MAX_SHOWN }
}

/// `s` cut after `max` bytes rather than [`MAX_SHOWN`] (for a whole message from the XML
/// parser, which quotes names from the text).
pub(crate) fn shown_max(s: &str, max: usize) -> Shown<'_> {
    Shown { s, max }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        let mut cut = s.len().min(self.max);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        for c in s[..cut].chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if cut < s.len() {
            write!(f, "…({} bytes)", s.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn short_values_are_shown_whole() {
        assert_eq!(shown("vmbus_driver").to_string(), "vmbus_driver");
        assert_eq!(shown(&"x".repeat(64)).to_string(), "x".repeat(64));
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        assert_eq!(
            shown(&"x".repeat(65)).to_string(),
            format!("{}…(65 bytes)", "x".repeat(64))
        );
        // 'é' is two bytes: the cut falls before the one that would straddle byte 64.
        let s = format!("{}é", "x".repeat(63));
        assert_eq!(
            shown(&s).to_string(),
            format!("{}…(65 bytes)", "x".repeat(63))
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("a\nb\tc").to_string(), "a\\nb\\tc");
    }
}
