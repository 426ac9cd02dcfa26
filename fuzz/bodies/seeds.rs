//! The seed corpus: every target's seeds by name, as
//! `tests/fuzz_corpus.rs` writes them under `fuzz/corpus/<target>/`.

/// (target, seed name, bytes) for every seed of every target.
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, seeds: Vec<(String, Vec<u8>)>| {
        out.extend(seeds.into_iter().map(|(n, b)| (target, n, b)));
    };
    let named = |v: Vec<(&'static str, Vec<u8>)>| {
        v.into_iter()
            .map(|(n, b)| (n.to_string(), b))
            .collect::<Vec<_>>()
    };
    add("open_file", super::open_file::seeds());
    add("spsc_ops", named(super::spsc_ops::seeds()));
    add("mpmc_ops", named(super::mpmc_ops::seeds()));
    add("hostile_peer", named(super::hostile_peer::seeds()));
    add("seqcell", named(super::seqcell::seeds()));
    add("counter", named(super::counter::seeds()));
    out
}
