//! Layers: one file each, forward and hand-derived backward side by side,
//! with the formulas in the file's doc comment and tests at the bottom.

pub mod activation;
pub mod flatten;
pub mod linear;
pub mod softmax;

pub use activation::{LeakyRelu, Relu, Sigmoid, Tanh};
pub use flatten::Flatten;
pub use linear::{Linear, LinearConfig, LinearGrads};
pub use softmax::Softmax;

/// Resizes `y` to `batch` samples (no allocation once capacity suffices).
pub(crate) fn fit<S: crate::Shape, E: crate::Elem, D: crate::Backend<E>>(
    y: &mut crate::Tensor<S, E, D>,
    batch: usize,
) -> crate::Result<()> {
    y.set_batch(batch)
}
