//! The one integration test binary: real servers on loopback, real webhook receivers.

mod ks_vectors;
