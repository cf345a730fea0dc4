//! # kiln
//!
//! Deep learning in Rust where a model is written once, as layer declarations
//! inside [`network!`], and becomes ordinary Rust: a struct whose tensor shapes
//! are known at compile time, a generated forward pass and a generated
//! backward pass built from hand-derived gradients (no runtime tape).
//!
//! ```
//! use kiln::prelude::*;
//!
//! kiln::network! {
//!     /// A small MLP.
//!     pub struct Mlp {
//!         input: [4],
//!         fc1: Linear(8),
//!         relu,
//!         fc2: Linear(3),
//!     }
//! }
//!
//! # fn main() -> kiln::Result<()> {
//! let dev = Cpu;
//! let mut net = Mlp::<f32, Cpu>::init(&dev, &mut rng(0))?;
//! let (mut tape, mut grads) = (net.tape()?, net.grads()?);
//! let mut opt = Sgd::new(0.1);
//! let x = Tensor::<S1<4>>::from_slice(&dev, &[0.5, -1.0, 0.25, 2.0])?;
//! let y = Labels::<3>::new::<f32>(&dev, &[2])?;
//! let mut dlogits = Tensor::empty(&dev)?;
//! let mut first = 0.0;
//! for step in 0..20 {
//!     let logits = net.forward_train(&x, &mut tape)?;
//!     let loss = cross_entropy(logits, &y, Some(&mut dlogits))?;
//!     if step == 0 { first = loss; }
//!     net.backward(&mut tape, &dlogits, &mut grads)?;
//!     opt.step(&mut net, &grads)?;
//! }
//! assert!(cross_entropy(&net.forward(&x)?, &y, None)? < first);
//! assert_eq!(Mlp::PARAMS, 4 * 8 + 8 + 8 * 3 + 3);
//! # Ok(()) }
//! ```

pub use kiln_core::*;

/// The CUDA device (cargo feature `cuda`): `kiln::Cuda::new(0)?`.
#[cfg(feature = "cuda")]
pub use kiln_cuda as cuda;
#[cfg(feature = "cuda")]
pub use kiln_cuda::Cuda;

/// A job that runs on whichever device the user picks (`--device`, see
/// [`on_device`]): generic over the device, so one body serves the CPU and
/// CUDA.
pub trait DeviceJob {
    /// What the job returns.
    type Output;
    /// Runs on `dev`.
    fn run<D: kiln_core::kernels::Kernels<f32>>(self, dev: &D) -> Self::Output;
}

/// Opens the device `arg` names and runs `job` on it. `Err` when it cannot
/// be opened, before the job starts: a binary built without the `cuda`
/// feature, or no driver, GPU, NVRTC or cuBLAS (the message names what is
/// missing).
pub fn on_device<J: DeviceJob>(arg: kiln_core::train::DeviceArg, job: J) -> Result<J::Output> {
    use kiln_core::train::DeviceArg;
    match arg {
        DeviceArg::Cpu => Ok(job.run(&Cpu)),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda(ordinal) => {
            let dev = kiln_cuda::Cuda::new(ordinal)?;
            println!("{}: {}", dev.name(), dev.describe());
            Ok(job.run(&dev))
        }
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda(ordinal) => Err(Error::invalid(
            "--device",
            format!(
                "cuda:{ordinal}: this binary was built without CUDA support; rebuild with \
                 `--features cuda` (cargo run --release --features cuda --example … -- --device cuda)"
            ),
        )),
    }
}

#[doc(hidden)]
pub mod __private {
    pub use kiln_macros::network_impl;
}

/// Declares a network. See the README for the full grammar; in short:
///
/// ```text
/// kiln::network! {
///     pub struct Name {                       // a chain:
///         input: [1, 28, 28],
///         flatten,
///         fc1: Linear(128),                   // named layers become fields
///         relu,
///         fc2: Linear(10),
///     }
/// }
/// kiln::network! {
///     pub struct Graph {                      // a graph:
///         input a: [16],
///         input b: [8],
///         layer enc = Linear(16);             // applied twice: shared weights
///         let h = a |> enc |> relu;
///         let s = h + a;                      // residual addition
///         output logits = concat(s, b) |> head: Linear(4);
///         output s;
///     }
/// }
/// ```
#[macro_export]
macro_rules! network {
    ($($t:tt)*) => {
        $crate::__private::network_impl! { $crate; $($t)* }
    };
}

/// Everything a training script needs, in one import (including the methods
/// of `rand`'s `Rng` trait on kiln's generator: `rng(0).random::<f32>()`).
pub mod prelude {
    pub use kiln_core::data::{Dataset, Mnist};
    pub use kiln_core::layers::TokenLayer;
    pub use kiln_core::loss::{
        bce_with_logits, bce_with_logits_sum, cross_entropy, cross_entropy_tokens, hinge, l1, mse,
    };
    pub use kiln_core::optim::{Adam, Optimizer, Sgd};
    pub use kiln_core::rand::Rng as _;
    pub use kiln_core::{
        rng, Acc, Backend, Build, Cpu, Device, Elem, Error, Init, Labels, Layer, Module, Result,
        Rng, Shape, Tensor, Tokens, S1, S2, S3, S4,
    };
}

/// The course's reference networks, declared once with [`network!`] and used
/// by the examples, tests and benchmarks (a checkpoint that `mnist_lenet`
/// saves is what `saliency` loads, because both use this declaration).
pub mod models {
    use crate as kiln;

    kiln::network! {
        /// LeNet-5 as the course draws it, with ReLU and max pooling, for
        /// 1×28×28 images: conv 6@5×5 (padding 2) → pool 2 → conv 16@5×5 →
        /// pool 2 → 400 → 120 → 84 → 10. PyTorch `state_dict` names:
        /// `conv1.weight`, …, `fc3.bias`.
        pub struct LeNet5 {
            input: [1, 28, 28],
            conv1: Conv2d(6, kernel = 5, padding = 2),
            relu,
            pool1: MaxPool2d(2),
            conv2: Conv2d(16, kernel = 5),
            relu,
            pool2: MaxPool2d(2),
            flatten,
            fc1: Linear(120),
            relu,
            fc2: Linear(84),
            relu,
            fc3: Linear(10),
        }
    }
}
