//! The device abstraction.
//!
//! A [`Device`] owns memory ([`Device::Buf`]); [`Backend<E>`] is the set of
//! kernels that layers, losses and optimizers call. Layers are written once,
//! generically over `D: Backend<E>`, so a second device (CUDA) implements this
//! trait and nothing at the call sites of layers or of generated code changes.
//!
//! Every kernel works on whole buffers or on explicitly described sub-matrices;
//! all matrices are row-major like PyTorch's. Gradient-writing kernels take an
//! [`Acc`]: overwrite the destination (first contribution) or add to it (fan-out
//! in a graph, a weight used twice). The macro knows statically which
//! contribution comes first, so no buffer is ever zeroed just to be added to.

use crate::elem::{Elem, Scalar};
use crate::error::{Error, Result};
use std::fmt::Debug;

/// Overwrite or accumulate into a gradient buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acc {
    /// `dst = value` (the first contribution).
    Set,
    /// `dst += value` (a later contribution).
    Add,
}

impl Acc {
    /// `Set` for the first contribution, `Add` after it.
    pub fn first(is_first: bool) -> Self {
        if is_first {
            Acc::Set
        } else {
            Acc::Add
        }
    }
    /// Writes `v` into `dst` according to the mode (the CPU's one accumulate helper).
    #[inline(always)]
    pub fn put<E: Elem>(self, dst: &mut E, v: E) {
        match self {
            Acc::Set => *dst = v,
            Acc::Add => *dst = *dst + v,
        }
    }
    /// GEMM's β: 0 for `Set`, 1 for `Add`.
    pub fn beta<E: Elem>(self) -> E {
        match self {
            Acc::Set => E::zero(),
            Acc::Add => E::one(),
        }
    }
}

/// A place where buffers live.
pub trait Device: Clone + Debug + Send + Sync + 'static {
    /// A buffer of `T`s on this device.
    type Buf<T: Scalar>: Debug + Send + Sync;
    /// A human-readable name (`cpu`, `cuda:0`).
    fn name(&self) -> String;
}

/// Element-wise activation functions. One enum shared by every device, so
/// each function's formula is declared once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `max(x, 0)`; backward `dy · [x > 0]`.
    Relu,
    /// `x` if `x > 0` else `αx`; backward `dy · (1 if x > 0 else α)`.
    LeakyRelu(f64),
    /// `σ(x) = 1/(1+e^{−x})`; backward `dy · y(1 − y)` (uses the output).
    Sigmoid,
    /// `tanh x`; backward `dy · (1 − y²)` (uses the output).
    Tanh,
}

/// A matrix product on sub-matrices of row-major buffers:
/// `C = α · op(A) · op(B) + β · C` with `op(A)` of size `m × k`, `op(B)` of size
/// `k × n`, `C` of size `m × n`. `lda`, `ldb`, `ldc` are row strides (elements
/// between consecutive rows of the stored, untransposed matrix) and the offsets
/// locate the first element.
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_off: usize,
    pub lda: usize,
    pub b_off: usize,
    pub ldb: usize,
    pub c_off: usize,
    pub ldc: usize,
    pub alpha: f64,
    pub beta: f64,
}

impl Gemm {
    /// A dense product `C[m×n] = op(A)·op(B)` with contiguous operands (β = 0).
    pub fn dense(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Gemm {
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_off: 0,
            lda: if trans_a { m } else { k },
            b_off: 0,
            ldb: if trans_b { k } else { n },
            c_off: 0,
            ldc: n,
            alpha: 1.0,
            beta: 0.0,
        }
    }
    /// The same product accumulating into `C` according to `acc`.
    pub fn acc(mut self, acc: Acc) -> Self {
        self.beta = if acc == Acc::Add { 1.0 } else { 0.0 };
        self
    }

