//! Opening and creating files: every bad input gets its own `OpenError`
//! variant with a lowercase message naming what was expected and found;
//! file modes, atomic creation (no temporary file left behind), removal,
//! persistence on a real file system, `inspect`, and a seeded mutation loop
//! showing that no file content makes an open panic.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Children, Rng, Sample};
use mmring::OpenError;
use mmring::inspect::{Body, inspect};
use mmring::layout::{Descriptor, HEADER_SIZE, Kind, MAGIC, STATUS_WORDS, VERSION};
use mmring::map::{Map, MapOptions};
use mmring::mpmc::{ByteQueue, Queue, QueueOptions};
use mmring::{AtomicArray, Barrier, Counter, CreateOptions, Event, Semaphore, SeqCell, TypeInfo};

/// Size of a counter file: the header page and one 64-byte body.
const COUNTER_FILE: u64 = HEADER_SIZE + 64;

/// Checks `e`'s `Display`: `"{path}: message"`, the message starting with a
/// lowercase letter and containing every one of `needles`. Returns it.
#[track_caller]
fn check_message(e: &OpenError, path: &Path, needles: &[&str]) -> String {
    assert_eq!(e.path(), path, "path of {e:?}");
    let text = e.to_string();
    let prefix = format!("{}: ", path.display());
    let msg = text
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{text:?} does not start with {prefix:?}"));
    let first = msg.chars().next().expect("a message after the path");
    assert!(first.is_lowercase(), "message not lowercase: {msg:?}");
    for needle in needles {
        assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
    }
    // The error is a std::error::Error (usable with `?` into Box<dyn Error>).
    let _: &dyn std::error::Error = e;
    text
}

/// The file names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn read_desc(path: &Path) -> Descriptor {
    let bytes = std::fs::read(path).unwrap();
    bytemuck::pod_read_unaligned(&bytes[..size_of::<Descriptor>()])
}

/// Writes `desc` over the file's descriptor, with its checksum recomputed
/// (`fix`) or left as it is.
fn write_desc(path: &Path, mut desc: Descriptor, fix: bool) {
    if fix {
        desc.checksum = desc.compute_checksum();
    }
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytemuck::bytes_of(&desc), 0).unwrap();
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// A counter file at `path` holding `value`, with no handle left open.
fn counter_file(path: &Path, value: i64) {
    drop(Counter::create(path, value).unwrap());
}

#[test]
fn random_bytes_are_not_an_mmring_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("random");
    let mut bytes = Rng::new(1).bytes(8192);
    bytes[0] = b'X';
    std::fs::write(&p, &bytes).unwrap();
    match Counter::open(&p) {
        Err(e @ OpenError::NotMmring { .. }) => {
            check_message(&e, &p, &["not an mmring file", "expected", "found"]);
            let OpenError::NotMmring {
                expected, found, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(expected, MAGIC);
            assert_eq!(found, bytes[..8]);
        }
        other => panic!("expected NotMmring, got {other:?}"),
    }
    assert!(matches!(inspect(&p), Err(OpenError::NotMmring { .. })));
    assert!(matches!(
        SeqCell::<u64>::open(&p),
        Err(OpenError::NotMmring { .. })
    ));

    // Shorter than the magic, even if what is there matches it.
    std::fs::write(&p, &MAGIC[..3]).unwrap();
    match AtomicArray::<u32>::open(&p) {
        Err(OpenError::NotMmring { found, .. }) => assert_eq!(found, MAGIC[..3]),
        other => panic!("expected NotMmring, got {other:?}"),
    }
    // The file was not touched.
    assert_eq!(std::fs::read(&p).unwrap(), MAGIC[..3]);
}

#[test]
fn an_empty_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty");
    std::fs::write(&p, b"").unwrap();
    match Counter::open(&p) {
        Err(
            e @ OpenError::Empty {
                expected: HEADER_SIZE,
                ..
            },
        ) => {
            check_message(&e, &p, &["empty", "expected", "4096"]);
        }
        other => panic!("expected Empty, got {other:?}"),
    }
    assert!(matches!(inspect(&p), Err(OpenError::Empty { .. })));
    // open_or_create does not overwrite something that is not its object.
    assert!(matches!(
        Counter::open_or_create(&p, 1),
        Err(OpenError::Empty { .. })
    ));
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
}

#[test]
fn a_truncated_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    set_len(&p, COUNTER_FILE - 32);
    match Counter::open(&p) {
        Err(
            e @ OpenError::Truncated {
                expected: COUNTER_FILE,
                found,
                ..
            },
        ) => {
            assert_eq!(found, COUNTER_FILE - 32);
            check_message(&e, &p, &["truncated", "expected 4160", "found 4128"]);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // Shorter than the header page itself.
    set_len(&p, 100);
    match Counter::open(&p) {
        Err(
            e @ OpenError::Truncated {
                expected: HEADER_SIZE,
                found: 100,
                ..
            },
        ) => {
            check_message(&e, &p, &["expected 4096", "found 100"]);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(matches!(inspect(&p), Err(OpenError::Truncated { .. })));
}

#[test]
fn an_oversized_file_is_oversized() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    set_len(&p, COUNTER_FILE + 4096);
    match Counter::open(&p) {
        Err(
            e @ OpenError::Oversized {
                expected: COUNTER_FILE,
                ..
            },
        ) => {
            check_message(&e, &p, &["oversized", "expected 4160", "found 8256"]);
        }
        other => panic!("expected Oversized, got {other:?}"),
    }
}

/// The version field (offset 8) is checked before the checksum, so a file
/// from a newer format says so whether or not its checksum matches.
#[test]
fn a_newer_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    let good = read_desc(&p);
    assert_eq!(good.version, VERSION);
    for fix_checksum in [false, true] {
        let mut d = good;
        d.version = VERSION + 1;
        write_desc(&p, d, fix_checksum);
        match Counter::open(&p) {
            Err(
                e @ OpenError::UnsupportedVersion {
                    expected: VERSION,
                    found,
                    ..
                },
            ) => {
                assert_eq!(found, VERSION + 1);
                let (expected, found) = (
                    format!("expected {VERSION}"),
                    format!("found {}", VERSION + 1),
                );
                check_message(&e, &p, &["version", &expected, &found]);
            }
            other => panic!(
                "expected UnsupportedVersion (checksum fixed: {fix_checksum}), got {other:?}"
            ),
        }
    }
    // Patched back, it opens again with its value.
    write_desc(&p, good, false);
    assert_eq!(Counter::open(&p).unwrap().load(), 5);
}

#[test]
fn a_corrupt_descriptor_is_a_corrupt_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    let good = read_desc(&p);

    // One byte flipped, checksum stale: the checksum catches it, wherever it is.
    for offset in [
        12u64, 16, 24, 40, 48, 56, 64, 72, 100, 120, 127, 128, 140, 191, 200, 248,
    ] {
        write_desc(&p, good, false);
        let original = std::fs::read(&p).unwrap()[offset as usize];
        patch(&p, offset, &[original ^ 0x10]);
        match Counter::open(&p) {
            Err(e @ OpenError::CorruptHeader { .. }) => {
                check_message(&e, &p, &["corrupt header", "checksum", "expected", "found"]);
            }
            other => panic!("byte {offset} flipped: expected CorruptHeader, got {other:?}"),
        }
        assert!(matches!(inspect(&p), Err(OpenError::CorruptHeader { .. })));
    }

    // Impossible fields with a valid checksum: still refused, each saying what.
    type Change = fn(&mut Descriptor);
    let cases: [(&str, Change, &str); 9] = [
        ("body offset", |d| d.body_offset = 8192, "body offset"),
        ("flags", |d| d.flags = 1, "reserved"),
        ("reserved", |d| d.reserved[4] = 7, "reserved"),
        ("reserved0", |d| d.reserved0 = 1, "reserved"),
        ("reserved_tail", |d| d.reserved_tail[6] = 1, "reserved"),
        ("name length", |d| d.name_len = 65, "payload name"),
        ("slot size", |d| d.slot_size = 16, "slot/body size"),
        ("total size", |d| d.total_size += 64, "total size"),
        ("name length 0", |d| d.name_len = 0, "is empty"),
    ];
    for (name, change, needle) in cases {
        let mut d = good;
        change(&mut d);
        write_desc(&p, d, true);
        match Counter::open(&p) {
            Err(e @ OpenError::CorruptHeader { .. }) => {
                check_message(&e, &p, &["corrupt header", needle]);
            }
            other => panic!("{name}: expected CorruptHeader, got {other:?}"),
        }
    }
    // An element size no array can hold.
    let q = dir.path().join("array");
    drop(AtomicArray::<u32>::create(&q, 4).unwrap());
    let mut d = read_desc(&q);
    d.elem_size = 3;
    write_desc(&q, d, true);
    match AtomicArray::<u32>::open(&q) {
        Err(e @ OpenError::CorruptHeader { .. }) => {
            check_message(&e, &q, &["payload type", "found size 3"]);
        }
        other => panic!("elem size 3: expected CorruptHeader, got {other:?}"),
    }
    // A capacity a counter cannot have.
    let mut d = good;
    d.capacity = 2;
    write_desc(&p, d, true);
    match Counter::open(&p) {
        Err(e @ OpenError::InvalidCapacity { found: 2, .. }) => {
            check_message(&e, &p, &["invalid capacity 2", "exactly 1"]);
        }
        other => panic!("capacity 2: expected InvalidCapacity, got {other:?}"),
    }
    write_desc(&p, good, false);
    assert_eq!(Counter::open(&p).unwrap().load(), 5);
}

