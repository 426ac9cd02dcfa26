//! `counter`: operation sequences on a `Counter` and an `AtomicArray<u32>`
//! (through several handles on the same files), and on arrays of every
//! other element type (`u8` .. `f64`, made on first use), checked against
//! plain values: every operation returns what the model says and leaves
//! the value the model holds (floats compared bit for bit).

use std::path::{Path, PathBuf};

use mmring::{AtomicArray, Counter, CreateOptions, Element, OpenError};

use super::{Reader, Scratch, Writer};

pub const OPS: u8 = 15;

/// The operation that works on the typed arrays (`typed_op`).
pub const TYPED_OP: u8 = 14;

/// Element types the typed arrays cover, in the order `typed_op` picks
/// them: `u8 i8 u16 i16 u32 i32 u64 i64 f32 f64`.
pub const TYPES: u8 = 10;

/// What the model needs of an element type beyond [`Element`]: reading
/// one from the input, the plain arithmetic the atomics must match, and
/// equality as the atomics see it (bit for bit).
pub trait Model: Element {
    fn read(r: &mut Reader) -> Self;
    fn plus(self, v: Self) -> Self;
    fn minus(self, v: Self) -> Self;
    fn larger(self, v: Self) -> Self;
    fn smaller(self, v: Self) -> Self;
    fn bits(self) -> u64;
    /// The model's value after a `fetch_max`/`fetch_min` that left
    /// `actual`: the model's own, except that `max`/`min` of `0.0` and
    /// `-0.0` may give either (as `f32::max` documents), so a float takes
    /// the zero the atomic kept.
    fn settle(self, actual: Self) -> Self {
        let _ = actual;
        self
    }
}

macro_rules! int_model {
    ($($t:ty => $read:ident),*) => {$(
        impl Model for $t {
            fn read(r: &mut Reader) -> Self {
                r.$read() as $t
            }
            fn plus(self, v: Self) -> Self {
                self.wrapping_add(v)
            }
            fn minus(self, v: Self) -> Self {
                self.wrapping_sub(v)
            }
            fn larger(self, v: Self) -> Self {
                Ord::max(self, v)
            }
            fn smaller(self, v: Self) -> Self {
                Ord::min(self, v)
            }
            fn bits(self) -> u64 {
                self as u64
            }
        }
    )*};
}
int_model!(
    u8 => u8, i8 => u8, u16 => u16, i16 => u16, u32 => u32, i32 => u32, u64 => u64, i64 => u64
);

