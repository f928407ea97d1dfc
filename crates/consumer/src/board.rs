//! The queue board (the bull-board of the original): per queue the counts of waiting,
//! scheduled, running, done and failed jobs, the failed jobs with their last error, and a way
//! to retry one. A server-rendered page at `/board` (refreshing itself every 5 s) over a JSON API
//! at `/board/api`, both behind `BOARD_TOKEN` when it is set.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use queue::{Counts, DeadJob, Queue};
use serde::{Deserialize, Serialize};
use txn_core::QueueName;

/// The board's view of the queues: untyped handles, since it only inspects.
#[derive(Clone)]
pub struct Board {
    queues: Arc<Vec<Queue<serde_json::Value>>>,
    token: Option<Arc<str>>,
}

impl Board {
    /// A board over the four queues of `prefix`, sharing `conn`.
    pub fn new(
        client: queue::RedisClient,
        conn: queue::RedisConnection,
        prefix: &str,
        token: Option<String>,
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
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
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

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(board): State<Board>,
    Query(query): Query<TokenQuery>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = board.token.as_deref() else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = bearer.or(query.token.as_deref()).unwrap_or_default();
    if same(given.as_bytes(), expected.as_bytes()) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "board token required").into_response()
    }
}

/// The board's routes.
pub fn router(board: Board) -> Router {
    Router::new()
        .route("/board", get(page))
        .route(
            "/board/queues/{queue}/failed/{id}/retry",
            post(retry_from_page),
        )
        .route("/board/api/queues", get(api_queues))
        .route("/board/api/queues/{queue}/failed", get(api_failed))
        .route(
            "/board/api/queues/{queue}/failed/{id}/retry",
            post(api_retry),
        )
        .route("/board/api/queues/{queue}/failed/purge", post(api_purge))
        .layer(middleware::from_fn_with_state(board.clone(), require_token))
        .with_state(board)
}

async fn api_queues(State(board): State<Board>) -> Result<Json<Vec<QueueCounts>>, BoardError> {
    Ok(Json(board.counts().await?))
}

async fn api_failed(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Vec<DeadJob>>, BoardError> {
    Ok(Json(board.queue(&queue)?.dead_jobs(0, 100).await?))
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

async fn retry_from_page(
    State(board): State<Board>,
    Path((queue, id)): Path<(String, String)>,
    Query(query): Query<TokenQuery>,
) -> Result<Redirect, BoardError> {
    let retried = board.queue(&queue)?.retry_dead(&id).await?;
    tracing::info!(queue, job = %id, retried, "board: retry");
    Ok(Redirect::to(&page_url(query.token.as_deref())))
}

fn page_url(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("/board?token={}", escape_query(t)),
        None => "/board".into(),
    }
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
    Query(query): Query<TokenQuery>,
) -> Result<Html<String>, BoardError> {
    let token_param = query
        .token
        .as_deref()
        .map(|t| format!("?token={}", escape_query(t)))
        .unwrap_or_default();
    let mut rows = String::new();
    let mut failed = String::new();
    for q in board.queues.iter() {
        let c = q.counts().await?;
        let name = escape(q.name());
        rows.push_str(&format!(
            "<tr data-queue=\"{name}\"><th>{name}</th><td class=\"waiting\">{}</td><td class=\"scheduled\">{}</td><td class=\"running\">{}</td><td class=\"done\">{}</td><td class=\"failed{}\">{}</td></tr>\n",
            c.waiting,
            c.scheduled,
            c.running,
            c.done,
            if c.failed > 0 { " nonzero" } else { "" },
            c.failed
        ));
        for job in q.dead_jobs(0, 50).await? {
            let action = format!(
                "/board/queues/{}/failed/{}/retry{token_param}",
                escape_query(q.name()),
                escape_query(&job.id)
            );
            failed.push_str(&format!(
                "<tr class=\"failed-job\" data-id=\"{id}\"><td>{name}</td><td>{id}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"{action}\"><button type=\"submit\">Retry</button></form></td></tr>\n",
                job.attempts,
                escape(&job.error),
                id = escape(&job.id),
                action = escape(&action),
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
<thead><tr><th>queue</th><th>waiting</th><th>scheduled</th><th>running</th><th>done</th><th>failed</th></tr></thead>
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
