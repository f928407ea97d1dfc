//! What every service binary shares, whatever it does: the settings groups several binaries
//! flatten (`config`), secrets that never print (`secret`), start-up and `check-config`
//! (`start`), the one HTTP server (`serve`), the shutdown token (`shutdown`), logging and
//! metrics (`telemetry`), and traces (`trace`, with the health of their collector in
//! `collector`). It knows nothing of transactions.
#![deny(unsafe_code)]

pub mod bearer;
mod collector;
pub mod config;
pub mod misconfiguration;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod start;
pub mod telemetry;
pub mod trace;
