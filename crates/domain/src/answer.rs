//! What an HTTP answer from the third party or the client app means: the one rule both
//! clients use.
//!
//! | answer | meaning |
//! |---|---|
//! | 2xx | done; 404 on a lookup = it lacks the transaction; 409 on a submit = it has it |
//! | 408, 425, 429, 503 with `Retry-After` | not now: retry, not before `Retry-After`; spends no failure budget |
//! | other 5xx, timeout, connection error | transient: retry, not before `Retry-After`; spends the budget |
//! | 401, 403 | our credentials are wrong: never a reason to fail a transaction; spends no budget |
//! | other 4xx | the request will never succeed |

use std::time::{Duration, SystemTime};

use http::{HeaderMap, header::RETRY_AFTER};

/// How an answer is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Success,
    /// 404 (meaningful on a lookup).
    NotFound,
    /// 409 (meaningful on a submit).
    Conflict,
    /// The call gave no usable answer.
    Failed(CallError),
}

/// Why a call to the third party or the client app gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// 408, 425, 429, or 503 with a `Retry-After`: the peer asks to be called later. Retried
    /// not before `retry_after`, and never counted against a failure budget: throttling is not
    /// a failure of the request.
    #[error("not now: HTTP {status}")]
    NotNow {
        /// The status it answered.
        status: u16,
        /// The peer's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// Another 5xx, a timeout or a connection error: retry, not before `retry_after` (the
    /// peer's `Retry-After`, uncapped). The call may or may not have taken effect.
    #[error("unavailable: {reason}")]
    Transient {
        /// What happened.
        reason: String,
        /// The peer's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// 401 or 403: our credentials are wrong. Never a reason to fail a transaction.
    #[error("refused our credentials: HTTP {0}")]
    Unauthorized(u16),
    /// Any other 4xx: this request will never succeed.
    #[error("refused the request: HTTP {0}")]
    Refused(u16),
}

impl CallError {
    /// The peer's `Retry-After`, if this is a transient failure that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Transient { retry_after, .. } | CallError::NotNow { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Whether this failure spends a failure budget (`PROCESS_RETRIES`, a notification's
    /// schedule): only an error or an unknown outcome does. "Not now" and refused credentials
    /// wait instead, bounded in time by their caller.
    pub fn spends_budget(&self) -> bool {
        matches!(self, CallError::Transient { .. })
    }
}

/// Classifies an answer by its status code and headers, `now` being when it arrived.
pub fn classify(status: u16, headers: &HeaderMap, now: SystemTime) -> Answer {
    match status {
        200..=299 => Answer::Success,
        404 => Answer::NotFound,
        409 => Answer::Conflict,
        401 | 403 => Answer::Failed(CallError::Unauthorized(status)),
        408 | 425 | 429 => Answer::Failed(CallError::NotNow {
            status,
            retry_after: retry_after(headers, now),
        }),
        500..=599 => match retry_after(headers, now) {
            // A 503 that says when to come back is throttling, not a failure.
            Some(after) if status == 503 => Answer::Failed(CallError::NotNow {
                status,
                retry_after: Some(after),
            }),
            after => Answer::Failed(CallError::Transient {
                reason: format!("HTTP {status}"),
                retry_after: after,
            }),
        },
        _ => Answer::Failed(CallError::Refused(status)),
    }
}

/// `Retry-After` as a delay from `now`: delay-seconds or an HTTP date (a date in the past is
/// no delay). Anything else is ignored.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_after(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, value.parse().unwrap());
        h
    }

    #[test]
    fn each_status_falls_in_its_row_of_the_table() {
        let none = HeaderMap::new();
        let now = SystemTime::now();
        for ok in [200, 201, 204] {
            assert_eq!(classify(ok, &none, now), Answer::Success);
        }
        assert_eq!(classify(404, &none, now), Answer::NotFound);
        assert_eq!(classify(409, &none, now), Answer::Conflict);
        for not_now in [408, 425, 429] {
            assert_eq!(
                classify(not_now, &none, now),
                Answer::Failed(CallError::NotNow {
                    status: not_now,
                    retry_after: None
                })
            );
        }
        for transient in [500, 502, 503, 504] {
            assert!(
                matches!(
                    classify(transient, &none, now),
                    Answer::Failed(CallError::Transient { .. })
                ),
                "{transient}"
            );
        }
        for auth in [401, 403] {
            assert_eq!(
                classify(auth, &none, now),
                Answer::Failed(CallError::Unauthorized(auth))
            );
        }
        for refused in [400, 405, 410, 413, 422] {
            assert_eq!(
                classify(refused, &none, now),
                Answer::Failed(CallError::Refused(refused))
            );
        }
    }

    #[test]
    fn only_an_error_or_an_unknown_outcome_spends_a_failure_budget() {
        let now = SystemTime::now();
        let two = with_retry_after("2");
        let none = HeaderMap::new();
        let spends = |status, headers: &HeaderMap| match classify(status, headers, now) {
            Answer::Failed(e) => Some(e.spends_budget()),
            _ => None,
        };
        let waits = [
            (408, &none),
            (425, &none),
            (429, &none),
            (429, &two),
            (503, &two),
        ];
        let our_fault = [(401, &none), (403, &none), (422, &none)];
        let failed = [(503, &none), (500, &two), (504, &none), (502, &none)];
        for (expected, cases) in [(false, &waits[..]), (false, &our_fault), (true, &failed)] {
            for &(status, headers) in cases {
                assert_eq!(
                    spends(status, headers),
                    Some(expected),
                    "{status} {headers:?}"
                );
            }
        }
        let timeout = CallError::Transient {
            reason: "timed out".into(),
            retry_after: None,
        };
        assert!(timeout.spends_budget());
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let answer = classify(429, &with_retry_after("2"), now);
        assert_eq!(
            answer,
            Answer::Failed(CallError::NotNow {
                status: 429,
                retry_after: Some(Duration::from_secs(2)),
            })
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            retry_after(&with_retry_after(&later), now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(
            retry_after(&with_retry_after(&earlier), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&with_retry_after("soon"), now), None);
        assert_eq!(retry_after(&with_retry_after("-3"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
