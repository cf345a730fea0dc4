//! A strict reader of numeric CSV tables (RFC 4180 records of numbers), with
//! the same promise as the IDX reader: every violation is an error naming the
//! file, the line and the column (field number, 1-based, and the header's
//! name when there is one); a damaged file never panics.
//!
//! Accepted: UTF-8 (a leading byte-order mark is skipped), `\n` or `\r\n`
//! line ends, a configurable delimiter (`,` by default), an optional header
//! row of unique, non-empty names, fields optionally in double quotes (`""`
//! inside quotes is one quote; a quoted field does not span lines), blanks
//! around a number, and empty lines at the end of the file. Every other row
//! must have as many fields as the first, and every field must be a finite
//! number as Rust's `f32::from_str` reads it (`1`, `-2.5`, `3e-4`; not
//! `NaN`, `inf` or an empty field).
//!
//! ```
//! use kiln_core::data::csv::{parse_csv, CsvOptions};
//! let t = parse_csv(b"a,b,label\n0.5,1,2\n-1,2e1,0\n", &CsvOptions::default()).unwrap();
//! assert_eq!((t.rows(), t.columns), (2, 3));
//! let d = t.dataset(t.column("label").unwrap(), 3).unwrap();
//! assert_eq!((d.x, d.y, d.dim), (vec![0.5, 1.0, -1.0, 20.0], vec![2, 0], 2));
//! let e = parse_csv(b"a,b\n1,x\n", &CsvOptions::default()).unwrap_err();
//! assert_eq!(e, "line 2, column 2 (`b`): `x` is not a number");
//! ```

use super::Dataset;
use crate::error::{Error, Result};
use std::path::Path;

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The first row holds column names (default `true`).
    pub header: bool,
    /// The field separator (default `b','`); must not be `"`, `\r` or `\n`.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
        }
    }
}

/// A numeric table read from CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names (empty without a header row).
    pub header: Vec<String>,
    /// Number of columns.
    pub columns: usize,
    /// The values, row-major (`rows() · columns`).
    pub values: Vec<f32>,
    /// The line of the file each row came from (1-based), for messages.
    pub lines: Vec<usize>,
}

impl Table {
    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.columns..(r + 1) * self.columns]
    }
    fn where_(&self, row: usize, col: usize) -> String {
        let line = self.lines.get(row).copied().unwrap_or(0);
        match self.header.get(col) {
            Some(name) => format!("line {line}, column {} (`{name}`)", col + 1),
            None => format!("line {line}, column {}", col + 1),
        }
    }
    /// A classification data set: column `label` holds class indices (whole
    /// numbers in `0..classes`), the other columns, in order, the features.
    /// An error names the line and column of the first bad label.
    pub fn dataset(&self, label: usize, classes: usize) -> std::result::Result<Dataset, String> {
        if label >= self.columns {
            return Err(format!(
                "label column {} does not exist: the table has {} columns",
                label + 1,
                self.columns
            ));
        }
        let mut x = Vec::with_capacity(self.rows() * (self.columns - 1));
        let mut y = Vec::with_capacity(self.rows());
        for r in 0..self.rows() {
            let row = self.row(r);
            let l = row[label];
            if !(l >= 0.0 && l.fract() == 0.0 && (l as usize) < classes) {
                return Err(format!(
                    "{}: label {l} is not a class index in 0..{classes}",
                    self.where_(r, label)
                ));
            }
            y.push(l as u32);
            x.extend(
                row.iter()
                    .enumerate()
                    .filter(|(c, _)| *c != label)
                    .map(|(_, v)| *v),
            );
        }
        Ok(Dataset {
            x,
            y,
            dim: self.columns - 1,
        })
    }
}

