//! HTML helpers of the board's pages: escaping and the page frame they share.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

/// A whole page: the shared style, the search box, `body`, and the script that sends the
/// actions (POSTs with the action header, which no cross-site form can send; the session
/// cookie, if any, goes along by itself). `refresh`: reload every 5 s.
pub fn page(title: &str, body: &str, refresh: bool) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh}<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: .35rem .7rem; text-align: left; vertical-align: top; }}
thead th {{ background: #f3f3f3; }}
td.failed.nonzero {{ color: #b00; font-weight: bold; }}
pre {{ margin: 0; white-space: pre-wrap; max-width: 40rem; }}
nav {{ margin-bottom: 1.5rem; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; margin-bottom: 2rem; }}
.charts figure {{ margin: 0; }}
.legend .done {{ color: #2a7; }} .legend .failed {{ color: #c33; }}
</style>
</head>
<body>
<nav><a href="/board">Queues</a> <a href="/board/clients">Client apps</a>
<form id="search" method="get" action="/board/transactions" style="display:inline; margin-left:2rem">
<label>Transaction <input name="id" size="38" placeholder="transaction id"></label>
<button type="submit">Show its story</button></form></nav>
<h1>{title}</h1>
{body}
<script>
document.addEventListener("click", async (event) => {{
  const action = event.target.dataset && event.target.dataset.action;
  if (!action) return;
  event.target.disabled = true;
  await fetch(action, {{ method: "POST", headers: {{ "x-board-action": "1" }}, credentials: "same-origin" }});
  location.reload();
}});
</script>
</body>
</html>
"#,
        title = escape(title),
        refresh = if refresh {
            "<meta http-equiv=\"refresh\" content=\"5\">\n"
        } else {
            ""
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html_and_urls() {
        assert_eq!(
            escape("<b>\"x\"&'y'</b>"),
            "&lt;b&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(escape_query("poll:a b/c"), "poll%3Aa%20b%2Fc");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert!(page("<t>", "", false).contains("<h1>&lt;t&gt;</h1>"));
    }
}
