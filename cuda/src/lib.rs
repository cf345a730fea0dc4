//! # kiln-cuda
//!
//! The CUDA device of kiln. [`Cuda`] implements kiln-core's `Backend<E>` for
//! `f32` and `f64`, so every layer, loss, optimizer and generated network runs
//! on an NVIDIA GPU by changing the device value, nothing else:
//!
//! ```no_run
//! use kiln_core::{Tensor, S1};
//! # fn main() -> kiln_core::Result<()> {
//! let dev = kiln_cuda::Cuda::new(0)?;
//! let x = Tensor::<S1<3>, f32, _>::from_slice(&dev, &[1.0, -2.0, 3.0])?;
//! assert_eq!(x.to_vec()?, vec![1.0, -2.0, 3.0]);
//! # Ok(()) }
//! ```
//!
//! - **Kernels** are CUDA C sources shipped in `src/kernels/*.cu`, one file
//!   per op family, registered in [`kernels`] with their symbols
//!   (`<op>_fwd_<dtype>`, `<op>_bwd_<dtype>`) and parameter lists. NVRTC
//!   compiles a module the first time one of its kernels runs, once per process
//!   and device; the compiled module is cached by name.
//! - **Matrix products** go to cuBLAS; [`blas::cublas_args`] maps kiln's
//!   row-major [`kiln_core::Gemm`] to cuBLAS's column-major call.
//! - **Launches** are described by [`plan`]s: plain data (kernel, grid, block,
//!   arguments), run on the GPU or, for tests, by the host emulation
//!   ([`Cuda::emulated`], [`emulate`]).
//! - **Memory**: parameters, gradients, optimizer state and activations stay
//!   on the device; a loss copies one scalar to the host. Buffers keep their
//!   capacity, and the scratch memory of losses is allocated once.
//! - **No CUDA needed to build.** cudarc loads `libcuda.so.1`,
//!   `libnvrtc.so.13` and `libcublas.so.13` at run time; [`Cuda::new`] checks
//!   for them first and returns an error naming the one that is missing (see
//!   [`libs`]), never a panic.

#![warn(missing_docs)]

mod backend;
pub mod blas;
mod device;
pub mod emulate;
pub mod kernels;
pub mod libs;
pub mod plan;

pub use device::{compile_ptx, Cuda, CudaBuf};
