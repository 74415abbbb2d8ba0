//! PromQL-style series selectors: `metric{label="v", other=~"re.*"}`.

#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub source: String,
}
