//! Request bodies: each stated once, as the struct serde reads and the OpenAPI document shows,
//! then checked into domain types at the edge. Every field is read as sent and checked by hand,
//! so a 422 names every bad field at once rather than serde's first. Everything past this
//! module works with valid values only.

use std::collections::BTreeMap;

use domain::{Amount, Currency, Money, Status, TransactionId, transaction_id::IdempotencyKey};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use utoipa::ToSchema;

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

/// A JSON object body of a route.
pub trait RequestBody: DeserializeOwned {
    /// Whether no body at all (no bytes: whitespace is not JSON) or `null` stands for `{}`.
    const EMPTY_IS_OBJECT: bool;
}

/// The body of `POST /transaction` (every field optional; an empty body is valid; no other
/// field is accepted).
// serde hands any other field to `unknown`, so that each one is named in the 422 beside the
// other fields' errors; `openapi::finish` tells the document.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewTransactionBody {
    /// The client's id for the transaction; the server makes a UUIDv7 when absent.
    #[schema(value_type = Option<uuid::Uuid>)]
    id: Option<Value>,
    /// Amount in minor units (> 0); only together with `currency`.
    #[schema(value_type = Option<i64>, minimum = 1, example = 1250)]
    amount: Option<Value>,
    /// ISO 4217 code in upper case; only together with `amount`.
    #[schema(
        value_type = Option<String>,
        example = "EUR",
        pattern = "^[A-Z]{3}$",
        min_length = 3,
        max_length = 3
    )]
    currency: Option<Value>,
    /// Any other field: refused, each one named.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl RequestBody for NewTransactionBody {
    const EMPTY_IS_OBJECT: bool = true;
}

/// The body the third party signs and sends (other fields are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookBody {
    /// The transaction's id.
    #[schema(value_type = uuid::Uuid, required = true)]
    id: Option<Value>,
    /// pending, completed or declined.
    #[schema(value_type = String, required = true, example = "completed")]
    status: Option<Value>,
}

impl RequestBody for WebhookBody {
    const EMPTY_IS_OBJECT: bool = false;
}

/// Parses a route's body: 400 if it is not JSON, 422 if it is not an object.
pub fn parse<T: RequestBody>(body: &[u8]) -> Result<T, ApiError> {
    // The common case, an object, is read straight into the body's fields. Anything that
    // does not read so (not JSON, `null`, a duplicate field) takes the way below, which
    // gives each its answer; only an object may take this one (serde would read an array
    // into a struct's fields).
    if body.trim_ascii_start().starts_with(b"{")
        && let Ok(read) = serde_json::from_slice::<T>(body)
    {
        return Ok(read);
    }
    let object = if T::EMPTY_IS_OBJECT && body.is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Value::Object(map),
            // `null` is no body at all, as the OpenAPI document's optional body allows.
            Ok(Value::Null) if T::EMPTY_IS_OBJECT => Value::Object(Map::new()),
            Ok(_) => return Err(not_an_object()),
            Err(e) => {
                return Err(ApiError::MalformedJson(format!(
                    "body is not valid JSON: {e}"
                )));
            }
        }
    };
    // Every field is a JSON value, so an object always fits.
    T::deserialize(object).map_err(|_| not_an_object())
}

