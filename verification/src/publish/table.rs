//! The Markdown tables of a benchmark's results file, and the figures in
//! their cells, for the summary ([`super::goals`]).

/// One table: its header cells and its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The header cells.
    pub header: Vec<String>,
    /// The body rows, as many cells each as the header.
    pub rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// Every table of `text`, in order.
pub fn tables(text: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let is_rule = |l: &str| l.starts_with("|---") || l.starts_with("| ---");
        if lines[i].starts_with('|') && i + 1 < lines.len() && is_rule(lines[i + 1]) {
            let header = cells(lines[i]);
            let mut rows = Vec::new();
            i += 2;
            while i < lines.len() && lines[i].starts_with('|') {
                // A short row is padded, so that a cell of a malformed file
                // reads as empty (no figure) instead of out of bounds.
                let mut row = cells(lines[i]);
                row.resize(row.len().max(header.len()), String::new());
                rows.push(row);
                i += 1;
            }
            out.push(Table { header, rows });
        } else {
            i += 1;
        }
    }
    out
}

impl Table {
    /// The index of column `name`: the header cell equal to it, else the one
    /// header cell that starts with it.
    pub fn col(&self, name: &str) -> Result<usize, String> {
        if let Some(i) = self.header.iter().position(|h| h == name) {
            return Ok(i);
        }
        let found: Vec<usize> = (0..self.header.len())
            .filter(|&i| self.header[i].starts_with(name))
            .collect();
        match found[..] {
            [i] => Ok(i),
            [] => Err(format!("no column `{name}`")),
            _ => Err(format!("column `{name}` is ambiguous")),
        }
    }

    /// The rows whose cell in column `key` satisfies `pred`.
    pub fn rows_where(
        &self,
        key: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<Vec<&[String]>, String> {
        let k = self.col(key)?;
        Ok(self
            .rows
            .iter()
            .filter(|r| r.get(k).is_some_and(|c| pred(c)))
            .map(Vec::as_slice)
            .collect())
    }

    /// The cell in column `col` of the one row whose `key` cell is `value`,
    /// else of the one row whose `key` cell starts with `value`.
    pub fn cell(&self, key: &str, value: &str, col: &str) -> Result<&str, String> {
        let c = self.col(col)?;
        let mut rows = self.rows_where(key, |k| k == value)?;
        if rows.is_empty() {
            rows = self.rows_where(key, |k| k.starts_with(value))?;
        }
        match rows[..] {
            [r] => r
                .get(c)
                .map(String::as_str)
                .ok_or_else(|| format!("row `{value}` has no column `{col}`")),
            [] => Err(format!("no row `{value}` in column `{key}`")),
            _ => Err(format!("{} rows `{value}` in column `{key}`", rows.len())),
        }
    }

    /// The cells of column `col` in `rows`.
    pub fn column<'a>(&self, rows: &[&'a [String]], col: &str) -> Result<Vec<&'a str>, String> {
        let c = self.col(col)?;
        rows.iter()
            .map(|r| {
                r.get(c)
                    .map(String::as_str)
                    .ok_or_else(|| format!("a row without column `{col}`"))
            })
            .collect()
    }
}

/// The first table of `tables` that has column `col`.
pub fn with_column<'a>(tables: &'a [Table], col: &str) -> Result<&'a Table, String> {
    tables
        .iter()
        .find(|t| t.col(col).is_ok())
        .ok_or_else(|| format!("no table with a column `{col}`"))
}

/// The figure a cell starts with: a time in seconds (`40 ns`, `4.03 µs`,
/// `1.10 s`), a percentage as a fraction (`55.4%`), a ratio (`1.04x`) or a
/// plain number; `None` for a cell that gives none (`n/a ...`, `-`).
pub fn value(cell: &str) -> Result<Option<f64>, String> {
    let mut words = cell.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    if first == "n/a" || first == "-" {
        return Ok(None);
    }
    let unit = words.next().unwrap_or("");
    let (num, scale) = if let Some(n) = first.strip_suffix('%') {
        (n, 0.01)
    } else if let Some(n) = first.strip_suffix('x') {
        (n, 1.0)
    } else {
        let scale = match unit {
            "ns" => 1e-9,
            "µs" | "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            _ => 1.0,
        };
        (first, scale)
    };
    num.replace(',', "")
        .parse::<f64>()
        .map(|v| Some(v * scale))
        .map_err(|_| format!("`{cell}` gives no figure"))
}

/// [`value`], required.
pub fn number(cell: &str) -> Result<f64, String> {
    value(cell)?.ok_or_else(|| format!("`{cell}` gives no figure"))
}

/// The cells' smallest and largest figures, as `a to b` in the cells' own
/// text (one cell's text when they are equal), and their values.
pub fn range(cells: &[&str]) -> Result<(String, f64, f64), String> {
    let mut vals = Vec::new();
    for c in cells {
        vals.push((number(c)?, *c));
    }
    let lo = vals
        .iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or("no cells")?;
    let hi = vals
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or("no cells")?;
    let text = if lo.1 == hi.1 {
        lo.1.to_string()
    } else {
        format!("{} to {}", lo.1, hi.1)
    };
    Ok((text, lo.0, hi.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "intro\n\n| k | t (ms) | r |\n|---|---|---|\n| a | 40 ns | 1.00x |\n| b | 1.10 s | 55.4% |\n\nnote\n\n| x |\n|---|\n| n/a without it |\n";

    #[test]
    fn tables_cells_and_figures() {
        let t = tables(TEXT);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].header, ["k", "t (ms)", "r"]);
        assert_eq!(t[0].cell("k", "b", "t").unwrap(), "1.10 s");
        assert!(t[0].cell("k", "c", "t").is_err());
        assert!(t[0].col("zz").is_err());
        assert_eq!(with_column(&t, "x").unwrap().rows.len(), 1);
        assert_eq!(value("40 ns").unwrap(), Some(40e-9));
        assert_eq!(value("4.5 µs").unwrap(), Some(4.5e-6));
        assert_eq!(value("15274x").unwrap(), Some(15274.0));
        assert_eq!(value("55.4%").unwrap(), Some(0.554));
        assert_eq!(value("0.22").unwrap(), Some(0.22));
        assert_eq!(value("n/a without it").unwrap(), None);
        assert!(value("met").is_err());
        let (text, lo, hi) = range(&["40 ns", "1.10 s", "270 ns"]).unwrap();
        assert_eq!((text.as_str(), lo, hi), ("40 ns to 1.10 s", 40e-9, 1.10));
        assert_eq!(range(&["12 ns", "12 ns"]).unwrap().0, "12 ns");
        let short = tables("| a | b |\n|---|---|\n| 1 |\n");
        assert_eq!(short[0].rows[0], ["1", ""]);
        assert!(number(short[0].cell("a", "1", "b").unwrap()).is_err());
    }
}
