//! The board's HTML pages, rendered on the server: the overview, a queue's jobs in one state,
//! one job, and a transaction's story.

use std::fmt::Write;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
};
use queue::{JobInfo, JobState};
use serde::Deserialize;

use super::{
    Board, BoardError, JobsQuery, chart,
    html::{escape, escape_query, page, time},
};

/// A Retry button for a dead job, or nothing for a reader who may not act.
fn retry_button(queue: &str, id: &str, may_act: bool) -> String {
    if !may_act {
        return "read-only".to_string();
    }
    let action = format!(
        "/board/api/queues/{}/failed/{}/retry",
        escape_query(queue),
        escape_query(id)
    );
    format!(
        "<button type=\"button\" data-action=\"{}\">Retry</button>",
        escape(&action)
    )
}

fn job_link(queue: &str, id: &str) -> String {
    format!(
        "<a href=\"/board/queues/{}/jobs/{}\">{}</a>",
        escape_query(queue),
        escape_query(id),
        escape(id)
    )
}

/// A payload as shown: pretty JSON, or a note that it is hidden or gone.
fn payload_cell(job: &JobInfo, reveals: bool) -> String {
    if !reveals {
        return "<em>hidden without a board token</em>".to_string();
    }
    if job.payload.is_empty() {
        return "<em>none kept</em>".to_string();
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| job.payload.clone());
    format!("<pre class=\"payload\">{}</pre>", escape(&pretty))
}

/// What a job's time means in its state.
fn time_label(state: JobState) -> &'static str {
    match state {
        JobState::Scheduled => "due",
        JobState::Running => "lease ends",
        JobState::Failed => "died",
        JobState::Waiting | JobState::Done => "",
    }
}

/// `GET /board`: counts (each linking to its jobs), pause and resume, the throughput chart,
/// the failed jobs with Retry. Reloads every 5 s.
pub(super) async fn overview(
    State(board): State<Board>,
    headers: HeaderMap,
) -> Result<Html<String>, BoardError> {
    let may_act = board.access.may_act(&headers);
    let mut rows = String::new();
    let mut failed = String::new();
    let mut charts = String::new();
    for q in board.queues.iter() {
        let c = q.counts().await?;
        let name = escape(q.name());
        let link = |state: &str, n: u64| {
            format!(
                "<a href=\"/board/queues/{}?state={state}\">{n}</a>",
                escape_query(q.name())
            )
        };
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
        let _ = writeln!(
            rows,
            "<tr data-queue=\"{name}\"><th>{name}</th><td class=\"waiting\">{}</td><td class=\"scheduled\">{}</td><td class=\"running\">{}</td><td class=\"done\">{}</td><td class=\"failed{}\">{}</td><td class=\"state\">{}</td><td>{toggle}</td></tr>",
            link("waiting", c.waiting),
            link("scheduled", c.scheduled),
            link("running", c.running),
            c.done,
            if c.failed > 0 { " nonzero" } else { "" },
            link("failed", c.failed),
            if c.paused { "paused" } else { "running" },
        );
        let points = q.throughput().await?;
        let _ = writeln!(
            charts,
            "<figure><figcaption>{name}</figcaption>{}</figure>",
            chart::svg(q.name(), &points)
        );
        for job in q.dead_jobs(0, 50).await? {
            let _ = writeln!(
                failed,
                "<tr class=\"failed-job\" data-id=\"{id}\"><td>{name}</td><td>{link}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                job.attempts,
                escape(&job.error),
                retry_button(q.name(), &job.id, may_act),
                id = escape(&job.id),
                link = job_link(q.name(), &job.id),
            );
        }
    }
    if failed.is_empty() {
        failed.push_str("<tr><td colspan=\"5\">No failed jobs.</td></tr>\n");
    }
    let body = format!(
        r#"<table id="queues">
<thead><tr><th>queue</th><th>waiting</th><th>scheduled</th><th>running</th><th>done</th><th>failed</th><th>state</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<h2>Throughput</h2>
<p class="legend"><span class="done">done jobs</span> and <span class="failed">failed attempts</span> per {secs} s, the last 15 minutes</p>
<div class="charts" id="throughput">
{charts}</div>
<h2>Failed jobs</h2>
<table id="failed">
<thead><tr><th>queue</th><th>job</th><th>attempts</th><th>last error</th><th></th></tr></thead>
<tbody>
{failed}</tbody>
</table>
<p>Refreshes every 5 s.</p>"#,
        secs = chart::BUCKET_SECONDS,
    );
    Ok(Html(page("Queues", &body, true)))
}

