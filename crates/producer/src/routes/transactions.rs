//! `GET /transactions`: a client app's transactions, a page at a time, for reconciling its
//! records with ours. Pages follow (created_at, id); the cursor is opaque and signed, good only
//! for the client app and the filters that made it.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use chrono::{DateTime, Utc};
use domain::{ClientAppId, Status, page_cursor::PageCursor};
use serde::Serialize;
use store::ListFilter;
use utoipa::ToSchema;

use crate::{
    app::Shared,
    auth::Caller,
    openapi::{KeyRefusals, ReadRefusals},
    problem::{ApiError, FieldError, Problem},
    routes::transaction::TransactionSummary,
};

/// Rows per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 50;
/// Most rows per page.
const MAX_LIMIT: i64 = 200;

/// The body of `GET /transactions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionPage {
    /// The page's transactions, oldest first (without their history).
    data: Vec<TransactionSummary>,
    /// Where the next page starts (`cursor=`), or null on the last page.
    next_cursor: Option<String>,
}

/// What a page asks for, read from the query string.
#[derive(Debug, PartialEq)]
struct PageQuery {
    filter: ListFilter,
    limit: i64,
    cursor: Option<String>,
}

impl PageQuery {
    /// Reads the query string's pairs; every field that is wrong is named.
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut query = PageQuery {
            filter: ListFilter::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        let mut errors = Vec::new();
        let instant = |field: &str, value: &str, errors: &mut Vec<FieldError>| {
            DateTime::parse_from_rfc3339(value)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| errors.push(FieldError::new(field, "must be an RFC 3339 date-time")))
                .ok()
        };
        for (name, value) in pairs {
            match name.as_str() {
                "status" => match value.parse::<Status>() {
                    Ok(status) => query.filter.status = Some(status),
                    Err(_) => errors.push(FieldError::new(
                        "status",
                        "must be one of pending, completed, declined, failed",
                    )),
                },
                "created_after" => {
                    query.filter.created_after = instant(name, value, &mut errors);
                }
                "created_before" => {
                    query.filter.created_before = instant(name, value, &mut errors);
                }
                "limit" => match value.parse::<i64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => query.limit = n,
                    _ => errors.push(FieldError::new("limit", "must be 1 to 200")),
                },
                "cursor" => query.cursor = Some(value.clone()),
                other => errors.push(FieldError::new(other, "unknown parameter")),
            }
        }
        if let (Some(after), Some(before)) =
            (query.filter.created_after, query.filter.created_before)
            && after >= before
        {
            errors.push(FieldError::new(
                "created_after",
                "must be before created_before",
            ));
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }

    /// What a cursor is good for: this client app, these filters (not the page size).
    fn scope(&self, client_app: ClientAppId) -> String {
        let f = &self.filter;
        let at = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros().to_string());
        format!(
            "transactions|{client_app}|{}|{}|{}",
            f.status.map(|s| s.as_str()).unwrap_or(""),
            at(f.created_after).unwrap_or_default(),
            at(f.created_before).unwrap_or_default(),
        )
    }
}

#[utoipa::path(
    get,
    path = "/transactions",
    security(("api_key" = [])),
    params(
        ("status" = Option<String>, Query, pattern = "^(pending|completed|declined|failed)$", description = "Only this status: pending, completed, declined or failed"),
        ("created_after" = Option<String>, Query, format = DateTime, description = "Only those created after this instant (RFC 3339)"),
        ("created_before" = Option<String>, Query, format = DateTime, description = "Only those created before this instant (RFC 3339)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Rows per page (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page, with the same filters"),
    ),
    responses(
        (status = 200, description = "A page, oldest first; walking from the first page sees every transaction created before the walk began exactly once", body = TransactionPage),
        (status = 400, description = "A cursor this server did not make for this client app and these filters", body = Problem, content_type = "application/problem+json"),
        KeyRefusals,
        (status = 422, description = "A filter or limit out of range, each named in `errors`", body = Problem, content_type = "application/problem+json"),
        ReadRefusals,
    )
)]
/// `GET /transactions`: one page of the caller's transactions.
pub async fn list(
    State(state): State<Shared>,
    Caller { client_app, .. }: Caller,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<TransactionPage>, ApiError> {
    let Query(pairs) = pairs.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let query = PageQuery::parse(&pairs)?;
    let scope = query.scope(client_app);
    let after = match &query.cursor {
        Some(text) => {
            let cursor = PageCursor::decode(text, &state.cursor_key, &scope)
                .map_err(|e| ApiError::BadQuery(e.to_string()))?;
            let at = DateTime::from_timestamp_micros(cursor.created_at_micros)
                .ok_or_else(|| ApiError::BadQuery("the cursor's instant is out of range".into()))?;
            Some((at, cursor.id))
        }
        None => None,
    };
    // One row more than the page: whether there is a next page, without a second query.
    let mut rows = state
        .store
        .list_transactions(client_app, &query.filter, after, query.limit + 1)
        .await?;
    let next_cursor = if rows.len() as i64 > query.limit {
        rows.truncate(query.limit as usize);
        rows.last().map(|last| {
            PageCursor {
                created_at_micros: last.created_at.timestamp_micros(),
                id: last.id.as_uuid(),
            }
            .encode(&state.cursor_key, &scope)
        })
    } else {
        None
    };
    Ok(Json(TransactionPage {
        data: rows.iter().map(TransactionSummary::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refused(query: &[(&str, &str)]) -> Vec<String> {
        match PageQuery::parse(&pairs(query)) {
            Err(ApiError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{query:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn a_page_query_reads_its_filters_and_names_each_mistake() {
        let q = PageQuery::parse(&pairs(&[
            ("status", "completed"),
            ("created_after", "2026-12-01T00:00:00Z"),
            ("created_before", "2026-12-02T00:00:00+01:00"),
            ("limit", "200"),
            ("cursor", "abc"),
        ]))
        .unwrap();
        assert_eq!(q.filter.status, Some(Status::Completed));
        assert_eq!(q.limit, 200);
        assert_eq!(q.cursor.as_deref(), Some("abc"));
        assert_eq!(PageQuery::parse(&[]).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(refused(&[("limit", "0")]), ["limit"]);
        assert_eq!(refused(&[("limit", "201")]), ["limit"]);
        assert_eq!(refused(&[("limit", "ten")]), ["limit"]);
        assert_eq!(
            refused(&[("created_after", "yesterday")]),
            ["created_after"]
        );
        assert_eq!(
            refused(&[("status", "lost"), ("sort", "id")]),
            ["status", "sort"]
        );
        assert_eq!(
            refused(&[
                ("created_after", "2026-12-02T00:00:00Z"),
                ("created_before", "2026-12-01T00:00:00Z"),
            ]),
            ["created_after"]
        );
    }

    #[test]
    fn a_cursor_is_scoped_to_the_client_app_and_the_filters_not_the_page_size() {
        let app = ClientAppId::generate();
        let q = |query: &[(&str, &str)]| PageQuery::parse(&pairs(query)).unwrap().scope(app);
        assert_eq!(q(&[("limit", "10")]), q(&[("limit", "20")]));
        assert_ne!(q(&[]), q(&[("status", "pending")]));
        assert_ne!(
            q(&[]),
            PageQuery::parse(&[])
                .unwrap()
                .scope(ClientAppId::generate())
        );
    }
}
