//! The board's HTML pages, rendered on the server: the overview, a queue's jobs in one state,
//! one job, and a transaction's story.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use maud::{Markup, html};
use queue::{Counts, DeadJob, JobInfo, JobState, throughput::Point};
use serde::Deserialize;

use super::{
    Board, BoardError, JobsQuery, chart,
    html::{escape_query, optional, page, time},
};

/// A Retry button for a dead job, or nothing for a reader who may not act.
fn retry_button(queue: &str, id: &str, may_act: bool) -> Markup {
    let action = format!(
        "/board/api/queues/{}/failed/{}/retry",
        escape_query(queue),
        escape_query(id)
    );
    html! {
        @if may_act { button type="button" data-action=(action) { "Retry" } }
        @else { "read-only" }
    }
}

fn job_link(queue: &str, id: &str) -> Markup {
    let href = format!(
        "/board/queues/{}/jobs/{}",
        escape_query(queue),
        escape_query(id)
    );
    html! { a href=(href) { (id) } }
}

/// A payload as shown: pretty JSON, or a note that it is hidden or gone.
fn payload_cell(job: &JobInfo, reveals: bool) -> Markup {
    if !reveals {
        return html! { em { "hidden without a board token" } };
    }
    if job.payload.is_empty() {
        return html! { em { "none kept" } };
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| job.payload.clone());
    html! { pre.payload { (pretty) } }
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

/// What the overview shows of one queue.
struct QueueLine<'a> {
    name: &'a str,
    counts: Counts,
    points: Vec<Point>,
    dead: Vec<DeadJob>,
}

/// One row of the queues' table: counts linking to their jobs, the state, Pause or Resume.
fn queue_row(q: &QueueLine, may_act: bool) -> Markup {
    let (name, c) = (q.name, &q.counts);
    let link = |state: &str, n: u64| {
        let href = format!("/board/queues/{}?state={state}", escape_query(name));
        html! { a href=(href) { (n) } }
    };
    let (verb, label) = if c.paused {
        ("resume", "Resume")
    } else {
        ("pause", "Pause")
    };
    let toggle = format!("/board/api/queues/{}/{verb}", escape_query(name));
    html! {
        tr data-queue=(name) {
            th { (name) }
            td.waiting { (link("waiting", c.waiting)) }
            td.scheduled { (link("scheduled", c.scheduled)) }
            td.running { (link("running", c.running)) }
            td.done { (c.done) }
            td.failed.nonzero[c.failed > 0] { (link("failed", c.failed)) }
            td.state { @if c.paused { "paused" } @else { "running" } }
            td { @if may_act { button type="button" data-action=(toggle) { (label) } } }
        }
    }
}

/// `GET /board`: counts (each linking to its jobs), pause and resume, the throughput chart,
/// the failed jobs with Retry. Reloads every 5 s.
pub(super) async fn overview(
    State(board): State<Board>,
    headers: HeaderMap,
) -> Result<Markup, BoardError> {
    let may_act = board.access.may_act(&headers);
    let mut lines = Vec::new();
    for q in board.queues.iter() {
        lines.push(QueueLine {
            name: q.name(),
            counts: q.counts().await?,
            points: q.throughput().await?,
            dead: q.dead_jobs(0, 50).await?,
        });
    }
    let body = html! {
        table #queues {
            thead { tr {
                th { "queue" } th { "waiting" } th { "scheduled" } th { "running" }
                th { "done" } th { "failed" } th { "state" } th {}
            } }
            tbody { @for q in &lines { (queue_row(q, may_act)) } }
        }
        h2 { "Throughput" }
        p.legend {
            span.done { "done jobs" } " and " span.failed { "failed attempts" }
            " per " (chart::BUCKET_SECONDS) " s, the last 15 minutes"
        }
        div.charts #throughput {
            @for q in &lines { figure { figcaption { (q.name) } (chart::svg(q.name, &q.points)) } }
        }
        h2 { "Failed jobs" }
        table #failed {
            thead { tr { th { "queue" } th { "job" } th { "attempts" } th { "last error" } th {} } }
            tbody {
                @for q in &lines {
                    @for job in &q.dead {
                        tr.failed-job data-id=(job.id) {
                            td { (q.name) }
                            td { (job_link(q.name, &job.id)) }
                            td { (job.attempts) }
                            td { (job.error) }
                            td { (retry_button(q.name, &job.id, may_act)) }
                        }
                    }
                }
                @if lines.iter().all(|q| q.dead.is_empty()) {
                    tr { td colspan="5" { "No failed jobs." } }
                }
            }
        }
        p { "Refreshes every 5 s." }
    };
    Ok(page("Queues", body, true))
}

