//! `chaos`: the whole pipeline as separate processes under a seeded schedule of faults, then a
//! check of every invariant. `--seed` and `--duration` reproduce a run; a failing run prints
//! its seed and the first invariant it broke, and exits 1.

use std::{path::PathBuf, time::Duration};

use bench::chaos::{self, Settings};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "chaos",
    about = "The pipeline under a seeded schedule of faults"
)]
struct Args {
    /// The fault schedule's seed (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// POSTs per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// About how many seconds between faults.
    #[arg(long, default_value_t = 13)]
    fault_every: u64,
    /// Seconds everything may take to settle after the load.
    #[arg(long, default_value_t = 180)]
    settle_within: u64,
    /// Where the service binaries are (default: beside this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("no directory beside this binary"))?,
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let settings = Settings {
        seed,
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
        fault_every: Duration::from_secs(args.fault_every),
        settle_within: Duration::from_secs(args.settle_within),
        bin_dir,
    };
    println!(
        "chaos: seed {seed}, {} s at {} POST/s",
        args.duration, args.rate
    );
    let (report, violation) = chaos::run(&settings).await?;
    println!("{}", serde_json::to_string(&report)?);
    match violation {
        None => {
            println!("chaos: seed {seed} held every invariant");
            Ok(())
        }
        Some(v) => {
            eprintln!(
                "chaos: seed {seed} broke \"{}\": {}; logs in {}",
                v.invariant,
                v.detail,
                report.logs.display()
            );
            std::process::exit(1);
        }
    }
}
