//! The domain of the transaction pipeline, shared by the producer, the consumer and the
//! simulators: everything here can be tested without a network, except `store` (Postgres),
//! `id_cache` (Redis) and the HTTP clients, which are thin.
#![deny(unsafe_code)]

pub mod answer;
/// Opportunistic batching (it lives with the queue, whose pushes use it too).
pub use queue::batch;
pub mod config;
pub mod fault;
pub mod http_client;
pub mod id_cache;
pub mod jobs;
pub mod money;
pub mod notifier;
pub mod owner;
pub mod redis_marker;
pub mod schedule;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod signature;
pub mod start;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod thirdparty;
pub mod transaction_id;

pub use jobs::QueueName;
pub use money::{Amount, Currency, Money};
pub use status::{Source, Status, WebhookDecision};
pub use transaction_id::TransactionId;
