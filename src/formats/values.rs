//! Values from a file: one float per line (blank lines and `#` comments skipped), or one
//! column of a CSV with a header (read with the `csv` crate, so quoted fields may hold commas,
//! quotes and line breaks). Used by `driftgauge eval` and `reference: {file: ...}`.

use crate::formats::{clip, excerpt};

/// What is wrong with a values file. Input is quoted as a short excerpt ([`excerpt`]): a bad
/// line of a 1 GiB file makes a message of a few dozen characters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValuesError {
    #[error("line {line}{}: expected a number, got {text}", in_column(column))]
    NotANumber {
        line: usize,
        /// The CSV column read, if any.
        column: Option<String>,
        /// The field, as [`excerpt`] quotes it.
        text: String,
    },
    #[error("line {line}{}: value must be finite, got {text}", in_column(column))]
    NotFinite {
        line: usize,
        /// The CSV column read, if any.
        column: Option<String>,
        /// The field, as [`excerpt`] quotes it.
        text: String,
    },
    #[error("no values")]
    Empty,
    /// `column` quoted, `header` clipped.
    #[error("column {column} is not in the header (columns: {header})")]
    NoSuchColumn { column: String, header: String },
    #[error(
        "line {line}: the row has {fields} field(s), none for column {column:?} (field {field})"
    )]
    ShortRow {
        line: usize,
        column: String,
        /// The column's 1-based position in the header.
        field: usize,
        /// How many fields the row has.
        fields: usize,
    },
    #[error("line {line}: unreadable CSV: {reason}")]
    Csv { line: usize, reason: String },
}

fn in_column(column: &Option<String>) -> String {
    match column {
        Some(c) => format!(", column {c:?}"),
        None => String::new(),
    }
}

/// Parses values. With `column`, the input is CSV: its first record (blank lines and lines
/// starting with `#` skipped) is the header, and the named column is read from every
/// following record. Fields are trimmed; quoting follows RFC 4180 (`"1,5"` is one field).
pub fn parse_values(text: &str, column: Option<&str>) -> Result<Vec<f64>, ValuesError> {
    let out = match column {
        None => plain_values(text)?,
        Some(col) => csv_column(text, col)?,
    };
    if out.is_empty() {
        return Err(ValuesError::Empty);
    }
    Ok(out)
}

/// One float per line.
fn plain_values(text: &str) -> Result<Vec<f64>, ValuesError> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(line, l)| number(l, line, None))
        .collect()
}

/// The column `col` of CSV text.
fn csv_column(text: &str, col: &str) -> Result<Vec<f64>, ValuesError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut lines = LineCounter {
        text: text.as_bytes(),
        byte: 0,
        line: 1,
    };
    let mut next = |record: &mut csv::StringRecord| -> Result<Option<usize>, ValuesError> {
        loop {
            let more = reader.read_record(record).map_err(|e| ValuesError::Csv {
                line: e.position().map_or(0, |p| lines.at(p.byte())),
                reason: e.to_string(),
            })?;
            if !more {
                return Ok(None);
            }
            // A line of spaces is a record of one empty field: skipped like a blank line.
            if record.len() == 1 && record[0].is_empty() {
                continue;
            }
            return Ok(Some(record.position().map_or(0, |p| lines.at(p.byte()))));
        }
    };
    if next(&mut record)?.is_none() {
        return Err(ValuesError::Empty);
    }
    let index = record
        .iter()
        .position(|h| h == col)
        .ok_or_else(|| ValuesError::NoSuchColumn {
            column: excerpt(col),
            header: clip(&record.iter().collect::<Vec<_>>().join(", ")),
        })?;
    let mut out = Vec::new();
    while let Some(line) = next(&mut record)? {
        let field = record.get(index).ok_or_else(|| ValuesError::ShortRow {
            line,
            column: col.to_string(),
            field: index + 1,
            fields: record.len(),
        })?;
        out.push(number(field, line, Some(col))?);
    }
    Ok(out)
}

/// 1-based line numbers of records, from the byte offsets the reader gives, which only grow.
/// A record's offset is where the reader started on it: blank lines and comments before the
/// record are skipped here as the reader skips them. (The reader's own line count leaves
/// blank lines out.)
struct LineCounter<'a> {
    text: &'a [u8],
    byte: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn at(&mut self, byte: u64) -> usize {
        let mut at = usize::try_from(byte).map_or(self.text.len(), |b| b.min(self.text.len()));
        loop {
            match self.text.get(at) {
                Some(b'\n' | b'\r') => at += 1,
                Some(b'#') => {
                    at = self.text[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(self.text.len(), |i| at + i + 1);
                }
                _ => break,
            }
        }
        if at > self.byte {
            let passed = self.text.get(self.byte..at).unwrap_or(&[]);
            self.line += passed.iter().filter(|&&b| b == b'\n').count();
            self.byte = at;
        }
        self.line
    }
}

