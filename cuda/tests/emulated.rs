//! The CUDA device's tests that run on the host emulation (or on a GPU with
//! `KILN_TEST_GPU=1`), in one test binary: `cargo test -p kiln-cuda --test
//! emulated`; one file's tests: `cargo test -p kiln-cuda --test emulated
//! network::`. One binary instead of one per file saves compiling the shared
//! generic code and linking once per file (CI's time is mostly compiling).
//!
//! `autotests = false`: every `tests/*.rs` file is a module here or its own
//! `[[test]]` target in `Cargo.toml` (those that replace the allocator or
//! re-run their own executable); `every_test_file_is_built` checks it.

mod common;

mod backward_from;
mod cublas_args;
mod few_labels;
mod gan;
mod layers;
mod nan;
mod network;
mod nvrtc_compile;
mod onnx;
mod pixelcnn;
mod style;

/// `autotests = false` means cargo no longer finds `tests/*.rs` by itself: a
/// new file that is not declared anywhere would never be compiled or run.
#[test]
fn every_test_file_is_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let missing = kiln::testing::unbuilt_test_files(root, &["tests/emulated.rs"]);
    assert!(
        missing.is_empty(),
        "tests/{missing:?} not built: add `mod NAME;` to cuda/tests/emulated.rs \
         or a [[test]] target to cuda/Cargo.toml"
    );
}
