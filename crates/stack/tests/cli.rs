//! `stack`'s command line: `--help` and `check-config` answer without creating, migrating or
//! serving anything; a setting a start would refuse exits 2.

use std::process::{Command, Output};

use sqlx::{Connection, PgConnection};

/// The Postgres server the tests use (the README's test command sets `DATABASE_URL`).
fn server() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// `stack <args>` with `database_url`, from a directory without a `.env`.
fn stack(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stack"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env_remove("DEV_API_KEY")
        .output()
        .expect("stack runs")
}

/// Whether a database named `name` exists on the server.
async fn exists(name: &str) -> bool {
    let mut conn = PgConnection::connect(&server()).await.expect("postgres");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("pg_database");
    n > 0
}

/// `DATABASE_URL` on the test server naming database `name`, with `params`.
fn url_of(name: &str, params: &str) -> String {
    let server = server();
    let base = server.split('?').next().unwrap_or(&server);
    let cut = base.rfind('/').expect("a URL with a path");
    format!("{}/{name}{params}", &base[..cut])
}

#[tokio::test]
async fn help_and_check_config_start_nothing() {
    let name = format!("stack_cli_{}", std::process::id());
    let url = url_of(&name, "");

    let help = stack(&["--help"], &url);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("check-config"), "{text}");

    let checked = stack(&["check-config"], &url);
    let (out, err) = (
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
    );
    assert_eq!(checked.status.code(), Some(0), "{out}\n{err}");
    for part in ["producer", "consumer", "thirdparty", "client_sim"] {
        assert!(out.contains(part), "check-config prints {part}: {out}");
    }
    assert!(
        !exists(&name).await,
        "no database made by --help or check-config"
    );

    let unknown = stack(&["serve-everything"], &url);
    assert_eq!(unknown.status.code(), Some(2));
}

#[tokio::test]
async fn check_config_refuses_what_a_start_would() {
    let url = url_of("stack_cli_bogus", "?sslmode=bogus");
    let checked = stack(&["check-config"], &url);
    let err = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(2), "{err}");
    assert!(
        err.contains("DATABASE_URL") && err.contains("bogus"),
        "{err}"
    );
}

#[test]
fn check_config_into_a_closed_pipe_exits_cleanly() {
    // As `stack check-config | head -0`: the reader is gone before anything is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stack"))
        .arg("check-config")
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", url_of("stack_cli_pipe", ""))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("stack runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("stack ends");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