    /// Checks the product against buffers of `a_len`, `b_len` and `c_len`
    /// elements: every leading dimension must be at least its stored matrix's
    /// row length (as BLAS's `lda ≥ cols`; a smaller `ldc` would make rows
    /// of `C` overlap, and the parallel split would then write one element from
    /// two threads), and every element the product reads or writes must lie
    /// inside its buffer. Each device calls this before launching, so the
    /// checks are written once.
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<()> {
        let (m, n, k) = (self.m, self.n, self.k);
        let (a_rows, a_cols) = if self.trans_a { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if self.trans_b { (n, k) } else { (k, n) };
        let operands = [
            ("gemm A", "lda", a_rows, a_cols, self.a_off, self.lda, a_len),
            ("gemm B", "ldb", b_rows, b_cols, self.b_off, self.ldb, b_len),
            ("gemm C", "ldc", m, n, self.c_off, self.ldc, c_len),
        ];
        for (what, ld_name, rows, cols, off, ld, len) in operands {
            if rows > 0 && cols > 0 && ld < cols {
                return Err(Error::invalid(
                    what,
                    format!(
                        "{ld_name} = {ld} is smaller than the row length {cols} of the stored {rows}×{cols} matrix (rows would overlap)"
                    ),
                ));
            }
            let end = if rows == 0 || cols == 0 {
                off
            } else {
                (rows - 1)
                    .checked_mul(ld)
                    .and_then(|v| v.checked_add(off))
                    .and_then(|v| v.checked_add(cols))
                    .unwrap_or(usize::MAX)
            };
            if len < end {
                return Err(Error::invalid(
                    what,
                    format!(
                        "kiln internal error: buffer holds {len} elements, the {rows}×{cols} matrix at offset {off} with {ld_name} = {ld} needs {end}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

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

/// How [`Backend::upsample2d_fwd`] interpolates.
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

/// The error a device returns for a kernel it does not implement yet.
pub fn missing_kernel(device: String, kernel: &str) -> Error {
    Error::Device {
        device,
        msg: format!("kernel {kernel} is not implemented on this device yet"),
    }
}

/// The kernels of a device for element type `E`.
///
/// Lengths are checked by the callers (layers know their shapes); kernels may
/// assume that buffers are at least as long as the sizes they are given.
pub trait Backend<E: Elem>: Device {
    // ---- memory ---------------------------------------------------------------
    /// A zero-filled buffer of `n` elements.
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Self::Buf<T>>;
    /// Number of elements in `buf`.
    fn len<T: Scalar>(&self, buf: &Self::Buf<T>) -> usize;
    /// Sets `buf`'s length to `n`, keeping capacity (no allocation when shrinking
    /// or regrowing within what was allocated before). New elements are zero.
    fn resize<T: Scalar>(&self, buf: &mut Self::Buf<T>, n: usize) -> Result<()>;
    /// Copies host data into `dst` (whose length must equal `src.len()`).
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Self::Buf<T>) -> Result<()>;
    /// Copies `src` to the host.
    fn download<T: Scalar>(&self, src: &Self::Buf<T>, dst: &mut [T]) -> Result<()>;
    /// `dst[..n] = src[..n]`.
    fn copy(&self, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// `dst[..n] = v`.
    fn fill(&self, dst: &mut Self::Buf<E>, n: usize, v: E) -> Result<()>;

    // ---- linear algebra ---------------------------------------------------------
    /// See [`Gemm`].
    fn gemm(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// `y[r, c] += b[c]` for a `rows × cols` matrix `y`.
    fn add_bias(
        &self,
        y: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `db[c] (acc)= Σ_r dy[r, c]`, summed in row order.
    fn bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;

    // ---- element-wise -------------------------------------------------------------
    /// `y = f(x)` over `n` elements.
    fn act_fwd(&self, f: Act, x: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// `dx (acc)= dy · f'(x)` (using `x` or `y` as the formula needs).
    #[allow(clippy::too_many_arguments)]
    fn act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// `y = a + b` over `n` elements.
    fn add(&self, a: &Self::Buf<E>, b: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize)
        -> Result<()>;
    /// `dst (acc)= α · src` over `n` elements.
    fn axpy(
        &self,
        alpha: E,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Strided block copy: for each of `rows` rows, `dst[r·dst_ld + dst_off + j] (acc)=
    /// src[r·src_ld + src_off + j]` for `j < cols` (concatenation and its backward).
    #[allow(clippy::too_many_arguments)]
    fn copy_block(
        &self,
        src: &Self::Buf<E>,
        src_ld: usize,
        src_off: usize,
        dst: &mut Self::Buf<E>,
        dst_ld: usize,
        dst_off: usize,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;

    // ---- softmax and losses -----------------------------------------------------------
    /// Row-wise softmax of a `rows × cols` matrix: `y_j = e^{x_j − m} / Σ_k e^{x_k − m}`.
    fn softmax_fwd(
        &self,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `dx_j (acc)= y_j (dy_j − Σ_k dy_k y_k)` per row.
    #[allow(clippy::too_many_arguments)]
    fn softmax_bwd(
        &self,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Computes a per-sample loss and its gradient for `rows` samples of `cols`
    /// values; returns the mean over samples (see [`LossKind`]). `dx` receives
    /// `∂mean/∂x` when given.
    #[allow(clippy::too_many_arguments)]
    fn loss(
        &self,
        kind: LossKind,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E>;

    // ---- optimizers -----------------------------------------------------------------
    /// One `torch.optim.SGD` step on `n` elements; `buf` is the momentum buffer
    /// (unused when momentum is 0).
    fn sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// One `torch.optim.Adam`/`AdamW` step on `n` elements.
    #[allow(clippy::too_many_arguments)]
    fn adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        m: &mut Self::Buf<E>,
        v: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;

    // ---- training toolkit: more optimizers, reductions, penalties, losses ---------------
    // Default bodies report the kernel missing, so a device can be brought up
    // kernel by kernel; `Cpu` implements all.

    /// One `torch.optim.Adagrad` step on `n` elements; `sum` is the accumulator
    /// of squared gradients (see `crate::optim::Adagrad` for the formula).
    fn adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        sum: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        let _ = (a, p, g, sum, n);
        Err(missing_kernel(self.name(), "adagrad_step"))
    }
    /// One `torch.optim.RMSprop` step on `n` elements: `square_avg` always,
    /// `grad_avg` when `a.centered`, `buf` (momentum) when `a.momentum > 0`;
    /// unused buffers may be empty (see `crate::optim::RmsProp`).
    #[allow(clippy::too_many_arguments)]
    fn rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        square_avg: &mut Self::Buf<E>,
        grad_avg: &mut Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        let _ = (a, p, g, square_avg, grad_avg, buf, n);
        Err(missing_kernel(self.name(), "rmsprop_step"))
    }
    /// `Σ_{i<n} x_i²`, accumulated in `f64` in an order that depends only on
    /// `n` (gradient norms for clipping, the L2 penalty).
    fn sum_sq(&self, x: &Self::Buf<E>, n: usize) -> Result<f64> {
        let _ = (x, n);
        Err(missing_kernel(self.name(), "sum_sq"))
    }
    /// `Σ_{i<n} |x_i|`, accumulated like [`Backend::sum_sq`] (the L1 penalty).
    fn sum_abs(&self, x: &Self::Buf<E>, n: usize) -> Result<f64> {
        let _ = (x, n);
        Err(missing_kernel(self.name(), "sum_abs"))
    }
    /// The gradient of the elastic-net penalty `l1·Σ|θ| + l2·Σθ²`:
    /// `dst (acc)= l1·sign(θ) + 2·l2·θ` over `n` elements (`sign(0) = 0`, as
    /// PyTorch differentiates `|θ|`).
    fn penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (l1, l2, theta, dst, n, acc);
        Err(missing_kernel(self.name(), "penalty_grad"))
    }
    /// Softmax cross-entropy against probability targets, mean over `rows`
    /// samples of `cols` logits: `q = (1 − ε)·t + ε/cols` (label smoothing
    /// `ε = smoothing`; `t` is the one-hot row for [`LossTarget::Classes`]),
    /// loss `−Σ_k q_k log softmax(x)_k`, `dx = (softmax(x)·Σ_k q_k − q) / rows`.
    #[allow(clippy::too_many_arguments)]
    fn soft_cross_entropy(
        &self,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let _ = (x, target, smoothing, dx, rows, cols);
        Err(missing_kernel(self.name(), "soft_cross_entropy"))
    }
    /// Multiclass focal loss, mean over `rows` samples:
    /// `−α_y (1 − p_y)^γ log p_y` with `p = softmax(x)` and `α_y = alpha[y]`
    /// (1 without `alpha`); gradient in `crate::loss::focal_loss`.
    #[allow(clippy::too_many_arguments)]
    fn focal_loss(
        &self,
        x: &Self::Buf<E>,
        labels: &Self::Buf<u32>,
        alpha: Option<&Self::Buf<E>>,
        gamma: f64,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let _ = (x, labels, alpha, gamma, dx, rows, cols);
        Err(missing_kernel(self.name(), "focal_loss"))
    }
    /// `F.kl_div(x, t, reduction='batchmean')`: `Σ t·(log t − x) / rows`
    /// (`0` where `t = 0`), or with `log_target`, `Σ e^t·(t − x) / rows`;
    /// `dx = −t / rows` (`−e^t / rows`).
    #[allow(clippy::too_many_arguments)]
    fn kl_div(
        &self,
        x: &Self::Buf<E>,
        target: &Self::Buf<E>,
        log_target: bool,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let _ = (x, target, log_target, dx, rows, cols);
        Err(missing_kernel(self.name(), "kl_div"))
    }

    // ---- convolution, pooling, normalisation, dropout, upsampling -----------------
    // Images are NCHW. Each kernel has a default body that reports it missing,
    // so a device can be brought up kernel by kernel; `Cpu` implements all.

    /// `im2col` of samples `first .. first + count` of the images `x` (geometry
    /// `g`): `cols` becomes the `[g.rows(), count · oh · ow]` matrix whose row
    /// `(c·kh + i)·kw + j`, column `b·oh·ow + oy·ow + ox` holds
    /// `x[first + b, c, oy·sh − ph + i·dh, ox·sw − pw + j·dw]` (0 outside the
    /// image). Samples sit side by side in the columns, so one GEMM serves the
    /// whole chunk.
    fn im2col(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        first: usize,
        count: usize,
        cols: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = (g, x, first, count, cols);
        Err(missing_kernel(self.name(), "im2col"))
    }
    /// The adjoint of [`Backend::im2col`]: every entry of `cols` is added to the
    /// image pixel it was read from (overlapping windows sum; padding is
    /// dropped), giving samples `first .. first + count` of `x` (acc).
    #[allow(clippy::too_many_arguments)]
    fn col2im(
        &self,
        g: &Window2d,
        cols: &Self::Buf<E>,
        x: &mut Self::Buf<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (g, cols, x, first, count, acc);
        Err(missing_kernel(self.name(), "col2im"))
    }
    /// Swaps the first two axes of a `[a, b, n]` block:
    /// `dst[dst_off + (j·a + i)·n + k] (acc)= src[src_off + (i·b + j)·n + k]`
    /// (NCHW ↔ CNHW around the batched GEMMs of the convolutions).
    #[allow(clippy::too_many_arguments)]
    fn transpose01(
        &self,
        src: &Self::Buf<E>,
        src_off: usize,
        dst: &mut Self::Buf<E>,
        dst_off: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (src, src_off, dst, dst_off, a, b, n, acc);
        Err(missing_kernel(self.name(), "transpose01"))
    }
    /// `y[s, c, p] += bias[c]` for `y` of shape `[batch, channels, spatial]`.
    fn add_channel_bias(
        &self,
        y: &mut Self::Buf<E>,
        bias: &Self::Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        let _ = (y, bias, batch, channels, spatial);
        Err(missing_kernel(self.name(), "add_channel_bias"))
    }
    /// `db[c] (acc)= Σ_{s,p} dy[s, c, p]` for `dy` of shape `[batch, channels, spatial]`.
    #[allow(clippy::too_many_arguments)]
    fn channel_bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (dy, db, batch, channels, spatial, acc);
        Err(missing_kernel(self.name(), "channel_bias_grad"))
    }
    /// Max pooling of `batch` images: `y[s, c, oy, ox]` is the largest value in
    /// the window (padding never wins; the first maximum in row-major window
    /// order wins ties; NaN propagates), and `indices` receives its flat
    /// position `iy·w + ix` in the input plane (PyTorch's `return_indices`).
    fn max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        indices: &mut Self::Buf<u32>,
        batch: usize,
    ) -> Result<()> {
        let _ = (g, x, y, indices, batch);
        Err(missing_kernel(self.name(), "max_pool2d_fwd"))
    }
    /// Routes each small-plane value to its recorded position in the large
    /// plane: `dst[s, c, indices[s, c, o]] (acc)= Σ src[s, c, o]`, where `src`
    /// and `indices` are `[batch, channels, oh·ow]` and `dst` is
    /// `[batch, channels, h·w]`; positions that receive nothing are 0 (with
    /// `Set`). Max pooling's backward and max unpooling's forward.
    #[allow(clippy::too_many_arguments)]
    fn max_unpool2d(
        &self,
        g: &Window2d,
        indices: &Self::Buf<u32>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (g, indices, src, dst, batch, acc);
        Err(missing_kernel(self.name(), "max_unpool2d"))
    }
    /// The adjoint of [`Backend::max_unpool2d`]: `dst[s, c, o] (acc)=
    /// src[s, c, indices[s, c, o]]` (max unpooling's backward).
    #[allow(clippy::too_many_arguments)]
    fn max_unpool2d_bwd(
        &self,
        g: &Window2d,
        indices: &Self::Buf<u32>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (g, indices, src, dst, batch, acc);
        Err(missing_kernel(self.name(), "max_unpool2d_bwd"))
    }
    /// Average pooling with zero padding counted in the divisor (PyTorch's
    /// `count_include_pad=True`): `y = Σ_window x / (kh·kw)`.
    fn avg_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let _ = (g, x, y, batch);
        Err(missing_kernel(self.name(), "avg_pool2d_fwd"))
    }
    /// `dx[p] (acc)= Σ_{windows ∋ p} dy / (kh·kw)`.
    fn avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (g, dy, dx, batch, acc);
        Err(missing_kernel(self.name(), "avg_pool2d_bwd"))
    }
    /// Upsampling of `batch` images (see [`UpsampleMode`] for the formulas).
    fn upsample2d_fwd(
        &self,
        g: &Resize2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let _ = (g, x, y, batch);
        Err(missing_kernel(self.name(), "upsample2d_fwd"))
    }
    /// The adjoint of [`Backend::upsample2d_fwd`]: each `dy` value goes back to
    /// the input pixels it was interpolated from, with the same weights (acc).
    fn upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let _ = (g, dy, dx, batch, acc);
        Err(missing_kernel(self.name(), "upsample2d_bwd"))
    }
    /// Per-channel batch statistics: `mean[c]` and the biased `var[c]` over the
    /// `batch · spatial` values of channel `c` (two passes, for accuracy).
    fn batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &mut Self::Buf<E>,
        var: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = (d, x, mean, var);
        Err(missing_kernel(self.name(), "batch_norm_stats"))
    }
    /// PyTorch's running-statistics update with momentum `m` after a batch of
    /// `count = batch · spatial` values per channel:
    /// `rm = (1 − m)·rm + m·mean`, `rv = (1 − m)·rv + m·var·count/(count − 1)`
    /// (unbiased), and `tracked[0] += 1` (`num_batches_tracked`).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_running(
        &self,
        d: &BatchNormDims,
        momentum: f64,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        running_mean: &mut Self::Buf<E>,
        running_var: &mut Self::Buf<E>,
        tracked: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = (d, momentum, mean, var, running_mean, running_var, tracked);
        Err(missing_kernel(self.name(), "batch_norm_running"))
    }
    /// `y = (x − mean[c]) / √(var[c] + ε) · gamma[c] + beta[c]`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        gamma: &Self::Buf<E>,
        beta: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = (d, x, mean, var, gamma, beta, y);
        Err(missing_kernel(self.name(), "batch_norm_fwd"))
    }
    /// Backward of batch normalisation in training mode (batch statistics),
    /// with `x̂ = (x − mean)/σ`, `σ = √(var + ε)` and `M = batch · spatial`:
    /// `dbeta (gacc)= Σ dy`, `dgamma (gacc)= Σ dy·x̂`, and, when `dx` is given,
    /// `dx (acc)= (γ/σ)·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)`. `scratch` holds at least
    /// `2·channels` values (the two sums).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_bwd(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        gamma: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        dgamma: &mut Self::Buf<E>,
        dbeta: &mut Self::Buf<E>,
        gacc: Acc,
        scratch: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = (d, x, mean, var, gamma, dy, dx, dgamma, dbeta, gacc, scratch);
        Err(missing_kernel(self.name(), "batch_norm_bwd"))
    }
    /// Inverted dropout of `n` elements: `y_i = x_i · keep_i / (1 − p)` with
    /// `keep_i = dropout_keep(seed, i, dropout_threshold(p))` (0 for `p = 1`).
    fn dropout_fwd(
        &self,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
    ) -> Result<()> {
        let _ = (x, y, n, p, seed);
        Err(missing_kernel(self.name(), "dropout_fwd"))
    }
    /// `dx_i (acc)= dy_i · keep_i / (1 − p)`, the same mask as the forward pass.
    #[allow(clippy::too_many_arguments)]
    fn dropout_bwd(
        &self,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        let _ = (dy, dx, n, p, seed, acc);
        Err(missing_kernel(self.name(), "dropout_bwd"))
    }
}

/// Which loss [`Backend::loss`] computes; formulas in `crate::loss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax cross-entropy against class indices.
    SoftmaxCrossEntropy,
    /// Multiclass SVM hinge `Σ_{j≠y} max(0, x_j − x_y + margin)` against class indices.
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
pub enum LossTarget<'a, E: Elem, D: Device + ?Sized> {
    /// One class index per sample.
    Classes(&'a D::Buf<u32>),
    /// One target value per element.
    Dense(&'a D::Buf<E>),
}
