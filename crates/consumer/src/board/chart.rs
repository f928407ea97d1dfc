//! The throughput chart, drawn on the server as inline SVG (the page needs no script and works
//! offline): per queue, done jobs and failed attempts per 10 s bucket over the last 15 min.

use maud::{Markup, html};
use queue::throughput::{BUCKET_MS, Point};

const WIDTH: f64 = 540.0;
const HEIGHT: f64 = 110.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;

/// A series of the chart: its name (its class), its colour, and its value at a point.
type Series = (&'static str, &'static str, fn(&Point) -> f64);

/// A coordinate as drawn: one decimal.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// One queue's chart: a line and a dot per bucket for done (green) and failed (red), the
/// y axis from 0 to the highest figure, the x axis ending now.
pub fn svg(queue: &str, points: &[Point]) -> Markup {
    let max = points
        .iter()
        .flat_map(|p| [p.done, p.failed])
        .fold(1.0_f64, f64::max)
        .ceil();
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let step = if points.len() > 1 {
        plot_w / (points.len() - 1) as f64
    } else {
        0.0
    };
    let x = |i: usize| LEFT + step * i as f64;
    let y = |v: f64| TOP + plot_h - v / max * plot_h;
    let (y0, xr, lx) = (TOP + plot_h, LEFT + plot_w, LEFT - 4.0);
    let series: [Series; 2] = [
        ("done", "#2a7", |p| p.done),
        ("failed", "#c33", |p| p.failed),
    ];
    let label = format!("{queue}: done and failed per 10 s, last 15 min");
    // Every element is closed explicitly: in SVG an unclosed `<line>` would hold what follows.
    html! {
        svg.chart data-queue=(queue) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT)
            role="img" aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
            line x1=(LEFT) y1=(y0) x2=(xr) y2=(y0) stroke="#999" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(y0) stroke="#999" {}
            text x=(lx) y=(TOP + 8.0) font-size="10" text-anchor="end" { (max) }
            text x=(lx) y=(y0) font-size="10" text-anchor="end" { "0" }
            text x=(LEFT) y=(HEIGHT) font-size="10" { "−15 min" }
            text x=(xr) y=(HEIGHT) font-size="10" text-anchor="end" { "now" }
            @for (name, colour, value) in series {
                polyline class=(name) fill="none" stroke=(colour) stroke-width="1.5"
                    points=(points.iter().enumerate().map(|(i, p)| format!("{},{}", at(x(i)), at(y(value(p))))).collect::<Vec<_>>().join(" ")) {}
                @for (i, p) in points.iter().enumerate() {
                    circle class={ "point " (name) } data-at=(p.at_ms) data-value=(at(value(p)))
                        cx=(at(x(i))) cy=(at(y(value(p)))) r="1.6" fill=(colour) {
                        title { (name) ": " (at(value(p))) " in the 10 s from " (clock(p.at_ms)) }
                    }
                }
            }
        }
    }
}

/// `HH:MM:SS` (UTC) of a time in ms since the epoch.
fn clock(at_ms: u64) -> String {
    let s = at_ms / 1_000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
}

/// The bucket width, for the legend.
pub const BUCKET_SECONDS: u64 = BUCKET_MS / 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(f64, f64)]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &(done, failed))| Point {
                at_ms: 1_000_000 + i as u64 * BUCKET_MS,
                done,
                failed,
            })
            .collect()
    }

    #[test]
    fn every_bucket_is_a_point_of_both_series_scaled_to_the_highest() {
        let svg = svg("create", &points(&[(0.0, 0.0), (50.0, 2.0), (100.0, 0.0)])).into_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="point done""#).count(), 3);
        assert_eq!(svg.matches(r#"class="point failed""#).count(), 3);
        assert!(svg.contains(r#"data-value="100.0""#));
        // The highest value reaches the top of the plot, zero its bottom.
        assert!(svg.contains(&format!(r#"cy="{TOP:.1}""#)));
        assert!(svg.contains(&format!(r#"cy="{:.1}""#, HEIGHT - BOTTOM)));
        assert!(svg.contains(">100</text>"));
    }

    #[test]
    fn an_idle_queue_draws_a_flat_line_and_names_are_escaped() {
        let svg = svg("<q>", &points(&[(0.0, 0.0); 90])).into_string();
        assert!(svg.contains("&lt;q&gt;") && !svg.contains("<q>"));
        assert!(svg.contains(">1</text>"), "the axis never collapses to 0");
        assert_eq!(clock(3_723_000), "01:02:03");
    }
}