#[test]
fn another_payload_type_is_the_wrong_payload() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("array");
    drop(AtomicArray::<u32>::create(&p, 8).unwrap());
    match AtomicArray::<u64>::open(&p) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &p,
                &["wrong payload type (expected u64 (8 B, align 8), found u32 (4 B, align 4))"],
            );
            let OpenError::WrongPayload {
                expected, found, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(*expected, TypeInfo::of::<u64>());
            assert_eq!(*found, TypeInfo::of::<u32>());
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
    // Same size and alignment, another type: the name tells them apart.
    match AtomicArray::<i32>::open(&p) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(&e, &p, &["expected i32 (4 B, align 4), found u32"]);
        }
        other => panic!("expected WrongPayload for i32, got {other:?}"),
    }
    assert!(matches!(
        AtomicArray::<f64>::open(&p),
        Err(OpenError::WrongPayload { .. })
    ));
    assert!(AtomicArray::<u32>::open(&p).is_ok());

    let q = dir.path().join("cell");
    drop(SeqCell::create(&q, Sample::splat(1)).unwrap());
    assert_eq!(size_of::<[u64; 16]>(), size_of::<Sample>());
    match SeqCell::<[u64; 16]>::open(&q) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &q,
                &[
                    "wrong payload type (expected [u64; 16] (128 B, align 8), found Sample (128 B, align 8))",
                ],
            );
        }
        other => panic!("expected WrongPayload for the cell, got {other:?}"),
    }
    assert!(matches!(
        SeqCell::<u64>::open(&q),
        Err(OpenError::WrongPayload { .. })
    ));
    assert!(matches!(
        SeqCell::<u64>::open_or_create(&q, 0),
        Err(OpenError::WrongPayload { .. })
    ));
}

/// A version-3 file (payload identified by a hash of the Rust type name) is
/// refused as such: its bytes 128..256 held no name. So is a version-4 file
/// (whose maps never reused a removed entry: a build of either version
/// would mis-handle the other's tombstones).
#[test]
fn files_of_older_versions_are_unsupported() {
    assert_eq!(VERSION, 5);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    for old in [3u32, 4] {
        patch(&p, 8, &old.to_ne_bytes());
        match Counter::open(&p) {
            Err(
                e @ OpenError::UnsupportedVersion {
                    expected: 5, found, ..
                },
            ) if found == old => {
                check_message(
                    &e,
                    &p,
                    &[&format!(
                        "unsupported format version (expected 5, found {old})"
                    )],
                );
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        assert!(matches!(
            inspect(&p),
            Err(OpenError::UnsupportedVersion { found, .. }) if found == old
        ));
    }
}

/// The point of stable names: the message names both sides by the names
/// another program (or language) would compute.
#[test]
fn a_wrong_payload_error_names_both_types() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cell");
    drop(SeqCell::create(&p, [7u8; 16]).unwrap());
    match SeqCell::<u64>::open(&p) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            let text = check_message(&e, &p, &["wrong payload type"]);
            assert!(
                text.ends_with(
                    "wrong payload type (expected u64 (8 B, align 8), found [u8; 16] (16 B, align 1))"
                ),
                "{text}"
            );
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
    // The other way round, through an SPSC ring.
    let q = dir.path().join("ring");
    drop(mmring::spsc::Producer::<u64>::create(&q, 4).unwrap());
    match mmring::spsc::Consumer::<[u8; 16]>::open(&q) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &q,
                &["(expected [u8; 16] (16 B, align 1), found u64 (8 B, align 8))"],
            );
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
    // Same size and alignment, another name: refused too.
    match SeqCell::<[i8; 16]>::open(&p) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &p,
                &["expected [i8; 16] (16 B, align 1), found [u8; 16]"],
            );
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
    // A map's identity covers its key type and its value type.
    let m = dir.path().join("map");
    drop(mmring::map::Map::<u64, [u32; 2]>::create(&m, 8).unwrap());
    match mmring::map::Map::<str, [u32; 2]>::open(&m) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &m,
                &[
                    "(expected map<bytes,[u32; 2]> (8 B, align 4), found map<u64,[u32; 2]> (8 B, align 4))",
                ],
            );
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
    assert!(mmring::map::Map::<u64, [u32; 2]>::open(&m).is_ok());
}

mod first_home {
    /// A user type, as one program declares it.
    #[derive(Clone, Copy, Debug, PartialEq, mmring::Pod, mmring::Zeroable)]
    #[repr(C)]
    pub struct Quote {
        pub bid: f64,
        pub ask: f64,
    }
    mmring::payload!(Quote);
}

mod moved_elsewhere {
    /// The same type after a move to another module (or another crate, or
    /// another compiler): the same name, size and alignment.
    #[derive(Clone, Copy, Debug, PartialEq, mmring::Pod, mmring::Zeroable)]
    #[repr(C)]
    pub struct Quote {
        pub bid: f64,
        pub ask: f64,
    }
    mmring::payload!(Quote);

    /// A type of the same shape under another declared name.
    #[derive(Clone, Copy, Debug, PartialEq, mmring::Pod, mmring::Zeroable)]
    #[repr(C)]
    pub struct Spread {
        pub bid: f64,
        pub ask: f64,
    }
    mmring::payload!(Spread = "market.Spread");
}

#[test]
fn a_user_type_moved_to_another_module_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("quote");
    let q = first_home::Quote { bid: 1.5, ask: 2.5 };
    drop(SeqCell::create(&p, q).unwrap());
    let cell = SeqCell::<moved_elsewhere::Quote>::open(&p).unwrap();
    assert_eq!(
        cell.load().unwrap(),
        moved_elsewhere::Quote { bid: 1.5, ask: 2.5 }
    );
    let report = inspect(&p).unwrap();
    assert_eq!(report.descriptor.type_info().name(), "Quote");
    assert!(
        report
            .to_string()
            .contains("payload:     Quote (16 B, align 8)"),
        "{report}"
    );
    match SeqCell::<moved_elsewhere::Spread>::open(&p) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &p,
                &["(expected market.Spread (16 B, align 8), found Quote (16 B, align 8))"],
            );
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
}

