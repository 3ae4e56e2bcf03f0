//! Line numbers of byte offsets, from one table built in a single pass over the text.
//!
//! roxmltree's `Document::text_pos_at` counts the line breaks from the start of the text on every
//! call; calling it for every element made checking quadratic in the size of the description.

/// The byte offset at which every line starts.
#[derive(Debug)]
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    /// Scans `text` once.
    pub fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { starts }
    }

    /// The 1-based line of byte offset `pos` (as roxmltree counts: one more than the line feeds
    /// before `pos`), by binary search.
    pub fn line(&self, pos: usize) -> u32 {
        let n = self.starts.partition_point(|&s| s <= pos);
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn lines_agree_with_roxmltree_at_every_offset() {
        let text = "<system>\n  <a x=\"1\"\r\n   y=\"2\" />\n\n<!-- é\n -->\n</system>\n";
        let doc = roxmltree::Document::parse(text).unwrap();
        let lines = Lines::new(text);
        for pos in 0..=text.len() + 3 {
            if !text.is_char_boundary(pos.min(text.len())) {
                continue;
            }
            assert_eq!(lines.line(pos), doc.text_pos_at(pos).row, "offset {pos}");
        }
    }

    #[test]
    fn an_empty_text_has_one_line() {
        assert_eq!(Lines::new("").line(0), 1);
        assert_eq!(Lines::new("").line(9), 1);
    }
}
