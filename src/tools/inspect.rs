//! What `mmring inspect` shows: a file's descriptor, status and current
//! values, read without blocking anyone (seqlock reads and atomic loads only).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{OpenError, SeqLockError};
use crate::layout::{Descriptor, Kind, STATE_CLOSED, STATE_OPEN, Status};
use crate::raw::atomic::Atomic;
use crate::raw::seqlock::{Patience, SeqLock};
use crate::region::Region;
use crate::sync::{AtomicU64, Ordering};

/// Most array elements a report lists.
pub const MAX_LISTED: usize = 32;

/// A file's descriptor, status and current contents.
#[derive(Debug)]
pub struct Report {
    /// The file.
    pub path: PathBuf,
    /// The validated descriptor.
    pub descriptor: Descriptor,
    /// The status block, or why it could not be read.
    pub status: Result<Status, SeqLockError>,
    /// The object's current contents.
    pub body: Body,
}

/// The contents of an object, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A counter's value.
    Counter(i64),
    /// An array: its element type's name (or `"unknown"`), length and up to
    /// [`MAX_LISTED`] leading values, formatted.
    Array {
        /// The element type's name.
        elem: &'static str,
        /// The number of elements.
        len: u64,
        /// The first values.
        values: Vec<String>,
    },
    /// A seqlock cell: its version and the value's bytes, or why they could
    /// not be read.
    Cell {
        /// The number of completed stores.
        version: u64,
        /// The value's bytes.
        bytes: Result<Vec<u8>, SeqLockError>,
    },
    /// A ring: its control words as read now.
    Ring {
        /// Number of slots.
        capacity: u64,
        /// Items in it (clamped to the capacity).
        len: u64,
        /// The control words.
        control: crate::raw::spsc::Snapshot,
        /// For a byte ring: its slots and the next piece to read.
        pieces: Option<Pieces>,
    },
    /// An MPMC queue: its control words as read now.
    Queue {
        /// Number of slots.
        capacity: u64,
        /// Items in it (claimed positions included, clamped).
        len: u64,
        /// The longest byte message, for byte queues.
        max_len: Option<u64>,
        /// The control words.
        control: crate::mpmc::Snapshot,
    },
    /// A map: occupancy and up to [`MAX_LISTED`] entries (keys shown as
    /// numbers or text, values as bytes), or why they could not be read.
    Map {
        /// Number of entries.
        capacity: u64,
        /// Live keys (the control word's statistic).
        len: u64,
        /// What the values are: fixed-size, or byte strings up to a
        /// maximum length.
        values: crate::raw::map::Value,
        /// The longest key.
        max_key_len: u64,
        /// Entries by state (live, removed, empty), counted now, or why
        /// they could not be.
        census: Result<crate::raw::map::Census, String>,
        /// The entries listed.
        entries: Result<Vec<(String, Vec<u8>)>, String>,
    },
    /// An event: whether it is set, and its sleepers.
    Event {
        /// The flag.
        set: bool,
        /// Processes asleep in `wait`.
        waiters: u32,
    },
    /// A semaphore: permits, bound, and who holds permits (pid, count).
    Semaphore {
        /// Permits available.
        available: u64,
        /// The bound (0: unbounded).
        max: u64,
        /// Holders: (pid, permits held).
        holders: Vec<(u32, u64)>,
        /// Permits given back after their holder died.
        recovered: u64,
    },
    /// A barrier: parties, the current generation and its arrivals.
    Barrier {
        /// Parties per round.
        parties: u32,
        /// The current generation.
        generation: u32,
        /// Parties arrived in it.
        arrived: u32,
    },
}

/// A byte ring's pieces (kind 7; see `raw::spsc::bytes`), as read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// Bytes a slot holds: the longest piece, and the longest message that
    /// takes one slot.
    pub max_len: u64,
    /// Words a slot takes (a header word, then the bytes).
    pub slot_words: u64,
    /// The header word of the next piece to read, as stored (`None` if no
    /// whole slot is queued).
    pub next_header: Option<u64>,
}

impl Pieces {
    /// The next piece as its header describes it (`None`: none queued, or
    /// a header no honest producer writes).
    pub fn next(&self) -> Option<crate::raw::message::Piece> {
        let max_len = usize::try_from(self.max_len).unwrap_or(usize::MAX);
        crate::raw::message::Piece::parse(self.next_header?, max_len)
    }
}

