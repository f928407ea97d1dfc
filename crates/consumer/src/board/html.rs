//! The frame the board's pages share, and the bits of markup they repeat. Pages are `maud`
//! templates: every value they insert is escaped for HTML by the template itself.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path segment or query value may hold unescaped (RFC 3986's unreserved characters).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-escapes a query or path value.
pub fn escape_query(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// A time in ms since the epoch as RFC 3339 (UTC, ms).
pub fn time(at_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A value that may be absent, shown as nothing when it is.
pub fn optional<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; }
th, td { border: 1px solid #ccc; padding: .35rem .7rem; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
td.failed.nonzero { color: #b00; font-weight: bold; }
pre { margin: 0; white-space: pre-wrap; max-width: 40rem; }
nav { margin-bottom: 1.5rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; margin-bottom: 2rem; }
.charts figure { margin: 0; }
.legend .done { color: #2a7; } .legend .failed { color: #c33; }
";

/// Sends the actions: POSTs with the action header, which no cross-site form can send (the
/// session cookie, if any, goes along by itself).
const SCRIPT: &str = r#"
document.addEventListener("click", async (event) => {
  const action = event.target.dataset && event.target.dataset.action;
  if (!action) return;
  event.target.disabled = true;
  await fetch(action, { method: "POST", headers: { "x-board-action": "1" }, credentials: "same-origin" });
  location.reload();
});
"#;

/// A whole page: the shared style, the navigation with the search box, `body`, and the
/// script that sends the actions. `refresh`: reload every 5 s.
pub fn page(title: &str, body: Markup, refresh: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if refresh { meta http-equiv="refresh" content="5"; }
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/board" { "Queues" } " "
                    a href="/board/clients" { "Client apps" }
                    form #search method="get" action="/board/transactions" style="display:inline; margin-left:2rem" {
                        label { "Transaction " input name="id" size="38" placeholder="transaction id"; }
                        " "
                        button type="submit" { "Show its story" }
                    }
                }
                h1 { (title) }
                (body)
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The login form (the token goes in a POST body, never in a URL).
pub fn login_page() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Queues: sign in" } }
            body {
                form method="post" action="/board/login" {
                    label { "Board token " input type="password" name="token" autocomplete="current-password"; }
                    " "
                    button type="submit" { "Sign in" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_html_and_urls() {
        assert_eq!(escape_query("poll:a b/c"), "poll%3Aa%20b%2Fc");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(optional(None::<u8>), "");
        let page = page("<t>\"x\"&", html! { p { "body" } }, false).into_string();
        assert!(
            page.contains("<h1>&lt;t&gt;&quot;x&quot;&amp;</h1>"),
            "{page}"
        );
        assert!(page.contains("<p>body</p>") && !page.contains("refresh"));
    }
}
