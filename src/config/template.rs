//! Templates: the part of Go's `text/template` that Prometheus users write in annotations,
//! also used for webhook bodies (`body_template`).
//!
//! - Text with actions `{{ pipeline }}`; `{{-` and `-}}` trim the whitespace beside them, and
//!   `{{/* comment */}}` prints nothing, as in Go.
//! - A pipeline is commands joined by `|`; a command is a function with arguments, or one
//!   operand. The value of a command before `|` is the last argument of the next one.
//! - Operands: `$labels.name`, `$value` (annotations), `.field.field` (the data: the webhook
//!   payload in body templates; `.Labels`/`.Value` in annotations), `$secrets.name` (body
//!   templates), strings (`"..."` with Go escapes, or `` `raw` ``), numbers, `true`, `false`,
//!   and `( pipeline )`.
//! - Functions, as Prometheus has them: `humanize`, `humanizePercentage`, `humanizeDuration`,
//!   `printf` (Go's verbs `%v %s %d %f %e %g %q %x %t %%` with flags, width and precision),
//!   `toUpper`, `toLower`. An unknown function, a control structure (`if`, `range`, ...) or a
//!   wrong number of arguments is an error when the file is loaded, at its column.
//!
//! Values print as Go prints them: numbers like `%v` (shortest round-trip digits, exponent
//! form below 1e-4 and from 1e+06, `NaN`, `+Inf`), a missing label or field as `""`
//! (Prometheus's `missingkey=zero`). `$value` is `NaN` when the rule has no value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::selector::is_valid_label_name;
use crate::formats::excerpt;
use crate::labels::Labels;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Offset in characters from the start of the template text.
    pub offset: usize,
    pub message: String,
}

/// Where a template is used: which variables exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rule annotations: `$labels`, `$value`, and `.Labels`, `.Value`.
    Annotation,
    /// Webhook `body_template` strings: `.` is the payload; `$secrets` the webhook's
    /// `secret_files`.
    Body,
}

impl Kind {
    fn variables(self) -> &'static [&'static str] {
        match self {
            Kind::Annotation => &["labels", "value"],
            Kind::Body => &["secrets"],
        }
    }
}

