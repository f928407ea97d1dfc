//! The domain of the transaction pipeline: ids (transactions, client apps, deliveries), money,
//! statuses and the one transition rule, job payloads and their ids, the schedules of every
//! retry and poll, a delivery attempt's record, what a peer's answer means, which dead work is
//! still owed, list cursors, client apps and their API keys, webhook signatures and the
//! simulators' fault rolls.
//! Pure: no I/O and no async, so everything here is tested without a network.
#![deny(unsafe_code)]

pub mod answer;
pub mod client_app;
pub mod delivery;
pub mod delivery_id;
pub mod fault;
pub mod jobs;
pub mod money;
pub mod owner;
pub mod page_cursor;
pub mod schedule;
pub mod signature;
pub mod status;
pub mod transaction_id;
mod uuid_id;
pub mod webhook_secrets;

pub use client_app::{ClientAppId, ClientStatus};
pub use delivery_id::DeliveryId;
pub use jobs::QueueName;
pub use money::{Amount, Currency, Money};
pub use status::{Source, Status, WebhookDecision};
pub use transaction_id::TransactionId;
pub use webhook_secrets::WebhookSecrets;