impl Model for f32 {
    fn read(r: &mut Reader) -> Self {
        f32::from_bits(r.u32())
    }
    fn plus(self, v: Self) -> Self {
        self + v
    }
    fn minus(self, v: Self) -> Self {
        self - v
    }
    fn larger(self, v: Self) -> Self {
        f32::max(self, v)
    }
    fn smaller(self, v: Self) -> Self {
        f32::min(self, v)
    }
    fn settle(self, actual: Self) -> Self {
        if self == 0.0 && actual == 0.0 {
            actual
        } else {
            self
        }
    }
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Model for f64 {
    fn read(r: &mut Reader) -> Self {
        f64::from_bits(r.u64())
    }
    fn plus(self, v: Self) -> Self {
        self + v
    }
    fn minus(self, v: Self) -> Self {
        self - v
    }
    fn larger(self, v: Self) -> Self {
        f64::max(self, v)
    }
    fn smaller(self, v: Self) -> Self {
        f64::min(self, v)
    }
    fn settle(self, actual: Self) -> Self {
        if self == 0.0 && actual == 0.0 {
            actual
        } else {
            self
        }
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// One typed array file: its handles (made on first use) and the values
/// it must hold.
struct Typed<T: Model> {
    path: PathBuf,
    handles: Vec<AtomicArray<T>>,
    model: Vec<T>,
}

impl<T: Model> Typed<T> {
    fn new(dir: &Scratch, name: &str) -> Self {
        Self {
            path: dir.path(name),
            handles: Vec::new(),
            model: Vec::new(),
        }
    }

    /// Checks every element against the model, bit for bit.
    fn check(&self) {
        for a in &self.handles {
            let now: Vec<u64> = a.snapshot().into_iter().map(T::bits).collect();
            let want: Vec<u64> = self.model.iter().map(|v| v.bits()).collect();
            assert_eq!(now, want);
        }
    }

    /// One operation on one element of the array (created on first use
    /// with a length and initial value from the input).
    fn op(&mut self, r: &mut Reader) {
        if self.handles.is_empty() {
            let len = usize::from(r.u8() % 70) + 1;
            let initial = T::read(r);
            let a = AtomicArray::<T>::open_or_create_with(
                &self.path,
                len,
                initial,
                &CreateOptions::default(),
            )
            .expect("create typed array");
            self.handles.push(a);
            self.model = vec![initial; len];
        }
        let a = &self.handles[usize::from(r.u8()) % self.handles.len()];
        let i = usize::from(r.u8()) % self.model.len();
        let m = &mut self.model[i];
        let e = &a[i];
        let same = |x: T, y: T| x.bits() == y.bits();
        match r.u8() % 10 {
            0 => assert!(same(e.load(), *m)),
            1 => {
                let v = T::read(r);
                e.store(v);
                *m = v;
            }
            2 => {
                let v = T::read(r);
                assert!(same(e.swap(v), *m));
                *m = v;
            }
            3 => {
                let v = T::read(r);
                assert!(same(e.fetch_add(v), *m));
                *m = m.plus(v);
            }
            4 => {
                let v = T::read(r);
                assert!(same(e.fetch_sub(v), *m));
                *m = m.minus(v);
            }
            5 => {
                let v = T::read(r);
                assert!(same(e.fetch_max(v), *m));
                *m = m.larger(v).settle(e.load());
            }
            6 => {
                let v = T::read(r);
                assert!(same(e.fetch_min(v), *m));
                *m = m.smaller(v).settle(e.load());
            }
            7 => {
                // Against the right value or another one (bitwise, so a NaN
                // matches itself and -0.0 does not match 0.0).
                let right = r.u8() % 2 == 0;
                let current = if right { *m } else { T::read(r) };
                let new = T::read(r);
                let got = e.compare_exchange(current, new);
                if same(current, *m) {
                    assert!(matches!(got, Ok(p) if same(p, *m)));
                    *m = new;
                } else {
                    assert!(matches!(got, Err(p) if same(p, *m)));
                }
            }
            8 => {
                // Add, or decline: Ok(previous) or Err(current).
                let decline = r.u8() % 2 == 0;
                let v = T::read(r);
                let got = e.fetch_update(|x| (!decline).then(|| x.plus(v)));
                if decline {
                    assert!(matches!(got, Err(p) if same(p, *m)));
                } else {
                    assert!(matches!(got, Ok(p) if same(p, *m)));
                    *m = m.plus(v);
                }
            }
            _ => {
                // Another handle (or one fewer), and the same file asked
                // for with another length or initial value: the length is
                // refused, the values are never reset.
                if self.handles.len() < 3 {
                    let b = AtomicArray::<T>::open(&self.path).expect("open typed array");
                    assert_eq!(b.len(), self.model.len());
                    self.handles.push(b);
                } else {
                    self.handles.remove(0);
                }
                let len = self.model.len();
                assert!(matches!(
                    AtomicArray::<T>::open_or_create(&self.path, len + 1),
                    Err(OpenError::InvalidCapacity { .. })
                ));
                let again = AtomicArray::<T>::open_or_create_with(
                    &self.path,
                    len,
                    T::read(r),
                    &CreateOptions::default(),
                )
                .expect("open_or_create an existing array");
                drop(again);
            }
        }
        self.check();
    }
}

/// The typed arrays, one file per element type.
struct TypedArrays {
    u8: Typed<u8>,
    i8: Typed<i8>,
    u16: Typed<u16>,
    i16: Typed<i16>,
    u32: Typed<u32>,
    i32: Typed<i32>,
    u64: Typed<u64>,
    i64: Typed<i64>,
    f32: Typed<f32>,
    f64: Typed<f64>,
}

impl TypedArrays {
    fn new(dir: &Scratch) -> Self {
        Self {
            u8: Typed::new(dir, "typed_u8"),
            i8: Typed::new(dir, "typed_i8"),
            u16: Typed::new(dir, "typed_u16"),
            i16: Typed::new(dir, "typed_i16"),
            u32: Typed::new(dir, "typed_u32"),
            i32: Typed::new(dir, "typed_i32"),
            u64: Typed::new(dir, "typed_u64"),
            i64: Typed::new(dir, "typed_i64"),
            f32: Typed::new(dir, "typed_f32"),
            f64: Typed::new(dir, "typed_f64"),
        }
    }

    /// Picks an element type from the input and runs one operation on it;
    /// every other typed file is then opened as each wrong width of the
    /// same size class and refused.
    fn op(&mut self, r: &mut Reader) {
        match r.u8() % TYPES {
            0 => self.u8.op(r),
            1 => self.i8.op(r),
            2 => self.u16.op(r),
            3 => self.i16.op(r),
            4 => self.u32.op(r),
            5 => self.i32.op(r),
            6 => self.u64.op(r),
            7 => self.i64.op(r),
            8 => self.f32.op(r),
            _ => self.f64.op(r),
        }
        refuses_other_types::<u8>(&self.i8.path);
        refuses_other_types::<i8>(&self.u8.path);
        refuses_other_types::<u16>(&self.i16.path);
        refuses_other_types::<i16>(&self.u16.path);
        refuses_other_types::<f32>(&self.u32.path);
        refuses_other_types::<u32>(&self.f32.path);
    }

    fn check(&self) {
        self.u8.check();
        self.i8.check();
        self.u16.check();
        self.i16.check();
        self.u32.check();
        self.i32.check();
        self.u64.check();
        self.i64.check();
        self.f32.check();
        self.f64.check();
    }
}

/// An existing array of another element type (of the same size) is a
/// typed error, never a view.
fn refuses_other_types<T: Element>(path: &Path) {
    if path.exists() {
        assert!(matches!(
            AtomicArray::<T>::open(path),
            Err(OpenError::WrongPayload { .. })
        ));
    }
}

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let dir = Scratch::new();
    let cpath = dir.path("counter");
    let apath = dir.path("array");
    let initial = r.u64() as i64;
    let len = usize::from(r.u8() % 8) + 1;
    let mut counters = vec![Counter::create(&cpath, initial).expect("create counter")];
    let mut arrays = vec![AtomicArray::<u32>::create(&apath, len).expect("create array")];
    let mut model = initial;
    let mut amodel = vec![0u32; len];
    let mut typed = TypedArrays::new(&dir);

    while !r.is_empty() {
        let op = r.u8() % OPS;
        let c = &counters[usize::from(r.u8()) % counters.len()];
        match op {
            0 => assert_eq!(c.load(), model),
            1 => {
                let v = r.u64() as i64;
                c.store(v);
                model = v;
            }
            2 => {
                let v = r.u64() as i64;
                assert_eq!(c.swap(v), model);
                model = v;
            }
            3 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_add(v), model);
                model = model.wrapping_add(v);
            }
            4 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_sub(v), model);
                model = model.wrapping_sub(v);
            }
            5 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_max(v), model);
                model = model.max(v);
            }
            6 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_min(v), model);
                model = model.min(v);
            }
            7 => {
                // Compare-exchange against the right value or a wrong one.
                let right = r.u8() % 2 == 0;
                let current = if right { model } else { r.u64() as i64 };
                let new = r.u64() as i64;
                let got = c.compare_exchange(current, new);
                if current == model {
                    assert_eq!(got, Ok(model));
                    model = new;
                } else {
                    assert_eq!(got, Err(model));
                }
            }
            8 => {
                // "Take a ticket if any are left" and a checked add.
                let take = r.u8() % 2 == 0;
                let v = r.u64() as i64;
                let f = |n: i64| {
                    if take {
                        (n > 0).then(|| n - 1)
                    } else {
                        n.checked_add(v)
                    }
                };
                let want = f(model);
                let got = c.fetch_update(f);
                match want {
                    Some(next) => {
                        assert_eq!(got, Ok(model));
                        model = next;
                    }
                    None => assert_eq!(got, Err(model)),
                }
            }
            9 => {
                if counters.len() < 4 {
                    counters.push(Counter::open(&cpath).expect("open counter"));
                } else {
                    counters.remove(0);
                }
            }
            10 => {
                // A second create, and opening as the wrong kind, are typed
                // errors that leave the value alone.
                assert!(matches!(
                    Counter::create(&cpath, 0),
                    Err(OpenError::AlreadyExists { .. })
                ));
                assert!(matches!(
                    AtomicArray::<i64>::open(&cpath),
                    Err(OpenError::WrongKind { .. })
                ));
                assert!(matches!(
                    AtomicArray::<u64>::open(&apath),
                    Err(OpenError::WrongPayload { .. })
                ));
                assert!(matches!(
                    AtomicArray::<u32>::open_or_create(&apath, len + 1),
                    Err(OpenError::InvalidCapacity { .. })
                ));
            }
            11 => {
                let a = &arrays[usize::from(r.u8()) % arrays.len()];
                let i = usize::from(r.u8() % 10);
                let v = r.u32();
                assert_eq!(a.len(), len);
                match (a.get(i), amodel.get_mut(i)) {
                    (Some(e), Some(m)) => {
                        assert_eq!(e.fetch_add(v), *m);
                        *m = m.wrapping_add(v);
                    }
                    (None, None) => {}
                    _ => panic!("array length differs from the model"),
                }
            }
            12 => {
                let a = &arrays[usize::from(r.u8()) % arrays.len()];
                let i = usize::from(r.u8()) % len;
                let (cur, new) = (r.u32(), r.u32());
                let cur = if r.u8() % 2 == 0 { amodel[i] } else { cur };
                let got = a[i].compare_exchange(cur, new);
                if cur == amodel[i] {
                    assert_eq!(got, Ok(cur));
                    amodel[i] = new;
                } else {
                    assert_eq!(got, Err(amodel[i]));
                }
                assert_eq!(a.snapshot(), amodel);
            }
            TYPED_OP => typed.op(&mut r),
            _ => {
                if arrays.len() < 3 {
                    arrays.push(AtomicArray::<u32>::open(&apath).expect("open array"));
                } else {
                    arrays.remove(0);
                }
            }
        }
    }
    assert_eq!(counters[0].load(), model);
    assert_eq!(arrays[0].snapshot(), amodel);
    typed.check();
}

