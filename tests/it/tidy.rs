//! Tidy: `src/` keeps its layers. A top-level module references only modules listed before it
//! in `LAYERS`; the pure layer never awaits, locks, reads a clock or does I/O; every file opens
//! with `//!`; `lib.rs` and ARCHITECTURE.md's codemap follow the table. Test code is ignored.
//!
//! It prints the module graph (and its cycles) on every run:
//! `cargo test --test it tidy -- --nocapture`. It needs only `std`, so it also builds alone,
//! from the crate root: `rustc --edition 2021 --test tests/it/tidy.rs -o /tmp/tidy && /tmp/tidy`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::{fmt, fs};

/// The layers, lowest first. A module may reference only the modules listed before it: the
/// layers below its own, and the modules earlier in its own layer.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "time",
            "labels",
            "telemetry",
            "net",
            "store",
            "logging",
            "cluster",
            "memory",
        ],
    ),
    ("pure", &["formats", "detect", "window"]),
    ("config", &["config", "dataset"]),
    ("ingest", &["ingest"]),
    ("engine", &["engine"]),
    ("output", &["output"]),
    ("shell", &["http", "app"]),
];

/// The layer whose files may not mention any of `PURE_FORBIDDEN` outside test code.
const PURE_LAYER: &str = "pure";

/// Words, token sequences (`.await`, `async fn`) and path prefixes (`std::fs`, which also
/// catches `use std::{fs, io}`).
const PURE_FORBIDDEN: &[&str] = &[
    "tokio",
    "std::fs",
    "std::net",
    "std::thread",
    "SystemTime",
    "Instant",
    "Mutex",
    "RwLock",
    ".await",
    "async fn",
    "async move",
];

#[derive(Debug)]
struct Violation {
    file: PathBuf,
    line: usize,
    message: String,
}

fn violation(file: &Path, line: usize, message: impl Into<String>) -> Violation {
    let (file, message) = (file.to_path_buf(), message.into());
    Violation {
        file,
        line,
        message,
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

fn table_order() -> Vec<&'static str> {
    LAYERS
        .iter()
        .flat_map(|layer| layer.1.iter().copied())
        .collect()
}

fn rank(module: &str) -> Option<usize> {
    table_order().iter().position(|m| *m == module)
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    let i = LAYERS.iter().position(|layer| layer.1.contains(&module))?;
    Some((i, LAYERS[i].0))
}

// ---- Lexing: comments and literals out, then test items out; every line keeps its number. ----

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Spaces over `chars[from..to]`, newlines kept.
fn blank(chars: &mut [char], from: usize, to: usize) {
    let to = to.min(chars.len());
    for c in chars[from.min(to)..to].iter_mut().filter(|c| **c != '\n') {
        *c = ' ';
    }
}

/// End (exclusive) of the string literal whose `"` is at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    i += 1;
    while i < c.len() && c[i] != '"' {
        i += if c[i] == '\\' { 2 } else { 1 };
    }
    (i + 1).min(c.len())
}

/// End of the char literal whose `'` is at `i`, or `None` for a lifetime or a label.
fn char_end(c: &[char], i: usize) -> Option<usize> {
    if c.get(i + 1) == Some(&'\\') {
        (i + 3..c.len()).find(|&j| c[j] == '\'').map(|j| j + 1)
    } else {
        (c.get(i + 2) == Some(&'\'') && c[i + 1] != '\n').then_some(i + 3)
    }
}

/// `src` with comments (doc and nested block comments too) and string, raw string, byte string
/// and char literals turned into spaces. Lifetimes stay.
fn lex(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, ch)| c.get(i + k) == Some(&ch))
    };
    let mut i = 0;
    while i < c.len() {
        let start = i;
        let end = if at(i, "//") {
            (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len())
        } else if at(i, "/*") {
            let (mut j, mut depth) = (i + 2, 1);
            while j < c.len() && depth > 0 {
                let step = [("/*", 1), ("*/", -1)].into_iter().find(|(s, _)| at(j, s));
                depth += step.map_or(0, |s| s.1);
                j += if step.is_some() { 2 } else { 1 };
            }
            j
        } else if c[i] == '"' {
            string_end(&c, i)
        } else if c[i] == '\'' && char_end(&c, i).is_some() {
            char_end(&c, i).unwrap_or(i + 1)
        } else if is_ident(c[i]) {
            // A word or a number; `r#"`, `br"`, `b"`, `c"` and `b'` open literals.
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
            let raw_close =
                |j: usize| c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#'));
            match (c[start..i].iter().collect::<String>().as_str(), c.get(i)) {
                ("r" | "br" | "cr", Some('#' | '"')) if c.get(i + hashes) == Some(&'"') => {
                    let close = (i + hashes + 1..c.len()).find(|&j| raw_close(j));
                    close.map_or(c.len(), |j| j + 1 + hashes)
                }
                ("b" | "c", Some('"')) => string_end(&c, i),
                ("b", Some('\'')) => char_end(&c, i).unwrap_or(i + 1),
                _ => continue,
            }
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, start, end);
        i = end;
    }
    out.into_iter().collect()
}

