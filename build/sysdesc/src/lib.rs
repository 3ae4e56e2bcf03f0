//! The system description: parse, validate and generate from system.xml.
