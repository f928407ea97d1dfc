//! A child process that dies with its owner, signals to it, and a command run to its end.

use std::{
    io,
    path::PathBuf,
    process::{Child, Command},
};

/// A temporary directory of its own, named after `what`, created now.
pub fn temp_dir(what: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `cmd` to its end and returns its stdout; panics with both outputs if it fails.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Sends `signal` (e.g. `-STOP`) to `child`; panics if `kill` fails.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill on PATH");
    assert!(status.success(), "kill {signal} {pid}");
}

/// SIGKILLs `child` and reaps it (a stopped child is continued first: it would not die).
pub fn kill(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-CONT", &child.id().to_string()])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
