//! A real headless browser for the board's tests: Debian's Chromium through chromedriver.

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use uuid::Uuid;

use super::eventually;

/// chromedriver on a free port, killed on drop.
pub struct Driver(std::process::Child, u16);

impl Driver {
    /// Starts chromedriver and waits until it answers.
    pub async fn start() -> Self {
        let port = testkit::free_port().expect("a free port");
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver on PATH (Debian's chromium-driver; .ci/run installs it)");
        let status = format!("http://127.0.0.1:{port}/status");
        eventually(Duration::from_secs(20), "chromedriver answers", || {
            let status = status.clone();
            async move {
                reqwest::get(status)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        Self(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn headless_chromium() -> serde_json::Map<String, Value> {
    let profile = std::env::temp_dir().join(format!("chromium-{}", Uuid::new_v4().simple()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    caps.as_object().cloned().unwrap_or_default()
}

impl Driver {
    /// A new browser session: headless Chromium with a profile of its own.
    pub async fn browser(&self) -> Client {
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(headless_chromium());
        builder
            .connect(&format!("http://127.0.0.1:{}", self.1))
            .await
            .expect("a browser session")
    }
}

/// The attribute `name` of every element matching `css`, in page order (empty where absent).
pub async fn attrs_of(browser: &Client, css: &str, name: &str) -> Vec<String> {
    let mut values = Vec::new();
    let elements = browser
        .find_all(fantoccini::Locator::Css(css))
        .await
        .expect("a valid selector");
    for element in &elements {
        values.push(element.attr(name).await.unwrap().unwrap_or_default());
    }
    values
}

/// Finds `css` and clicks it, again while the page reloads under it (the overview refreshes
/// itself every 5 s).
pub async fn click(browser: &Client, css: &str) {
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let clicked = match browser.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            return;
        }
        assert!(tokio::time::Instant::now() < end, "could not click {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of `css`, or "" while it is not on the page.
pub async fn text_of(browser: &Client, css: &str) -> String {
    match browser.find(fantoccini::Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Saves a screenshot as `name` in the temporary directory, for a failure to be looked at.
pub async fn screenshot(browser: &Client, name: &str) {
    if let Ok(png) = browser.screenshot().await {
        let _ = std::fs::write(std::env::temp_dir().join(name), png);
    }
}

/// How many elements match `css` (none when the page cannot be read).
pub async fn count_of(browser: &Client, css: &str) -> usize {
    browser
        .find_all(fantoccini::Locator::Css(css))
        .await
        .map_or(0, |elements| elements.len())
}
