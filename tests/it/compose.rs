//! `docker compose up` for real: the shipped `docker-compose.yml` — the same file a user runs —
//! brought up with podman and podman-compose, and a transaction taken through it.
//!
//! No registry is reachable here, so the images a user would pull are stood in for by local
//! images under the same names, built from a Debian base made with debootstrap:
//! `postgres:17-alpine` (Debian's PostgreSQL behind an entrypoint that honours
//! `POSTGRES_USER`/`POSTGRES_PASSWORD`/`POSTGRES_DB`), `redis:7-alpine` (Debian's Redis, run with
//! the compose file's command line) and `debian:bookworm-slim` (the base itself). The Rust
//! services are built from the shipped Dockerfiles with `BINARIES=prebuilt`, which takes
//! binaries built on this host instead of compiling them in a builder image; the runtime stage —
//! user, `ca-certificates`, entrypoint, health check — is the shipped one.
//!
//! podman-compose starts every service at once (it ignores `depends_on` conditions; `consumer
//! migrate` waits for its database) and, with no systemd, podman runs no health check by
//! itself, so the test runs each service's health check (the compose file's, else the
//! Dockerfile's) itself.
//!
//! Skipped, saying so, only where podman cannot be found (`.ci/run` installs it).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use testkit::run;
use yaml_rust2::{Yaml, YamlLoader};

/// The compose project name: its containers, networks and volumes carry it.
const PROJECT: &str = "txncompose";
/// The Debian base every stand-in image is built on.
const BASE: &str = "localhost/txn-debian-base:bookworm";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(args);
    cmd
}

fn compose(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman-compose");
    cmd.args(["-p", PROJECT, "-f", "docker-compose.yml"])
        .args(args)
        .current_dir(root())
        // The binaries built on this host (see `prebuilt_binaries`).
        .env("BINARIES", "prebuilt");
    cmd
}

fn image_exists(name: &str) -> bool {
    podman(&["image", "exists", name])
        .status()
        .is_ok_and(|s| s.success())
}

