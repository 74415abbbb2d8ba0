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

/// `O_NONBLOCK`, so that opening a FIFO does not wait for a writer (`libc` is not a direct
/// dependency): 0o4000 on Linux's generic ABI, 4 on macOS and the BSDs; on other targets
/// none, and the type check before opening is the only guard.
#[cfg(unix)]
const O_NONBLOCK: i32 = if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    4
} else if cfg!(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
)) {
    0o4000
} else {
    0
};

/// Reads a text file of at most `limit` bytes: every file the config reads (config, rule
/// files, secrets, references) comes through here. Only regular files: a FIFO, a device such
/// as `/dev/zero` or a directory named by mistake is refused, never opened to wait for a
/// writer or read forever. The type is checked on the path before opening, and again on what
/// was opened (the path may have changed in between), which is opened non-blocking so even
/// a FIFO swapped in at that moment cannot make the open wait.
pub(crate) fn read_text(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// [`read_text`] for bytes: the web config's certificate, key and token files.
pub(crate) fn read_bytes(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, Read};
    regular(&std::fs::metadata(path)?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    regular(&meta)?;
    if meta.len() > limit {
        return Err(Error::other(format!("larger than {limit} bytes")));
    }
    // Room for exactly the file: reading into a growing buffer could take twice its size.
    let mut bytes = Vec::new();
    let len = usize::try_from(meta.len()).map_err(|_| Error::other("too large"))?;
    bytes
        .try_reserve_exact(len)
        .map_err(|_| Error::other(format!("cannot allocate {len} bytes to read it")))?;
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

fn regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    if meta.is_dir() {
        return Err(Error::from(ErrorKind::IsADirectory));
    }
    if !meta.is_file() {
        return Err(Error::other("not a regular file"));
    }
    Ok(())
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
    fn fifos_and_directories_are_refused_without_waiting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(ok.success());
        // On a thread, so a regression fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_text(&path, 100).map_err(|e| io_reason(&e)));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("read_text returned");
        assert_eq!(got, Err("not a regular file".to_string()));
        // Opening with O_NONBLOCK itself does not wait for a writer (the guard when a FIFO
        // replaces a file between the type check and the open).
        #[cfg(target_os = "linux")]
        {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::os::unix::fs::OpenOptionsExt;
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(O_NONBLOCK)
                    .open(&fifo);
                let _ = tx.send(file.map(|f| f.metadata().map(|m| m.is_file())).is_ok());
            });
            assert_eq!(
                rx.recv_timeout(std::time::Duration::from_secs(10)),
                Ok(true)
            );
        }
        let got = read_text(dir.path(), 100).map_err(|e| io_reason(&e));
        assert_eq!(got, Err("is a directory".to_string()));
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "0123456789").expect("write");
        assert_eq!(read_text(&file, 10).expect("read"), "0123456789");
        assert_eq!(
            read_text(&file, 9).map_err(|e| e.to_string()),
            Err("larger than 9 bytes".to_string())
        );
    }

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
