//! Fuzzes `kiln_core::fuzzing::checkpoint` (see that function for what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_core::fuzzing::checkpoint(data);
});
