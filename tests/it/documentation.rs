//! The documents in the repository stay true to the code: every setting a binary reads is in
//! `docs/configuration.md` and `.env.example`, and every route of the API and of the admin API is in `docs/http.md`.

use clap::CommandFactory;

fn read(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The environment variables a binary's settings read.
fn variables(command: clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_setting_is_documented_and_listed_in_the_env_example() {
    let docs = read("docs/configuration.md");
    let example = read(".env.example");
    let binaries = [
        ("producer", variables(producer::Config::command())),
        ("consumer", variables(consumer::Config::command())),
        (
            "consumer migrate",
            variables(consumer::MigrateConfig::command()),
        ),
        (
            "thirdparty-sim",
            variables(thirdparty_sim::Config::command()),
        ),
        ("client-sim", variables(client_sim::Config::command())),
    ];
    for (binary, vars) in binaries {
        assert!(
            !vars.is_empty(),
            "{binary} reads its settings from the environment"
        );
        for var in vars {
            assert!(
                docs.contains(&format!("`{var}`")),
                "{binary}'s {var} is not in docs/configuration.md"
            );
            assert!(
                example
                    .lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{var}="))),
                "{binary}'s {var} is not in .env.example"
            );
        }
    }
}

#[test]
fn every_route_of_the_api_is_documented() {
    let docs = read("docs/http.md");
    let (_, document) = producer::app::routes_and_document();
    let admin = consumer::admin::document();
    let paths: Vec<&String> = document.paths.paths.keys().collect();
    assert!(paths.len() >= 7, "{paths:?}");
    let admin_paths: Vec<&String> = admin.paths.paths.keys().collect();
    assert!(admin_paths.len() >= 5, "{admin_paths:?}");
    for path in paths.into_iter().chain(admin_paths) {
        assert!(
            docs.contains(&format!(" {path}`")),
            "{path} is not in docs/http.md"
        );
    }
}

#[test]
fn the_refusals_stated_once_reach_every_route_that_gives_them() {
    let (_, document) = producer::app::routes_and_document();
    let api = serde_json::to_value(&document).unwrap();
    let responses = |doc: &serde_json::Value, path: &str, method: &str| {
        doc["paths"][path][method]["responses"].clone()
    };
    let keyed = [("/transaction", "post"), ("/transaction/{id}", "get")];
    let with_body = [("/transaction", "post"), ("/webhook", "post")];
    for (path, method) in keyed {
        let r = responses(&api, path, method);
        for code in ["401", "403", "500"] {
            assert!(r.get(code).is_some(), "{method} {path} lists {code}: {r}");
        }
        assert!(r["401"]["headers"].get("www-authenticate").is_some());
    }
    for (path, method) in with_body {
        let r = responses(&api, path, method);
        for code in ["400", "415", "500"] {
            assert!(r.get(code).is_some(), "{method} {path} lists {code}: {r}");
        }
    }
    let admin = serde_json::to_value(consumer::admin::document()).unwrap();
    for (doc, scheme) in [(&api, "api_key"), (&admin, "admin_token")] {
        let scheme = &doc["components"]["securitySchemes"][scheme];
        assert_eq!(
            (scheme["type"].as_str(), scheme["scheme"].as_str()),
            (Some("http"), Some("bearer"))
        );
    }
    for (path, method) in [
        ("/admin/clients/{id}", "get"),
        ("/admin/clients/{id}", "patch"),
        ("/admin/clients/{id}/keys", "post"),
        ("/admin/clients/{id}/secrets", "post"),
    ] {
        let id = &admin["paths"][path][method]["parameters"][0];
        assert_eq!(
            (
                id["name"].as_str(),
                id["in"].as_str(),
                id["schema"]["format"].as_str()
            ),
            (Some("id"), Some("path"), Some("uuid")),
            "{method} {path}: {id}"
        );
        let r = responses(&admin, path, method);
        for code in ["401", "404", "503"] {
            assert!(r.get(code).is_some(), "{method} {path} lists {code}: {r}");
        }
    }
}
