//! The chaos run at its short setting: the built `chaos` binary drives the service binaries
//! (two producers, one consumer per queue) through a seeded schedule of faults — SIGKILLs of
//! producers, consumers and Redis (AOF `always`), Redis stalled with SIGSTOP, Postgres stopped,
//! a third-party outage — and checks every invariant after.

use std::process::Command;

/// The seed CI runs; `chaos --seed N` reproduces any other.
const SEED: &str = "1";

#[test]
fn a_minute_of_seeded_faults_breaks_no_invariant() {
    // The service binaries and `chaos` itself, as this profile builds them.
    let bin_dir = crate::support::built_binaries();
    let output = Command::new(bin_dir.join("chaos"))
        .args(["--seed", SEED, "--duration", "60", "--rate", "50"])
        .args(["--fault-every", "8", "--settle-within", "180"])
        .output()
        .expect("run chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the report line");
    // The faults struck work in progress, and every kind struck.
    let faults = report["faults"].as_object().expect("faults by kind");
    assert!(faults.len() >= 5, "{report}");
    let hit: Vec<i64> = report["pending_at_faults"]
        .as_array()
        .expect("pending at each fault")
        .iter()
        .filter_map(|v| v.as_i64())
        .collect();
    assert!(hit.iter().filter(|&&n| n > 0).count() >= 3, "{report}");
    assert!(
        report["answers"]["201"].as_u64().unwrap_or(0) > 1000,
        "{report}"
    );
}
