//! A driver for instruction counts of `Map<u64, u64>::update` (not a test
//! of behaviour): `valgrind --tool=callgrind --toggle-collect='*updates*'`
//! on it, as `mmring bench map` runs the update (2,048 entries, 1,024
//! keys, `|v| v + 1`), one hot key or walking all keys. Ignored by default.
//!
//! ```text
//! cargo test --release --test map_profile --no-run
//! MAP_PROFILE=hot valgrind --tool=callgrind --toggle-collect='*updates*' \
//!     target/release/deps/map_profile-* --ignored --exact profile_map_update
//! ```

use mmring::map::Map;

const KEYS: u64 = 1024;
const UPDATES: u64 = 100_000;

#[inline(never)]
fn updates(map: &Map<u64, u64>, spread: bool) -> u64 {
    let mut k = 0;
    let mut done = 0;
    for _ in 0..UPDATES {
        if spread {
            k = (k + 1) % KEYS;
        }
        done += u64::from(map.update(&k, |v| v + 1).is_ok_and(|v| v.is_some()));
    }
    done
}

#[test]
#[ignore = "a profiling driver: run under callgrind"]
fn profile_map_update() {
    let dir = tempfile::tempdir().unwrap();
    let map = Map::<u64, u64>::create(dir.path().join("map"), 2 * KEYS as usize).unwrap();
    for k in 0..KEYS {
        map.insert(&k, 0).unwrap();
    }
    let spread = std::env::var("MAP_PROFILE").is_ok_and(|v| v == "spread");
    assert_eq!(updates(&map, spread), UPDATES);
}
