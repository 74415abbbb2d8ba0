//! Values from a file: one float per line (blank lines and `#` comments skipped), or one
//! column of a CSV with a header. Used by `driftgauge eval` and `reference: {file: ...}`.

use crate::formats::{clip, excerpt};

/// What is wrong with a values file. Input is quoted as a short excerpt ([`excerpt`]): a bad
/// line of a 1 GiB file makes a message of a few dozen characters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValuesError {
    /// `text`: the field, as [`excerpt`] quotes it.
    #[error("line {line}: expected a number, got {text}")]
    NotANumber { line: usize, text: String },
    #[error("line {line}: value must be finite, got {text}")]
    NotFinite { line: usize, text: String },
    #[error("no values")]
    Empty,
    /// `column` quoted, `header` clipped.
    #[error("column {column} is not in the header (columns: {header})")]
    NoSuchColumn { column: String, header: String },
    #[error("line {line}: the row has no column {index}")]
    ShortRow { line: usize, index: usize },
}

/// Parses values. With `column`, the first non-comment line is a CSV header and the named
/// column is read from every following row.
pub fn parse_values(text: &str, column: Option<&str>) -> Result<Vec<f64>, ValuesError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let index =
        match column {
            None => None,
            Some(col) => {
                let (_, header) = lines.next().ok_or(ValuesError::Empty)?;
                let names: Vec<&str> = header
                    .split(',')
                    .map(|h| h.trim().trim_matches('"'))
                    .collect();
                let i = names.iter().position(|h| *h == col).ok_or_else(|| {
                    ValuesError::NoSuchColumn {
                        column: excerpt(col),
                        header: clip(&names.join(", ")),
                    }
                })?;
                Some(i)
            }
        };
    let mut out = Vec::new();
    for (line, l) in lines {
        let field = match index {
            None => l,
            Some(i) => l
                .split(',')
                .nth(i)
                .ok_or(ValuesError::ShortRow { line, index: i })?
                .trim()
                .trim_matches('"'),
        };
        let x: f64 = field.parse().map_err(|_| ValuesError::NotANumber {
            line,
            text: excerpt(field),
        })?;
        if !x.is_finite() {
            return Err(ValuesError::NotFinite {
                line,
                text: excerpt(field),
            });
        }
        out.push(x);
    }
    if out.is_empty() {
        return Err(ValuesError::Empty);
    }
    Ok(out)
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
                text: "\"x\"".into()
            })
        );
        assert_eq!(
            parse_values("1\nNaN\n", None),
            Err(ValuesError::NotFinite {
                line: 2,
                text: "\"NaN\"".into()
            })
        );
        assert_eq!(
            parse_values("# only a comment\n", None),
            Err(ValuesError::Empty)
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
            Err(ValuesError::ShortRow { line: 2, index: 1 })
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
