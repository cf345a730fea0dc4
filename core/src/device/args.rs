//! What a kernel call is asked to do, beside its buffers: the optimizers'
//! hyper-parameters, the geometry of windows, upsampling and batch norm, the
//! dropout mask's hash, copied blocks and loss kinds (re-exported by
//! [`crate::device`]). Plain data, shared by every device.

use super::Device;
use crate::elem::Elem;
use crate::error::Error;

/// Hyper-parameters of one SGD step on one parameter (PyTorch's `torch.optim.SGD`).
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdArgs {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// True on the first step, when the momentum buffer is initialised to the gradient.
    pub first: bool,
}

/// Hyper-parameters of one Adam/AdamW step on one parameter (`torch.optim.Adam`).
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamArgs {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) instead of L2 added to the gradient (Adam).
    pub decoupled: bool,
    /// The step number, starting at 1 (for the bias corrections).
    pub step: u64,
}

/// Hyper-parameters of one Adagrad step on one parameter (`torch.optim.Adagrad`).
#[allow(missing_docs)] // torch.optim's names, documented in `crate::optim::Adagrad`
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradArgs {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub eps: f64,
    /// This parameter's step number, starting at 1 (for `lr_decay`).
    pub step: u64,
}

/// Hyper-parameters of one RMSprop step on one parameter (`torch.optim.RMSprop`).
#[allow(missing_docs)] // torch.optim's names, documented in `crate::optim::RmsProp`
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmspropArgs {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
}

/// The geometry of a 2-D sliding window over a batch of NCHW images, shared by
/// `im2col`/`col2im` (convolutions) and the pooling kernels.
///
/// The image has `channels` planes of `h × w`; the window is `kh × kw` with
/// strides `(sh, sw)`, zero (or, for max pooling, ignored) padding `(ph, pw)`
/// and dilation `(dh, dw)`; it takes `oh × ow` positions, with
/// `oh = (h + 2·ph − dh·(kh − 1) − 1) / sh + 1` (floor) and likewise `ow`.
/// Window position `(oy, ox)`, tap `(i, j)` reads image row
/// `oy·sh − ph + i·dh` and column `ox·sw − pw + j·dw`.
#[allow(missing_docs)] // PyTorch's names, documented above
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

/// `(input + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`, PyTorch's
/// output size of a convolution or pooling window, or `None` when the
/// dilated kernel is larger than the padded input or an argument is zero.
pub fn window_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let span = dilation * (kernel - 1) + 1;
    let padded = input + 2 * padding;
    if padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

/// Output size of a transposed convolution (PyTorch's `ConvTranspose2d`):
/// `(input − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1`,
/// or `None` when that is not positive, an argument is zero, or
/// `output_padding` is not smaller than the stride or the dilation.
pub fn transposed_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
) -> Option<usize> {
    if input == 0 || kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    if output_padding >= stride && output_padding >= dilation {
        return None;
    }
    let full = (input - 1) * stride + dilation * (kernel - 1) + output_padding + 1;
    full.checked_sub(2 * padding).filter(|&n| n > 0)
}

impl Window2d {
    /// A window over `channels × h × w` images, with its output size computed
    /// by [`window_out_size`]; `op` names the layer in the error.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: &'static str,
        channels: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
        (dh, dw): (usize, usize),
    ) -> crate::Result<Self> {
        let size = |input, k, s, p, d, axis: &str| {
            window_out_size(input, k, s, p, d).ok_or_else(|| {
                Error::invalid(
                    op,
                    format!(
                        "{axis}: kernel {k} (dilation {d}, stride {s}) does not fit an input of {input} with padding {p}"
                    ),
                )
            })
        };
        let oh = size(h, kh, sh, ph, dh, "height")?;
        let ow = size(w, kw, sw, pw, dw, "width")?;
        Ok(Window2d {
            channels,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            oh,
            ow,
        })
    }
    /// Fails unless the computed output size is `(oh, ow)` (the sizes the
    /// macro put in the layer's type).
    pub fn expect_out(&self, op: &'static str, oh: usize, ow: usize) -> crate::Result<()> {
        if (self.oh, self.ow) == (oh, ow) {
            Ok(())
        } else {
            Err(Error::invalid(
                op,
                format!(
                    "kernel {}×{}, stride {}×{}, padding {}×{}, dilation {}×{} map {}×{} to {}×{}, but the layer's type says {oh}×{ow}",
                    self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, self.dh, self.dw, self.h, self.w, self.oh, self.ow
                ),
            ))
        }
    }
    /// Rows of the `im2col` matrix: `channels · kh · kw`.
    pub fn rows(&self) -> usize {
        self.channels * self.kh * self.kw
    }
    /// Elements of one input plane, `h · w`.
    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }
    /// Window positions per plane, `oh · ow`.
    pub fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
}

