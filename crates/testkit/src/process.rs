//! A child process that dies with its owner, and signals to it.

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