/// Opens any mmring file read-only in spirit (nothing is written, not even
/// the attached list) and reports what it holds.
///
/// # Errors
///
/// The [`OpenError`] that says why the file is not a valid mmring file.
pub fn inspect(path: impl AsRef<Path>) -> Result<Report, OpenError> {
    let region = Region::open_any(path)?;
    let desc = *region.descriptor();
    let patience = Patience::timeout(std::time::Duration::from_millis(500));
    let status = region.status(patience);
    let body = match desc.kind() {
        Some(Kind::Counter) => Body::Counter(region.body::<Atomic<i64>>(0, 1)[0].load()),
        Some(Kind::AtomicArray) => array_body(&region, &desc),
        Some(Kind::SeqCell) => {
            let lock = SeqLock::new(region.body::<AtomicU64>(
                0,
                crate::raw::seqlock::words_for_bytes(desc.slot_size as usize),
            ));
            let mut bytes = vec![0u8; desc.slot_size as usize];
            let read = lock.read_bytes(&mut bytes, patience);
            Body::Cell {
                version: lock.sequence() / 2,
                bytes: read.map(|_| bytes),
            }
        }
        Some(kind @ (Kind::Spsc | Kind::SpscBytes)) => {
            let control = region.body::<crate::raw::spsc::Control>(0, 1)[0].snapshot();
            let capacity = desc.capacity;
            let len = control.tail.wrapping_sub(control.head).min(capacity);
            let pieces = (kind == Kind::SpscBytes).then(|| {
                let max_len = u64::from(desc.elem_size);
                let slot_words = crate::raw::message::words(max_len);
                // Validated at open: a power of two of at least one slot's
                // words, all in the body after the control words.
                let words = region.body::<AtomicU64>(
                    crate::raw::spsc::SLOTS_OFFSET,
                    usize::try_from(capacity).unwrap_or(0),
                );
                let at = control.head & capacity.wrapping_sub(1);
                let next_header = (len >= slot_words)
                    .then(|| words.get(at as usize))
                    .flatten()
                    // Relaxed: a display snapshot.
                    .map(|w| w.load(Ordering::Relaxed));
                Pieces {
                    max_len,
                    slot_words,
                    next_header,
                }
            });
            Body::Ring {
                capacity,
                len,
                control,
                pieces,
            }
        }
        Some(kind @ (Kind::Mpmc | Kind::MpmcBytes)) => {
            let control = region.body::<crate::raw::mpmc::Control>(0, 1)[0].snapshot();
            let capacity = desc.capacity;
            let n = control.tail.wrapping_sub(control.head);
            Body::Queue {
                capacity,
                len: if (n as i64) < 0 { 0 } else { n.min(capacity) },
                max_len: (kind == Kind::MpmcBytes).then_some(u64::from(desc.elem_size)),
                control,
            }
        }
        Some(Kind::Map) => map_body(&region, &desc, patience),
        Some(Kind::Event) => {
            let e = &region.body::<crate::raw::event::EventWords>(0, 1)[0];
            Body::Event {
                set: e.is_set(),
                waiters: e.waiters(),
            }
        }
        Some(Kind::Semaphore) => {
            let w = &region.body::<crate::semaphore::SemaphoreWords>(0, 1)[0];
            Body::Semaphore {
                available: w.available(),
                max: w.max(),
                holders: w.holders(),
                recovered: w.recovered(),
            }
        }
        Some(Kind::Barrier) => {
            let w = &region.body::<crate::barrier::BarrierWords>(0, 1)[0];
            let (generation, arrived) = w.state();
            Body::Barrier {
                parties: w.parties(),
                generation,
                arrived,
            }
        }
        // `open_any` has refused a kind this build does not know already;
        // were it ever let through, it is refused here the same way.
        None => {
            return Err(OpenError::WrongKind {
                path: region.path().to_path_buf(),
                expected: "a kind this build knows".into(),
                found: format!("unknown kind {}", desc.kind),
            });
        }
    };
    Ok(Report {
        path: region.path().to_path_buf(),
        descriptor: desc,
        status,
        body,
    })
}

fn array_body(region: &Region, desc: &Descriptor) -> Body {
    let len = desc.capacity;
    let shown = usize::try_from(len).unwrap_or(usize::MAX).min(MAX_LISTED);
    fn list<T: crate::raw::atomic::Element>(r: &Region, n: usize) -> Vec<String> {
        r.body::<Atomic<T>>(0, n)
            .iter()
            .map(|a| a.load().to_string())
            .collect()
    }
    // The descriptor was validated: its name is the payload's stable name.
    let ti = desc.type_info();
    let (elem, values) = match (ti.name(), ti.size) {
        ("u8", 1) => ("u8", list::<u8>(region, shown)),
        ("i8", 1) => ("i8", list::<i8>(region, shown)),
        ("u16", 2) => ("u16", list::<u16>(region, shown)),
        ("i16", 2) => ("i16", list::<i16>(region, shown)),
        ("u32", 4) => ("u32", list::<u32>(region, shown)),
        ("i32", 4) => ("i32", list::<i32>(region, shown)),
        ("u64", 8) => ("u64", list::<u64>(region, shown)),
        ("i64", 8) => ("i64", list::<i64>(region, shown)),
        ("f32", 4) => ("f32", list::<f32>(region, shown)),
        ("f64", 8) => ("f64", list::<f64>(region, shown)),
        _ => unknown_words(region, ti.size, shown),
    };
    Body::Array { elem, len, values }
}

