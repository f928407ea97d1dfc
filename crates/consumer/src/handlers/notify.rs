//! `notify`: tell the client app a terminal status, with the same `webhook-id` on every retry.

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use domain::{answer::CallError, delivery::Trigger, jobs::NotifyJob};
use store::{AttemptRecord, Delivered};

use super::{Ctx, after};
use crate::destinations::Route;
use outbound::notifier::Endpoint;

/// The notification's client app is disabled.
#[derive(Debug, thiserror::Error)]
#[error("client app {0} is disabled; the notification waits")]
struct Disabled(domain::ClientAppId);

/// Delivers one notification, each attempt appended to the delivery log with the change it
/// causes: 2xx → delivered; another 4xx, or a transient failure past the last step of
/// `NOTIFY_SCHEDULE` → given up (exhausted; the sweeper leaves it alone); 5xx, 408, 429 or a
/// timeout → re-scheduled on `NOTIFY_SCHEDULE` (never before the client's `Retry-After`);
/// 401/403 → re-scheduled, never given up: our credentials are wrong, not the notification.
pub async fn notify(job: NotifyJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let id = job.delivery_id;
    let attempt = u32::try_from(attempt.current().max(1)).unwrap_or(u32::MAX);
    // The job carries what to tell and to whom. A duplicate job of a delivered notification
    // can only come from a redelivery; the client sees the same delivery id.
    let client_app = match job.client_app {
        Some(client_app) => client_app,
        // Queued before jobs carried their client app: the row says whose it is.
        None => {
            let row = p.writes.reads.call(job.id).await?;
            row.ok_or_else(|| format!("transaction {} has no row", job.id))?
                .client_app_id
        }
    };
    let endpoint = match p.destinations.route(client_app).await? {
        Route::Deliver(endpoint) => endpoint,
        Route::Wait if job.trigger == Trigger::Manual => {
            // A disabled client app gets no extra attempt; its owed ones wait on their own.
            tracing::info!(txn_id = %job.id, delivery_id = %id, trigger = %job.trigger, "client app disabled; the extra attempt is dropped");
            return Ok(());
        }
        Route::Wait => {
            // Owed, not given up: no attempt is made; it looks again on the schedule (its last
            // step once past it) and goes out once the client app is enabled again.
            let waiting = Disabled(client_app);
            let delay = p
                .schedules
                .notify_retry(attempt)
                .unwrap_or(p.schedules.notify_schedule.last());
            p.store
                .notification_waits(id, &waiting.to_string(), after(delay))
                .await?;
            return Err(RetryAfterError::new(waiting, delay).into());
        }
    };
    if job.trigger == Trigger::Manual {
        return extra_attempt(&job, client_app, &endpoint, &p).await;
    }
    // A recovery read the notification as not accepted and queued this job; the job it found
    // in flight may have delivered it since and finished, so its id was free again. Asked here,
    // after that delivery was recorded (before its job finished), the answer is certain.
    if job.trigger == Trigger::Recover
        && p.store
            .notification_of(job.id)
            .await?
            .is_some_and(|n| n.row.delivered_at.is_some())
    {
        tracing::debug!(txn_id = %job.id, delivery_id = %id, "recovered notification already delivered");
        return Ok(());
    }
    let sent = p.notifier.notify(&endpoint, id, job.id, job.status).await;
    let record = |error: Option<&str>| {
        AttemptRecord::new(
            id,
            job.trigger,
            sent.started_at.into(),
            sent.took,
            sent.http_status,
            error,
        )
    };
    let error = match &sent.result {
        Ok(()) => {
            let attempt = record(None);
            let delivered = Delivered {
                attempt,
                client_app,
            };
            let changed_at = p.writes.deliveries.call(delivered).await?;
            metrics::counter!("notifications_delivered_total").increment(1);
            // From the outcome (its status change) to the client app's acceptance, once.
            if let Some(changed_at) = changed_at {
                let latency = chrono::Utc::now() - changed_at;
                metrics::histogram!("notification_delivery_seconds")
                    .record(latency.as_seconds_f64().max(0.0));
            }
            tracing::info!(txn_id = %job.id, delivery_id = %id, status = %job.status, "client notified");
            return Ok(());
        }
        Err(e) => e.clone(),
    };
    let text = error.to_string();
    let retry = p.schedules.notify_retry(attempt);
    let (delay, reason) = match (&error, retry) {
        (CallError::Refused(_), _) => (None, "refused"),
        (CallError::Unauthorized(_), retry) => {
            p.auth_failed("client", job.id, &error);
            (
                retry.or(Some(p.schedules.notify_schedule.last())),
                "unauthorized",
            )
        }
        // A client app's throttling still takes a step of its schedule: the schedule, not a
        // retry count, bounds a notification.
        (CallError::Transient { .. } | CallError::NotNow { .. }, retry) => (retry, "exhausted"),
    };
    match delay {
        Some(delay) => {
            let delay = p.schedules.at_least_retry_after(delay, error.retry_after());
            let failing = p
                .store
                .notification_retry(&record(Some(&text)), after(delay))
                .await?;
            p.after_failed_delivery(failing).await?;
            Err(RetryAfterError::new(error, delay).into())
        }
        None => {
            tracing::warn!(txn_id = %job.id, delivery_id = %id, client_app = %client_app, error = %error, reason, "notification given up");
            let failing = p.store.notification_failed(&record(Some(&text))).await?;
            p.after_failed_delivery(failing).await?;
            metrics::counter!("notifications_failed_total", "reason" => reason).increment(1);
            if reason == "exhausted" {
                metrics::counter!("notifications_exhausted_total", "client_app" => client_app.to_string())
                    .increment(1);
            }
            Ok(())
        }
    }
}

/// One attempt a client app asked for (`notify:<delivery id>:manual`), besides the schedule:
/// accepted → delivered; refused or failed → on the log only, and never retried. The
/// notification's own schedule is left alone either way, so an owed delivery keeps its
/// retries (the client may then hear it twice, under the same `webhook-id`).
async fn extra_attempt(
    job: &NotifyJob,
    client_app: domain::ClientAppId,
    endpoint: &Endpoint,
    p: &Ctx,
) -> Result<(), BoxDynError> {
    let sent = p
        .notifier
        .notify(endpoint, job.delivery_id, job.id, job.status)
        .await;
    let error = sent.result.as_ref().err().map(ToString::to_string);
    let attempt = AttemptRecord::new(
        job.delivery_id,
        job.trigger,
        sent.started_at.into(),
        sent.took,
        sent.http_status,
        error.as_deref(),
    );
    match error {
        None => {
            let delivered = Delivered {
                attempt,
                client_app,
            };
            p.writes.deliveries.call(delivered).await?;
            tracing::info!(txn_id = %job.id, delivery_id = %job.delivery_id, trigger = %job.trigger, "client notified again");
        }
        Some(error) => {
            p.store.notification_extra_attempt(&attempt).await?;
            tracing::info!(txn_id = %job.id, delivery_id = %job.delivery_id, trigger = %job.trigger, %error, "extra notification attempt failed");
        }
    }
    Ok(())
}