/// A payload whose name no file can hold is refused at create (and at
/// open), with nothing left behind.
#[test]
fn a_payload_name_too_long_is_refused() {
    #[derive(Clone, Copy, mmring::Pod, mmring::Zeroable)]
    #[repr(C)]
    struct Long(u64);
    mmring::payload!(Long = "a.rather.long.namespace.for.one.small.type.LongOne");
    // 50 bytes alone: fine. In an array of arrays, `[[{name}; 2]; 3]`: 60
    // bytes, fine; three deep: 65 bytes, one too many.
    assert_eq!(TypeInfo::of::<Long>().name_len(), 50);
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok");
    assert!(SeqCell::create(&ok, [[Long(1); 2]; 3]).is_ok());
    let p = dir.path().join("long");
    match SeqCell::create(&p, [[[Long(1); 2]; 3]; 1]) {
        Err(
            e @ OpenError::InvalidPayloadName {
                error: mmring::pod::NameError::TooLong { len: 65, max: 64 },
                ..
            },
        ) => {
            check_message(
                &e,
                &p,
                &["invalid payload type name", "65 bytes long (at most 64)"],
            );
        }
        other => panic!("expected InvalidPayloadName, got {other:?}"),
    }
    assert_eq!(names(dir.path()), ["ok"], "nothing left behind");
    assert!(matches!(
        SeqCell::<[[[Long; 2]; 3]; 1]>::open(&ok),
        Err(OpenError::InvalidPayloadName { .. })
    ));
}

/// The name bytes are untrusted: not UTF-8, no zero after them, a length
/// past the field, a NUL inside. Each is a typed `CorruptHeader` naming the
/// problem (with a valid checksum, so the checksum does not catch it first),
/// never a panic.
#[test]
fn a_corrupt_payload_name_is_a_corrupt_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    let good = read_desc(&p);
    assert_eq!(good.name_len, 3);
    assert_eq!(&good.name[..4], b"i64\0");
    type Change = fn(&mut Descriptor);
    let cases: [(&str, Change, &str); 6] = [
        ("not UTF-8", |d| d.name[1] = 0xff, "is not UTF-8"),
        (
            "no terminator",
            |d| d.name = [b'x'; 64],
            "non-zero bytes after its 3 bytes",
        ),
        (
            "length past the field",
            |d| d.name_len = 65,
            "65 bytes long (at most 64)",
        ),
        (
            "huge length",
            |d| d.name_len = u32::MAX,
            "bytes long (at most 64)",
        ),
        ("NUL inside", |d| d.name_len = 4, "contains a NUL byte"),
        ("empty", |d| d.name_len = 0, "is empty"),
    ];
    for (what, change, needle) in cases {
        let mut d = good;
        change(&mut d);
        write_desc(&p, d, true);
        for res in [Counter::open(&p).map(drop), inspect(&p).map(drop)] {
            match res {
                Err(e @ OpenError::CorruptHeader { .. }) => {
                    check_message(&e, &p, &["corrupt header", "payload name", needle]);
                }
                other => panic!("{what}: expected CorruptHeader, got {other:?}"),
            }
        }
    }
    // A valid name of another type, checksum fixed: the wrong payload.
    let mut d = good;
    d.name[..3].copy_from_slice(b"u64");
    write_desc(&p, d, true);
    match Counter::open(&p) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(
                &e,
                &p,
                &["(expected i64 (8 B, align 8), found u64 (8 B, align 8))"],
            );
        }
        other => panic!("expected WrongPayload, got {other:?}"),
    }
    write_desc(&p, good, false);
    assert_eq!(Counter::open(&p).unwrap().load(), 5);
}

#[test]
fn another_kind_is_the_wrong_kind() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    match SeqCell::<i64>::open(&p) {
        Err(e @ OpenError::WrongKind { .. }) => {
            check_message(
                &e,
                &p,
                &[
                    "wrong object kind",
                    "expected seqlock cell",
                    "found counter",
                ],
            );
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
    match AtomicArray::<i64>::open(&p) {
        Err(e @ OpenError::WrongKind { .. }) => {
            check_message(&e, &p, &["expected atomic array", "found counter"]);
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
    assert!(matches!(
        AtomicArray::<i64>::open_or_create(&p, 1),
        Err(OpenError::WrongKind { .. })
    ));
    let q = dir.path().join("cell");
    drop(SeqCell::create(&q, 0i64).unwrap());
    assert!(matches!(
        Counter::open(&q),
        Err(OpenError::WrongKind { .. })
    ));

    // A kind number this build does not know (with a valid checksum).
    let mut d = read_desc(&p);
    d.kind = 77;
    write_desc(&p, d, true);
    match Counter::open(&p) {
        Err(e @ OpenError::WrongKind { .. }) => {
            check_message(&e, &p, &["wrong object kind", "unknown kind 77"]);
        }
        other => panic!("expected WrongKind for kind 77, got {other:?}"),
    }
    assert!(matches!(inspect(&p), Err(OpenError::WrongKind { .. })));
}

/// Kind 100 was a scratch file of raw bytes that earlier builds made for
/// their benchmark baselines. It is no kind any more: such a file, header
/// and all as those builds wrote it, is refused like any unknown kind, by
/// every open and by `inspect`.
#[test]
fn an_old_scratch_file_is_an_unknown_kind() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scratch");
    counter_file(&p, 0);
    let mut d = read_desc(&p);
    d.kind = 100;
    d.elem_size = 0;
    d.elem_align = 0;
    set_name(&mut d, b"none", 4);
    d.capacity = 64;
    d.slot_size = 1;
    d.body_size = 64;
    d.total_size = HEADER_SIZE + 64;
    write_desc(&p, d, true);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), d.total_size);
    assert_eq!(d.kind(), None);
    match Counter::open(&p) {
        Err(e @ OpenError::WrongKind { .. }) => {
            check_message(&e, &p, &["wrong object kind", "unknown kind 100"]);
        }
        other => panic!("expected WrongKind for kind 100, got {other:?}"),
    }
    match inspect(&p) {
        Err(e @ OpenError::WrongKind { .. }) => {
            check_message(&e, &p, &["a kind this build knows", "unknown kind 100"]);
        }
        other => panic!("expected WrongKind from inspect, got {other:?}"),
    }
}

#[test]
fn symbolic_links_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    counter_file(&real, 5);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    match Counter::open(&link) {
        Err(e @ OpenError::Symlink { .. }) => {
            check_message(&e, &link, &["symbolic link"]);
        }
        other => panic!("expected Symlink, got {other:?}"),
    }
    assert!(matches!(inspect(&link), Err(OpenError::Symlink { .. })));
    assert!(matches!(
        Counter::open_or_create(&link, 9),
        Err(OpenError::Symlink { .. })
    ));
    assert!(matches!(
        Counter::create(&link, 9),
        Err(OpenError::Symlink { .. })
    ));
    // A dangling link: still a link, never created through.
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    assert!(matches!(
        Counter::open(&dangling),
        Err(OpenError::Symlink { .. })
    ));
    assert!(matches!(
        Counter::create(&dangling, 1),
        Err(OpenError::Symlink { .. })
    ));
    assert!(matches!(
        Counter::open_or_create(&dangling, 1),
        Err(OpenError::Symlink { .. })
    ));
    assert!(!dir.path().join("nowhere").exists());
    // The target was not touched.
    assert_eq!(Counter::open(&real).unwrap().load(), 5);
    assert_eq!(names(dir.path()), ["dangling", "link", "real"]);
}

