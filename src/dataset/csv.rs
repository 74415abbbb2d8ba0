//! CSV tables: the first record (blank lines and `#` comments skipped) is the header; fields
//! are split on any one-byte delimiter and quoted as RFC 4180 says (`"1,5"` is one field, a
//! quoted field may span lines), then trimmed. Only the selected columns are kept. A CSV is
//! stored row after row, so it is read whole, once, before the columns are tested.

use std::path::Path;

use super::{ColumnData, DatasetError, Table};

/// Reads `path`, keeping the columns named in `wanted` (every column when `None`; a name not
/// in the header is an error).
pub fn read(path: &Path, delimiter: u8, wanted: Option<&[String]>) -> Result<Table, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(
        std::io::BufReader::with_capacity(1 << 20, file),
        path,
        delimiter,
        wanted,
    )
}

/// Parses CSV from `input` (named `path` in errors).
pub fn parse<R: std::io::Read>(
    input: R,
    path: &Path,
    delimiter: u8,
    wanted: Option<&[String]>,
) -> Result<Table, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(input);
    let csv_error = |e: csv::Error| DatasetError::Csv {
        path: path.to_path_buf(),
        row: e.position().map_or(0, |p| p.line()),
        reason: e.to_string(),
    };
    let mut record = csv::ByteRecord::new();
    // The header: the first record that is not one empty field (a blank line of spaces).
    let header: Vec<String> = loop {
        if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            return Err(DatasetError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        if record.len() == 1 && record[0].trim_ascii().is_empty() {
            continue;
        }
        break record
            .iter()
            .map(|f| String::from_utf8_lossy(f.trim_ascii()).into_owned())
            .collect();
    };
    if let Some(missing) = wanted.and_then(|w| w.iter().find(|n| !header.contains(n))) {
        return Err(DatasetError::NoSuchColumn {
            path: path.to_path_buf(),
            column: missing.clone(),
            available: crate::formats::clip(&header.join(", ")),
        });
    }
    let keep: Vec<usize> = match wanted {
        None => (0..header.len()).collect(),
        Some(names) => (0..header.len())
            .filter(|&i| names.iter().any(|n| *n == header[i]))
            .collect(),
    };
    let mut columns = vec![ColumnData::default(); keep.len()];
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        if record.len() != header.len() {
            if record.len() == 1 && record[0].trim_ascii().is_empty() {
                continue;
            }
            return Err(DatasetError::Ragged {
                path: path.to_path_buf(),
                row: record.position().map_or(0, |p| p.line()),
                found: record.len(),
                expected: header.len(),
            });
        }
        for (col, &i) in columns.iter_mut().zip(&keep) {
            let field = record[i].trim_ascii();
            match std::str::from_utf8(field) {
                Ok(text) => col.push_field(text),
                Err(_) => col.push_field(&String::from_utf8_lossy(field)),
            }
        }
    }
    Ok(Table::Csv {
        path: path.to_path_buf(),
        names: keep.iter().map(|&i| header[i].clone()).collect(),
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str, delimiter: u8) -> Result<Table, DatasetError> {
        parse(text.as_bytes(), Path::new("t.csv"), delimiter, None)
    }

    #[test]
    fn quoted_fields_any_delimiter_and_missing_values() {
        let text = "# export\n\nid;\"note; free\";amount\n1;\"a;b\";1.5\n2;\"say \"\"hi\"\"\";NA\n\n3; x ; 2\n";
        let Ok(Table::Csv { names, columns, .. }) = table(text, b';') else {
            panic!("not read")
        };
        assert_eq!(names, ["id", "note; free", "amount"]);
        assert_eq!(columns[2].numbers, vec![1.5, 2.0]);
        assert_eq!(columns[2].missing, 1);
        assert_eq!(columns[1].texts.get("say \"hi\""), Some(&1));
        assert_eq!(columns[1].texts.get("x"), Some(&1));
    }

    #[test]
    fn ragged_rows_and_no_header_are_errors_naming_the_row() {
        let e = table("a,b\n1,2\n3\n", b',').err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("t.csv: row 3 has 1 fields, the header has 2")
        );
        let e = table("# only\n", b',').err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("t.csv: no header row"));
    }

    #[test]
    fn only_wanted_columns_are_kept() {
        let wanted = vec!["b".to_string()];
        let Ok(Table::Csv { names, columns, .. }) = parse(
            "a,b\nx,1\ny,2\n".as_bytes(),
            Path::new("t"),
            b',',
            Some(&wanted),
        ) else {
            panic!("not read")
        };
        assert_eq!(names, ["b"]);
        assert_eq!(columns[0].numbers, vec![1.0, 2.0]);
    }
}
