//! The API against a property-based fuzzer: Schemathesis generates requests from
//! `/openapi.json` for a minute and checks every answer against the document — no 5xx, every
//! status, header, content type and body as documented, every invalid request refused. One
//! check is left out: `positive_data_acceptance` expects every schema-valid request to be
//! accepted, and two rules of `POST /transaction` span fields in a way OpenAPI cannot state
//! (amount and currency come together; an `Idempotency-Key` header excludes a body `id`).
//! Schemathesis comes from PyPI into the CI venv (`.ci/run`); set `SCHEMATHESIS` to use another.

use std::process::Command;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_generated_requests_finds_no_5xx_and_no_answer_off_the_document() {
    let schemathesis = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| {
        format!(
            "{}/target/ci-venv/bin/schemathesis",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        std::path::Path::new(&schemathesis).exists(),
        "{schemathesis} is missing: .ci/run installs it (pip install schemathesis), or set SCHEMATHESIS"
    );
    let stack = spawn_stack(Options::without_consumer()).await;
    let schema = format!("{}/openapi.json", stack.producer);
    // Schemathesis keeps a cache in its working directory: a temporary one, removed after.
    let dir = std::env::temp_dir().join(format!("fuzz-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a working directory");
    let cwd = dir.clone();
    let auth = format!("Authorization: Bearer {}", stack.api_key);
    let run = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .current_dir(cwd)
            .args(["run", &schema, "--checks", "all"])
            .args(["--header", &auth])
            .args(["--exclude-checks", "positive_data_acceptance"])
            .args(["--max-time", "60", "--request-timeout", "5", "--no-color"])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("the fuzzer's thread");
    let _ = std::fs::remove_dir_all(&dir);
    let report = String::from_utf8_lossy(&run.stdout);
    let cases = report
        .lines()
        .find(|l| l.contains("generated"))
        .unwrap_or("no case count");
    eprintln!("schemathesis: {}", cases.trim());
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stack.shutdown().await;
}
