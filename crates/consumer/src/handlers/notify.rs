//! `notify`: tell the client app a terminal status, with the same `webhook-id` on every retry.

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use domain::{answer::CallError, jobs::NotifyJob};

use super::{Ctx, after};
use crate::destinations::Route;

/// The notification's client app is disabled.
#[derive(Debug, thiserror::Error)]
#[error("client app {0} is disabled; the notification waits")]
struct Disabled(domain::ClientAppId);

/// Delivers one notification: 2xx → delivered; another 4xx, or transient failures past the
/// retries → failed (the sweeper leaves it alone); 5xx, 408, 429 or a timeout → re-scheduled
/// with backoff (never before the client's `Retry-After`); 401/403 → re-scheduled, never
/// failed: our credentials are wrong, not the notification.
pub async fn notify(job: NotifyJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let id = job.delivery_id;
    let attempt = attempt.current().max(1);
    // The job carries what to tell; the row says whose it is. A duplicate job of a delivered
    // notification can only come from a redelivery; the client sees the same delivery id.
    let attempts = i32::try_from(attempt).unwrap_or(i32::MAX);
    let row = p.writes.reads.call(job.id).await?;
    let row = row.ok_or_else(|| format!("transaction {} has no row", job.id))?;
    let endpoint = match p.destinations.route(row.client_app_id).await? {
        Route::Deliver(endpoint) => endpoint,
        Route::Wait => {
            // Owed, not failed: it looks again on the retry schedule (its last step once past
            // it) and goes out once the client app is enabled again.
            let waiting = Disabled(row.client_app_id);
            let last = p.schedules.notify_retry(p.schedules.notify_retries.max(1));
            let delay = p
                .schedules
                .notify_retry(attempt as u32)
                .or(last)
                .unwrap_or(std::time::Duration::from_secs(60));
            p.store
                .notification_retry(id, attempts, &waiting.to_string(), after(delay))
                .await?;
            return Err(RetryAfterError::new(waiting, delay).into());
        }
    };
    let error = match p.notifier.notify(&endpoint, id, job.id, job.status).await {
        Ok(()) => {
            p.writes
                .deliveries
                .call(store::Delivered {
                    delivery_id: id,
                    attempts,
                })
                .await?;
            metrics::counter!("notifications_delivered_total").increment(1);
            tracing::info!(txn_id = %job.id, delivery_id = %id, status = %job.status, "client notified");
            return Ok(());
        }
        Err(e) => e,
    };
    let retry = p.schedules.notify_retry(attempt as u32);
    let (delay, reason) = match (&error, retry) {
        (CallError::Refused(_), _) => (None, "refused"),
        (CallError::Unauthorized(_), retry) => {
            p.auth_failed("client", job.id, &error);
            let last = p.schedules.notify_retry(p.schedules.notify_retries.max(1));
            (retry.or(last), "unauthorized")
        }
        (CallError::Transient { .. }, retry) => (retry, "retries exhausted"),
    };
    match delay {
        Some(delay) => {
            let delay = p.schedules.at_least_retry_after(delay, error.retry_after());
            p.store
                .notification_retry(id, attempts, &error.to_string(), after(delay))
                .await?;
            Err(RetryAfterError::new(error, delay).into())
        }
        None => {
            tracing::warn!(txn_id = %job.id, delivery_id = %id, error = %error, reason, "notification given up");
            p.store
                .notification_failed(id, attempts, &error.to_string())
                .await?;
            metrics::counter!("notifications_failed_total", "reason" => reason).increment(1);
            Ok(())
        }
    }
}
