//! The shared element of [`Counter`](crate::Counter) and
//! [`AtomicArray`](crate::AtomicArray): [`Atomic<T>`] over one of the
//! [`Element`] types (8- to 64-bit integers, `f32`, `f64`), and the body
//! layouts of both kinds.
//!
//! # Memory ordering
//!
//! Loads are `Acquire`, stores `Release`, read-modify-writes `AcqRel`: a
//! process that loads a value written by another also sees everything that
//! process wrote before it (each `Acquire` pairs with the `Release` half of
//! the store or read-modify-write whose value it reads). The algorithms are
//! [`Atomic<T>`] methods, so they run unchanged over a mapping, the heap and
//! loom.

use std::fmt;

use crate::layout::{BodyLayout, LayoutError, MAX_BODY, whole_lines};
use crate::pod::{Payload, TypeInfo};
use crate::sync::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering,
};

mod private {
    pub trait Sealed {}
}

/// An element type of [`Counter`](crate::Counter) and
/// [`AtomicArray`](crate::AtomicArray): `u8`, `i8`, `u16`, `i16`, `u32`,
/// `i32`, `u64`, `i64`, `f32` or `f64`.
///
/// Every one is lock-free: the integers are the native atomic of their
/// width, and `f32`/`f64` are the bits of an `AtomicU32`/`AtomicU64`. An
/// element occupies exactly its own size in the file (an array of 10 `u8`
/// is 10 bytes), and an operation touches only its own bytes, never a
/// neighbour's, even where several elements share a machine word.
///
/// Integer arithmetic wraps on overflow (as `std`'s atomics do). Float
/// arithmetic and `fetch_max`/`fetch_min` are compare-and-swap loops, and
/// `compare_exchange` on a float compares bit patterns (`-0.0 != 0.0`, and
/// a NaN equals itself only bit for bit); `store`, `swap` and `load` keep
/// every bit pattern as it is, NaN payloads and the sign of zero included.
pub trait Element:
    Payload + PartialOrd + fmt::Debug + fmt::Display + Send + Sync + private::Sealed
{
    /// The atomic that holds this element.
    #[doc(hidden)]
    type Repr: Send + Sync;
    #[doc(hidden)]
    fn new_repr(v: Self) -> Self::Repr;
    #[doc(hidden)]
    fn load(r: &Self::Repr, o: Ordering) -> Self;
    #[doc(hidden)]
    fn store(r: &Self::Repr, v: Self, o: Ordering);
    #[doc(hidden)]
    fn swap(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn cas(r: &Self::Repr, cur: Self, new: Self, s: Ordering, f: Ordering) -> Result<Self, Self>;
    #[doc(hidden)]
    fn cas_weak(
        r: &Self::Repr,
        cur: Self,
        new: Self,
        s: Ordering,
        f: Ordering,
    ) -> Result<Self, Self>;
    #[doc(hidden)]
    fn fetch_add(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_sub(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_max(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_min(r: &Self::Repr, v: Self, o: Ordering) -> Self;
}

macro_rules! int_element {
    ($($t:ty => $atomic:ty),* $(,)?) => {$(
        impl private::Sealed for $t {}
        impl Element for $t {
            type Repr = $atomic;
            fn new_repr(v: Self) -> $atomic {
                <$atomic>::new(v)
            }
            fn load(r: &$atomic, o: Ordering) -> Self {
                r.load(o)
            }
            fn store(r: &$atomic, v: Self, o: Ordering) {
                r.store(v, o)
            }
            fn swap(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.swap(v, o)
            }
            fn cas(r: &$atomic, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
                r.compare_exchange(c, n, s, f)
            }
            fn cas_weak(
                r: &$atomic,
                c: Self,
                n: Self,
                s: Ordering,
                f: Ordering,
            ) -> Result<Self, Self> {
                r.compare_exchange_weak(c, n, s, f)
            }
            fn fetch_add(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_add(v, o)
            }
            fn fetch_sub(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_sub(v, o)
            }
            fn fetch_max(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_max(v, o)
            }
            fn fetch_min(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_min(v, o)
            }
        }
    )*};
}

int_element!(
    u8 => AtomicU8,
    i8 => AtomicI8,
    u16 => AtomicU16,
    i16 => AtomicI16,
    u32 => AtomicU32,
    i32 => AtomicI32,
    u64 => AtomicU64,
    i64 => AtomicI64,
);

/// The failure ordering of a compare-and-swap whose success ordering is
/// `o`: a failure is only a load, so it takes the load half of `o`
/// (Acquire for AcqRel/Acquire/SeqCst, Relaxed for Release/Relaxed).
fn load_half(o: Ordering) -> Ordering {
    match o {
        Ordering::AcqRel | Ordering::Acquire | Ordering::SeqCst => Ordering::Acquire,
        _ => Ordering::Relaxed,
    }
}

macro_rules! float_element {
    ($($t:ty => $atomic:ty, $rmw:ident);* $(;)?) => {$(
        impl private::Sealed for $t {}

        #[doc = concat!("A compare-and-swap loop applying `f` to the bits of an `", stringify!($t), "`.")]
        fn $rmw(r: &$atomic, o: Ordering, f: impl Fn($t) -> $t) -> $t {
            let fail = load_half(o);
            // The first read takes the load half of `o`, as the failure
            // re-reads do: each value `f` sees is read like `load`.
            let mut cur = r.load(fail);
            loop {
                let new = f(<$t>::from_bits(cur)).to_bits();
                match r.compare_exchange_weak(cur, new, o, fail) {
                    Ok(prev) => return <$t>::from_bits(prev),
                    Err(now) => cur = now,
                }
            }
        }

        impl Element for $t {
            type Repr = $atomic;
            fn new_repr(v: Self) -> $atomic {
                <$atomic>::new(v.to_bits())
            }
            fn load(r: &$atomic, o: Ordering) -> Self {
                <$t>::from_bits(r.load(o))
            }
            fn store(r: &$atomic, v: Self, o: Ordering) {
                r.store(v.to_bits(), o)
            }
            fn swap(r: &$atomic, v: Self, o: Ordering) -> Self {
                <$t>::from_bits(r.swap(v.to_bits(), o))
            }
            fn cas(r: &$atomic, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
                r.compare_exchange(c.to_bits(), n.to_bits(), s, f)
                    .map(<$t>::from_bits)
                    .map_err(<$t>::from_bits)
            }
            fn cas_weak(
                r: &$atomic,
                c: Self,
                n: Self,
                s: Ordering,
                f: Ordering,
            ) -> Result<Self, Self> {
                r.compare_exchange_weak(c.to_bits(), n.to_bits(), s, f)
                    .map(<$t>::from_bits)
                    .map_err(<$t>::from_bits)
            }
            fn fetch_add(r: &$atomic, v: Self, o: Ordering) -> Self {
                $rmw(r, o, |x| x + v)
            }
            fn fetch_sub(r: &$atomic, v: Self, o: Ordering) -> Self {
                $rmw(r, o, |x| x - v)
            }
            fn fetch_max(r: &$atomic, v: Self, o: Ordering) -> Self {
                $rmw(r, o, |x| x.max(v))
            }
            fn fetch_min(r: &$atomic, v: Self, o: Ordering) -> Self {
                $rmw(r, o, |x| x.min(v))
            }
        }
    )*};
}

float_element!(
    f32 => AtomicU32, f32_rmw;
    f64 => AtomicU64, f64_rmw;
);

/// One shared element: the unit [`Counter`](crate::Counter) and [`AtomicArray`](crate::AtomicArray) are made of.
///
/// Has the size, alignment and bytes of a plain `T`, so it is laid directly
/// over the mapping; [`Atomic::new`] makes one on the heap (tests, loom).
#[repr(transparent)]
pub struct Atomic<T: Element> {
    repr: T::Repr,
}

#[cfg(not(loom))]
// SAFETY: `repr(transparent)` over `T::Repr`, which is one of the std atomic
// integers (the `Element` impls above, sealed), so an `Atomic<T>` has its
// layout and accepts every bit pattern, exactly as that atomic does.
unsafe impl<T: Element> crate::layout::MappedAtomic for Atomic<T> {}

/// Each element has its plain type's size and alignment in the file
/// (docs/FORMAT.md: packed at its natural size).
#[cfg(not(loom))]
mod layout_checks {
    use super::Atomic;
    use static_assertions::const_assert_eq;

    macro_rules! same_layout {
        ($($t:ty),*) => {$(
            const_assert_eq!(size_of::<Atomic<$t>>(), size_of::<$t>());
            const_assert_eq!(align_of::<Atomic<$t>>(), size_of::<$t>());
        )*};
    }
    same_layout!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
}

impl<T: Element> fmt::Debug for Atomic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.load(), f)
    }
}

impl<T: Element> Atomic<T> {
    /// A new element on the heap (the mapped ones come from [`Counter`](crate::Counter) and
    /// [`AtomicArray`](crate::AtomicArray)).
    pub fn new(v: T) -> Self {
        Self {
            repr: T::new_repr(v),
        }
    }

    /// The current value.
    ///
    /// It may be out of date as soon as it returns: other processes keep
    /// changing it.
    #[inline]
    pub fn load(&self) -> T {
        // Acquire pairs with the Release half of whichever store or
        // read-modify-write wrote the value we read.
        T::load(&self.repr, Ordering::Acquire)
    }

    /// Replaces the value.
    #[inline]
    pub fn store(&self, v: T) {
        // Release pairs with the Acquire load (or RMW) that reads this value.
        T::store(&self.repr, v, Ordering::Release)
    }

    /// Replaces the value, returning the old one.
    #[inline]
    pub fn swap(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::swap(&self.repr, v, Ordering::AcqRel)
    }

    /// Adds `v` (wrapping for integers), returning the previous value.
    #[inline]
    pub fn fetch_add(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_add(&self.repr, v, Ordering::AcqRel)
    }

    /// Subtracts `v` (wrapping for integers), returning the previous value.
    #[inline]
    pub fn fetch_sub(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_sub(&self.repr, v, Ordering::AcqRel)
    }

    /// Stores the maximum of the value and `v`, returning the previous value.
    #[inline]
    pub fn fetch_max(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_max(&self.repr, v, Ordering::AcqRel)
    }

    /// Stores the minimum of the value and `v`, returning the previous value.
    #[inline]
    pub fn fetch_min(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_min(&self.repr, v, Ordering::AcqRel)
    }

    /// Stores `new` if the value is `current`: `Ok(previous)` if it was,
    /// `Err(actual)` if not.
    #[inline]
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // Success AcqRel: reads like `load`, publishes like `store`. Failure
        // Acquire: the value returned in `Err` is read like `load`.
        T::cas(
            &self.repr,
            current,
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
    }

    /// Applies `f` to the value until the compare-and-swap that installs
    /// its result succeeds (or `f` returns `None`): `Ok(previous)` on
    /// success, `Err(current)` if `f` declined.
    ///
    /// `f` may run several times when other processes race: it must be a
    /// pure function of its argument.
    ///
    /// # Examples
    ///
    /// Take a ticket if any are left (never below zero, however many
    /// processes race):
    ///
    /// ```
    /// use mmring::counter::Atomic;
    /// let stock = Atomic::new(1i64);
    /// assert_eq!(stock.fetch_update(|n| (n > 0).then(|| n - 1)), Ok(1));
    /// assert_eq!(stock.fetch_update(|n| (n > 0).then(|| n - 1)), Err(0));
    /// ```
    pub fn fetch_update(&self, mut f: impl FnMut(T) -> Option<T>) -> Result<T, T> {
        let mut prev = self.load();
        while let Some(next) = f(prev) {
            // Success AcqRel: reads like `load`, publishes like `store`.
            // Failure Acquire: the fresh value is read like `load`, and `f`
            // runs again on it.
            match T::cas_weak(&self.repr, prev, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(p) => return Ok(p),
                Err(now) => prev = now,
            }
        }
        Err(prev)
    }
}

/// Refuses an element whose size is not one of `sizes`, or whose alignment
/// is not a power of two up to its size (elements sit at multiples of
/// their size from the 4096-aligned body, so each is then aligned for its
/// type and for the atomic of its width).
fn element(elem: TypeInfo, sizes: &[u64]) -> Result<u64, LayoutError> {
    let size = u64::from(elem.size);
    let align = u64::from(elem.align);
    if sizes.contains(&size) && align.is_power_of_two() && align <= size {
        Ok(size)
    } else {
        Err(LayoutError::Payload(format!(
            "element size one of {sizes:?} with a power-of-two alignment up to the size, found size {}, align {}",
            elem.size, elem.align
        )))
    }
}

/// The body layout of a counter: one 8-byte element on its own line.
pub fn counter_body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    element(elem, &[8])?;
    if capacity != 1 {
        return Err(LayoutError::Capacity("exactly 1 for a counter".into()));
    }
    Ok(BodyLayout {
        slot_size: 8,
        body_size: 64,
    })
}

