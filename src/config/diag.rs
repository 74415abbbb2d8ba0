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
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Diagnostic {
            file: file.into(),
            line,
            col,
            message,
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

/// Largest rule file or service config read, in bytes.
pub(crate) const MAX_TEXT_FILE: u64 = 16 << 20;
/// Largest `reference: {file: ...}` read, in bytes.
pub(crate) const MAX_REFERENCE_FILE: u64 = 1 << 30;
/// Diagnostics kept per file; past them one line says how many more there were.
pub const MAX_PER_FILE: usize = 100;
/// Longest message kept, in bytes: a backstop behind the excerpts messages quote input with.
const MAX_MESSAGE: usize = 8 << 10;
/// Longest path quoted in a message, in characters (Linux's `PATH_MAX` is 4096 bytes).
const MAX_PATH_CHARS: usize = 4096;

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
    // Room for exactly the file: reading into a growing buffer could take twice its size.
    let mut text = String::new();
    let len = usize::try_from(meta.len()).map_err(|_| Error::other("too large"))?;
    text.try_reserve_exact(len)
        .map_err(|_| Error::other(format!("cannot allocate {len} bytes to read it")))?;
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(Error::other(format!("larger than {limit} bytes")));
    }
    Ok(text)
}

/// A path for a message, quoted as `{:?}` does (and cut, should it be longer than any real
/// path: it may come from a YAML value).
pub(crate) fn quote_path(path: &std::path::Path) -> String {
    let shown = path.display().to_string();
    match shown.char_indices().nth(MAX_PATH_CHARS) {
        None => format!("{shown:?}"),
        Some((end, _)) => format!("{:?}…", &shown[..end]),
    }
}

/// Adds `d` to one file's diagnostics, or counts it in `hidden` when
/// [`MAX_PER_FILE`] are already kept.
pub(crate) fn keep(diags: &mut Vec<Diagnostic>, hidden: &mut usize, d: Diagnostic) {
    if diags.len() < MAX_PER_FILE {
        diags.push(d);
    } else {
        *hidden += 1;
    }
}

/// Sorts one file's diagnostics by position (messages without a position last) and keeps
/// the first [`MAX_PER_FILE`]; `hidden` more were already left out. When any were, the
/// last line says how many: `… N more errors in FILE`.
pub(crate) fn finish_file(diags: &mut Vec<Diagnostic>, mut hidden: usize) {
    diags.sort_by_key(|d| (d.file.is_empty(), d.line, d.col));
    if diags.len() > MAX_PER_FILE {
        hidden += diags.len() - MAX_PER_FILE;
        diags.truncate(MAX_PER_FILE);
    }
    if hidden > 0 {
        let file = diags.first().map(|d| d.file.clone()).unwrap_or_default();
        diags.push(Diagnostic::general(format!(
            "… {hidden} more errors in {file}"
        )));
    }
}

/// A short, portable reason for an I/O error (no OS error numbers in `check` output).
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
    fn messages_are_bounded() {
        let d = Diagnostic::new("f", 1, 1, "é".repeat(MAX_MESSAGE));
        assert!(d.message.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(d.message.ends_with('…'));
    }

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
