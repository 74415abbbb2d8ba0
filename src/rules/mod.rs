//! Rules and service config: model, parsing with positions, validation.

pub mod model;
pub mod selector;