/// The body layout of an array of `capacity` 1-, 2-, 4- or 8-byte
/// elements, packed at their natural size (an array of 10 `u8` is 10
/// bytes) and rounded up to whole 64-byte lines.
pub fn array_body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let size = element(elem, &[1, 2, 4, 8])?;
    let max = MAX_BODY / size;
    if capacity == 0 || capacity > max {
        return Err(LayoutError::Capacity(format!(
            "between 1 and {max} elements"
        )));
    }
    Ok(BodyLayout {
        slot_size: size,
        body_size: whole_lines(capacity * size),
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Every operation of one integer type, checked against `std`'s
    /// wrapping arithmetic, starting near the type's limits so that
    /// `fetch_add` and `fetch_sub` wrap both ways.
    macro_rules! integer_ops {
        ($($name:ident: $t:ty),* $(,)?) => {$(
            #[test]
            fn $name() {
                let a = Atomic::new(<$t>::MAX - 1);
                assert_eq!(a.load(), <$t>::MAX - 1);
                assert_eq!(a.fetch_add(3), <$t>::MAX - 1);
                assert_eq!(a.load(), <$t>::MAX.wrapping_add(2), "fetch_add wraps");
                a.store(<$t>::MIN + 1);
                assert_eq!(a.fetch_sub(2), <$t>::MIN + 1);
                assert_eq!(a.load(), <$t>::MAX, "fetch_sub wraps");
                assert_eq!(a.swap(5), <$t>::MAX);
                assert_eq!(a.fetch_max(9), 5);
                assert_eq!(a.fetch_max(7), 9);
                assert_eq!(a.fetch_min(3), 9);
                assert_eq!(a.fetch_min(<$t>::MIN), 3);
                assert_eq!(a.load(), <$t>::MIN);
                assert_eq!(a.compare_exchange(1, 2), Err(<$t>::MIN));
                assert_eq!(a.compare_exchange(<$t>::MIN, 2), Ok(<$t>::MIN));
                assert_eq!(a.fetch_update(|x| x.checked_add(10)), Ok(2));
                assert_eq!(a.fetch_update(|_| None), Err(12));
                a.store(<$t>::MAX);
                assert_eq!(a.fetch_update(|x| x.checked_add(1)), Err(<$t>::MAX));
                assert_eq!(format!("{a:?}"), format!("{:?}", <$t>::MAX));
            }
        )*};
    }

    integer_ops!(
        u8_operations: u8,
        i8_operations: i8,
        u16_operations: u16,
        i16_operations: i16,
        u32_operations: u32,
        i32_operations: i32,
        u64_operations: u64,
        i64_operations: i64,
    );

    #[test]
    fn signed_order_is_signed() {
        let a = Atomic::new(-1i8);
        assert_eq!(a.fetch_max(1), -1);
        assert_eq!(a.fetch_min(-128), 1);
        assert_eq!(a.load(), -128);
        let b = Atomic::new(-300i16);
        assert_eq!(b.fetch_max(-301), -300, "-300 > -301");
        assert_eq!(b.fetch_sub(i16::MAX), -300);
        assert_eq!(b.load(), (-300i16).wrapping_sub(i16::MAX));
    }

    /// Every operation of one float type: arithmetic, max/min and
    /// compare-and-swap by bit pattern.
    macro_rules! float_ops {
        ($($name:ident: $t:ty),* $(,)?) => {$(
            #[test]
            fn $name() {
                let f = Atomic::new(1.5 as $t);
                assert_eq!(f.fetch_add(2.25), 1.5);
                assert_eq!(f.fetch_sub(0.75), 3.75);
                assert_eq!(f.fetch_max(10.0), 3.0);
                assert_eq!(f.fetch_min(-1.0), 10.0);
                assert_eq!(f.load(), -1.0);
                assert_eq!(f.swap(-2.0), -1.0);
                assert_eq!(f.compare_exchange(-1.0, 0.0), Err(-2.0));
                assert_eq!(f.compare_exchange(-2.0, 2.0), Ok(-2.0));
                assert_eq!(f.fetch_update(|x| (x > 1.0).then_some(x / 2.0)), Ok(2.0));
                assert_eq!(f.fetch_update(|x| (x > 1.0).then_some(x / 2.0)), Err(1.0));
                f.store(<$t>::MAX);
                assert_eq!(f.fetch_add(<$t>::MAX), <$t>::MAX);
                assert_eq!(f.load(), <$t>::INFINITY, "float arithmetic overflows to infinity");
            }
        )*};
    }

    float_ops!(f32_operations: f32, f64_operations: f64);

    #[test]
    fn f32_bit_patterns_round_trip() {
        // A quiet NaN with a payload, a signalling-pattern NaN, a negative
        // NaN, -0.0, the smallest subnormal, infinity.
        let patterns: [u32; 6] = [
            0x7fc0_1234,
            0x7f80_0001,
            0xffc0_0000,
            0x8000_0000,
            0x0000_0001,
            0x7f80_0000,
        ];
        for bits in patterns {
            let v = f32::from_bits(bits);
            let a = Atomic::new(v);
            assert_eq!(a.load().to_bits(), bits, "new/load of {bits:#x}");
            a.store(0.0);
            a.store(v);
            assert_eq!(a.load().to_bits(), bits, "store/load of {bits:#x}");
            assert_eq!(a.swap(1.0).to_bits(), bits, "swap of {bits:#x}");
            a.store(v);
            // Compared bit for bit: a NaN equals itself, -0.0 is not 0.0.
            assert_eq!(a.compare_exchange(v, 2.0).map(f32::to_bits), Ok(bits));
            assert_eq!(
                a.compare_exchange(v, 3.0).map_err(f32::to_bits),
                Err(2.0f32.to_bits())
            );
        }
        let z = Atomic::new(-0.0f32);
        assert_eq!(
            z.compare_exchange(0.0, 1.0).map_err(f32::to_bits),
            Err(0x8000_0000)
        );
        let z = Atomic::new(0.0f32);
        assert_eq!(z.compare_exchange(-0.0, 1.0).map_err(f32::to_bits), Err(0));
        // The CAS-loop arithmetic on a NaN installs what the arithmetic gives.
        let nan = Atomic::new(f32::NAN);
        assert!(nan.fetch_add(1.0).is_nan());
        assert!(nan.load().is_nan());
    }

    #[test]
    fn f64_bit_patterns_round_trip() {
        for bits in [
            0x7ff8_0000_0000_1234u64,
            0xfff0_0000_0000_0001,
            0x8000_0000_0000_0000,
        ] {
            let v = f64::from_bits(bits);
            let a = Atomic::new(0.0f64);
            a.store(v);
            assert_eq!(a.load().to_bits(), bits);
            assert_eq!(a.compare_exchange(v, 1.0).map(f64::to_bits), Ok(bits));
        }
    }

    /// `fetch_update` re-runs its closure on the fresh value when the
    /// compare-and-swap loses to another write: here the closure itself
    /// writes, the first time, as a racing process would.
    macro_rules! fetch_update_retries {
        ($($name:ident: $t:ty),* $(,)?) => {$(
            #[test]
            fn $name() {
                let a = Atomic::new(1 as $t);
                let mut seen = Vec::new();
                let got = a.fetch_update(|x| {
                    seen.push(x);
                    if seen.len() == 1 {
                        a.store(5 as $t);
                    }
                    Some(x + (1 as $t))
                });
                assert_eq!(got, Ok(5 as $t), "the previous value is the one installed over");
                assert_eq!(seen, vec![1 as $t, 5 as $t], "retried on the fresh value");
                assert_eq!(a.load(), 6 as $t);
            }
        )*};
    }

    fetch_update_retries!(
        fetch_update_retries_u8: u8,
        fetch_update_retries_i8: i8,
        fetch_update_retries_u16: u16,
        fetch_update_retries_i16: i16,
        fetch_update_retries_u32: u32,
        fetch_update_retries_i64: i64,
        fetch_update_retries_f32: f32,
        fetch_update_retries_f64: f64,
    );

    #[test]
    fn array_layout_packs_every_width() {
        fn layout<T: Payload>(n: u64) -> Result<BodyLayout, LayoutError> {
            array_body_layout(TypeInfo::of::<T>(), n)
        }
        let l = layout::<u8>(10).unwrap();
        assert_eq!(
            (l.slot_size, l.body_size),
            (1, 64),
            "10 u8 are 10 bytes, one line"
        );
        let l = layout::<i16>(33).unwrap();
        assert_eq!((l.slot_size, l.body_size), (2, 128));
        let l = layout::<f32>(16).unwrap();
        assert_eq!((l.slot_size, l.body_size), (4, 64));
        let l = layout::<f64>(9).unwrap();
        assert_eq!((l.slot_size, l.body_size), (8, 128));
        assert!(layout::<u8>(MAX_BODY).is_ok());
        assert!(matches!(
            layout::<u8>(MAX_BODY + 1),
            Err(LayoutError::Capacity(_))
        ));
        assert!(matches!(
            layout::<u16>(MAX_BODY / 2 + 1),
            Err(LayoutError::Capacity(_))
        ));
        assert!(matches!(layout::<u8>(0), Err(LayoutError::Capacity(_))));
        assert!(matches!(layout::<u128>(1), Err(LayoutError::Payload(_))));
        assert!(matches!(layout::<[u8; 3]>(1), Err(LayoutError::Payload(_))));
        // A 2-byte element aligned to 1 is fine; one aligned beyond its
        // size is not (it could not sit at every multiple of its size).
        assert!(layout::<[u8; 2]>(1).is_ok());
        let mut over = TypeInfo::of::<u16>();
        over.align = 4;
        assert!(matches!(
            array_body_layout(over, 1),
            Err(LayoutError::Payload(_))
        ));
    }

    #[test]
    fn fetch_update_never_goes_below_zero_under_thread_contention() {
        let stock = std::sync::Arc::new(Atomic::new(1000i64));
        let sold: i64 = (0..4)
            .map(|_| {
                let stock = stock.clone();
                std::thread::spawn(move || {
                    (0..600)
                        .filter(|_| stock.fetch_update(|n| (n > 0).then(|| n - 1)).is_ok())
                        .count() as i64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(sold, 1000);
        assert_eq!(stock.load(), 0);
    }
}
