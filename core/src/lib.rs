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
pub mod attack;
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
pub mod input_grad;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod manifold;
pub mod metrics;
pub mod module;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod regularize;
pub mod rl;
pub mod schedule;
pub mod shape;
pub(crate) mod simd;
pub mod summary;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod vis;
pub mod word2vec;

/// The `rand` crate at the version whose traits kiln's generator [`Rng`]
/// implements (0.9), so a user draws numbers with `kiln::rand::Rng` (also in
/// `kiln::prelude`) and never has to match versions: `cargo add rand` may pick a
/// newer `rand` whose `Rng` trait kiln's generator does not implement.
pub use rand;

pub use cpu::Cpu;
pub use device::{Acc, Act, Backend, Device, Gemm, GemmBatched, PackedB};
pub use elem::{Elem, Scalar};
pub use error::{Error, Result};
pub use init::Init;
pub use input_grad::{GradMode, InputGrad, NodeData};
pub use kernels::{
    BatchNormKernels, ConvKernels, DropoutKernels, EmbeddingKernels, Kernels, LossKernels,
    OptimKernels, PReluKernels, PoolKernels, SoftmaxKernels, UpsampleKernels,
};
pub use module::{Build, Layer, Layer2, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
pub use shape::{Lead, Shape, S1, S2, S3, S4};
pub use tensor::{LabelId, Labels, Tensor, Tokens};

/// kiln's seeded random-number generator (ChaCha8: the same stream on every
/// platform and version of `rand`).
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> Rng {
    use rand::SeedableRng;
    Rng::seed_from_u64(seed)
}

/// The most threads [`set_threads`] accepts: 4 × the available parallelism,
/// and never more than 1024.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_mul(4).min(1024)
}

/// Sets the number of threads kiln's CPU kernels use (rayon's global pool).
/// Call once, before any work; later calls are errors. `0` is rayon's default
/// (one per core). More than [`max_threads`] (4 × the cores, at most 1024) is
/// an error: thousands of threads only slow the kernels down, and starting
/// them can abort the process when their stacks cannot be mapped.
pub fn set_threads(n: usize) -> Result<()> {
    let max = max_threads();
    if n > max {
        return Err(Error::invalid(
            "set_threads",
            format!(
                "{n} threads is more than the {max} allowed (4 × the {} cores this machine offers, at most 1024)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
        ));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::invalid("set_threads", e.to_string()))
}
