//! cargo-fuzz target `counter`: the body lives in `bodies/counter.rs`, which the
//! corpus replay test (`tests/fuzz_corpus.rs`) runs too.
#![no_main]

#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::counter::run(data));
