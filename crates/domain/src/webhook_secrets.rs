//! The Standard Webhooks secrets that sign and verify webhooks both ways. Parsed once, never
//! printed: `Debug` shows how many there are, a parse error which one is malformed.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use standardwebhooks::Webhook;

/// One or more Standard Webhooks secrets (`whsec_<base64>`, comma-separated during rotation).
/// Each signs (one signature per secret in the header); any of them verifies. `Debug` and `Display` never show them; serde writes
/// them as the setting's text (only to hand settings to a process of ours, like [`Self::expose`]).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct WebhookSecrets(Vec<String>);

impl From<WebhookSecrets> for String {
    fn from(s: WebhookSecrets) -> Self {
        s.expose()
    }
}

impl TryFrom<String> for WebhookSecrets {
    type Error = SecretError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// Why a secret setting was refused (the message never contains the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No secret at all.
    #[error("no secret given (expected whsec_<base64>, comma-separated for rotation)")]
    Empty,
    /// Secret number `n` (1-based) is not `whsec_` + base64.
    #[error("secret #{0} is not whsec_<base64>")]
    Malformed(usize),
}

impl WebhookSecrets {
    /// Parses `whsec_<base64>[,whsec_<base64>…]`.
    pub fn parse(value: &str) -> Result<Self, SecretError> {
        let secrets: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if secrets.is_empty() {
            return Err(SecretError::Empty);
        }
        for (i, s) in secrets.iter().enumerate() {
            if !s.starts_with("whsec_") || Webhook::new(s).is_err() || s.len() < 12 {
                return Err(SecretError::Malformed(i + 1));
            }
        }
        Ok(Self(secrets))
    }

    /// Each secret's text, in the order given (to store them; never log them).
    pub fn each(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// A fresh random secret, for development stacks.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 24];
        rand::rng().fill_bytes(&mut key);
        Self(vec![format!("whsec_{}", STANDARD.encode(key))])
    }

    /// The secrets as the setting's text (to hand to a child process; never log it).
    pub fn expose(&self) -> String {
        self.0.join(",")
    }

    pub(crate) fn webhooks(&self) -> Vec<Webhook> {
        // Every secret was checked by `parse`/`generate`.
        self.0.iter().filter_map(|s| Webhook::new(s).ok()).collect()
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets([{} redacted])", self.0.len())
    }
}

impl std::str::FromStr for WebhookSecrets {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn secrets_never_show_in_debug() {
        let s = WebhookSecrets::generate();
        let text = s.expose();
        assert!(!format!("{s:?}").contains(&text[6..]));
        assert!(WebhookSecrets::parse(&text).is_ok());
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        assert_eq!(WebhookSecrets::parse("").unwrap_err(), SecretError::Empty);
        let good = WebhookSecrets::generate().expose();
        let err = WebhookSecrets::parse(&format!("{good},nope-secret")).unwrap_err();
        assert_eq!(err, SecretError::Malformed(2));
        assert!(!err.to_string().contains("nope"));
    }
}
