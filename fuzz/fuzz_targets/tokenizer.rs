//! Fuzzes `kiln_core::fuzzing::tokenizer` (see that function for what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_core::fuzzing::tokenizer(data);
});
