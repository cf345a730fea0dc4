//! Compile-fail tests: every class of shape mistake is a compile error whose
//! message names the shapes in numbers, at the span of the layer at fault.
//!
//! One case per file in `tests/ui/`, named after its class, each with the
//! expected compiler output next to it (`.stderr`). The expected output is
//! never written by hand: regenerate it with
//! `TRYBUILD=overwrite cargo test --test compile_fail` and review the diff.
//! The files are written for Rust 1.95 stable; rustc's own wording (E0308)
//! may differ on other toolchains.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