/// How [`crate::kernels::UpsampleKernels::upsample2d_fwd`] interpolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpsampleMode {
    /// Each output pixel copies the input pixel it falls in (`mode='nearest'`).
    #[default]
    Nearest,
    /// Bilinear interpolation with `align_corners=False` (PyTorch's default).
    Bilinear,
}

/// The geometry of an upsampling of `channels × h × w` images to `oh × ow`
/// (integer multiples of `h` and `w`).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize2d {
    pub mode: UpsampleMode,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Sizes and ε of a batch-normalisation kernel: `x` is `[batch, channels,
/// spatial]` row-major, statistics are per channel over `batch · spatial`
/// values.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormDims {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub eps: f64,
}

/// Whether dropout keeps element `i` of a call drawn with `seed`: the `i`-th
/// output of the SplitMix64 generator started at `seed` (the state after
/// `i + 1` steps of `+0x9E3779B97F4A7C15`, then the SplitMix64 finaliser),
/// compared with `threshold = ⌊p·2⁶⁴⌋` (see [`dropout_threshold`]); kept
/// when not below it. Counter-based, so every device computes the same mask
/// for the same seed without moving it, and backward recomputes it.
#[inline(always)]
pub fn dropout_keep(seed: u64, i: u64, threshold: u64) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z >= threshold
}

/// `⌊p·2⁶⁴⌋`, saturating at `u64::MAX` for `p = 1` (which keeps an element
/// only when the hash is `u64::MAX`; the layer zeroes everything for `p = 1`).
pub fn dropout_threshold(p: f64) -> u64 {
    if p <= 0.0 {
        0
    } else if p >= 1.0 {
        u64::MAX
    } else {
        (p * 18_446_744_073_709_551_616.0) as u64
    }
}

/// A strided block of `rows × cols` elements copied between two row-major
/// buffers (see [`Backend::copy_block`]).
#[allow(missing_docs)] // documented on `Backend::copy_block`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub rows: usize,
    pub cols: usize,
    pub src_ld: usize,
    pub src_off: usize,
    pub dst_ld: usize,
    pub dst_off: usize,
}

/// Which loss [`crate::kernels::LossKernels::loss`] computes; formulas in `crate::loss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax cross-entropy against class indices.
    SoftmaxCrossEntropy,
    /// Softmax cross-entropy of each row against a token id, skipping the
    /// rows whose id is `ignore_index` (their gradient is 0) and dividing the
    /// sum by `positions`, the number of rows that are not skipped (PyTorch's
    /// `F.cross_entropy(…, ignore_index, reduction='mean')`); `positions > 0`.
    TokenCrossEntropy {
        /// The id whose rows do not count (`None`: every row counts).
        ignore_index: Option<u32>,
        /// Rows that count: the divisor of the mean.
        positions: usize,
    },
    /// Multiclass SVM hinge `Σ_{j≠y} max(0, x_j − x_y + margin)` against class
    /// indices; a NaN term is kept (NaN loss), unlike PyTorch's
    /// `multi_margin_loss`, which skips it. The gradient counts a term as
    /// active when it is `> 0` (a NaN one is not).
    Hinge {
        /// Δ, 1 in the course.
        margin: f64,
    },
    /// Mean squared error against dense targets, averaged over all elements.
    Mse,
    /// Mean absolute error against dense targets, averaged over all elements.
    L1,
    /// Binary cross-entropy with logits against dense targets in [0, 1], averaged over all elements.
    BceWithLogits,
}

/// The target a loss compares with: class indices or a dense tensor.
pub enum LossTarget<'a, E: Elem, D: Device> {
    /// One class index per sample.
    Classes(&'a D::Buf<u32>),
    /// One target value per element.
    Dense(&'a D::Buf<E>),
}
