//! cargo-fuzz target `hostile_peer`: the body lives in `bodies/hostile_peer.rs`, which the
//! corpus replay test (`tests/fuzz_corpus.rs`) runs too.
#![no_main]

#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::hostile_peer::run(data));