#[test]
fn a_directory_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    match Counter::open(&sub) {
        Err(e @ OpenError::Directory { .. }) => {
            check_message(&e, &sub, &["is a directory"]);
        }
        other => panic!("expected Directory, got {other:?}"),
    }
    assert!(matches!(
        Counter::create(&sub, 1),
        Err(OpenError::Directory { .. })
    ));
    assert!(matches!(inspect(&sub), Err(OpenError::Directory { .. })));
    assert_eq!(names(dir.path()), ["sub"]);
    assert!(names(&sub).is_empty());
}

#[test]
fn a_fifo_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call;
    // mkfifo only creates a file system node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    match Counter::open(&fifo) {
        Err(e @ OpenError::NotRegularFile { .. }) => {
            check_message(&e, &fifo, &["not a regular file"]);
        }
        other => panic!("expected NotRegularFile, got {other:?}"),
    }
    assert!(matches!(
        inspect(&fifo),
        Err(OpenError::NotRegularFile { .. })
    ));
}

#[test]
fn create_on_an_existing_path_is_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    let first = Counter::create(&p, 5).unwrap();
    match Counter::create(&p, 6) {
        Err(e @ OpenError::AlreadyExists { .. }) => {
            check_message(&e, &p, &["already exists"]);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(matches!(
        SeqCell::create(&p, 1u64),
        Err(OpenError::AlreadyExists { .. })
    ));
    assert!(matches!(
        AtomicArray::<u32>::create(&p, 3),
        Err(OpenError::AlreadyExists { .. })
    ));
    assert_eq!(first.load(), 5, "the existing object was not touched");
    // Not even a foreign file is overwritten.
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, b"keep me").unwrap();
    assert!(matches!(
        Counter::create(&other, 1),
        Err(OpenError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&other).unwrap(), b"keep me");
    // And no temporary file of the failed creates is left.
    assert_eq!(names(dir.path()), ["count", "notes.txt"]);
}

#[test]
fn a_missing_path_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("missing");
    match Counter::open(&p) {
        Err(e @ OpenError::NotFound { .. }) => {
            check_message(&e, &p, &["no such file"]);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        SeqCell::<u32>::open(&p),
        Err(OpenError::NotFound { .. })
    ));
    assert!(matches!(inspect(&p), Err(OpenError::NotFound { .. })));
    // Creating in a directory that does not exist names the directory.
    let nodir = dir.path().join("nodir");
    match Counter::create(nodir.join("x"), 1) {
        Err(e @ OpenError::NotFound { .. }) => {
            check_message(&e, &nodir, &["no such file"]);
        }
        other => panic!("expected NotFound for a missing directory, got {other:?}"),
    }
    assert!(names(dir.path()).is_empty());
}

#[test]
fn zero_or_absurd_capacity_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("array");
    match AtomicArray::<u64>::create(&p, 0) {
        Err(e @ OpenError::InvalidCapacity { found: 0, .. }) => {
            check_message(&e, &p, &["invalid capacity 0", "between 1 and"]);
        }
        other => panic!("expected InvalidCapacity, got {other:?}"),
    }
    match AtomicArray::<u64>::create(&p, 1 << 50) {
        Err(e @ OpenError::InvalidCapacity { .. }) => {
            check_message(&e, &p, &["invalid capacity 1125899906842624"]);
        }
        other => panic!("expected InvalidCapacity for 2^50, got {other:?}"),
    }
    assert!(matches!(
        AtomicArray::<u32>::open_or_create(&p, 0),
        Err(OpenError::InvalidCapacity { found: 0, .. })
    ));
    assert!(
        names(dir.path()).is_empty(),
        "a failed create left {:?}",
        names(dir.path())
    );
    // An existing array of another length.
    let a = AtomicArray::<u32>::create(&p, 4).unwrap();
    a[3].store(9);
    match AtomicArray::<u32>::open_or_create(&p, 5) {
        Err(e @ OpenError::InvalidCapacity { found: 4, .. }) => {
            check_message(&e, &p, &["invalid capacity 4", "length 5"]);
        }
        other => panic!("expected InvalidCapacity for another length, got {other:?}"),
    }
    assert_eq!(
        AtomicArray::<u32>::open_or_create(&p, 4)
            .unwrap()
            .snapshot(),
        [0, 0, 0, 9]
    );
    assert_eq!(names(dir.path()), ["array"]);
}

/// `open_or_create` of an existing object opens it as it is, for every
/// kind: the initial value, permits or parties apply only when the file is
/// created.
#[test]
fn open_or_create_never_resets_an_existing_object() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    Counter::open_or_create(d.join("c"), 5)
        .unwrap()
        .fetch_add(10);
    assert_eq!(Counter::open_or_create(d.join("c"), 5).unwrap().load(), 15);

    AtomicArray::<u64>::open_or_create(d.join("a"), 3).unwrap()[2].store(7);
    let a = AtomicArray::<u64>::open_or_create(d.join("a"), 3).unwrap();
    assert_eq!(a.snapshot(), [0, 0, 7]);

    let cell = SeqCell::open_or_create(d.join("s"), 1u64).unwrap();
    cell.store(2).unwrap();
    let cell = SeqCell::open_or_create(d.join("s"), 1u64).unwrap();
    assert_eq!(cell.load_versioned().unwrap(), (2, 1));

    Event::open_or_create(d.join("e")).unwrap().set();
    assert!(Event::open_or_create(d.join("e")).unwrap().is_set());

    let sem = Semaphore::open_or_create(d.join("sem"), 3).unwrap();
    assert!(sem.try_acquire());
    let again = Semaphore::open_or_create(d.join("sem"), 3).unwrap();
    assert_eq!(again.available(), 2);
    sem.release().unwrap();
    sem.release().unwrap();
    assert_eq!(again.available(), 4, "still unbounded");

    let bounded = Semaphore::open_or_create_bounded(d.join("bsem"), 2).unwrap();
    assert!(bounded.try_acquire() && bounded.try_acquire());
    let again = Semaphore::open_or_create_bounded(d.join("bsem"), 2).unwrap();
    assert_eq!(again.available(), 0);
    again.release().unwrap();
    again.release().unwrap();
    assert!(again.release().is_err(), "still bounded to 2");

    let m = Map::<str, u64>::open_or_create(d.join("m"), 8, &MapOptions::new()).unwrap();
    m.insert("k", 9).unwrap();
    let m = Map::<str, u64>::open_or_create(d.join("m"), 8, &MapOptions::new()).unwrap();
    assert_eq!((m.get("k").unwrap(), m.len()), (Some(9), 1));

    // A barrier with a round in progress: the party already waiting is
    // kept, so the second party (joining through open_or_create) completes
    // that round instead of starting another.
    let bp = d.join("b");
    let first = Barrier::open_or_create(&bp, 2).unwrap();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| first.wait_timeout(Duration::from_secs(60)));
        common::wait_until("the first party to arrive", || {
            first.words().state() == (0, 1)
        });
        let second = Barrier::open_or_create(&bp, 2).unwrap();
        assert_eq!(second.words().state(), (0, 1), "the arrival was kept");
        let mine = second.wait_timeout(Duration::from_secs(60));
        assert_eq!(mine.unwrap().generation, 0);
        assert_eq!(waiting.join().unwrap().unwrap().generation, 0);
    });
    assert_eq!(
        Barrier::open_or_create(&bp, 2).unwrap().words().state(),
        (1, 0)
    );
    assert_eq!(names(d), ["a", "b", "bsem", "c", "e", "m", "s", "sem"]);
}