/// A token of lexed code: a word, `::` or one punctuation char; `start..end` in chars.
#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
    start: usize,
    end: usize,
}

/// Tokens of lexed code (no comments or literals left). Numbers and lifetimes are dropped;
/// `r#type` is the word `type`.
fn tokens(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let start = i;
        i += 1;
        if c[start].is_whitespace() {
            line += usize::from(c[start] == '\n');
            continue;
        } else if is_ident(c[start])
            || (c[start] == '\'' && c.get(i).is_some_and(|&n| is_ident_start(n)))
        {
            while i < c.len() && (is_ident(c[i]) || (c[i] == '#' && c[start..i] == ['r'])) {
                i += 1;
            }
            if c[start] == '\'' || c[start].is_ascii_digit() {
                continue;
            }
        } else if c[start] == ':' && c.get(i) == Some(&':') {
            i += 1;
        }
        let text: String = c[start..i].iter().collect();
        let text = text.strip_prefix("r#").map_or(text.clone(), str::to_string);
        out.push(Token {
            text,
            line,
            start,
            end: i,
        });
    }
    out
}

/// The text of token `k`, or "" past the end.
fn at(toks: &[Token], k: usize) -> &str {
    toks.get(k).map_or("", |t| t.text.as_str())
}

fn is_word(s: &str) -> bool {
    s.starts_with(is_ident_start)
}

/// At `#[cfg(test)]` or `#![cfg(test)]`: whether it is inner, and the token after it.
fn cfg_test_attr(toks: &[Token], i: usize) -> Option<(bool, usize)> {
    let text = |n: usize| (i..i + n).map(|k| at(toks, k)).collect::<String>();
    match at(toks, i) {
        "#" if text(7) == "#[cfg(test)]" => Some((false, i + 7)),
        "#" if text(8) == "#![cfg(test)]" => Some((true, i + 8)),
        _ => None,
    }
}

/// Char offset where the item from token `from` ends: its `;` or its closing `}` at depth 0.
/// An inner attribute's item is the rest of its enclosing block (or file).
fn item_end(toks: &[Token], from: usize, inner: bool, len: usize) -> usize {
    let mut depth = 0;
    for t in &toks[from..] {
        match t.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => return t.start,
            "}" if depth == 1 && !inner => return t.end,
            ")" | "]" | "}" => depth -= 1,
            ";" if depth == 0 && !inner => return t.end,
            _ => {}
        }
    }
    len
}

/// Lexed `src` with every item under `#[cfg(test)]` turned into spaces too.
fn strip_tests(src: &str) -> String {
    let mut code: Vec<char> = lex(src).chars().collect();
    let toks = tokens(&code.iter().collect::<String>());
    let mut i = 0;
    while i < toks.len() {
        match cfg_test_attr(&toks, i) {
            Some((inner, after)) => {
                let end = item_end(&toks, after, inner, code.len());
                blank(&mut code, toks[i].start, end);
                i = toks
                    .iter()
                    .position(|t| t.start >= end)
                    .unwrap_or(toks.len());
            }
            None => i += 1,
        }
    }
    code.into_iter().collect()
}

// ---- Paths: every `a::b::c`, and every path a `use` tree names. ----

/// A path segment and its line.
type Seg = (String, usize);

/// A path, and the inline `mod x { .. }` blocks it sits in.
#[derive(Debug)]
struct PathRef {
    segs: Vec<Seg>,
    inline_mods: Vec<String>,
}

