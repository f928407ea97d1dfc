//! The client apps as the board shows them: status, rate limit, endpoint and keys by id —
//! never a secret (`/board/clients`, and `/board/api/clients` as JSON).

use axum::{Json, extract::State};
use maud::{Markup, html};
use serde::Serialize;
use store::{ClientApp, KeyInfo};

use crate::clients::WithKeys;

use super::{
    Board, BoardError,
    html::{optional, page},
};

/// A client app with its keys.
#[derive(Debug, Serialize)]
pub struct ClientAppView {
    /// The client app.
    #[serde(flatten)]
    pub client_app: ClientApp,
    /// Its keys, oldest first (ids only).
    pub keys: Vec<KeyInfo>,
    /// Its notifications still owed.
    pub owed: i64,
    /// Its notifications given up (exhausted, or refused by its endpoint).
    pub given_up: i64,
}

async fn client_apps(board: &Board) -> Result<Vec<ClientAppView>, BoardError> {
    let mut views = Vec::new();
    let counts = board.store.delivery_counts().await?;
    let apps = crate::clients::with_keys(&board.store, board.store.client_apps().await?).await?;
    for WithKeys { client_app, keys } in apps {
        let (owed, given_up) = counts.get(&client_app.id).copied().unwrap_or_default();
        views.push(ClientAppView {
            client_app,
            keys,
            owed,
            given_up,
        });
    }
    Ok(views)
}

/// `GET /board/api/clients`: every client app with its keys.
pub(super) async fn api(
    State(board): State<Board>,
) -> Result<Json<Vec<ClientAppView>>, BoardError> {
    Ok(Json(client_apps(&board).await?))
}

/// A key as listed: its id, name and state, never the key.
fn key_line(key: &KeyInfo) -> Markup {
    let state = match (&key.revoked_at, &key.expires_at) {
        (Some(at), _) => format!("revoked {at}"),
        (None, Some(at)) => format!("expires {at}"),
        (None, None) => "valid".to_string(),
    };
    let used = key
        .last_used_at
        .map(|at| format!(", last used {at}"))
        .unwrap_or_default();
    html! {
        div.key data-key-id=(key.key_id) {
            code { (key.key_id) } " " (key.name.as_deref().unwrap_or("")) " (" (state) (used) ")"
        }
    }
}

/// `GET /board/clients`: the client apps' table.
pub(super) async fn page_of_clients(State(board): State<Board>) -> Result<Markup, BoardError> {
    let views = client_apps(&board).await?;
    let body = html! {
        table #clients {
            thead { tr {
                th { "name" } th { "id" } th { "status" } th { "rate limit" } th { "notify URL" }
                th { "last success" } th { "failing since" } th { "owed" } th { "given up" }
                th { "keys" }
            } }
            tbody {
                @for view in &views {
                    @let app = &view.client_app;
                    tr.client data-status=(app.status) {
                        td { (app.name) }
                        td { code { (app.id) } }
                        td { (app.status) }
                        td {
                            @match (app.rate_limit_per_s, app.burst) {
                                (Some(rate), burst) => { (rate) "/s, burst " (burst.unwrap_or(rate)) }
                                (None, _) => "none",
                            }
                        }
                        td { (app.notify_url.as_deref().unwrap_or("CLIENT_URL (legacy)")) }
                        td.last-success { (optional(app.last_success_at)) }
                        td.failing-since { (optional(app.failing_since)) }
                        td.owed { (view.owed) }
                        td.given-up { (view.given_up) }
                        td { @for key in &view.keys { (key_line(key)) } }
                    }
                }
            }
        }
    };
    Ok(page("Client apps", body, false))
}
