//! Client apps: who a transaction belongs to, and their API keys.
//!
//! An API key reads `txk_<key id>_<secret>`. Only the key id and a keyed hash of the secret
//! are stored (HMAC-SHA256 under the server's pepper, `API_KEY_PEPPER`), so a copy of the
//! database holds no usable key; the plaintext is shown once, when the key is made.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::uuid_id::uuid_id;

uuid_id!(
    /// A client app's id.
    ClientAppId
);

impl ClientAppId {
    /// The client app that owns every transaction made before client apps existed (the
    /// migration that introduced them creates it under this id).
    pub const LEGACY: ClientAppId = ClientAppId(Uuid::nil());
}

/// Whether a client app may use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum ClientStatus {
    /// Its keys work.
    Active,
    /// Its keys are refused with 403.
    Disabled,
}

/// A client app's POST rate: a token bucket of `burst` tokens refilled at `per_s` a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_s: u32,
    /// Most tokens held (the largest burst).
    pub burst: u32,
}

impl RateLimit {
    /// The limit stored as `rate_limit_per_s` and `burst`: none without a rate; a burst of one
    /// second's rate when none is given.
    pub fn of(per_s: Option<i32>, burst: Option<i32>) -> Option<Self> {
        let per_s = u32::try_from(per_s?).ok().filter(|r| *r > 0)?;
        let burst = burst
            .and_then(|b| u32::try_from(b).ok())
            .filter(|b| *b > 0)
            .unwrap_or(per_s);
        Some(Self { per_s, burst })
    }
}

/// What every API key starts with.
pub const KEY_PREFIX: &str = "txk";

/// Hex characters in a key id (8 random bytes).
const KEY_ID_LEN: usize = 16;

/// Hex characters in a key's secret part (24 random bytes).
const SECRET_LEN: usize = 48;

/// A key that is not of the form `txk_<16 hex>_<48 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an API key of this service (txk_<key id>_<secret>)")]
pub struct MalformedKey;

/// An API key as a client presents it.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    /// Its public id, which finds the stored hash.
    pub key_id: &'a str,
    secret: &'a str,
}

impl fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}_{}_[redacted]", self.key_id)
    }
}

impl<'a> PresentedKey<'a> {
    /// Splits `token` into key id and secret; the shape only, nothing is looked up.
    pub fn parse(token: &'a str) -> Result<Self, MalformedKey> {
        let rest = token
            .strip_prefix(KEY_PREFIX)
            .and_then(|r| r.strip_prefix('_'))
            .ok_or(MalformedKey)?;
        let (key_id, secret) = rest.split_once('_').ok_or(MalformedKey)?;
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(key_id, KEY_ID_LEN) || !lower_hex(secret, SECRET_LEN) {
            return Err(MalformedKey);
        }
        Ok(Self { key_id, secret })
    }

    /// Its secret, kept to recognise the same key later without the HMAC.
    pub fn remember(&self) -> VerifiedSecret {
        VerifiedSecret(self.secret.into())
    }
}

/// The secret of a key that verified, held in memory only: a key presented again is
/// recognised by comparing bytes (in constant time) instead of computing its HMAC.
pub struct VerifiedSecret(Box<str>);

impl VerifiedSecret {
    /// Whether `key` carries this secret.
    pub fn matches(&self, key: &PresentedKey<'_>) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(key.secret.as_bytes()).into()
    }
}

impl fmt::Debug for VerifiedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifiedSecret([redacted])")
    }
}

/// A key just made: its plaintext (shown once) and what is stored of it.
pub struct NewKey {
    /// Its public id.
    pub key_id: String,
    /// The whole key, for the client app; never stored.
    pub plaintext: String,
    /// The keyed hash of its secret part.
    pub hash: Vec<u8>,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewKey({})", self.key_id)
    }
}

/// The server's secret under which key secrets are hashed (`API_KEY_PEPPER`). `Debug` never
/// shows it; serde writes it as the setting's text (only to hand settings to a process of
/// ours).
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Pepper(Vec<u8>);

impl From<Pepper> for String {
    fn from(p: Pepper) -> Self {
        String::from_utf8_lossy(&p.0).into_owned()
    }
}

impl TryFrom<String> for Pepper {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::new(value.as_bytes())
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

impl std::str::FromStr for Pepper {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(s.as_bytes())
    }
}

/// Fewest bytes a pepper may have: it must be as hard to guess as a key.
pub const MIN_PEPPER_LEN: usize = 32;

impl Pepper {
    /// A pepper of at least [`MIN_PEPPER_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(format!(
                "must be at least {MIN_PEPPER_LEN} bytes (for instance `openssl rand -hex 32`)"
            ));
        }
        Ok(Self(bytes.to_vec()))
    }

    fn mac(&self, secret: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        mac
    }

    /// A key for `purpose` derived from the pepper: every producer that shares the pepper
    /// shares it, and it tells nothing of the pepper (the list cursors are signed with one).
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        // A key's secret is hex: "derive:" can never be one.
        self.mac(&format!("derive:{purpose}"))
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// A new random pepper's text (64 hex characters), for development set-ups.
    pub fn generate() -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex(&bytes)
    }

    /// Whether `key`'s secret is the one hashed as `stored`, compared in constant time.
    pub fn verifies(&self, key: &PresentedKey<'_>, stored: &[u8]) -> bool {
        self.mac(key.secret).verify_slice(stored).is_ok()
    }

    /// A new random key.
    pub fn new_key(&self) -> NewKey {
        use rand::RngCore;
        let mut id = [0u8; KEY_ID_LEN / 2];
        let mut secret = [0u8; SECRET_LEN / 2];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        let plaintext = format!("{KEY_PREFIX}_{}_{}", hex(&id), hex(&secret));
        self.key_from(&plaintext)
            .expect("a key made here has the key shape")
    }

    /// What is stored of a key given in full (a development key from the environment).
    pub fn key_from(&self, plaintext: &str) -> Result<NewKey, MalformedKey> {
        let key = PresentedKey::parse(plaintext)?;
        Ok(NewKey {
            key_id: key.key_id.to_string(),
            plaintext: plaintext.to_string(),
            hash: self.mac(key.secret).finalize().into_bytes().to_vec(),
        })
    }
}

