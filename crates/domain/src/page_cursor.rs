//! The cursor of a list walked in (created_at, id) order: where the next page starts, opaque
//! to the client and signed, so a cursor that was not made by us, was altered, or belongs to
//! another client app or another query is refused instead of reaching SQL.
//!
//! A cursor reads `<created_at in µs>.<id as 32 hex digits>.<first 16 bytes of an
//! HMAC-SHA256 over that and the scope>`, all base64url.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Where the next page starts: after the row `(created_at_micros, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    /// The last row's `created_at`, in microseconds since the epoch (Postgres's precision).
    pub created_at_micros: i64,
    /// The last row's id.
    pub id: Uuid,
}

/// A cursor refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this server made for this query")]
pub struct BadCursor;

/// How many bytes of the MAC a cursor carries.
const TAG_BYTES: usize = 16;

fn tag(key: &[u8], body: &str, scope: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    mac.update(b"\n");
    mac.update(scope.as_bytes());
    mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
}

impl PageCursor {
    /// The cursor as the client sees it, signed with `key` for `scope` (the client app and the
    /// query's filters: a cursor is good only for the walk that made it).
    pub fn encode(&self, key: &[u8], scope: &str) -> String {
        let body = format!("{}.{}", self.created_at_micros, self.id.simple());
        let signed = [body.as_bytes(), b".", &tag(key, &body, scope)].concat();
        URL_SAFE_NO_PAD.encode(signed)
    }

    /// Reads a cursor made by [`PageCursor::encode`] with the same `key` and `scope`.
    pub fn decode(text: &str, key: &[u8], scope: &str) -> Result<Self, BadCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let split = bytes
            .len()
            .checked_sub(TAG_BYTES + 1)
            .filter(|&at| bytes[at] == b'.')
            .ok_or(BadCursor)?;
        let (body, given) = (&bytes[..split], &bytes[split + 1..]);
        let body = std::str::from_utf8(body).map_err(|_| BadCursor)?;
        if !bool::from(tag(key, body, scope).ct_eq(given)) {
            return Err(BadCursor);
        }
        let (micros, id) = body.split_once('.').ok_or(BadCursor)?;
        Ok(PageCursor {
            created_at_micros: micros.parse().map_err(|_| BadCursor)?,
            id: Uuid::try_parse(id).map_err(|_| BadCursor)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a server secret";

    fn cursor() -> PageCursor {
        PageCursor {
            created_at_micros: 1_764_892_800_123_456,
            id: Uuid::now_v7(),
        }
    }

    #[test]
    fn a_cursor_reads_back_only_with_its_key_and_scope() {
        let c = cursor();
        let text = c.encode(KEY, "app-1?status=completed");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            PageCursor::decode(&text, KEY, "app-1?status=completed"),
            Ok(c)
        );
        assert_eq!(
            PageCursor::decode(&text, KEY, "app-2?status=completed"),
            Err(BadCursor)
        );
        assert_eq!(
            PageCursor::decode(&text, KEY, "app-1?status=declined"),
            Err(BadCursor)
        );
        assert_eq!(
            PageCursor::decode(&text, b"another key", "app-1?status=completed"),
            Err(BadCursor)
        );
    }

    #[test]
    fn a_tampered_or_made_up_cursor_is_refused() {
        let text = cursor().encode(KEY, "s");
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[0] = if bytes[0] == b'1' { b'2' } else { b'1' };
        for bad in [
            URL_SAFE_NO_PAD.encode(&bytes),
            URL_SAFE_NO_PAD.encode("1764892800123456.0193a6f0000070008000000000000001"),
            String::new(),
            "not base64!".into(),
            text[..text.len() - 2].to_string(),
        ] {
            assert_eq!(
                PageCursor::decode(&bad, KEY, "s"),
                Err(BadCursor),
                "{bad:?}"
            );
        }
    }
}
