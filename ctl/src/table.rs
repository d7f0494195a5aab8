//! A tiny aligned-table printer: columns separated by two spaces, the first
//! column left-aligned and the others right-aligned (numbers), or every column
//! left-aligned (text), no trailing spaces.

/// How a column's cells are padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A table: one header row and any number of rows.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    text: bool,
}

impl Table {
    /// A table for numbers: first column left-aligned, the rest right-aligned.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new(), text: false }
    }

    /// A table for text: every column left-aligned.
    pub fn text<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table { text: true, ..Table::new(header) }
    }

    /// Appends a row. Rows may be shorter or longer than the header.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Number of rows (the header not counted).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    fn align(&self, col: usize) -> Align {
        if self.text || col == 0 {
            Align::Left
        } else {
            Align::Right
        }
    }

    /// The table as lines, each ending in a newline.
    pub fn render(&self) -> String {
        let all = || std::iter::once(&self.header).chain(self.rows.iter());
        let cols = all().map(Vec::len).max().unwrap_or(0);
        let mut width = vec![0usize; cols];
        for r in all() {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in all() {
            let mut line = String::new();
            for (i, w) in width.iter().enumerate() {
                let cell = r.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w - cell.chars().count();
                match self.align(i) {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_numbers_right_and_labels_left() {
        let mut t = Table::new(["NAME", "A", "TOTAL"]);
        t.row(["rx_packets", "1", "1.23M"]);
        t.row(["x", "100", "7"]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.render(),
            "NAME          A  TOTAL\n\
             rx_packets    1  1.23M\n\
             x           100      7\n"
        );
    }

    #[test]
    fn text_tables_pad_on_the_right_without_trailing_spaces() {
        let mut t = Table::text(["NAME", "PROTO"]);
        t.row(["echo", "udp"]);
        t.row(["a-long-name", ""]);
        assert_eq!(t.render(), "NAME         PROTO\necho         udp\na-long-name\n");
    }

    #[test]
    fn ragged_rows_do_not_panic() {
        let mut t = Table::new(["A"]);
        t.row(["x", "y", "z"]);
        t.row(Vec::<String>::new());
        assert_eq!(t.render(), "A\nx  y  z\n\n");
        assert_eq!(Table::new(Vec::<String>::new()).render(), "\n");
    }
}