/// Whether a client app whose every delivery attempt has failed since `failing_since` is to
/// be disabled at `now`: once that has lasted `after` (`DISABLE_AFTER_MS`). Any accepted
/// delivery clears `failing_since`, so one success resets the clock.
pub fn should_disable(
    failing_since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    after: std::time::Duration,
) -> bool {
    chrono::Duration::from_std(after).is_ok_and(|after| now - failing_since >= after)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper() -> Pepper {
        Pepper::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_remembered_secret_matches_its_own_key_only() {
        let (a, b) = (pepper().new_key(), pepper().new_key());
        let key_a = PresentedKey::parse(&a.plaintext).unwrap();
        let remembered = key_a.remember();
        assert!(remembered.matches(&key_a));
        assert!(!remembered.matches(&PresentedKey::parse(&b.plaintext).unwrap()));
        let same_id_other_secret = format!("txk_{}_{}", a.key_id, "0".repeat(SECRET_LEN));
        assert!(!remembered.matches(&PresentedKey::parse(&same_id_other_secret).unwrap()));
        assert_eq!(format!("{remembered:?}"), "VerifiedSecret([redacted])");
    }

    #[test]
    fn a_new_key_verifies_under_its_pepper_only() {
        let key = pepper().new_key();
        let presented = PresentedKey::parse(&key.plaintext).unwrap();
        assert_eq!(presented.key_id, key.key_id);
        assert!(pepper().verifies(&presented, &key.hash));
        let other = Pepper::new(&[8u8; 32]).unwrap();
        assert!(!other.verifies(&presented, &key.hash), "another pepper");
    }

    #[test]
    fn a_changed_secret_does_not_verify() {
        let key = pepper().new_key();
        let mut tampered = key.plaintext.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        let presented = PresentedKey::parse(&tampered).unwrap();
        assert!(!pepper().verifies(&presented, &key.hash));
    }

    #[test]
    fn only_the_key_shape_parses() {
        let good = pepper().new_key().plaintext;
        assert!(PresentedKey::parse(&good).is_ok());
        let id = "0123456789abcdef";
        let secret = "ab".repeat(24);
        for bad in [
            String::new(),
            "txk".to_string(),
            format!("txk_{id}"),
            format!("xyz_{id}_{secret}"),
            format!("txk_{id}_{}", &secret[1..]),
            format!("txk_{}_{secret}", id.to_uppercase()),
            format!("txk_{id}_{secret}x"),
            format!("txk_{id}_{}", secret.replace('a', "g")),
            format!("Bearer txk_{id}_{secret}"),
        ] {
            assert_eq!(PresentedKey::parse(&bad), Err(MalformedKey), "{bad:?}");
        }
    }

    #[test]
    fn a_key_given_in_full_hashes_as_a_made_one() {
        let made = pepper().new_key();
        let again = pepper().key_from(&made.plaintext).unwrap();
        assert_eq!((again.key_id, again.hash), (made.key_id, made.hash));
    }

    #[test]
    fn a_short_pepper_is_refused() {
        assert!(Pepper::new(&[1u8; 31]).is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let key = pepper().new_key();
        let presented = PresentedKey::parse(&key.plaintext).unwrap();
        let shown = format!("{presented:?} {key:?} {:?}", pepper());
        assert!(!shown.contains(&key.plaintext[21..]), "{shown}");
    }

    #[test]
    fn a_rate_limit_needs_a_rate_and_its_burst_defaults_to_one_second() {
        assert_eq!(RateLimit::of(None, Some(5)), None);
        assert_eq!(RateLimit::of(Some(0), None), None);
        assert_eq!(
            RateLimit::of(Some(5), None),
            Some(RateLimit { per_s: 5, burst: 5 })
        );
        assert_eq!(
            RateLimit::of(Some(5), Some(20)),
            Some(RateLimit {
                per_s: 5,
                burst: 20
            })
        );
    }

    #[test]
    fn statuses_read_and_print_in_lowercase() {
        assert_eq!("disabled".parse(), Ok(ClientStatus::Disabled));
        assert_eq!(ClientStatus::Active.to_string(), "active");
    }

    #[test]
    fn a_client_app_is_disabled_once_it_has_failed_for_the_whole_window() {
        let since = chrono::DateTime::from_timestamp(1_000_000, 0).unwrap();
        let window = std::time::Duration::from_secs(5 * 86_400);
        let at = |secs: i64| since + chrono::Duration::seconds(secs);
        assert!(!should_disable(since, since, window));
        assert!(!should_disable(since, at(5 * 86_400 - 1), window));
        assert!(should_disable(since, at(5 * 86_400), window));
        assert!(
            !should_disable(since, at(-10), window),
            "a clock behind is no failure"
        );
        assert!(
            !should_disable(since, at(1), std::time::Duration::MAX),
            "an endless window"
        );
    }
}
