//! The HTTP clients the pipeline calls out with: the third party's (look up, submit), the
//! client app's (signed status notifications), and the one way both are built (TLS, timeouts,
//! an extra CA bundle). What their answers mean is `domain::answer`'s rule, applied here.
#![deny(unsafe_code)]

pub mod http_client;
pub mod notifier;
pub mod thirdparty;
