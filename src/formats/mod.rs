//! Wire and file formats, pure: bytes in, typed values out (and text out for `/metrics`).
//! No async, no I/O, no clock; the callers read bodies and files.

pub mod exposition;
pub mod native;
pub mod npy;
pub mod prom_api;
pub mod push;
pub mod remote_write;
pub mod svg;
pub mod values;

/// Most characters of input an error message quotes: a bad line of a 1 GiB file must not
/// make a 1 GiB message.
pub const EXCERPT_CHARS: usize = 64;

/// `text` quoted and escaped as `{:?}` does, cut after its first [`EXCERPT_CHARS`]
/// characters; a `…` after the closing quote marks the cut. For error messages that quote
/// input.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…", &text[..end]),
    }
}

/// [`excerpt`] without the quotes: for input already known to be a word or a number, written
/// into a message as it is (`got 123`), still escaped and cut.
pub fn clip(text: &str) -> String {
    let (head, cut) = match text.char_indices().nth(EXCERPT_CHARS) {
        None => (text, false),
        Some((end, _)) => (&text[..end], true),
    };
    let quoted = format!("{head:?}");
    let mut out = quoted[1..quoted.len() - 1].to_string();
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("two"), "\"two\"");
        assert_eq!(excerpt("it's \"x\"\n"), "\"it's \\\"x\\\"\\n\"");
        let long = "\0".repeat(10 << 20);
        let e = excerpt(&long);
        assert_eq!(e, format!("\"{}\"…", "\\0".repeat(EXCERPT_CHARS)));
        assert_eq!(
            excerpt(&"é".repeat(EXCERPT_CHARS)),
            format!("{:?}", "é".repeat(64))
        );
        assert_eq!(clip("123"), "123");
        assert_eq!(
            clip(&"9".repeat(100)),
            format!("{}…", "9".repeat(EXCERPT_CHARS))
        );
        assert_eq!(clip("a\tb"), "a\\tb");
    }
}