/// Reads a CSV table; errors are [`Error::Format`] naming the file, line and column.
pub fn read_csv(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Table> {
    let path = path.as_ref();
    let bytes = crate::data::read_file(path)?;
    parse_csv(&bytes, opts).map_err(|msg| Error::Format {
        path: path.to_path_buf(),
        msg,
    })
}

/// Reads a CSV table as a classification data set with the class index in
/// column `label` (by header name) and `classes` classes.
pub fn read_csv_dataset(
    path: impl AsRef<Path>,
    opts: &CsvOptions,
    label: &str,
    classes: usize,
) -> Result<Dataset> {
    let path = path.as_ref();
    let t = read_csv(path, opts)?;
    let fmt = |msg| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    let col = t.column(label).ok_or_else(|| {
        fmt(format!(
            "no column named `{label}` (columns: {})",
            t.header.join(", ")
        ))
    })?;
    t.dataset(col, classes).map_err(fmt)
}

/// Splits one line into fields (unquoting), or says what is wrong and where.
fn fields(
    line: &str,
    lno: usize,
    delim: char,
    out: &mut Vec<String>,
) -> std::result::Result<(), String> {
    out.clear();
    let mut chars = line.chars().peekable();
    let mut col = 1;
    loop {
        let mut f = String::new();
        // Leading blanks before a quote are allowed.
        while matches!(chars.peek(), Some(' ' | '\t')) && delim != ' ' && delim != '\t' {
            f.push(chars.next().unwrap_or(' '));
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            f.clear();
            loop {
                match chars.next() {
                    None => return Err(format!("line {lno}, column {col}: unterminated quoted field (a quoted field must end on its line)")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        f.push('"');
                    }
                    Some('"') => break,
                    Some(c) => f.push(c),
                }
            }
            while matches!(chars.peek(), Some(' ' | '\t')) && delim != ' ' && delim != '\t' {
                chars.next();
            }
            match chars.next() {
                None => {
                    out.push(f);
                    return Ok(());
                }
                Some(c) if c == delim => {}
                Some(c) => return Err(format!("line {lno}, column {col}: {c:?} after the closing quote (expected {delim:?} or the end of the line)")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(f);
                        return Ok(());
                    }
                    Some(c) if c == delim => break,
                    Some('"') => {
                        return Err(format!(
                            "line {lno}, column {col}: a quote inside an unquoted field"
                        ))
                    }
                    Some('\r') => {
                        return Err(format!(
                            "line {lno}, column {col}: a carriage return inside a line"
                        ))
                    }
                    Some(c) => f.push(c),
                }
            }
        }
        out.push(f);
        col += 1;
    }
}

