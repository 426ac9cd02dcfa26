//! The classic `multiprocessing` producer/consumer tutorial (hot dog
//! shops and customers), lock-free: three shop processes make hot dogs and
//! put them on one counter (a joinable `mpmc::Queue`), two customer
//! processes take them off and buy them. The parent waits for the shops to
//! finish, then `join()`s the queue (every hot dog bought, not just taken),
//! then one `close()` sends every customer home — no `None` sentinel per
//! customer.
//!
//! At the end it prints how many items each shop made and each customer
//! bought, and checks that every item was bought exactly once; it exits
//! with a failure if anything was lost or sold twice.
//!
//! ```text
//! cargo run --release --example hotdogs
//! ```
//!
//! This program starts itself again as each shop (`shop DIR INDEX`) and
//! each customer (`customer DIR INDEX`). The files live in a fresh directory
//! under `/dev/shm` (or the system temporary directory), removed at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use mmring::mpmc::{Queue, QueueOptions};
use mmring::{AtomicArray, Pod, PopError, Zeroable};

const SHOPS: usize = 3;
const CUSTOMERS: usize = 2;
const ITEMS_PER_SHOP: u64 = 100_000;
/// Slots on the counter: a shop waits when it is full.
const COUNTER_SLOTS: usize = 256;
/// Items a shop puts on the counter at once (one compare-and-swap).
const BATCH: usize = 16;
/// The longest the parent waits for anything; a crashed child cannot hang
/// the demo.
const PATIENCE: Duration = Duration::from_secs(120);

/// One item: which shop made it, its number there, and its price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Item {
    shop: u64,
    number: u64,
    price_cents: u64,
}
mmring::payload!(Item);

impl Item {
    fn new(shop: u64, number: u64) -> Self {
        Self {
            shop,
            number,
            price_cents: price(shop, number),
        }
    }
}

fn price(shop: u64, number: u64) -> u64 {
    100 + (shop * 7 + number * 13) % 900
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && (args[1] == "shop" || args[1] == "customer") {
        let Ok(index) = args[3].parse::<usize>() else {
            return ExitCode::FAILURE;
        };
        let dir = Path::new(&args[2]);
        let res = if args[1] == "shop" {
            shop(dir, index)
        } else {
            customer(dir, index)
        };
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{} {index}: {e}", args[1]);
                ExitCode::FAILURE
            }
        };
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The shared files.
struct Files {
    /// The counter the shops put items on.
    counter: Queue<Item>,
    /// Per shop: items made. Per customer: items bought, cents spent.
    made: AtomicArray<u64>,
    bought: AtomicArray<u64>,
    spent: AtomicArray<u64>,
    /// Per item (`shop * ITEMS_PER_SHOP + number`): times it was bought.
    sold: AtomicArray<u32>,
}

impl Files {
    fn create(dir: &Path) -> Result<Self, mmring::OpenError> {
        let joinable = QueueOptions::new().joinable(true);
        Ok(Self {
            counter: Queue::create_with(dir.join("counter"), COUNTER_SLOTS, &joinable)?,
            made: AtomicArray::create(dir.join("made"), SHOPS)?,
            bought: AtomicArray::create(dir.join("bought"), CUSTOMERS)?,
            spent: AtomicArray::create(dir.join("spent"), CUSTOMERS)?,
            sold: AtomicArray::create(dir.join("sold"), SHOPS * ITEMS_PER_SHOP as usize)?,
        })
    }

    fn open(dir: &Path) -> Result<Self, mmring::OpenError> {
        Ok(Self {
            counter: Queue::open(dir.join("counter"))?,
            made: AtomicArray::open(dir.join("made"))?,
            bought: AtomicArray::open(dir.join("bought"))?,
            spent: AtomicArray::open(dir.join("spent"))?,
            sold: AtomicArray::open(dir.join("sold"))?,
        })
    }
}

/// One shop process: makes its items and puts them on the counter, a few
/// at a time, waiting while the counter is full.
fn shop(dir: &Path, index: usize) -> Result<(), Box<dyn std::error::Error>> {
    let f = Files::open(dir)?;
    let me = index as u64;
    let mut next = 0;
    while next < ITEMS_PER_SHOP {
        let end = ITEMS_PER_SHOP.min(next + BATCH as u64);
        let items: Vec<Item> = (next..end).map(|n| Item::new(me, n)).collect();
        let put = match f.counter.push_slice(&items)? {
            // The counter is full: wait for room for the first one.
            0 => {
                f.counter
                    .push_timeout(items[0], PATIENCE)
                    .map_err(|e| e.to_string())?;
                1
            }
            n => n,
        };
        next += put as u64;
        f.made[index].fetch_add(put as u64);
    }
    Ok(())
}

