//! The examples' smoke runs and the tests that include an example's code as a
//! module, in one test binary (`cargo test --test smoke`; one file's tests:
//! `cargo test --test smoke mnist_gan_smoke::`).
//!
//! Every `tests/*.rs` file is a module of this binary, of
//! `tests/integration.rs`, or its own `[[test]]` target in `Cargo.toml`
//! (`autotests = false`): one binary instead of one per file saves linking
//! and compiling the shared generic code once per file, most of CI's time.
//! `integration::every_test_file_is_built` fails when a file is in none of
//! them.

// `examples/common/char_lm.rs` is a module of both char_gpt and char_lstm
// (each example is its own crate, so each includes it): one copy per example.
#![allow(clippy::duplicate_mod)]

// Examples that more than one file tests, included once here.
#[path = "../examples/char_gpt.rs"]
#[allow(dead_code)]
mod char_gpt;
#[path = "../examples/mnist_pixelcnn.rs"]
#[allow(dead_code)]
mod mnist_pixelcnn;

mod cartpole_pg_smoke;
mod char_gpt_smoke;
mod char_lstm_smoke;
mod embed2d_smoke;
mod fewlabels_smoke;
mod kv_cache;
mod mnist_gan_smoke;
mod mnist_pixelcnn_smoke;
mod mnist_vae_smoke;
mod pixelcnn_autoregressive;
mod pretrain_smoke;
mod style_smoke;
mod translate_smoke;
mod vis_smoke;
