//! The one integration test binary: real servers on loopback, real webhook receivers.

mod check;
mod cli;
mod durability;
mod ema_vectors;
mod exposition;
mod ks_vectors;
mod receiver;
mod service;
mod support;
mod webhook;