/// One customer process: takes items off the counter until the shop closes,
/// buys each one (records it), and only then tells the counter it is done
/// with it (`task_done`).
fn customer(dir: &Path, index: usize) -> Result<(), Box<dyn std::error::Error>> {
    let f = Files::open(dir)?;
    loop {
        match f.counter.pop() {
            Ok(item) => {
                let id = item.shop * ITEMS_PER_SHOP + item.number;
                if item.shop >= SHOPS as u64
                    || item.number >= ITEMS_PER_SHOP
                    || item.price_cents != price(item.shop, item.number)
                {
                    return Err(format!("a damaged item: {item:?}").into());
                }
                f.sold[id as usize].fetch_add(1);
                f.bought[index].fetch_add(1);
                f.spent[index].fetch_add(item.price_cents);
                f.counter.task_done()?;
            }
            // Closed and empty: go home.
            Err(PopError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let dir = scratch_dir("shop")?;
    let f = Files::create(dir.path())?;
    let exe = std::env::current_exe()?;
    let start = |role: &str, i: usize| {
        Command::new(&exe)
            .arg(role)
            .arg(dir.path())
            .arg(i.to_string())
            .spawn()
    };
    let started = Instant::now();
    let customers = (0..CUSTOMERS)
        .map(|i| start("customer", i))
        .collect::<Result<Vec<Child>, _>>()?;
    let mut customers = Guard(customers);
    let shops = (0..SHOPS)
        .map(|i| start("shop", i))
        .collect::<Result<Vec<Child>, _>>()?;

    // Like `for p in producers: p.join()`, then `queue.join()`.
    wait_all("shops", Guard(shops))?;
    f.counter
        .join_timeout(PATIENCE)
        .map_err(|e| format!("join: {e}"))?;
    let bought_at_join: u64 = (0..CUSTOMERS).map(|c| f.bought[c].load()).sum();
    // One close sends every customer home.
    f.counter.close();
    wait_all("customers", Guard(std::mem::take(&mut customers.0)))?;
    let took = started.elapsed();

    let made: Vec<u64> = (0..SHOPS).map(|s| f.made[s].load()).collect();
    let bought: Vec<u64> = (0..CUSTOMERS).map(|c| f.bought[c].load()).collect();
    for (s, n) in made.iter().enumerate() {
        println!("shop {s} made {n} items");
    }
    for (c, n) in bought.iter().enumerate() {
        let cents = f.spent[c].load();
        println!(
            "customer {c} bought {n} items for {}.{:02}",
            cents / 100,
            cents % 100
        );
    }
    let total_made: u64 = made.iter().sum();
    let total_bought: u64 = bought.iter().sum();
    let counts = f.sold.snapshot();
    let lost = counts.iter().filter(|&&n| n == 0).count();
    let twice = counts.iter().filter(|&&n| n > 1).count();
    let revenue: u64 = (0..CUSTOMERS).map(|c| f.spent[c].load()).sum();
    let value: u64 = (0..SHOPS as u64)
        .flat_map(|s| (0..ITEMS_PER_SHOP).map(move |n| price(s, n)))
        .sum();
    let ok = made.iter().all(|&n| n == ITEMS_PER_SHOP)
        && total_bought == total_made
        && bought_at_join == total_made
        && lost == 0
        && twice == 0
        && revenue == value
        && f.counter.is_empty();
    if ok {
        println!(
            "ok: {total_made} items made, every one bought exactly once, in {:.2} s",
            took.as_secs_f64()
        );
    } else {
        println!(
            "FAILED: {total_made} made, {total_bought} bought ({bought_at_join} when join \
             returned), {lost} never bought, {twice} bought more than once, revenue {revenue} \
             of {value} cents"
        );
    }
    Ok(ok)
}

/// Child processes, killed and reaped if dropped before they are waited
/// for (an error on the way must not leave them running).
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for every child, at most [`PATIENCE`] in all (then kills the
/// rest); an error if any failed.
fn wait_all(what: &str, mut children: Guard) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + PATIENCE;
    let mut done = vec![false; children.0.len()];
    let mut failed = 0;
    while done.contains(&false) {
        for (child, done) in children.0.iter_mut().zip(&mut done) {
            if !*done && let Some(status) = child.try_wait()? {
                *done = true;
                failed += usize::from(!status.success());
            }
        }
        if Instant::now() > deadline {
            // Dropping the guard kills and reaps the rest.
            return Err(format!("{what} still running after {PATIENCE:?}: killed").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if failed > 0 {
        return Err(format!("{failed} of the {what} failed").into());
    }
    Ok(())
}

/// A fresh directory under `/dev/shm` (or the temporary directory), removed
/// when dropped.
fn scratch_dir(name: &str) -> std::io::Result<tempfile::TempDir> {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(&format!("mmring-{name}-"))
        .tempdir_in(base)
}
