//! What every binary does before its service runs: read `.env`, set up logging, parse its
//! settings, bind its address.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Reads `.env` from the working directory, if there is one, for settings not already in the
/// environment (development convenience; production sets the environment itself), then sets up
/// logging.
pub fn prepare() {
    let _ = dotenvy::dotenv();
    crate::telemetry::init();
}

/// What `--help` says of `check-config`, for every binary.
pub const CHECK_CONFIG_HELP: &str = "Run `<binary> check-config [flags]` to parse the settings \
exactly as a start would, print the effective values (secrets redacted) and exit: 0 if they \
are valid, 2 if not.";

/// [`prepare`], then the binary's settings from the environment and its flags (a malformed
/// value ends the process with a message naming the setting, exit code 2). With `check-config`
/// as the first argument, prints the settings (secrets redacted) and exits 0 instead of
/// returning.
pub fn settings<C: clap::Parser + std::fmt::Debug>() -> C {
    prepare();
    settings_from(std::env::args_os())
}

/// [`settings`] from `args` (the program name first), for a binary that dispatched on a
/// subcommand of its own first.
pub fn settings_from<C, I>(args: I) -> C
where
    C: clap::Parser + std::fmt::Debug,
    I: IntoIterator<Item = std::ffi::OsString>,
{
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let checking = args.get(1).is_some_and(|a| a == "check-config");
    if checking {
        args.remove(1);
    }
    let settings = C::try_parse_from(args).unwrap_or_else(|e| e.exit());
    if checking {
        println!("{settings:#?}");
        std::process::exit(0);
    }
    settings
}

/// Binds the service's address; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
