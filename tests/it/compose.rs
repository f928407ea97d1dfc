//! `docker compose up` for real: the shipped `docker-compose.yml` — the same file a user runs —
//! brought up with podman and podman-compose by `deploy/offline/compose.sh`, the offline route
//! the README documents (stand-in images for the public ones, as no registry is reachable here;
//! binaries built on this host), and a transaction taken through it. The script's own checks —
//! the engine's error named, a container podman-compose never created caught, health checks
//! run where no systemd runs them — are tested with a deliberately broken engine setting and a
//! missing image.
//!
//! Skipped, saying so, only where podman cannot be found (`.ci/run` installs it).

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use testkit::run;

/// The compose project name: its containers, networks and volumes carry it.
const PROJECT: &str = "txncompose";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether what the compose route needs is installed; says so when not.
fn tools_installed() -> bool {
    for program in ["podman", "podman-compose", "debootstrap"] {
        if !on_path(program) {
            eprintln!(
                "SKIPPED: {program} is not installed (.ci/run installs podman, podman-compose and debootstrap)"
            );
            return false;
        }
    }
    true
}

/// `deploy/offline/compose.sh` with `args`, for the compose project `project`.
fn script(project: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(root().join("deploy/offline/compose.sh"));
    cmd.args(args)
        .env("COMPOSE_PROJECT_NAME", project)
        .current_dir(root());
    cmd
}

fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(args);
    cmd
}

fn container(service: &str) -> String {
    format!("{PROJECT}_{service}_1")
}

fn logs(service: &str) -> String {
    podman(&["logs", "--tail", "40", &container(service)])
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
}

/// The names and statuses of `project`'s containers, running or not.
fn project_containers(project: &str) -> Vec<(String, String)> {
    run(
        &mut podman(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}\t{{.Status}}",
            "--filter",
            &format!("label=io.podman.compose.project={project}"),
        ]),
        "podman ps",
    )
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .map(|(name, status)| (name.to_string(), status.to_string()))
    .collect()
}

/// `project`'s networks.
fn project_networks(project: &str) -> String {
    run(
        &mut podman(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            &format!("name={project}"),
        ]),
        "podman network ls",
    )
}

/// Takes `project` down (containers, network, volumes) when the test ends, however it ends.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = script(self.0, &["down"]).output();
    }
}

/// What a command printed, both streams.
fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The default the compose file gives `variable` (`${VARIABLE:-default}`).
fn compose_default(variable: &str) -> String {
    let file =
        std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    let start = format!("${{{variable}:-");
    let at = file.find(&start).expect("the variable has a default") + start.len();
    let end = file[at..].find('}').expect("the default ends");
    file[at..at + end].to_string()
}

async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    match http.get(url).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_compose_file_brings_up_a_working_pipeline() {
    if !tools_installed() {
        return;
    }
    let started = Instant::now();
    // A run that died half-way leaves its project behind: start from nothing.
    let _ = script(PROJECT, &["down"]).output();
    let _down = Down(PROJECT);
    run(
        &mut script(PROJECT, &["up"]),
        "deploy/offline/compose.sh up",
    );
    let up = started.elapsed();
    // Every service that runs is healthy as podman reports it (not `starting`): the script ran
    // the checks no systemd runs here.
    for (name, status) in project_containers(PROJECT) {
        if name != container("migrate") {
            assert!(status.contains("(healthy)"), "{name}: {status}");
        }
    }

    // A transaction POSTed to the producer on localhost, with the key compose gives the `dev`
    // client app, ends terminal and the client app hears.
    let mut auth = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {}", compose_default("DEV_API_KEY"));
    auth.insert(
        reqwest::header::AUTHORIZATION,
        bearer.parse().expect("a header value"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(auth)
        .build()
        .expect("client");
    let posted = Instant::now();
    let r = http
        .post("http://localhost:3100/transaction")
        .json(&json!({"amount": 1250, "currency": "EUR"}))
        .send()
        .await
        .expect("POST /transaction");
    assert_eq!(r.status(), 201, "{}", logs("producer"));
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) =
            get_json(&http, &format!("http://localhost:3100/transaction/{id}")).await;
        let (_, told) = get_json(&http, &format!("http://localhost:3400/received/{id}")).await;
        let terminal = ["completed", "declined"].contains(&body["status"].as_str().unwrap_or(""));
        if code == 200 && terminal && told.as_array().is_some_and(|t| !t.is_empty()) {
            assert_eq!(
                told[0]["status"], body["status"],
                "the client was told the outcome"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transaction {id} not terminal and notified: {body}\n{}",
            logs("consumer")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first = posted.elapsed();
    let board = http
        .get("http://localhost:3200/board")
        .send()
        .await
        .expect("GET /board");
    assert_eq!(board.status(), 200, "the queue board answers");

    run(
        &mut script(PROJECT, &["down"]),
        "deploy/offline/compose.sh down",
    );
    let left = project_containers(PROJECT);
    assert!(left.is_empty(), "down left containers behind: {left:?}");
    let left = project_networks(PROJECT);
    assert!(left.trim().is_empty(), "down left networks behind: {left}");
    eprintln!(
        "compose: images, binaries, up and healthy {up:?}, first transaction {first:?}; total {:?}",
        started.elapsed()
    );
}

/// An engine that cannot run at all (its runtime does not exist): the script says so, with
/// podman's own words, instead of the pages of tracebacks podman-compose prints.
#[test]
fn a_broken_engine_setting_is_named_by_the_offline_route() {
    if !tools_installed() {
        return;
    }
    let dir = testkit::temp_dir("broken-engine").expect("a directory");
    let conf = dir.join("containers.conf");
    std::fs::write(&conf, "[engine]\nruntime = \"txn-no-such-runtime\"\n").expect("conf");
    let output = script("txnbroken", &["up"])
        .env("CONTAINERS_CONF", &conf)
        .output()
        .expect("the script runs");
    let said = printed(&output);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("podman cannot run") && said.contains("\"txn-no-such-runtime\" not found"),
        "the cause is named: {said}"
    );
}

/// podman-compose exits 0 when `podman run` failed; the script finds the container missing
/// and says what the engine said.
#[test]
fn a_container_podman_compose_never_created_is_caught_with_the_engines_error() {
    if !tools_installed() {
        return;
    }
    let project = "txnmissing";
    let _down = Down(project);
    // This project's image of client-sim was never built.
    let output = script(project, &["start", "client-sim"])
        .output()
        .expect("the script runs");
    let said = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("client-sim was never created"), "{said}");
    assert!(
        said.contains("engine: Error:") && said.contains("txnmissing_client-sim"),
        "the engine's error is shown: {said}"
    );
}
