//! The transaction id: a UUID, made by the server (v7) when the client sends none.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A transaction's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionId(Uuid);

impl TransactionId {
    /// A new time-ordered id (UUIDv7).
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the text form of a UUID.
    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(Self)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// The namespace of ids derived from idempotency keys (a fixed, random UUID: never change it,
/// or retries across a deployment would get new ids).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_f1a4_6b3e_4c8e_9a27_41f0_83b6_d2e9);

/// A client's `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Accepts 1–255 printable ASCII characters (space to `~`).
    pub fn parse(value: &[u8]) -> Result<Self, &'static str> {
        if value.is_empty() || value.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !value.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err("must be printable ASCII");
        }
        Ok(Self(String::from_utf8_lossy(value).into_owned()))
    }
}

impl TransactionId {
    /// The id a client's idempotency key stands for in deployment `prefix`: a UUIDv5, so the
    /// same key always names the same transaction, and two deployments never share one.
    pub fn from_idempotency_key(prefix: &str, key: &IdempotencyKey) -> Self {
        let name = format!("{prefix}\u{0}{}", key.0);
        Self(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes()))
    }
}

impl TransactionId {
    /// The W3C `traceparent` the transaction's work continues when no caller named a trace:
    /// its trace id is the transaction id (so the id finds the trace), its parent span the
    /// id's last 8 bytes (1 when those are zero), not sampled. `None` for the nil id, which is
    /// no valid trace id.
    ///
    /// Being derived from the id, it need not be stored beside it: a `create` job whose trace
    /// is this one leaves it out (a backlog holds one job per waiting transaction).
    pub fn implied_trace(&self) -> Option<String> {
        let bytes = self.implied_trace_bytes()?;
        std::str::from_utf8(&bytes).ok().map(str::to_string)
    }

    /// Whether `traceparent` is [`TransactionId::implied_trace`] (compared without making it).
    pub fn is_implied_trace(&self, traceparent: &str) -> bool {
        self.implied_trace_bytes()
            .is_some_and(|bytes| bytes == traceparent.as_bytes())
    }

    /// The implied trace's 55 ASCII bytes: the span's hex is the id's last 16 hex digits.
    fn implied_trace_bytes(&self) -> Option<[u8; 55]> {
        let bytes = self.0.as_bytes();
        if bytes.iter().all(|b| *b == 0) {
            return None;
        }
        let mut out = *b"00-00000000000000000000000000000000-0000000000000001-00";
        self.0.simple().encode_lower(&mut out[3..35]);
        if bytes[8..].iter().any(|b| *b != 0) {
            out.copy_within(19..35, 36);
        }
        Some(out)
    }
}

impl From<Uuid> for TransactionId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl FromStr for TransactionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_names_one_id_per_deployment() {
        let key = IdempotencyKey::parse(b"order-42").unwrap();
        let a = TransactionId::from_idempotency_key("txn", &key);
        assert_eq!(a, TransactionId::from_idempotency_key("txn", &key));
        assert_ne!(a, TransactionId::from_idempotency_key("other", &key));
        let other = IdempotencyKey::parse(b"order-43").unwrap();
        assert_ne!(a, TransactionId::from_idempotency_key("txn", &other));
        assert_eq!(a.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn the_implied_trace_is_the_id_with_a_valid_span_and_no_sampling() {
        let id = TransactionId::parse("0192f5e8-7d3a-7b4c-9e1f-2a3b4c5d6e7f").unwrap();
        assert_eq!(
            id.implied_trace().as_deref(),
            Some("00-0192f5e87d3a7b4c9e1f2a3b4c5d6e7f-9e1f2a3b4c5d6e7f-00")
        );
        // A span id of zero is invalid: the last 8 bytes zero give span 1.
        let low_zero = TransactionId::from(Uuid::from_u128(0xabcd << 64));
        assert_eq!(
            low_zero.implied_trace().as_deref(),
            Some("00-000000000000abcd0000000000000000-0000000000000001-00")
        );
        assert!(id.is_implied_trace("00-0192f5e87d3a7b4c9e1f2a3b4c5d6e7f-9e1f2a3b4c5d6e7f-00"));
        assert!(!id.is_implied_trace("00-0192f5e87d3a7b4c9e1f2a3b4c5d6e7f-9e1f2a3b4c5d6e7f-01"));
        // A trace id of zero is invalid: the nil id has none.
        assert_eq!(TransactionId::from(Uuid::nil()).implied_trace(), None);
        // Two ids, two traces.
        let (a, b) = (TransactionId::generate(), TransactionId::generate());
        assert_ne!(a.implied_trace(), b.implied_trace());
    }

    #[test]
    fn idempotency_keys_are_short_printable_ascii() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
    }
}
