//! End-to-end test suite of the transaction pipeline; the code lives in `crates/`.
