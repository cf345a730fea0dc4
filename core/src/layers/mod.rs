//! Layers: one file each, forward and hand-derived backward side by side,
//! with the formulas in the file's doc comment and tests at the bottom.

pub mod activation;
pub mod batchnorm;
pub mod conv2d;
pub(crate) mod conv_common;
pub mod conv_transpose2d;
pub mod dropout;
pub mod embedding;
pub mod flatten;
pub mod layernorm;
pub mod linear;
pub mod pool;
pub mod prelu;
pub mod softmax;
pub mod time_pool;
pub mod unpool;
pub mod upsample;

pub use activation::{Gelu, LeakyRelu, Relu, Sigmoid, Tanh};
pub use batchnorm::{
    BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormCache, BatchNormConfig, BatchNormGrads,
};
pub use conv2d::{Conv2d, Conv2dConfig, Conv2dGrads, ConvCache};
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig, ConvTranspose2dGrads};
pub use dropout::{Dropout, DropoutCache, DropoutConfig};
pub use embedding::{Embedding, EmbeddingConfig, EmbeddingGrads, TokenLayer};
pub use flatten::{Flatten, Reshape};
pub use layernorm::{
    LayerNorm, LayerNorm1d, LayerNormCache, LayerNormConfig, LayerNormDims, LayerNormGrads,
    LayerNormKernels,
};
pub use linear::{Linear, LinearConfig, LinearGrads};
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d, Pool2dConfig, PoolIndices};
pub use prelu::{PRelu, PReluConfig, PReluGrads};
pub use softmax::Softmax;
pub use time_pool::{MaxOverTime, MeanOverTime};
pub use unpool::MaxUnpool2d;
pub use upsample::{Upsample, UpsampleConfig};

/// Resizes `y` to `batch` samples (no allocation once capacity suffices).
pub(crate) fn fit<S: crate::Shape, E: crate::Elem, D: crate::Backend<E>>(
    y: &mut crate::Tensor<S, E, D>,
    batch: usize,
) -> crate::Result<()> {
    y.set_batch(batch)
}
