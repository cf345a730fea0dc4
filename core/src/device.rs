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
pub use crate::gemm::PackedB;
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

pub use crate::kernels::unary::Act;

mod gemm;
pub use gemm::{Gemm, GemmBatched};

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

/// Fails unless `buf` holds at least `n` elements: the length check that every
/// kernel's entry point makes, once for all devices, before the device's
/// `raw_` body runs.
#[inline]
pub fn need<E: Elem, D: Backend<E>, T: Scalar>(
    dev: &D,
    what: &'static str,
    buf: &D::Buf<T>,
    n: usize,
) -> Result<()> {
    let have = Backend::<E>::len(dev, buf);
    if have < n {
        Err(Error::invalid(
            what,
            format!("kiln internal error: buffer holds {have} elements, kernel needs {n}"),
        ))
    } else {
        Ok(())
    }
}

/// The core of a device for element type `E`: memory, transfers, matrix
/// products, element-wise maps and reductions. What only some layers need
/// (convolution, pooling, normalisation, losses, optimizer updates) lives in
/// the kernel families of [`crate::kernels`], each a trait of its own that the
/// layers using it state as a bound, so a device that lacks a kernel a network
/// needs is a compile error, never a run-time failure.
///
/// Each kernel comes in two halves. The provided method (`gemm`, `act_fwd`, …)
/// is what layers call: it checks arguments and buffer lengths, once for every
/// device, then calls the required `raw_` method, which a device implements and
/// which may assume those checks passed. Devices do not override the provided
/// methods.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kiln device for element type `{E}`",
    label = "a network's device must implement `kiln::Backend<{E}>`"
)]
pub trait Backend<E: Elem>: Device {
    // ---- memory ---------------------------------------------------------------
    /// A zero-filled buffer of `n` elements.
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Self::Buf<T>>;
    /// Number of elements in `buf`.
    fn len<T: Scalar>(&self, buf: &Self::Buf<T>) -> usize;
    /// Sets `buf`'s length to `n`, keeping capacity (no allocation when shrinking
    /// or regrowing within what was allocated before). New elements are zero.
    fn resize<T: Scalar>(&self, buf: &mut Self::Buf<T>, n: usize) -> Result<()>;
    /// Copies host data into `dst` (whose length must be at least `src.len()`).
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Self::Buf<T>) -> Result<()>;
    /// Copies the first `dst.len()` elements of `src` to the host.
    fn download<T: Scalar>(&self, src: &Self::Buf<T>, dst: &mut [T]) -> Result<()>;

    // ---- checked entry points (provided; layers call these) ---------------------
    /// `dst[..n] = src[..n]`.
    fn copy(&self, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize) -> Result<()> {
        need(self, "copy src", src, n)?;
        need(self, "copy dst", dst, n)?;
        self.raw_copy(src, dst, n)
    }
    /// `dst[..n] = v`.
    fn fill(&self, dst: &mut Self::Buf<E>, n: usize, v: E) -> Result<()> {
        need(self, "fill", dst, n)?;
        self.raw_fill(dst, n, v)
    }
    /// `C = α·op(A)·op(B) + β·C` on sub-matrices (see [`Gemm`]); leading
    /// dimensions and lengths are checked by [`Gemm::check`].
    fn gemm(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.raw_gemm(g, a, b, c)
    }
    /// `batch` products `C_i = α·op(A_i)·op(B_i) + β·C_i` at strided offsets
    /// (see [`GemmBatched`]); checked once by [`GemmBatched::check`].
    fn gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.batch == 0 || g.gemm.m == 0 || g.gemm.n == 0 {
            return Ok(());
        }
        self.raw_gemm_batched(g, a, b, c)
    }
    /// Packs `op(B)` of products shaped like `g` (its `k`, `n`, `trans_b`,
    /// `b_off`, `ldb`) into `packed` for [`Backend::gemm_packed_b`], so a
    /// weight used by many products in a row (a recurrent `W_hh`) is packed
    /// once; repacking the same size allocates nothing.
    fn pack_gemm_b(&self, g: &Gemm, b: &Self::Buf<E>, packed: &mut PackedB<E>) -> Result<()> {
        Gemm {
            m: 0,
            a_off: 0,
            c_off: 0,
            ..*g
        }
        .check(0, self.len(b), 0)?;
        self.raw_pack_gemm_b(g, b, packed)
    }
    /// [`Backend::gemm`] with `B` read from `packed`, filled by
    /// [`Backend::pack_gemm_b`] from this `b` (same buffer, offset, stride,
    /// transpose, size; unmodified since), else an error. The same result
    /// (bitwise on the CPU but for its one-row and tiny dot-product paths).
    fn gemm_packed_b(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        packed: &PackedB<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.raw_gemm_packed_b(g, a, b, packed, c)
    }
    /// `y[r, c] += b[c]` for a `rows × cols` matrix `y`.
    fn add_bias(
        &self,
        y: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(self, "add_bias y", y, rows * cols)?;
        need(self, "add_bias b", b, cols)?;
        self.raw_add_bias(y, b, rows, cols)
    }
    /// `db[c] (acc)= Σ_r dy[r, c]`, summed in row order.
    fn bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "bias_grad dy", dy, rows * cols)?;
        need(self, "bias_grad db", db, cols)?;
        self.raw_bias_grad(dy, db, rows, cols, acc)
    }
    /// A dense layer's product and epilogue in one call: `C = op(A)·op(B)`
    /// as [`Backend::gemm`] (with `C` dense: `c_off = 0`, `ldc = n`), then
    /// `C[r, j] += bias[j]` with a bias, then `y = f(C)` with a function
    /// (`C` keeps the pre-activation, which the backward pass reads).
    /// The values are those of `gemm`, `add_bias` and `act_fwd` in turn; the
    /// CPU applies the epilogue to each tile of `C` right after the tile's
    /// last product, the CUDA device in one kernel after the product.
    fn gemm_bias_act(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
        bias: Option<&Self::Buf<E>>,
        act: Option<(Act, &mut Self::Buf<E>)>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.c_off != 0 || g.ldc != g.n {
            return Err(crate::error::Error::invalid(
                "gemm_bias_act",
                format!(
                    "kiln internal error: the epilogue needs a dense C (offset 0, row stride n = {}), got offset {} and row stride {}",
                    g.n, g.c_off, g.ldc
                ),
            ));
        }
        if let Some(bias) = bias {
            need(self, "gemm_bias_act bias", bias, g.n)?;
        }
        if let Some((_, y)) = &act {
            need(self, "gemm_bias_act y", y, g.m * g.n)?;
        }
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.raw_gemm_bias_act(g, a, b, c, bias, act)
    }
    /// The backward of [`Backend::gemm_bias_act`]'s epilogue with a bias:
    /// `dx = dy · f'(x or y)` over the `rows × cols` pre-activation `x` (as
    /// `act_bwd` with `Acc::Set`), and `db[c] (acc)= Σ_r dx[r, c]` (as
    /// `bias_grad`, in row order).
    #[allow(clippy::too_many_arguments)] // the five tensors of the formula and the shape
    fn bias_act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        need(self, "bias_act_bwd x", x, n)?;
        need(self, "bias_act_bwd y", y, n)?;
        need(self, "bias_act_bwd dy", dy, n)?;
        need(self, "bias_act_bwd dx", dx, n)?;
        need(self, "bias_act_bwd db", db, cols)?;
        self.raw_bias_act_bwd(f, x, y, dy, dx, db, rows, cols, acc)
    }
    /// `y = f(x)` over `n` elements (`f` from the table in
    /// [`crate::kernels::unary`]).
    fn act_fwd(&self, f: Act, x: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize) -> Result<()> {
        need(self, "act_fwd x", x, n)?;
        need(self, "act_fwd y", y, n)?;
        self.raw_act_fwd(f, x, y, n)
    }
    /// `dx (acc)= dy · f'(x)`, `f'` reading `x` or `y` as its table entry says.
    #[allow(clippy::too_many_arguments)] // x, y, dy, dx: the four tensors of the formula
    fn act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "act_bwd x", x, n)?;
        need(self, "act_bwd y", y, n)?;
        need(self, "act_bwd dy", dy, n)?;
        need(self, "act_bwd dx", dx, n)?;
        self.raw_act_bwd(f, x, y, dy, dx, n, acc)
    }
    /// `y = a + b` over `n` elements.
    fn add(
        &self,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        need(self, "add a", a, n)?;
        need(self, "add b", b, n)?;
        need(self, "add y", y, n)?;
        self.raw_add(a, b, y, n)
    }
    /// `dst (acc)= α · src` over `n` elements.
    fn axpy(
        &self,
        alpha: E,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "axpy src", src, n)?;
        need(self, "axpy dst", dst, n)?;
        self.raw_axpy(alpha, src, dst, n, acc)
    }
    /// Strided block copy: for each of `b.rows` rows, `dst[r·dst_ld + dst_off + j]
    /// (acc)= src[r·src_ld + src_off + j]` for `j < b.cols` (concatenation and
    /// its backward).
    fn copy_block(
        &self,
        b: &Block,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        acc: Acc,
    ) -> Result<()> {
        if b.rows == 0 || b.cols == 0 {
            return Ok(());
        }
        need(
            self,
            "copy_block src",
            src,
            (b.rows - 1) * b.src_ld + b.src_off + b.cols,
        )?;
        need(
            self,
            "copy_block dst",
            dst,
            (b.rows - 1) * b.dst_ld + b.dst_off + b.cols,
        )?;
        self.raw_copy_block(b, src, dst, acc)
    }
    /// `Σ_{i<n} x_i²`, accumulated in `f64` in an order that depends only on
    /// `n` (gradient norms for clipping, the L2 penalty).
    fn sum_sq(&self, x: &Self::Buf<E>, n: usize) -> Result<f64> {
        need(self, "sum_sq x", x, n)?;
        self.raw_sum_sq(x, n)
    }
    /// `Σ_{i<n} |x_i|`, accumulated like [`Backend::sum_sq`] (the L1 penalty).
    fn sum_abs(&self, x: &Self::Buf<E>, n: usize) -> Result<f64> {
        need(self, "sum_abs x", x, n)?;
        self.raw_sum_abs(x, n)
    }

    // ---- the device's bodies (required; called only by the methods above) -------
    /// Body of [`Backend::copy`].
    fn raw_copy(&self, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// Body of [`Backend::fill`].
    fn raw_fill(&self, dst: &mut Self::Buf<E>, n: usize, v: E) -> Result<()>;
    /// Body of [`Backend::gemm`] (`m, n > 0`, checked by [`Gemm::check`]).
    fn raw_gemm(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`Backend::gemm_batched`] (`batch, m, n > 0`, checked by
    /// [`GemmBatched::check`]).
    fn raw_gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`Backend::pack_gemm_b`]; by default packs nothing (cuBLAS).
    fn raw_pack_gemm_b(&self, g: &Gemm, b: &Self::Buf<E>, packed: &mut PackedB<E>) -> Result<()> {
        let _ = (g, b);
        packed.clear();
        Ok(())
    }
    /// Body of [`Backend::gemm_packed_b`]; by default [`Backend::raw_gemm`].
    fn raw_gemm_packed_b(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        packed: &PackedB<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = packed;
        self.raw_gemm(g, a, b, c)
    }
    /// Body of [`Backend::add_bias`].
    fn raw_add_bias(
        &self,
        y: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Body of [`Backend::bias_grad`].
    fn raw_bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::act_fwd`].
    fn raw_act_fwd(&self, f: Act, x: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// [`Backend::gemm_bias_act`] after its checks. By default the product,
    /// then [`Backend::raw_bias_act_fwd`] (or `add_bias`, or `act_fwd`).
    fn raw_gemm_bias_act(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
        bias: Option<&Self::Buf<E>>,
        act: Option<(Act, &mut Self::Buf<E>)>,
    ) -> Result<()> {
        self.raw_gemm(g, a, b, c)?;
        match (bias, act) {
            (Some(bias), Some((f, y))) => self.raw_bias_act_fwd(f, c, bias, y, g.m, g.n),
            (Some(bias), None) => self.raw_add_bias(c, bias, g.m, g.n),
            (None, Some((f, y))) => self.raw_act_fwd(f, c, y, g.m * g.n),
            (None, None) => Ok(()),
        }
    }
    /// `x[r, c] += b[c]`, then `y = f(x)`, over a `rows × cols` matrix. By
    /// default `add_bias` then `act_fwd`; a device may do it in one pass.
    fn raw_bias_act_fwd(
        &self,
        f: Act,
        x: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.raw_add_bias(x, b, rows, cols)?;
        self.raw_act_fwd(f, x, y, rows * cols)
    }
    /// [`Backend::bias_act_bwd`] after its checks. By default `act_bwd`
    /// then `bias_grad` (two passes); a device may do it in one.
    #[allow(clippy::too_many_arguments)] // as `bias_act_bwd`
    fn raw_bias_act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        self.raw_act_bwd(f, x, y, dy, dx, rows * cols, Acc::Set)?;
        self.raw_bias_grad(dx, db, rows, cols, acc)
    }
    /// Body of [`Backend::act_bwd`].
    #[allow(clippy::too_many_arguments)] // x, y, dy, dx: the four tensors of the formula
    fn raw_act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::add`].
    fn raw_add(
        &self,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// Body of [`Backend::axpy`].
    fn raw_axpy(
        &self,
        alpha: E,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::copy_block`] (non-empty block).
    fn raw_copy_block(
        &self,
        b: &Block,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::sum_sq`].
    fn raw_sum_sq(&self, x: &Self::Buf<E>, n: usize) -> Result<f64>;
    /// Body of [`Backend::sum_abs`].
    fn raw_sum_abs(&self, x: &Self::Buf<E>, n: usize) -> Result<f64>;
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