/// The stand-ins of the public images, built once per machine (podman keeps them).
fn stand_in_images() {
    if !image_exists(BASE) {
        let dir = std::env::temp_dir().join(format!("debootstrap-{}", uuid::Uuid::new_v4()));
        run(
            Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&dir)
                .arg("http://deb.debian.org/debian"),
            "debootstrap",
        );
        run(
            Command::new("sh").arg("-c").arg(format!(
                "tar -C {} -c . | podman import - {BASE}",
                dir.display()
            )),
            "podman import",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let context = root().join("tests/compose");
    for (name, file) in [
        (
            "docker.io/library/postgres:17-alpine",
            "Containerfile.postgres",
        ),
        ("docker.io/library/redis:7-alpine", "Containerfile.redis"),
    ] {
        // Always built: podman's layer cache makes an unchanged one instant.
        run(
            podman(&[
                "build",
                "-q",
                "-t",
                name,
                "--build-arg",
                &format!("BASE={BASE}"),
                "-f",
            ])
            .arg(context.join(file))
            .arg(&context),
            &format!("the stand-in for {name}"),
        );
    }
    run(
        &mut podman(&["tag", BASE, "docker.io/library/debian:bookworm-slim"]),
        "tag the runtime base",
    );
}

/// Builds the four service binaries on this host and puts them where the Dockerfiles'
/// `prebuilt` stage takes them from.
fn prebuilt_binaries() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = root().join("target/compose");
    run(
        Command::new(cargo)
            .args(["build", "--bins"])
            .args([
                "-p",
                "producer",
                "-p",
                "consumer",
                "-p",
                "thirdparty-sim",
                "-p",
                "client-sim",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(root()),
        "cargo build --bins",
    );
    let prebuilt = root().join("prebuilt");
    std::fs::create_dir_all(&prebuilt).expect("prebuilt/");
    for bin in ["producer", "consumer", "thirdparty-sim", "client-sim"] {
        std::fs::copy(target.join("debug").join(bin), prebuilt.join(bin)).expect("copy binary");
    }
}

fn container(service: &str) -> String {
    format!("{PROJECT}_{service}_1")
}

/// The health check of `service`: the compose file's `healthcheck.test`, else its image's
/// `HEALTHCHECK` (podman's OCI images drop it, so it is read from the Dockerfile).
fn health_check(compose: &Yaml, service: &str) -> Option<Vec<String>> {
    let spec = &compose["services"][service];
    if let Some(test) = spec["healthcheck"]["test"].as_vec() {
        let words: Vec<String> = test
            .iter()
            .filter_map(|w| w.as_str())
            .map(String::from)
            .collect();
        return Some(words[1..].to_vec()); // after "CMD"
    }
    let dockerfile = spec["build"]["dockerfile"].as_str()?;
    let text = std::fs::read_to_string(root().join(dockerfile)).ok()?;
    let joined = text.replace("\\\n", " ");
    let line = joined.lines().find(|l| l.starts_with("HEALTHCHECK"))?;
    let cmd = &line[line.find("CMD")? + 3..];
    serde_json::from_str(cmd.trim()).ok()
}

/// Runs `service`'s health check in its container until it passes.
fn wait_healthy(compose: &Yaml, service: &str, within: Duration) {
    let Some(check) = health_check(compose, service) else {
        panic!("{service} has no health check");
    };
    let started = Instant::now();
    loop {
        let ok = podman(&["exec", &container(service)])
            .args(&check)
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{service} not healthy after {within:?}; its log:\n{}",
            logs(service)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
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

/// `migrate` ran to completion with exit code 0.
fn wait_completed(service: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let state = run(
            &mut podman(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &container(service),
            ]),
            "podman inspect",
        );
        match state.trim() {
            "exited 0" => return,
            s if s.starts_with("exited") => panic!("{service} failed ({s}):\n{}", logs(service)),
            _ => {}
        }
        assert!(
            started.elapsed() < within,
            "{service} still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Containers of the project, running or not.
fn project_containers() -> String {
    run(
        &mut podman(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=io.podman.compose.project={PROJECT}"),
        ]),
        "podman ps",
    )
}

/// Takes the project down (containers, network, volumes) when the test ends, however it ends.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = compose(&["down", "-v"]).output();
        let _ = std::fs::remove_dir_all(root().join("prebuilt"));
    }
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
    for program in ["podman", "podman-compose", "debootstrap"] {
        if !on_path(program) {
            eprintln!(
                "SKIPPED: {program} is not installed (.ci/run installs podman, podman-compose and debootstrap)"
            );
            return;
        }
    }
    let compose_file = YamlLoader::load_from_str(
        &std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file"),
    )
    .expect("compose YAML")
    .remove(0);
    let started = Instant::now();
    // A run that died half-way leaves its project behind: start from nothing.
    let _ = compose(&["down", "-v"]).output();
    let _down = Down;

    stand_in_images();
    let base = started.elapsed();
    prebuilt_binaries();
    let binaries = started.elapsed() - base;
    run(&mut compose(&["build"]), "podman-compose build");
    let images = started.elapsed() - base - binaries;

    // The dependency order of the compose file, which podman-compose does not wait for.
    run(
        &mut compose(&["up", "-d", "postgres", "redis"]),
        "up postgres redis",
    );
    wait_healthy(&compose_file, "postgres", Duration::from_secs(120));
    wait_healthy(&compose_file, "redis", Duration::from_secs(60));
    run(&mut compose(&["up", "-d", "migrate"]), "up migrate");
    wait_completed("migrate", Duration::from_secs(120));
    run(&mut compose(&["up", "-d"]), "up");
    for service in ["thirdparty-sim", "client-sim", "producer", "consumer"] {
        wait_healthy(&compose_file, service, Duration::from_secs(120));
    }
    let up = started.elapsed() - base - binaries - images;

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

    run(&mut compose(&["down", "-v"]), "podman-compose down");
    let left = project_containers();
    assert!(
        left.trim().is_empty(),
        "down left containers behind: {left}"
    );
    eprintln!(
        "compose: base images {base:?}, binaries {binaries:?}, service images {images:?}, \
         up and healthy {up:?}, first transaction {first:?}; total {:?}",
        started.elapsed()
    );
}
