//! `notify`: tell the client app a terminal status, with the same `webhook-id` on every retry.

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use txn_core::{jobs::NotifyJob, notifier::NotifyError};

use super::{Ctx, after};

/// Delivers one notification: 2xx → delivered; 4xx or retries exhausted → failed (the sweeper
/// leaves it alone); 5xx or timeout → re-scheduled with backoff.
pub async fn notify(job: NotifyJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let id = job.delivery_id;
    let attempt = attempt.current().max(1);
    // The job carries what to tell, so a delivery needs no read. A duplicate job of a delivered
    // notification can only come from a redelivery; the client sees the same delivery id.
    let attempts = i32::try_from(attempt).unwrap_or(i32::MAX);
    match p.notifier.notify(id, job.id, job.status).await {
        Ok(()) => {
            p.writes.deliveries.call((id, attempts)).await?;
            metrics::counter!("notifications_delivered_total").increment(1);
            tracing::info!(txn_id = %job.id, delivery_id = %id, status = %job.status, "client notified");
            Ok(())
        }
        Err(e @ NotifyError::Rejected(_)) => {
            tracing::warn!(txn_id = %job.id, delivery_id = %id, error = %e, "notification refused; giving up");
            p.store
                .notification_failed(id, attempts, &e.to_string())
                .await?;
            metrics::counter!("notifications_failed_total", "reason" => "refused").increment(1);
            Ok(())
        }
        Err(e @ NotifyError::Transient(_)) => match p.schedules.notify_retry(attempt as u32) {
            Some(delay) => {
                p.store
                    .notification_retry(id, attempts, &e.to_string(), after(delay))
                    .await?;
                Err(RetryAfterError::new(e, delay).into())
            }
            None => {
                tracing::warn!(txn_id = %job.id, delivery_id = %id, error = %e, "notification retries exhausted");
                p.store
                    .notification_failed(id, attempts, &e.to_string())
                    .await?;
                metrics::counter!("notifications_failed_total", "reason" => "retries exhausted")
                    .increment(1);
                Ok(())
            }
        },
    }
}
