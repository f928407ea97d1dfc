//! Request bodies parsed once, at the edge, into domain types. Everything past this module
//! works with valid values only.

use domain::{Amount, Currency, Money, Status, TransactionId, transaction_id::IdempotencyKey};
use serde_json::{Map, Value};

use crate::problem::{ApiError, FieldError};

/// A valid `POST /transaction` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransaction {
    /// The client's id, or a fresh UUIDv7.
    pub id: TransactionId,
    /// Whether the id was made here just now (no `id`, no `Idempotency-Key`): no one can know it.
    pub fresh_id: bool,
    /// Amount and currency come together or not at all.
    pub money: Option<Money>,
}

/// A valid `POST /webhook` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedStatus {
    /// The transaction.
    pub id: TransactionId,
    /// What the third party says (never `failed`: that status is ours).
    pub status: Status,
}

/// Parses a JSON object; an empty body (no bytes at all: whitespace is not JSON) or `null`
/// counts as `{}` when `empty_ok`.
fn object(body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, ApiError> {
    if empty_ok && body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        // `null` is no body at all, as the OpenAPI document's optional body allows.
        Ok(Value::Null) if empty_ok => Ok(Map::new()),
        Ok(_) => Err(ApiError::Invalid(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )])),
        Err(e) => Err(ApiError::MalformedJson(format!(
            "body is not valid JSON: {e}"
        ))),
    }
}

fn parse_id(value: &Value, errors: &mut Vec<FieldError>) -> Option<TransactionId> {
    match value.as_str().map(TransactionId::parse) {
        Some(Ok(id)) => Some(id),
        _ => {
            errors.push(FieldError::new("id", "must be a UUID string"));
            None
        }
    }
}

/// The header that makes a POST without an id retryable.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The fields of a `POST /transaction` body; any other is refused.
const TRANSACTION_FIELDS: [&str; 3] = ["id", "amount", "currency"];

