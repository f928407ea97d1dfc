//! The client apps as the board shows them: status, rate limit, endpoint and keys by id —
//! never a secret (`/board/clients`, and `/board/api/clients` as JSON).

use std::fmt::Write;

use axum::{Json, extract::State, response::Html};
use serde::Serialize;
use store::{ClientApp, KeyInfo};

use super::{
    Board, BoardError,
    html::{escape, page},
};

/// A client app with its keys.
#[derive(Debug, Serialize)]
pub struct ClientAppView {
    /// The client app.
    #[serde(flatten)]
    pub client_app: ClientApp,
    /// Its keys, oldest first (ids only).
    pub keys: Vec<KeyInfo>,
}

async fn client_apps(board: &Board) -> Result<Vec<ClientAppView>, BoardError> {
    let mut views = Vec::new();
    for client_app in board.store.client_apps().await? {
        let keys = board.store.keys_of(client_app.id).await?;
        views.push(ClientAppView { client_app, keys });
    }
    Ok(views)
}

/// `GET /board/api/clients`: every client app with its keys.
pub(super) async fn api(
    State(board): State<Board>,
) -> Result<Json<Vec<ClientAppView>>, BoardError> {
    Ok(Json(client_apps(&board).await?))
}

/// `GET /board/clients`: the client apps' table.
pub(super) async fn page_of_clients(
    State(board): State<Board>,
) -> Result<Html<String>, BoardError> {
    let mut body = String::from(
        "<table id=\"clients\"><thead><tr><th>name</th><th>id</th><th>status</th><th>rate limit</th><th>notify URL</th><th>keys</th></tr></thead><tbody>\n",
    );
    for view in client_apps(&board).await? {
        let app = &view.client_app;
        let limit = match (app.rate_limit_per_s, app.burst) {
            (Some(rate), burst) => format!("{rate}/s, burst {}", burst.unwrap_or(rate)),
            (None, _) => "none".to_string(),
        };
        let mut keys = String::new();
        for key in &view.keys {
            let state = match (&key.revoked_at, &key.expires_at) {
                (Some(at), _) => format!("revoked {at}"),
                (None, Some(at)) => format!("expires {at}"),
                (None, None) => "valid".to_string(),
            };
            let used = key
                .last_used_at
                .map(|at| format!(", last used {at}"))
                .unwrap_or_default();
            let _ = write!(
                keys,
                "<div class=\"key\" data-key-id=\"{}\"><code>{}</code> {} ({state}{used})</div>",
                escape(&key.key_id),
                escape(&key.key_id),
                escape(key.name.as_deref().unwrap_or("")),
            );
        }
        let _ = writeln!(
            body,
            "<tr class=\"client\" data-status=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{keys}</td></tr>",
            app.status,
            escape(&app.name),
            app.id,
            app.status,
            escape(&limit),
            escape(app.notify_url.as_deref().unwrap_or("CLIENT_URL (legacy)")),
        );
    }
    body.push_str("</tbody></table>\n");
    Ok(Html(page("Client apps", &body, false)))
}
