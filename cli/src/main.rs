//! The `mmring` command line: inspect shared-object files, list or remove
//! stale ones (both through the library's public [`mmring::inspect`] and
//! [`mmring::gc`]), and run the benchmark comparison against lock-based
//! baselines ([`mmring_cli::bench`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mmring",
    version,
    about = "Lock-free IPC over memory-mapped files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a file's descriptor, status and current values (reads only,
    /// without blocking anyone).
    Inspect {
        /// The file (a bare name means /dev/shm/NAME).
        path: PathBuf,
    },
    /// List the mmring files in a directory that no live process holds open
    /// (and temporary files left by creators that died), or remove them.
    ///
    /// A file is in use while a process holds it open (each one holds a
    /// shared flock on it); such a file is never removed. Other files in
    /// the directory are never touched.
    Gc {
        /// The directory to look in (not recursive), e.g. /dev/shm.
        dir: PathBuf,
        /// Remove the stale files listed.
        #[arg(long)]
        remove: bool,
    },
    /// Run a cross-process benchmark comparison (counter, cell, spsc, mpmc,
    /// map, or all of them) and print its table (or JSON with --json).
    Bench(mmring_cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { path } => match mmring::inspect::inspect(&path) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mmring inspect: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Gc { dir, remove } => match mmring::gc::gc(&dir, remove) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mmring gc: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bench(args) => match mmring_cli::bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mmring bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