/// A template value: what JSON holds, with numbers as float64 (as Go's templates see them).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// As JSON; a non-finite number becomes `null` (JSON has none).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Num(x) => serde_json::Number::from_f64(*x)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    fn labels(labels: &Labels) -> Value {
        Value::Map(
            labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
        )
    }

    /// How `{{ x }}` prints it.
    fn print(&self, out: &mut String) {
        match self {
            Value::Null => {}
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Num(x) => out.push_str(&format_value(*x)),
            Value::Str(s) => out.push_str(s),
            Value::List(_) | Value::Map(_) => out.push_str(&self.to_json().to_string()),
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        self.print(&mut s);
        s
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "bool",
            Value::Num(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    fn field(&self, name: &str) -> Value {
        match self {
            Value::Map(m) => m.get(name).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

/// What a template is expanded with.
pub struct Data<'a> {
    /// `.`
    pub dot: Value,
    /// `$name` → value.
    pub vars: Vec<(&'a str, Value)>,
}

impl Data<'_> {
    /// The data of an annotation: `$labels`, `$value` (`NaN` without one), `.Labels`, `.Value`.
    pub fn annotation(labels: &Labels, value: Option<f64>) -> Data<'static> {
        let labels = Value::labels(labels);
        let value = Value::Num(value.unwrap_or(f64::NAN));
        let dot = Value::Map(BTreeMap::from([
            ("Labels".to_string(), labels.clone()),
            ("Value".to_string(), value.clone()),
        ]));
        Data {
            dot,
            vars: vec![("labels", labels), ("value", value)],
        }
    }
}

/// Why expanding failed (a function refused its argument: `humanize "abc"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Action(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline(Vec<Command>);

#[derive(Debug, Clone, PartialEq)]
enum Command {
    Call(Func, Vec<Operand>),
    Operand(Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Lit(Value),
    /// `.a.b` (empty: `.`).
    Field(Vec<String>),
    /// `$name.a.b`.
    Var(String, Vec<String>),
    Sub(Box<Pipeline>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Humanize,
    HumanizePercentage,
    HumanizeDuration,
    Printf,
    ToUpper,
    ToLower,
}

impl Func {
    fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "humanize" => Func::Humanize,
            "humanizePercentage" => Func::HumanizePercentage,
            "humanizeDuration" => Func::HumanizeDuration,
            "printf" => Func::Printf,
            "toUpper" => Func::ToUpper,
            "toLower" => Func::ToLower,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Humanize => "humanize",
            Func::HumanizePercentage => "humanizePercentage",
            Func::HumanizeDuration => "humanizeDuration",
            Func::Printf => "printf",
            Func::ToUpper => "toUpper",
            Func::ToLower => "toLower",
        }
    }

    /// Whether `n` arguments are right.
    fn arity_ok(self, n: usize) -> bool {
        match self {
            Func::Printf => n >= 1,
            _ => n == 1,
        }
    }
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// The functions a template may call, for messages.
const FUNCTIONS: &str = "humanize, humanizePercentage, humanizeDuration, printf, toUpper, toLower";

impl Template {
    /// Parses `text`; the error names the first problem and where it is.
    pub fn parse(text: &str, kind: Kind) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut pos = 0; // byte offset in `text`
        let mut trim_next = false;
        let err = |byte: usize, message: String| TemplateError {
            offset: text[..byte].chars().count(),
            message,
        };
        while pos < text.len() {
            let Some(rel) = text[pos..].find("{{") else {
                let mut t = &text[pos..];
                if trim_next {
                    t = t.trim_start();
                }
                if !t.is_empty() {
                    pieces.push(Piece::Text(t.to_string()));
                }
                break;
            };
            let open = pos + rel;
            let mut inner_start = open + 2;
            let trim_left = text[inner_start..].starts_with("- ")
                || text[inner_start..].starts_with("-\t")
                || text[inner_start..].starts_with("-\n");
            if trim_left {
                inner_start += 1;
            }
            let mut t = &text[pos..open];
            if trim_next {
                t = t.trim_start();
            }
            if trim_left {
                t = t.trim_end();
            }
            if !t.is_empty() {
                pieces.push(Piece::Text(t.to_string()));
            }
            let Some(close_rel) = find_close(&text[inner_start..]) else {
                return Err(err(open, "unclosed \"{{\"".to_string()));
            };
            let close = inner_start + close_rel;
            let mut inner_end = close;
            trim_next = false;
            if close > inner_start
                && text[..close].ends_with('-')
                && text[..close - 1].ends_with([' ', '\t', '\n'])
            {
                inner_end = close - 1;
                trim_next = true;
            }
            let inner = &text[inner_start..inner_end];
            let trimmed = inner.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") || trimmed.len() < 4 {
                    return Err(err(open, "unclosed comment".to_string()));
                }
            } else {
                let action = &text[open..close + 2];
                let mut p = Parser {
                    src: text,
                    pos: inner_start,
                    end: inner_end,
                    kind,
                    action,
                };
                let pipeline = p.pipeline(open)?;
                p.skip_ws();
                if p.pos < p.end {
                    return Err(err(
                        p.pos,
                        format!("unexpected {} in {}", excerpt(p.rest()), excerpt(action)),
                    ));
                }
                pieces.push(Piece::Action(pipeline));
            }
            pos = close + 2;
        }
        Ok(Template { pieces })
    }

    /// Expands to text.
    pub fn render(&self, data: &Data) -> Result<String, RenderError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Action(p) => eval_pipeline(p, data)?.print(&mut out),
            }
        }
        Ok(out)
    }

    /// A template that is one action and nothing else gives that action's value, typed
    /// (a number stays a number in a JSON body); any other gives its text.
    pub fn render_value(&self, data: &Data) -> Result<Value, RenderError> {
        if let [Piece::Action(p)] = self.pieces.as_slice() {
            return eval_pipeline(p, data);
        }
        self.render(data).map(Value::Str)
    }

    /// Names `$name.<field>` reads (`$secrets.token` → `("secrets", "token")`).
    pub fn variable_fields(&self) -> Vec<(String, String)> {
        fn walk(p: &Pipeline, out: &mut Vec<(String, String)>) {
            for c in &p.0 {
                let ops: &[Operand] = match c {
                    Command::Call(_, args) => args,
                    Command::Operand(o) => std::slice::from_ref(o),
                };
                for o in ops {
                    match o {
                        Operand::Var(v, fields) => {
                            if let Some(f) = fields.first() {
                                out.push((v.clone(), f.clone()));
                            }
                        }
                        Operand::Sub(p) => walk(p, out),
                        _ => {}
                    }
                }
            }
        }
        let mut out = Vec::new();
        for piece in &self.pieces {
            if let Piece::Action(p) = piece {
                walk(p, &mut out);
            }
        }
        out
    }
}

/// The `}}` closing an action, skipping those inside string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser<'t> {
    src: &'t str,
    pos: usize,
    end: usize,
    kind: Kind,
    action: &'t str,
}

