//! Layers: one file each, forward and hand-derived backward side by side,
//! with the formulas in the file's doc comment and tests at the bottom.

pub mod activation;
pub mod attention;
pub mod batchnorm;
pub mod conv2d;
pub(crate) mod conv_common;
pub mod conv_transpose2d;
pub mod dropout;
pub mod embedding;
pub mod embedding_sparse;
pub mod final_state;
pub mod flatten;
pub mod gru;
pub mod l2_normalize;
pub mod layernorm;
pub mod linear;
pub mod lstm;
pub mod masked_conv2d;
pub mod pool;
pub mod positional;
pub mod prelu;
pub mod recurrent;
pub mod rnn;
pub mod softmax;
pub mod tied;
pub mod time_pool;
pub mod unpool;
pub mod upsample;

pub use activation::{Elementwise, Gelu, LeakyRelu, Relu, Sigmoid, Tanh};
pub use attention::{
    AttentionCache, AttentionKernels, AttnDims, KeyPadding, KvCache, MultiHeadAttention,
    MultiHeadAttentionConfig, MultiHeadAttentionGrads,
};
pub use batchnorm::{
    BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormCache, BatchNormConfig, BatchNormGrads,
};
pub use conv2d::{Conv2d, Conv2dConfig, Conv2dGrads, ConvCache};
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig, ConvTranspose2dGrads};
pub use dropout::{Dropout, DropoutCache, DropoutConfig};
pub use embedding::{Embedding, EmbeddingConfig, EmbeddingGrads, TokenLayer};
pub use embedding_sparse::SparseRows;
pub use final_state::FinalState;
pub use flatten::{Flatten, Reshape};
pub use gru::{Gru, GruCache, GruConfig, GruDims, GruGrads, GruKernels};
pub use l2_normalize::{L2Normalize, L2NormalizeDims, L2NormalizeKernels};
pub use layernorm::{
    LayerNorm, LayerNorm1d, LayerNormCache, LayerNormConfig, LayerNormDims, LayerNormGrads,
    LayerNormKernels,
};
pub use linear::{Linear, LinearConfig, LinearGrads};
pub use lstm::{Lstm, LstmCache, LstmConfig, LstmDims, LstmGrads, LstmKernels};
pub use masked_conv2d::{MaskType, MaskedConv2d, MaskedConv2dConfig, MaskedConvCache};
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d, Pool2dConfig, PoolIndices};
pub use positional::{PositionalEmbedding, PositionalEmbeddingConfig, SinusoidalPositions};
pub use prelu::{PRelu, PReluConfig, PReluGrads};
pub use recurrent::{
    CellCache, CellState, Recurrent, RecurrentCache, RecurrentCell, RecurrentConfig,
    RecurrentGrads, RecurrentState,
};
pub use rnn::{Rnn, RnnCache, RnnConfig, RnnDims, RnnGrads, RnnKernels, RnnNonlinearity};
pub use softmax::Softmax;
pub use tied::{TiedLinear, TiedLinearGrads, TiedWeight};
pub use time_pool::{MaxOverTime, MeanOverTime};
pub use unpool::MaxUnpool2d;
pub use upsample::{Upsample, UpsampleConfig};

/// Declares [`Kernels`] with every family listed, as a trait and its
/// blanket implementation.
macro_rules! kernels_shorthand {
    ($($family:path),* $(,)?) => {
        /// Every kernel family kiln's own layers, losses and optimizers use: a
        /// shorthand bound for code that is generic over the device and uses
        /// all of them (training loops, examples). Implemented for every
        /// device that implements each family. A layer itself states only the
        /// families it needs.
        pub trait Kernels<E: crate::Elem>: crate::Backend<E> $(+ $family)* {}

        impl<E: crate::Elem, D> Kernels<E> for D where D: crate::Backend<E> $(+ $family)* {}
    };
}

kernels_shorthand! {
    crate::kernels::ConvKernels<E>,
    crate::kernels::PoolKernels<E>,
    crate::kernels::UpsampleKernels<E>,
    crate::kernels::BatchNormKernels<E>,
    crate::kernels::DropoutKernels<E>,
    crate::kernels::SoftmaxKernels<E>,
    crate::kernels::EmbeddingKernels<E>,
    crate::kernels::LossKernels<E>,
    crate::kernels::OptimKernels<E>,
    crate::kernels::PReluKernels<E>,
    layernorm::LayerNormKernels<E>,
    l2_normalize::L2NormalizeKernels<E>,
    lstm::LstmKernels<E>,
    gru::GruKernels<E>,
    rnn::RnnKernels<E>,
    attention::AttentionKernels<E>,
}

/// Resizes `y` to `batch` samples (no allocation once capacity suffices).
pub(crate) fn fit<S: crate::Shape, E: crate::Elem, D: crate::Backend<E>>(
    y: &mut crate::Tensor<S, E, D>,
    batch: usize,
) -> crate::Result<()> {
    y.set_batch(batch)
}
