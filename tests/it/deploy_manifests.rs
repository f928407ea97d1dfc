//! The Kubernetes manifests, checked where `kubernetes-validate` cannot: KEDA's ScaledObjects
//! (a custom resource it has no schema for) must scale an existing consumer Deployment on the
//! ready list of the very queue that Deployment works.

use std::collections::HashMap;

use yaml_rust2::{Yaml, YamlLoader};

fn documents(file: &str) -> Vec<Yaml> {
    let path = format!("{}/deploy/k8s/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn resources() -> Vec<String> {
    let kustomization = &documents("kustomization.yaml")[0];
    kustomization["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("file").to_string())
        .collect()
}

/// Every Deployment of the kustomization: name → its container args.
fn deployments() -> HashMap<String, Vec<String>> {
    let mut all = HashMap::new();
    for file in resources() {
        for doc in documents(&file) {
            if doc["kind"].as_str() == Some("Deployment") {
                let name = doc["metadata"]["name"].as_str().expect("name").to_string();
                let args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
                    .as_vec()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                all.insert(name, args);
            }
        }
    }
    all
}

#[test]
fn every_queue_has_a_consumer_deployment_scaled_on_its_ready_list() {
    let deployments = deployments();
    let scaled: Vec<Yaml> = documents("keda-scaledobjects.yaml");
    assert!(resources().contains(&"keda-scaledobjects.yaml".to_string()));
    let mut queues_scaled = Vec::new();
    for so in &scaled {
        assert_eq!(so["apiVersion"].as_str(), Some("keda.sh/v1alpha1"));
        assert_eq!(so["kind"].as_str(), Some("ScaledObject"));
        let target = so["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .expect("scaleTargetRef.name");
        let args = deployments.get(target).unwrap_or_else(|| {
            panic!("ScaledObject targets {target}, which is not a Deployment here")
        });
        let queue = match args.as_slice() {
            [flag, queue] if flag == "--queues" => queue.clone(),
            other => panic!("{target} must work exactly one queue, has args {other:?}"),
        };
        let (min, max) = (
            so["spec"]["minReplicaCount"].as_i64(),
            so["spec"]["maxReplicaCount"].as_i64(),
        );
        assert!(
            matches!((min, max), (Some(a), Some(b)) if 0 <= a && a <= b),
            "{target}: replica bounds"
        );
        let triggers = so["spec"]["triggers"].as_vec().expect("triggers");
        assert_eq!(triggers.len(), 1);
        let trigger = &triggers[0];
        assert_eq!(
            trigger["type"].as_str(),
            Some("redis"),
            "{target}: KEDA's Redis list scaler"
        );
        let meta = &trigger["metadata"];
        let expected = queue::Keys::new("txn", &queue).ready().to_string();
        assert_eq!(
            meta["listName"].as_str(),
            Some(expected.as_str()),
            "{target} scales on its own queue's ready list"
        );
        assert!(
            meta["address"].as_str().is_some_and(|a| a.contains(':')),
            "{target}: redis address host:port"
        );
        assert!(
            meta["listLength"]
                .as_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n > 0),
            "{target}: listLength is a positive number as a string"
        );
        queues_scaled.push(queue);
    }
    queues_scaled.sort();
    assert_eq!(queues_scaled, vec!["create", "notify", "process", "update"]);
}

#[test]
fn consumers_get_more_grace_than_they_take_to_drain() {
    let config = &documents("configmap.yaml")[0];
    let grace_ms: i64 = config["data"]["SHUTDOWN_GRACE_MS"]
        .as_str()
        .expect("SHUTDOWN_GRACE_MS")
        .parse()
        .expect("number");
    for file in resources() {
        for doc in documents(&file) {
            if doc["kind"].as_str() == Some("Deployment") {
                let name = doc["metadata"]["name"].as_str().unwrap_or("?");
                let grace = doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .expect("terminationGracePeriodSeconds");
                assert!(
                    grace * 1000 > grace_ms,
                    "{name}: terminationGracePeriodSeconds {grace} s ≤ SHUTDOWN_GRACE_MS {grace_ms} ms"
                );
                let container = &doc["spec"]["template"]["spec"]["containers"][0];
                assert!(
                    container["readinessProbe"]["httpGet"]["path"]
                        .as_str()
                        .is_some(),
                    "{name}: readiness probe"
                );
                assert!(
                    container["livenessProbe"]["httpGet"]["path"]
                        .as_str()
                        .is_some(),
                    "{name}: liveness probe"
                );
                assert!(
                    container["resources"]["requests"].as_hash().is_some(),
                    "{name}: resource requests"
                );
            }
        }
    }
}

#[test]
fn the_cluster_overlay_scales_every_queue_with_the_redis_cluster_scaler() {
    let overlay = |file: &str| documents(&format!("cluster/{file}"));
    let kustomization = &overlay("kustomization.yaml")[0];
    let bases: Vec<&str> = kustomization["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(bases, vec!["../"], "the overlay builds on the base");
    let patches: Vec<&str> = kustomization["patches"]
        .as_vec()
        .expect("patches")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert_eq!(
        patches,
        vec!["configmap-cluster.yaml", "scaledobjects-cluster.yaml"]
    );

    let config = &overlay("configmap-cluster.yaml")[0];
    assert_eq!(
        config["metadata"]["name"].as_str(),
        documents("configmap.yaml")[0]["metadata"]["name"].as_str(),
        "patches the base's ConfigMap"
    );
    assert_eq!(config["data"]["REDIS_CLUSTER"].as_str(), Some("true"));
    let seeds = config["data"]["REDIS_URL"].as_str().expect("REDIS_URL");
    assert!(
        seeds.parse::<service::config::RedisUrl>().is_ok() && seeds.contains(','),
        "seed nodes: {seeds}"
    );

    // Each base ScaledObject, by name: the queue of the Deployment it scales.
    let deployments = deployments();
    let base: HashMap<String, String> = documents("keda-scaledobjects.yaml")
        .iter()
        .map(|so| {
            let name = so["metadata"]["name"].as_str().expect("name").to_string();
            let target = so["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .expect("target");
            (name, deployments[target][1].clone())
        })
        .collect();
    let mut patched = Vec::new();
    for so in overlay("scaledobjects-cluster.yaml") {
        let name = so["metadata"]["name"].as_str().expect("name");
        let queue = base
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a ScaledObject of the base"));
        let triggers = so["spec"]["triggers"].as_vec().expect("triggers");
        assert_eq!(triggers.len(), 1);
        let trigger = &triggers[0];
        assert_eq!(trigger["type"].as_str(), Some("redis-cluster"), "{name}");
        let meta = &trigger["metadata"];
        assert_eq!(
            meta["listName"].as_str(),
            Some(queue::Keys::new("txn", queue).ready()),
            "{name} scales on its own queue's ready list"
        );
        let addresses = meta["addresses"].as_str().expect("addresses");
        assert!(
            addresses.split(',').all(|a| a.trim().contains(':')),
            "{name}: host:port, comma-separated: {addresses}"
        );
        patched.push(queue.clone());
    }
    patched.sort();
    assert_eq!(patched, vec!["create", "notify", "process", "update"]);
}
