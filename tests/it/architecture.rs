//! The layering ARCHITECTURE.md describes, checked against the manifests: each crate depends
//! only on the crates below it, the domain on nothing that does I/O, the simulators on no
//! store and no queue; and the code map has a row for every crate.

use std::collections::{BTreeMap, BTreeSet};

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("service", &[]),
    ("queue", &[]),
    ("testkit", &[]),
    ("store", &["domain"]),
    ("outbound", &["domain", "service"]),
    ("jobs", &["domain", "queue"]),
    ("id-cache", &["domain", "jobs", "queue", "service"]),
    (
        "producer",
        &["domain", "id-cache", "jobs", "queue", "service", "store"],
    ),
    (
        "consumer",
        &[
            "domain", "id-cache", "jobs", "outbound", "queue", "service", "store",
        ],
    ),
    ("thirdparty-sim", &["domain", "outbound", "service"]),
    ("client-sim", &["domain", "service"]),
    (
        "stack",
        &[
            "client-sim",
            "consumer",
            "domain",
            "producer",
            "store",
            "service",
            "thirdparty-sim",
        ],
    ),
    (
        "bench",
        &[
            "client-sim",
            "consumer",
            "domain",
            "producer",
            "queue",
            "service",
            "store",
            "testkit",
            "thirdparty-sim",
        ],
    ),
];

/// Crates that do I/O: the domain may not depend on them.
const IO: &[&str] = &[
    "tokio",
    "sqlx",
    "redis",
    "reqwest",
    "axum",
    "hyper",
    "hyper-util",
    "apalis",
    "apalis-core",
];

/// What the simulators must never compile, directly or through a crate of ours.
const NOT_IN_SIMULATORS: &[&str] = &["store", "queue", "id-cache", "sqlx", "redis", "apalis"];

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest(path: &std::path::Path) -> toml_edit::DocumentMut {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every member crate: its package name and its normal dependencies (by package name).
fn crates() -> BTreeMap<String, BTreeSet<String>> {
    let workspace = manifest(&root().join("Cargo.toml"));
    let members = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace.members");
    members
        .iter()
        .map(|m| {
            let dir = m.as_str().expect("a member path");
            let doc = manifest(&root().join(dir).join("Cargo.toml"));
            let name = doc["package"]["name"].as_str().expect("package.name");
            assert_eq!(
                Some(name),
                dir.rsplit('/').next(),
                "a crate is named as its directory"
            );
            let deps = doc
                .get("dependencies")
                .and_then(|d| d.as_table())
                .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default();
            (name.to_string(), deps)
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let crates = crates();
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    assert_eq!(
        crates.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        layers.keys().copied().collect::<BTreeSet<_>>(),
        "every crate has a layer"
    );
    for (name, deps) in &crates {
        let allowed = layers[name.as_str()];
        for dep in deps.iter().filter(|d| crates.contains_key(*d)) {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} may not depend on {dep} (allowed: {allowed:?})"
            );
        }
    }
    for io in IO {
        assert!(
            !crates["domain"].contains(*io),
            "the domain crate depends on {io}, which does I/O"
        );
    }
}

#[test]
fn the_simulators_compile_no_store_and_no_queue() {
    let crates = crates();
    for simulator in ["thirdparty-sim", "client-sim"] {
        let mut seen = BTreeSet::new();
        let mut todo = vec![simulator.to_string()];
        while let Some(krate) = todo.pop() {
            if !seen.insert(krate.clone()) {
                continue;
            }
            for dep in crates.get(&krate).into_iter().flatten() {
                assert!(
                    !NOT_IN_SIMULATORS.contains(&dep.as_str()),
                    "{simulator} compiles {dep} (through {krate})"
                );
                if crates.contains_key(dep) {
                    todo.push(dep.clone());
                }
            }
        }
    }
}

#[test]
fn the_code_map_has_a_row_for_every_crate() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for name in crates().keys() {
        assert!(
            map.contains(&format!("| `crates/{name}` |")),
            "ARCHITECTURE.md's code map has no row for crates/{name}"
        );
    }
}
