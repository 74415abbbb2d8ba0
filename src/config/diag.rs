//! Diagnostics: one problem in a config or rule file, with its 1-based line and column.

use std::fmt;

/// One problem found while loading, displayed as `file:line:col: message` (the message alone
/// for a [`Diagnostic::general`] one, which has no file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as it was given (command line, config's `rule_files`, or `origin`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<String>,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A problem tied to no file (a failed load task, ...): displayed as the message alone.
    pub fn general(message: impl Into<String>) -> Self {
        Diagnostic::new("", 0, 0, message)
    }

    /// A problem with a whole file (unreadable, ...): reported at 1:1.
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(file, 1, 1, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// A short, portable reason for an I/O error (no OS error numbers in `check` output).
/// Largest rule file or service config read, in bytes.
pub(crate) const MAX_TEXT_FILE: u64 = 16 << 20;
/// Largest `reference: {file: ...}` read, in bytes.
pub(crate) const MAX_REFERENCE_FILE: u64 = 1 << 30;

/// Reads a text file of at most `limit` bytes. Only regular files: a FIFO or a device such as
/// `/dev/zero` named by mistake is refused instead of read forever.
pub(crate) fn read_text(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::from(ErrorKind::IsADirectory));
    }
    if !meta.is_file() {
        return Err(Error::other("not a regular file"));
    }
    if meta.len() > limit {
        return Err(Error::other(format!("larger than {limit} bytes")));
    }
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(Error::other(format!("larger than {limit} bytes")));
    }
    Ok(text)
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "is a directory".to_string(),
        ErrorKind::InvalidData => "not valid UTF-8 text".to_string(),
        _ => e.to_string(),
    }
}

/// Every problem of every file loaded together; `Display` prints one diagnostic a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct LoadError(pub Vec<Diagnostic>);

fn one_per_line(diags: &[Diagnostic]) -> String {
    let lines: Vec<String> = diags.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_col_message() {
        let d = Diagnostic::new("rules/a.yml", 7, 9, "unknown key \"alhpa\" in rule");
        assert_eq!(
            d.to_string(),
            "rules/a.yml:7:9: unknown key \"alhpa\" in rule"
        );
        let e = LoadError(vec![
            d.clone(),
            Diagnostic::whole_file("b.yml", "cannot read"),
            Diagnostic::general("load task failed"),
        ]);
        assert_eq!(
            e.to_string(),
            "rules/a.yml:7:9: unknown key \"alhpa\" in rule\nb.yml:1:1: cannot read\nload task failed"
        );
    }
}