impl<'t> Parser<'t> {
    fn rest(&self) -> &'t str {
        &self.src[self.pos..self.end]
    }

    fn err(&self, byte: usize, message: String) -> TemplateError {
        TemplateError {
            offset: self.src[..byte].chars().count(),
            message,
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.end && self.src.as_bytes()[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.src.as_bytes()[self.pos])
    }

    /// `command ('|' command)*`; `open` is where the action or parenthesis starts.
    fn pipeline(&mut self, open: usize) -> Result<Pipeline, TemplateError> {
        let mut commands = Vec::new();
        loop {
            self.skip_ws();
            let at = self.pos;
            let piped = !commands.is_empty();
            let cmd = self.command(open, piped)?;
            if piped && matches!(cmd, Command::Operand(_)) {
                return Err(self.err(
                    at,
                    format!(
                        "{}: only a function can follow \"|\" (functions: {FUNCTIONS})",
                        excerpt(self.action)
                    ),
                ));
            }
            commands.push(cmd);
            self.skip_ws();
            if self.peek() == Some(b'|') {
                self.pos += 1;
                continue;
            }
            return Ok(Pipeline(commands));
        }
    }

    fn command(&mut self, open: usize, piped: bool) -> Result<Command, TemplateError> {
        self.skip_ws();
        let start = self.pos;
        let word_end = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        let word = &self.rest()[..word_end.unwrap_or(self.rest().len())];
        let starts_ident = word
            .as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
        if starts_ident && !matches!(word, "true" | "false" | "nil") {
            if KEYWORDS.contains(&word) {
                return Err(self.err(
                    start,
                    format!(
                        "unsupported template action {}: {word:?} is not supported (no control structures; functions: {FUNCTIONS})",
                        excerpt(self.action)
                    ),
                ));
            }
            let Some(func) = Func::by_name(word) else {
                return Err(self.err(
                    start,
                    format!("function {word:?} not defined (functions: {FUNCTIONS})"),
                ));
            };
            self.pos += word.len();
            let mut args = Vec::new();
            loop {
                self.skip_ws();
                match self.peek() {
                    None | Some(b'|') | Some(b')') => break,
                    _ => args.push(self.operand(open)?),
                }
            }
            let n = args.len() + usize::from(piped);
            if !func.arity_ok(n) {
                let want = if func == Func::Printf {
                    "at least 1".to_string()
                } else {
                    "1".to_string()
                };
                return Err(self.err(
                    start,
                    format!(
                        "wrong number of args for {}: want {want} got {n}",
                        func.name()
                    ),
                ));
            }
            return Ok(Command::Call(func, args));
        }
        let operand = self.operand(open)?;
        self.skip_ws();
        if let Some(b) = self.peek() {
            if b != b'|' && b != b')' {
                return Err(self.err(
                    self.pos,
                    format!(
                        "unexpected {} in {}: an argument follows a value that is not a function",
                        excerpt(self.rest().trim_end()),
                        excerpt(self.action)
                    ),
                ));
            }
        }
        Ok(Command::Operand(operand))
    }

    fn operand(&mut self, open: usize) -> Result<Operand, TemplateError> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.rest();
        let Some(first) = rest.chars().next() else {
            return Err(self.err(
                open,
                format!("empty template action {}", excerpt(self.action)),
            ));
        };
        match first {
            '"' => {
                let (s, used) = go_string(rest).ok_or_else(|| {
                    self.err(
                        start,
                        format!("invalid string literal in {}", excerpt(self.action)),
                    )
                })?;
                self.pos += used;
                Ok(Operand::Lit(Value::Str(s)))
            }
            '`' => {
                let close = rest[1..]
                    .find('`')
                    .ok_or_else(|| self.err(start, "unterminated raw string".to_string()))?;
                self.pos += close + 2;
                Ok(Operand::Lit(Value::Str(rest[1..1 + close].to_string())))
            }
            '(' => {
                self.pos += 1;
                let p = self.pipeline(start)?;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err(self.err(start, "unclosed \"(\"".to_string()));
                }
                self.pos += 1;
                Ok(Operand::Sub(Box::new(p)))
            }
            '.' => {
                let fields = self.fields(start)?;
                Ok(Operand::Field(fields))
            }
            '$' => {
                self.pos += 1;
                let name_len = self
                    .rest()
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.rest().len());
                let name = self.rest()[..name_len].to_string();
                self.pos += name_len;
                let allowed = self.kind.variables();
                if !allowed.contains(&name.as_str()) {
                    let list: Vec<String> = allowed.iter().map(|v| format!("${v}")).collect();
                    return Err(self.err(
                        start,
                        format!(
                            "undefined variable \"${name}\" (variables here: {})",
                            list.join(", ")
                        ),
                    ));
                }
                let fields = if self.peek() == Some(b'.') {
                    self.fields(start)?
                } else {
                    vec![]
                };
                if name == "labels" {
                    if let Some(f) = fields.first() {
                        if !is_valid_label_name(f) {
                            return Err(self.err(
                                start,
                                format!(
                                    "invalid label name {} in {}",
                                    excerpt(f),
                                    excerpt(self.action)
                                ),
                            ));
                        }
                    }
                }
                Ok(Operand::Var(name, fields))
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let len = rest
                    .find(|c: char| c.is_ascii_whitespace() || c == '|' || c == ')')
                    .unwrap_or(rest.len());
                let lit = &rest[..len];
                let x = lit
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && !lit.contains(['i', 'I', 'n', 'N']));
                let Some(x) = x else {
                    return Err(self.err(start, format!("invalid number {}", excerpt(lit))));
                };
                self.pos += len;
                Ok(Operand::Lit(Value::Num(x)))
            }
            _ => {
                let word_len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                match &rest[..word_len] {
                    "true" => {
                        self.pos += 4;
                        Ok(Operand::Lit(Value::Bool(true)))
                    }
                    "false" => {
                        self.pos += 5;
                        Ok(Operand::Lit(Value::Bool(false)))
                    }
                    "nil" => {
                        self.pos += 3;
                        Ok(Operand::Lit(Value::Null))
                    }
                    "" => Err(self.err(
                        start,
                        format!("unexpected {} in {}", excerpt(rest), excerpt(self.action)),
                    )),
                    w => Err(self.err(
                        start,
                        format!("function {w:?} cannot be an argument; wrap it in parentheses"),
                    )),
                }
            }
        }
    }

    /// `.a.b` at `self.pos` (which is at a `.`).
    fn fields(&mut self, start: usize) -> Result<Vec<String>, TemplateError> {
        let mut fields = Vec::new();
        while self.peek() == Some(b'.') {
            self.pos += 1;
            let len = self
                .rest()
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(self.rest().len());
            if len == 0 {
                if fields.is_empty()
                    && self
                        .peek()
                        .is_none_or(|b| b.is_ascii_whitespace() || b == b'|' || b == b')')
                {
                    return Ok(fields); // `.` alone
                }
                return Err(self.err(
                    start,
                    format!("invalid field name in {}", excerpt(self.action)),
                ));
            }
            fields.push(self.rest()[..len].to_string());
            self.pos += len;
        }
        Ok(fields)
    }
}