/// An array of a type `inspect` does not know: its elements in hex, each
/// read with an atomic load of its own width (the validated layout has
/// at least `shown` elements of `size` 1, 2, 4 or 8 bytes in the body).
fn unknown_words(region: &Region, size: u32, shown: usize) -> (&'static str, Vec<String>) {
    fn hex<T: crate::raw::atomic::Element + fmt::LowerHex>(r: &Region, n: usize) -> Vec<String> {
        let digits = 2 * size_of::<T>() + 2;
        r.body::<Atomic<T>>(0, n)
            .iter()
            .map(|a| format!("{:#0digits$x}", a.load()))
            .collect()
    }
    let values = match size {
        1 => hex::<u8>(region, shown),
        2 => hex::<u16>(region, shown),
        4 => hex::<u32>(region, shown),
        _ => hex::<u64>(region, shown),
    };
    ("unknown", values)
}

fn map_body(region: &Region, desc: &Descriptor, patience: Patience) -> Body {
    use crate::raw::map::{MAP_CONTROL_SIZE, MapControl, RawMap, Value, key_room};
    let ctl = &region.body::<MapControl>(0, 1)[0];
    let capacity = desc.capacity;
    let len = ctl.live();
    let (key_kind, _) = ctl.key_config();
    let values = Value::of(&desc.type_info());
    let stride = desc.slot_size as usize / 8;
    // The descriptor was validated: the entries have room for this key length.
    let max_key = key_room(stride, values);
    let words = region.body::<AtomicU64>(MAP_CONTROL_SIZE as usize, capacity as usize * stride);
    let raw = RawMap::new(ctl, words, capacity as usize, max_key, values, patience);
    let census = raw.census().map_err(|e| e.to_string());
    let mut entries = Vec::new();
    let listed = raw.for_each(|k, v| {
        if entries.len() < MAX_LISTED {
            let key = if key_kind == 1 {
                let mut b = [0u8; 8];
                b[..k.len().min(8)].copy_from_slice(&k[..k.len().min(8)]);
                u64::from_le_bytes(b).to_string()
            } else {
                format!("{:?}", String::from_utf8_lossy(k))
            };
            entries.push((key, v.to_vec()));
        }
    });
    Body::Map {
        capacity,
        len,
        values,
        max_key_len: max_key as u64,
        census,
        entries: listed.map(|()| entries).map_err(|e| e.to_string()),
    }
}