/// `open_or_create` of an existing object of another shape (a barrier for
/// another number of parties, a semaphore with another bound, a map of
/// another capacity or key length) is a typed error naming both, and leaves
/// the object as it was.
#[test]
fn open_or_create_refuses_another_shape_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let bp = d.join("b");
    let b = Barrier::open_or_create(&bp, 3).unwrap();
    match Barrier::open_or_create(&bp, 2) {
        Err(e @ OpenError::InvalidCapacity { found: 3, .. }) => {
            check_message(
                &e,
                &bp,
                &["invalid capacity 3", "2 parties as asked", "one for 3"],
            );
        }
        other => panic!("expected InvalidCapacity for another party count, got {other:?}"),
    }
    // Invalid asks are refused as by `create`, file or no file.
    for parties in [0, 65] {
        assert!(matches!(
            Barrier::open_or_create(&bp, parties),
            Err(OpenError::InvalidCapacity { found, .. }) if found == u64::from(parties)
        ));
    }
    assert_eq!(b.parties(), 3);
    // The refused opener did not join: two more parties complete a round.
    std::thread::scope(|s| {
        let others: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let b = Barrier::open(&bp).unwrap();
                    b.wait_timeout(Duration::from_secs(60)).unwrap()
                })
            })
            .collect();
        b.wait_timeout(Duration::from_secs(60)).unwrap();
        for o in others {
            o.join().unwrap();
        }
    });
    assert_eq!(b.words().state(), (1, 0));

    let sp = d.join("sem");
    let s = Semaphore::open_or_create_bounded(&sp, 3).unwrap();
    assert!(s.try_acquire());
    for (res, found, needles) in [
        (
            Semaphore::open_or_create_bounded(&sp, 4),
            3,
            ["bounded to 4 permits as asked", "one bounded to 3 permits"],
        ),
        (
            Semaphore::open_or_create(&sp, 3),
            3,
            [
                "an unbounded semaphore as asked",
                "one bounded to 3 permits",
            ],
        ),
    ] {
        match res {
            Err(e @ OpenError::InvalidCapacity { .. }) => {
                assert!(matches!(e, OpenError::InvalidCapacity { found: f, .. } if f == found));
                check_message(&e, &sp, &needles);
            }
            other => panic!("expected InvalidCapacity for another bound, got {other:?}"),
        }
    }
    assert!(matches!(
        Semaphore::open_or_create_bounded(&sp, 0),
        Err(OpenError::InvalidCapacity { found: 0, .. })
    ));
    assert_eq!(s.available(), 2, "untouched");
    let up = d.join("unbounded");
    drop(Semaphore::open_or_create(&up, 1).unwrap());
    match Semaphore::open_or_create_bounded(&up, 1) {
        Err(e @ OpenError::InvalidCapacity { found: 0, .. }) => {
            check_message(
                &e,
                &up,
                &["bounded to 1 permit as asked", "an unbounded one"],
            );
        }
        other => panic!("expected InvalidCapacity for a bounded ask, got {other:?}"),
    }

    let mp = d.join("map");
    let opts = MapOptions::new().max_key_len(16);
    Map::<str, u64>::open_or_create(&mp, 8, &opts)
        .unwrap()
        .insert("k", 1)
        .unwrap();
    match Map::<str, u64>::open_or_create(&mp, 16, &opts) {
        Err(e @ OpenError::InvalidCapacity { found: 8, .. }) => {
            check_message(&e, &mp, &["invalid capacity 8", "capacity 16 as asked"]);
        }
        other => panic!("expected InvalidCapacity for another capacity, got {other:?}"),
    }
    match Map::<str, u64>::open_or_create(&mp, 8, &MapOptions::new().max_key_len(32)) {
        Err(e @ OpenError::InvalidOption { .. }) => {
            check_message(&e, &mp, &["key length 32 bytes as asked", "a map with 16"]);
        }
        other => panic!("expected InvalidOption for another key length, got {other:?}"),
    }
    // A byte queue's maximum message length and any queue's joinability
    // are part of its shape too.
    let bq = d.join("bytes");
    let q = ByteQueue::open_or_create(&bq, 4, 100, &QueueOptions::new()).unwrap();
    q.try_push(b"kept").unwrap();
    match ByteQueue::open_or_create(&bq, 4, 50, &QueueOptions::new()) {
        Err(e @ OpenError::WrongPayload { .. }) => {
            check_message(&e, &bq, &["100", "50"]);
        }
        other => panic!("expected WrongPayload for another max_len, got {other:?}"),
    }
    match ByteQueue::open_or_create(&bq, 4, 100, &QueueOptions::new().joinable(true)) {
        Err(e @ OpenError::InvalidOption { .. }) => {
            check_message(&e, &bq, &["joinable as asked", "found one not joinable"]);
        }
        other => panic!("expected InvalidOption for joinability, got {other:?}"),
    }
    let again = ByteQueue::open_or_create(&bq, 4, 100, &QueueOptions::new()).unwrap();
    let mut out = [0u8; 100];
    let n = again.try_pop_into(&mut out).unwrap();
    assert_eq!(&out[..n], b"kept", "untouched");
    let jq = d.join("joinable");
    drop(Queue::<u64>::open_or_create(&jq, 2, &QueueOptions::new().joinable(true)).unwrap());
    assert!(matches!(
        Queue::<u64>::open_or_create(&jq, 2, &QueueOptions::new()),
        Err(OpenError::InvalidOption { .. })
    ));

    // An out-of-range key length is refused as by `create`, map or no map.
    assert!(matches!(
        Map::<str, u64>::open_or_create(&mp, 8, &MapOptions::new().max_key_len(0)),
        Err(OpenError::UnsupportedPayload { .. })
    ));
    let m = Map::<str, u64>::open_or_create(&mp, 8, &MapOptions::new().max_key_len(13)).unwrap();
    assert_eq!(
        m.get("k").unwrap(),
        Some(1),
        "rounded up to 16: the same map"
    );
    assert_eq!(
        names(d),
        ["b", "bytes", "joinable", "map", "sem", "unbounded"]
    );
}

