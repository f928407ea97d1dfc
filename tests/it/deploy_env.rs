//! Every deploy file starts its services. Each service of `docker-compose.yml` and each
//! workload of `deploy/k8s` is given exactly the environment and arguments the file gives it
//! (the image's `ENV`, `env_file`, `environment` with its anchors and merge keys; the
//! ConfigMap, the Secret's keys with placeholder values, `env`, `envFrom`, `args`), and its
//! binary's `check-config` must accept them — without printing a secret. A deploy file can
//! therefore never again lack a variable its binary requires, as `migrate` once did.

use std::{collections::BTreeMap, path::Path, process::Command};

use yaml_rust2::{Yaml, YamlLoader};

/// Set in the child process: the binary whose settings it checks.
const CHILD_BINARY: &str = "DEPLOY_ENV_BINARY";
/// Set in the child process: the arguments (JSON list) after the binary's name.
const CHILD_ARGS: &str = "DEPLOY_ENV_ARGS";

type Env = BTreeMap<String, String>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A YAML mapping with its merge keys (`<<: *anchor`) applied, as compose applies them.
fn merged(node: &Yaml) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    let Some(map) = node.as_hash() else {
        return out;
    };
    if let Some(base) = map.get(&Yaml::String("<<".into())) {
        out.extend(merged(base));
    }
    for (k, v) in map {
        if let Some(k) = k.as_str().filter(|k| *k != "<<") {
            out.insert(k.to_string(), v.clone());
        }
    }
    out
}

fn scalar(v: &Yaml) -> String {
    match v {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_vec()
        .map(|items| items.iter().map(scalar).collect())
        .unwrap_or_default()
}

/// `value` with compose's `${VAR}` and `${VAR:-default}` replaced from `vars`.
fn interpolate(value: &str, vars: &Env) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let expr = &rest[start + 2..start + end];
        let (name, default) = expr.split_once(":-").unwrap_or((expr, ""));
        let set = vars.get(name).filter(|v| !v.is_empty());
        out.push_str(set.map(String::as_str).unwrap_or(default));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// `KEY=VALUE` lines, as compose reads an env file.
fn env_file(path: &Path) -> Env {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// What a Dockerfile's runtime image gives a container: its `ENV` and its `ENTRYPOINT`.
fn image(dockerfile: &str) -> (Env, Vec<String>) {
    let text = std::fs::read_to_string(root().join(dockerfile)).expect("Dockerfile");
    // The last stage is the runtime image.
    let runtime = text.rsplit("\nFROM ").next().unwrap_or(&text);
    let mut env = Env::new();
    let mut entrypoint = Vec::new();
    for line in runtime.lines() {
        if let Some(rest) = line.strip_prefix("ENV ")
            && let Some((k, v)) = rest.split_once('=')
        {
            env.insert(k.trim().into(), v.trim().into());
        }
        if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT as a JSON list");
        }
    }
    (env, entrypoint)
}

/// Runs `binary check-config args…` (in a child process with exactly `env`) and returns its
/// exit code and everything it printed.
fn check_config(binary: &str, args: &[String], env: &Env) -> (Option<i32>, String) {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "deploy_env::child_check_config",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .envs(env)
        .env(CHILD_BINARY, binary)
        .env(CHILD_ARGS, serde_json::to_string(args).expect("args"))
        .output()
        .expect("run the child");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), printed)
}

/// Not a test on its own: the child process of [`check_config`]. It parses the settings of
/// `DEPLOY_ENV_BINARY` as that binary's `check-config` does, and exits 0 or 2.
#[test]
fn child_check_config() {
    let Ok(binary) = std::env::var(CHILD_BINARY) else {
        return;
    };
    let args: Vec<String> =
        serde_json::from_str(&std::env::var(CHILD_ARGS).expect("args")).expect("args");
    // `<binary> [migrate] check-config args…`, as the deploy file's command would run.
    let migrate = binary == "consumer" && args.first().is_some_and(|a| a == "migrate");
    let (command, args) = if migrate {
        (vec![binary.clone(), "migrate".into()], args[1..].to_vec())
    } else {
        (vec![binary.clone()], args)
    };
    let argv: Vec<std::ffi::OsString> = command
        .into_iter()
        .chain(["check-config".to_string()])
        .chain(args)
        .map(Into::into)
        .collect();
    use service::start::{NoCommand, invocation_from};
    match binary.as_str() {
        "producer" => drop(invocation_from::<producer::Config, NoCommand, _>(argv)),
        "consumer" => drop(consumer::invocation_from(argv)),
        "thirdparty-sim" => drop(invocation_from::<thirdparty_sim::Config, NoCommand, _>(
            argv,
        )),
        "client-sim" => drop(invocation_from::<client_sim::Config, NoCommand, _>(argv)),
        other => panic!("no binary {other}"),
    }
    unreachable!("check-config exits");
}