/// Seeds: each operation once, tickets sold out, a wrong compare-exchange.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = Writer::default();
    all.u64(3).u8(3);
    for op in 0..OPS {
        all.u8(op).u8(op).u64(0x8000_0000_0000_0001 ^ u64::from(op));
        all.u64(u64::from(op) * 7);
    }
    let mut tickets = Writer::default();
    tickets.u64(3).u8(0);
    for _ in 0..5 {
        tickets.u8(8).u8(0).u8(0).u64(0);
    }
    tickets.u8(0).u8(0);
    let mut overflow = Writer::default();
    overflow.u64(i64::MAX as u64).u8(7);
    overflow
        .u8(3)
        .u8(0)
        .u64(1)
        .u8(8)
        .u8(0)
        .u8(1)
        .u64(i64::MAX as u64);
    overflow.u8(5).u8(0).u64(0).u8(6).u8(0).u64(i64::MIN as u64);
    overflow
        .u8(9)
        .u8(0)
        .u8(11)
        .u8(1)
        .u8(7)
        .u32(u32::MAX)
        .u8(11)
        .u8(1)
        .u8(7)
        .u32(2);
    overflow.u8(13).u8(0).u8(12).u8(1).u8(2).u32(0).u32(9).u8(1);
    overflow.u8(7).u8(1).u8(1).u64(5).u64(6).u8(10).u8(0);
    vec![
        ("every_op", all.0),
        ("tickets_sold_out", tickets.0),
        ("overflow_and_handles", overflow.0),
        ("typed_every_width", typed_seed()),
    ]
}

