//! # kiln-core
//!
//! Tensors whose per-sample shapes are types, the [`Device`]/[`Backend`]
//! abstraction with the CPU device, layers with hand-derived backward passes,
//! losses, optimizers, initialisers and data readers. The `network!` macro
//! (crate `kiln-macros`) generates code that calls into this crate; everything
//! that can be ordinary generic Rust lives here.

#![warn(missing_docs)]
#![allow(clippy::needless_range_loop)]

pub(crate) mod atomic;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod decode;
pub mod device;
pub mod elem;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod gemm;
pub mod init;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod module;
pub mod ops;
pub mod optim;
pub mod regularize;
pub mod schedule;
pub mod shape;
pub mod summary;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod word2vec;

pub use cpu::Cpu;
pub use device::{Acc, Act, Backend, Device, Gemm, GemmBatched, PackedB};
pub use elem::{Elem, Scalar};
pub use error::{Error, Result};
pub use init::Init;
pub use kernels::{
    BatchNormKernels, ConvKernels, DropoutKernels, EmbeddingKernels, Kernels, LossKernels,
    OptimKernels, PReluKernels, PoolKernels, SoftmaxKernels, UpsampleKernels,
};
pub use module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
pub use shape::{Lead, Shape, S1, S2, S3, S4};
pub use tensor::{Labels, Tensor, Tokens};

/// kiln's seeded random-number generator (ChaCha8: the same stream on every
/// platform and version of `rand`).
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> Rng {
    use rand::SeedableRng;
    Rng::seed_from_u64(seed)
}

/// Sets the number of threads kiln's CPU kernels use (rayon's global pool).
/// Call once, before any work; later calls are errors.
pub fn set_threads(n: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::invalid("set_threads", e.to_string()))
}