/// Asserts that `binary` accepts its settings and printed none of the `secrets`.
fn assert_starts(what: &str, binary: &str, args: &[String], env: &Env, secrets: &[String]) {
    let (code, printed) = check_config(binary, args, env);
    assert_eq!(
        code,
        Some(0),
        "{what}: `{binary} check-config {args:?}` refused the environment it gets:\n{printed}"
    );
    for secret in secrets {
        assert!(
            !printed.contains(secret.as_str()),
            "{what}: check-config printed a secret"
        );
    }
}

#[test]
fn every_compose_service_accepts_the_environment_compose_gives_it() {
    let compose = &yaml(&root().join("docker-compose.yml"))[0];
    // Both as a fresh clone has it (no .env, nothing set: the defaults in the file) and as a
    // user has it after `cp .env.example .env`.
    for vars in [Env::new(), env_file(&root().join(".env.example"))] {
        check_compose(compose, &vars);
    }
}

fn check_compose(compose: &Yaml, vars: &Env) {
    let mut checked = 0;
    for (name, service) in merged(&compose["services"]) {
        let service = merged(&service);
        let Some(build) = service.get("build") else {
            continue; // Postgres, Redis: images of their own.
        };
        let dockerfile = scalar(&merged(build)["dockerfile"]);
        let (mut env, entrypoint) = image(&dockerfile);
        if let Some(file) = service.get("env_file") {
            env.extend(env_file(&root().join(scalar(file))));
        }
        if let Some(environment) = service.get("environment") {
            for (k, v) in merged(environment) {
                env.insert(k, interpolate(&scalar(&v), vars));
            }
        }
        let secrets: Vec<String> = ["WEBHOOK_SECRET", "CLIENT_WEBHOOK_SECRET"]
            .iter()
            .filter_map(|k| env.get(*k).cloned())
            .collect();
        let command = service.get("command").map(strings).unwrap_or_default();
        let (binary, args) = match entrypoint.first() {
            Some(path) => (path.rsplit('/').next().unwrap_or(path).to_string(), command),
            None => (command[0].clone(), command[1..].to_vec()),
        };
        assert_starts(
            &format!("compose service {name}"),
            &binary,
            &args,
            &env,
            &secrets,
        );
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "migrate, producer, consumer and both simulators"
    );
}

#[test]
fn every_kubernetes_workload_accepts_the_configmap_and_the_secret() {
    check_kubernetes(None);
}

#[test]
fn every_kubernetes_workload_of_the_cluster_overlay_accepts_its_configmap() {
    check_kubernetes(Some("cluster/configmap-cluster.yaml"));
}