#[test]
fn a_long_label_is_an_invalid_option() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    let long = "x".repeat(33);
    match Counter::create_with(&p, 1, &CreateOptions::new().label(long)) {
        Err(e @ OpenError::InvalidOption { .. }) => {
            check_message(&e, &p, &["invalid option", "label", "32", "found 33"]);
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    // Multi-byte characters count in bytes: 11 x 3 bytes = 33.
    assert!(matches!(
        SeqCell::create_with(&p, 1u8, &CreateOptions::new().label("€".repeat(11))),
        Err(OpenError::InvalidOption { .. })
    ));
    assert!(
        names(dir.path()).is_empty(),
        "a failed create left {:?}",
        names(dir.path())
    );
    // Exactly 32 bytes is fine.
    let label = "y".repeat(32);
    let c = Counter::create_with(&p, 1, &CreateOptions::new().label(label.clone())).unwrap();
    let status = c.region().status(mmring::Patience::DEFAULT).unwrap();
    assert_eq!(status.label(), label);
    // A path with no file name to create.
    let dotdot = dir.path().join("..");
    assert!(matches!(
        Counter::create(&dotdot, 1),
        Err(OpenError::InvalidOption { .. })
    ));
}

/// The checks a process without the rights to `dir/locked` (mode 000) and
/// `dir/ro/` (mode 555) must see.
fn check_permission_denied(dir: &Path) {
    let locked = dir.join("locked");
    match Counter::open(&locked) {
        Err(e @ OpenError::PermissionDenied { .. }) => {
            check_message(&e, &locked, &["permission denied"]);
        }
        other => panic!("open: expected PermissionDenied, got {other:?}"),
    }
    assert!(matches!(
        Counter::open_or_create(&locked, 1),
        Err(OpenError::PermissionDenied { .. })
    ));
    assert!(matches!(
        inspect(&locked),
        Err(OpenError::PermissionDenied { .. })
    ));
    let ro = dir.join("ro");
    let new = ro.join("new");
    match Counter::create(&new, 1) {
        Err(e @ OpenError::PermissionDenied { .. }) => {
            check_message(&e, &new, &["permission denied"]);
        }
        other => panic!("create: expected PermissionDenied, got {other:?}"),
    }
    assert!(names(&ro).is_empty());
}

/// Permission denied, for real even when the tests run as root (where mode
/// 000 denies nothing): the checks then run in a child process that drops to
/// uid/gid 65534 (`nobody`).
#[test]
fn no_rights_is_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = d.join("locked");
    counter_file(&locked, 5);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();

    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        check_permission_denied(d);
        return;
    }
    let mut kids = Children::new();
    let (mut cmd, log) = kids.command("child_permission_denied", 0, d, "");
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    if let Err(e) = kids.spawn_command("child_permission_denied", 0, cmd, log) {
        println!(
            "note: running as root and cannot drop to uid 65534 ({e}): permission case skipped"
        );
        return;
    }
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(no_rights_is_permission_denied)]
    fn child_permission_denied(ctx: ChildCtx) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_ne!(euid, 0, "the child should not be root");
        check_permission_denied(&ctx.path);
    }
);

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_get_mode_0600_or_the_mode_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop(Counter::create(d.join("c"), 0).unwrap());
    drop(AtomicArray::<u32>::create(d.join("a"), 2).unwrap());
    drop(SeqCell::create(d.join("s"), 0u64).unwrap());
    drop(Counter::open_or_create(d.join("o"), 0).unwrap());
    for name in ["c", "a", "s", "o"] {
        assert_eq!(mode_of(&d.join(name)), 0o600, "default mode of {name}");
    }
    // Applied exactly, whatever the umask (0o666 and 0o640 both have bits a
    // usual umask of 022 or 077 would clear).
    drop(Counter::create_with(d.join("c640"), 0, &CreateOptions::new().mode(0o640)).unwrap());
    drop(
        AtomicArray::<u64>::create_with(d.join("a666"), 2, 7, &CreateOptions::new().mode(0o666))
            .unwrap(),
    );
    drop(SeqCell::create_with(d.join("s604"), 0u32, &CreateOptions::new().mode(0o604)).unwrap());
    assert_eq!(mode_of(&d.join("c640")), 0o640);
    assert_eq!(mode_of(&d.join("a666")), 0o666);
    assert_eq!(mode_of(&d.join("s604")), 0o604);
    assert_eq!(
        AtomicArray::<u64>::open(d.join("a666")).unwrap().snapshot(),
        [7, 7]
    );
    assert_eq!(
        names(d),
        ["a", "a666", "c", "c640", "o", "s", "s604"],
        "temporary files left"
    );
}

#[test]
fn remove_unlinks_and_open_handles_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    let c = Counter::create(&p, 5).unwrap();
    mmring::remove(&p).unwrap();
    assert!(!p.exists());
    assert!(matches!(Counter::open(&p), Err(OpenError::NotFound { .. })));
    // The mapping outlives the name, as with unlink(2).
    assert_eq!(c.fetch_add(1), 5);
    assert_eq!(c.load(), 6);
    let e = mmring::remove(&p).unwrap_err();
    assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(e.path, p);
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}: remove: ", p.display())),
        "{text}"
    );
    // The name is free again.
    let again = Counter::create(&p, 1).unwrap();
    assert_eq!(again.load(), 1);
    assert_eq!(c.load(), 6, "the removed object is a different one");
    assert!(names(dir.path()) == ["count"]);
}

/// A file on a real file system (under the target directory, not tmpfs)
/// keeps its values, versions and label after every handle is dropped.
#[test]
fn values_persist_on_a_real_file_system() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    {
        let c = Counter::create_with(d.join("c"), 5, &CreateOptions::new().label("kept")).unwrap();
        c.fetch_add(37);
        let a = AtomicArray::<f64>::create(d.join("a"), 3).unwrap();
        a[0].store(1.5);
        a[2].fetch_sub(0.25);
        let s = SeqCell::create(d.join("s"), Sample::splat(0)).unwrap();
        for i in 1..=3 {
            s.store(Sample::splat(i)).unwrap();
        }
        c.region().flush().unwrap();
        a.region().flush().unwrap();
        s.region().flush().unwrap();
    }
    let c = Counter::open(d.join("c")).unwrap();
    assert_eq!(c.load(), 42);
    let status = c.region().status(mmring::Patience::DEFAULT).unwrap();
    assert_eq!(status.label(), "kept");
    assert_eq!(status.creator_pid, std::process::id());
    assert_eq!(
        AtomicArray::<f64>::open(d.join("a")).unwrap().snapshot(),
        [1.5, 0.0, -0.25]
    );
    let s = SeqCell::<Sample>::open(d.join("s")).unwrap();
    assert_eq!(s.load_versioned().unwrap(), (Sample::splat(3), 3));
    assert_eq!(names(d), ["a", "c", "s"]);
}

#[test]
fn inspect_reports_kind_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let me = std::process::id();

    let cp = d.join("hits");
    let c = Counter::create_with(&cp, 40, &CreateOptions::new().label("hits")).unwrap();
    c.fetch_add(2);
    let r = inspect(&cp).unwrap();
    assert_eq!(r.path, cp);
    assert_eq!(r.body, Body::Counter(42));
    assert_eq!(r.descriptor.kind(), Some(Kind::Counter));
    assert_eq!(r.descriptor.total_size, COUNTER_FILE);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.label(), "hits");
    assert_eq!(status.creator_pid, me);
    assert_eq!(status.attached_pids().collect::<Vec<_>>(), [me]);
    let text = r.to_string();
    for needle in [
        &format!("path:        {}", cp.display()) as &str,
        "kind:        counter",
        "label:       \"hits\"",
        "value:       42",
        &format!("creator:     pid {me} (alive)"),
        &format!("attached:    {me} (alive)"),
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // Once every handle is gone nobody is attached, and inspecting does not
    // attach.
    drop(c);
    for _ in 0..2 {
        let r = inspect(&cp).unwrap();
        assert_eq!(r.status.as_ref().unwrap().attached_pids().count(), 0);
        assert!(r.to_string().contains("attached:    none"));
    }

    let ap = d.join("floats");
    let a = AtomicArray::<f64>::create(&ap, 40).unwrap();
    for (i, e) in a.iter().enumerate() {
        e.store(i as f64 / 2.0);
    }
    let r = inspect(&ap).unwrap();
    let Body::Array { elem, len, values } = &r.body else {
        panic!("expected an array body, got {:?}", r.body)
    };
    assert_eq!((*elem, *len), ("f64", 40));
    assert_eq!(values.len(), mmring::inspect::MAX_LISTED);
    assert_eq!(values[3], "1.5");
    let text = r.to_string();
    assert!(text.contains("kind:        atomic array"), "{text}");
    assert!(text.contains("elements:    40 x f64"), "{text}");
    assert!(text.contains("values:      [0, 0.5, 1, 1.5,"), "{text}");
    assert!(text.contains(", ...]"), "{text}");

    let sp = d.join("cell");
    let s = SeqCell::create(&sp, [1u32, 2, 3]).unwrap();
    s.store([4, 5, 6]).unwrap();
    s.store([7, 8, 0x0a0b_0c0d]).unwrap();
    let r = inspect(&sp).unwrap();
    assert_eq!(
        r.body,
        Body::Cell {
            version: 2,
            bytes: Ok(bytemuck::bytes_of(&[7u32, 8, 0x0a0b_0c0d]).to_vec())
        }
    );
    let text = r.to_string();
    assert!(text.contains("kind:        seqlock cell"), "{text}");
    assert!(text.contains("cell version: 2"), "{text}");
    let hex = bytemuck::bytes_of(&[7u32, 8, 0x0a0b_0c0d])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains(&format!("value bytes: {hex}")), "{text}");
}

