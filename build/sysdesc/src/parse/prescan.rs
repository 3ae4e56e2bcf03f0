//! A linear pass over the raw text, before the XML parser sees it, for the two shapes that would
//! make the parser itself slow: roxmltree compares each attribute of an element with the
//! element's earlier ones (time quadratic in the attributes of one element), and copies and
//! searches the namespaces in scope at elements (time growing with the declarations in scope).
//! No element of the format has more than 12 attributes and the format uses no namespaces, so
//! the limits here refuse nothing that could be valid and keep the parse linear.

/// Most attributes (namespace declarations included) an element may have.
pub(crate) const MAX_ATTRIBUTES: usize = 32;
/// Most namespace declarations (`xmlns`, `xmlns:*`) in a whole description.
pub(crate) const MAX_NAMESPACES: usize = 16;

/// What the pre-scan found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Excess<'t> {
    /// The start tag at byte offset `at`, element `name`, has more than [`MAX_ATTRIBUTES`].
    Attributes { at: usize, name: &'t str },
    /// The namespace declaration at byte offset `at` is one more than [`MAX_NAMESPACES`].
    Namespaces { at: usize },
}

/// Scans `text` once for an element with too many attributes or a namespace declaration too
/// many. Comments, CDATA sections and processing instructions are skipped; at a DTD the scan
/// stops (the XML parser refuses DTDs). Malformed text is left to the XML parser.
pub(crate) fn prescan(text: &str) -> Option<Excess<'_>> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut namespaces = 0;
    while let Some(off) = find(&b[i..], b"<") {
        let start = i + off;
        let rest = &b[start..];
        let skip_to = |close: &[u8]| find(rest, close).map(|e| start + e + close.len());
        i = if rest.starts_with(b"<!--") {
            skip_to(b"-->")?
        } else if rest.starts_with(b"<![CDATA[") {
            skip_to(b"]]>")?
        } else if rest.starts_with(b"<?") {
            skip_to(b"?>")?
        } else if rest.starts_with(b"<!") {
            return None;
        } else if rest.starts_with(b"</") {
            skip_to(b">")?
        } else {
            match start_tag(b, start, &mut namespaces) {
                Tag::End(end) => end,
                Tag::Unterminated => return None,
                Tag::TooManyAttributes => {
                    let name_end = (start + 1..b.len())
                        .find(|&k| b[k].is_ascii_whitespace() || b[k] == b'/' || b[k] == b'>')
                        .unwrap_or(b.len());
                    let name = text.get(start + 1..name_end).unwrap_or("");
                    return Some(Excess::Attributes { at: start, name });
                }
                Tag::TooManyNamespaces(at) => return Some(Excess::Namespaces { at }),
            }
        };
    }
    None
}

/// How a start tag ended.
enum Tag {
    /// At this offset (one past its `>`, or at a stray `<`).
    End(usize),
    /// The text ended inside it.
    Unterminated,
    /// It has more than [`MAX_ATTRIBUTES`].
    TooManyAttributes,
    /// The namespace declaration at this offset is one too many.
    TooManyNamespaces(usize),
}

/// Scans the start tag at `start`, counting its attributes and (into `namespaces`) its
/// namespace declarations.
fn start_tag(b: &[u8], start: usize, namespaces: &mut usize) -> Tag {
    let mut attrs = 0;
    let mut quote = None;
    for k in start + 1..b.len() {
        let c = b[k];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'>' => return Tag::End(k + 1),
                b'<' => return Tag::End(k),
                b'=' => {
                    attrs += 1;
                    if attrs > MAX_ATTRIBUTES {
                        return Tag::TooManyAttributes;
                    }
                    let (at, name) = attribute_name(b, start, k);
                    if name == b"xmlns" || name.starts_with(b"xmlns:") {
                        *namespaces += 1;
                        if *namespaces > MAX_NAMESPACES {
                            return Tag::TooManyNamespaces(at);
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Tag::Unterminated
}

/// The attribute name before the `=` at `eq` (whitespace between them skipped), and its offset.
fn attribute_name(b: &[u8], start: usize, eq: usize) -> (usize, &[u8]) {
    let mut end = eq;
    while end > start && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let mut begin = end;
    while begin > start && !matches!(b[begin - 1], b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'') {
        begin -= 1;
    }
    (begin, &b[begin..end])
}

/// The offset of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_descriptions_pass() {
        let xml = "<?xml version=\"1.0\"?>\n<!-- <a a=1 b=2> -->\n<system>\n  <memory_region name=\"r\" size=\"0x1000\" />\n  <x a='>' b=\"=\"><![CDATA[<y a=1 b=2 c=3>]]></x>\n</system>\n";
        assert_eq!(prescan(xml), None);
    }

    #[test]
    fn too_many_attributes_are_found_at_their_element() {
        let attrs: String = (0..=MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"1\""))
            .collect();
        let xml = format!("<system>\n<big{attrs} />\n</system>");
        assert_eq!(
            prescan(&xml),
            Some(Excess::Attributes { at: 9, name: "big" })
        );
        let ok: String = (0..MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"1\""))
            .collect();
        assert_eq!(prescan(&format!("<system{ok}></system>")), None);
    }

    #[test]
    fn namespace_declarations_are_counted_across_the_document() {
        let decl = |i: usize| format!("<e xmlns:n{i}=\"urn:{i}\" xmlns=\"urn:d\">");
        let open: String = (0..MAX_NAMESPACES / 2).map(decl).collect();
        assert_eq!(prescan(&open), None);
        let more = format!("{open}<f a=\"1\" xmlns:z=\"urn:z\">");
        assert_eq!(
            prescan(&more),
            Some(Excess::Namespaces {
                at: more.find("xmlns:z").unwrap()
            })
        );
    }

    #[test]
    fn a_dtd_or_unterminated_text_is_left_to_the_parser() {
        assert_eq!(prescan("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>"), None);
        assert_eq!(prescan("<x a=\"1"), None);
        assert_eq!(prescan("<!-- x"), None);
    }
}
