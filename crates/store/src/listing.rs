//! A client app's transactions, a page at a time, in (created_at, id) order: the page after a
//! cursor is found through the index `transactions_client_app_created`, so page 10,000 costs
//! what page 1 does, and rows inserted during a walk land after it.

use chrono::{DateTime, Utc};
use domain::{ClientAppId, Status};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{Store, StoreError, TransactionRow};

/// Which of a client app's transactions a page holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only those in this status.
    pub status: Option<Status>,
    /// Only those created after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Only those created before this instant.
    pub created_before: Option<DateTime<Utc>>,
}

impl Store {
    /// Up to `limit` of `client_app`'s transactions matching `filter`, after the row `after`
    /// (its `created_at` and id), oldest first.
    pub async fn list_transactions(
        &self,
        client_app: ClientAppId,
        filter: &ListFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<TransactionRow>, StoreError> {
        // Only the conditions asked for are in the statement, so each shape gets the plan
        // that walks the index.
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(concat!(
            "SELECT ",
            transaction_columns_sql!(),
            " FROM transactions WHERE client_app_id = "
        ));
        query.push_bind(client_app.as_uuid());
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(at) = filter.created_after {
            query.push(" AND created_at > ").push_bind(at);
        }
        if let Some(at) = filter.created_before {
            query.push(" AND created_at < ").push_bind(at);
        }
        if let Some((created_at, id)) = after {
            query
                .push(" AND (created_at, id) > (")
                .push_bind(created_at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        query
            .push(" ORDER BY created_at, id LIMIT ")
            .push_bind(limit);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(TransactionRow::try_from).collect()
    }
}