/// Decodes CSV bytes; the error names the line and column.
pub fn parse_csv(bytes: &[u8], opts: &CsvOptions) -> std::result::Result<Table, String> {
    if matches!(opts.delimiter, b'"' | b'\r' | b'\n') || !opts.delimiter.is_ascii() {
        return Err(format!(
            "delimiter {:?} is not allowed",
            opts.delimiter as char
        ));
    }
    let delim = opts.delimiter as char;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        format!("line {line}, byte {col}: not valid UTF-8")
    })?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    // Empty lines at the end are allowed (a final newline, or a few).
    while lines.last().is_some_and(|l| l.is_empty() || *l == "\r") {
        lines.pop();
    }
    let mut t = Table {
        header: Vec::new(),
        columns: 0,
        values: Vec::new(),
        lines: Vec::new(),
    };
    let mut buf = Vec::new();
    let mut first_line = 0;
    for (i, raw) in lines.iter().enumerate() {
        let lno = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            return Err(format!("line {lno}: empty line"));
        }
        fields(line, lno, delim, &mut buf)?;
        if i == 0 {
            t.columns = buf.len();
            first_line = lno;
            if opts.header {
                for (c, name) in buf.iter().enumerate() {
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(format!("line {lno}, column {}: empty column name", c + 1));
                    }
                    if let Some(p) = t.header.iter().position(|h| h == name) {
                        return Err(format!(
                            "line {lno}, column {}: column name `{name}` repeats column {}",
                            c + 1,
                            p + 1
                        ));
                    }
                    t.header.push(name.to_string());
                }
                continue;
            }
        }
        if buf.len() != t.columns {
            return Err(format!(
                "line {lno}: {} field{}, expected {} (as on line {first_line})",
                buf.len(),
                if buf.len() == 1 { "" } else { "s" },
                t.columns
            ));
        }
        for (c, f) in buf.iter().enumerate() {
            let s = f.trim_matches(|ch| ch == ' ' || ch == '\t');
            let at = || match t.header.get(c) {
                Some(name) => format!("line {lno}, column {} (`{name}`)", c + 1),
                None => format!("line {lno}, column {}", c + 1),
            };
            if s.is_empty() {
                return Err(format!("{}: empty field", at()));
            }
            match s.parse::<f32>() {
                Ok(v) if v.is_finite() => t.values.push(v),
                Ok(v) => return Err(format!("{}: {v} is not a finite number", at())),
                Err(_) => {
                    return Err(format!(
                        "{}: `{}` is not a number",
                        at(),
                        s.chars().take(40).collect::<String>()
                    ))
                }
            }
        }
        t.lines.push(lno);
    }
    if t.lines.is_empty() {
        return Err(if lines.is_empty() {
            "empty file: no rows".to_string()
        } else {
            "no data rows after the header".to_string()
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> std::result::Result<Table, String> {
        parse_csv(s.as_bytes(), &CsvOptions::default())
    }

    #[test]
    fn reads_a_good_table() {
        let t = p("\u{feff}x, \"y\" ,label\r\n 1.5 ,\"-2\",0\r\n3,4e0,1\n\n").unwrap();
        assert_eq!(t.header, ["x", "y", "label"]);
        assert_eq!(
            (t.values.clone(), t.lines.clone()),
            (vec![1.5, -2.0, 0.0, 3.0, 4.0, 1.0], vec![2, 3])
        );
        let d = t.dataset(2, 2).unwrap();
        assert_eq!((d.x, d.y), (vec![1.5, -2.0, 3.0, 4.0], vec![0, 1]));
        // No header, semicolons.
        let t = parse_csv(
            b"1;2\n3;4",
            &CsvOptions {
                header: false,
                delimiter: b';',
            },
        )
        .unwrap();
        assert_eq!(
            (t.rows(), t.columns, t.values),
            (2, 2, vec![1.0, 2.0, 3.0, 4.0])
        );
        // A quoted name with a comma and an escaped quote.
        let t = p("\"a,b\",\"say \"\"hi\"\"\"\n1,2\n").unwrap();
        assert_eq!(t.header, ["a,b", "say \"hi\""]);
    }

    #[test]
    fn names_line_and_column_of_every_fault() {
        let e = |s: &str| p(s).unwrap_err();
        assert_eq!(
            e("a,b\n1,2\n3\n"),
            "line 3: 1 field, expected 2 (as on line 1)"
        );
        assert_eq!(
            e("a,b\n1,2,3\n"),
            "line 2: 3 fields, expected 2 (as on line 1)"
        );
        assert_eq!(e("a,b\n1,\n"), "line 2, column 2 (`b`): empty field");
        assert_eq!(
            e("a,b\n1,NaN\n"),
            "line 2, column 2 (`b`): NaN is not a finite number"
        );
        assert_eq!(
            e("a,b\n1,1e39\n"),
            "line 2, column 2 (`b`): inf is not a finite number"
        );
        assert_eq!(e("a,b\n\n1,2\n"), "line 2: empty line");
        assert_eq!(
            e("a,b\n1,\"2\n"),
            "line 2, column 2: unterminated quoted field (a quoted field must end on its line)"
        );
        assert_eq!(
            e("a,b\n1,\"2\"x\n"),
            "line 2, column 2: 'x' after the closing quote (expected ',' or the end of the line)"
        );
        assert_eq!(
            e("a,b\n1,2\"\n"),
            "line 2, column 2: a quote inside an unquoted field"
        );
        assert_eq!(
            e("a,a\n1,2\n"),
            "line 1, column 2: column name `a` repeats column 1"
        );
        assert_eq!(e("a,\n1,2\n"), "line 1, column 2: empty column name");
        assert_eq!(e(""), "empty file: no rows");
        assert_eq!(e("a,b\n"), "no data rows after the header");
        assert_eq!(
            e("a,b\n1\r2,3\n"),
            "line 2, column 1: a carriage return inside a line"
        );
        assert_eq!(
            parse_csv(b"a\n1\n\xff\n", &CsvOptions::default()).unwrap_err(),
            "line 3, byte 1: not valid UTF-8"
        );
        let t = p("a,label\n1,0\n2,1.5\n").unwrap();
        assert_eq!(
            t.dataset(1, 3).unwrap_err(),
            "line 3, column 2 (`label`): label 1.5 is not a class index in 0..3"
        );
        assert_eq!(
            t.dataset(1, 1).unwrap_err(),
            "line 3, column 2 (`label`): label 1.5 is not a class index in 0..1"
        );
        assert!(t.dataset(2, 3).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("kiln-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.csv");
        std::fs::write(&f, "a,label\n1,0\n2,x\n").unwrap();
        let e = read_csv(&f, &CsvOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("bad.csv: line 3, column 2 (`label`): `x` is not a number"),
            "{e}"
        );
        std::fs::write(&f, "a,label\n1,0\n2,7\n").unwrap();
        let e = read_csv_dataset(&f, &CsvOptions::default(), "label", 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "bad.csv: line 3, column 2 (`label`): label 7 is not a class index in 0..3"
            ),
            "{e}"
        );
        let e = read_csv_dataset(&f, &CsvOptions::default(), "class", 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no column named `class` (columns: a, label)"),
            "{e}"
        );
        let d = read_csv_dataset(&f, &CsvOptions::default(), "a", 3).unwrap();
        assert_eq!((d.x, d.y), (vec![0.0, 7.0], vec![1, 2]));
        assert!(read_csv(dir.join("missing.csv"), &CsvOptions::default())
            .unwrap_err()
            .to_string()
            .contains("missing.csv"));
    }
}
