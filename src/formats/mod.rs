//! Wire and file formats, pure: bytes in, typed values out (and text out for `/metrics`).
//! No async, no I/O, no clock; the callers read bodies and files.

pub mod exposition;
pub mod npy;
pub mod prom_api;
pub mod push;
pub mod remote_write;
pub mod values;