/// Starts every workload's binary with `check-config` and the environment the base's
/// ConfigMap (with `overlay`'s ConfigMap patch over it) and the example Secret give it.
fn check_kubernetes(overlay: Option<&str>) {
    let dir = root().join("deploy/k8s");
    let mut config: Env = merged(&yaml(&dir.join("configmap.yaml"))[0]["data"])
        .into_iter()
        .map(|(k, v)| (k, scalar(&v)))
        .collect();
    if let Some(patch) = overlay {
        config.extend(
            merged(&yaml(&dir.join(patch))[0]["data"])
                .into_iter()
                .map(|(k, v)| (k, scalar(&v))),
        );
    }
    let secret: Env = merged(&yaml(&dir.join("secret.example.yaml"))[0]["stringData"])
        .into_iter()
        .map(|(k, v)| (k, scalar(&v)))
        .collect();
    let secrets: Vec<String> = secret.values().cloned().collect();
    let resources = strings(&yaml(&dir.join("kustomization.yaml"))[0]["resources"]);
    let mut checked = 0;
    for file in resources {
        for doc in yaml(&dir.join(&file)) {
            let kind = scalar(&doc["kind"]);
            if kind != "Deployment" && kind != "Job" {
                continue;
            }
            let name = scalar(&doc["metadata"]["name"]);
            for container in doc["spec"]["template"]["spec"]["containers"]
                .as_vec()
                .expect("containers")
            {
                let image_name = scalar(&container["image"]);
                let (binary, dockerfile) = match image_name.as_str() {
                    "txn-producer" => ("producer", "Dockerfile.producer"),
                    "txn-consumer" => ("consumer", "Dockerfile.consumer"),
                    other => panic!("{name}: unknown image {other}"),
                };
                let (mut env, _) = image(dockerfile);
                for from in container["envFrom"].as_vec().cloned().unwrap_or_default() {
                    if !from["configMapRef"].is_badvalue() {
                        env.extend(config.clone());
                    }
                    if !from["secretRef"].is_badvalue() {
                        env.extend(secret.clone());
                    }
                }
                for var in container["env"].as_vec().cloned().unwrap_or_default() {
                    let key = scalar(&var["name"]);
                    let from = &var["valueFrom"];
                    let value = if !from["secretKeyRef"].is_badvalue() {
                        secret.get(&scalar(&from["secretKeyRef"]["key"])).cloned()
                    } else if !from["configMapKeyRef"].is_badvalue() {
                        config
                            .get(&scalar(&from["configMapKeyRef"]["key"]))
                            .cloned()
                    } else {
                        Some(scalar(&var["value"]))
                    };
                    if let Some(value) = value {
                        env.insert(key, value);
                    }
                }
                let args = strings(&container["args"]);
                assert_starts(&format!("{kind} {name}"), binary, &args, &env, &secrets);
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 6,
        "the migrate Job, the producer and four consumers: {checked}"
    );
}

#[test]
fn compose_interpolation_takes_the_default_unless_the_variable_is_set() {
    let vars = Env::from([("SET".to_string(), "x".to_string())]);
    assert_eq!(interpolate("a${SET:-d}b", &vars), "axb");
    assert_eq!(interpolate("a${UNSET:-d}b${SET}", &vars), "adbx");
    assert_eq!(interpolate("plain", &vars), "plain");
}

#[test]
fn consumer_migrate_needs_only_the_database_url() {
    let env = Env::from([(
        "DATABASE_URL".to_string(),
        "postgres://app:pw@db:5432/transactions".to_string(),
    )]);
    assert_starts(
        "consumer migrate",
        "consumer",
        &["migrate".into()],
        &env,
        &["pw@".into()],
    );
}

/// What `binary` with `args` and `env` printed, having asserted that it exited with `code`,
/// printed `names` and did not print `secret`.
fn printed_by(
    binary: &str,
    args: &[String],
    env: &Env,
    code: i32,
    names: &str,
    secret: &str,
) -> String {
    let (exit, printed) = check_config(binary, args, env);
    let run = format!("{binary} {}", args.join(" "));
    assert_eq!(exit, Some(code), "{run}:\n{printed}");
    assert!(printed.contains(names), "{run} names {names}:\n{printed}");
    assert!(
        !printed.contains(secret),
        "{run} printed a secret:\n{printed}"
    );
    printed
}

#[test]
fn a_failed_start_and_the_help_never_print_a_secret() {
    let secret = "sk_live_do_not_print_me";
    let url = format!("postgres://app:{secret}@db/x");
    let bad = [
        ("WEBHOOK_SECRET", secret.to_string()),
        ("DATABASE_URL", format!("mysql://app:{secret}@db/x")),
        ("REDIS_URL", format!("http://app:{secret}@cache")),
    ];
    for (key, value) in bad {
        let mut env = Env::from([
            (
                "WEBHOOK_SECRET".to_string(),
                "whsec_cGxhY2Vob2xkZXItd2ViaG9vay1zZWNyZXQ=".into(),
            ),
            ("DATABASE_URL".to_string(), url.clone()),
        ]);
        env.insert(key.into(), value);
        printed_by("producer", &[], &env, 2, key, secret);
    }
    // A third party without a scheme stops the consumer at start, naming the setting.
    let env = Env::from([
        (
            "CLIENT_WEBHOOK_SECRET".to_string(),
            "whsec_cGxhY2Vob2xkZXItY2xpZW50LXNlY3JldA==".into(),
        ),
        ("THIRDPARTY_URL".to_string(), "thirdparty:3300".into()),
    ]);
    let (code, printed) = check_config("consumer", &[], &env);
    assert_eq!(code, Some(2), "{printed}");
    assert!(printed.contains("THIRDPARTY_URL"), "{printed}");
    // `--help` shows no environment value of a secret or a URL.
    let env = Env::from([
        ("WEBHOOK_SECRET".to_string(), format!("whsec_{secret}")),
        ("DATABASE_URL".to_string(), url.clone()),
        ("THIRDPARTY_API_KEY".to_string(), secret.to_string()),
        ("REDIS_PASSWORD".to_string(), secret.to_string()),
    ]);
    for binary in ["producer", "consumer", "thirdparty-sim", "client-sim"] {
        printed_by(binary, &["--help".into()], &env, 0, "Usage", secret);
    }
    // A valid start prints its settings with the secrets redacted.
    let env = Env::from([
        (
            "CLIENT_WEBHOOK_SECRET".to_string(),
            "whsec_cGxhY2Vob2xkZXItY2xpZW50LXNlY3JldA==".into(),
        ),
        ("DATABASE_URL".to_string(), url),
        ("THIRDPARTY_API_KEY".to_string(), secret.to_string()),
        ("REDIS_PASSWORD".to_string(), secret.to_string()),
        ("BOARD_TOKEN".to_string(), secret.to_string()),
    ]);
    let printed = printed_by("consumer", &[], &env, 0, "database_url", secret);
    assert!(
        !printed.contains("cGxhY2Vob2xkZXIt"),
        "check-config printed a webhook secret"
    );
}

#[test]
fn check_config_refuses_a_database_url_option_a_start_would_refuse() {
    let secret = "pw_do_not_print_me";
    let base = Env::from([
        (
            "DATABASE_URL".to_string(),
            format!("postgres://app:{secret}@db:5432/transactions?sslmode=bogus"),
        ),
        (
            "WEBHOOK_SECRET".to_string(),
            "whsec_cGxhY2Vob2xkZXItd2ViaG9vay1zZWNyZXQ=".into(),
        ),
        (
            "CLIENT_WEBHOOK_SECRET".to_string(),
            "whsec_cGxhY2Vob2xkZXItY2xpZW50LXNlY3JldA==".into(),
        ),
        (
            "API_KEY_PEPPER".to_string(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        ),
    ]);
    for (binary, args) in [
        ("producer", vec![]),
        ("consumer", vec![]),
        ("consumer", vec!["migrate".to_string()]),
    ] {
        let (code, printed) = check_config(binary, &args, &base);
        assert_eq!(code, Some(2), "{binary} {args:?}:\n{printed}");
        assert!(
            printed.contains("DATABASE_URL") && printed.contains("bogus"),
            "{binary} {args:?} names the setting and the value:\n{printed}"
        );
        assert!(!printed.contains(secret), "{binary} {args:?}:\n{printed}");
        // The same URL with a valid sslmode passes.
        let mut fixed = base.clone();
        fixed.insert(
            "DATABASE_URL".into(),
            format!("postgres://app:{secret}@db:5432/transactions?sslmode=require"),
        );
        let (code, printed) = check_config(binary, &args, &fixed);
        assert_eq!(code, Some(0), "{binary} {args:?}:\n{printed}");
    }
}

#[test]
fn a_retired_setting_stops_the_consumer_naming_what_replaced_it() {
    let mut env = Env::from([(
        "CLIENT_WEBHOOK_SECRET".to_string(),
        "whsec_cGxhY2Vob2xkZXItY2xpZW50LXNlY3JldA==".into(),
    )]);
    let (code, printed) = check_config("consumer", &[], &env);
    assert_eq!(code, Some(0), "{printed}");
    env.insert("NOTIFY_RETRIES".into(), "8".into());
    let (code, printed) = check_config("consumer", &[], &env);
    assert_eq!(code, Some(2), "{printed}");
    assert!(
        printed.contains("NOTIFY_RETRIES") && printed.contains("NOTIFY_SCHEDULE"),
        "{printed}"
    );
}
