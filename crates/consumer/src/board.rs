//! The queue board (the bull-board of the original): per queue the counts of waiting,
//! scheduled, running, done and failed jobs, the failed jobs with their last error, and a way
//! to retry one. A server-rendered page at `/board` (refreshing itself every 5 s) over a JSON API
//! at `/board/api`.
//!
//! Access: with `BOARD_TOKEN`, every request needs `Authorization: Bearer <token>` or the
//! session cookie `/board/login` sets (`HttpOnly`, `SameSite=Strict`); a token in a URL is
//! never read. Without it the board is readable by anyone, without payloads, and read-only
//! unless `BOARD_ALLOW_ACTIONS=true`. Every mutating request must carry `x-board-action: 1`,
//! which no cross-site form can send.

use std::sync::Arc;

use axum::{
    Form, Json, Router,
    extract::{Path, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hmac::{Hmac, Mac};
use queue::{Counts, DeadJob, Queue};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use txn_core::QueueName;

/// The board's view of the queues: untyped handles, since it only inspects.
#[derive(Clone)]
pub struct Board {
    queues: Arc<Vec<Queue<serde_json::Value>>>,
    access: Arc<Access>,
}

/// Who may do what on the board.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `BOARD_TOKEN`; `None` or empty: no authentication.
    pub token: Option<String>,
    /// `BOARD_ALLOW_ACTIONS`: actions without a token.
    pub allow_actions: bool,
    /// The session cookie is `Secure` (the consumer serves HTTPS).
    pub secure_cookie: bool,
}

impl Access {
    fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }

    /// The session cookie's value: an HMAC of the token, so it proves the token without being
    /// it, and every replica of the consumer accepts it.
    fn session(token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"txn board session v1");
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether the request carries the token (bearer) or the session cookie.
    fn authenticated(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(token) = self.token() else {
            return false;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
            return true;
        }
        let session = Self::session(token);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(&format!("{SESSION_COOKIE}=")))
            .any(|given| same(given.as_bytes(), session.as_bytes()))
    }

    /// Whether actions (retry, purge) are open to this request.
    fn may_act(&self, headers: &axum::http::HeaderMap) -> bool {
        match self.token() {
            Some(_) => self.authenticated(headers),
            None => self.allow_actions,
        }
    }
}

/// The board's session cookie.
const SESSION_COOKIE: &str = "board_session";

/// The header every mutating request must carry.
const ACTION_HEADER: &str = "x-board-action";