/// `GET /board/queues/{queue}?state=&cursor=`: one page of the queue's jobs in a state.
pub(super) async fn jobs(
    State(board): State<Board>,
    Path(queue): Path<String>,
    Query(query): Query<JobsQuery>,
    headers: HeaderMap,
) -> Result<Markup, BoardError> {
    let state = query.state()?;
    let listed = board.jobs_page(&queue, &query).await?;
    let (reveals, may_act) = (board.access.reveals(), board.access.may_act(&headers));
    let tab = |s: JobState| {
        format!(
            "/board/queues/{}?state={}",
            escape_query(&queue),
            s.as_str()
        )
    };
    let next = listed.next.map(|cursor| {
        format!(
            "/board/queues/{}?state={}&cursor={}",
            escape_query(&queue),
            state.as_str(),
            escape_query(&cursor)
        )
    });
    let body = html! {
        p.tabs {
            "States:"
            @for s in JobState::LISTED {
                " " a href=(tab(s)) aria-current=[(s == state).then_some("page")] { (s.as_str()) }
            }
        }
        table #jobs data-state=(state.as_str()) {
            thead { tr {
                th { "job" } th { (time_label(state)) } th { "deliveries" } th { "last error" }
                th { "payload" } th {}
            } }
            tbody {
                @for job in &listed.jobs {
                    tr.job data-id=(job.id) {
                        td { (job_link(&queue, &job.id)) }
                        td { (job.at_ms.map(time).unwrap_or_default()) }
                        td { (job.deliveries) }
                        td { (job.error) }
                        td { (payload_cell(job, reveals)) }
                        td { @if state == JobState::Failed { (retry_button(&queue, &job.id, may_act)) } }
                    }
                }
                @if listed.jobs.is_empty() { tr { td colspan="6" { "No jobs." } } }
            }
        }
        @if let Some(next) = next { p { a #next href=(next) { "Next page" } } }
    };
    Ok(page(
        &format!("{queue}: {} jobs", state.as_str()),
        body,
        false,
    ))
}

/// `GET /board/queues/{queue}/jobs/{id}`: one job.
pub(super) async fn job(
    State(board): State<Board>,
    Path((queue, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Markup, BoardError> {
    let job = board.job(&queue, &id).await?;
    let label = match time_label(job.state) {
        "" => "time",
        label => label,
    };
    let body = html! {
        table #job data-state=(job.state.as_str()) {
            tr { th { "queue" } td { (queue) } }
            tr { th { "state" } td.state { (job.state.as_str()) } }
            tr { th { (label) } td { (job.at_ms.map(time).unwrap_or_default()) } }
            tr { th { "deliveries" } td { (job.deliveries) } }
            tr { th { "last error" } td { (job.error) } }
            tr { th { "payload" } td { (payload_cell(&job, board.access.reveals())) } }
        }
        @if job.state == JobState::Failed {
            (retry_button(&queue, &job.id, board.access.may_act(&headers)))
        }
    };
    Ok(page(&format!("Job {id}"), body, false))
}

#[derive(Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    id: String,
}

/// `GET /board/transactions?id=`: the search box's answer, a transaction's story.
pub(super) async fn story(
    State(board): State<Board>,
    Query(search): Query<Search>,
) -> Result<Response, BoardError> {
    if search.id.trim().is_empty() {
        let body = html! { p { "Enter a transaction id above." } };
        return Ok(page("Transaction", body, false).into_response());
    }
    let story = match board.story(&search.id).await {
        Ok(story) => story,
        Err(BoardError::BadRequest(why)) => {
            let body = html! { p.error { (why) } };
            return Ok((StatusCode::BAD_REQUEST, page("Transaction", body, false)).into_response());
        }
        Err(e) => return Err(e),
    };
    let title = format!("Transaction {}", story.id);
    if !story.is_known() {
        let body = html! { p.error { "Nothing is known of this transaction: no row and no job." } };
        return Ok((StatusCode::NOT_FOUND, page(&title, body, false)).into_response());
    }
    let reveals = board.access.reveals();
    let body = html! {
        @match &story.transaction {
            Some(t) => table #transaction {
                tr { th { "status" } td.status { (t.status) } }
                tr { th { "amount" } td {
                    @match t.money {
                        Some(m) => { (m.amount.minor_units()) " " (m.currency.as_str()) }
                        None if reveals => "none",
                        None => em { "hidden without a board token" },
                    }
                } }
                tr { th { "created" } td { (t.created_at) } }
                tr { th { "submitted" } td { (optional(t.submitted_at)) } }
                tr { th { "next submission attempt" } td { (optional(t.next_attempt_at)) } }
                tr { th { "poll" } td {
                    "number " (t.poll_number) " " (optional(t.next_poll_at.map(|at| format!("due {at}"))))
                } }
                tr { th { "polling gave up" } td { (optional(t.poll_expired_at)) } }
                tr { th { "updated" } td { (t.updated_at) } }
            },
            None => p #transaction { "No row yet: its " code { "create" } " job has not run." },
        }
        h2 { "History" }
        table #history {
            thead { tr { th { "status" } th { "by" } th { "at" } } }
            tbody {
                @for step in &story.history {
                    tr.step data-status=(step.status) {
                        td { (step.status) } td { (step.source) } td { (step.at) }
                    }
                }
            }
        }
        h2 { "Client notification" }
        @match &story.notification {
            Some(n) => table #notification {
                tr { th { "delivery id" } td.delivery-id { (n.delivery_id) } }
                tr { th { "status told" } td { (n.status) } }
                tr { th { "attempts" } td.attempts { (n.attempts) } }
                tr { th { "delivered" } td.delivered { (optional(n.delivered_at)) } }
                tr { th { "given up" } td { (optional(n.failed_at)) } }
                tr { th { "last error" } td { (optional(n.last_error.as_deref())) } }
                tr { th { "next attempt" } td { (optional(n.next_attempt_at)) } }
            },
            None => p #notification { "None yet: it is owed once the outcome is known." },
        }
        @if let Some(n) = &story.notification {
            h3 { "Delivery log" }
            table #attempts {
                thead { tr {
                    th { "attempt" } th { "trigger" } th { "started" } th { "took" }
                    th { "HTTP status" } th { "error" }
                } }
                tbody {
                    @for a in &n.log {
                        tr.attempt data-attempt=(a.attempt) {
                            td { (a.attempt) } td { (a.trigger) } td { (a.started_at) }
                            td { (a.duration_ms) " ms" } td { (optional(a.http_status)) }
                            td { (optional(a.error.as_deref())) }
                        }
                    }
                    @if n.log.is_empty() { tr { td colspan="6" { "No attempt yet." } } }
                }
            }
        }
        h2 { "Jobs in the queues" }
        table #story-jobs {
            thead { tr {
                th { "queue" } th { "job" } th { "state" } th { "time" } th { "deliveries" }
                th { "last error" }
            } }
            tbody {
                @for j in &story.jobs {
                    tr.job data-id=(j.job.id) {
                        td { (j.queue.as_str()) }
                        td { (job_link(j.queue.as_str(), &j.job.id)) }
                        td { (j.job.state.as_str()) }
                        td { (j.job.at_ms.map(time).unwrap_or_default()) }
                        td { (j.job.deliveries) }
                        td { (j.job.error) }
                    }
                }
                @if story.jobs.is_empty() {
                    tr { td colspan="6" {
                        "None: completed jobs are forgotten once they drop out of the recent list."
                    } }
                }
            }
        }
    };
    Ok(page(&title, body, false).into_response())
}