/// A Go double-quoted string literal at the start of `s`: its value and length in bytes.
fn go_string(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'u' | 'U' | 'x' => {
                        let n = match e {
                            'u' => 4,
                            'U' => 8,
                            _ => 2,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let (_, h) = chars.next()?;
                            code = code * 16 + h.to_digit(16)?;
                        }
                        out.push(char::from_u32(code)?);
                    }
                    _ => return None,
                }
            }
            '\n' => return None,
            c => out.push(c),
        }
    }
    None
}

fn eval_pipeline(p: &Pipeline, data: &Data) -> Result<Value, RenderError> {
    let mut last: Option<Value> = None;
    for cmd in &p.0 {
        let v = match cmd {
            Command::Operand(o) => eval_operand(o, data)?,
            Command::Call(f, args) => {
                let mut vals = Vec::with_capacity(args.len() + 1);
                for a in args {
                    vals.push(eval_operand(a, data)?);
                }
                if let Some(prev) = last.take() {
                    vals.push(prev);
                }
                call(*f, &vals)?
            }
        };
        last = Some(v);
    }
    Ok(last.unwrap_or_default())
}

fn eval_operand(o: &Operand, data: &Data) -> Result<Value, RenderError> {
    Ok(match o {
        Operand::Lit(v) => v.clone(),
        Operand::Field(fields) => walk(&data.dot, fields),
        Operand::Var(name, fields) => {
            let base = data
                .vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .unwrap_or(&Value::Null);
            walk(base, fields)
        }
        Operand::Sub(p) => eval_pipeline(p, data)?,
    })
}

fn walk(v: &Value, fields: &[String]) -> Value {
    let mut cur = v.clone();
    for f in fields {
        cur = cur.field(f);
    }
    cur
}

