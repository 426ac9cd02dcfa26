//! The shared element of [`Counter`](crate::Counter)(crate::Counter) and
//! [`AtomicArray`](crate::AtomicArray)(crate::AtomicArray): [`Atomic<T>`] over one of the
//! [`Element`] types, and the body layouts of both kinds.
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
use crate::sync::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

mod private {
    pub trait Sealed {}
}

/// An element type of [`Counter`](crate::Counter) and [`AtomicArray`](crate::AtomicArray): `u32`, `i32`, `u64`,
/// `i64` or `f64`.
///
/// Integer arithmetic wraps on overflow (as `std`'s atomics do). `f64`
/// arithmetic and `fetch_max`/`fetch_min` are compare-and-swap loops, and
/// `compare_exchange` on `f64` compares bit patterns (`-0.0 != 0.0`, and a
/// NaN equals itself only bit for bit).
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
    ($t:ty, $atomic:ty) => {
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
    };
}

int_element!(u32, AtomicU32);
int_element!(i32, AtomicI32);
int_element!(u64, AtomicU64);
int_element!(i64, AtomicI64);

impl private::Sealed for f64 {}

/// A compare-and-swap loop applying `f` to the bits of an `f64`.
fn f64_rmw(r: &AtomicU64, o: Ordering, f: impl Fn(f64) -> f64) -> f64 {
    // The failure ordering of a CAS may not be stronger than needed for a
    // load; Acquire (or Relaxed for Release/Relaxed) is what `o` implies.
    let fail = match o {
        Ordering::AcqRel | Ordering::Acquire | Ordering::SeqCst => Ordering::Acquire,
        _ => Ordering::Relaxed,
    };
    let mut cur = r.load(fail);
    loop {
        let new = f(f64::from_bits(cur)).to_bits();
        match r.compare_exchange_weak(cur, new, o, fail) {
            Ok(prev) => return f64::from_bits(prev),
            Err(now) => cur = now,
        }
    }
}

impl Element for f64 {
    type Repr = AtomicU64;
    fn new_repr(v: Self) -> AtomicU64 {
        AtomicU64::new(v.to_bits())
    }
    fn load(r: &AtomicU64, o: Ordering) -> Self {
        f64::from_bits(r.load(o))
    }
    fn store(r: &AtomicU64, v: Self, o: Ordering) {
        r.store(v.to_bits(), o)
    }
    fn swap(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64::from_bits(r.swap(v.to_bits(), o))
    }
    fn cas(r: &AtomicU64, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
        r.compare_exchange(c.to_bits(), n.to_bits(), s, f)
            .map(f64::from_bits)
            .map_err(f64::from_bits)
    }
    fn cas_weak(r: &AtomicU64, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
        r.compare_exchange_weak(c.to_bits(), n.to_bits(), s, f)
            .map(f64::from_bits)
            .map_err(f64::from_bits)
    }
    fn fetch_add(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x + v)
    }
    fn fetch_sub(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x - v)
    }
    fn fetch_max(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x.max(v))
    }
    fn fetch_min(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x.min(v))
    }
}

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

/// Refuses an element that is not `size` bytes with a power-of-two
/// alignment up to 64.
fn element(elem: TypeInfo, sizes: &[u64]) -> Result<u64, LayoutError> {
    let size = u64::from(elem.size);
    if sizes.contains(&size) && elem.align.is_power_of_two() && elem.align <= 64 {
        Ok(size)
    } else {
        Err(LayoutError::Payload(format!(
            "element size one of {sizes:?} with a power-of-two alignment up to 64, found size {}, align {}",
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

/// The body layout of an array of `capacity` 4- or 8-byte elements.
pub fn array_body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let size = element(elem, &[4, 8])?;
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

    #[test]
    fn integer_operations_match_std() {
        let a = Atomic::new(5i64);
        assert_eq!(a.fetch_add(3), 5);
        assert_eq!(a.fetch_sub(10), 8);
        assert_eq!(a.load(), -2);
        assert_eq!(a.fetch_max(7), -2);
        assert_eq!(a.fetch_min(1), 7);
        assert_eq!(a.compare_exchange(0, 9), Err(1));
        assert_eq!(a.compare_exchange(1, 9), Ok(1));
        assert_eq!(a.swap(4), 9);
        let u = Atomic::new(u32::MAX);
        assert_eq!(u.fetch_add(1), u32::MAX);
        assert_eq!(u.load(), 0, "integer arithmetic wraps");
    }

    #[test]
    fn float_operations_are_cas_loops() {
        let f = Atomic::new(1.5f64);
        assert_eq!(f.fetch_add(2.25), 1.5);
        assert_eq!(f.fetch_sub(0.75), 3.75);
        assert_eq!(f.fetch_max(10.0), 3.0);
        assert_eq!(f.fetch_min(-1.0), 10.0);
        assert_eq!(f.load(), -1.0);
        assert_eq!(f.compare_exchange(-1.0, 2.0), Ok(-1.0));
        assert_eq!(f.fetch_update(|x| (x > 1.0).then_some(x / 2.0)), Ok(2.0));
        assert_eq!(f.fetch_update(|x| (x > 1.0).then_some(x / 2.0)), Err(1.0));
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