impl Board {
    /// A board over the four queues of `prefix`, sharing `conn`.
    pub fn new(
        client: queue::RedisClient,
        conn: queue::RedisConnection,
        prefix: &str,
        access: Access,
    ) -> anyhow::Result<Self> {
        let queues = QueueName::ALL
            .iter()
            .map(|name| {
                Queue::with_connection(
                    client.clone(),
                    conn.clone(),
                    queue::QueueConfig::new(prefix, name.as_str()),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            queues: Arc::new(queues),
            access: Arc::new(access),
        })
    }

    fn queue(&self, name: &str) -> Result<&Queue<serde_json::Value>, BoardError> {
        self.queues
            .iter()
            .find(|q| q.name() == name)
            .ok_or(BoardError::NoQueue)
    }

    /// Counts of every queue (also the source of the depth gauges in `/metrics`).
    pub async fn counts(&self) -> Result<Vec<QueueCounts>, queue::QueueError> {
        let mut all = Vec::with_capacity(self.queues.len());
        for q in self.queues.iter() {
            all.push(QueueCounts {
                name: q.name().to_string(),
                counts: q.counts().await?,
            });
        }
        Ok(all)
    }
}

/// One queue's counts.
#[derive(Debug, Serialize)]
pub struct QueueCounts {
    /// The queue.
    pub name: String,
    /// Jobs per state.
    #[serde(flatten)]
    pub counts: Counts,
}

enum BoardError {
    NoQueue,
    Redis(queue::QueueError),
}

impl From<queue::QueueError> for BoardError {
    fn from(e: queue::QueueError) -> Self {
        BoardError::Redis(e)
    }
}

impl IntoResponse for BoardError {
    fn into_response(self) -> Response {
        match self {
            BoardError::NoQueue => (StatusCode::NOT_FOUND, "no such queue").into_response(),
            BoardError::Redis(e) => {
                tracing::warn!(error = %e, "board: redis call failed");
                (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable").into_response()
            }
        }
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every board request passes here. A mutating one needs the action header first (403: a
/// cross-site form cannot send it), then the right to act (403 read-only, 401 with a token);
/// with a token, reading needs it too (401, or the login page for the board itself).
async fn guard(State(board): State<Board>, request: Request, next: Next) -> Response {
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
        if path == "/board" {
            return (StatusCode::UNAUTHORIZED, Html(LOGIN_PAGE)).into_response();
        }
        return (StatusCode::UNAUTHORIZED, "board token required").into_response();
    }
    next.run(request).await
}

/// The login form (the token goes in a POST body, never in a URL).
const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Queues: sign in</title></head>
<body><form method="post" action="/board/login">
<label>Board token <input type="password" name="token" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></body></html>
"#;

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// `POST /board/login`: the right token gets the session cookie and the board.
async fn login(State(board): State<Board>, Form(login): Form<Login>) -> Response {
    let Some(token) = board.access.token() else {
        return Redirect::to("/board").into_response();
    };
    if !same(login.token.as_bytes(), token.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, Html(LOGIN_PAGE)).into_response();
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/board; HttpOnly; SameSite=Strict{}",
        Access::session(token),
        if board.access.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Redirect::to("/board").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The board's routes.
pub fn router(board: Board) -> Router {
    Router::new()
        .route("/board", get(page))
        .route("/board/login", post(login))
        .route("/board/api/queues", get(api_queues))
        .route("/board/api/queues/{queue}/failed", get(api_failed))
        .route(
            "/board/api/queues/{queue}/failed/{id}/retry",
            post(api_retry),
        )
        .route("/board/api/queues/{queue}/failed/purge", post(api_purge))
        .route("/board/api/queues/{queue}/pause", post(api_pause))
        .route("/board/api/queues/{queue}/resume", post(api_resume))
        .layer(middleware::from_fn_with_state(board.clone(), guard))
        .with_state(board)
}

async fn api_queues(State(board): State<Board>) -> Result<Json<Vec<QueueCounts>>, BoardError> {
    Ok(Json(board.counts().await?))
}

/// The dead jobs of a queue; their payloads only to an authenticated reader.
async fn api_failed(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Vec<DeadJob>>, BoardError> {
    let mut jobs = board.queue(&queue)?.dead_jobs(0, 100).await?;
    if board.access.token().is_none() {
        for job in &mut jobs {
            job.payload = String::new();
        }
    }
    Ok(Json(jobs))
}

#[derive(Serialize)]
struct Retried {
    retried: bool,
}

async fn api_retry(
    State(board): State<Board>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Retried>, BoardError> {
    let retried = board.queue(&queue)?.retry_dead(&id).await?;
    tracing::info!(queue, job = %id, retried, "board: retry");
    Ok(Json(Retried { retried }))
}

#[derive(Serialize)]
struct Paused {
    paused: bool,
}

/// Pauses a queue for every consumer: no job of it starts until it is resumed.
async fn api_pause(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Paused>, BoardError> {
    board.queue(&queue)?.set_paused(true).await?;
    tracing::warn!(queue, "board: queue paused");
    Ok(Json(Paused { paused: true }))
}

/// Resumes a paused queue.
async fn api_resume(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Paused>, BoardError> {
    board.queue(&queue)?.set_paused(false).await?;
    tracing::warn!(queue, "board: queue resumed");
    Ok(Json(Paused { paused: false }))
}

#[derive(Serialize)]
struct Purged {
    purged: u64,
}

async fn api_purge(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Purged>, BoardError> {
    let purged = board.queue(&queue)?.purge_dead().await?;
    tracing::info!(queue, purged, "board: purge");
    Ok(Json(Purged { purged }))
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-escapes a query or path value.
fn escape_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

async fn page(
    State(board): State<Board>,
    headers: axum::http::HeaderMap,
) -> Result<Html<String>, BoardError> {
    let may_act = board.access.may_act(&headers);
    let mut rows = String::new();
    let mut failed = String::new();
    for q in board.queues.iter() {
        let c = q.counts().await?;
        let name = escape(q.name());
        let toggle = if !may_act {
            String::new()
        } else {
            let (verb, label) = if c.paused {
                ("resume", "Resume")
            } else {
                ("pause", "Pause")
            };
            format!(
                "<button type=\"button\" data-action=\"/board/api/queues/{}/{verb}\">{label}</button>",
                escape_query(q.name())
            )
        };
        rows.push_str(&format!(
            "<tr data-queue=\"{name}\"><th>{name}</th><td class=\"waiting\">{}</td><td class=\"scheduled\">{}</td><td class=\"running\">{}</td><td class=\"done\">{}</td><td class=\"failed{}\">{}</td><td class=\"state\">{}</td><td>{toggle}</td></tr>\n",
            c.waiting,
            c.scheduled,
            c.running,
            c.done,
            if c.failed > 0 { " nonzero" } else { "" },
            c.failed,
            if c.paused { "paused" } else { "running" },
        ));
        for job in q.dead_jobs(0, 50).await? {
            let action = format!(
                "/board/api/queues/{}/failed/{}/retry",
                escape_query(q.name()),
                escape_query(&job.id)
            );
            let button = if may_act {
                format!(
                    "<button type=\"button\" data-action=\"{}\">Retry</button>",
                    escape(&action)
                )
            } else {
                "read-only".to_string()
            };
            failed.push_str(&format!(
                "<tr class=\"failed-job\" data-id=\"{id}\"><td>{name}</td><td>{id}</td><td>{}</td><td>{}</td><td>{button}</td></tr>\n",
                job.attempts,
                escape(&job.error),
                id = escape(&job.id),
            ));
        }
    }
    if failed.is_empty() {
        failed.push_str("<tr><td colspan=\"5\">No failed jobs.</td></tr>\n");
    }
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Queues</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: .35rem .7rem; text-align: left; }}
thead th {{ background: #f3f3f3; }}
td.failed.nonzero {{ color: #b00; font-weight: bold; }}
</style>
</head>
<body>
<h1>Queues</h1>
<table id="queues">
<thead><tr><th>queue</th><th>waiting</th><th>scheduled</th><th>running</th><th>done</th><th>failed</th><th>state</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<h2>Failed jobs</h2>
<table id="failed">
<thead><tr><th>queue</th><th>job</th><th>attempts</th><th>last error</th><th></th></tr></thead>
<tbody>
{failed}</tbody>
</table>
<p>Refreshes every 5 s.</p>
<script>
// Actions are POSTs with the action header (which no cross-site form can send); the session
// cookie, if any, goes along by itself.
document.addEventListener("click", async (event) => {{
  const action = event.target.dataset && event.target.dataset.action;
  if (!action) return;
  event.target.disabled = true;
  await fetch(action, {{ method: "POST", headers: {{ "x-board-action": "1" }}, credentials: "same-origin" }});
  location.reload();
}});
</script>
</body>
</html>
"#
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html_and_urls() {
        assert_eq!(
            escape("<b>\"x\"&'y'</b>"),
            "&lt;b&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(escape_query("poll:a b/c"), "poll%3Aa%20b%2Fc");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }
}
