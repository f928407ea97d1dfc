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

/// A service binary's command line: its settings (to run), `check-config`, and the commands
/// of its own `X` (for instance `consumer migrate`). The settings' required arguments are
/// required only when no command is given.
#[derive(Debug)]
pub struct Cli<C: clap::Args, X: clap::Subcommand = NoCommand>(Invocation<C, Command<C, X>>);

impl<C: clap::Args, X: clap::Subcommand> clap::Args for Cli<C, X> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        <Command<C, X> as clap::Subcommand>::augment_subcommands(C::augment_args(cmd))
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<C: clap::Args, X: clap::Subcommand> clap::CommandFactory for Cli<C, X> {
    fn command() -> clap::Command {
        <Self as clap::Args>::augment_args(clap::Command::new("service"))
    }

    fn command_for_update() -> clap::Command {
        Self::command()
    }
}

impl<C: clap::Args, X: clap::Subcommand> clap::FromArgMatches for Cli<C, X> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(match matches.subcommand() {
            Some(_) => Invocation::Own(<Command<C, X> as clap::FromArgMatches>::from_arg_matches(
                matches,
            )?),
            None => Invocation::Run(C::from_arg_matches(matches)?),
        }))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The subcommands of a service binary.
#[derive(Debug, clap::Subcommand)]
pub enum Command<C: clap::Args, X: clap::Subcommand> {
    /// Parse the settings exactly as a start would, print the effective values (secrets
    /// redacted) and exit: 0 if they are valid, 2 if not.
    CheckConfig(C),
    /// The binary's own commands.
    #[command(flatten)]
    Own(X),
}

/// No commands of a binary's own.
#[derive(Debug, clap::Subcommand)]
pub enum NoCommand {}

/// Settings that need more than their parse to be known valid: what a start would refuse
/// beyond clap (for example a connection URL's options), checked by `check-config` and before
/// a run alike.
pub trait Checked {
    /// Why these settings cannot start, if they cannot.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the command line asks for, once `check-config` has been answered.
#[derive(Debug)]
pub enum Invocation<C, X> {
    /// Run the service with these settings.
    Run(C),
    /// Run one of the binary's own commands.
    Own(X),
}

/// [`prepare`], then the binary's settings from the environment and its flags (a malformed
/// value ends the process with a message naming the setting, exit code 2). `check-config`
/// prints the settings (secrets redacted) and exits 0 instead of returning.
pub fn settings<C: clap::Parser + clap::Args + Checked + std::fmt::Debug>() -> C {
    prepare();
    match invocation_from::<C, NoCommand, _>(std::env::args_os()) {
        Invocation::Run(settings) => settings,
        Invocation::Own(never) => match never {},
    }
}

/// What `args` (the program name first) ask of a binary whose settings are `C` and whose own
/// commands are `X`; `check-config` and a malformed setting end the process (0 and 2). The
/// name, description and help of `C`'s command are the binary's.
pub fn invocation_from<C, X, I>(args: I) -> Invocation<C, X>
where
    C: clap::Parser + clap::Args + Checked + std::fmt::Debug,
    X: clap::Subcommand,
    I: IntoIterator<Item = std::ffi::OsString>,
{
    use clap::{CommandFactory, FromArgMatches};
    let own = C::command();
    let mut command = Cli::<C, X>::command().name(own.get_name().to_string());
    if let Some(about) = own.get_about() {
        command = command.about(about.clone());
    }
    command
        .try_get_matches_from_mut(args)
        .and_then(|matches| Cli::<C, X>::from_arg_matches(&matches))
        .unwrap_or_else(|e| e.format(&mut command).exit())
        .invocation()
}

impl<C: clap::Args + Checked + std::fmt::Debug, X: clap::Subcommand> Cli<C, X> {
    /// What it asks for; `check-config` prints the settings and exits 0 instead. Settings that
    /// fail their check end the process with exit code 2, whether run or checked.
    pub fn invocation(self) -> Invocation<C, X> {
        let refuse = |settings: &C| {
            if let Err(why) = settings.check() {
                eprintln!("error: {why}");
                std::process::exit(2);
            }
        };
        match self.0 {
            Invocation::Run(settings) => {
                refuse(&settings);
                Invocation::Run(settings)
            }
            Invocation::Own(Command::CheckConfig(settings)) => {
                refuse(&settings);
                print(format_args!("{settings:#?}"));
                std::process::exit(0);
            }
            Invocation::Own(Command::Own(own)) => Invocation::Own(own),
        }
    }
}

/// Prints `text` and a newline to standard output; a reader that went away (`check-config |
/// head`) ends nothing but the output.
pub fn print(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Binds the service's address; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// The whole life of a binary that only serves HTTP (the simulators): its settings, bound to
/// the address `addr` picks from them, served by `serve` until Ctrl-C or SIGTERM.
pub async fn serve_until_signal<C, F, Fut>(
    addr: fn(&C) -> SocketAddr,
    serve: F,
) -> std::io::Result<()>
where
    C: clap::Parser + clap::Args + Checked + std::fmt::Debug,
    F: FnOnce(C, TcpListener, tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let config: C = settings();
    let listener = bind(addr(&config)).await?;
    serve(config, listener, crate::shutdown::on_signal()?).await
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Settings {
        #[arg(long)]
        required: String,
    }

    impl Checked for Settings {}

    #[derive(Debug, clap::Subcommand)]
    enum Own {
        /// A command of the binary's own.
        Tidy(Cli<Settings>),
    }

    fn parse(args: &[&str]) -> Result<Cli<Settings, Own>, clap::Error> {
        let matches = Cli::<Settings, Own>::command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn the_settings_run_and_commands_need_only_their_own() {
        assert!(matches!(
            parse(&["bin", "--required", "x"]).unwrap().0,
            Invocation::Run(Settings { required }) if required == "x"
        ));
        assert!(
            parse(&["bin"]).is_err(),
            "running needs the required setting"
        );
        assert!(matches!(
            parse(&["bin", "check-config", "--required", "y"]).unwrap().0,
            Invocation::Own(Command::CheckConfig(Settings { required })) if required == "y"
        ));
        assert!(
            parse(&["bin", "check-config"]).is_err(),
            "checked as a start would"
        );
        let Invocation::Own(Command::Own(Own::Tidy(tidy))) =
            parse(&["bin", "tidy", "--required", "z"]).unwrap().0
        else {
            panic!("tidy is the binary's own command");
        };
        assert!(matches!(tidy.0, Invocation::Run(Settings { required }) if required == "z"));
        assert!(
            parse(&["bin", "--required", "x", "tidy"]).is_err(),
            "settings belong after their command"
        );
        assert!(parse(&["bin", "nonsense"]).is_err());
    }
}
