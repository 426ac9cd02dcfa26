//! cargo-fuzz target `open_file`: the body lives in `bodies/open_file.rs`, which the
//! corpus replay test (`tests/fuzz_corpus.rs`) runs too.
#![no_main]

#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::open_file::run(data));
