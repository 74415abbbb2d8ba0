//! The one integration test binary: real servers on loopback, real webhook receivers.

mod check;
mod chi2_vectors;
mod cli;
mod disk_full;
mod divergence_vectors;
mod durability;
mod ema_vectors;
mod exposition;
mod fixture;
mod hostile;
mod ks_vectors;
mod npy_eval;
mod prom;
mod prometheus;
mod prometheus_feeds;
mod properties;
mod query;
mod receiver;
mod reference;
mod remote_write;
mod scrape;
mod service;
mod support;
mod tidy;
mod webauth;
mod webhook;