fn alive(pid: u32) -> &'static str {
    if crate::pid::is_alive(pid) {
        "alive"
    } else {
        "dead"
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.descriptor;
        let kind = d.kind().map_or("unknown", Kind::name);
        writeln!(f, "path:        {}", self.path.display())?;
        writeln!(f, "kind:        {kind}")?;
        writeln!(f, "version:     {}", d.version)?;
        writeln!(
            f,
            "size:        {} bytes (body {} at offset {})",
            d.total_size, d.body_size, d.body_offset
        )?;
        writeln!(f, "payload:     {}", d.type_info())?;
        writeln!(f, "capacity:    {}", d.capacity)?;
        writeln!(f, "slot size:   {}", d.slot_size)?;
        match &self.status {
            Ok(s) => {
                let state = match s.state {
                    STATE_OPEN => "open".to_string(),
                    STATE_CLOSED => "closed".to_string(),
                    other => format!("unknown ({other})"),
                };
                writeln!(f, "state:       {state}")?;
                writeln!(f, "label:       {:?}", s.label())?;
                writeln!(
                    f,
                    "creator:     pid {} ({})",
                    s.creator_pid,
                    alive(s.creator_pid)
                )?;
                let secs = s.created_unix_ns / 1_000_000_000;
                writeln!(f, "created:     {secs} s after the Unix epoch")?;
                let attached: Vec<String> = s
                    .attached_pids()
                    .map(|p| format!("{p} ({})", alive(p)))
                    .collect();
                let attached = if attached.is_empty() {
                    "none".into()
                } else {
                    attached.join(", ")
                };
                writeln!(f, "attached:    {attached}")?;
            }
            Err(e) => writeln!(f, "status:      unreadable: {e}")?,
        }
        match &self.body {
            Body::Counter(v) => writeln!(f, "value:       {v}"),
            Body::Array { elem, len, values } => {
                let more = if *len > values.len() as u64 {
                    ", ..."
                } else {
                    ""
                };
                writeln!(f, "elements:    {len} x {elem}")?;
                writeln!(f, "values:      [{}{more}]", values.join(", "))
            }
            Body::Cell { version, bytes } => {
                writeln!(f, "cell version: {version}")?;
                match bytes {
                    Ok(b) => {
                        let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                        writeln!(f, "value bytes: {}", hex.join(" "))
                    }
                    Err(e) => writeln!(f, "value:       unreadable: {e}"),
                }
            }
            Body::Ring {
                capacity,
                len,
                control: c,
                pieces,
            } => {
                let role = |pid: u32| {
                    if pid == 0 {
                        "none".to_string()
                    } else {
                        format!("pid {pid} ({})", alive(pid))
                    }
                };
                let mut closed = Vec::new();
                if c.closed & crate::raw::spsc::CLOSED_BY_PRODUCER != 0 {
                    closed.push("by the producer");
                }
                if c.closed & crate::raw::spsc::CLOSED_BY_CONSUMER != 0 {
                    closed.push("by the consumer");
                }
                let state = if closed.is_empty() {
                    "open".to_string()
                } else {
                    format!("closed {}", closed.join(" and "))
                };
                match pieces {
                    None => writeln!(f, "ring:        {len} of {capacity} slots used")?,
                    Some(p) => {
                        let k = p.slot_words.max(1);
                        writeln!(
                            f,
                            "ring:        {len} of {capacity} words used: {} of {} slots",
                            len / k,
                            capacity / k
                        )?;
                        writeln!(
                            f,
                            "pieces:      up to {} bytes a slot ({k} words); messages up to {} bytes, in pieces",
                            p.max_len,
                            crate::raw::spsc::bytes::MAX_MESSAGE_LEN
                        )?;
                        match (p.next_header, p.next()) {
                            (None, _) => writeln!(f, "next piece:  none queued")?,
                            (Some(_), Some(n)) => writeln!(
                                f,
                                "next piece:  {} bytes, {} of a message{}",
                                n.len,
                                if n.first { "first" } else { "continuing" },
                                if n.last {
                                    ", its last"
                                } else {
                                    ", more to follow"
                                }
                            )?,
                            (Some(h), None) => {
                                writeln!(f, "next piece:  corrupt header {h:#018x} (discarded)")?;
                            }
                        }
                    }
                }
                writeln!(f, "positions:   head {} tail {}", c.head, c.tail)?;
                writeln!(f, "ring state:  {state}")?;
                writeln!(f, "producer:    {}", role(c.producer))?;
                writeln!(f, "consumer:    {}", role(c.consumer))?;
                writeln!(
                    f,
                    "sleeping:    {} consumer(s), {} producer(s)",
                    c.data_waiters, c.space_waiters
                )
            }
            Body::Queue {
                capacity,
                len,
                max_len,
                control: c,
            } => {
                writeln!(f, "queue:       {len} of {capacity} slots used")?;
                let note = if c.bound == *capacity {
                    " (the capacity)"
                } else if !(1..=*capacity).contains(&c.bound) {
                    " (outside 1 to the capacity: opens refuse it)"
                } else {
                    ""
                };
                writeln!(f, "bound:       full at {} items{note}", c.bound)?;
                if let Some(max) = max_len {
                    writeln!(f, "messages:    up to {max} bytes")?;
                }
                writeln!(f, "positions:   head {} tail {}", c.head, c.tail)?;
                let state = if c.closed != 0 { "closed" } else { "open" };
                writeln!(f, "queue state: {state}")?;
                if c.flags & crate::mpmc::FLAG_JOINABLE != 0 {
                    writeln!(f, "unfinished:  {} task(s)", c.unfinished)?;
                }
                writeln!(
                    f,
                    "recovered:   {} slot(s) abandoned by dead processes",
                    c.recovered
                )?;
                writeln!(
                    f,
                    "sleeping:    {} consumer(s), {} producer(s), {} joiner(s)",
                    c.data_waiters, c.space_waiters, c.join_waiters
                )
            }
            Body::Map {
                capacity,
                len,
                values,
                max_key_len,
                census,
                entries,
            } => {
                writeln!(f, "map:         {len} live key(s) in {capacity} entries")?;
                match values {
                    crate::raw::map::Value::Fixed(n) => {
                        writeln!(f, "values:      fixed, {n} bytes")?;
                    }
                    crate::raw::map::Value::Bytes(max) => {
                        writeln!(f, "values:      byte strings, at most {max} bytes")?;
                    }
                }
                writeln!(f, "keys:        at most {max_key_len} bytes")?;
                match census {
                    Ok(c) => {
                        write!(
                            f,
                            "entries:     {} live, {} removed (free for any key), {} empty",
                            c.live, c.removed, c.empty
                        )?;
                        if c.other > 0 {
                            write!(f, ", {} in no known state", c.other)?;
                        }
                        writeln!(f)?;
                        writeln!(
                            f,
                            "probes:      reach at most {}; a lookup walks {:.2} entries for an \
                             absent key, {:.2} for a present one (mean)",
                            c.max_reach,
                            c.mean_absent_walk(*capacity as usize),
                            c.mean_present_walk()
                        )?;
                    }
                    Err(e) => writeln!(f, "entries:     uncounted: {e}")?,
                }
                match entries {
                    Ok(list) => {
                        for (k, v) in list {
                            let hex: Vec<String> = v.iter().map(|x| format!("{x:02x}")).collect();
                            writeln!(f, "  {k} = {}", hex.join(" "))?;
                        }
                        if (list.len() as u64) < *len {
                            writeln!(f, "  ...")?;
                        }
                        Ok(())
                    }
                    Err(e) => writeln!(f, "entries:     unreadable: {e}"),
                }
            }
            Body::Event { set, waiters } => {
                writeln!(f, "event:       {}", if *set { "set" } else { "clear" })?;
                writeln!(f, "sleeping:    {waiters} waiter(s)")
            }
            Body::Semaphore {
                available,
                max,
                holders,
                recovered,
            } => {
                let bound = if *max == 0 {
                    "unbounded".to_string()
                } else {
                    format!("bounded to {max}")
                };
                writeln!(f, "semaphore:   {available} permit(s) available ({bound})")?;
                for (pid, n) in holders {
                    writeln!(f, "  held by pid {pid} ({}): {n} permit(s)", alive(*pid))?;
                }
                writeln!(f, "recovered:   {recovered} permit(s) from dead holders")
            }
            Body::Barrier {
                parties,
                generation,
                arrived,
            } => writeln!(
                f,
                "barrier:     {arrived} of {parties} arrived in generation {generation}"
            ),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::AtomicArray;

    /// Every element width shows its type, its length and its values.
    #[test]
    fn arrays_of_every_width_show_type_count_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let bytes = AtomicArray::<u8>::create(d.join("b"), 10).unwrap();
        bytes[9].store(255);
        let shorts = AtomicArray::<i16>::create(d.join("h"), 3).unwrap();
        shorts[1].store(-2);
        let floats = AtomicArray::<f32>::create(d.join("f"), 2).unwrap();
        floats[0].store(1.5);
        let signed = AtomicArray::<i8>::create(d.join("sb"), 40).unwrap();
        signed[0].store(-128);
        let halves = AtomicArray::<u16>::create(d.join("uh"), 1).unwrap();
        halves[0].store(65535);

        let show = |name: &str| inspect(d.join(name)).unwrap();
        let r = show("b");
        assert_eq!(
            r.body,
            Body::Array {
                elem: "u8",
                len: 10,
                values: ["0", "0", "0", "0", "0", "0", "0", "0", "0", "255"]
                    .map(String::from)
                    .into()
            }
        );
        let text = r.to_string();
        assert!(text.contains("elements:    10 x u8"), "{text}");
        assert!(text.contains("payload:     u8 (1 B, align 1)"), "{text}");
        let r = show("h").to_string();
        assert!(r.contains("elements:    3 x i16"), "{r}");
        assert!(r.contains("values:      [0, -2, 0]"), "{r}");
        let r = show("f").to_string();
        assert!(r.contains("elements:    2 x f32"), "{r}");
        assert!(r.contains("values:      [1.5, 0]"), "{r}");
        let r = show("sb").to_string();
        assert!(r.contains("elements:    40 x i8"), "{r}");
        assert!(r.contains("values:      [-128, 0, "), "{r}");
        assert!(r.contains(", ...]"), "40 elements, 32 listed: {r}");
        let r = show("uh").to_string();
        assert!(r.contains("elements:    1 x u16"), "{r}");
        assert!(r.contains("values:      [65535]"), "{r}");
    }
}