/// `GET /board/queues/{queue}?state=&cursor=`: one page of the queue's jobs in a state.
pub(super) async fn jobs(
    State(board): State<Board>,
    Path(queue): Path<String>,
    Query(query): Query<JobsQuery>,
    headers: HeaderMap,
) -> Result<Html<String>, BoardError> {
    let state = query.state()?;
    let listed = board.jobs_page(&queue, &query).await?;
    let (reveals, may_act) = (board.access.reveals(), board.access.may_act(&headers));
    let mut tabs = String::new();
    for s in JobState::LISTED {
        let _ = write!(
            tabs,
            " <a href=\"/board/queues/{}?state={s}\"{}>{s}</a>",
            escape_query(&queue),
            if s == state {
                " aria-current=\"page\""
            } else {
                ""
            },
            s = s.as_str(),
        );
    }
    let mut rows = String::new();
    for job in &listed.jobs {
        let _ = writeln!(
            rows,
            "<tr class=\"job\" data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&job.id),
            job_link(&queue, &job.id),
            job.at_ms.map(time).unwrap_or_default(),
            job.deliveries,
            escape(&job.error),
            payload_cell(job, reveals),
            if state == JobState::Failed {
                retry_button(&queue, &job.id, may_act)
            } else {
                String::new()
            },
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"6\">No jobs.</td></tr>\n");
    }
    let next = listed
        .next
        .map(|cursor| {
            format!(
                "<p><a id=\"next\" href=\"/board/queues/{}?state={}&amp;cursor={}\">Next page</a></p>",
                escape_query(&queue),
                state.as_str(),
                escape_query(&cursor)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<p class="tabs">States:{tabs}</p>
<table id="jobs" data-state="{state}">
<thead><tr><th>job</th><th>{label}</th><th>deliveries</th><th>last error</th><th>payload</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
{next}"#,
        state = state.as_str(),
        label = time_label(state),
    );
    Ok(Html(page(
        &format!("{queue}: {} jobs", state.as_str()),
        &body,
        false,
    )))
}

/// `GET /board/queues/{queue}/jobs/{id}`: one job.
pub(super) async fn job(
    State(board): State<Board>,
    Path((queue, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Html<String>, BoardError> {
    let job = board.job(&queue, &id).await?;
    let action = if job.state == JobState::Failed {
        retry_button(&queue, &job.id, board.access.may_act(&headers))
    } else {
        String::new()
    };
    let body = format!(
        r#"<table id="job" data-state="{state}">
<tr><th>queue</th><td>{queue}</td></tr>
<tr><th>state</th><td class="state">{state}</td></tr>
<tr><th>{label}</th><td>{at}</td></tr>
<tr><th>deliveries</th><td>{deliveries}</td></tr>
<tr><th>last error</th><td>{error}</td></tr>
<tr><th>payload</th><td>{payload}</td></tr>
</table>
{action}"#,
        queue = escape(&queue),
        state = job.state.as_str(),
        label = match time_label(job.state) {
            "" => "time",
            label => label,
        },
        at = job.at_ms.map(time).unwrap_or_default(),
        deliveries = job.deliveries,
        error = escape(&job.error),
        payload = payload_cell(&job, board.access.reveals()),
    );
    Ok(Html(page(&format!("Job {id}"), &body, false)))
}

#[derive(Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    id: String,
}

fn opt_time<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// `GET /board/transactions?id=`: the search box's answer, a transaction's story.
pub(super) async fn story(
    State(board): State<Board>,
    Query(search): Query<Search>,
) -> Result<Response, BoardError> {
    if search.id.trim().is_empty() {
        return Ok(Html(page(
            "Transaction",
            "<p>Enter a transaction id above.</p>",
            false,
        ))
        .into_response());
    }
    let story = match board.story(&search.id).await {
        Ok(story) => story,
        Err(BoardError::BadRequest(why)) => {
            let body = format!("<p class=\"error\">{}</p>", escape(&why));
            return Ok((
                StatusCode::BAD_REQUEST,
                Html(page("Transaction", &body, false)),
            )
                .into_response());
        }
        Err(e) => return Err(e),
    };
    let title = format!("Transaction {}", story.id);
    if !story.is_known() {
        let body =
            "<p class=\"error\">Nothing is known of this transaction: no row and no job.</p>";
        return Ok((StatusCode::NOT_FOUND, Html(page(&title, body, false))).into_response());
    }
    let mut body = String::new();
    match &story.transaction {
        Some(t) => {
            let money = match t.money {
                Some(m) => format!("{} {}", m.amount.minor_units(), m.currency.as_str()),
                _ if board.access.reveals() => "none".to_string(),
                _ => "<em>hidden without a board token</em>".to_string(),
            };
            let _ = write!(
                body,
                r#"<table id="transaction">
<tr><th>status</th><td class="status">{}</td></tr>
<tr><th>amount</th><td>{money}</td></tr>
<tr><th>created</th><td>{}</td></tr>
<tr><th>submitted</th><td>{}</td></tr>
<tr><th>next submission attempt</th><td>{}</td></tr>
<tr><th>poll</th><td>number {} {}</td></tr>
<tr><th>polling gave up</th><td>{}</td></tr>
<tr><th>updated</th><td>{}</td></tr>
</table>
"#,
                t.status,
                t.created_at,
                opt_time(t.submitted_at),
                opt_time(t.next_attempt_at),
                t.poll_number,
                t.next_poll_at
                    .map(|at| format!("due {at}"))
                    .unwrap_or_default(),
                opt_time(t.poll_expired_at),
                t.updated_at,
            );
        }
        None => body.push_str(
            "<p id=\"transaction\">No row yet: its <code>create</code> job has not run.</p>\n",
        ),
    }
    body.push_str("<h2>History</h2>\n<table id=\"history\"><thead><tr><th>status</th><th>by</th><th>at</th></tr></thead><tbody>\n");
    for step in &story.history {
        let _ = writeln!(
            body,
            "<tr class=\"step\" data-status=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            step.status, step.status, step.source, step.at
        );
    }
    body.push_str("</tbody></table>\n<h2>Client notification</h2>\n");
    match &story.notification {
        Some(n) => {
            let _ = write!(
                body,
                r#"<table id="notification">
<tr><th>delivery id</th><td class="delivery-id">{}</td></tr>
<tr><th>status told</th><td>{}</td></tr>
<tr><th>attempts</th><td class="attempts">{}</td></tr>
<tr><th>delivered</th><td class="delivered">{}</td></tr>
<tr><th>given up</th><td>{}</td></tr>
<tr><th>last error</th><td>{}</td></tr>
<tr><th>next attempt</th><td>{}</td></tr>
</table>
"#,
                n.delivery_id,
                n.status,
                n.attempts,
                opt_time(n.delivered_at),
                opt_time(n.failed_at),
                escape(n.last_error.as_deref().unwrap_or("")),
                opt_time(n.next_attempt_at),
            );
        }
        None => body.push_str(
            "<p id=\"notification\">None yet: it is owed once the outcome is known.</p>\n",
        ),
    }
    body.push_str("<h2>Jobs in the queues</h2>\n<table id=\"story-jobs\"><thead><tr><th>queue</th><th>job</th><th>state</th><th>time</th><th>deliveries</th><th>last error</th></tr></thead><tbody>\n");
    for j in &story.jobs {
        let _ = writeln!(
            body,
            "<tr class=\"job\" data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&j.job.id),
            j.queue.as_str(),
            job_link(j.queue.as_str(), &j.job.id),
            j.job.state.as_str(),
            j.job.at_ms.map(time).unwrap_or_default(),
            j.job.deliveries,
            escape(&j.job.error),
        );
    }
    if story.jobs.is_empty() {
        body.push_str("<tr><td colspan=\"6\">None: completed jobs are forgotten once they drop out of the recent list.</td></tr>\n");
    }
    body.push_str("</tbody></table>\n");
    Ok(Html(page(&title, &body, false)).into_response())
}