/// Every element type, every typed operation once, with values at the
/// edges (wrapping adds, NaN and -0.0 for the floats).
fn typed_seed() -> Vec<u8> {
    // The bytes of a value of each type's width (`Model::read`).
    const WIDTHS: [usize; TYPES as usize] = [1, 1, 2, 2, 4, 4, 8, 8, 4, 8];
    let edge = |t: usize, k: u8| -> Vec<u8> {
        let v: u64 = match (t, k % 3) {
            (8, 0) => u64::from(f32::NAN.to_bits()),
            (8, 1) => u64::from((-0.0f32).to_bits()),
            (8, _) => u64::from(1.5f32.to_bits()),
            (9, 0) => f64::NAN.to_bits(),
            (9, 1) => (-0.0f64).to_bits(),
            (9, _) => 2.25f64.to_bits(),
            (_, 0) => u64::MAX,
            (_, 1) => 1 << (WIDTHS[t] * 8 - 1),
            _ => 3,
        };
        v.to_le_bytes()[..WIDTHS[t]].to_vec()
    };
    let mut w = Writer::default();
    w.u64(0).u8(0);
    for t in 0..TYPES {
        let ti = usize::from(t);
        for sub in 0..10u8 {
            w.u8(TYPED_OP).u8(0).u8(t);
            if sub == 0 {
                // First use: 9 elements, all at an edge value.
                w.u8(8);
                w.0.extend(edge(ti, t));
            }
            w.u8(sub % 2).u8(sub).u8(sub);
            match sub {
                0 => {}
                7 => {
                    w.u8(0);
                    w.0.extend(edge(ti, sub));
                }
                8 => {
                    w.u8(1);
                    w.0.extend(edge(ti, sub));
                }
                _ => w.0.extend(edge(ti, sub)),
            }
        }
    }
    w.0
}