/// Parses a `POST /transaction` body (an empty body is a valid request). Without an `id`, the
/// id is derived from `key` (the `Idempotency-Key` header, under deployment `prefix`), or made
/// fresh; a key together with an `id` is an error.
pub fn new_transaction(
    body: &[u8],
    key: Option<&[u8]>,
    prefix: &str,
) -> Result<NewTransaction, ApiError> {
    let map = object(body, true)?;
    let mut errors: Vec<FieldError> = map
        .keys()
        .filter(|k| !TRANSACTION_FIELDS.contains(&k.as_str()))
        .map(|k| FieldError::new(k, "unknown field (id, amount and currency are)"))
        .collect();
    let key = match key.map(IdempotencyKey::parse) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => {
            errors.push(FieldError::new("Idempotency-Key", e));
            None
        }
    };
    let fresh_id = matches!((map.get("id"), &key), (None | Some(Value::Null), None));
    let id = match (map.get("id"), &key) {
        (None | Some(Value::Null), Some(key)) => {
            Some(TransactionId::from_idempotency_key(prefix, key))
        }
        (None | Some(Value::Null), None) => Some(TransactionId::generate()),
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "Idempotency-Key",
                "cannot be combined with an id in the body (the key stands for the id)",
            ));
            None
        }
        (Some(v), None) => parse_id(v, &mut errors),
    };
    let amount = match map.get("amount") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_i64()
            .ok_or_else(|| "must be an integer of minor units".to_string())
            .and_then(Amount::parse)
        {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(FieldError::new("amount", e));
                None
            }
        },
    };
    let currency = match map.get("currency") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_str()
            .ok_or_else(|| "must be a string".to_string())
            .and_then(Currency::parse)
        {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(FieldError::new("currency", e));
                None
            }
        },
    };
    let has = |f: &str| map.get(f).is_some_and(|v| !v.is_null());
    match (has("amount"), has("currency")) {
        (true, false) => errors.push(FieldError::new(
            "currency",
            "is required when amount is given",
        )),
        (false, true) => errors.push(FieldError::new(
            "amount",
            "is required when currency is given",
        )),
        _ => {}
    }
    match (id, errors.is_empty()) {
        (Some(id), true) => Ok(NewTransaction {
            id,
            fresh_id,
            money: amount
                .zip(currency)
                .map(|(amount, currency)| Money { amount, currency }),
        }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// Parses a `POST /webhook` body.
pub fn reported_status(body: &[u8]) -> Result<ReportedStatus, ApiError> {
    let map = object(body, false)?;
    let mut errors = Vec::new();
    let id = match map.get("id") {
        Some(v) => parse_id(v, &mut errors),
        None => {
            errors.push(FieldError::new("id", "is required"));
            None
        }
    };
    let status = match map.get("status").and_then(Value::as_str) {
        Some("failed") => {
            errors.push(FieldError::new(
                "status",
                "\"failed\" is never reported by the third party",
            ));
            None
        }
        Some(s) => match s.parse::<Status>() {
            Ok(status) => Some(status),
            Err(_) => {
                errors.push(FieldError::new(
                    "status",
                    "must be one of pending, completed, declined",
                ));
                None
            }
        },
        None => {
            errors.push(FieldError::new(
                "status",
                "is required (pending, completed or declined)",
            ));
            None
        }
    };
    match (id, status) {
        (Some(id), Some(status)) if errors.is_empty() => Ok(ReportedStatus { id, status }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_body_gets_a_fresh_id() {
        let t = new_transaction(b"", None, "txn").unwrap();
        assert_eq!(t.money, None);
        assert_eq!(t.id.as_uuid().get_version_num(), 7);
        assert!(new_transaction(b"  {} ", None, "txn").is_ok());
    }

    #[test]
    fn every_field_error_is_named() {
        assert_eq!(
            fields(new_transaction(br#"{"id":"nope"}"#, None, "txn").unwrap_err()),
            ["id"]
        );
        assert_eq!(
            fields(new_transaction(br#"{"amount":0,"currency":"EUR"}"#, None, "txn").unwrap_err()),
            ["amount"]
        );
        assert_eq!(
            fields(new_transaction(br#"{"amount":5,"currency":"eur"}"#, None, "txn").unwrap_err()),
            ["currency"]
        );
        assert_eq!(
            fields(new_transaction(br#"{"amount":5}"#, None, "txn").unwrap_err()),
            ["currency"]
        );
        assert_eq!(
            fields(new_transaction(br#"{"currency":"EUR"}"#, None, "txn").unwrap_err()),
            ["amount"]
        );
        assert_eq!(
            fields(
                new_transaction(br#"{"amount":1.5,"currency":"EUR"}"#, None, "txn").unwrap_err()
            ),
            ["amount"]
        );
    }

    #[test]
    fn an_idempotency_key_stands_for_the_id_and_cannot_come_with_one() {
        let a = new_transaction(b"", Some(b"order-1"), "txn").unwrap();
        let b = new_transaction(b"{}", Some(b"order-1"), "txn").unwrap();
        assert_eq!(a.id, b.id, "the same key, the same id");
        assert_eq!(a.id.as_uuid().get_version_num(), 5);
        let id = TransactionId::generate();
        let body = format!(r#"{{"id":"{id}"}}"#);
        assert_eq!(
            fields(new_transaction(body.as_bytes(), Some(b"order-1"), "txn").unwrap_err()),
            ["Idempotency-Key"]
        );
        assert_eq!(
            fields(new_transaction(b"", Some(b""), "txn").unwrap_err()),
            ["Idempotency-Key"]
        );
    }

    #[test]
    fn malformed_json_is_not_a_field_error() {
        assert!(matches!(
            new_transaction(b"{", None, "txn"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            reported_status(b""),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn the_third_party_cannot_report_failed_or_unknown_statuses() {
        let id = TransactionId::generate();
        assert_eq!(
            fields(
                reported_status(format!(r#"{{"id":"{id}","status":"failed"}}"#).as_bytes())
                    .unwrap_err()
            ),
            ["status"]
        );
        assert_eq!(
            fields(
                reported_status(format!(r#"{{"id":"{id}","status":"done"}}"#).as_bytes())
                    .unwrap_err()
            ),
            ["status"]
        );
        let ok =
            reported_status(format!(r#"{{"id":"{id}","status":"completed"}}"#).as_bytes()).unwrap();
        assert_eq!((ok.id, ok.status), (id, Status::Completed));
    }
}
