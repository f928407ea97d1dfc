//! Who may read and act on the board: the token (bearer or session cookie), the read-only
//! default, and the action header every mutating request carries.

use axum::{
    Form,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use service::secret::Secret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Board;

/// Who may do what on the board.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `BOARD_TOKEN`; `None`: no authentication.
    pub token: Option<Secret>,
    /// `BOARD_ALLOW_ACTIONS`: actions without a token.
    pub allow_actions: bool,
    /// The session cookie is `Secure` (the consumer serves HTTPS).
    pub secure_cookie: bool,
}

/// The board's session cookie.
const SESSION_COOKIE: &str = "board_session";

/// The header every mutating request must carry.
pub(super) const ACTION_HEADER: &str = "x-board-action";

impl Access {
    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_ref().map(Secret::expose)
    }

    /// Whether payloads and amounts are shown: only behind a token (every reader then holds it).
    pub(super) fn reveals(&self) -> bool {
        self.token().is_some()
    }

    /// The session cookie's value: an HMAC of the token, so it proves the token without being
    /// it, and every replica of the consumer accepts it.
    fn session(token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"txn board session v1");
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether the request carries the token (bearer) or the session cookie.
    fn authenticated(&self, headers: &HeaderMap) -> bool {
        let Some(token) = self.token() else {
            return false;
        };
        let bearer = service::bearer::bearer_token(headers);
        if bearer.is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
            return true;
        }
        let session = Self::session(token);
        CookieJar::from_headers(headers)
            .iter()
            .filter(|c| c.name() == SESSION_COOKIE)
            .any(|given| same(given.value().as_bytes(), session.as_bytes()))
    }

    /// Whether actions (retry, purge, pause) are open to this request.
    pub(super) fn may_act(&self, headers: &HeaderMap) -> bool {
        match self.token() {
            Some(_) => self.authenticated(headers),
            None => self.allow_actions,
        }
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Every board request passes here. A mutating one needs the action header first (403: a
/// cross-site form cannot send it), then the right to act (403 read-only, 401 with a token);
/// with a token, reading needs it too (401, or the login page for the board's pages).
pub(super) async fn guard(State(board): State<Board>, request: Request, next: Next) -> Response {
    let access = &board.access;
    let headers = request.headers();
    let path = request.uri().path();
    if path == "/board/login" {
        return next.run(request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        if headers.get(ACTION_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
            return (
                StatusCode::FORBIDDEN,
                "board actions need the header x-board-action: 1",
            )
                .into_response();
        }
        if !access.may_act(headers) {
            return match access.token() {
                Some(_) => (StatusCode::UNAUTHORIZED, "board token required").into_response(),
                None => (
                    StatusCode::FORBIDDEN,
                    "the board is read-only: set BOARD_TOKEN (or BOARD_ALLOW_ACTIONS=true)",
                )
                    .into_response(),
            };
        }
        return next.run(request).await;
    }
    if access.token().is_some() && !access.authenticated(headers) {
        if !path.starts_with("/board/api/") {
            return (StatusCode::UNAUTHORIZED, super::html::login_page()).into_response();
        }
        return (StatusCode::UNAUTHORIZED, "board token required").into_response();
    }
    next.run(request).await
}

#[derive(Deserialize)]
pub(super) struct Login {
    token: String,
}

/// `POST /board/login`: the right token gets the session cookie and the board.
pub(super) async fn login(
    State(board): State<Board>,
    jar: CookieJar,
    Form(login): Form<Login>,
) -> Response {
    let Some(token) = board.access.token() else {
        return Redirect::to("/board").into_response();
    };
    if !same(login.token.as_bytes(), token.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, super::html::login_page()).into_response();
    }
    let session = Cookie::build((SESSION_COOKIE, Access::session(token)))
        .path("/board")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(board.access.secure_cookie);
    (jar.add(session), Redirect::to("/board")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, header};

    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }

    #[test]
    fn the_session_cookie_proves_the_token_without_holding_it() {
        let access = Access {
            token: Some(Secret::new("s3cret-token")),
            ..Access::default()
        };
        let session = Access::session("s3cret-token");
        assert!(!session.contains("s3cret"));
        let mut headers = HeaderMap::new();
        let cookie = format!("other=1; {SESSION_COOKIE}={session}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert!(access.authenticated(&headers));
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", Access::session("x"))).unwrap(),
        );
        assert!(!access.authenticated(&wrong));
    }
}
