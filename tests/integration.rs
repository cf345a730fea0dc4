//! The integration tests, in one test binary (`cargo test --test
//! integration`; one file's tests: `cargo test --test integration
//! checkpoint::`).
//!
//! Every `tests/*.rs` file is a module of this binary, of `tests/smoke.rs`
//! (the examples' smoke runs), or its own `[[test]]` target in `Cargo.toml`
//! (`autotests = false`): one binary instead of one per file saves linking
//! and compiling the shared generic code once per file, most of CI's time.
//! A file needs its own binary when it changes process-wide state: the
//! thread count (`cartpole_dqn_smoke`), the GEMM implementation
//! (`gemm_crate`), the global allocator (`zero_alloc`); `compile_fail`
//! drives trybuild.

mod anomaly;
mod attention;
mod backward_from;
mod backward_from_nested;
mod bigram;
mod cartpole;
mod checkpoint;
mod elem_inference;
mod faults;
mod faults_nan;
mod fuzz_corpus;
mod gpt_init;
mod gpt_twin;
mod grad_accum;
mod gradcheck;
mod gradcheck_cnn;
mod gradcheck_pixelcnn;
mod gradcheck_seq;
mod gridworld;
mod gru;
mod input_grad_layers;
mod lstm;
mod mnist_e2e;
mod nested_decoder;
mod new_layers_train;
mod onnx_ort;
mod onnx_runtime;
mod onnx_runtime_seq;
mod onnx_smoke;
mod param_groups;
mod perplexity;
mod python_interop;
mod pytorch_twin;
mod readme_runner;
mod recurrent;
mod resume;
mod resume_runner;
mod rnn;
mod rnn_state;
mod runtime_errors;
mod saliency;
mod seq2seq;
mod shakespeare_data;
mod tied;
mod token_network;
mod torch_reference;
mod torch_reference_attention;
mod torch_reference_layers;
mod torch_reference_tokens;
mod torch_reference_toolkit;
mod transfer;
mod vis_known_answer;
mod word2vec;

/// `autotests = false` means cargo no longer finds `tests/*.rs` by itself: a
/// new file that is not declared anywhere would never be compiled or run.
#[test]
fn every_test_file_is_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let missing =
        kiln::testing::unbuilt_test_files(root, &["tests/integration.rs", "tests/smoke.rs"]);
    assert!(
        missing.is_empty(),
        "tests/{missing:?} not built: add `mod NAME;` to tests/integration.rs or tests/smoke.rs, \
         or a [[test]] target to Cargo.toml"
    );
}
