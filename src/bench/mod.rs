//! The benchmark harness behind `mmring bench` and `benches/`: mmring's
//! objects against real lock-based baselines in the same kind of mapping.
//! (Being written; see the bench helper.)

/// Arguments of `mmring bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the comparison and prints the table.
///
/// # Errors
///
/// Any failure to set up a benchmark.
pub fn run(_args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("not written yet".into())
}