/// Prometheus's `toFloat64`/`convertToFloat`: numbers, and strings that parse as floats.
fn to_float(func: Func, v: &Value) -> Result<f64, RenderError> {
    match v {
        Value::Num(x) => Ok(*x),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            RenderError(format!(
                "{}: strconv.ParseFloat: parsing {s:?}: invalid syntax",
                func.name()
            ))
        }),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        other => Err(RenderError(format!(
            "{}: can't convert {} to float",
            func.name(),
            other.type_name()
        ))),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok().filter(|x: &f64| x.is_finite()),
    }
}

fn call(f: Func, args: &[Value]) -> Result<Value, RenderError> {
    let one = || args.first().cloned().unwrap_or_default();
    Ok(Value::Str(match f {
        Func::Humanize => humanize(to_float(f, &one())?),
        Func::HumanizePercentage => humanize_percentage(to_float(f, &one())?),
        Func::HumanizeDuration => humanize_duration(to_float(f, &one())?),
        Func::Printf => {
            let format = args.first().map(Value::text).unwrap_or_default();
            sprintf(&format, args.get(1..).unwrap_or(&[]))
        }
        Func::ToUpper => one().text().to_uppercase(),
        Func::ToLower => one().text().to_lowercase(),
    }))
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits (`1234567` → `1.235M`).
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus's `humanizePercentage`: `0.1234` → `12.34%`.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", go_g(v * 100.0, Some(4)))
}

/// Prometheus's `humanizeDuration` (seconds): `90061` → `1d 1h 1m 1s`, `0.25` → `250ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        // Go's int64(v) on amd64: out of range gives the smallest int64.
        let whole = if v < 9.223_372_036_854_776e18 {
            v as i64
        } else {
            i64::MIN
        };
        let (seconds, minutes, hours, days) = (
            whole % 60,
            (whole / 60) % 60,
            (whole / 3600) % 24,
            whole / 86400,
        );
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", go_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, Some(4)))
}

/// Decimal digits of `|v|` (no trailing zeros, at least one) and the decimal point position:
/// `v = 0.d1d2... × 10^dp`. `None` precision: the shortest digits that round-trip.
fn digits(v: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    if d == "0" {
        return (d, 1);
    }
    (d, exp + 1)
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// Go's `%e` with `prec` digits after the point: `1.235e+06`.
fn go_e(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{:.*e}", prec, v.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}e{esign}{:02}", exp.unsigned_abs())
}

/// Go's `%g` (`None`: shortest, `%v`), trailing zeros dropped, as `strconv.FormatFloat`.
fn go_g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0");
    }
    let (d, dp) = digits(v, prec.map(|p| p.max(1)));
    let nd = d.len() as i32;
    let mut eprec = prec.map_or(6, |p| p.max(1) as i32);
    if let Some(p) = prec {
        let p = p.max(1) as i32;
        if p > nd && nd >= dp {
            eprec = nd;
        }
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        let mut out = String::from(sign);
        out.push_str(&d[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&d[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{esign}{:02}", exp.unsigned_abs());
        return out;
    }
    // %f with max(nd - dp, 0) decimals, from the digits.
    let mut out = String::from(sign);
    if dp <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-dp) as usize));
        out.push_str(&d);
    } else if dp >= nd {
        out.push_str(&d);
        out.extend(std::iter::repeat_n('0', (dp - nd) as usize));
    } else {
        out.push_str(&d[..dp as usize]);
        out.push('.');
        out.push_str(&d[dp as usize..]);
    }
    out
}

/// The largest `printf` width or precision (Go's is 10^6).
const MAX_WIDTH: usize = 1000;