/// A finite float, or the error naming where the text was.
fn number(text: &str, line: usize, column: Option<&str>) -> Result<f64, ValuesError> {
    let x: f64 = text.parse().map_err(|_| ValuesError::NotANumber {
        line,
        column: column.map(str::to_string),
        text: excerpt(text),
    })?;
    if !x.is_finite() {
        return Err(ValuesError::NotFinite {
            line,
            column: column.map(str::to_string),
            text: excerpt(text),
        });
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines() {
        assert_eq!(
            parse_values("# ref\n1\n\n 2.5 \n-3e2\n", None),
            Ok(vec![1.0, 2.5, -300.0])
        );
        assert_eq!(
            parse_values("1\nx\n", None),
            Err(ValuesError::NotANumber {
                line: 2,
                column: None,
                text: "\"x\"".into()
            })
        );
        assert_eq!(
            parse_values("1\nNaN\n", None),
            Err(ValuesError::NotFinite {
                line: 2,
                column: None,
                text: "\"NaN\"".into()
            })
        );
        assert_eq!(
            parse_values("# only a comment\n", None),
            Err(ValuesError::Empty)
        );
        assert_eq!(
            parse_values("1\nx\n", None).map_err(|e| e.to_string()),
            Err("line 2: expected a number, got \"x\"".to_string())
        );
    }

    #[test]
    fn csv_column() {
        let csv = "id,amount\n1,10.5\n2,3\n";
        assert_eq!(parse_values(csv, Some("amount")), Ok(vec![10.5, 3.0]));
        assert_eq!(
            parse_values(csv, Some("x")),
            Err(ValuesError::NoSuchColumn {
                column: "\"x\"".into(),
                header: "id, amount".into()
            })
        );
        assert_eq!(
            parse_values("a,b\n1\n", Some("b")),
            Err(ValuesError::ShortRow {
                line: 2,
                column: "b".into(),
                field: 2,
                fields: 1
            })
        );
        // Comments, blank lines, spaces and quotes around fields.
        assert_eq!(
            parse_values(
                "# exported\n\n id ,\"amount\" \n1, 10.5\n   \n# a comment\n2,\" 3 \"\n",
                Some("amount")
            ),
            Ok(vec![10.5, 3.0])
        );
        assert_eq!(
            parse_values("id,amount\n", Some("amount")),
            Err(ValuesError::Empty)
        );
        assert_eq!(
            parse_values("# nothing\n", Some("amount")),
            Err(ValuesError::Empty)
        );
    }

    #[test]
    fn csv_errors_name_the_line_and_the_column() {
        let err = parse_values("id,amount\n1,2\n\n2,x\n", Some("amount"));
        assert_eq!(
            err,
            Err(ValuesError::NotANumber {
                line: 4,
                column: Some("amount".into()),
                text: "\"x\"".into()
            })
        );
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("line 4, column \"amount\": expected a number, got \"x\"".to_string())
        );
        assert_eq!(
            parse_values("id,amount\n1,inf\n", Some("amount")).map_err(|e| e.to_string()),
            Err("line 2, column \"amount\": value must be finite, got \"inf\"".to_string())
        );
        assert_eq!(
            parse_values("a,b\n1\n", Some("b")).map_err(|e| e.to_string()),
            Err("line 2: the row has 1 field(s), none for column \"b\" (field 2)".to_string())
        );
    }

    #[test]
    fn csv_line_numbers_count_comments_blank_lines_and_crlf() {
        assert_eq!(
            parse_values(
                "# c\r\n\r\nid,amount\r\n\r\n# c\r\n1,2\r\n\n2,x\r\n",
                Some("amount")
            ),
            Err(ValuesError::NotANumber {
                line: 8,
                column: Some("amount".into()),
                text: "\"x\"".into()
            })
        );
        assert_eq!(
            parse_values("\n# c\nid,amount\n1,2\n", Some("x")),
            Err(ValuesError::NoSuchColumn {
                column: "\"x\"".into(),
                header: "id, amount".into()
            })
        );
    }

    /// Issue 9: lines were split on every `,`, so a quoted comma in a field before the column
    /// read (or in the header) moved the column one field to the right.
    #[test]
    fn quoted_comma_in_another_column_does_not_shift_the_column_read() {
        let csv = "id,\"note, free text\",amount\n\
                   1,\"1,5\",10.5\n\
                   2,\"say \"\"hi\"\", then, go\",3\n\
                   3,plain,-4e1\n";
        assert_eq!(
            parse_values(csv, Some("amount")),
            Ok(vec![10.5, 3.0, -40.0])
        );
        // A plain header: the split used to read "5\"" (trimmed to 5) as the amount.
        assert_eq!(
            parse_values("id,note,amount\n1,\"1,5\",10.5\n", Some("amount")),
            Ok(vec![10.5])
        );
        assert_eq!(
            parse_values(csv, Some("note, free text")).map_err(|e| e.to_string()),
            Err("line 2, column \"note, free text\": expected a number, got \"1,5\"".to_string())
        );
        // A quoted field may span lines; the next record's line is still its own.
        assert_eq!(
            parse_values("id,\"a,b\",amount\n1,\"x\ny\",2\n2,z,q\n", Some("amount")),
            Err(ValuesError::NotANumber {
                line: 4,
                column: Some("amount".into()),
                text: "\"q\"".into()
            })
        );
    }

    #[test]
    fn a_huge_bad_line_gives_a_short_message() {
        let nuls = "\0".repeat(8 << 20);
        let e = parse_values(&nuls, None).expect_err("not a number");
        assert!(e.to_string().len() < 200, "{e}");
        assert!(
            e.to_string()
                .starts_with("line 1: expected a number, got \"\\0\\0"),
            "{e}"
        );
        let header = format!("{}\n1\n", "h,".repeat(1 << 20));
        let e = parse_values(&header, Some("x")).expect_err("no column");
        assert!(e.to_string().len() < 200, "{e}");
    }
}
