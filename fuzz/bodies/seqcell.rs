//! `seqcell`: operation sequences on a `SeqCell<[u64; 3]>` (several
//! handles on one file) against a model value and version: every load
//! returns the last stored value whole, the version counts the stores.

use mmring::{OpenError, SeqCell};

use super::{Reader, Scratch, Writer};

pub const OPS: u8 = 9;

type V = [u64; 3];

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let dir = Scratch::new();
    let path = dir.path("cell");
    let initial: V = [r.u64(), r.u64(), r.u64()];
    let mut cells = vec![SeqCell::create(&path, initial).expect("create cell")];
    let mut model = initial;
    let mut version = 0u64;

    while !r.is_empty() {
        let op = r.u8() % OPS;
        let cell = &cells[usize::from(r.u8()) % cells.len()];
        match op {
            0 => assert_eq!(cell.load(), Ok(model)),
            1 => assert_eq!(cell.load_versioned(), Ok((model, version))),
            2 => assert_eq!(cell.try_load(), Some((model, version))),
            3 => {
                let v = [r.u64(), r.u64(), r.u64()];
                version += 1;
                assert_eq!(cell.store(v), Ok(version));
                model = v;
            }
            4 => {
                let k = r.u64();
                let new = cell
                    .update(|mut v| {
                        v[0] = v[0].wrapping_add(k);
                        v[2] ^= k;
                        v
                    })
                    .expect("update");
                model[0] = model[0].wrapping_add(k);
                model[2] ^= k;
                version += 1;
                assert_eq!(new, model);
            }
            5 => assert_eq!(cell.version(), version),
            6 => {
                if cells.len() < 4 {
                    cells.push(SeqCell::open(&path).expect("open cell"));
                } else {
                    cells.remove(0);
                }
            }
            7 => {
                assert!(matches!(
                    SeqCell::<[u64; 2]>::open(&path),
                    Err(OpenError::WrongPayload { .. })
                ));
                assert!(matches!(
                    SeqCell::create(&path, model),
                    Err(OpenError::AlreadyExists { .. })
                ));
                let same = SeqCell::<V>::open_or_create(&path, [0; 3]).expect("open_or_create");
                assert_eq!(same.load_versioned(), Ok((model, version)));
            }
            _ => {
                // The status block tells the same story as the cell.
                let status = cell.region().status(mmring::Patience::DEFAULT);
                assert!(status.is_ok());
            }
        }
    }
    assert_eq!(cells[0].load_versioned(), Ok((model, version)));
}

/// Seeds: each operation once; many stores through several handles.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = Writer::default();
    all.u64(1).u64(2).u64(3);
    for op in 0..OPS {
        all.u8(op).u8(op);
        if op == 3 {
            all.u64(7).u64(8).u64(9);
        }
        if op == 4 {
            all.u64(u64::MAX);
        }
    }
    let mut many = Writer::default();
    many.u64(0).u64(0).u64(0);
    for i in 0..12u8 {
        many.u8(6)
            .u8(0)
            .u8(3)
            .u8(i)
            .u64(u64::from(i))
            .u64(!0)
            .u64(0);
        many.u8(1).u8(i + 1).u8(4).u8(i + 2).u64(1);
    }
    vec![("every_op", all.0), ("stores_through_handles", many.0)]
}