/// Parses the use tree at token `i`, pushing each full path onto `out`; returns where it ends.
fn use_tree(toks: &[Token], mut i: usize, mut path: Vec<Seg>, out: &mut Vec<Vec<Seg>>) -> usize {
    loop {
        match at(toks, i) {
            "::" | "$" => i += 1,
            "as" => i += 2,
            "{" => {
                i += 1;
                while i < toks.len() && at(toks, i) != "}" {
                    let next = use_tree(toks, i, path.clone(), out);
                    i = if next == i || at(toks, next) == "," {
                        next + 1
                    } else {
                        next
                    };
                }
                return i + 1;
            }
            w if is_word(w) || w == "*" => {
                path.push((w.to_string(), toks[i].line));
                i += 1;
            }
            _ => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
    i
}

/// Whether an inline path starts at token `i`: `a::` not after `::`, or a leading `::`.
fn path_starts(toks: &[Token], i: usize) -> bool {
    let prev = if i > 0 { at(toks, i - 1) } else { "" };
    match at(toks, i) {
        "::" => !is_word(prev) && !matches!(prev, ">" | "::") && is_word(at(toks, i + 1)),
        w => is_word(w) && at(toks, i + 1) == "::" && prev != "::",
    }
}

/// Every path in lexed code: each path a `use` tree names, and inline ones (`crate::a::f()`).
fn paths(code: &str) -> Vec<PathRef> {
    let toks = tokens(code);
    let (mut out, mut i, mut depth) = (Vec::new(), 0, 0);
    let mut mods: Vec<(String, usize)> = Vec::new(); // inline modules, and the depth inside each
    while i < toks.len() {
        let inline_mods: Vec<String> = mods.iter().map(|m| m.0.clone()).collect();
        match at(&toks, i) {
            "use" => {
                let mut trees = Vec::new();
                i = use_tree(&toks, i + 1, Vec::new(), &mut trees);
                let inline_mods = || inline_mods.clone();
                out.extend(trees.into_iter().map(|segs| PathRef {
                    segs,
                    inline_mods: inline_mods(),
                }));
                while i < toks.len() && at(&toks, i) != ";" {
                    i += 1;
                }
            }
            "mod" if is_word(at(&toks, i + 1)) && at(&toks, i + 2) == "{" => {
                depth += 1;
                mods.push((at(&toks, i + 1).to_string(), depth));
                i += 2;
            }
            "{" => depth += 1,
            "}" => {
                if mods.last().is_some_and(|m| m.1 == depth) {
                    mods.pop();
                }
                depth -= 1;
            }
            _ if path_starts(&toks, i) => {
                i += usize::from(at(&toks, i) == "::");
                let mut segs = vec![(at(&toks, i).to_string(), toks[i].line)];
                while at(&toks, i + 1) == "::" && is_word(at(&toks, i + 2)) {
                    i += 2;
                    segs.push((at(&toks, i).to_string(), toks[i].line));
                }
                out.push(PathRef { segs, inline_mods });
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The top-level module a path lands in, and the line naming it, for a path in module `scope`:
/// `crate::x`, `super::`s that climb to the crate root; a path that stays in the file's own
/// top-level module (`self::`, a short `super::`) gives that module.
fn resolve(segs: &[Seg], scope: &[&str]) -> Option<Seg> {
    let ups = segs.iter().take_while(|s| s.0 == "super").count();
    let (base, rest) = match segs.first()?.0.as_str() {
        "crate" => (0, &segs[1..]),
        "self" => (scope.len(), &segs[1..]),
        "super" => (scope.len().checked_sub(ups)?, &segs[ups..]),
        _ => return None,
    };
    if base > 0 {
        return Some((scope[0].to_string(), segs[0].1));
    }
    rest.first()
        .filter(|s| s.0 != "*" && s.0 != "self")
        .cloned()
}

/// References from the non-test code of the file of module `module_path` (`["engine",
/// "state"]` for `src/engine/state.rs`) to other top-level modules: (module, line), one per path.
fn references(src: &str, module_path: &[&str]) -> Vec<(String, usize)> {
    let resolved = paths(&strip_tests(src)).into_iter().filter_map(|p| {
        let inline = p.inline_mods.iter().map(String::as_str);
        resolve(
            &p.segs,
            &module_path
                .iter()
                .copied()
                .chain(inline)
                .collect::<Vec<_>>(),
        )
    });
    resolved
        .filter(|(target, _)| module_path.first() != Some(&target.as_str()))
        .collect()
}

/// What a file of the pure layer mentions of `PURE_FORBIDDEN`, outside tests and comments.
fn forbidden(src: &str) -> Vec<(&'static str, usize)> {
    let code = strip_tests(src);
    let (toks, paths) = (tokens(&code), paths(&code));
    let mut hits = Vec::new();
    for &word in PURE_FORBIDDEN {
        if word.contains("::") {
            let want: Vec<&str> = word.split("::").collect();
            let matches = |p: &&PathRef| {
                p.segs.len() >= want.len() && p.segs.iter().zip(&want).all(|(s, w)| s.0 == *w)
            };
            hits.extend(
                paths
                    .iter()
                    .filter(matches)
                    .map(|p| (word, p.segs[want.len() - 1].1)),
            );
        } else {
            let want: Vec<String> = tokens(word).into_iter().map(|t| t.text).collect();
            let matches = |w: &&[Token]| w.iter().zip(&want).all(|(t, x)| t.text == *x);
            hits.extend(
                toks.windows(want.len())
                    .filter(matches)
                    .map(|w| (word, w[0].line)),
            );
        }
    }
    hits.sort_by_key(|&(word, line)| (line, word));
    hits.dedup();
    hits
}

// ---- The tree. ----

/// The module of a file from its path (`src/...`): `[]` for lib.rs, `None` for main.rs.
fn module_of(path: &Path) -> Option<Vec<String>> {
    let parts: Vec<String> = path
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let mut module = parts[parts.iter().position(|p| p == "src")? + 1..].to_vec();
    let file = module.pop()?;
    match (module.is_empty(), file.strip_suffix(".rs")?) {
        (true, "main") => return None,
        (true, "lib") | (_, "mod") => {}
        (_, stem) => module.push(stem.to_string()),
    }
    Some(module)
}

/// The file's module if it is in a top-level module (not lib.rs or main.rs).
fn in_module(path: &Path) -> Option<Vec<String>> {
    module_of(path).filter(|m| !m.is_empty())
}

/// Top-level modules: name -> (root file, whether it is a directory).
type Tops = BTreeMap<String, (PathBuf, bool)>;

fn top_modules(files: &[(PathBuf, String)]) -> Tops {
    let mut tops = Tops::new();
    for (path, module) in files.iter().filter_map(|(p, _)| Some((p, in_module(p)?))) {
        let entry = tops
            .entry(module[0].clone())
            .or_insert((path.clone(), false));
        entry.1 |= module.len() > 1 || path.ends_with("mod.rs");
        if module.len() == 1 {
            entry.0 = path.clone();
        }
    }
    tops
}

/// Edges between top-level modules, with their numbers of references.
fn module_graph(files: &[(PathBuf, String)]) -> BTreeMap<(String, String), usize> {
    let mut graph = BTreeMap::new();
    for (module, text) in files.iter().filter_map(|(p, t)| Some((in_module(p)?, t))) {
        let module_path: Vec<&str> = module.iter().map(String::as_str).collect();
        for (target, _) in references(text, &module_path) {
            *graph.entry((module[0].clone(), target)).or_insert(0) += 1;
        }
    }
    graph
}

/// Strongly connected components of more than one module (by mutual reachability: the graph is small).
fn cycles(graph: &BTreeMap<(String, String), usize>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph.keys().flat_map(|(a, b)| [a, b]).collect();
    let nodes: Vec<&String> = nodes.into_iter().collect();
    let n = nodes.len();
    let index = |x: &String| nodes.iter().position(|node| *node == x).unwrap_or(0);
    let mut reach = vec![vec![false; n]; n];
    for (a, b) in graph.keys() {
        reach[index(a)][index(b)] = true;
    }
    for k in 0..n {
        let via_k = reach[k].clone(); // Warshall: what k reaches, everything reaching k reaches
        for row in reach.iter_mut().filter(|row| row[k]) {
            row.iter_mut().zip(&via_k).for_each(|(r, v)| *r |= *v);
        }
    }
    let mut out = Vec::new();
    for (i, row) in reach.iter().enumerate() {
        let component: Vec<usize> = (0..n)
            .filter(|&j| j == i || (row[j] && reach[j][i]))
            .collect();
        if component.len() > 1 && component[0] == i {
            out.push(component.iter().map(|&j| nodes[j].clone()).collect());
        }
    }
    out
}

fn render_graph(graph: &BTreeMap<(String, String), usize>) -> String {
    let mut out = format!("module graph ({} edges):\n", graph.len());
    for ((from, to), n) in graph {
        let s = if *n == 1 { "" } else { "s" };
        out += &format!("  {from} -> {to} ({n} reference{s})\n");
    }
    let cycles: Vec<String> = cycles(graph)
        .iter()
        .map(|c| format!("{{{}}}", c.join(", ")))
        .collect();
    let cycles = if cycles.is_empty() {
        "none".to_string()
    } else {
        cycles.join(" ")
    };
    out + &format!("cycles: {cycles}\n")
}

/// Every violation of the rules in the module doc. `files` are `src/**/*.rs` (paths from the
/// crate root), `architecture` the text of ARCHITECTURE.md.
fn check(files: &[(PathBuf, String)], architecture: &str) -> Vec<Violation> {
    let tops = top_modules(files);
    let mut v = Vec::new();
    for (module, (root, _)) in tops.iter().filter(|(m, _)| rank(m).is_none()) {
        v.push(violation(
            root,
            1,
            format!("module `{module}` is not in the layer table"),
        ));
    }
    for (path, text) in files {
        check_file(path, text, &tops, &mut v);
    }
    if let Some((lib, text)) = files
        .iter()
        .find(|(p, _)| module_of(p).is_some_and(|m| m.is_empty()))
    {
        check_lib(lib, text, &mut v);
    }
    check_codemap(files, &tops, architecture, &mut v);
    // Several names imported on one line make one violation.
    v.dedup_by(|a, b| (&a.file, a.line, &a.message) == (&b.file, b.line, &b.message));
    v
}

/// The `//!` opening, the references, and the pure layer's words.
fn check_file(path: &Path, text: &str, tops: &Tops, v: &mut Vec<Violation>) {
    let mut add = |line: usize, message: String| v.push(violation(path, line, message));
    match text.lines().enumerate().find(|(_, l)| !l.trim().is_empty()) {
        Some((_, l)) if l.trim_start().starts_with("//!") => {}
        first => add(
            first.map_or(1, |f| f.0 + 1),
            "the file does not open with a `//!` line".into(),
        ),
    }
    let Some(module) = in_module(path) else {
        return;
    };
    let from = module[0].as_str();
    let module_path: Vec<&str> = module.iter().map(String::as_str).collect();
    let describe =
        |m: &str| layer_of(m).map_or(String::new(), |(i, name)| format!("layer {i}, {name}"));
    for (to, line) in references(text, &module_path) {
        if !tops.contains_key(&to) {
            add(line, format!("`crate::{to}` is not a module of src/"));
        } else if rank(from).zip(rank(&to)).is_some_and(|(f, t)| t > f) {
            let (f, t) = (describe(from), describe(&to));
            add(line, format!("`{from}` ({f}) may not reference `{to}` ({t}): references point only to modules listed before it in the layer table"));
        }
    }
    if layer_of(from).is_some_and(|l| l.1 == PURE_LAYER) {
        for (word, line) in forbidden(text) {
            add(
                line,
                format!("`{word}` in the pure layer (no I/O, async, clock or lock)"),
            );
        }
    }
}

/// lib.rs declares every module of the table, in its order.
fn check_lib(lib: &Path, text: &str, v: &mut Vec<Violation>) {
    let toks = tokens(&strip_tests(text));
    let declared: Vec<(&str, usize)> = (0..toks.len())
        .filter(|&k| at(&toks, k) == "mod" && is_word(at(&toks, k + 1)) && at(&toks, k + 2) == ";")
        .map(|k| (at(&toks, k + 1), toks[k].line))
        .collect();
    let mut add = |line: usize, message: String| v.push(violation(lib, line, message));
    let order = table_order();
    for m in order
        .iter()
        .filter(|m| !declared.iter().any(|d| d.0 == **m))
    {
        add(
            1,
            format!("the layer table lists `{m}`, but lib.rs declares no such module"),
        );
    }
    let got: Vec<(&str, usize)> = declared
        .into_iter()
        .filter(|d| rank(d.0).is_some())
        .collect();
    let want: Vec<&str> = order
        .into_iter()
        .filter(|m| got.iter().any(|d| d.0 == *m))
        .collect();
    if let Some(&(_, line)) = got.iter().zip(&want).find(|(g, w)| g.0 != **w).map(|p| p.0) {
        let got: Vec<&str> = got.iter().map(|d| d.0).collect();
        let (got, want) = (got.join(", "), want.join(", "));
        add(
            line,
            format!("lib.rs declares `{got}`; the layer table's order is `{want}`"),
        );
    }
}

/// Whether `needle` occurs in `text` not glued to a word before it (`ks.rs` is not in `kstwo.rs`).
fn mentions(text: &str, needle: &str) -> bool {
    text.match_indices(needle)
        .any(|(i, _)| !text[..i].chars().next_back().is_some_and(is_ident))
}

/// ARCHITECTURE.md's `## Codemap` section names every module and every file of a module.
fn check_codemap(
    files: &[(PathBuf, String)],
    tops: &Tops,
    architecture: &str,
    v: &mut Vec<Violation>,
) {
    let arch = Path::new("ARCHITECTURE.md");
    let mut lines = architecture.lines().enumerate();
    let Some((heading, _)) = lines.find(|(_, l)| l.starts_with("## Codemap")) else {
        return v.push(violation(arch, 1, "no `## Codemap` section"));
    };
    let map: Vec<&str> = lines
        .map(|(_, l)| l)
        .take_while(|l| !l.starts_with("## "))
        .collect();
    let map = map.join("\n");
    let mut add = |message: String| v.push(violation(arch, heading + 1, message));
    for (module, (_, dir)) in tops {
        let need = format!("src/{module}{}", if *dir { "/" } else { ".rs" });
        if !mentions(&map, &need) {
            add(format!(
                "the codemap does not name module `{module}` (write `{need}`)"
            ));
        }
    }
    for (path, module) in files.iter().filter_map(|(p, _)| Some((p, in_module(p)?))) {
        let last = &module[module.len() - 1];
        let need = format!(
            "{last}{}",
            if path.ends_with("mod.rs") { "/" } else { ".rs" }
        );
        if module.len() > 1 && !mentions(&map, &need) {
            add(format!(
                "the codemap does not name `{}` (mention `{need}`)",
                path.display()
            ));
        }
    }
}

/// `src/**/*.rs` under `root`, sorted, with paths from `root`.
fn read_sources(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let entries = fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut names: Vec<_> = entries
        .map(|e| e.expect("a directory entry").file_name())
        .collect();
    names.sort();
    for rel in names.into_iter().map(|name| dir.join(name)) {
        if root.join(&rel).is_dir() {
            read_sources(root, &rel, out);
        } else if rel.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(root.join(&rel))
                .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            out.push((rel, text));
        }
    }
}

#[test]
fn layers_hold() {
    let root = Path::new(option_env!("CARGO_MANIFEST_DIR").unwrap_or("."));
    let mut files = Vec::new();
    read_sources(root, Path::new("src"), &mut files);
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    // A merge left half done once: the codemap still named every module.
    for (name, text) in [
        ("ARCHITECTURE.md", architecture.as_str()),
        (
            "README.md",
            &fs::read_to_string(root.join("README.md")).unwrap_or_default(),
        ),
    ] {
        let marker = text
            .lines()
            .position(|l| l.starts_with("<<<<<<< ") || l.starts_with(">>>>>>> "));
        assert!(
            marker.is_none(),
            "{name}:{}: a merge conflict marker",
            marker.unwrap_or(0) + 1
        );
    }
    println!("{}", render_graph(&module_graph(&files)));
    let violations = check(&files, &architecture);
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        list.is_empty(),
        "{} layering violations:\n{}\n",
        list.len(),
        list.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree that passes (lib.rs in table order, one `src/X.rs` a module), with `changes`.
    fn tree(changes: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        let order = table_order();
        let lib: String = order.iter().map(|m| format!("pub mod {m};\n")).collect();
        let mut files = vec![("src/lib.rs".to_string(), format!("//! Root.\n\n{lib}"))];
        files.extend(
            order
                .iter()
                .map(|m| (format!("src/{m}.rs"), format!("//! {m}.\n"))),
        );
        for (path, text) in changes {
            files.retain(|f| f.0 != *path);
            files.push((path.to_string(), text.to_string()));
        }
        files
            .into_iter()
            .map(|(p, t)| (PathBuf::from(p), t))
            .collect()
    }

    /// An ARCHITECTURE.md whose codemap names every module of the table, and `more`.
    fn arch(more: &str) -> String {
        let map: String = table_order()
            .iter()
            .map(|m| format!("- `src/{m}.rs`\n"))
            .collect();
        format!("# Architecture\n\n## Codemap\n\n{map}{more}\n## Invariants\n")
    }

    fn messages(changes: &[(&str, &str)], architecture: &str) -> Vec<String> {
        let violations = check(&tree(changes), architecture);
        violations.iter().map(ToString::to_string).collect()
    }

    #[track_caller]
    fn check_refs(src: &str, module_path: &[&str], expect: &[(&str, usize)]) {
        let got = references(src, module_path);
        let got: Vec<(&str, usize)> = got.iter().map(|(m, l)| (m.as_str(), *l)).collect();
        assert_eq!(got, expect, "references of:\n{src}");
    }

    #[test]
    fn nested_use_trees_and_inline_paths() {
        let src =
            "use crate::{engine::{A, B}, output::C};\npub use crate::time::{now_ms, rfc3339};\n";
        let expect = [
            ("engine", 1),
            ("engine", 1),
            ("output", 1),
            ("time", 2),
            ("time", 2),
        ];
        check_refs(src, &["app"], &expect);
        let src = "use crate::{\n    engine::{self, A as B},\n    window::*,\n};\nuse {crate::store::S, std::fs};";
        check_refs(
            src,
            &["app"],
            &[("engine", 2), ("engine", 2), ("window", 3), ("store", 5)],
        );
        let src = "fn f() {\n    crate::output::webhook::install_crypto_provider();\n    \
                   let x: Vec<crate::engine::E> = g::<crate::time::T>();\n}";
        check_refs(src, &["app"], &[("output", 2), ("engine", 3), ("time", 3)]);
        check_refs(
            "use crate::app::Own;\nfn f() { crate::app::g() }",
            &["app", "wiring"],
            &[],
        );
        check_refs(
            "macro_rules! m { () => { $crate::time::now() } }",
            &["engine"],
            &[("time", 1)],
        );
    }

    #[test]
    fn literals_and_comments_do_not_count() {
        let src = r##"//! Uses `crate::engine` in a doc comment.
/// See [`crate::engine::Engine`].
// crate::engine::x
/* crate::engine /* nested */ crate::engine */
const A: &str = "crate::engine::x \" crate::engine";
const B: &str = r#"crate::engine " crate::engine"#;
const C: &[u8] = b"crate::engine";
const D: &[u8] = br"crate::engine";
const Q: char = '"';
const E: char = '\'';
fn f<'a>(x: &'a str) -> &'a str { crate::time::now(x) }
"##;
        check_refs(src, &["app"], &[("time", 11)]);
        assert_eq!(lex(src).lines().count(), src.lines().count());
    }

    #[test]
    fn test_code_is_ignored() {
        let src = "use crate::time::T;\n#[cfg(test)]\nmod tests {\n    use crate::app::X;\n    \
                   fn s() -> &'static str { \"}\" }\n}\n#[cfg(test)]\nfn helper() -> [u8; 2] { \
                   crate::app::y() }\n#[cfg(test)]\nuse crate::app::Z;\n#[cfg(test)] #[allow(dead_code)]\n\
                   const K: [u8; 1] = [0; 1];\nfn after() { crate::store::s() }\n";
        check_refs(src, &["output"], &[("time", 1), ("store", 13)]);
        check_refs("#![cfg(test)]\nuse crate::app::X;\n", &["output"], &[]);
    }

    #[test]
    fn super_climbs_from_mod_rs_and_leaf_files() {
        // In src/engine/mod.rs `super` is the crate root; in src/engine/state.rs it is `engine`.
        let mod_rs = "use super::window::W;\nuse self::state::Machine;";
        check_refs(mod_rs, &["engine"], &[("window", 1)]);
        let leaf = "use super::super::detect::V;\nuse super::Engine;\nfn f() { super::super::time::now() }";
        check_refs(leaf, &["engine", "state"], &[("detect", 1), ("time", 3)]);
        let inline = "mod inner {\n    use super::super::time::T;\n    use super::Engine;\n}\nuse super::store::S;";
        check_refs(inline, &["engine"], &[("time", 2), ("store", 5)]);
    }

    #[test]
    fn a_clean_tree_passes() {
        assert_eq!(messages(&[], &arch("")), Vec::<String>::new());
    }

    #[test]
    fn upward_edges_are_reported() {
        let got = messages(
            &[
                (
                    "src/window.rs",
                    "//! W.\n\nuse crate::engine::{X, Y};\nuse crate::time::T;\n",
                ),
                ("src/store.rs", "//! S.\nfn f() { crate::time::now() }\n"),
                ("src/time.rs", "//! T.\nfn f() { crate::store::s() }\n"),
            ],
            &arch(""),
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        let window =
            "src/window.rs:3: `window` (layer 1, pure) may not reference `engine` (layer 4,";
        assert!(got[0].starts_with(window), "{got:#?}");
        let time = "src/time.rs:2: `time` (layer 0, leaves) may not reference `store` (layer 0,";
        assert!(got[1].starts_with(time), "{got:#?}");
    }

    #[test]
    fn modules_outside_the_table_and_cycles() {
        let changes = [
            (
                "src/rules/mod.rs",
                "//! Rules.\npub mod model;\nuse crate::output::O;\n",
            ),
            ("src/rules/model.rs", "//! Model.\n"),
            ("src/output.rs", "//! O.\nuse crate::rules::model::M;\n"),
            ("src/engine.rs", "//! E.\nuse crate::Thing;\n"),
        ];
        let got = messages(&changes, &arch("- `src/rules/`, `model.rs`"));
        let expect = [
            "src/rules/mod.rs:1: module `rules` is not in the layer table",
            "src/engine.rs:2: `crate::Thing` is not a module of src/",
        ];
        assert_eq!(got, expect);
        let graph = render_graph(&module_graph(&tree(&changes)));
        let edges = "  output -> rules (1 reference)\n  rules -> output (1 reference)\n";
        assert!(graph.contains(edges), "{graph}");
        assert!(graph.ends_with("cycles: {output, rules}\n"), "{graph}");
    }

    #[test]
    fn every_file_opens_with_a_doc_line() {
        let changes = [
            ("src/time.rs", "\n\nuse std::time::Duration;\n"),
            ("src/labels.rs", "/// Not a module doc.\n"),
            ("src/net.rs", "\n  //! Indented is fine.\n"),
        ];
        let expect = [
            "src/time.rs:3: the file does not open with a `//!` line",
            "src/labels.rs:1: the file does not open with a `//!` line",
        ];
        assert_eq!(messages(&changes, &arch("")), expect);
    }

    #[test]
    fn lib_rs_follows_the_table() {
        let lib = tree(&[])[0].1.replace("pub mod engine;\n", "");
        let lib = lib.replace("pub mod time;\n", "pub mod engine;\npub mod time;\n");
        let got = messages(&[("src/lib.rs", &lib)], &arch(""));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].starts_with("src/lib.rs:3: lib.rs declares `engine, time, labels,"),
            "{got:#?}"
        );
        let lib = lib.replace("pub mod engine;\n", "mod other;\n");
        let expect =
            "src/lib.rs:1: the layer table lists `engine`, but lib.rs declares no such module";
        assert_eq!(messages(&[("src/lib.rs", &lib)], &arch("")), [expect]);
    }

    #[test]
    fn the_pure_layer_stays_pure() {
        let detect = "//! D.\nuse std::{fs, io};\npub async fn f() { g().await }\n\
                      fn h() -> std::time::Instant { todo!() }\n// tokio and Mutex in a comment\n\
                      const S: &str = \"async move\";\n#[cfg(test)]\nmod tests { use tokio::sync::Mutex; }\n\
                      fn t() { tokio::spawn(async move {}); }\n";
        let engine = "//! Not pure.\nasync fn run() { tokio::task::yield_now().await }\n";
        let got = messages(
            &[("src/detect.rs", detect), ("src/engine.rs", engine)],
            &arch(""),
        );
        let expect: Vec<String> = [
            (2, "std::fs"),
            (3, ".await"),
            (3, "async fn"),
            (4, "Instant"),
        ]
        .iter()
        .chain(&[(9, "async move"), (9, "tokio")])
        .map(|(line, word)| {
            format!(
                "src/detect.rs:{line}: `{word}` in the pure layer (no I/O, async, clock or lock)"
            )
        })
        .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn the_codemap_names_every_module_and_file() {
        let changes = [
            ("src/engine/state.rs", "//! S.\n"),
            ("src/engine/sched/mod.rs", "//! S.\n"),
            ("src/engine/sched/tick.rs", "//! T.\n"),
            ("src/engine/ks.rs", "//! K.\n"),
        ];
        let got = messages(
            &changes,
            &arch("- `engine/state.rs`, `sched/` and `kstwo.rs`"),
        );
        let expect = [
            "ARCHITECTURE.md:3: the codemap does not name module `engine` (write `src/engine/`)",
            "ARCHITECTURE.md:3: the codemap does not name `src/engine/sched/tick.rs` (mention `tick.rs`)",
            "ARCHITECTURE.md:3: the codemap does not name `src/engine/ks.rs` (mention `ks.rs`)",
        ];
        assert_eq!(got, expect);
        let got = messages(&[], "# No codemap\n");
        assert_eq!(got, ["ARCHITECTURE.md:1: no `## Codemap` section"]);
    }
}