/// Pristine files of each kind, as bytes.
fn originals(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let c = dir.join("orig-counter");
    Counter::create(&c, -3).unwrap().fetch_add(1);
    let a = dir.join("orig-array");
    let arr = AtomicArray::<u32>::create(&a, 10).unwrap();
    arr[9].store(99);
    drop(arr);
    let s = dir.join("orig-cell");
    SeqCell::create(&s, Sample::splat(4))
        .unwrap()
        .store(Sample::splat(5))
        .unwrap();
    let f = dir.join("orig-floats");
    AtomicArray::<f64>::create_with(&f, 16, 0.5, &CreateOptions::new().label("fuzz")).unwrap();
    let sem = dir.join("orig-semaphore");
    assert!(Semaphore::create_bounded(&sem, 3).unwrap().try_acquire());
    let b = dir.join("orig-barrier");
    drop(Barrier::create(&b, 2).unwrap());
    let e = dir.join("orig-event");
    Event::create(&e).unwrap().set();
    [
        ("counter", c),
        ("u32 array", a),
        ("cell", s),
        ("f64 array", f),
        ("semaphore", sem),
        ("barrier", b),
        ("event", e),
    ]
    .into_iter()
    .map(|(k, p)| (k, std::fs::read(p).unwrap()))
    .collect()
}

/// Fields of the descriptor: (offset, width in bytes).
const FIELDS: [(usize, usize); 22] = [
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 8),
    (32, 8),
    (40, 4),
    (44, 4),
    (48, 4),
    (52, 4),
    (56, 8),
    (64, 8),
    (72, 8),
    (80, 8),
    (88, 8),
    (96, 8),
    (104, 8),
    (112, 8),
    (120, 8),
    (128, 8),
    (184, 8),
    (192, 8),
    (240, 8),
];

const INTERESTING: [u64; 22] = [
    0,
    1,
    2,
    3,
    4,
    8,
    63,
    64,
    65,
    100,
    4095,
    4096,
    4097,
    1 << 31,
    u32::MAX as u64,
    1 << 32,
    1 << 40,
    (1 << 40) + 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 63,
    u64::MAX,
];

/// Bytes of the descriptor.
const DESC: usize = size_of::<Descriptor>();

fn fix_checksum(bytes: &mut [u8]) {
    let d: Descriptor = bytemuck::pod_read_unaligned(&bytes[..DESC]);
    bytes[DESC - 8..DESC].copy_from_slice(&d.compute_checksum().to_ne_bytes());
}

/// The payload name fields set to `name` (any bytes) and `len`.
fn set_name(d: &mut Descriptor, name: &[u8], len: u32) {
    d.name = [0; 64];
    d.name[..name.len().min(64)].copy_from_slice(&name[..name.len().min(64)]);
    d.name_len = len;
}

/// One mutation of `base`, described.
fn mutate(rng: &mut Rng, base: &[u8]) -> (Vec<u8>, String) {
    let mut b = base.to_vec();
    let what = match rng.below(8) {
        0 => {
            // A few bytes flipped anywhere in the descriptor, magic included.
            let n = 1 + rng.below(4);
            let mut at = Vec::new();
            for _ in 0..n {
                let i = rng.below(DESC as u64) as usize;
                b[i] ^= 1 << rng.below(8);
                at.push(i);
            }
            format!("flipped bits at {at:?}")
        }
        1 | 2 => {
            // A field set to an interesting or random value, checksum fixed.
            let (off, width) = FIELDS[rng.below(FIELDS.len() as u64) as usize];
            let v = if rng.below(4) == 0 {
                rng.next_u64()
            } else {
                INTERESTING[rng.below(INTERESTING.len() as u64) as usize]
            };
            b[off..off + width].copy_from_slice(&v.to_ne_bytes()[..width]);
            fix_checksum(&mut b);
            format!("field at {off} = {v:#x}, checksum fixed")
        }
        3 => {
            // Random descriptor after the magic, checksum fixed.
            let r = rng.bytes(112);
            b[8..120].copy_from_slice(&r);
            fix_checksum(&mut b);
            "random descriptor, checksum fixed".into()
        }
        4 => {
            let len = match rng.below(3) {
                0 => [0, 1, 8, 127, 128, 255, 256, 4095, 4096][rng.below(9) as usize],
                _ => rng.below(b.len() as u64 + 8192) as usize,
            };
            b.resize(len, 0xa5);
            format!("length {len}")
        }
        5 => {
            // A consistent header for another kind / capacity: often valid
            // (100, the retired scratch kind, never: it is unknown now).
            let mut d: Descriptor = bytemuck::pod_read_unaligned(&b[..DESC]);
            let kind = [1u32, 2, 3, 100][rng.below(4) as usize];
            let cap = [1u64, 2, 7, 64, 100][rng.below(5) as usize];
            let (elem, name) = [
                (4u32, "u32"),
                (8, "u64"),
                (8, "i64"),
                (16, "[u64; 2]"),
                (128, "Sample"),
            ][rng.below(5) as usize];
            set_name(&mut d, name.as_bytes(), name.len() as u32);
            let round = |n: u64| n.div_ceil(64) * 64;
            let body = match kind {
                1 => 64,
                2 => round(cap * u64::from(elem)),
                3 => round(16 + u64::from(elem).div_ceil(8) * 8),
                _ => round(cap),
            };
            d.kind = kind;
            d.capacity = cap;
            d.elem_size = elem;
            d.elem_align = elem.min(8);
            d.slot_size = if kind == 100 { 1 } else { u64::from(elem) };
            d.body_size = body;
            d.total_size = HEADER_SIZE + body;
            d.checksum = d.compute_checksum();
            b[..DESC].copy_from_slice(bytemuck::bytes_of(&d));
            b.resize((HEADER_SIZE + body) as usize, 0);
            format!("kind {kind}, capacity {cap}, element {name}, checksum fixed")
        }
        6 => {
            // A payload name of untrusted bytes and length, checksum fixed.
            let mut d: Descriptor = bytemuck::pod_read_unaligned(&b[..DESC]);
            let bytes: Vec<u8> = match rng.below(4) {
                0 => b"u32\xff".to_vec(),
                1 => vec![b'x'; 64],
                2 => b"u6\x004".to_vec(),
                _ => {
                    let n = rng.below(65) as usize;
                    rng.bytes(n)
                }
            };
            let len = match rng.below(3) {
                0 => bytes.len() as u32,
                1 => [0, 1, 63, 64, 65, 255, u32::MAX][rng.below(7) as usize],
                _ => rng.next_u64() as u32,
            };
            set_name(&mut d, &bytes, len);
            d.checksum = d.compute_checksum();
            b[..DESC].copy_from_slice(bytemuck::bytes_of(&d));
            format!("name {bytes:?} with length {len}, checksum fixed")
        }
        _ => {
            // Garbage after a valid magic, of a random length.
            let len = rng.below(3 * 4096) as usize;
            let mut r = rng.bytes(len);
            let m = len.min(8);
            r[..m].copy_from_slice(&MAGIC[..m]);
            b = r;
            format!("random bytes after the magic, length {len}")
        }
    };
    (b, what)
}

/// Opens `p` as every kind (and inspects it), using what opens: a short tag
/// per attempt, `ok` or the error variant.
fn open_every_way(p: &Path) -> Vec<String> {
    fn tag<T>(r: Result<T, OpenError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => {
                let text = e.to_string();
                assert!(!text.is_empty());
                format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_string()
            }
        }
    }
    vec![
        tag(Counter::open(p).map(|c| {
            c.fetch_add(c.load());
        })),
        tag(AtomicArray::<u32>::open(p).map(|a| {
            let snap = a.snapshot();
            if let Some(last) = a.last() {
                last.fetch_add(snap.len() as u32);
            }
        })),
        tag(AtomicArray::<u64>::open(p).map(|a| a.snapshot())),
        tag(AtomicArray::<f64>::open(p).map(|a| {
            a.iter().for_each(|e| {
                e.fetch_add(1.0);
            })
        })),
        tag(SeqCell::<Sample>::open(p).map(|s| (s.try_load(), s.version()))),
        tag(SeqCell::<u64>::open(p).map(|s| s.try_load())),
        tag(Semaphore::open(p).map(|s| {
            if s.try_acquire() {
                let _ = s.release();
            }
            (s.recover_dead_holders(), s.available(), s.words().holders())
        })),
        tag(Barrier::open(p).map(|b| (b.parties(), b.wait_timeout(Duration::ZERO)))),
        tag(Event::open(p).map(|e| {
            e.set();
            e.wait_timeout(Duration::ZERO)
        })),
        tag(inspect(p).map(|r| r.to_string())),
    ]
}

