//! The `notifications` table: one row per terminal transaction, what the client app is owed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{DeliveryId, TransactionId};
use uuid::Uuid;

use crate::{Delivered, NotificationDetail, NotificationRow, Store, StoreError};

impl Store {
    /// The notification `delivery_id`, if it exists.
    pub async fn notification(
        &self,
        delivery_id: DeliveryId,
    ) -> Result<Option<NotificationRow>, StoreError> {
        Ok(self.notifications(&[delivery_id]).await?.pop().flatten())
    }

    /// [`Store::notification`] for many in one statement; one answer per id, in order.
    pub async fn notifications(
        &self,
        delivery_ids: &[DeliveryId],
    ) -> Result<Vec<Option<NotificationRow>>, StoreError> {
        let rows = sqlx::query(
            "SELECT delivery_id, transaction_id, status, attempts, delivered_at, failed_at
             FROM notifications WHERE delivery_id = ANY($1)",
        )
        .bind(
            delivery_ids
                .iter()
                .map(DeliveryId::as_uuid)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<DeliveryId, NotificationRow> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let row = NotificationRow::try_from(r)?;
            found.insert(row.delivery_id, row);
        }
        Ok(delivery_ids
            .iter()
            .map(|id| found.get(id).cloned())
            .collect())
    }

    /// The notification of transaction `id` with its delivery state, if one is owed.
    pub async fn notification_of(
        &self,
        id: TransactionId,
    ) -> Result<Option<NotificationDetail>, StoreError> {
        let row = sqlx::query(
            "SELECT delivery_id, transaction_id, status, attempts, delivered_at, failed_at,
                    last_error, next_attempt_at, created_at
             FROM notifications WHERE transaction_id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(NotificationDetail::try_from).transpose()
    }

    /// Records a failed delivery attempt and when the next one is due.
    pub async fn notification_retry(
        &self,
        delivery_id: DeliveryId,
        attempts: i32,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET attempts = $2, last_error = $3, next_attempt_at = $4
             WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(delivery_id.as_uuid())
        .bind(attempts)
        .bind(error)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the client accepted the notification.
    pub async fn notification_delivered(
        &self,
        delivery_id: DeliveryId,
        attempts: i32,
    ) -> Result<(), StoreError> {
        self.notification_delivered_many(&[Delivered {
            delivery_id,
            attempts,
        }])
        .await
    }

    /// [`Store::notification_delivered`] for many notifications in one statement.
    pub async fn notification_delivered_many(&self, rows: &[Delivered]) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.delivery_id.as_uuid()).collect();
        let attempts: Vec<i32> = rows.iter().map(|r| r.attempts).collect();
        sqlx::query(
            "UPDATE notifications n
             SET attempts = v.attempts, delivered_at = now(), next_attempt_at = NULL
             FROM unnest($1::uuid[], $2::int[]) AS v(delivery_id, attempts)
             WHERE n.delivery_id = v.delivery_id AND n.delivered_at IS NULL",
        )
        .bind(&ids)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a notification (the client refused it, or retries ran out).
    pub async fn notification_failed(
        &self,
        delivery_id: DeliveryId,
        attempts: i32,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET attempts = $2, last_error = $3, failed_at = now(), next_attempt_at = NULL
             WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(delivery_id.as_uuid())
        .bind(attempts)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