fn not_an_object() -> ApiError {
    ApiError::Invalid(vec![FieldError::new("body", "must be a JSON object")])
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

/// Reads body field `name`, when given, with `read`; its error is recorded under the name.
fn field<T>(
    value: &Option<Value>,
    name: &'static str,
    errors: &mut Vec<FieldError>,
    read: impl FnOnce(&Value) -> Result<T, String>,
) -> Option<T> {
    let read = read(value.as_ref()?);
    read.map_err(|e| errors.push(FieldError::new(name, e))).ok()
}

/// The header that makes a POST without an id retryable.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl NewTransactionBody {
    /// Checks the body. Without an `id`, the id is derived from `key` (the `Idempotency-Key`
    /// header, under deployment `prefix`), or made fresh; a key together with an `id` is an
    /// error.
    pub fn check(self, key: Option<&[u8]>, prefix: &str) -> Result<NewTransaction, ApiError> {
        let mut errors: Vec<FieldError> = self
            .unknown
            .keys()
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
        let fresh_id = matches!((&self.id, &key), (None, None));
        let id = match (&self.id, &key) {
            (None, Some(key)) => Some(TransactionId::from_idempotency_key(prefix, key)),
            (None, None) => Some(TransactionId::generate()),
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "Idempotency-Key",
                    "cannot be combined with an id in the body (the key stands for the id)",
                ));
                None
            }
            (Some(v), None) => parse_id(v, &mut errors),
        };
        let amount = field(&self.amount, "amount", &mut errors, |v| {
            let units = v.as_i64().ok_or("must be an integer of minor units")?;
            Amount::parse(units)
        });
        let currency = field(&self.currency, "currency", &mut errors, |v| {
            Currency::parse(v.as_str().ok_or("must be a string")?)
        });
        match (self.amount.is_some(), self.currency.is_some()) {
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
}

impl WebhookBody {
    /// Checks the body.
    pub fn check(self) -> Result<ReportedStatus, ApiError> {
        let mut errors = Vec::new();
        let id = match &self.id {
            Some(v) => parse_id(v, &mut errors),
            None => {
                errors.push(FieldError::new("id", "is required"));
                None
            }
        };
        let status = match self.status.as_ref().and_then(Value::as_str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_transaction(
        body: &[u8],
        key: Option<&[u8]>,
        prefix: &str,
    ) -> Result<NewTransaction, ApiError> {
        parse::<NewTransactionBody>(body)?.check(key, prefix)
    }

    fn reported_status(body: &[u8]) -> Result<ReportedStatus, ApiError> {
        parse::<WebhookBody>(body)?.check()
    }

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
    fn unknown_fields_are_each_named_beside_the_other_errors() {
        assert_eq!(
            fields(
                new_transaction(br#"{"amount":5,"zeta":1,"alpha":null}"#, None, "txn").unwrap_err()
            ),
            ["alpha", "zeta", "currency"]
        );
        // The third party may add fields: they are ignored.
        let id = TransactionId::generate();
        let body = format!(r#"{{"id":"{id}","status":"declined","reason":"card"}}"#);
        assert_eq!(
            reported_status(body.as_bytes()).unwrap().status,
            Status::Declined
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
    fn only_an_object_is_a_body_whichever_way_it_is_read() {
        let id = TransactionId::generate();
        // An array would fill a struct's fields in order: it is still no object.
        assert_eq!(
            fields(reported_status(format!(r#"["{id}","completed"]"#).as_bytes()).unwrap_err()),
            ["body"]
        );
        assert_eq!(
            fields(new_transaction(br#"[1250,"EUR"]"#, None, "txn").unwrap_err()),
            ["body"]
        );
        // `null` is no body; a field given twice counts as given last, as before.
        assert!(new_transaction(b"null", None, "txn").unwrap().fresh_id);
        let twice = new_transaction(
            br#"{"amount":1,"currency":"EUR","amount":1250}"#,
            None,
            "txn",
        )
        .unwrap();
        assert_eq!(twice.money.map(|m| i64::from(m.amount)), Some(1250));
        // Leading whitespace, and every field.
        let full = new_transaction(
            format!(r#" {{"id":"{id}","amount":1250,"currency":"EUR"}}"#).as_bytes(),
            None,
            "txn",
        )
        .unwrap();
        assert_eq!((full.id, full.fresh_id), (id, false));
        assert_eq!(
            reported_status(format!(r#"{{"id":"{id}","status":"completed"}}"#).as_bytes())
                .unwrap()
                .status,
            Status::Completed
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