/// 2400 seeded mutations of real files (bits flipped, fields set with a
/// valid checksum, lengths changed, random bytes after the magic) opened as
/// every kind and inspected: each attempt returns `Ok` or an `OpenError`,
/// never panics. The outcome tally shows the mutations reach every check.
#[test]
fn no_file_content_makes_open_panic() {
    const CASES: usize = 2400;
    let dir = tempfile::tempdir().unwrap();
    let originals = originals(dir.path());
    let mut rng = Rng::new(0x6d6d_7269_6e67);
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..CASES {
        let (kind, base) = &originals[case % originals.len()];
        let (bytes, what) = mutate(&mut rng, base);
        // A new file each time: rewriting one in place makes ext4 flush it.
        let victim: PathBuf = dir.path().join(format!("victim{case}"));
        std::fs::write(&victim, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| open_every_way(&victim));
        std::fs::remove_file(&victim).unwrap();
        match outcome {
            Ok(tags) => {
                for t in tags {
                    *tally.entry(t).or_default() += 1;
                }
            }
            Err(_) => panic!("case {case}: a {kind} file with {what} made an open panic"),
        }
    }
    println!("outcomes of {CASES} mutated files opened 10 ways: {tally:?}");
    for expected in [
        "ok",
        "NotMmring",
        "Empty",
        "Truncated",
        "Oversized",
        "UnsupportedVersion",
        "CorruptHeader",
        "WrongKind",
        "WrongPayload",
        "InvalidCapacity",
    ] {
        assert!(
            tally.contains_key(expected),
            "no mutation led to {expected}: {tally:?}"
        );
    }
}

/// Garbage in the parts of a file that are not validated at open (the
/// status block, the body: random bytes, or words at the edges of their
/// range) never makes an open, an operation or `inspect` panic, overflow
/// checks on: they are atomics read as they are. The sequence words are kept even (no
/// writer inside) so no access waits; a writer left inside is the next test.
#[test]
fn garbage_in_the_status_block_or_body_never_panics() {
    const CASES: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let originals = originals(dir.path());
    let mut rng = Rng::new(42);
    let status = mmring::layout::STATUS_OFFSET;
    let body = HEADER_SIZE as usize;
    for case in 0..CASES {
        let (kind, base) = &originals[case % originals.len()];
        let mut b = base.clone();
        let part = rng.below(3);
        if part != 1 {
            let r = rng.bytes(128);
            b[status..status + 128].copy_from_slice(&r);
            b[status] &= !1;
        }
        if part != 0 {
            if rng.below(2) == 0 {
                let r = rng.bytes(b.len() - body);
                b[body..].copy_from_slice(&r);
            } else {
                // Words at the edges of their range, where arithmetic on
                // them overflows (regression: a semaphore's permits near
                // u64::MAX plus a dead holder's count).
                for w in b[body..].chunks_exact_mut(8) {
                    let v = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                    w.copy_from_slice(&v.to_ne_bytes());
                }
            }
            b[body] &= !1;
        }
        let victim = dir.path().join(format!("victim{case}"));
        std::fs::write(&victim, &b).unwrap();
        let outcome = std::panic::catch_unwind(|| open_every_way(&victim));
        std::fs::remove_file(&victim).unwrap();
        match outcome {
            Ok(tags) => {
                // Only the header decides what opens: the matching kind does.
                assert!(
                    tags.iter().any(|t| t == "ok"),
                    "case {case}: {kind}: {tags:?}"
                );
                assert_eq!(tags.last().unwrap(), "ok", "inspect, case {case}: {kind}");
            }
            Err(_) => panic!("case {case}: a {kind} file with garbage in part {part} panicked"),
        }
    }
}

/// A status block whose writer died inside (odd sequence, dead pid) does
/// not stop anyone from opening and using the object; `inspect` says the
/// status is unreadable and why.
#[test]
fn a_status_block_left_locked_by_a_dead_process_is_survivable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("count");
    counter_file(&p, 5);
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let before = inspect(&p).unwrap().status.unwrap();
    let status = mmring::layout::STATUS_OFFSET as u64;
    let mut word = [0u8; 8];
    std::fs::File::open(&p)
        .unwrap()
        .read_exact_at(&mut word, status)
        .unwrap();
    let seq = u64::from_ne_bytes(word);
    // Locked (odd) by the dead pid, which left garbage in the spare copy.
    patch(&p, status, &(seq | 1).to_ne_bytes());
    patch(&p, status + 8, &u64::from(pid).to_ne_bytes());
    let spare = status + 16 + ((seq / 2 + 1) % 2) * (STATUS_WORDS as u64 - 2) / 2 * 8;
    patch(&p, spare, &[0xee; 64]);

    // Readers see the last published status as it was.
    assert_eq!(inspect(&p).unwrap().status.unwrap(), before);
    // An opener records itself: it takes the dead writer's lock over.
    let c = Counter::open(&p).unwrap();
    assert_eq!(c.fetch_add(1), 5);
    let now = c.region().status(mmring::Patience::DEFAULT).unwrap();
    assert!(now.attached.contains(&std::process::id()), "{now:?}");
    assert_eq!(now.creator_pid, before.creator_pid);
    let r = inspect(&p).unwrap();
    assert_eq!(r.body, Body::Counter(6));
    assert_eq!(r.status.unwrap(), now);
}

/// A bare name goes under the default directory (`/dev/shm` on Linux); any
/// path with a directory part is used as given. (Pure path arithmetic: no
/// file is made under `/dev/shm`.)
#[test]
fn bare_names_go_to_the_default_directory() {
    use mmring::region::{default_dir, resolve};
    if cfg!(target_os = "linux") {
        assert_eq!(default_dir(), Path::new("/dev/shm"));
    }
    assert_eq!(resolve("jobs"), default_dir().join("jobs"));
    assert_eq!(resolve("./jobs"), Path::new("./jobs"));
    assert_eq!(resolve("/tmp/jobs"), Path::new("/tmp/jobs"));
    assert_eq!(resolve("a/b"), Path::new("a/b"));
}

/// The longest name the file system allows (255 bytes) can be created and
/// opened like any other.
#[test]
fn the_longest_file_name_can_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n".repeat(255));
    std::fs::write(&p, b"the name itself is valid").unwrap();
    std::fs::remove_file(&p).unwrap();
    let c = Counter::create(&p, 1).unwrap();
    assert_eq!(Counter::open(&p).unwrap().fetch_add(1), 1);
    assert_eq!(c.load(), 2);
    assert_eq!(names(dir.path()), ["n".repeat(255)]);
}

/// A payload type a kind cannot hold is the caller's mistake, not a corrupt
/// file: its own variant, and nothing is left behind.
#[test]
fn an_unusable_payload_type_at_create_is_unsupported_payload() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    let err = SeqCell::create(&big, [0u8; 70_000]).unwrap_err();
    assert!(
        matches!(err, OpenError::UnsupportedPayload { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unsupported payload type"),
        "{err}"
    );
    let unit = dir.path().join("unit");
    let err = SeqCell::create(&unit, [0u64; 0]).unwrap_err();
    assert!(
        matches!(err, OpenError::UnsupportedPayload { .. }),
        "{err:?}"
    );
    assert!(names(dir.path()).is_empty());
}
