//! Ten buyers race for the last ticket (then for the last three), each in its
//! own process, released together. Buying is one `fetch_update`: "if any are
//! left, take one", a compare-and-swap loop on the shared stock, so the
//! check and the take cannot be split by another buyer. Never oversold: the
//! stock never goes below zero and exactly as many buyers as there were
//! tickets get one.
//!
//! ```text
//! cargo run --release --example tickets
//! ```
//!
//! This program starts itself again as each buyer (`buyer DIR INDEX`). The
//! files live in a fresh directory under `/dev/shm` (or the system temporary
//! directory), removed at the end.

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use mmring::{AtomicArray, Counter};

const BUYERS: usize = 10;

mod common;

use common::{scratch_dir, wait_all};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "buyer" {
        return match args[3].parse() {
            Ok(index) => buyer(Path::new(&args[2]), index),
            Err(_) => ExitCode::FAILURE,
        };
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tickets: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The shared files of one sale.
struct Sale {
    /// Tickets left.
    stock: Counter,
    /// The lowest stock anyone ever saw (must stay at or above zero).
    lowest: Counter,
    /// Buyers at the start line.
    ready: Counter,
    /// Per buyer: the number of the ticket it got (the stock it found), 0
    /// if none; and its pid.
    got: AtomicArray<i64>,
    pids: AtomicArray<u32>,
}

impl Sale {
    fn create(dir: &Path, stock: i64) -> Result<Self, mmring::OpenError> {
        Ok(Self {
            stock: Counter::create(dir.join("stock"), stock)?,
            lowest: Counter::create(dir.join("lowest"), stock)?,
            ready: Counter::create(dir.join("ready"), 0)?,
            got: AtomicArray::create(dir.join("got"), BUYERS)?,
            pids: AtomicArray::create(dir.join("pids"), BUYERS)?,
        })
    }

    fn open(dir: &Path) -> Result<Self, mmring::OpenError> {
        Ok(Self {
            stock: Counter::open(dir.join("stock"))?,
            lowest: Counter::open(dir.join("lowest"))?,
            ready: Counter::open(dir.join("ready"))?,
            got: AtomicArray::open(dir.join("got"))?,
            pids: AtomicArray::open(dir.join("pids"))?,
        })
    }
}

/// One buyer process: waits until all buyers are at the line, then tries
/// once to take a ticket.
fn buyer(dir: &Path, index: usize) -> ExitCode {
    let Ok(sale) = Sale::open(dir) else {
        return ExitCode::FAILURE;
    };
    if index >= BUYERS {
        return ExitCode::FAILURE;
    }
    sale.pids[index].store(std::process::id());
    sale.ready.fetch_add(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sale.ready.load() < BUYERS as i64 {
        if Instant::now() > deadline {
            return ExitCode::FAILURE;
        }
        std::thread::yield_now();
    }
    match sale.stock.fetch_update(|n| (n > 0).then(|| n - 1)) {
        Ok(found) => {
            sale.lowest.fetch_min(found - 1);
            sale.got[index].store(found);
        }
        Err(left) => {
            sale.lowest.fetch_min(left);
        }
    }
    ExitCode::SUCCESS
}

/// One sale of `stock` tickets to the buyers; whether it went right.
fn sale(dir: &Path, stock: i64) -> Result<bool, Box<dyn std::error::Error>> {
    let sub = dir.join(format!("sale-of-{stock}"));
    std::fs::create_dir(&sub)?;
    let sale = Sale::create(&sub, stock)?;
    let exe = std::env::current_exe()?;
    let children = (0..BUYERS)
        .map(|i| {
            Command::new(&exe)
                .arg("buyer")
                .arg(&sub)
                .arg(i.to_string())
                .spawn()
        })
        .collect::<Result<Vec<Child>, _>>()?;
    wait_all(children)?;

    println!("{BUYERS} buyers, {stock} ticket(s) left:");
    let mut sold = Vec::new();
    for i in 0..BUYERS {
        let pid = sale.pids[i].load();
        match sale.got[i].load() {
            0 => println!("  buyer {i} (pid {pid:>7}): sold out"),
            n => {
                sold.push(n);
                println!("  buyer {i} (pid {pid:>7}): got ticket #{n}");
            }
        }
    }
    let winners = sold.len() as i64;
    sold.sort_unstable();
    // Each ticket number 1 ..= stock went to exactly one buyer.
    let each_once = sold == (1..=stock).collect::<Vec<_>>();
    let left = sale.stock.load();
    let lowest = sale.lowest.load();
    let ok = each_once && left == 0 && lowest == 0;
    if ok {
        println!("ok: {winners} sold, {left} left, stock never below zero\n");
    } else {
        println!(
            "FAILED: tickets {sold:?} sold of {stock}, {left} left, lowest stock seen {lowest}\n"
        );
    }
    Ok(ok)
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let dir = scratch_dir("tickets")?;
    let mut ok = true;
    for stock in [1, 3] {
        ok &= sale(dir.path(), stock)?;
    }
    Ok(ok)
}
