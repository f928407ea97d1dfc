//! The handlers, one module per resource.

pub mod health;
pub mod notification;
pub mod transaction;
pub mod transactions;
pub mod webhook;
