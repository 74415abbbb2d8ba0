//! Per-series windows: frozen or rolling references and current windows.
