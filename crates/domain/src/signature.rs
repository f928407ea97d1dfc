//! Signing and verifying webhooks, both ways, with the Standard Webhooks scheme
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`; timestamps
//! more than 5 minutes off are rejected; comparison in constant time).

use http::{HeaderMap, HeaderValue};
use standardwebhooks::{
    HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP, Webhook,
};

use crate::webhook_secrets::WebhookSecrets;

/// Why a webhook was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing or unreadable.
    #[error("missing or malformed webhook headers: {0}")]
    Headers(String),
    /// The timestamp is more than 5 minutes away from now.
    #[error("webhook timestamp outside the 5-minute tolerance")]
    Timestamp,
    /// No secret produced this signature.
    #[error("webhook signature does not match")]
    Signature,
}

/// Signs outgoing webhooks with the first secret.
pub struct Signer {
    webhooks: Vec<Webhook>,
}

/// Verifies incoming webhooks against every configured secret (rotation).
pub struct Verifier {
    webhooks: Vec<Webhook>,
}

impl Signer {
    /// A signer with every one of `secrets`: each signs, so a receiver that knows any of them
    /// verifies (a rotation's overlap).
    pub fn new(secrets: &WebhookSecrets) -> Self {
        Self {
            webhooks: secrets.webhooks(),
        }
    }

    /// The three headers for `body`, sent as message `msg_id` at `timestamp` (Unix seconds).
    pub fn headers(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Our bodies are JSON we serialised ourselves, so they are UTF-8 and signing cannot fail.
        let signature = self
            .webhooks
            .iter()
            .map(|w| w.sign(msg_id, timestamp, body).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        for (name, value) in [
            (HEADER_WEBHOOK_ID, msg_id.to_string()),
            (HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (HEADER_WEBHOOK_SIGNATURE, signature),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        headers
    }

    /// The headers for `body` sent now.
    pub fn headers_now(&self, msg_id: &str, body: &[u8]) -> HeaderMap {
        self.headers(msg_id, chrono::Utc::now().timestamp(), body)
    }
}

impl Verifier {
    /// A verifier accepting any of `secrets`.
    pub fn new(secrets: &WebhookSecrets) -> Self {
        Self {
            webhooks: secrets.webhooks(),
        }
    }

    /// Accepts `body` if one secret signed it and its timestamp is within 5 minutes.
    pub fn verify(&self, body: &[u8], headers: &HeaderMap) -> Result<(), SignatureError> {
        use standardwebhooks::WebhookError as E;
        // The tolerance is checked here first, without overflow: the crate's own check
        // overflows on extreme timestamps (`i64::MIN` passed it).
        check_timestamp(headers, chrono::Utc::now().timestamp())?;
        let mut last = SignatureError::Signature;
        for webhook in &self.webhooks {
            match webhook.verify(body, headers) {
                Ok(()) => return Ok(()),
                Err(E::TimestampTooOldError | E::FutureTimestampError) => {
                    return Err(SignatureError::Timestamp);
                }
                Err(E::MissingHeader(h) | E::InvalidHeader(h)) => {
                    return Err(SignatureError::Headers(h.to_string()));
                }
                Err(E::InvalidTimestamp) => {
                    return Err(SignatureError::Headers("timestamp".into()));
                }
                Err(_) => last = SignatureError::Signature,
            }
        }
        Err(last)
    }
}

/// How far a webhook's timestamp may be from now (seconds).
const TOLERANCE_SECS: u64 = 5 * 60;

/// The `webhook-timestamp` header must be Unix seconds within [`TOLERANCE_SECS`] of `now`.
fn check_timestamp(headers: &HeaderMap, now: i64) -> Result<(), SignatureError> {
    let timestamp: i64 = headers
        .get(HEADER_WEBHOOK_TIMESTAMP)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| SignatureError::Headers(HEADER_WEBHOOK_TIMESTAMP.into()))?;
    if now.abs_diff(timestamp) > TOLERANCE_SECS {
        return Err(SignatureError::Timestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_timestamps_are_outside_the_tolerance_without_overflow() {
        let (a, _) = secrets();
        let (signer, verifier) = (Signer::new(&a), Verifier::new(&a));
        let now = chrono::Utc::now().timestamp();
        for ts in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            i64::MAX,
            now - 301,
            now + 301,
        ] {
            let headers = signer.headers("msg_x", ts, b"{}");
            assert_eq!(
                verifier.verify(b"{}", &headers),
                Err(SignatureError::Timestamp),
                "timestamp {ts}"
            );
        }
        for ts in [now - 299, now, now + 299] {
            let headers = signer.headers("msg_x", ts, b"{}");
            assert_eq!(verifier.verify(b"{}", &headers), Ok(()), "timestamp {ts}");
        }
    }

    fn secrets() -> (WebhookSecrets, WebhookSecrets) {
        (WebhookSecrets::generate(), WebhookSecrets::generate())
    }

    #[test]
    fn a_signed_body_verifies() {
        let (a, _) = secrets();
        let headers = Signer::new(&a).headers_now("msg_1", b"{\"id\":1}");
        assert_eq!(Verifier::new(&a).verify(b"{\"id\":1}", &headers), Ok(()));
    }

    #[test]
    fn a_tampered_body_or_foreign_secret_is_rejected() {
        let (a, b) = secrets();
        let headers = Signer::new(&a).headers_now("msg_1", b"{\"id\":1}");
        assert_eq!(
            Verifier::new(&a).verify(b"{\"id\":2}", &headers),
            Err(SignatureError::Signature)
        );
        assert_eq!(
            Verifier::new(&b).verify(b"{\"id\":1}", &headers),
            Err(SignatureError::Signature)
        );
    }

    #[test]
    fn any_secret_of_a_rotation_verifies() {
        let (old, new) = secrets();
        let both = WebhookSecrets::parse(&format!("{},{}", new.expose(), old.expose())).unwrap();
        let headers = Signer::new(&old).headers_now("m", b"x");
        assert_eq!(Verifier::new(&both).verify(b"x", &headers), Ok(()));
    }

    #[test]
    fn a_signer_with_both_secrets_of_a_rotation_satisfies_a_receiver_with_either() {
        let (old, new) = secrets();
        let both = WebhookSecrets::parse(&format!("{},{}", new.expose(), old.expose())).unwrap();
        let headers = Signer::new(&both).headers_now("m", b"x");
        let signatures = headers[HEADER_WEBHOOK_SIGNATURE].to_str().unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        for receiver in [&old, &new] {
            assert_eq!(Verifier::new(receiver).verify(b"x", &headers), Ok(()));
        }
        let (stranger, _) = secrets();
        assert!(Verifier::new(&stranger).verify(b"x", &headers).is_err());
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_are_rejected() {
        let (a, _) = secrets();
        let now = chrono::Utc::now().timestamp();
        for ts in [now - 301, now + 301] {
            let headers = Signer::new(&a).headers("m", ts, b"x");
            assert_eq!(
                Verifier::new(&a).verify(b"x", &headers),
                Err(SignatureError::Timestamp)
            );
        }
        let headers = Signer::new(&a).headers("m", now - 290, b"x");
        assert_eq!(Verifier::new(&a).verify(b"x", &headers), Ok(()));
    }

    #[test]
    fn missing_headers_are_rejected() {
        let (a, _) = secrets();
        assert!(matches!(
            Verifier::new(&a).verify(b"x", &HeaderMap::new()),
            Err(SignatureError::Headers(_))
        ));
    }
}
