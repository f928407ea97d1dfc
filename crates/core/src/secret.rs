//! Secrets: webhook secrets, API keys and passwords. Parsed once, never printed: not by
//! `Debug`, not in `--help` (their arguments hide env values), not in a parse error
//! ([`parser`] names the setting and the rule, never the value).

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use standardwebhooks::Webhook;

/// One or more Standard Webhooks secrets (`whsec_<base64>`, comma-separated during rotation).
/// The first signs; any of them verifies. `Debug` and `Display` never show them; serde writes
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

/// A secret string (an API key, a password). `Debug` and `Display` show `[redacted]`; serde
/// writes it as is (only to hand settings to a process of ours).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, to put on the wire; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret setting was refused (the value is never part of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must not be empty")]
pub struct EmptySecret;

impl std::str::FromStr for Secret {
    type Err = EmptySecret;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            Err(EmptySecret)
        } else {
            Ok(Self(s.to_string()))
        }
    }
}

/// A clap value parser for `T` whose error names the setting and the rule but never repeats the
/// value (clap's own parsers print the value back, which would put a secret or a password in a
/// log). For every setting that holds a secret or a URL with credentials.
pub fn parser<T>() -> RedactingParser<T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    RedactingParser(std::marker::PhantomData)
}

/// See [`parser`].
#[derive(Clone)]
pub struct RedactingParser<T>(std::marker::PhantomData<fn() -> T>);

impl<T> clap::builder::TypedValueParser for RedactingParser<T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .map(|a| {
                let flag = a.get_long().unwrap_or(a.get_id().as_str());
                match a.get_env() {
                    Some(env) => format!("{} (--{flag})", env.to_string_lossy()),
                    None => format!("--{flag}"),
                }
            })
            .unwrap_or_else(|| "a setting".into());
        let refused = |rule: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{name} is invalid: {rule}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refused("not valid UTF-8".into()))?;
        text.parse::<T>().map_err(|e| refused(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_secret_is_named_but_never_repeated() {
        #[derive(clap::Parser, Debug)]
        struct Settings {
            #[arg(long, env = "TEST_ONLY_SECRET_SETTING", value_parser = parser::<WebhookSecrets>())]
            secret: WebhookSecrets,
            #[arg(long, value_parser = parser::<Secret>())]
            key: Option<Secret>,
        }
        use clap::Parser;
        let err = Settings::try_parse_from(["t", "--secret", "sk_live_abcdef123456"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TEST_ONLY_SECRET_SETTING"), "{text}");
        assert!(!text.contains("sk_live"), "{text}");
        let ok = Settings::try_parse_from([
            "t",
            "--secret",
            &WebhookSecrets::generate().expose(),
            "--key",
            "sk_live_abcdef",
        ])
        .unwrap();
        assert_eq!(ok.key.as_ref().map(Secret::expose), Some("sk_live_abcdef"));
        assert!(!format!("{ok:?}").contains("sk_live"));
        assert!(Settings::try_parse_from(["t", "--secret", "x", "--key", " "]).is_err());
    }

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
