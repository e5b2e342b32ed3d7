//! Layout for the human summary: tables whose column widths come from their content (a name
//! too long for its column gets a line of its own), and prose wrapped with a hanging indent.

/// How a column's cells line up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Align {
    Left,
    Right,
}

/// Rows of cells printed in aligned columns, widths taken from the widest cell of each.
pub struct Table {
    indent: usize,
    align: Vec<Align>,
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
    /// Widest the first column may be: a longer first cell is printed on a line of its own and
    /// its row's other cells on the next line, so one long name cannot push every column out.
    first_max: usize,
}

/// Display width of a cell (µ, – and → are one column each).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

impl Table {
    pub fn new(indent: usize, align: &[Align]) -> Self {
        Table {
            indent,
            align: align.to_vec(),
            header: None,
            rows: Vec::new(),
            first_max: usize::MAX,
        }
    }

    /// Column titles, printed above the rows and counted in the widths.
    pub fn header(mut self, titles: &[&str]) -> Self {
        self.header = Some(titles.iter().map(|t| t.to_string()).collect());
        self
    }

    /// Caps the first column's width (see `first_max`).
    pub fn first_column_at_most(mut self, max: usize) -> Self {
        self.first_max = max;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table's lines, each ending in a newline; nothing when it has no rows.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let columns = self.align.len();
        let mut widths = vec![0; columns];
        for row in self.header.iter().chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(columns) {
                let w = width(cell);
                // Cells that go on their own line do not widen the first column.
                if i == 0 && w > self.first_max {
                    continue;
                }
                widths[i] = widths[i].max(w);
            }
        }
        // Columns empty in every row take no room (and no separator).
        let used: Vec<bool> = widths.iter().map(|w| *w > 0).collect();
        let mut out = String::new();
        let pad = " ".repeat(self.indent);
        for row in self.header.iter().chain(&self.rows) {
            let mut cells: Vec<&str> = row.iter().map(String::as_str).collect();
            cells.resize(columns, "");
            if width(cells[0]) > self.first_max {
                out.push_str(&pad);
                out.push_str(cells[0]);
                out.push('\n');
                cells[0] = "";
            }
            let mut line = pad.clone();
            let mut first = true;
            for (i, cell) in cells.iter().enumerate() {
                if !used[i] {
                    continue;
                }
                if !first {
                    line.push_str("  ");
                }
                first = false;
                let fill = " ".repeat(widths[i].saturating_sub(width(cell)));
                match self.align[i] {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&fill);
                    }
                    Align::Right => {
                        line.push_str(&fill);
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

/// `text` broken at spaces into lines of at most `columns` characters (a word longer than
/// that stays whole): the first line starts with `first`, the others with `rest`. Each line
/// ends in a newline.
pub fn wrap(text: &str, columns: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && width(&line) + 1 + width(word) > columns {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// `label` followed by `items` joined with ", ", wrapped between items (an item is never
/// broken) and aligned under the first item.
pub fn list(label: &str, items: &[String], columns: usize, indent: usize) -> String {
    let first = format!("{}{label} ", " ".repeat(indent));
    let rest = " ".repeat(width(&first));
    items_wrapped(items, columns, &first, &rest)
}

/// `items` joined with ", ", broken between items into lines of at most `columns` characters
/// where possible: the first line starts with `first`, the others with `rest`.
pub fn items_wrapped(items: &[String], columns: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        if !empty && width(&line) + 1 + width(&piece) > columns {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&piece);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Character column at which `needle` starts in `line`.
    fn column(line: &str, needle: &str) -> usize {
        let byte = line
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
        width(&line[..byte])
    }

    #[test]
    fn columns_take_the_width_of_their_widest_cell() {
        let mut t = Table::new(2, &[Align::Left, Align::Right, Align::Left])
            .header(&["name", "value", "unit"]);
        t.row(vec!["a".into(), "1".into(), "s".into()]);
        t.row(vec![
            "a-much-longer-name".into(),
            "12345".into(),
            "µs".into(),
        ]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3, "{s}");
        // Right-aligned values end in the same column, units start in the same column.
        let ends: Vec<usize> = ["value", "1 ", "12345"]
            .iter()
            .zip(&lines)
            .map(|(v, l)| column(l, v) + width(v.trim_end()))
            .collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{s}");
        assert_eq!(column(lines[1], "s"), column(lines[2], "µs"), "{s}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{s}");
    }

    #[test]
    fn a_name_past_the_cap_gets_its_own_line() {
        let long = "x".repeat(60);
        let mut t = Table::new(2, &[Align::Left, Align::Right]).first_column_at_most(20);
        t.row(vec!["short".into(), "1".into()]);
        t.row(vec![long.clone(), "22".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1], format!("  {long}"), "{s}");
        assert_eq!(
            column(lines[0], "1") + 1,
            column(lines[2], "22") + 2,
            "values end in one column: {s}"
        );
        assert!(width(lines[0]) < 30, "the cap held the column narrow: {s}");
    }

    #[test]
    fn empty_columns_take_no_room() {
        let mut t = Table::new(0, &[Align::Left, Align::Left, Align::Left]);
        t.row(vec!["a".into(), String::new(), "c".into()]);
        assert_eq!(t.render(), "a  c\n");
    }

    #[test]
    fn prose_wraps_with_a_hanging_indent() {
        let s = wrap("one two three four five six", 12, "- ", "  ");
        assert_eq!(s, "- one two\n  three four\n  five six\n");
        assert!(s.lines().all(|l| width(l) <= 12), "{s}");
        let s = list("also zero:", &["a".into(), "b".into()], 80, 2);
        assert_eq!(s, "  also zero: a, b\n");
        // Lists break between items, never inside one.
        let items: Vec<String> = ["nginx [1] 5 times", "wrk [2] 3 times", "idle [0] 1 times"]
            .iter()
            .map(|i| i.to_string())
            .collect();
        let s = list("woken by:", &items, 43, 0);
        assert_eq!(
            s,
            "woken by: nginx [1] 5 times,\n          wrk [2] 3 times, idle [0] 1 times\n"
        );
    }
}
