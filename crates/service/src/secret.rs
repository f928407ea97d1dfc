//! Secrets of the settings: API keys, passwords, tokens. Parsed once, never printed: not by
//! `Debug`, not in `--help` (their arguments hide env values), not in a parse error
//! ([`parser`] names the setting and the rule, never the value).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret string (an API key, a password, a token): `secrecy`'s, so `Debug` redacts it and
/// its memory is zeroed when dropped. Serde writes it as is, only to hand settings to a process
/// of ours.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself, to put on the wire or compare; never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Why a secret setting was refused (the value is never part of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must not be empty")]
pub struct EmptySecret;

impl std::str::FromStr for Secret {
    type Err = EmptySecret;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" => Err(EmptySecret),
            s => Ok(Self::new(s)),
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
    use crate::config::PostgresUrl;

    #[test]
    fn a_refused_secret_is_named_but_never_repeated() {
        #[derive(clap::Parser, Debug)]
        struct Settings {
            #[arg(long, env = "TEST_ONLY_SECRET_SETTING", value_parser = parser::<PostgresUrl>())]
            url: PostgresUrl,
            #[arg(long, value_parser = parser::<Secret>())]
            key: Option<Secret>,
        }
        use clap::Parser;
        let err = Settings::try_parse_from(["t", "--url", "sk_live_abcdef123456"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TEST_ONLY_SECRET_SETTING"), "{text}");
        assert!(!text.contains("sk_live"), "{text}");
        let ok = Settings::try_parse_from([
            "t",
            "--url",
            "postgres://app:pw@db/x",
            "--key",
            "sk_live_abcdef",
        ])
        .unwrap();
        assert_eq!(ok.key.as_ref().map(Secret::expose), Some("sk_live_abcdef"));
        assert!(!format!("{ok:?}").contains("sk_live"));
        assert!(Settings::try_parse_from(["t", "--url", "postgres://db/x", "--key", " "]).is_err());
    }
}
