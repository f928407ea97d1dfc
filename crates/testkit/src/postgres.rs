//! A Postgres server of the test's own: `initdb` in a temporary directory, a free port, and
//! optionally TLS only (`hostssl`). It can be stopped and started again on the same data.
//!
//! Test-only: a server that cannot start panics with the reason.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{ports::free_port, process};

/// A private Postgres server.
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// Runs `program` as the `postgres` user when this process is root (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn chown(path: &Path) {
    let _ = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status();
}

impl PrivatePostgres {
    /// Plain TCP with trust authentication.
    pub fn start() -> Self {
        Self::init(None)
    }

    /// TCP over TLS only, with this certificate and key (PEM); trust authentication.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::init(Some((cert, key)))
    }

    fn init(tls: Option<(&Path, &Path)>) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = process::temp_dir("pg").expect("a directory for postgres");
        let data = dir.join("data");
        chown(&dir);
        process::run(
            as_postgres(&bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data),
            "initdb",
        );
        let port = free_port().expect("a free port");
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            dir.display()
        );
        let hba = if let Some((cert, key)) = tls {
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                let target = data.join(to);
                std::fs::copy(from, &target).expect("copy the certificate");
                chown(&target);
                let _ = Command::new("chmod").arg("600").arg(&target).status();
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            // TCP only over TLS: no `host` line, so a plaintext connection has no entry.
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        } else {
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        };
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).expect("conf");
        std::fs::write(data.join("pg_hba.conf"), hba).expect("hba");
        let postgres = Self { dir, bin, port };
        postgres.resume();
        postgres
    }

    /// `postgres://postgres@localhost:<port>`.
    pub fn server(&self) -> String {
        format!("postgres://postgres@localhost:{}", self.port)
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.join("data"));
        cmd
    }

    /// Stops the server at once (`-m immediate`): every connection breaks.
    pub fn stop(&self) {
        process::run(
            self.pg_ctl().args(["-m", "immediate", "-w", "stop"]),
            "pg_ctl stop",
        );
    }

    /// Starts it (again) and waits until it accepts connections.
    pub fn resume(&self) {
        process::run(
            self.pg_ctl()
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "start"]),
            "pg_ctl start",
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl().args(["-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