/// Go's `fmt.Sprintf` for the verbs templates use. Numbers are float64, as in Prometheus's
/// templates, except that `%d` prints a number's integer part (Go prints `%!d(float64=…)`).
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut space, mut zero, mut sharp) =
            (false, false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                ' ' => space = true,
                '0' => zero = true,
                '#' => sharp = true,
                _ => break,
            }
            chars.next();
        }
        let mut width: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(
                width
                    .unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(d as usize),
            );
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p: usize = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p.saturating_mul(10).saturating_add(d as usize);
                chars.next();
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        // Go flags widths and precisions over 10^6 (`%!(BADWIDTH)`) and formats without
        // them; the bound is tighter here, so one action cannot ask for megabytes.
        if width.is_some_and(|w| w > MAX_WIDTH) {
            out.push_str("%!(BADWIDTH)");
            width = None;
        }
        if prec.is_some_and(|p| p > MAX_WIDTH) {
            out.push_str("%!(BADPREC)");
            prec = None;
        }
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let body = match (verb, arg) {
            ('v', Value::Num(x)) | ('g', Value::Num(x)) => go_g(*x, prec.filter(|_| verb == 'g')),
            ('G', Value::Num(x)) => go_g(*x, prec).to_uppercase(),
            ('f' | 'F', Value::Num(x)) => {
                special(*x).unwrap_or_else(|| format!("{:.*}", prec.unwrap_or(6), x))
            }
            ('e', Value::Num(x)) => go_e(*x, prec.unwrap_or(6)),
            ('E', Value::Num(x)) => go_e(*x, prec.unwrap_or(6)).to_uppercase(),
            ('d', Value::Num(x)) => special(*x).unwrap_or_else(|| format!("{}", x.trunc() as i64)),
            ('s' | 'v', v) => {
                let t = v.text();
                match prec {
                    Some(p) => t.chars().take(p).collect(),
                    None => t,
                }
            }
            ('q', v) => serde_json::Value::String(v.text()).to_string(),
            ('x' | 'X', Value::Str(s)) => {
                let h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    h.to_uppercase()
                } else {
                    h
                }
            }
            ('x' | 'X', Value::Num(x)) if x.fract() == 0.0 && x.is_finite() => {
                let n = *x as i64;
                let h = if n < 0 {
                    format!("-{:x}", n.unsigned_abs())
                } else {
                    format!("{n:x}")
                };
                if verb == 'X' {
                    h.to_uppercase()
                } else {
                    h
                }
            }
            ('t', Value::Bool(b)) => b.to_string(),
            (_, v) => format!("%!{verb}({}={})", v.type_name(), v.text()),
        };
        let _ = sharp;
        let numeric = matches!(arg, Value::Num(_)) && "vgGfFeEdxX".contains(verb);
        let mut body = body;
        if numeric && !body.starts_with('-') && (plus || space) && !body.starts_with('+') {
            body.insert(0, if plus { '+' } else { ' ' });
        }
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.extend(std::iter::repeat_n(' ', pad));
                } else if zero && numeric && !body.contains(['N', 'I']) {
                    let (sign, digits) = match body.chars().next() {
                        Some(s @ ('-' | '+' | ' ')) => (Some(s), &body[1..]),
                        _ => (None, body.as_str()),
                    };
                    if let Some(s) = sign {
                        out.push(s);
                    }
                    out.extend(std::iter::repeat_n('0', pad));
                    out.push_str(digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|v| format!("{}={}", v.type_name(), v.text()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// A webhook's `body_template`: JSON (written as YAML) whose strings are templates over the
/// payload. A string that is one action and nothing else (`"{{ .labels }}"`) gives that
/// value with its JSON type; any other string gives its expanded text.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    Literal(serde_json::Value),
    Text(Template),
    List(Vec<BodyTemplate>),
    Map(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// The body for one delivery: `payload` is `.`, `secrets` is `$secrets`.
    pub fn render(
        &self,
        payload: &serde_json::Value,
        secrets: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value, RenderError> {
        let data = Data {
            dot: Value::from_json(payload),
            vars: vec![(
                "secrets",
                Value::Map(
                    secrets
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                        .collect(),
                ),
            )],
        };
        self.render_with(&data)
    }

    fn render_with(&self, data: &Data) -> Result<serde_json::Value, RenderError> {
        Ok(match self {
            BodyTemplate::Literal(v) => v.clone(),
            BodyTemplate::Text(t) => t.render_value(data)?.to_json(),
            BodyTemplate::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| i.render_with(data))
                    .collect::<Result<_, _>>()?,
            ),
            BodyTemplate::Map(items) => serde_json::Value::Object(
                items
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render_with(data)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
        })
    }
}

/// Checks an annotation template at load time.
pub fn validate_template(template: &str) -> Result<(), TemplateError> {
    Template::parse(template, Kind::Annotation).map(|_| ())
}

/// Expands an annotation template for one series. `value: None` prints `NaN`. A template that
/// does not parse (never the case for a loaded rule) is returned as written; one whose
/// function refuses its argument gives `<error expanding template: …>`, as Prometheus does.
pub fn expand(template: &str, labels: &Labels, value: Option<f64>) -> String {
    let Ok(t) = Template::parse(template, Kind::Annotation) else {
        return template.to_string();
    };
    match t.render(&Data::annotation(labels, value)) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

/// Go's `%v` for a float64: shortest digits that round-trip; `%e` form when the exponent is
/// below -4 or at least 6 (`1e+06`, `1.2e-09`).
pub fn format_value(v: f64) -> String {
    go_g(v, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        [("model", "fraud"), ("feature", "amount")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_labels_and_value() {
        let l = labels();
        let cases = [
            (
                "amount drifted for {{ $labels.model }} (D={{ $value }})",
                Some(0.31),
                "amount drifted for fraud (D=0.31)",
            ),
            (
                "{{$labels.model}}/{{$labels.feature}}",
                None,
                "fraud/amount",
            ),
            ("{{   $labels.model\t}}", None, "fraud"),
            ("missing: [{{ $labels.nope }}]", None, "missing: []"),
            ("no value: {{ $value }}", None, "no value: NaN"),
            (
                "plain text, } and { alone",
                None,
                "plain text, } and { alone",
            ),
            ("trailing }}", None, "trailing }}"),
            ("", None, ""),
            ("é{{ $value }}é", Some(1.0), "é1é"),
            ("{{ .Labels.model }} {{ .Value }}", Some(2.5), "fraud 2.5"),
            ("a  {{- $value -}}  b", Some(1.0), "a1b"),
            ("a{{/* note */}}b", None, "ab"),
        ];
        for (t, v, want) in cases {
            assert_eq!(validate_template(t), Ok(()), "{t}");
            assert_eq!(expand(t, &l, v), want, "{t}");
        }
    }

    #[test]
    fn functions_as_prometheus_has_them() {
        let l = labels();
        let cases = [
            ("{{ $value | humanize }}", Some(1234567.0), "1.235M"),
            ("{{ humanize $value }}", Some(0.000123), "123u"),
            ("{{ $value | humanizePercentage }}", Some(0.1234), "12.34%"),
            ("{{ printf \"%.2f\" $value }}", Some(0.785), "0.79"),
            ("{{ $value | printf \"%.3f\" }}", Some(0.7849999999999999), "0.785"),
            (
                "{{ printf \"%s is %.1f%%\" $labels.model 12.25 }}",
                None,
                "fraud is 12.2%",
            ),
            ("{{ humanize \"1234\" }}", None, "1.234k"),
            ("{{ 90061 | humanizeDuration }}", None, "1d 1h 1m 1s"),
            ("{{ $labels.model | toUpper }}", None, "FRAUD"),
            ("{{ printf \"%5.1f|%-6s|%05d\" 3.14159 \"ab\" 42 }}", None, "  3.1|ab    |00042"),
            ("{{ printf \"%e %g %v\" 1234567.0 0.00001 1e21 }}", None, "1.234567e+06 1e-05 1e+21"),
            ("{{ printf \"%q\" $labels.model }}", None, "\"fraud\""),
            ("{{ printf \"%d\" }}", None, "%!d(MISSING)"),
            ("{{ printf \"x\" 1 }}", None, "x%!(EXTRA float64=1)"),
            ("{{ humanize (printf \"%f\" $value) }}", Some(2e9), "2G"),
            ("{{ humanize \"abc\" }}", None, "<error expanding template: humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax>"),
            // Found by the fuzzer: a width that overflowed; widths past 1000 are refused.
            ("{{ printf \"%55555555555555555555555.2g|%1001d|%.1001f|%3d\" $value 1 2 3 }}", Some(1.0), "%!(BADWIDTH)1|%!(BADWIDTH)1|%!(BADPREC)2.000000|  3"),
        ];
        for (t, v, want) in cases {
            assert_eq!(validate_template(t), Ok(()), "{t}");
            assert_eq!(expand(t, &l, v), want, "{t}");
        }
    }

    /// What Prometheus's template.go prints for the same inputs (Go's `%.4g`).
    #[test]
    fn humanize_matches_go() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (999.0, "999"),
            (1000.0, "1k"),
            (1234567.0, "1.235M"),
            (12345.0, "12.35k"),
            (1e30, "1e+06Y"),
            (-1234.0, "-1.234k"),
            (0.1, "100m"),
            (0.0012345, "1.234m"),
            (1e-30, "1e-06y"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(humanize(v), want, "{v}");
        }
        for (v, want) in [
            (0.1234, "12.34%"),
            (1.0, "100%"),
            (0.5, "50%"),
            (0.000012, "0.0012%"),
        ] {
            assert_eq!(humanize_percentage(v), want, "{v}");
        }
        for (v, want) in [
            (0.0, "0s"),
            (1.5, "1.5s"),
            (61.0, "1m 1s"),
            (3600.0, "1h 0m 0s"),
            (0.001, "1ms"),
            (-90.0, "-1m 30s"),
        ] {
            assert_eq!(humanize_duration(v), want, "{v}");
        }
    }

    #[test]
    fn values_print_like_go() {
        let cases = [
            (0.31, "0.31"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (100000.0, "100000"),
            (123456.5, "123456.5"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1.2e-9, "1.2e-09"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e100, "1e+100"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v:?}");
        }
    }

    #[test]
    fn rejects_what_it_does_not_know_at_its_column() {
        let cases = [
            ("a {{ .Foo.x-y }}", 11, "unexpected \"-y\" in \"{{ .Foo.x-y }}\": an argument follows a value that is not a function"),
            ("{{ $value | humanise }}", 12, "function \"humanise\" not defined (functions: humanize, humanizePercentage, humanizeDuration, printf, toUpper, toLower)"),
            ("ok {{ if $value }}x{{ end }}", 6, "unsupported template action \"{{ if $value }}\": \"if\" is not supported (no control structures; functions: humanize, humanizePercentage, humanizeDuration, printf, toUpper, toLower)"),
            ("{{ $labels.a-b }}", 12, "unexpected \"-b\" in \"{{ $labels.a-b }}\": an argument follows a value that is not a function"),
            ("{{}}", 0, "empty template action \"{{}}\""),
            ("ok {{ $value }} then {{ $labels.x", 21, "unclosed \"{{\""),
            ("éé {{", 3, "unclosed \"{{\""),
            ("{{ $secrets.x }}", 3, "undefined variable \"$secrets\" (variables here: $labels, $value)"),
            ("{{ humanize 1 2 }}", 3, "wrong number of args for humanize: want 1 got 2"),
            ("{{ $value | $value }}", 12, "\"{{ $value | $value }}\": only a function can follow \"|\" (functions: humanize, humanizePercentage, humanizeDuration, printf, toUpper, toLower)"),
            ("{{ printf }}", 3, "wrong number of args for printf: want at least 1 got 0"),
        ];
        let mut wrong = Vec::new();
        for (t, offset, message) in cases {
            let err = validate_template(t).expect_err(t);
            if (err.offset, err.message.as_str()) != (offset, message) {
                wrong.push(format!("{t}: {} {:?}", err.offset, err.message));
            }
            assert_eq!(
                expand(t, &labels(), None),
                t,
                "invalid templates expand to themselves"
            );
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// Every prefix and suffix of tricky templates parses or fails cleanly, never panics, and
    /// what parses expands.
    #[test]
    fn cut_templates_never_panic() {
        let tricky = [
            "é {{- $value | printf \"%5.2f|%q\" \"a}}b\" -}} ü {{/* c */}}",
            "{{ humanize (printf `%e` (toUpper $labels.x)) }}{{ .Labels.é }}",
            "{{ printf \"%-+08.3e%%%v%!\" -1e-300 1e300 }}{{ \"\\u00e9\\x41\" }}",
            "{{ $value | humanizeDuration | toLower }}{{{{}}}}{{ }}",
        ];
        let l = labels();
        for t in tricky {
            for (i, _) in t.char_indices().chain([(t.len(), ' ')]) {
                for part in [&t[..i], &t[i..]] {
                    let _ = expand(part, &l, Some(1.5));
                    if let Ok(b) = Template::parse(part, Kind::Body) {
                        let _ = b.render(&Data {
                            dot: Value::Null,
                            vars: vec![],
                        });
                    }
                }
            }
        }
    }

    #[test]
    fn body_templates_see_the_payload_and_secrets_and_keep_types() {
        let payload = serde_json::json!({"rule": "r", "statistic": 0.5, "labels": {"model": "m"}, "value": null});
        let data = Data {
            dot: Value::from_json(&payload),
            vars: vec![(
                "secrets",
                Value::Map(BTreeMap::from([("t".to_string(), Value::Str("s3".into()))])),
            )],
        };
        let t = |s: &str| Template::parse(s, Kind::Body).expect(s);
        assert_eq!(
            t("{{ .statistic }}").render_value(&data),
            Ok(Value::Num(0.5))
        );
        assert_eq!(
            t("{{ .labels }}").render_value(&data).map(|v| v.to_json()),
            Ok(serde_json::json!({"model": "m"}))
        );
        assert_eq!(
            t("{{ . }}").render_value(&data).map(|v| v.to_json()),
            Ok(payload)
        );
        assert_eq!(
            t("x-{{ .statistic }}").render_value(&data),
            Ok(Value::Str("x-0.5".into()))
        );
        assert_eq!(
            t("{{ $secrets.t }}/{{ .nope }}").render(&data),
            Ok("s3/".into())
        );
        assert_eq!(t("{{ .value }}").render_value(&data), Ok(Value::Null));
        let e = Template::parse("{{ $labels.x }}", Kind::Body).expect_err("no $labels");
        assert_eq!(
            e.message,
            "undefined variable \"$labels\" (variables here: $secrets)"
        );
    }
}
