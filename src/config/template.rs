//! Annotation templates: `{{ $labels.name }}` and `{{ $value }}`, nothing else.
//!
//! A small, safe subset of Prometheus's Go templates: whitespace inside the braces is
//! optional; a label the series lacks expands to `""` (Prometheus's `missingkey=zero`);
//! `$value` prints like Go's `%v` (shortest round-trip digits, exponent form below 1e-4 and
//! from 1e+06, `NaN`, `+Inf`, `-Inf`), and as `NaN` when the rule has no value (no verdict).
//! Any other action (`{{ .Foo }}`, pipes, functions) or an unclosed `{{` is a rule error.

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

enum Piece<'t> {
    Text(&'t str),
    Label(&'t str),
    Value,
}

/// Splits a template into pieces; `Err` on the first unsupported or unclosed action.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut consumed = 0; // bytes of `template` before `rest`
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let offset = template[..consumed + open].chars().count();
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError {
                offset,
                message: "unclosed \"{{\"".to_string(),
            });
        };
        let action = after[..close].trim();
        if action == "$value" {
            out.push(Piece::Value);
        } else if let Some(name) = action
            .strip_prefix("$labels.")
            .filter(|n| is_valid_label_name(n))
        {
            out.push(Piece::Label(name));
        } else {
            return Err(TemplateError {
                offset,
                message: format!(
                    "unsupported template action {}: only {{{{ $labels.<name> }}}} and {{{{ $value }}}} are supported",
                    excerpt(&rest[open..open + 2 + close + 2])
                ),
            });
        }
        let used = open + 2 + close + 2;
        consumed += used;
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks a template at load time.
pub fn validate_template(template: &str) -> Result<(), TemplateError> {
    pieces(template).map(|_| ())
}

/// Expands a template for one series. `value: None` prints `NaN`. A template that does not
/// validate (never the case for a loaded rule) is returned as written.
pub fn expand(template: &str, labels: &Labels, value: Option<f64>) -> String {
    let Ok(pieces) = pieces(template) else {
        return template.to_string();
    };
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Label(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
            Piece::Value => out.push_str(&format_value(value.unwrap_or(f64::NAN))),
        }
    }
    out
}

/// Go's `%v` for a float64: shortest digits that round-trip; `%e` form when the exponent is
/// below -4 or at least 6 (`1e+06`, `1.2e-09`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return format!("{v}");
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
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
        ];
        for (t, v, want) in cases {
            assert_eq!(validate_template(t), Ok(()), "{t}");
            assert_eq!(expand(t, &l, v), want, "{t}");
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
    fn rejects_other_actions() {
        let cases = [
            ("a {{ .Foo }}", 2, "unsupported template action \"{{ .Foo }}\": only {{ $labels.<name> }} and {{ $value }} are supported"),
            ("{{ $value | humanize }}", 0, "unsupported template action \"{{ $value | humanize }}\": only {{ $labels.<name> }} and {{ $value }} are supported"),
            ("{{ $labels }}", 0, "unsupported template action \"{{ $labels }}\": only {{ $labels.<name> }} and {{ $value }} are supported"),
            ("{{ $labels.a-b }}", 0, "unsupported template action \"{{ $labels.a-b }}\": only {{ $labels.<name> }} and {{ $value }} are supported"),
            ("{{}}", 0, "unsupported template action \"{{}}\": only {{ $labels.<name> }} and {{ $value }} are supported"),
            ("ok {{ $value }} then {{ $labels.x", 21, "unclosed \"{{\""),
            ("éé {{", 3, "unclosed \"{{\""),
        ];
        for (t, offset, message) in cases {
            let err = validate_template(t).expect_err(t);
            assert_eq!((err.offset, err.message.as_str()), (offset, message), "{t}");
            assert_eq!(
                expand(t, &labels(), None),
                t,
                "invalid templates expand to themselves"
            );
        }
    }
}
